// Userfault: guest memory whose missing pages are filled on demand (postcopy). Registers the whole
// mapping of a GuestMemory with userfaultfd in "missing" mode: from then on, any thread that
// touches a page that is not there — a vCPU inside KVM_RUN, device emulation, KVM itself — waits
// until someone installs it with install() or installZero(). The only code that uses userfaultfd.
#pragma once

#include <cstdint>
#include <vector>

#include "base/fd.hpp"
#include "memory/guest_memory.hpp"

namespace tandem {

class Userfault {
public:
  // Error Failed if this kernel or process cannot use userfaultfd (the message says why).
  explicit Userfault(GuestMemory& memory);
  ~Userfault();  // unregisters: pages missing by then read as zeros, as for any anonymous memory
  Userfault(const Userfault&) = delete;
  Userfault& operator=(const Userfault&) = delete;

  int fd() const { return fd_.get(); }  // readable when faults wait

  // Page numbers (GuestMemory numbering) that threads are waiting for, as many as are queued now.
  std::vector<uint64_t> takeFaults();
  // Installs the page's 4 KiB and wakes whoever waits for it. False if it was already there (then
  // nothing is written: a page is installed once).
  bool install(uint64_t page, const uint8_t* bytes);
  // Installs a page of zeros (a page the source never had).
  bool installZero(uint64_t page);
  void unregister();

private:
  void wake(uint64_t page);

  GuestMemory& memory_;
  Fd fd_;
  bool registered_ = false;
};

}  // namespace tandem
