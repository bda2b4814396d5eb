// OutputGate: everything the guest shows the outside world (console bytes; network frames next)
// passes here. Open, it goes straight through. Held (a protected guest), what the guest produced
// during epoch N waits until release(N): nobody outside sees output of a state the standby does
// not have, so nothing a client saw can be lost at a failover.
//
//   open --hold()--> held: write() queues into the open epoch; closeEpoch(N) (inside the epoch's
//                    pause) seals it as epoch N; release(N) (on Ack{N}) emits epochs <= N in order
//   held --open()--> open: an operator's choice to run unprotected; what was held goes out first
//
// Memory is bounded: overLimit() tells the epoch loop to keep the guest paused until releases bring
// it back under the limit (output is never dropped and never released early).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

namespace tandem {

// Where released output goes: a console, a tap. Its channel names it on the wire (0: the serial
// console), so that a standby can emit what it was sent through its own sink of that channel.
class OutputSink {
public:
  explicit OutputSink(uint32_t channel) : channel_(channel) {}
  virtual ~OutputSink() = default;
  virtual void emit(std::span<const uint8_t> bytes) = 0;
  uint32_t channel() const { return channel_; }

private:
  uint32_t channel_;
};

// Output of one sealed epoch, as it is shipped to a standby.
struct HeldOutput {
  uint32_t channel;
  std::vector<uint8_t> bytes;
};

struct OutputGateStats {
  bool held = false;
  uint64_t heldBytes = 0;
  double oldestHeldMs = 0;  // how long the oldest byte still held has waited
  uint64_t releasedBytes = 0;
  uint64_t lastReleasedEpoch = 0;
};

class OutputGate {
public:
  static constexpr uint64_t kDefaultLimit = 64ull << 20;

  explicit OutputGate(uint64_t limitBytes = kDefaultLimit) : limit_(limitBytes) {}

  // Any thread. frame: bytes that must reach the sink as one emit() (a network frame); console
  // bytes are streams and may be joined with their neighbours.
  void write(OutputSink& sink, std::span<const uint8_t> bytes, bool frame = false);

  void hold();
  void open();
  // What was written since the previous closeEpoch() belongs to `epoch` (increasing); returns a
  // copy of it for the standby.
  std::vector<HeldOutput> closeEpoch(uint64_t epoch);
  // Copies of every sealed epoch still held, in order (what a new standby must be sent).
  std::vector<HeldOutput> sealedOutput() const;
  // Emits, in order, every sealed epoch up to and including `epoch`. Each byte exactly once.
  // beforeShowing runs once those bytes are out of the gate and before the first is emitted: the
  // two then follow each other with no lock between them that a guest thread could be holding.
  void release(uint64_t epoch, const std::function<void()>& beforeShowing = {});

  bool overLimit() const;
  // Whether output is waiting in the open epoch (written since the last closeEpoch()).
  bool openEpochHasOutput() const;
  OutputGateStats stats() const;

private:
  using Clock = std::chrono::steady_clock;
  struct Piece {
    OutputSink* sink;
    std::vector<uint8_t> bytes;
    bool frame;
  };
  struct Epoch {
    uint64_t number = 0;
    std::vector<Piece> pieces;
    Clock::time_point firstWrite{};
    uint64_t bytes = 0;
  };
  void emitAll(std::vector<Piece>& pieces);  // emitMutex_ held

  const uint64_t limit_;
  mutable std::mutex mutex_;  // the queues below
  std::mutex emitMutex_;      // one emitter at a time, so releases keep their order
  bool held_ = false;
  Epoch open_;
  std::deque<Epoch> sealed_;
  uint64_t heldBytes_ = 0, releasedBytes_ = 0, lastReleased_ = 0;
};

}  // namespace tandem
