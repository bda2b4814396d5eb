// MigrationSource: moves the running guest of a Machine to a tandem standby.
//
//   precopy   round 0 sends every page the guest has touched while it runs, each later round what
//             it dirtied meanwhile, until the rest fits in the downtime budget at the measured
//             bandwidth; then the guest pauses, the last pages and the MachineState go, and the
//             source ends once the target reports the guest running there.
//   postcopy  the guest pauses at once; MachineState and the list of owed pages go; the target
//             runs the guest and fetches pages on demand while the rest follows (PageServer,
//             which pauses while the link is silent and resumes when it returns).
//   hybrid    precopy rounds, then postcopy for what they left dirty.
//
// With auto-converge, a round after which the guest dirtied pages faster than half the rate the
// link sent them throttles the vCPUs: to the share that would bring the dirty rate to that half,
// and at least 10 points more than before (starting at 20%, at most 99%).
//
// When the rounds do not converge within --max-rounds, --on-no-converge decides: stop (stop and
// copy anyway), postcopy, or abort (the guest runs on here, untouched). Any failure before the
// guest runs on the target resumes it here; once it may run there, the guest never runs here
// again without an operator (tandem resume --confirm, logged).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "machine/machine.hpp"
#include "primary/migration_progress.hpp"
#include "primary/migration_requests.hpp"
#include "primary/page_encoder.hpp"
#include "primary/round_sender.hpp"

namespace tandem {

struct Link;
class BandwidthLimit;

enum class MigrationMode { Precopy, Postcopy, Hybrid };
enum class NoConvergeAction { Stop, Postcopy, Abort };

struct MigrationOptions {
  std::string to;  // tcp://HOST:PORT of the standby
  MigrationMode mode = MigrationMode::Precopy;
  uint32_t maxDowntimeMs = 300;
  uint32_t maxRounds = 30;
  uint64_t maxBandwidth = 0;  // bytes per second, 0 = as fast as the link goes
  NoConvergeAction onNoConverge = NoConvergeAction::Stop;
  bool autoConverge = false;  // throttle the vCPUs while the dirty rate outruns the link
  Compression compression = Compression::Auto;
  uint64_t xbzrleCacheBytes = 64 * kMiB;  // 0: no XBZRLE
  unsigned encodeThreads = 1;             // encoders beside the thread that sends
  // A guest with disks must say: they move with it (Copy), or the standby opens the very same
  // storage (Shared: it proves that, and no disk bytes move).
  enum class Storage { Unset, Copy, Shared } storage = Storage::Unset;
  // Postcopy: how long the target may stay silent before the postcopy ends unfinished (3 s of
  // silence pause it; the link coming back, or --resume, resumes it).
  std::chrono::seconds postcopyWait{600};
};

struct MigrationStats {
  MigrationMode mode = MigrationMode::Precopy;
  bool switchedToPostcopy = false;
  double totalMs = 0, downtimeMs = 0, setupMs = 0;
  // The downtime in parts: vCPUs and io thread parked; last dirty pages sent; MachineState captured
  // and sent; the target restoring and starting the guest (until its Running arrives).
  double pauseMs = 0, finalPagesMs = 0, stateMs = 0, targetMs = 0;
  // When the vCPUs were all parked (by this host's clock): where the guest stopped running here.
  std::chrono::system_clock::time_point pausedAt;
  uint64_t bytes = 0;
  uint64_t bytesOnEarlierLinks = 0;  // of bytes: on the links a postcopy's --resume replaced
  EncodingCounts pages;
  uint32_t rounds = 0;
  uint64_t diskChunks = 0, diskChunksSkipped = 0;  // 64 KiB chunks sent; skipped: the target had them
  uint64_t diskBytes = 0;                          // what those chunks took on the link (part of bytes)
  unsigned throttlePercent = 0;  // the most auto-converge took from the vCPUs
  // Postcopy: pages owed at the switch, how many the target faulted on, how long those waited.
  uint64_t postcopyPages = 0, postcopyRequested = 0, postcopyFaults = 0, postcopyZeroFaults = 0;
  double postcopyMs = 0, faultMedianUs = 0, faultP99Us = 0, faultMaxUs = 0;
  uint32_t postcopyPauses = 0;  // times the link fell silent and the postcopy paused (then resumed)
  double postcopyPausedMs = 0;
  nlohmann::json toJson() const;
};

const char* modeName(MigrationMode mode);

class DiskSender;

class MigrationSource {
public:
  // progress: where to report how it goes (read by `tandem status`), or null. requests: the
  // operator's --resume and --give-up during postcopy, or null.
  MigrationSource(Machine& machine, MigrationOptions options, ProgressBoard* progress = nullptr,
                  MigrationRequests* requests = nullptr);
  ~MigrationSource();

  // Runs the whole migration on the calling thread. On success the machine has been stopped; on
  // failure it throws Error with the reason, which says whether the guest runs on here.
  MigrationStats run();

private:
  // The switch failed: resumes the guest here if that is safe, or leaves it paused (see .cpp).
  Error failSwitch(const Error& e);
  bool pastNoReturn_ = false;  // Done was sent
  void handshake();
  // Precopy rounds while the guest runs; true when the dirty set left fits the downtime budget.
  bool precopyRounds(DirtyTracker& tracker, PageSet& dirty);
  void autoConverge(double dirtyPerSecond, double sentPerSecond);
  void sendRound(const PageSet& pages, uint32_t round, PageEncoder::Reading reading);
  void sendDiskChunks();
  // The disk chunks written since the last pass, at the rate the last pass sent them (0 without disks).
  double diskMsLeft() const;
  double diskChunksPerSecond_ = 200;  // (a guess until a pass of 16 chunks or more measured it)
  double lastDiskPassMs_ = 0;
  // Shared storage, inside the pause: the disks flushed, then every sampleStride()-th chunk's
  // digest for the target to compare with what it sees.
  void sendSharedFingerprint();
  void awaitAck(uint32_t round);
  void stopAndCopy(DirtyTracker& tracker, PageSet pages);
  // owed: what the target does not have yet; the pages dirtied since the tracker's last take() are added.
  void postcopy(DirtyTracker& tracker, PageSet owed);
  PageSet backedPages() const;
  void sendStateAndDone();

  Machine& machine_;
  MigrationOptions options_;
  std::unique_ptr<Link> link_;
  std::unique_ptr<BandwidthLimit> limit_;
  std::unique_ptr<RoundSender> rounds_;  // precopy rounds and stop-and-copy: one XBZRLE cache for all
  std::unique_ptr<DiskSender> disks_;    // the disks go with the pages: chunks written since the last round
  MigrationStats stats_;
  ProgressBoard ownProgress_;
  ProgressBoard& progress_;
  MigrationRequests* requests_;
};

}  // namespace tandem
