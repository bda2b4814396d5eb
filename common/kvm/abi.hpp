// KVM structures that end in a flexible array, spelled out for C++.
//
// The uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which in C++ (g++ 12, Debian 12
// headers) wraps them in a struct holding an empty struct: sizeof(kvm_cpuid2) becomes 12 instead of
// 8 and `entries` moves to offset 12. Both the ioctl numbers (they encode the size) and the array
// offset are then wrong. Here are the kernel's real layouts and the ioctl numbers built from them.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace tandem::kvm::abi {

struct CpuidHeader {  // struct kvm_cpuid2 without entries[]
  uint32_t nent;
  uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);

struct MsrListHeader {  // struct kvm_msr_list without indices[]
  uint32_t nmsrs;
};
static_assert(sizeof(MsrListHeader) == 4);

struct MsrsHeader {  // struct kvm_msrs without entries[]
  uint32_t nmsrs;
  uint32_t pad;
};
static_assert(sizeof(MsrsHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);

struct Xsave {  // struct kvm_xsave without extra[]
  uint32_t region[1024];
};
static_assert(sizeof(Xsave) == 4096);

constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, Xsave);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, Xsave);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

}  // namespace tandem::kvm::abi
