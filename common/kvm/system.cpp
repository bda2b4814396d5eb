#include "kvm/system.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "kvm/abi.hpp"

namespace tandem::kvm {

kvm_cpuid_entry2* CpuidEntries::find(uint32_t function, uint32_t index) {
  for (auto& e : entries)
    if (e.function == function && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == index)) return &e;
  return nullptr;
}

namespace {

CpuidEntries querySupportedCpuid(int kvmFd) {
  // KVM says E2BIG until the buffer is large enough.
  for (uint32_t n = 256;; n *= 2) {
    std::vector<uint8_t> buffer(sizeof(abi::CpuidHeader) + n * sizeof(kvm_cpuid_entry2));
    auto* header = reinterpret_cast<abi::CpuidHeader*>(buffer.data());
    auto* entries = reinterpret_cast<kvm_cpuid_entry2*>(header + 1);
    header->nent = n;
    if (::ioctl(kvmFd, abi::kGetSupportedCpuid, header) == 0) return CpuidEntries{{entries, entries + header->nent}};
    if (errno != E2BIG || n >= 4096) throwErrno("KVM_GET_SUPPORTED_CPUID", errno);
  }
}

std::vector<uint32_t> queryMsrIndexList(int kvmFd) {
  for (uint32_t n = 256;; n *= 2) {
    std::vector<uint8_t> buffer(sizeof(abi::MsrListHeader) + n * sizeof(uint32_t));
    auto* header = reinterpret_cast<abi::MsrListHeader*>(buffer.data());
    auto* indices = reinterpret_cast<uint32_t*>(header + 1);
    header->nmsrs = n;
    if (::ioctl(kvmFd, abi::kGetMsrIndexList, header) == 0) return {indices, indices + header->nmsrs};
    if (errno != E2BIG || n >= 16384) throwErrno("KVM_GET_MSR_INDEX_LIST", errno);
  }
}

}  // namespace

System::System() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    throw Error(ErrorKind::Failed,
                concat("cannot open /dev/kvm (", std::strerror(e), "): tandem needs KVM and permission to use it"), e);
  }
  fd_.reset(fd);
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    throw Error(ErrorKind::Failed, concat("/dev/kvm speaks API version ", version, ", tandem needs ", KVM_API_VERSION));
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_USER_MEMORY, KVM_CAP_EXT_CPUID}) {
    if (checkExtension(cap) <= 0)
      throw Error(ErrorKind::Failed, concat("/dev/kvm lacks capability ", cap, " that tandem needs"));
  }
  maxVcpus_ = checkExtension(KVM_CAP_MAX_VCPUS);
  if (maxVcpus_ <= 0) maxVcpus_ = checkExtension(KVM_CAP_NR_VCPUS);
  vcpuMmapSize_ = static_cast<size_t>(checkSys(::ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE"));
  supportedCpuid_ = querySupportedCpuid(fd);
  msrIndexList_ = queryMsrIndexList(fd);
}

int System::checkExtension(long capability) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability); }

bool kvmAvailable() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

}  // namespace tandem::kvm
