// The CPUID a guest vCPU sees: what KVM supports, with this vCPU's APIC id and topology filled in.
#pragma once

#include <cstdint>

#include "kvm/system.hpp"

namespace tandem::kvm {

CpuidEntries guestCpuid(const CpuidEntries& supported, uint32_t vcpuIndex, uint32_t vcpuCount);

}  // namespace tandem::kvm
