#include "kvm/cpuid.hpp"

namespace tandem::kvm {

CpuidEntries guestCpuid(const CpuidEntries& supported, uint32_t vcpuIndex, uint32_t vcpuCount) {
  CpuidEntries cpuid = supported;
  for (auto& e : cpuid.entries) {
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
        e.ebx = (e.ebx & 0x0000ffffu) | ((vcpuIndex & 0xffu) << 24) | ((vcpuCount & 0xffu) << 16);
        e.ecx |= 1u << 31;  // running under a hypervisor
        if (vcpuCount > 1) e.edx |= 1u << 28;  // HTT: more than one logical processor
        break;
      case 0xb:
      case 0x1f:
        e.edx = vcpuIndex;  // x2APIC id
        break;
      default:
        break;
    }
  }
  return cpuid;
}

}  // namespace tandem::kvm
