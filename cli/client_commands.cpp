#include "cli/client_commands.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

#include "base/error.hpp"
#include "cli/arguments.hpp"
#include "cli/migration_commands.hpp"
#include "cli/protect_options.hpp"
#include "control/control_server.hpp"

namespace tandem::cli {

namespace {

std::string controlPath(const Arguments& options, const std::string& command) {
  auto path = options.value("control");
  if (!path) failBadInput("tandem ", command, " needs --control PATH, the socket given to tandem run --control");
  return *path;
}

// Sends the request; a refusal becomes one sentence on stderr and exit code 1.
nlohmann::json ask(const std::string& path, const nlohmann::json& request) {
  nlohmann::json reply = controlRequest(path, request);
  if (!reply.value("ok", false)) throw Error(ErrorKind::Failed, reply.value("error", std::string("the request failed")));
  return reply;
}

// The replication block of a status reply, for people: a primary's epochs, or a standby's watch.
std::string describeReplication(const nlohmann::json& r) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  auto num = [&](const char* key) { return r.value(key, 0.0); };
  auto count = [&](const char* key) { return r.value(key, uint64_t{0}); };
  if (r.value("role", "") == "primary") {
    out << "replication: primary, " << r.value("state", "") << " (standby " << r.value("standby", "") << ", generation "
        << count("generation") << ", " << count("sessions") << " sessions)" << (r.value("protected", false) ? "" : "; NOT PROTECTED")
        << "\n  epoch " << count("epoch") << ", last acknowledged " << count("last_acked_epoch") << ", at most every "
        << count("epoch_ms") << " ms; pause " << num("epoch_pause_ms") << " ms (p50 " << num("epoch_pause_p50_ms") << ", p99 "
        << num("epoch_pause_p99_ms") << ")\n  dirty pages per epoch " << count("dirty_pages_per_epoch") << " (p50 "
        << num("dirty_pages_p50") << "), disk writes " << count("disk_write_bytes_per_epoch") << " bytes per epoch, ack latency "
        << num("ack_latency_ms") << " ms\n  held output " << count("held_output_bytes") << " bytes (oldest "
        << num("held_output_oldest_ms") << " ms), released " << count("released_output_bytes") << " bytes; heartbeat heard "
        << num("heartbeat_age_ms") << " ms ago"
        << (r.value("paused_for_output", false) ? "; guest PAUSED: held output over its limit" : "");
  } else {
    out << "replication: standby, " << r.value("state", "") << " (generation " << count("generation") << ", " << count("sessions")
        << " sessions)\n  committed epoch " << count("committed_epoch") << "; heartbeat heard " << num("heartbeat_age_ms")
        << " ms ago, takes over after " << num("failover_after_ms") << " ms\n  discarded epochs " << count("discarded_epochs")
        << ", ignored replays " << count("ignored_replays") << ", disk bytes applied " << count("disk_bytes_applied");
  }
  return out.str();
}

// "user mode (CPL 3, native): 1234 exits from CPL 3, 5 from CPL 0".
std::string describePrivilege(const nlohmann::json& p) {
  if (!p.is_object()) return "unknown";
  std::string mode = p.value("mode", "unknown");
  std::string where = mode == "user" ? "user mode (CPL 3, native)" : mode == "kernel" ? "kernel mode (CPL 0, emulated)" : "no exits yet";
  return concat(where, ": ", p.value("user_exits", 0ull), " exits from CPL 3, ", p.value("kernel_exits", 0ull), " from CPL 0");
}

}  // namespace

int statusCommand(const std::vector<std::string>& args) {
  Arguments options(args, "status", {"control"}, {"json"});
  auto reply = ask(controlPath(options, "status"), {{"cmd", "status"}});
  reply.erase("ok");
  if (options.flag("json")) {
    std::cout << reply.dump() << "\n";
    return 0;
  }
  std::cout << "state:    " << reply.value("state", "") << "\n";
  if (reply.contains("uptime_s"))  // a running guest (a waiting standby has none yet)
    std::cout << "uptime:   " << std::fixed << std::setprecision(1) << reply["uptime_s"].get<double>() << " s\n"
              << "vcpus:    " << reply["vcpus"] << "\n"
              << "memory:   " << reply["memory_mb"] << " MiB\n"
              << "guest:    " << describePrivilege(reply["guest_privilege"]) << "\n"
              << "console:  " << reply["console"].get<std::string>() << "\n"
              << "cmdline:  " << reply["cmdline"].get<std::string>() << "\n";
  if (reply.contains("migration") && reply["migration"].is_object())
    std::cout << "migration: " << describeMigration(reply["migration"]) << "\n";
  if (reply.contains("replication") && reply["replication"].is_object())
    std::cout << describeReplication(reply["replication"]) << "\n";
  return 0;
}

int snapshotCommand(const std::vector<std::string>& args) {
  Arguments options(args, "snapshot", {"control", "to"}, {"json"});
  auto to = options.value("to");
  if (!to) failBadInput("tandem snapshot needs --to DIR, the directory to write");
  auto reply = ask(controlPath(options, "snapshot"), {{"cmd", "snapshot"}, {"to", *to}});
  reply.erase("ok");
  if (options.flag("json")) {
    std::cout << reply.dump() << "\n";
    return 0;
  }
  std::cout << std::fixed << std::setprecision(1) << "wrote " << reply["path"].get<std::string>() << ": "
            << reply["file_bytes"].get<uint64_t>() / 1024 << " KiB (" << reply["pages_written"] << " pages, "
            << reply["zero_pages"] << " zero pages not written, " << reply["passes"] << " passes); guest paused "
            << std::setprecision(2) << reply["paused_ms"].get<double>() << " ms for " << reply["pages_in_pause"]
            << " pages and its state, total " << std::setprecision(1) << reply["total_ms"].get<double>() << " ms\n";
  return 0;
}

int failoverCommand(const std::vector<std::string>& args) {
  Arguments options(args, "failover", {"control"});
  ask(controlPath(options, "failover"), {{"cmd", "failover"}});
  std::cout << "the standby runs the guest now; this tandem stops\n";
  return 0;
}

int protectCommand(const std::vector<std::string>& args) {
  Arguments options(args, "protect", {"control", "to", "epoch-ms", "heartbeat-ms", "failover-after-ms"});
  auto to = options.value("to");
  if (!to) failBadInput("tandem protect needs --to tcp://HOST:PORT, the address a tandem standby listens on");
  replicationOptions(options, *to, ReplicationOptions{});  // refuses a malformed address or knob here
  nlohmann::json request{{"cmd", "protect"}, {"to", *to}};
  for (auto [option, key] : {std::pair{"epoch-ms", "epoch_ms"}, {"heartbeat-ms", "heartbeat_ms"}, {"failover-after-ms", "failover_after_ms"}})
    if (auto value = options.value(option)) request[key] = std::stoull(*value);
  ask(controlPath(options, "protect"), request);
  std::cout << "protecting the guest by " << *to << " (syncing; tandem status says when it is protected)\n";
  return 0;
}

int unprotectCommand(const std::vector<std::string>& args) {
  Arguments options(args, "unprotect", {"control", "why"}, {"confirm"});
  if (!options.flag("confirm"))
    failBadInput("tandem unprotect shows the output no standby acknowledged and runs the guest without one; if the standby "
                 "still runs it may take the guest over as well: check that it is down, then add --confirm");
  ask(controlPath(options, "unprotect"),
      {{"cmd", "unprotect"}, {"confirm", true}, {"why", options.value("why").value_or("tandem unprotect")}});
  std::cout << "the guest runs unprotected; its held output is shown (tandem protect --to protects it again)\n";
  return 0;
}

int pauseResumeCommand(const std::string& command, const std::vector<std::string>& args) {
  Arguments options(args, command, {"control"}, {"confirm"});
  nlohmann::json request{{"cmd", command}};
  if (options.flag("confirm")) request["confirm"] = true;  // resume after a failed postcopy
  auto reply = ask(controlPath(options, command), request);
  std::cout << reply["state"].get<std::string>() << "\n";
  return 0;
}

}  // namespace tandem::cli
