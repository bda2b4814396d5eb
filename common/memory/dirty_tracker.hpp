// DirtyTracker: which guest pages changed since the last look, from KVM's dirty log (what the
// vCPUs wrote) ORed with GuestMemory's host map (what device emulation wrote).
//
//   start()     memslots get KVM_MEM_LOG_DIRTY_PAGES, once (switching it is costly on big guests)
//   take()      fetch-and-clear both logs: the pages dirtied since the previous take()
//   takeInto()  the same, ORed into a set the caller has (inside a pause: no allocation)
//   putBack()   a round or epoch that failed gives its pages back, so none is forgotten
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "kvm/vm.hpp"
#include "memory/guest_memory.hpp"

namespace tandem {

// One bit per page, page numbers as GuestMemory numbers them.
struct PageSet {
  std::vector<uint64_t> words;
  explicit PageSet(uint64_t pages = 0) : words((pages + 63) / 64, 0) {}
  void set(uint64_t page) { words[page / 64] |= uint64_t{1} << (page % 64); }
  bool test(uint64_t page) const { return words[page / 64] >> (page % 64) & 1; }
  void clear(uint64_t page) { words[page / 64] &= ~(uint64_t{1} << (page % 64)); }
  uint64_t count() const;
  PageSet& operator|=(const PageSet& o);
  // take(page) for every page in the set, in increasing order.
  template <typename Take>
  void forEach(Take take) const {
    for (uint64_t w = 0; w < words.size(); ++w)
      for (uint64_t bits = words[w]; bits; bits &= bits - 1) take(w * 64 + static_cast<uint64_t>(std::countr_zero(bits)));
  }
};

class DirtyTracker {
public:
  DirtyTracker(kvm::Vm& vm, GuestMemory& memory) : vm_(vm), memory_(memory) {}
  ~DirtyTracker();  // logging off again

  void start();
  PageSet take();
  void takeInto(PageSet& pages);
  void putBack(const PageSet& pages) { pending_ |= pages; }

private:
  void setLogging(bool on);

  kvm::Vm& vm_;
  GuestMemory& memory_;
  bool started_ = false;
  PageSet pending_;
  std::vector<uint64_t> slotLog_;
};

}  // namespace tandem
