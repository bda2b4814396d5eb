#include "cli/protect_options.hpp"

#include "base/error.hpp"
#include "transport/link.hpp"

namespace tandem::cli {

std::optional<ReplicationOptions> protectOptions(const Arguments& options) {
  auto to = options.value("protect");
  if (!to) {
    for (const char* knob : {"epoch-ms", "heartbeat-ms", "failover-after-ms"})
      if (options.value(knob)) failBadInput("--", knob, " is for a protected guest: give --protect tcp://HOST:PORT too");
    return std::nullopt;
  }
  return replicationOptions(options, *to, ReplicationOptions{});
}

ReplicationOptions replicationOptions(const Arguments& options, const std::string& to, ReplicationOptions r) {
  urgentEndpoint(to);  // refuses anything but tcp://HOST:PORT
  r.to = to;
  auto ms = [&](const char* name, std::chrono::milliseconds fallback, uint64_t min, uint64_t max) {
    auto text = options.value(name);
    return text ? std::chrono::milliseconds(parseNumber(*text, name, min, max)) : fallback;
  };
  r.epoch = ms("epoch-ms", r.epoch, 1, 10'000);
  r.heartbeat = ms("heartbeat-ms", r.heartbeat, 1, 10'000);
  r.failoverAfter = ms("failover-after-ms", r.failoverAfter, 2, 600'000);
  if (r.failoverAfter <= r.heartbeat)
    failBadInput("--failover-after-ms ", r.failoverAfter.count(), " must be longer than --heartbeat-ms ", r.heartbeat.count(),
                 ": the standby would take over between two heartbeats");
  return r;
}

}  // namespace tandem::cli
