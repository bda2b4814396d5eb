// GuestMemory: the guest's RAM, where it lives in the host, and the only way the host writes into it.
//
// Layout (guest-physical):   [0, low)  RAM   low = min(size, 3 GiB)
//                            [3 GiB, 4 GiB)  hole for devices (MMIO) and the TSS
//                            [4 GiB, 4 GiB + size - low)  RAM, when size > 3 GiB
// All of it is one host mapping, so a region's host address is the mapping plus its offset.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/mapping.hpp"
#include "base/units.hpp"

namespace tandem {

class GuestMemory {
public:
  static constexpr uint64_t kMinimumSize = 16 * kMiB;
  static constexpr uint64_t kHoleStart = 3 * kGiB;
  static constexpr uint64_t kHoleEnd = 4 * kGiB;

  struct Region {
    Gpa start;
    uint64_t size = 0;
    uint64_t hostOffset = 0;  // from the start of the mapping
    Gpa end() const { return start + size; }
  };

  // The regions for a guest of `size` bytes (a multiple of the page size, at least kMinimumSize).
  static std::vector<Region> layout(uint64_t size);

  // Huge: transparent huge pages, for a guest that boots here, and for a restore from a snapshot
  // file, which fills memory in long runs (restoring 512 MiB written: 140 ms with huge pages,
  // 280 ms without). Small: 4 KiB pages, for a migration target, filled page by page from the
  // network while the source runs on the same cores: there the host zeroing each 2 MiB page on
  // its first touch took 44% of the CPU (round 0 of a 256 MiB working set: 1.2 s with huge pages,
  // 0.27 s without).
  enum class Pages { Huge, Small };
  explicit GuestMemory(uint64_t size, Pages pages = Pages::Huge);
  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;

  // Has the host back every page now (zeroed), as a guest's first touches would one by one: for
  // memory prepared before a guest arrives (tandem standby --prealloc). Takes a while (on this
  // machine 0.3 s a GiB, up to 2 s when the host has to find the memory first).
  void populate();

  uint64_t size() const { return mapping_.size(); }
  const std::vector<Region>& regions() const { return regions_; }
  uint8_t* hostBase() const { return mapping_.data(); }
  // Highest guest-physical address that is RAM, plus one.
  Gpa end() const { return regions_.back().end(); }

  // Host address of [gpa, gpa + length); throws if any of it is not RAM.
  uint8_t* hostAddress(Gpa gpa, uint64_t length) const;
  // Every host-side write into guest memory goes through here, and marks what it wrote dirty.
  void write(Gpa gpa, std::span<const uint8_t> bytes);
  void zero(Gpa gpa, uint64_t length);

  // Pages are numbered 0..size()/4096-1 in host order (region by region); a page's number is
  // its offset in the host mapping / 4096.
  uint64_t pageCount() const { return size() / kPageSize; }
  Gpa gpaOfPage(uint64_t page) const;
  // The page holding gpa; nullopt if gpa is not RAM.
  std::optional<uint64_t> pageOfGpa(Gpa gpa) const;
  // The page of guest frame (gpa / 4096) as a peer names it; nullopt for any frame that is not RAM,
  // however large (no overflow into a valid address).
  std::optional<uint64_t> pageOfFrame(uint64_t frame) const {
    return frame < (end().value + kPageSize - 1) / kPageSize ? pageOfGpa(Gpa{frame * kPageSize}) : std::nullopt;
  }
  // Gives pages [page, page + count) back to the host: they read as zeros (or fault, under
  // userfaultfd) until written again. Not marked dirty: nothing of the guest's was written.
  void discard(uint64_t page, uint64_t count);
  // Host writes mark pages here (atomically; any thread). takeHostDirty() swaps the map for an
  // empty one and ORs it into bitmap (words of 64 pages).
  void takeHostDirty(std::vector<uint64_t>& bitmap);
  void read(Gpa gpa, std::span<uint8_t> out) const;

  // One flag per page of region: 0 where the host never backed the page (it reads as zeros and
  // need not be looked at), 1 where it may hold data (resident or swapped out). From
  // /proc/self/pagemap, so a 1 GiB guest that touched 4 MiB is scanned in 4 MiB, not 1 GiB.
  std::vector<uint8_t> backedPages(const Region& region) const;

private:
  void markDirty(uint64_t hostOffset, uint64_t length);

  Mapping mapping_;
  std::vector<Region> regions_;
  std::unique_ptr<std::atomic<uint64_t>[]> hostDirty_;
};

}  // namespace tandem
