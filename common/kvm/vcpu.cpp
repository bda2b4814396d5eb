#include "kvm/vcpu.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <iomanip>
#include <sstream>
#include <vector>

#include "base/error.hpp"
#include "kvm/abi.hpp"
#include "kvm/system.hpp"
#include "kvm/vm.hpp"

namespace tandem::kvm {

Vcpu::Vcpu(Vm& vm, uint32_t index) : index_(index) {
  fd_.reset(checkSys(::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)),
                     concat("KVM_CREATE_VCPU ", index)));
  runPage_ = Mapping::shared(fd_.get(), vm.system().vcpuMmapSize(), PROT_READ | PROT_WRITE);
}

Vcpu::RunResult Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return RunResult::Exited;
  if (errno == EINTR) return RunResult::Interrupted;
  throwErrno(concat("KVM_RUN on vcpu ", index_), errno);
}

void Vcpu::setCpuid(const CpuidEntries& cpuid) {
  std::vector<uint8_t> buffer(sizeof(abi::CpuidHeader) + cpuid.entries.size() * sizeof(kvm_cpuid_entry2));
  auto* header = reinterpret_cast<abi::CpuidHeader*>(buffer.data());
  header->nent = static_cast<uint32_t>(cpuid.entries.size());
  std::copy(cpuid.entries.begin(), cpuid.entries.end(), reinterpret_cast<kvm_cpuid_entry2*>(header + 1));
  checkSys(::ioctl(fd_.get(), abi::kSetCpuid2, header), concat("KVM_SET_CPUID2 on vcpu ", index_));
}

void Vcpu::setRunnable() {
  kvm_mp_state state{KVM_MP_STATE_RUNNABLE};
  checkSys(::ioctl(fd_.get(), KVM_SET_MP_STATE, &state), concat("KVM_SET_MP_STATE on vcpu ", index_));
}

kvm_regs Vcpu::regs() const {
  kvm_regs r{};
  checkSys(::ioctl(fd_.get(), KVM_GET_REGS, &r), concat("KVM_GET_REGS on vcpu ", index_));
  return r;
}

void Vcpu::setRegs(const kvm_regs& r) {
  checkSys(::ioctl(fd_.get(), KVM_SET_REGS, &r), concat("KVM_SET_REGS on vcpu ", index_));
}

kvm_sregs Vcpu::sregs() const {
  kvm_sregs s{};
  checkSys(::ioctl(fd_.get(), KVM_GET_SREGS, &s), concat("KVM_GET_SREGS on vcpu ", index_));
  return s;
}

void Vcpu::setSregs(const kvm_sregs& s) {
  checkSys(::ioctl(fd_.get(), KVM_SET_SREGS, &s), concat("KVM_SET_SREGS on vcpu ", index_));
}

std::string Vcpu::describePosition() const {
  std::ostringstream out;
  kvm_regs r{};
  kvm_sregs s{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &r) < 0 || ::ioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) {
    out << "vcpu " << index_ << " at an unknown instruction pointer";
    return out.str();
  }
  out << "vcpu " << index_ << " at rip=0x" << std::hex << r.rip << " (cs=0x" << s.cs.selector
      << (s.cs.l ? ", 64-bit" : s.cs.db ? ", 32-bit" : ", 16-bit") << ")";
  return out.str();
}

}  // namespace tandem::kvm
