#include "cli/machine_control.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "state/snapshot_file.hpp"

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
  if (cmd == "pause") {
    machine_.pause();
    return {{"ok", true}, {"state", "paused"}};
  }
  if (cmd == "resume") {
    machine_.resume();
    return {{"ok", true}, {"state", "running"}};
  }
  if (cmd == "snapshot") {
    if (!request.contains("to") || !request["to"].is_string() || request["to"].get<std::string>().empty())
      return {{"ok", false}, {"error", "snapshot needs \"to\": the directory to write"}};
    return snapshot(request["to"]);
  }
  if (cmd == "quit") {
    machine_.stop();
    return {{"ok", true}};
  }
  return {{"ok", false}, {"error", concat("unknown command '", cmd, "' (status, pause, resume, snapshot, quit)")}};
}

nlohmann::json MachineControl::status() const {
  return {{"ok", true},
          {"state", machine_.paused() ? "paused" : "running"},
          {"uptime_s", millisecondsSince(started_) / 1000},
          {"vcpus", machine_.config().cpus},
          {"memory_mb", machine_.config().memory / kMiB},
          {"console", console_},
          {"cmdline", machine_.config().cmdline}};
}

// The guest is paused only to capture its state and fork a writer; the writer saves memory as it
// was at that instant (copy-on-write) while the guest runs on.
nlohmann::json MachineControl::snapshot(const std::string& dir) {
  auto start = std::chrono::steady_clock::now();
  bool wasPaused = machine_.paused();
  machine_.pause();
  double captureMs = 0, pausedMs = 0;
  SnapshotWriteStats stats;
  try {
    MachineState state = machine_.capture();
    captureMs = millisecondsSince(start);
    stats = writeSnapshotForked(dir, state, machine_.memory(), [&] {
      pausedMs = millisecondsSince(start);
      if (!wasPaused) machine_.resume();
    });
  } catch (...) {
    if (!wasPaused) machine_.resume();
    throw;
  }
  double totalMs = millisecondsSince(start);
  log::info("snapshot to ", dir, ": ", stats.fileBytes, " bytes, guest paused ", pausedMs, " ms");
  return {{"ok", true},
          {"path", snapshotPath(dir)},
          {"file_bytes", stats.fileBytes},
          {"state_bytes", stats.stateBytes},
          {"pages_written", stats.pagesWritten},
          {"zero_pages", stats.zeroPages},
          {"capture_ms", captureMs},
          {"paused_ms", wasPaused ? 0.0 : pausedMs},
          {"total_ms", totalMs}};
}

}  // namespace tandem::cli
