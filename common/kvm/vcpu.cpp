#include "kvm/vcpu.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <utility>
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
  runPage().kvm_valid_regs = kExitRegs;
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
  call(abi::kSetCpuid2, header, "KVM_SET_CPUID2");
}

void Vcpu::setRunnable() {
  kvm_mp_state state{KVM_MP_STATE_RUNNABLE};
  call(KVM_SET_MP_STATE, &state, "KVM_SET_MP_STATE");
}

kvm_regs Vcpu::regs() const {
  kvm_regs r{};
  call(KVM_GET_REGS, &r, "KVM_GET_REGS");
  return r;
}

void Vcpu::setRegs(const kvm_regs& r) {
  call(KVM_SET_REGS, &r, "KVM_SET_REGS");
}

kvm_sregs Vcpu::sregs() const {
  kvm_sregs s{};
  call(KVM_GET_SREGS, &s, "KVM_GET_SREGS");
  return s;
}

void Vcpu::setSregs(const kvm_sregs& s) {
  call(KVM_SET_SREGS, &s, "KVM_SET_SREGS");
}

namespace {

std::vector<uint8_t> msrBuffer(const std::vector<kvm_msr_entry>& entries) {
  std::vector<uint8_t> buffer(sizeof(abi::MsrsHeader) + entries.size() * sizeof(kvm_msr_entry));
  auto* header = reinterpret_cast<abi::MsrsHeader*>(buffer.data());
  header->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(header + 1, entries.data(), entries.size() * sizeof(kvm_msr_entry));
  return buffer;
}

}  // namespace

std::vector<uint32_t> Vcpu::readableMsrs(const std::vector<uint32_t>& listed) const {
  std::vector<uint32_t> readable;
  for (uint32_t index : listed) {
    auto buffer = msrBuffer({kvm_msr_entry{index, 0, 0}});
    if (::ioctl(fd_.get(), abi::kGetMsrs, buffer.data()) == 1) readable.push_back(index);
  }
  return readable;
}

// Capture order (Firecracker's, for the same reasons): MP_STATE first (reading it lets the LAPIC
// accept a pending INIT or SIPI, which changes the registers), VCPU_EVENTS last, so that nothing
// read in between can change what the events say is pending.
VcpuState Vcpu::save(const std::vector<uint32_t>& msrIndices) const {
  VcpuState s;
  kvm_mp_state mp{};
  call(KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
  s.mpState = mp.mp_state;
  call(KVM_GET_REGS, &s.regs, "KVM_GET_REGS");
  call(KVM_GET_SREGS, &s.sregs, "KVM_GET_SREGS");
  saveAfterRegs(s, msrIndices, Xsave::Now);
  call(KVM_GET_VCPU_EVENTS, &s.events, "KVM_GET_VCPU_EVENTS");
  return s;
}

// MP_STATE first, as above; REGS, SREGS and VCPU_EVENTS last, together (nothing read before them
// changes the registers), and XSAVE after them: the KVM_RUN that reads them loads the guest's FPU
// and puts it back, which may rewrite the XSAVE image's form (not what it means), so that a read
// before it would differ from any read after.
VcpuState Vcpu::saveOnRunThread(const std::vector<uint32_t>& msrIndices) {
  VcpuState s;
  kvm_mp_state mp{};
  call(KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
  s.mpState = mp.mp_state;
  saveAfterRegs(s, msrIndices, Xsave::Later);
  kvm_run& run = runPage();
  std::memset(&run.s.regs, 0, sizeof run.s.regs);  // KVM sets the interrupt bitmap's bits, never clears them
  run.kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
  uint8_t immediateExit = run.immediate_exit;
  run.immediate_exit = 1;
  int rc = ::ioctl(fd_.get(), KVM_RUN, 0);
  int error = errno;
  run.immediate_exit = immediateExit;
  run.kvm_valid_regs = kExitRegs;
  if (rc == 0 || error != EINTR) throwErrno(concat("KVM_RUN (to read the registers) on vcpu ", index_), rc == 0 ? EIO : error);
  s.regs = run.s.regs.regs;
  s.sregs = run.s.regs.sregs;
  s.events = run.s.regs.events;
  call(abi::kGetXsave, s.xsave.data(), "KVM_GET_XSAVE");
  return s;
}

void Vcpu::saveAfterRegs(VcpuState& s, const std::vector<uint32_t>& msrIndices, Xsave xsave) const {
  if (xsave == Xsave::Now) call(abi::kGetXsave, s.xsave.data(), "KVM_GET_XSAVE");
  call(KVM_GET_XCRS, &s.xcrs, "KVM_GET_XCRS");
  call(KVM_GET_DEBUGREGS, &s.debugRegs, "KVM_GET_DEBUGREGS");
  call(KVM_GET_LAPIC, &s.lapic, "KVM_GET_LAPIC");

  std::vector<kvm_msr_entry> entries;
  for (uint32_t index : msrIndices) entries.push_back(kvm_msr_entry{index, 0, 0});
  auto buffer = msrBuffer(entries);
  int read = call(abi::kGetMsrs, buffer.data(), "KVM_GET_MSRS");
  assertThat(read == static_cast<int>(entries.size()), "KVM_GET_MSRS read ", read, " of ", entries.size(), " MSRs");
  s.msrs.resize(entries.size());
  std::memcpy(s.msrs.data(), buffer.data() + sizeof(abi::MsrsHeader), entries.size() * sizeof(kvm_msr_entry));
}

void Vcpu::readInitialState(const std::vector<uint32_t>& msrIndices) { initial_ = save(msrIndices); }

// Restore order: MP_STATE, REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, MSRS, VCPU_EVENTS. SREGS
// before XSAVE and MSRS (CR4 and EFER decide what they may hold); LAPIC before MSRS (the TSC
// deadline MSR needs the LAPIC's mode); VCPU_EVENTS last (it may re-inject what the rest set up).
// A part the vCPU already holds (readInitialState) is left alone: setting it again changes nothing.
void Vcpu::restore(const VcpuState& s) {
  const std::optional<VcpuState> initial = std::exchange(initial_, std::nullopt);
  auto differs = [&](auto part) { return !initial || !sameBytes((*initial).*part, s.*part); };
  if (!initial || initial->mpState != s.mpState) {
    kvm_mp_state mp{s.mpState};
    call(KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
  }
  if (differs(&VcpuState::regs)) call(KVM_SET_REGS, &s.regs, "KVM_SET_REGS");
  if (differs(&VcpuState::sregs)) call(KVM_SET_SREGS, &s.sregs, "KVM_SET_SREGS");
  if (!initial || initial->xsave != s.xsave) call(abi::kSetXsave, s.xsave.data(), "KVM_SET_XSAVE");
  if (differs(&VcpuState::xcrs)) call(KVM_SET_XCRS, &s.xcrs, "KVM_SET_XCRS");
  if (differs(&VcpuState::debugRegs)) call(KVM_SET_DEBUGREGS, &s.debugRegs, "KVM_SET_DEBUGREGS");
  if (differs(&VcpuState::lapic)) call(KVM_SET_LAPIC, &s.lapic, "KVM_SET_LAPIC");
  std::vector<kvm_msr_entry> msrs;
  bool sameList = initial && initial->msrs.size() == s.msrs.size();
  for (size_t i = 0; i < s.msrs.size(); ++i)
    if (!sameList || initial->msrs[i].index != s.msrs[i].index || initial->msrs[i].data != s.msrs[i].data)
      msrs.push_back(s.msrs[i]);
  if (!msrs.empty()) {
    auto buffer = msrBuffer(msrs);
    int written = call(abi::kSetMsrs, buffer.data(), "KVM_SET_MSRS");
    if (written != static_cast<int>(msrs.size()))
      throw Error(ErrorKind::Failed, concat("KVM_SET_MSRS on vcpu ", index_, " refused MSR 0x", std::hex,
                                            msrs[static_cast<size_t>(written)].index));
  }
  if (differs(&VcpuState::events)) call(KVM_SET_VCPU_EVENTS, &s.events, "KVM_SET_VCPU_EVENTS");
}

int Vcpu::call(unsigned long request, const void* argument, const char* name) const {
  return checkSys(::ioctl(fd_.get(), request, argument), concat(name, " on vcpu ", index_));
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
