#include "memory/dirty_tracker.hpp"

#include <bit>
#include <utility>

#include "base/error.hpp"

namespace tandem {

uint64_t PageSet::count() const {
  uint64_t n = 0;
  for (uint64_t w : words) n += static_cast<uint64_t>(std::popcount(w));
  return n;
}

PageSet& PageSet::operator|=(const PageSet& o) {
  if (words.size() < o.words.size()) words.resize(o.words.size(), 0);
  for (size_t i = 0; i < o.words.size(); ++i) words[i] |= o.words[i];
  return *this;
}

DirtyTracker::~DirtyTracker() {
  if (started_) setLogging(false);
}

void DirtyTracker::setLogging(bool on) {
  for (uint32_t slot = 0; slot < memory_.regions().size(); ++slot) {
    const auto& r = memory_.regions()[slot];
    vm_.setMemoryRegion(slot, r.start, r.size, memory_.hostBase() + r.hostOffset, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
  }
}

void DirtyTracker::start() {
  setLogging(true);
  started_ = true;
  pending_ = PageSet(memory_.pageCount());
  PageSet discard = take();  // from now on, not before
}

PageSet DirtyTracker::take() {
  PageSet pages(memory_.pageCount());
  takeInto(pages);
  return pages;
}

void DirtyTracker::takeInto(PageSet& pages) {
  require(pages.words.size() == (memory_.pageCount() + 63) / 64, "a page set of another size than guest memory");
  for (uint32_t slot = 0; slot < memory_.regions().size(); ++slot) {
    const auto& r = memory_.regions()[slot];
    uint64_t slotPages = r.size / kPageSize, first = r.hostOffset / kPageSize;
    slotLog_.resize((slotPages + 63) / 64);
    vm_.getDirtyLog(slot, slotLog_);
    // Regions start on 64-page boundaries (0 and 3 GiB), so the slot's words are ours as they are:
    // this runs inside the pause, and a word at a time is 64 times less work than a bit at a time.
    assertThat(first % 64 == 0, "memory region at page ", first, " is not 64-page aligned");
    for (uint64_t w = 0; w < slotLog_.size(); ++w) pages.words[first / 64 + w] |= slotLog_[w];
  }
  memory_.takeHostDirty(pages.words);
  for (uint64_t w = 0; w < pending_.words.size(); ++w) pages.words[w] |= std::exchange(pending_.words[w], 0);
}

}  // namespace tandem
