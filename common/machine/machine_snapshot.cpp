#include "machine/machine_snapshot.hpp"

#include <chrono>
#include <cstring>
#include <vector>

#include "base/log.hpp"
#include "machine/machine.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Passes go on while the dirty set halves, until it is small enough to copy inside the pause
// (about 1 us a page here) or the guest writes faster than passes catch up.
constexpr uint64_t kPagesWorthAPause = 256;
constexpr uint32_t kMostPasses = 8;

// Dirty logging on for the snapshot only: whatever happens, it is switched off again.
class DirtyTracking {
public:
  explicit DirtyTracking(Machine& machine) : machine_(machine), tracker_(machine.startDirtyTracking()) {}
  ~DirtyTracking() { machine_.stopDirtyTracking(); }
  DirtyTracker& tracker() { return tracker_; }

private:
  Machine& machine_;
  DirtyTracker& tracker_;
};

// The last pages, copied inside the pause into room made (and touched) before it.
class PauseCopy {
public:
  explicit PauseCopy(uint64_t pages) : bytes_(pages * kPageSize) {}
  void take(const GuestMemory& memory, const PageSet& pages) {
    uint64_t count = pages.count();
    if (bytes_.size() < count * kPageSize) bytes_.resize(count * kPageSize);  // rare: the guest sped up
    frames_.clear();
    frames_.reserve(count);
    pages.forEach([&](uint64_t page) {
      std::memcpy(bytes_.data() + frames_.size() * kPageSize, memory.hostBase() + page * kPageSize, kPageSize);
      frames_.push_back(memory.gpaOfPage(page).value / kPageSize);
    });
  }
  void writeTo(SnapshotWriter& writer) const {
    for (size_t i = 0; i < frames_.size(); ++i) writer.addPage(frames_[i], bytes_.data() + i * kPageSize);
  }
  uint64_t pages() const { return frames_.size(); }

private:
  std::vector<uint8_t> bytes_;
  std::vector<uint64_t> frames_;
};

}  // namespace

MachineSnapshotReport snapshotMachine(Machine& machine, const std::string& dir) {
  auto start = Clock::now();
  MachineSnapshotReport report;
  SnapshotWriter writer(dir, machine.memory().size());
  if (machine.paused()) {
    writer.addBackedPages(machine.memory());
    report.passes = 1;
    auto captureStart = Clock::now();
    MachineState state = machine.capture();
    report.captureMs = msSince(captureStart);
    report.file = writer.finish(state);
    report.totalMs = msSince(start);
    return report;
  }

  DirtyTracking tracking(machine);
  writer.addBackedPages(machine.memory());
  report.passes = 1;
  PageSet dirty = tracking.tracker().take();
  for (uint64_t written = UINT64_MAX; dirty.count() > kPagesWorthAPause && report.passes < kMostPasses;) {
    uint64_t count = dirty.count();
    if (count * 2 > written) break;  // not catching up: the pause takes the rest
    writer.addPages(machine.memory(), dirty);
    ++report.passes;
    written = count;
    dirty = tracking.tracker().take();
  }

  PauseCopy last(2 * dirty.count() + kPagesWorthAPause);
  MachineState state;
  auto pauseStart = Clock::now();
  machine.pause(Machine::PauseFor::Capture);
  try {
    tracking.tracker().takeInto(dirty);
    last.take(machine.memory(), dirty);
    auto captureStart = Clock::now();
    state = machine.capture();
    report.captureMs = msSince(captureStart);
  } catch (...) {
    machine.resume();
    throw;
  }
  machine.resume();
  report.pausedMs = msSince(pauseStart);
  ++report.passes;
  report.pagesInPause = last.pages();
  last.writeTo(writer);
  report.file = writer.finish(state);
  report.totalMs = msSince(start);
  log::info("snapshot to ", dir, ": ", report.file.fileBytes, " bytes in ", report.passes, " passes, guest paused ",
            report.pausedMs, " ms for ", report.pagesInPause, " pages and its state");
  return report;
}

}  // namespace tandem
