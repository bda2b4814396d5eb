// The kv workload of network, migration and chaos tests: a writer that records every SET the
// guest acknowledged, and the check that each of them is still there.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/kv_client.hpp"
#include "support/tandem_run.hpp"
#include "support/test_network.hpp"

namespace tandem::test {

// Writes count keys in the background, each SET retried until answered, and records which ones
// the guest acknowledged. done() tells how far it got.
class BackgroundWriter {
public:
  BackgroundWriter(const TestNetwork& net, const std::string& prefix, int count) : count_(count) {
    thread_ = std::thread([this, &net, prefix] {
      net.enter();
      KvClient kv(TestNetwork::kGuestIp, 7777);
      for (int i = 0; i < count_ && !stop_; ++i) {
        std::string key = prefix + std::to_string(i), value = "v" + std::to_string(i * 3);
        std::optional<std::string> reply;  // tried for 30 s, in pieces so that stop() ends it soon
        for (auto until = std::chrono::steady_clock::now() + 30s; !reply && !stop_ && std::chrono::steady_clock::now() < until;)
          reply = kv.request("SET " + key + " " + value, 500ms, std::chrono::milliseconds(100));
        if (reply && *reply == "OK") {
          std::lock_guard lock(mutex_);
          acknowledged_[key] = value;
          order_.push_back(key);
        }
        done_ = i + 1;
      }
    });
  }
  ~BackgroundWriter() {
    stop();
    join();
  }
  void waitUntilDone(int n) const {
    while (done_ < n) std::this_thread::sleep_for(5ms);
  }
  int done() const { return done_; }
  // Ends the writing after the SET under way.
  void stop() { stop_ = true; }
  // While it writes: the last n SETs acknowledged, with their values.
  std::map<std::string, std::string> lastAcknowledged(size_t n) const {
    std::lock_guard lock(mutex_);
    std::map<std::string, std::string> last;
    for (size_t i = order_.size() > n ? order_.size() - n : 0; i < order_.size(); ++i) last[order_[i]] = acknowledged_.at(order_[i]);
    return last;
  }
  // After join(): every key the guest acknowledged, with its value.
  const std::map<std::string, std::string>& join() {
    if (thread_.joinable()) thread_.join();
    return acknowledged_;
  }

private:
  int count_;
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::string> acknowledged_;
  std::vector<std::string> order_;
  std::thread thread_;
};

// Reads every key back from inside the namespace; returns the first one that is missing or wrong
// ("" when all are there), so the assertion is made on the test's own thread.
inline std::string firstLostKey(const TestNetwork& net, const std::map<std::string, std::string>& acknowledged) {
  std::string lost;
  std::thread check([&] {
    net.enter();
    KvClient kv(TestNetwork::kGuestIp, 7777);
    for (const auto& [key, value] : acknowledged) {
      auto reply = kv.request("GET " + key, 10s);
      if (!reply || *reply != "VALUE " + value) {
        lost = key + " -> " + reply.value_or("no answer");
        return;
      }
    }
  });
  check.join();
  return lost;
}

}  // namespace tandem::test
