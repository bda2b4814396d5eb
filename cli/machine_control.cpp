#include "cli/machine_control.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "machine/machine_snapshot.hpp"
#include "metrics/names.hpp"
#include "primary/migration_source.hpp"
#include "state/snapshot_file.hpp"
#include "transport/link.hpp"

namespace tandem::cli {

namespace {

double millisecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

nlohmann::json MachineControl::handle(const nlohmann::json& request) {
  if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string())
    return {{"ok", false}, {"error", "a request is an object with a \"cmd\" string"}};
  std::string cmd = request["cmd"];
  if (cmd == "status") return status();
  if (cmd == "migrate_resume" || cmd == "migrate_give_up") return recover(request);
  if (migrating_)
    return {{"ok", false}, {"error", concat("a migration is under way; '", cmd, "' has to wait until it ends")}};
  if (cmd == "protect") return protect(request);
  if (cmd == "unprotect") return unprotect(request);
  bool isProtected = protection_ && protection_->active();
  if (cmd == "failover") {
    if (!isProtected) return {{"ok", false}, {"error", "the guest is not protected (tandem run --protect): there is no standby to fail over to"}};
    try {
      protection_->switchover();
    } catch (const Error& e) {
      return {{"ok", false}, {"error", e.what()}};
    }
    return {{"ok", true}, {"state", "handed over"}};
  }
  if (isProtected && cmd != "quit")
    return {{"ok", false},
            {"error", concat("the guest is protected (its epoch loop pauses and resumes it); '", cmd,
                             "' is not available for a protected guest")}};
  if (cmd == "pause") {
    machine_.pause();
    return {{"ok", true}, {"state", "paused"}};
  }
  if (cmd == "resume") {
    if (lastMigrationPhase() == "postcopy-failed") {
      if (!request.value("confirm", false))
        return {{"ok", false},
                {"error", "the guest ran on the migration's target after it left here: resuming this older copy forks it "
                          "(what it did there is lost, and it must not run there any more); check, then add --confirm"}};
      log::warn("the operator resumes the guest here after its postcopy failed: it goes on from the switch, and what it did "
                "on the target since is lost");
    }
    machine_.resume();
    return {{"ok", true}, {"state", "running"}};
  }
  if (cmd == "snapshot") {
    if (!request.contains("to") || !request["to"].is_string() || request["to"].get<std::string>().empty())
      return {{"ok", false}, {"error", "snapshot needs \"to\": the directory to write"}};
    return snapshot(request["to"]);
  }
  if (cmd == "migrate") return migrate(request);
  if (cmd == "quit") {
    machine_.stop();
    return {{"ok", true}};
  }
  return {{"ok", false}, {"error", concat("unknown command '", cmd, "' (status, pause, resume, snapshot, migrate, migrate_resume, "
                                          "migrate_give_up, failover, protect, unprotect, quit)")}};
}

std::string MachineControl::lastMigrationPhase() const {
  std::lock_guard lock(migrationMutex_);
  return migration_ ? migration_->read().phase : "none";
}

// The operator, during a postcopy: connect to the target anew, or end it unfinished.
nlohmann::json MachineControl::recover(const nlohmann::json& request) {
  std::string phase = lastMigrationPhase();
  if (!migrating_ || (phase != "postcopy" && phase != "postcopy-paused"))
    return {{"ok", false}, {"error", concat("no postcopy is under way here (the last migration: ", phase, ")")}};
  bool giveUp = request.value("cmd", "") == "migrate_give_up";
  std::lock_guard lock(migrationMutex_);
  if (giveUp) {
    migrationRequests_->post({MigrationRequest::Kind::GiveUp, "", request.value("why", std::string("no reason given"))});
    return {{"ok", true}, {"state", "giving the postcopy up; the guest stays paused here (tandem status)"}};
  }
  std::string to = request.value("to", std::string());
  migrationRequests_->post({MigrationRequest::Kind::Reconnect, to, ""});
  return {{"ok", true}, {"state", concat("connecting to ", to.empty() ? std::string("the target") : to,
                                         " anew; tandem status shows when the postcopy goes on")}};
}

void MachineControl::collectMetrics(metrics::Families& out) const {
  namespace n = metrics::names;
  Machine::Privilege privilege = machine_.privilege();
  out.counter(n::kGuestExits, "Guest exits to the VMM, by the privilege level the guest left from (3: native user mode)",
              static_cast<double>(privilege.userExits), {{"cpl", "3"}});
  out.counter(n::kGuestExits, "Guest exits to the VMM, by the privilege level the guest left from (3: native user mode)",
              static_cast<double>(privilege.kernelExits), {{"cpl", "0"}});
  std::optional<MigrationProgress> progress;
  {
    std::lock_guard lock(migrationMutex_);
    if (migration_) progress = migration_->read();
  }
  std::string phase = progress ? progress->phase : "none";
  if (!progress && arrival_) phase = arrival_().value("phase", "none");  // a migrated guest's arrival
  for (const char* p : {"none", "setup", "precopy", "stop-and-copy", "postcopy", "postcopy-paused", "completed", "failed",
                        "undecided", "postcopy-failed"})
    out.gauge(n::kMigrationPhase, "1 for the phase the last migration of this guest is in (none: never migrated)",
              phase == p ? 1 : 0, {{"phase", p}});
  if (!progress) return;
  out.gauge(n::kMigrationProgress, "Share of this round's pages sent", progress->percentSent() / 100);
  out.gauge(n::kMigrationRound, "Precopy round under way", progress->round);
  out.gauge(n::kMigrationSentBytes, "Bytes the migration has sent", static_cast<double>(progress->bytes));
  out.gauge(n::kMigrationDiskSentBytes, "Of the bytes sent, those of disk chunks", static_cast<double>(progress->diskBytes));
  out.gauge(n::kMigrationRemaining, "Estimated time to the end of the migration", progress->leftMs / 1000);
  out.gauge(n::kMigrationExpectedDowntime, "Downtime if the guest stopped now", progress->expectedDowntimeMs / 1000);
}

namespace {

// "user" when the guest's exits came from CPL 3 (native on kvm_pvm), "kernel" from CPL 0 (emulated).
nlohmann::json privilegeJson(const Machine::Privilege& p) {
  nlohmann::json last = nlohmann::json::array();
  for (int cpl : p.lastCpl) last.push_back(cpl);
  std::string mode = p.userExits == 0 && p.kernelExits == 0 ? "unknown"
                     : p.userExits >= p.kernelExits         ? "user"
                                                            : "kernel";
  return {{"mode", mode}, {"user_exits", p.userExits}, {"kernel_exits", p.kernelExits}, {"last_cpl", last}};
}

}  // namespace

nlohmann::json MachineControl::status() const {
  nlohmann::json migration;
  {
    std::lock_guard lock(migrationMutex_);
    if (migration_) migration = migration_->read().toJson();
  }
  if (migration.is_null() && arrival_) migration = arrival_();
  return {{"ok", true},
          {"migration", migration},
          {"replication", protection_ ? protection_->status() : nlohmann::json()},
          {"state", machine_.paused() ? "paused" : "running"},
          {"uptime_s", millisecondsSince(started_) / 1000},
          {"vcpus", machine_.config().cpus},
          {"guest_privilege", privilegeJson(machine_.privilege())},
          {"memory_mb", machine_.config().memory / kMiB},
          {"console", console_},
          {"cmdline", machine_.config().cmdline}};
}

// Memory is written while the guest runs; it is paused only for the last pages and its state.
nlohmann::json MachineControl::snapshot(const std::string& dir) {
  MachineSnapshotReport report = snapshotMachine(machine_, dir);
  return {{"ok", true},
          {"path", snapshotPath(dir)},
          {"file_bytes", report.file.fileBytes},
          {"state_bytes", report.file.stateBytes},
          {"pages_written", report.file.pagesWritten},
          {"zero_pages", report.file.zeroPages},
          {"passes", report.passes},
          {"pages_in_pause", report.pagesInPause},
          {"capture_ms", report.captureMs},
          {"paused_ms", report.pausedMs},
          {"total_ms", report.totalMs}};
}

// Runs on a thread of its own (a long request) until the guest runs on the target (the machine
// then stops and tandem run exits) or the migration failed (the error says where the guest is).
nlohmann::json MachineControl::migrate(const nlohmann::json& request) {
  MigrationOptions options;
  options.to = request.value("to", "");
  options.maxDowntimeMs = request.value("max_downtime_ms", options.maxDowntimeMs);
  options.maxRounds = request.value("max_rounds", options.maxRounds);
  options.maxBandwidth = request.value("max_bandwidth", options.maxBandwidth);
  if (options.to.empty()) return {{"ok", false}, {"error", "migrate needs \"to\": the standby's tcp://HOST:PORT"}};
  std::string mode = request.value("mode", "precopy");
  if (mode == "precopy") options.mode = MigrationMode::Precopy;
  else if (mode == "postcopy") options.mode = MigrationMode::Postcopy;
  else if (mode == "hybrid") options.mode = MigrationMode::Hybrid;
  else return {{"ok", false}, {"error", concat("\"mode\" is precopy, postcopy or hybrid, not '", mode, "'")}};
  options.xbzrleCacheBytes = request.value("xbzrle_cache", options.xbzrleCacheBytes);
  options.autoConverge = request.value("auto_converge", false);
  options.encodeThreads = request.value("encode_threads", options.encodeThreads);
  if (options.encodeThreads < 1 || options.encodeThreads > 64)
    return {{"ok", false}, {"error", "\"encode_threads\" is 1 to 64"}};
  std::string compress = request.value("compress", "auto");
  if (compress == "auto") options.compression = Compression::Auto;
  else if (compress == "lz4") options.compression = Compression::Lz4;
  else if (compress == "none") options.compression = Compression::None;
  else return {{"ok", false}, {"error", concat("\"compress\" is auto, lz4 or none, not '", compress, "'")}};
  std::string onNoConverge = request.value("on_no_converge", "stop");
  if (onNoConverge == "stop") options.onNoConverge = NoConvergeAction::Stop;
  else if (onNoConverge == "postcopy") options.onNoConverge = NoConvergeAction::Postcopy;
  else if (onNoConverge == "abort") options.onNoConverge = NoConvergeAction::Abort;
  else return {{"ok", false}, {"error", concat("\"on_no_converge\" is stop, postcopy or abort, not '", onNoConverge, "'")}};
  std::string storage = request.value("storage", "");
  if (storage == "copy") options.storage = MigrationOptions::Storage::Copy;
  else if (storage == "shared") options.storage = MigrationOptions::Storage::Shared;
  else if (!storage.empty()) return {{"ok", false}, {"error", concat("\"storage\" is copy or shared, not '", storage, "'")}};
  options.postcopyWait = std::chrono::seconds(request.value("postcopy_wait_s", options.postcopyWait.count()));
  if (migrating_.exchange(true)) return {{"ok", false}, {"error", "a migration is under way already"}};
  auto board = std::make_shared<ProgressBoard>();
  auto requests = std::make_shared<MigrationRequests>();
  {
    std::lock_guard lock(migrationMutex_);
    migration_ = board;
    migrationRequests_ = requests;
  }
  nlohmann::json reply;
  try {
    auto stats = MigrationSource(machine_, options, board.get(), requests.get()).run();
    reply = stats.toJson();
    reply["ok"] = true;
    log::info("migrated to ", options.to, " in ", stats.totalMs, " ms, downtime ", stats.downtimeMs,
              " ms; the guest's vCPUs stopped here at ", log::utcTime(stats.pausedAt));
  } catch (const Error& e) {
    reply = {{"ok", false}, {"error", concat("migration to ", options.to, " failed: ", e.what())}};
    board->update([&](MigrationProgress& p) {
      // (undecided, postcopy-failed: the guest is paused here, see the error)
      if (p.phase != "undecided" && p.phase != "postcopy-failed") p.phase = "failed";
      p.error = e.what();
    });
  }
  migrating_ = false;
  return reply;
}

// A running guest protected (again) by the standby at "to"; the knobs not given are the last
// protection's (or the defaults).
nlohmann::json MachineControl::protect(const nlohmann::json& request) {
  if (!protection_) return {{"ok", false}, {"error", "this tandem cannot protect its guest"}};
  ReplicationOptions options = protection_->lastOptions().value_or(ReplicationOptions{});
  options.to = request.value("to", "");
  if (options.to.empty()) return {{"ok", false}, {"error", "protect needs \"to\": the standby's tcp://HOST:PORT"}};
  try {
    urgentEndpoint(options.to);  // refuses anything but tcp://HOST:PORT
    auto ms = [&](const char* key, std::chrono::milliseconds& knob) {
      if (request.contains(key)) knob = std::chrono::milliseconds(request[key].get<uint64_t>());
    };
    ms("epoch_ms", options.epoch);
    ms("heartbeat_ms", options.heartbeat);
    ms("failover_after_ms", options.failoverAfter);
    if (options.epoch.count() < 1 || options.heartbeat.count() < 1 || options.failoverAfter <= options.heartbeat)
      return {{"ok", false}, {"error", "epoch_ms and heartbeat_ms are at least 1, and failover_after_ms is longer than heartbeat_ms"}};
    protection_->protect(options);
  } catch (const std::exception& e) {
    return {{"ok", false}, {"error", e.what()}};
  }
  return {{"ok", true}, {"state", "syncing"}, {"standby", options.to}};
}

// The operator's way out when the standby is gone for good: never without "confirm".
nlohmann::json MachineControl::unprotect(const nlohmann::json& request) {
  if (!request.value("confirm", false))
    return {{"ok", false},
            {"error", "unprotect shows output no standby acknowledged and runs the guest without one; if the standby "
                      "still runs it may take the guest over as well: check that it is down, then confirm"}};
  if (!protection_) return {{"ok", false}, {"error", "the guest is not protected; there is nothing to unprotect"}};
  try {
    protection_->unprotect(request.value("why", std::string("no reason given")));
  } catch (const Error& e) {
    return {{"ok", false}, {"error", e.what()}};
  }
  return {{"ok", true}, {"state", "unprotected"}};
}

}  // namespace tandem::cli
