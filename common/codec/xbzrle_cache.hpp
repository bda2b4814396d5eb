// XbzrleCache: the page contents the receiver is known to hold, by page number, so that the next
// send of a page can be an XBZRLE delta against them. When full, the least recently used goes.
//
//   slab_     one mapping of capacity/4096 slots of 4096 bytes, touched only as slots fill
//   slots_    per slot: its page and its neighbours in LRU order, by slot number; the last slot
//             is the list's sentinel:   sentinel <-> most recent <-> ... <-> least recent <-> sentinel
//   index_    page number -> slot
//   spare_    index nodes not in the index, each carrying a free slot's number
//
// Every index node is allocated in the constructor; put() and erase() move nodes between index_
// and spare_ (extract() / insert(node)), so nothing allocates after construction.
//
// Not thread-safe: the thread that encodes pages owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "base/mapping.hpp"
#include "base/units.hpp"

namespace tandem::codec {

class XbzrleCache {
public:
  // Room for capacityBytes / 4096 pages; 0 disables the cache (put() stores nothing).
  explicit XbzrleCache(uint64_t capacityBytes);
  XbzrleCache(const XbzrleCache&) = delete;
  XbzrleCache& operator=(const XbzrleCache&) = delete;

  // The cached 4096 bytes of page, now the most recently used, or nullptr; counts a hit or a
  // miss. The pointer is good until the next put() or erase().
  const uint8_t* find(uint64_t page);
  // Stores a copy of bytes (4096) as page, replacing any older copy, as the most recently used;
  // when the cache is full, the least recently used page makes room. bytes may be a find() result.
  void put(uint64_t page, const uint8_t* bytes);
  // Forgets page, if cached (for instance when the receiver's copy is no longer known).
  void erase(uint64_t page);

  size_t size() const { return index_.size(); }
  // How many pages fit.
  size_t capacity() const { return slotCount_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

private:
  using Index = std::unordered_map<uint64_t, uint32_t>;
  struct Slot {
    uint64_t page = 0;
    uint32_t prev = 0;  // towards the most recently used
    uint32_t next = 0;  // towards the least recently used
  };

  uint8_t* bytesOf(uint32_t slot) const { return slab_.data() + uint64_t{slot} * kPageSize; }
  void unlink(uint32_t slot);
  void pushFront(uint32_t slot);

  size_t slotCount_;
  uint32_t sentinel_;
  Mapping slab_;
  std::vector<Slot> slots_;
  Index index_;
  std::vector<Index::node_type> spare_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace tandem::codec
