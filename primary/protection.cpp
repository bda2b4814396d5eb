#include "primary/protection.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "metrics/names.hpp"

namespace tandem {

Protection::~Protection() { stop(); }

void Protection::stop() {
  std::shared_ptr<Replicator> replicator;
  {
    std::lock_guard lock(mutex_);
    replicator = std::move(replicator_);
  }
}

std::shared_ptr<Replicator> Protection::current() const {
  std::lock_guard lock(mutex_);
  return replicator_;
}

void Protection::protectFromBoot(ReplicationOptions options) {
  std::lock_guard lock(mutex_);
  replicator_ = std::make_shared<Replicator>(machine_, options);  // holds the output from here on
  last_ = std::move(options);
}

void Protection::runUnprotected(uint64_t generation, std::string why) {
  std::lock_guard lock(mutex_);
  last_ = ReplicationOptions{};
  last_->generation = generation;
  unprotectedReason_ = std::move(why);
}

void Protection::start() {
  std::lock_guard lock(mutex_);
  started_ = true;
  if (replicator_) replicator_->start();
}

void Protection::protect(ReplicationOptions options) {
  std::lock_guard lock(mutex_);
  if (replicator_) failBadInput("the guest is protected already (by ", last_->to, "); run tandem unprotect first to change its standby");
  log::warn("the operator protects the guest by ", options.to, " (generation ", options.generation,
            "); its output is held from now on until that standby acknowledges it");
  replicator_ = std::make_shared<Replicator>(machine_, options);
  last_ = std::move(options);
  unprotectedReason_.clear();
  if (started_) replicator_->start();
}

void Protection::unprotect(const std::string& why) {
  auto replicator = current();
  if (!replicator) failBadInput("the guest is not protected; there is nothing to unprotect");
  auto state = replicator->state();
  if (state == ReplicationState::HandedOver || state == ReplicationState::Superseded || state == ReplicationState::Ended)
    failBadInput("the guest is ", name(state), " here; there is nothing to unprotect");
  // A standby that can still hear us is told, so that it never runs this guest; one that is gone
  // was the operator's to check.
  bool told = replicator->end(concat("the operator unprotected the guest: ", why));
  {
    std::lock_guard lock(mutex_);
    replicator_.reset();
    ++unprotects_;
    unprotectedReason_ = concat("tandem unprotect at ", log::utcTime(std::chrono::system_clock::now()), ": ", why);
  }
  replicator.reset();  // its threads end here
  auto held = machine_.outputGate().stats().heldBytes;
  machine_.outputGate().open();
  if (machine_.paused()) machine_.resume();  // paused for its held output
  log::warn("the operator unprotected the guest (", why, "): it runs without a standby, ", held,
            " bytes of held output shown; the standby ", told ? "confirmed and will not run it" : "did not answer",
            "; tandem protect --to protects it again");
}

void Protection::end(const std::string& why) {
  if (auto replicator = current()) replicator->end(why);
}

void Protection::switchover() {
  auto replicator = current();
  if (!replicator) throw Error(ErrorKind::Failed, "the guest is not protected: there is no standby to fail over to");
  replicator->switchover();
}

bool Protection::active() const { return current() != nullptr; }

std::optional<ReplicationOptions> Protection::lastOptions() const {
  std::lock_guard lock(mutex_);
  return last_;
}

nlohmann::json Protection::status() const {
  std::shared_ptr<Replicator> replicator;
  std::optional<ReplicationOptions> last;
  uint64_t unprotects;
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    replicator = replicator_;
    last = last_;
    unprotects = unprotects_;
    reason = unprotectedReason_;
  }
  if (!last) return nullptr;
  nlohmann::json status = replicator ? replicator->status()
                                     : nlohmann::json{{"role", "primary"},
                                                      {"state", name(ReplicationState::Unprotected)},
                                                      {"protected", false},
                                                      {"unprotected_reason", reason},
                                                      {"generation", last->generation},
                                                      {"standby", ""}};
  status["operator_unprotects"] = unprotects;
  return status;
}

void Protection::collectMetrics(metrics::Families& out) const {
  namespace n = metrics::names;
  std::shared_ptr<Replicator> replicator;
  std::optional<ReplicationOptions> last;
  uint64_t unprotects;
  {
    std::lock_guard lock(mutex_);
    replicator = replicator_;
    last = last_;
    unprotects = unprotects_;
  }
  if (!last) return;
  out.counter(n::kOperatorUnprotects, "Times an operator ran this guest unprotected (tandem unprotect)", static_cast<double>(unprotects));
  if (replicator) return replicator->collectMetrics(out);
  collectPrimaryStateMetrics(out, ReplicationState::Unprotected, last->generation);
}

}  // namespace tandem
