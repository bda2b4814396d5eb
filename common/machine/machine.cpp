#include "machine/machine.hpp"

#include <unistd.h>

#include <fstream>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"
#include "boot/boot_layout.hpp"
#include "boot/elf_image.hpp"
#include "boot/guest_abi.h"
#include "kvm/cpuid.hpp"

namespace tandem {

namespace {

constexpr uint32_t kMaxCpus = 255;  // xAPIC ids are 8 bits
constexpr uint64_t kVirtioBase = 0xd0000000;  // in the hole below 4 GiB, one 4 KiB window each
constexpr uint32_t kVirtioFirstGsi = 16;       // IOAPIC pins 16..23
constexpr size_t kMaxVirtioDevices = 8;

uint64_t virtioBase(size_t index) { return kVirtioBase + index * dev::virtio::kTransportSize; }

}  // namespace

ElfImage checkMachineConfig(const MachineConfig& config, const kvm::System& system) {
  if (config.cpus == 0) failBadInput("--cpus 0: a VM needs at least one vCPU");
  int maxCpus = std::min<int>(system.maxVcpus(), kMaxCpus);
  if (config.cpus > static_cast<uint32_t>(maxCpus))
    failBadInput("--cpus ", config.cpus, " is more than tandem can start on this host (at most ", maxCpus, ")");
  if (config.memory < GuestMemory::kMinimumSize)
    failBadInput("--memory ", config.memory / kMiB, "M is too small; give at least 16M");
  if (config.memory % (2 * kMiB) != 0) failBadInput("--memory must be a multiple of 2 MiB");
  uint64_t available = hostAvailableMemory();
  if (config.memory > available)
    failBadInput("--memory ", config.memory / kMiB, "M is more than this host can give (", available / kMiB,
                 " MiB available); give less");
  if (config.disks.size() + config.nets.size() > kMaxVirtioDevices)
    failBadInput("at most ", kMaxVirtioDevices, " --disk and --net options together");
  for (const auto& disk : config.disks) dev::virtio::Blk probe(disk.path, disk.readonly);  // opens or refuses
  for (const auto& net : config.nets) dev::Tap probe(net.tap);
  ElfImage image = ElfImage::load(config.kernel);
  if (!image.entry64 && config.cpus > 1)
    failBadInput(config.kernel, " has only a PVH entry, which starts one vCPU; use --cpus 1 or a kernel with a tandem note");
  return image;
}

uint64_t hostAvailableMemory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * kKiB;
  return 0;
}

Machine::Machine(const MachineConfig& config, dev::Console& console)
    : Machine(config, console, checkMachineConfig(config, kvm::System()), std::nullopt, GuestMemory::Pages::Huge) {
  image_->loadInto(memory_, boot::kKernelLowest);
  boot::writeStartInfo(memory_, guestCmdline());
  boot::writeLongModeTables(memory_);
  for (auto& vcpu : vcpus_) {
    if (image_->entry64) {
      vcpu->setSregs(boot::longModeSregs(vcpu->sregs()));
      vcpu->setRegs(boot::entry64Regs(*image_->entry64, vcpu->index(), config.cpus));
    } else {
      vcpu->setSregs(boot::protectedModeSregs(vcpu->sregs()));
      vcpu->setRegs(boot::pvhEntryRegs(*image_->pvhEntry32));
    }
  }
}

Machine::Machine(const MachineConfig& config, dev::Console& console, ForRestore restore)
    : Machine(config, console, std::nullopt, std::nullopt, restore.pages) {}

Machine::Machine(const MachineConfig& config, dev::Console& console, GuestMemory memory)
    : Machine(config, console, std::nullopt, std::move(memory), GuestMemory::Pages::Huge) {
  require(memory_.size() == config.memory, "prepared memory of ", memory_.size(), " bytes for a guest of ", config.memory);
}

Machine::Machine(const MachineConfig& config, dev::Console& console, std::optional<ElfImage> image,
                 std::optional<GuestMemory> memory, GuestMemory::Pages pages)
    : config_(config),
      console_(console),
      image_(std::move(image)),
      vm_(system_),
      memory_(memory ? std::move(*memory) : GuestMemory(config.memory, pages)),
      serial_(gatedConsole_, [this](bool level) { vm_.setIrqLine(dev::Serial::kIrq, level); }, [this] { idlePort_.wake(); }),
      exitPort_([this](uint8_t status) {
        finish(MachineExit{MachineExit::Kind::PowerOff, status, concat("the guest powered off with status ", int(status))});
      }) {
  createVcpusAndDevices();
}

void Machine::createVcpusAndDevices() {
  for (uint32_t slot = 0; slot < memory_.regions().size(); ++slot) {
    const auto& r = memory_.regions()[slot];
    vm_.setMemoryRegion(slot, r.start, r.size, memory_.hostBase() + r.hostOffset);
  }
  for (uint32_t i = 0; i < config_.cpus; ++i) {
    auto vcpu = std::make_unique<kvm::Vcpu>(vm_, i);
    vcpu->setCpuid(kvm::guestCpuid(system_.supportedCpuid(), i, config_.cpus));
    vcpu->setRunnable();
    vcpus_.push_back(std::move(vcpu));
  }
  msrIndices_ = vcpus_[0]->readableMsrs(system_.msrIndexList());
  exitCounts_ = std::make_unique<ExitCounts[]>(vcpus_.size());
  pio_.add(dev::Serial::kBase, dev::Serial::kLength, serial_);
  pio_.add(TANDEM_PORT_EXIT, 1, exitPort_);
  pio_.add(TANDEM_PORT_IDLE, 4, idlePort_);

  for (const auto& disk : config_.disks) {
    disks_.push_back(std::make_unique<dev::virtio::Blk>(disk.path, disk.readonly));
    transports_.push_back(std::make_unique<dev::virtio::Transport>(*disks_.back(), memory_, raiserFor(transports_.size())));
  }
  for (const auto& net : config_.nets) {
    taps_.push_back(net.opened ? net.opened : std::make_shared<dev::Tap>(net.tap));
    tapSinks_.push_back(std::make_unique<TapSink>(*taps_.back(), static_cast<uint32_t>(tapSinks_.size())));
    TapSink& sink = *tapSinks_.back();
    nets_.push_back(std::make_unique<dev::virtio::Net>(*taps_.back(), net.mac.value_or(dev::virtio::macFromName(net.tap)),
                                                       [this, &sink](std::span<const uint8_t> frame) { gate_.write(sink, frame, true); }));
    transports_.push_back(std::make_unique<dev::virtio::Transport>(*nets_.back(), memory_, raiserFor(transports_.size())));
    auto* transport = transports_.back().get();
    // (a guest idling in the idle port is woken by the frames' used buffers: raiserFor)
    io_.add(taps_.back()->fd(), [transport] { transport->notified(dev::virtio::Net::kReceiveQueue); });
  }
  for (size_t i = 0; i < transports_.size(); ++i) {
    auto* transport = transports_[i].get();
    mmio_.add(virtioBase(i), dev::virtio::kTransportSize, *transport);
    for (uint16_t q = 0; q < transport->queueCount(); ++q) {
      vm_.addIoeventfd(Gpa{virtioBase(i) + dev::virtio::kNotifyOffset}, q, transport->notifyFd(q));
      io_.add(transport->notifyFd(q), [transport, q] {
        uint64_t count = 0;
        [[maybe_unused]] auto n = ::read(transport->notifyFd(q), &count, sizeof count);
        transport->notified(q);
      });
    }
  }
}

std::string Machine::guestCmdline() const {
  std::string cmdline = config_.cmdline;
  for (size_t i = 0; i < transports_.size(); ++i)
    cmdline += concat(cmdline.empty() ? "" : " ", "virtio_mmio.device=4K@0x", std::hex, virtioBase(i), std::dec, ":",
                      kVirtioFirstGsi + i);
  return cmdline;
}

MachineShape Machine::shape() const {
  MachineShape shape;
  for (const auto& t : transports_) shape.devices.push_back(t->identity());
  auto cpuid = kvm::guestCpuid(system_.supportedCpuid(), 0, config_.cpus);
  auto* bytes = reinterpret_cast<const uint8_t*>(cpuid.entries.data());
  shape.cpuid.assign(bytes, bytes + cpuid.entries.size() * sizeof(kvm_cpuid_entry2));
  shape.msrs = msrIndices_;
  return shape;
}

MachineState Machine::capture() {
  require(paused_ || !started_, "capture() needs a paused machine");
  bool saved = std::exchange(savedAtPause_, false);
  MachineState state;
  state.memorySize = memory_.size();
  state.regions = memory_.regions();
  state.cmdline = config_.cmdline;
  state.serial = serial_.save();
  for (const auto& t : transports_) state.virtio.push_back(t->save());
  for (size_t i = 0; i < vcpus_.size(); ++i)
    state.vcpus.push_back(saved ? runners_[i]->savedState() : vcpus_[i]->save(msrIndices_));
  state.vm = vm_.save();
  return state;
}

void Machine::restore(const MachineState& state) {
  require(!started_, "restore() needs a machine that has not started");
  require(state.memorySize == memory_.size() && state.vcpus.size() == vcpus_.size(), "state of another shape");
  require(state.virtio.size() == transports_.size(), "state with ", state.virtio.size(), " virtio devices for ",
          transports_.size());
  // start() follows: prepared vCPU threads wake now, while the state goes in, rather than then.
  for (auto& r : runners_) r->expectResume();
  serial_.restore(state.serial);
  for (size_t i = 0; i < transports_.size(); ++i) transports_[i]->restore(state.virtio[i]);
  vm_.restore(state.vm);
  for (size_t i = 0; i < vcpus_.size(); ++i) vcpus_[i]->restore(state.vcpus[i]);
  // A notification the guest sent just before the capture was never seen by the device: look at
  // every queue once (QEMU's post_load and Firecracker's kick do the same).
  for (auto& t : transports_) t->kickAll();
}

Machine::~Machine() {
  stop();
  console_.stopInput();
  for (auto& r : runners_) r->requestStop();
  idlePort_.wake();
  for (auto& r : runners_) {
    try {
      r->join();
    } catch (const std::exception& e) {
      log::error("vcpu thread failed: ", e.what());
    }
  }
}

void Machine::createThreads(VcpuRunner::Start how) {
  for (auto& vcpu : vcpus_)
    runners_.push_back(std::make_unique<VcpuRunner>(*vcpu, [this](kvm::Vcpu& v) { return handleExit(v); }, msrIndices_));
  io_.start();
  if (how == VcpuRunner::Start::Parked) io_.pause();
  for (auto& r : runners_) r->start(how);
}

void Machine::prepareStart() {
  require(!started_ && runners_.empty(), "start prepared for a machine that has its threads");
  for (auto& vcpu : vcpus_) vcpu->readInitialState(msrIndices_);
  createThreads(VcpuRunner::Start::Parked);
}

void Machine::start() {
  require(!started_, "machine started twice");
  started_ = true;
  // A restored guest (snapshot, migration) may sit behind another tap now: tell the network.
  if (!image_)
    for (auto& net : nets_) net->announce();
  startedAt_ = std::chrono::system_clock::now();
  if (runners_.empty()) {
    createThreads(VcpuRunner::Start::Running);
  } else {  // prepared
    io_.resume();
    for (auto& r : runners_) r->resume();
  }
  console_.startInput([this](std::span<const uint8_t> bytes) { return serial_.receive(bytes); });
}

// The io thread first: once it has drained, no device uses a buffer or raises an interrupt, so
// the LAPIC each vCPU saves as it parks holds every interrupt raised for a buffer the captured
// memory shows used. (The other way round, a request completed between a vCPU's save and the io
// thread's pause left its used entry in memory and its interrupt out of the capture: the
// interrupt_state test lost one in every few dozen restores.) Notifications the vCPUs make
// meanwhile wait in their eventfds: a resume serves them, a restore kicks every queue.
void Machine::pause(PauseFor why) {
  if (paused_) return;
  savedAtPause_ = why == PauseFor::Capture && started_ && !runners_.empty();
  io_.pause();
  for (auto& r : runners_) r->requestPause(savedAtPause_ ? VcpuRunner::Save::State : VcpuRunner::Save::No);
  idlePort_.wake();  // a vCPU sleeping in the idle port comes back to KVM_RUN and parks
  for (auto& r : runners_) r->waitParked();
  paused_ = true;
}

void Machine::resume() {
  if (!paused_) return;
  savedAtPause_ = false;
  io_.resume();
  for (auto& r : runners_) r->resume();
  paused_ = false;
}

bool Machine::emitOutput(const HeldOutput& output) {
  if (output.channel == consoleSink_.channel()) {
    gate_.write(consoleSink_, output.bytes);
    return true;
  }
  for (auto& sink : tapSinks_)
    if (sink->channel() == output.channel) {
      gate_.write(*sink, output.bytes, true);
      return true;
    }
  return false;
}

DirtyTracker& Machine::startDirtyTracking() {
  if (!dirty_) {
    dirty_ = std::make_unique<DirtyTracker>(vm_, memory_);
    dirty_->start();
  }
  return *dirty_;
}

void Machine::stopDirtyTracking() { dirty_.reset(); }

void Machine::throttle(unsigned percent) {
  if (percent == 0) {
    throttle_.reset();
  } else if (throttle_) {
    throttle_->set(percent);
  } else {
    std::vector<VcpuRunner*> runners;
    for (auto& r : runners_) runners.push_back(r.get());
    throttle_ = std::make_unique<VcpuThrottle>(std::move(runners), percent);
  }
}

unsigned Machine::throttlePercent() const { return throttle_ ? throttle_->percent() : 0; }

void Machine::stop() { finish(MachineExit{MachineExit::Kind::Stopped, 0, "stopped"}); }

void Machine::finish(MachineExit exit) {
  {
    std::lock_guard lock(exitMutex_);
    if (exit_) return;
    exit_ = std::move(exit);
  }
  for (auto& r : runners_) r->requestStop();
  idlePort_.wake();
  exitSignal_.signal();
}

MachineExit Machine::wait() {
  for (auto& r : runners_) {
    try {
      r->join();
    } catch (const std::exception& e) {
      finish(MachineExit{MachineExit::Kind::HostError, 1, concat("vcpu thread failed: ", e.what())});
    }
  }
  console_.stopInput();
  std::lock_guard lock(exitMutex_);
  return exit_.value_or(MachineExit{});
}

std::function<void()> Machine::raiserFor(size_t index) {
  // A guest that polls instead (it idles in the idle port) is woken too.
  return [this, gsi = kVirtioFirstGsi + static_cast<uint32_t>(index)] {
    vm_.pulseIrqLine(gsi);
    idlePort_.wake();
  };
}

Machine::Privilege Machine::privilege() const {
  Privilege p;
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    p.userExits += exitCounts_[i].user.load(std::memory_order_relaxed);
    p.kernelExits += exitCounts_[i].kernel.load(std::memory_order_relaxed);
    p.lastCpl.push_back(exitCounts_[i].lastCpl.load(std::memory_order_relaxed));
  }
  return p;
}

bool Machine::handleExit(kvm::Vcpu& vcpu) {
  kvm_run& run = vcpu.runPage();
  // The run page carries the segment registers at every exit (Vcpu asks for them): SS.DPL is the CPL.
  ExitCounts& counts = exitCounts_[vcpu.index()];
  int cpl = run.s.regs.sregs.ss.dpl;
  (cpl == 3 ? counts.user : counts.kernel).fetch_add(1, std::memory_order_relaxed);
  counts.lastCpl.store(cpl, std::memory_order_relaxed);
  switch (run.exit_reason) {
    case KVM_EXIT_IO: {
      uint8_t* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
      for (uint32_t i = 0; i < run.io.count; ++i, data += run.io.size) {
        std::span bytes(data, run.io.size);
        if (run.io.direction == KVM_EXIT_IO_OUT)
          pio_.write(run.io.port, bytes);
        else
          pio_.read(run.io.port, bytes);
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      std::span data(run.mmio.data, run.mmio.len);
      if (run.mmio.is_write)
        mmio_.write(run.mmio.phys_addr, data);
      else
        mmio_.read(run.mmio.phys_addr, data);
      return true;
    }
    case KVM_EXIT_HLT:
      return true;
    case KVM_EXIT_SHUTDOWN:
      finish({MachineExit::Kind::GuestFault, 1, concat("the guest triple-faulted: ", vcpu.describePosition())});
      return false;
    case KVM_EXIT_INTERNAL_ERROR: {
      // kvm_pvm ends the VM this way on int n, int3, iretq, cmpxchg16b and xrstor (DESIGN.md).
      std::string detail = run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                               ? "KVM could not emulate an instruction"
                               : concat("KVM internal error ", run.internal.suberror);
      finish({MachineExit::Kind::GuestFault, 1, concat(detail, ": ", vcpu.describePosition())});
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY:
      finish({MachineExit::Kind::GuestFault, 1,
              concat("KVM could not enter the guest (hardware reason 0x", std::hex,
                     run.fail_entry.hardware_entry_failure_reason, std::dec, "): ", vcpu.describePosition())});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      finish({MachineExit::Kind::PowerOff, 0, "the guest asked for a system event (shutdown or reset)"});
      return false;
    default:
      finish({MachineExit::Kind::HostError, 1,
              concat("unexpected KVM exit reason ", run.exit_reason, ": ", vcpu.describePosition())});
      return false;
  }
}

}  // namespace tandem
