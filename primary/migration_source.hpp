// MigrationSource: moves the running guest of a Machine to a tandem standby, precopy:
// round 0 sends every page the guest has touched while it runs, each later round what it dirtied
// meanwhile, until the rest fits in the downtime budget at the measured bandwidth; then the guest
// pauses, the last pages and the MachineState go, and the source ends once the target reports
// the guest running there. Any failure before that resumes the guest here, untouched.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "machine/machine.hpp"

namespace tandem {

class Channel;

struct MigrationOptions {
  std::string to;               // tcp://HOST:PORT of the standby
  uint32_t maxDowntimeMs = 300;
  uint32_t maxRounds = 30;
};

struct MigrationStats {
  double totalMs = 0, downtimeMs = 0, setupMs = 0;
  // The downtime in parts: vCPUs and io thread parked; last dirty pages sent; MachineState captured
  // and sent; the target restoring and starting the guest (until its Running arrives).
  double pauseMs = 0, finalPagesMs = 0, stateMs = 0, targetMs = 0;
  uint64_t bytes = 0;
  uint64_t zeroPages = 0, rawPages = 0, lz4Pages = 0;
  uint32_t rounds = 0;
  nlohmann::json toJson() const;
};

class MigrationSource {
public:
  MigrationSource(Machine& machine, MigrationOptions options) : machine_(machine), options_(std::move(options)) {}

  // Runs the whole migration on the calling thread. On success the machine has been stopped; on
  // failure it throws Error with the reason and the guest runs on here.
  MigrationStats run();

private:
  void handshake(Channel& channel);
  void sendRound(Channel& channel, const PageSet& pages, uint32_t round);
  void awaitAck(Channel& channel, uint32_t round);

  Machine& machine_;
  MigrationOptions options_;
  MigrationStats stats_;
};

}  // namespace tandem
