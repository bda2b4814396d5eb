// Vcpu: one KVM vCPU and its run page. Used by exactly one thread (its VcpuRunner) once running.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>

#include "base/fd.hpp"
#include "base/mapping.hpp"
#include "kvm/state.hpp"

namespace tandem::kvm {

class Vm;
struct CpuidEntries;

class Vcpu {
public:
  Vcpu(Vm& vm, uint32_t index);

  // At every exit KVM leaves the segment registers on the run page (run.s.regs.sregs), so that the
  // VMM sees at which privilege level the guest left (Machine::privilege()).
  static constexpr uint64_t kExitRegs = KVM_SYNC_X86_SREGS;

  uint32_t index() const { return index_; }
  kvm_run& runPage() { return *reinterpret_cast<kvm_run*>(runPage_.data()); }

  enum class RunResult {
    Exited,       // runPage().exit_reason says why
    Interrupted,  // KVM_RUN returned EINTR: a kick (signal or immediate_exit)
  };
  // Enters the guest until the next exit to user space.
  RunResult run();

  void setCpuid(const CpuidEntries& cpuid);
  // With the in-kernel LAPIC, KVM holds every vCPU but 0 in "wait for INIT/SIPI"; tandem starts
  // each vCPU itself, so it makes them runnable.
  void setRunnable();
  kvm_regs regs() const;
  void setRegs(const kvm_regs& regs);
  kvm_sregs sregs() const;
  void setSregs(const kvm_sregs& sregs);

  // The vCPU is parked (its last KVM_RUN returned EINTR, so no I/O is half done). msrIndices are
  // the MSRs to save: readableMsrs() of any vCPU of this VM.
  VcpuState save(const std::vector<uint32_t>& msrIndices) const;
  // The same, only on the thread that runs this vCPU (a KVM_RUN from another thread moves the vCPU
  // to it, which costs an RCU grace period): REGS, SREGS and VCPU_EVENTS come from one KVM_RUN that
  // enters nothing (immediate_exit) and leaves them on the run page, one ioctl instead of three.
  VcpuState saveOnRunThread(const std::vector<uint32_t>& msrIndices);
  // Optional, on a fresh vCPU, ahead of restore(): reads what KVM holds for it, so that restore()
  // sets only the parts that differ (each vCPU ioctl costs about 15 us on a nested host, and a
  // migration's downtime waits for them).
  void readInitialState(const std::vector<uint32_t>& msrIndices);
  // Once, on a fresh vCPU that has not run, after setCpuid().
  void restore(const VcpuState& state);
  // Those of the MSRs KVM lists as saveable that this vCPU can actually read.
  std::vector<uint32_t> readableMsrs(const std::vector<uint32_t>& listed) const;

  // "rip=0x... (cs=...)": where the guest is, for error messages.
  std::string describePosition() const;

private:
  enum class Xsave { Now, Later };  // Later: the caller reads it itself (saveOnRunThread)
  void saveAfterRegs(VcpuState& s, const std::vector<uint32_t>& msrIndices, Xsave xsave) const;  // XSAVE..MSRS
  // ioctl on this vCPU's fd; throws naming the request (`name`) and the vCPU when it fails.
  int call(unsigned long request, const void* argument, const char* name) const;

  uint32_t index_;
  Fd fd_;
  Mapping runPage_;
  std::optional<VcpuState> initial_;  // readInitialState(), until restore()
};

}  // namespace tandem::kvm
