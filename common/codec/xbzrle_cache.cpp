#include "codec/xbzrle_cache.hpp"

#include <cstring>
#include <limits>

#include "base/error.hpp"

namespace tandem::codec {

XbzrleCache::XbzrleCache(uint64_t capacityBytes) : slotCount_(capacityBytes / kPageSize) {
  if (slotCount_ >= std::numeric_limits<uint32_t>::max())
    failBadInput("an xbzrle cache of ", capacityBytes, " bytes is too large");
  sentinel_ = static_cast<uint32_t>(slotCount_);
  if (slotCount_ > 0) slab_ = Mapping::anonymous(slotCount_ * kPageSize);
  slots_.resize(slotCount_ + 1);
  slots_[sentinel_].prev = slots_[sentinel_].next = sentinel_;
  index_.reserve(slotCount_);
  spare_.reserve(slotCount_);
  // Backwards, so that slot 0 is handed out first.
  for (uint32_t slot = sentinel_; slot-- > 0;) {
    index_.emplace(slot, slot);
    spare_.push_back(index_.extract(slot));
  }
}

const uint8_t* XbzrleCache::find(uint64_t page) {
  auto it = index_.find(page);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  unlink(it->second);
  pushFront(it->second);
  return bytesOf(it->second);
}

void XbzrleCache::put(uint64_t page, const uint8_t* bytes) {
  if (slotCount_ == 0) return;
  // memmove, not memcpy: bytes may be this very slot.
  if (auto it = index_.find(page); it != index_.end()) {
    std::memmove(bytesOf(it->second), bytes, kPageSize);
    unlink(it->second);
    pushFront(it->second);
    return;
  }
  Index::node_type node;
  if (!spare_.empty()) {
    node = std::move(spare_.back());
    spare_.pop_back();
  } else {
    uint32_t victim = slots_[sentinel_].prev;
    unlink(victim);
    node = index_.extract(slots_[victim].page);
  }
  uint32_t slot = node.mapped();
  node.key() = page;
  slots_[slot].page = page;
  std::memmove(bytesOf(slot), bytes, kPageSize);
  pushFront(slot);
  index_.insert(std::move(node));
}

void XbzrleCache::erase(uint64_t page) {
  auto it = index_.find(page);
  if (it == index_.end()) return;
  unlink(it->second);
  spare_.push_back(index_.extract(it));
}

void XbzrleCache::unlink(uint32_t slot) {
  Slot& s = slots_[slot];
  slots_[s.prev].next = s.next;
  slots_[s.next].prev = s.prev;
}

void XbzrleCache::pushFront(uint32_t slot) {
  Slot& s = slots_[slot];
  s.prev = sentinel_;
  s.next = slots_[sentinel_].next;
  slots_[s.next].prev = slot;
  slots_[sentinel_].next = slot;
}

}  // namespace tandem::codec
