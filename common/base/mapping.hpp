// Mapping: owns one mmap()ed range and unmaps it once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace tandem {

class Mapping {
public:
  Mapping() = default;
  Mapping(void* address, size_t size) : address_(address), size_(size) {}
  Mapping(Mapping&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  // Private anonymous memory, not reserved up front (guest RAM is touched lazily).
  static Mapping anonymous(size_t size);
  // A shared mapping of fd (the vCPU run page, for instance).
  static Mapping shared(int fd, size_t size, int protection);

  uint8_t* data() const { return static_cast<uint8_t*>(address_); }
  size_t size() const { return size_; }

private:
  void* address_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tandem
