#include "secondary/prepared_memory.hpp"

#include <chrono>

#include "base/log.hpp"

namespace tandem {

void PreparedMemory::prepare() {
  if (size_ == 0 || memory_) return;
  auto start = std::chrono::steady_clock::now();
  // Huge pages: the host zeroes them now rather than during the migration, and the guest then
  // runs with fewer TLB misses (see GuestMemory::Pages for why unprepared memory is not huge).
  GuestMemory memory(size_, GuestMemory::Pages::Huge);
  memory.populate();
  memory_.emplace(std::move(memory));
  log::info("prepared ", size_ / kMiB, " MiB of guest memory in ",
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(), " ms");
}

GuestMemory PreparedMemory::take(uint64_t size) {
  tookPrepared_ = memory_ && size == size_;
  if (tookPrepared_) {
    GuestMemory memory = std::move(*memory_);
    memory_.reset();
    return memory;
  }
  if (memory_)
    log::warn("the guest has ", size / kMiB, " MiB of memory, not the ", size_ / kMiB,
              " MiB prepared (--prealloc): it is received into new memory");
  return GuestMemory(size, GuestMemory::Pages::Small);
}

}  // namespace tandem
