#include "cli/serve.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/machine_control.hpp"
#include "control/control_server.hpp"

namespace tandem::cli {

Fd blockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  checkSys(::pthread_sigmask(SIG_BLOCK, &set, nullptr), "pthread_sigmask");
  return Fd(checkSys(::signalfd(-1, &set, SFD_CLOEXEC), "signalfd"));
}

StopWhileWaiting::StopWhileWaiting(const Fd& stopSignals) {
  watcher_ = std::make_unique<NamedThread>("stop-watch", [this, fd = stopSignals.get()] {
    pollfd p[2] = {{fd, POLLIN, 0}, {done_.fd(), POLLIN, 0}};
    while (::poll(p, 2, -1) < 0 && errno == EINTR) {}
    if (p[1].revents || !(p[0].revents & POLLIN)) return;
    signalfd_siginfo info{};
    if (::read(fd, &info, sizeof info) != sizeof info) return;
    std::lock_guard lock(mutex_);
    if (handedOver_) {  // too late to stop here: serveMachine takes it
      ::kill(::getpid(), static_cast<int>(info.ssi_signo));
      return;
    }
    log::warn("signal ", info.ssi_signo, ": no guest runs here yet; the standby stops");
    std::_Exit(0);
  });
}

StopWhileWaiting::~StopWhileWaiting() {
  handOver();
  watcher_.reset();
}

void StopWhileWaiting::handOver() {
  std::lock_guard lock(mutex_);
  if (handedOver_) return;
  handedOver_ = true;
  done_.signal();
}

int serveMachine(Machine& machine, const Fd& stopSignals, const std::optional<std::string>& controlPath,
                 const std::string& consoleDescription, const ServeOptions& options) {
  MachineControl control(machine, consoleDescription);
  Protection protection(machine);
  if (options.protect) protection.protectFromBoot(*options.protect);  // holds the output from here on
  else if (options.tookOverAt)
    protection.runUnprotected(*options.tookOverAt, "this standby took the guest over and has no --protect: no standby holds it now");
  control.setProtection(&protection);
  control.setArrival(options.arrival);
  metrics::Server* metrics = options.metrics;
  if (metrics) {
    metrics->addSource([&protection](metrics::Families& out) { protection.collectMetrics(out); });
    metrics->addSource([&control](metrics::Families& out) { control.collectMetrics(out); });
  }
  machine.start();
  if (options.onStarted) options.onStarted();
  std::unique_ptr<ControlServer> server;
  if (controlPath)
    server = std::make_unique<ControlServer>(
        *controlPath, [&](const nlohmann::json& r) { return control.handle(r); }, std::set<std::string>{"migrate"});
  protection.start();

  for (;;) {
    pollfd p[2] = {{machine.exitFd(), POLLIN, 0}, {stopSignals.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) throwErrno("poll", errno);
    if (p[0].revents) break;
    if (p[1].revents) {
      signalfd_siginfo info{};
      [[maybe_unused]] auto n = ::read(stopSignals.get(), &info, sizeof info);
      log::info("signal ", info.ssi_signo, ": stopping the guest");
      machine.stop();
    }
  }
  server.reset();  // no request may reach a machine that is ending
  // An orderly end (a poweroff, quit, a stop signal) is told to the standby, which then never runs
  // the guest; a failure of this host or of the guest's run is not: the standby takes over.
  auto ended = machine.exitReason();
  if (ended && (ended->kind == MachineExit::Kind::PowerOff || ended->kind == MachineExit::Kind::Stopped))
    protection.end(ended->kind == MachineExit::Kind::PowerOff ? ended->message : "the guest was stopped here (quit or a stop signal)");
  if (metrics) metrics->removeSources();
  protection.stop();
  MachineExit exit = machine.wait();
  switch (exit.kind) {
    case MachineExit::Kind::PowerOff:
      if (exit.status == 0) return 0;
      log::error(exit.message);
      return 1;
    case MachineExit::Kind::Stopped:
      return 0;
    case MachineExit::Kind::GuestFault:
    case MachineExit::Kind::HostError:
      log::error(exit.message);
      return 1;
  }
  return 1;
}

}  // namespace tandem::cli
