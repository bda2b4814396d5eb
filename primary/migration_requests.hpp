// MigrationRequests: what an operator asks of a migration under way (tandem migrate --resume,
// --give-up). The control thread posts; the migration thread takes the request at its next look
// (PageServer looks every loop, at most 100 ms apart).
#pragma once

#include <mutex>
#include <optional>
#include <string>

namespace tandem {

struct MigrationRequest {
  enum class Kind { Reconnect, GiveUp } kind = Kind::Reconnect;
  std::string to;   // Reconnect: the target's tcp://HOST:PORT (empty: the one the migration uses)
  std::string why;  // GiveUp: the operator's reason, for the log
};

class MigrationRequests {
public:
  void post(MigrationRequest request) {
    std::lock_guard lock(mutex_);
    // A give-up stands: a later reconnect does not undo it.
    if (pending_ && pending_->kind == MigrationRequest::Kind::GiveUp) return;
    pending_ = std::move(request);
  }
  std::optional<MigrationRequest> take() {
    std::lock_guard lock(mutex_);
    auto request = std::move(pending_);
    pending_.reset();
    return request;
  }

private:
  std::mutex mutex_;
  std::optional<MigrationRequest> pending_;
};

}  // namespace tandem
