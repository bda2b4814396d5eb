#include "cli/migration_commands.hpp"

#include <unistd.h>

#include <atomic>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/arguments.hpp"
#include "cli/device_options.hpp"
#include "cli/protect_options.hpp"
#include "cli/serve.hpp"
#include "control/control_server.hpp"
#include "devices/console.hpp"
#include "secondary/migration_target.hpp"
#include "transport/link.hpp"

namespace tandem::cli {

const char* const kStandbyUsage =
    "usage: tandem standby --listen tcp://HOST:PORT [--disk PATH[,readonly]]... [--net tap=NAME[,mac=MAC]]...\n"
    "                      [--console stdio|tcp:ADDR:PORT|file:PATH] [--control PATH] [--metrics ADDR:PORT]\n"
    "                      [--prealloc SIZE] [--postcopy-wait SECONDS (600)] [--protect tcp://HOST:PORT ...]\n"
    "  waits for tandem migrate from a source, or for a protected primary (tandem run --protect) whose\n"
    "  guest it runs when the primary falls silent (and then protects onward with --protect)\n"
    "  --prealloc: allocate SIZE of guest memory and have the host back it before any source connects\n"
    "  (as QEMU's -mem-prealloc): a guest of that size is received into it, faster; another size\n"
    "  into new memory\n"
    "  --postcopy-wait: a postcopy whose source falls silent pauses after 3 s (vCPUs that need a page\n"
    "  still there wait, the others run) and goes on when the source is back; after this many seconds\n"
    "  of silence the guest cannot go on: it is stopped and tandem standby exits 1\n";

const char* const kMigrateUsage =
    "usage: tandem migrate --control PATH --to tcp://HOST:PORT [--mode precopy|postcopy|hybrid]\n"
    "                      [--max-downtime-ms 300] [--max-rounds 30] [--max-bandwidth SIZE (per second)]\n"
    "                      [--on-no-converge stop|postcopy|abort] [--compress auto|lz4|none]\n"
    "                      [--xbzrle-cache SIZE (64M; 0: none)] [--auto-converge] [--encode-threads 1]\n"
    "                      [--storage copy|shared | --shared-storage] [--postcopy-wait SECONDS (600)] [--json]\n"
    "       tandem migrate --control PATH --resume [--to tcp://HOST:PORT]\n"
    "       tandem migrate --control PATH --give-up --confirm [--why TEXT]\n"
    "  moves the guest of the tandem at --control to the standby at --to (which listens on PORT and PORT+1)\n"
    "  precopy: rounds while the guest runs, then a short stop; postcopy: the guest moves at once and\n"
    "  fetches its memory on demand; hybrid: precopy rounds, then postcopy for what is left.\n"
    "  --on-no-converge: what to do when the rounds cannot get the downtime under --max-downtime-ms\n"
    "  within --max-rounds: stop and copy anyway (default), switch to postcopy, or abort and leave\n"
    "  the guest running here.\n"
    "  --compress auto sends each page as the smallest of: zeros, its difference from the copy sent\n"
    "  before (XBZRLE, for pages in the --xbzrle-cache of recently sent pages), lz4, raw.\n"
    "  --auto-converge throttles the vCPUs step by step while the guest dirties memory faster than\n"
    "  half the rate the link carries it, and says so.\n"
    "  --storage (required for a guest with disks): copy moves the disks with the guest (the chunks\n"
    "  that differ, then those written meanwhile, the last ones inside the pause); shared moves\n"
    "  nothing, and the standby proves it opened the very same files (same host: device and inode;\n"
    "  elsewhere: sampled chunks after the source's final flush).\n"
    "  Postcopy recovery: a target silent for 3 s pauses the postcopy (postcopy-paused in status,\n"
    "  metrics and log); the guest stays paused here with every page it still needs. When the link\n"
    "  comes back it goes on by itself; --resume connects to the target anew (at --to, if it moved).\n"
    "  After --postcopy-wait seconds of silence, or --give-up, the migration fails and the guest stays\n"
    "  paused here, never resumed by itself: tandem quit ends it, tandem resume --confirm runs this\n"
    "  copy from the switch again (what it did on the target is lost).\n";

int standbyCommand(const std::vector<std::string>& args) {
  std::set<std::string> known = {"listen", "disk", "net", "console", "control", "metrics", "prealloc", "postcopy-wait"};
  known.insert(kProtectOptions.begin(), kProtectOptions.end());
  Arguments options(args, "standby", known);
  auto listen = options.value("listen");
  if (!listen) failBadInput("tandem standby needs --listen tcp://HOST:PORT");
  MachineConfig base;
  addDeviceOptions(options, base);
  auto protect = protectOptions(options);  // onward, after a takeover
  uint64_t preallocate = 0;
  if (auto size = options.value("prealloc")) {
    preallocate = parseSize(*size, "prealloc");
    if (preallocate < GuestMemory::kMinimumSize || preallocate % (2 * kMiB) || preallocate > hostAvailableMemory())
      failBadInput("--prealloc ", *size, " is not a guest memory size this host can give: a multiple of 2M from 16M to ",
                   hostAvailableMemory() / kMiB, "M");
  }
  for (const auto& disk : base.disks) dev::virtio::Blk probe(disk.path, disk.readonly);
  // Opened once, for every machine this standby builds: a tap takes one opener, and a committed
  // epoch's machine holds it while the next session's machine is built.
  for (auto& net : base.nets) net.opened = std::make_shared<dev::Tap>(net.tap);

  Fd signals = blockStopSignals();
  auto console = dev::openConsole(options.value("console").value_or("stdio"));
  PreparedMemory prepared(preallocate);
  prepared.prepare();  // before it listens: a source that connects finds it ready
  auto postcopyWait = std::chrono::seconds(parseNumber(options.value("postcopy-wait").value_or("600"), "postcopy-wait", 4, 86400));
  MigrationTarget target(*listen, base, *console, prepared, postcopyWait);
  std::optional<metrics::Server> metricsServer;  // (after target: it goes first)
  if (auto address = options.value("metrics")) {
    metricsServer.emplace(*address);
    metricsServer->addSource([&target](metrics::Families& out) { target.collectMetrics(out); });
  }
  log::info("standby listening on ", *listen);
  // While it waits, the control socket tells how the standby stands (role, committed epoch...).
  // Both it and the stop-signal watcher go once the guest runs: their threads are not joined
  // inside a migration's downtime.
  std::unique_ptr<ControlServer> waitingControl;
  if (auto control = options.value("control"))
    waitingControl = std::make_unique<ControlServer>(*control, [&](const nlohmann::json& request) -> nlohmann::json {
      if (request.is_object() && request.value("cmd", "") == "status")
        return {{"ok", true}, {"state", "standby"}, {"replication", target.status()}};
      return {{"ok", false}, {"error", "this standby runs no guest yet: only status is available"}};
    });
  auto stopWhileWaiting = std::make_unique<StopWhileWaiting>(signals);
  std::unique_ptr<Machine> machine = target.receive();
  stopWhileWaiting->handOver();
  if (target.tookOver() && protect) protect->generation = target.generation();
  if (metricsServer) {  // from here on the guest's figures (a protecting primary's, with --protect)
    metricsServer->removeSources();
    metricsServer->addSource([&target](metrics::Families& out) { target.collectRunningMetrics(out); });
  }
  auto started = std::chrono::steady_clock::now();
  ServeOptions serve;
  serve.onStarted = [&] {
    target.reportRunning();
    if (!target.tookOver())
      log::info("the migrated guest's vCPUs run here since ", log::utcTime(machine->startedAt()));
    else
      log::warn("failover: the guest's MAC announced and the guest running here at generation ", target.generation(), " in ",
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(), " ms",
                protect ? concat("; protecting it onward to ", protect->to) : std::string("; unprotected"));
    waitingControl.reset();  // (serveMachine opens the control socket anew after this)
    stopWhileWaiting.reset();
  };
  if (target.tookOver()) {
    serve.protect = protect;
    serve.tookOverAt = target.generation();
  } else {
    serve.arrival = [&target] { return target.arrivalStatus(); };
  }
  serve.metrics = metricsServer ? &*metricsServer : nullptr;
  return serveMachine(*machine, signals, options.value("control"), console->describe(), serve);
}

namespace {

// tandem migrate --resume / --give-up: to the migration under way at `control`.
int recoveryCommand(const Arguments& options, const std::string& control) {
  nlohmann::json request;
  if (options.flag("resume")) {
    request = {{"cmd", "migrate_resume"}};
    if (auto to = options.value("to")) {
      urgentEndpoint(*to);
      request["to"] = *to;
    }
  } else {
    if (!options.flag("confirm"))
      failBadInput("tandem migrate --give-up ends a postcopy unfinished: the guest, which ran on the target, then stays "
                   "paused here for good unless you run this older copy again; add --confirm");
    request = {{"cmd", "migrate_give_up"}, {"why", options.value("why").value_or("tandem migrate --give-up")}};
  }
  nlohmann::json reply = controlRequest(control, request);
  if (!reply.value("ok", false)) throw Error(ErrorKind::Failed, reply.value("error", std::string("the request failed")));
  std::cout << reply.value("state", std::string()) << "\n";
  return 0;
}

}  // namespace

int migrateCommand(const std::vector<std::string>& args) {
  Arguments options(args, "migrate",
                    {"control", "to", "mode", "max-downtime-ms", "max-rounds", "max-bandwidth", "on-no-converge", "compress",
                     "xbzrle-cache", "encode-threads", "storage", "postcopy-wait", "why"},
                    {"json", "auto-converge", "resume", "give-up", "confirm", "shared-storage"});
  auto control = options.value("control");
  auto to = options.value("to");
  if (options.flag("resume") && options.flag("give-up")) failBadInput("tandem migrate takes --resume or --give-up, not both");
  if (control && (options.flag("resume") || options.flag("give-up"))) return recoveryCommand(options, *control);
  if (!control || !to) failBadInput("tandem migrate needs --control PATH and --to tcp://HOST:PORT");
  std::string mode = options.value("mode").value_or("precopy");
  if (mode != "precopy" && mode != "postcopy" && mode != "hybrid")
    failBadInput("--mode is precopy, postcopy or hybrid, not '", mode, "'");
  std::string onNoConverge = options.value("on-no-converge").value_or("stop");
  if (onNoConverge != "stop" && onNoConverge != "postcopy" && onNoConverge != "abort")
    failBadInput("--on-no-converge is stop, postcopy or abort, not '", onNoConverge, "'");
  std::string compress = options.value("compress").value_or("auto");
  if (compress != "auto" && compress != "lz4" && compress != "none")
    failBadInput("--compress is auto, lz4 or none, not '", compress, "'");
  auto storage = options.value("storage");
  if (storage && *storage != "copy" && *storage != "shared") failBadInput("--storage is copy or shared, not '", *storage, "'");
  if (options.flag("shared-storage")) {  // (the same as --storage shared)
    if (storage && *storage != "shared") failBadInput("--shared-storage and --storage ", *storage, " contradict each other");
    storage = "shared";
  }
  urgentEndpoint(*to);  // checks the address: tcp://HOST:PORT with PORT+1 free for the urgent channel
  nlohmann::json request{{"cmd", "migrate"}, {"to", *to}, {"mode", mode}, {"on_no_converge", onNoConverge}, {"compress", compress}};
  if (options.flag("auto-converge")) request["auto_converge"] = true;
  if (storage) request["storage"] = *storage;
  if (auto v = options.value("encode-threads")) request["encode_threads"] = parseNumber(*v, "encode-threads", 1, 64);
  if (auto v = options.value("xbzrle-cache")) request["xbzrle_cache"] = parseSize(*v, "xbzrle-cache");
  if (auto v = options.value("max-bandwidth")) request["max_bandwidth"] = parseSize(*v, "max-bandwidth");
  if (auto v = options.value("max-downtime-ms")) request["max_downtime_ms"] = parseNumber(*v, "max-downtime-ms", 1, 600000);
  if (auto v = options.value("max-rounds")) request["max_rounds"] = parseNumber(*v, "max-rounds", 1, 1000);
  if (auto v = options.value("postcopy-wait")) request["postcopy_wait_s"] = parseNumber(*v, "postcopy-wait", 4, 86400);
  // The migration answers when it is over; meanwhile, on a terminal, a progress line from status.
  nlohmann::json reply;
  std::atomic<bool> over{false};
  std::thread worker([&] {
    try {
      reply = controlRequest(*control, request);
    } catch (const Error& e) {
      reply = {{"ok", false}, {"error", e.what()}};
    }
    over = true;
  });
  bool shown = false;
  if (::isatty(STDERR_FILENO)) {
    while (!over) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      try {
        auto status = controlRequest(*control, {{"cmd", "status"}});
        if (!over && status.contains("migration") && status["migration"].is_object()) {
          std::cerr << "\r\033[K" << describeMigration(status["migration"]) << std::flush;
          shown = true;
        }
      } catch (const Error&) {
        // the source ends as soon as the guest runs on the target
      }
    }
    if (shown) std::cerr << "\r\033[K" << std::flush;
  }
  worker.join();
  if (!reply.value("ok", false)) throw Error(ErrorKind::Failed, reply.value("error", std::string("the migration failed")));
  reply.erase("ok");
  if (options.flag("json")) {
    std::cout << reply.dump() << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(1) << "migrated to " << *to << " in " << reply["total_ms"].get<double>()
              << " ms (downtime " << reply["downtime_ms"].get<double>() << " ms, " << reply["rounds"] << " rounds, "
              << reply["bytes"].get<uint64_t>() / kMiB << " MiB sent)\n";
  }
  return 0;
}

std::string describeMigration(const nlohmann::json& m) {
  std::ostringstream line;
  line << std::fixed << std::setprecision(1) << m.value("phase", "?") << " (" << m.value("mode", "?") << ")";
  std::string phase = m.value("phase", "");
  if (phase == "failed" || phase == "undecided" || phase == "postcopy-failed") return line.str() + ": " + m.value("error", "");
  std::string silence = concat(" silent for ", static_cast<uint64_t>(m.value("silent_ms", 0.0) / 1000), " s of at most ",
                               static_cast<uint64_t>(m.value("postcopy_wait_ms", 0.0) / 1000), " s");
  if (m.value("direction", "") == "incoming")  // a migration target's view of its postcopy
    return concat(phase, " (incoming postcopy): ", m.value("pages_owed", uint64_t{0}), " pages still to come",
                  phase == "postcopy-paused" ? concat("; the source", silence) : std::string(), "; ", m.value("pauses", 0),
                  " pauses so far");
  if (phase == "postcopy-paused")
    return concat(line.str(), ": the target", silence, "; the guest's pages kept here (tandem migrate --resume, --give-up)");
  if (phase == "precopy") line << " round " << m.value("round", 0);
  if (phase == "precopy" || phase == "postcopy" || phase == "stop-and-copy")
    line << ": " << m.value("percent_sent", 0.0) << "% of " << m.value("pages_to_send", 0) << " pages";
  if (m.value("disk_chunks_to_send", uint64_t{0}) > 0)
    line << ", disks " << m.value("disk_chunks_sent", uint64_t{0}) << " of " << m.value("disk_chunks_to_send", uint64_t{0})
         << " chunks";
  line << ", " << m.value("bytes", uint64_t{0}) / kMiB << " MiB sent (disks " << m.value("disk_bytes", uint64_t{0}) / kMiB
       << " MiB), " << m.value("transfer_mib_s", 0.0) << " MiB/s";
  if (phase == "precopy")
    line << ", dirtying " << static_cast<uint64_t>(m.value("dirty_pages_s", 0.0)) << " pages/s, downtime ~"
         << m.value("expected_downtime_ms", 0.0) << " ms";
  if (m.value("throttle_percent", 0) > 0) line << ", vCPUs throttled " << m.value("throttle_percent", 0) << "%";
  if (phase != "completed") line << ", ~" << m.value("left_ms", 0.0) / 1000 << " s left";
  line << " (" << m.value("elapsed_ms", 0.0) / 1000 << " s so far)";
  return line.str();
}

}  // namespace tandem::cli
