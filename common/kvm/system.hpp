// System: /dev/kvm itself. The only place (with Vm and Vcpu) that calls KVM ioctls.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/fd.hpp"

namespace tandem::kvm {

// KVM_GET_SUPPORTED_CPUID's answer, in a form that can be copied and edited.
struct CpuidEntries {
  std::vector<kvm_cpuid_entry2> entries;
  kvm_cpuid_entry2* find(uint32_t function, uint32_t index = 0);
};

class System {
public:
  // Opens /dev/kvm and checks the API version and the capabilities tandem relies on.
  System();

  int fd() const { return fd_.get(); }
  int checkExtension(long capability) const;
  int maxVcpus() const { return maxVcpus_; }
  size_t vcpuMmapSize() const { return vcpuMmapSize_; }
  const CpuidEntries& supportedCpuid() const { return supportedCpuid_; }
  // KVM_GET_MSR_INDEX_LIST: the MSRs KVM says a VMM should save and restore.
  const std::vector<uint32_t>& msrIndexList() const { return msrIndexList_; }

private:
  Fd fd_;
  int maxVcpus_ = 0;
  size_t vcpuMmapSize_ = 0;
  CpuidEntries supportedCpuid_;
  std::vector<uint32_t> msrIndexList_;
};

// True when /dev/kvm exists and can be opened for reading and writing.
bool kvmAvailable();

}  // namespace tandem::kvm
