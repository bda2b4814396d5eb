#include "base/mapping.hpp"

#include <sys/mman.h>

#include <cstdio>
#include <cstring>

#include "base/error.hpp"

namespace tandem {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    this->~Mapping();
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (address_ && ::munmap(address_, size_) < 0)
    std::fprintf(stderr, "tandem: munmap failed: %s\n", std::strerror(errno));
}

Mapping Mapping::anonymous(size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throwErrno(concat("mmap of ", size, " bytes"), errno);
  return Mapping(p, size);
}

Mapping Mapping::shared(int fd, size_t size, int protection) {
  void* p = ::mmap(nullptr, size, protection, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throwErrno("mmap of a shared fd", errno);
  return Mapping(p, size);
}

}  // namespace tandem
