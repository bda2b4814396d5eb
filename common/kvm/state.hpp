// What KVM holds of a vCPU and of a VM, as plain values (copyable, comparable, no fds).
// Kernel structures are kept as the kernel defines them; state/ converts them to the schema.
#pragma once

#include <linux/kvm.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tandem::kvm {

template <typename T>
bool sameBytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

struct VcpuState {
  uint32_t mpState = 0;
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::array<uint32_t, 1024> xsave{};  // struct kvm_xsave's region: legacy FPU/SSE area and XSAVE components
  kvm_xcrs xcrs{};
  kvm_debugregs debugRegs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;  // every MSR of KVM_GET_MSR_INDEX_LIST that can be read
  kvm_vcpu_events events{};

  bool operator==(const VcpuState& o) const;
};

struct VmState {
  kvm_pic_state picMaster{};
  kvm_pic_state picSlave{};
  kvm_ioapic_state ioapic{};
  kvm_pit_state2 pit{};
  uint64_t clockNs = 0;  // kvmclock: guest nanoseconds

  bool operator==(const VmState& o) const;
};

inline bool VcpuState::operator==(const VcpuState& o) const {
  return mpState == o.mpState && sameBytes(regs, o.regs) && sameBytes(sregs, o.sregs) && xsave == o.xsave &&
         sameBytes(xcrs, o.xcrs) && sameBytes(debugRegs, o.debugRegs) && sameBytes(lapic, o.lapic) &&
         std::equal(msrs.begin(), msrs.end(), o.msrs.begin(), o.msrs.end(),
                    [](const kvm_msr_entry& a, const kvm_msr_entry& b) { return a.index == b.index && a.data == b.data; }) &&
         sameBytes(events, o.events);
}

inline bool VmState::operator==(const VmState& o) const {
  return sameBytes(picMaster, o.picMaster) && sameBytes(picSlave, o.picSlave) && sameBytes(ioapic, o.ioapic) &&
         sameBytes(pit, o.pit) && clockNs == o.clockNs;
}

}  // namespace tandem::kvm
