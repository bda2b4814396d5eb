#include "output/output_gate.hpp"

#include <utility>

#include "base/error.hpp"

namespace tandem {

void OutputGate::write(OutputSink& sink, std::span<const uint8_t> bytes, bool frame) {
  if (bytes.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (held_) {
      if (open_.pieces.empty()) open_.firstWrite = Clock::now();
      auto& pieces = open_.pieces;
      if (!frame && !pieces.empty() && pieces.back().sink == &sink && !pieces.back().frame)
        pieces.back().bytes.insert(pieces.back().bytes.end(), bytes.begin(), bytes.end());
      else
        pieces.push_back(Piece{&sink, std::vector<uint8_t>(bytes.begin(), bytes.end()), frame});
      open_.bytes += bytes.size();
      heldBytes_ += bytes.size();
      return;
    }
  }
  std::lock_guard emitting(emitMutex_);
  sink.emit(bytes);
  std::lock_guard lock(mutex_);
  releasedBytes_ += bytes.size();
}

bool OutputGate::openEpochHasOutput() const {
  std::lock_guard lock(mutex_);
  return !open_.pieces.empty();
}

void OutputGate::hold() {
  std::lock_guard lock(mutex_);
  held_ = true;
}

void OutputGate::open() {
  std::lock_guard emitting(emitMutex_);
  std::vector<Piece> pieces;
  {
    std::lock_guard lock(mutex_);
    for (auto& epoch : sealed_)
      for (auto& piece : epoch.pieces) pieces.push_back(std::move(piece));
    for (auto& piece : open_.pieces) pieces.push_back(std::move(piece));
    sealed_.clear();
    open_ = Epoch{};
    held_ = false;
  }
  emitAll(pieces);
}

std::vector<HeldOutput> OutputGate::closeEpoch(uint64_t epoch) {
  std::lock_guard lock(mutex_);
  require(sealed_.empty() ? epoch > lastReleased_ : epoch > sealed_.back().number, "output epoch ", epoch,
          " closed out of order");
  open_.number = epoch;
  if (open_.pieces.empty()) open_.firstWrite = Clock::now();
  std::vector<HeldOutput> copy;
  for (const auto& piece : open_.pieces) copy.push_back(HeldOutput{piece.sink->channel(), piece.bytes});
  sealed_.push_back(std::move(open_));
  open_ = Epoch{};
  return copy;
}

std::vector<HeldOutput> OutputGate::sealedOutput() const {
  std::lock_guard lock(mutex_);
  std::vector<HeldOutput> copy;
  for (const auto& epoch : sealed_)
    for (const auto& piece : epoch.pieces) copy.push_back(HeldOutput{piece.sink->channel(), piece.bytes});
  return copy;
}

void OutputGate::release(uint64_t epoch, const std::function<void()>& beforeShowing) {
  std::lock_guard emitting(emitMutex_);
  std::deque<Epoch> taken;
  uint64_t releasedBefore;
  {
    std::lock_guard lock(mutex_);
    while (!sealed_.empty() && sealed_.front().number <= epoch) {
      taken.push_back(std::move(sealed_.front()));
      sealed_.pop_front();
    }
    releasedBefore = std::exchange(lastReleased_, std::max(lastReleased_, epoch));
  }
  if (beforeShowing) {
    try {
      beforeShowing();
    } catch (...) {  // nothing shown: the epochs are held again, as they were
      std::lock_guard lock(mutex_);
      for (auto it = taken.rbegin(); it != taken.rend(); ++it) sealed_.push_front(std::move(*it));
      lastReleased_ = releasedBefore;
      throw;
    }
  }
  std::vector<Piece> pieces;
  for (auto& e : taken)
    for (auto& piece : e.pieces) pieces.push_back(std::move(piece));
  emitAll(pieces);
}

void OutputGate::emitAll(std::vector<Piece>& pieces) {
  uint64_t bytes = 0;
  for (auto& piece : pieces) {
    piece.sink->emit(piece.bytes);
    bytes += piece.bytes.size();
  }
  std::lock_guard lock(mutex_);
  heldBytes_ -= std::min(heldBytes_, bytes);
  releasedBytes_ += bytes;
}

bool OutputGate::overLimit() const {
  std::lock_guard lock(mutex_);
  return heldBytes_ > limit_;
}

OutputGateStats OutputGate::stats() const {
  std::lock_guard lock(mutex_);
  OutputGateStats s;
  s.held = held_;
  s.heldBytes = heldBytes_;
  s.releasedBytes = releasedBytes_;
  s.lastReleasedEpoch = lastReleased_;
  Clock::time_point oldest{};
  for (const auto& epoch : sealed_)
    if (epoch.bytes) {
      oldest = epoch.firstWrite;
      break;
    }
  if (oldest == Clock::time_point{} && open_.bytes) oldest = open_.firstWrite;
  if (oldest != Clock::time_point{})
    s.oldestHeldMs = std::chrono::duration<double, std::milli>(Clock::now() - oldest).count();
  return s;
}

}  // namespace tandem
