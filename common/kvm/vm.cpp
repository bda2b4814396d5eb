#include "kvm/vm.hpp"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "base/error.hpp"
#include "kvm/system.hpp"

namespace tandem::kvm {

namespace {
// Intel needs a 3-page TSS area for real mode emulation somewhere outside RAM; the top of the
// 32-bit hole is where the other VMMs put it too.
constexpr uint64_t kTssAddress = 0xfffbd000;
}  // namespace

Vm::Vm(const System& system) : system_(system) {
  fd_.reset(checkSys(::ioctl(system.fd(), KVM_CREATE_VM, 0), "KVM_CREATE_VM"));
  checkSys(::ioctl(fd_.get(), KVM_SET_TSS_ADDR, kTssAddress), "KVM_SET_TSS_ADDR");
  checkSys(::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  checkSys(::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2");
}

void Vm::setMemoryRegion(uint32_t slot, Gpa gpa, uint64_t size, void* hostAddress, uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa.value;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(hostAddress);
  checkSys(::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region), concat("KVM_SET_USER_MEMORY_REGION slot ", slot));
}

void Vm::getDirtyLog(uint32_t slot, std::vector<uint64_t>& bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  checkSys(::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log), concat("KVM_GET_DIRTY_LOG slot ", slot));
}

void Vm::setIrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  checkSys(::ioctl(fd_.get(), KVM_IRQ_LINE, &irq), concat("KVM_IRQ_LINE ", gsi));
}

void Vm::pulseIrqLine(uint32_t gsi) {
  setIrqLine(gsi, true);
  setIrqLine(gsi, false);
}

void Vm::addIoeventfd(Gpa gpa, uint32_t value, int fd) {
  kvm_ioeventfd io{};
  io.addr = gpa.value;
  io.len = 4;
  io.datamatch = value;
  io.fd = fd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  checkSys(::ioctl(fd_.get(), KVM_IOEVENTFD, &io), concat("KVM_IOEVENTFD at 0x", std::hex, gpa.value));
}

VmState Vm::save() const {
  VmState s;
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    kvm_irqchip c{};
    c.chip_id = chip;
    checkSys(::ioctl(fd_.get(), KVM_GET_IRQCHIP, &c), concat("KVM_GET_IRQCHIP ", chip));
    if (chip == KVM_IRQCHIP_PIC_MASTER) s.picMaster = c.chip.pic;
    if (chip == KVM_IRQCHIP_PIC_SLAVE) s.picSlave = c.chip.pic;
    if (chip == KVM_IRQCHIP_IOAPIC) s.ioapic = c.chip.ioapic;
  }
  checkSys(::ioctl(fd_.get(), KVM_GET_PIT2, &s.pit), "KVM_GET_PIT2");
  kvm_clock_data clock{};
  checkSys(::ioctl(fd_.get(), KVM_GET_CLOCK, &clock), "KVM_GET_CLOCK");
  s.clockNs = clock.clock;
  return s;
}

void Vm::restore(const VmState& s) {
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    kvm_irqchip c{};
    c.chip_id = chip;
    if (chip == KVM_IRQCHIP_PIC_MASTER) c.chip.pic = s.picMaster;
    if (chip == KVM_IRQCHIP_PIC_SLAVE) c.chip.pic = s.picSlave;
    if (chip == KVM_IRQCHIP_IOAPIC) c.chip.ioapic = s.ioapic;
    checkSys(::ioctl(fd_.get(), KVM_SET_IRQCHIP, &c), concat("KVM_SET_IRQCHIP ", chip));
  }
  checkSys(::ioctl(fd_.get(), KVM_SET_PIT2, &s.pit), "KVM_SET_PIT2");
  kvm_clock_data clock{};
  clock.clock = s.clockNs;
  checkSys(::ioctl(fd_.get(), KVM_SET_CLOCK, &clock), "KVM_SET_CLOCK");
}

}  // namespace tandem::kvm
