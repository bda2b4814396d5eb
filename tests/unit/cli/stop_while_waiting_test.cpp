// A waiting standby's stop-signal watcher: a stop signal before handOver() ends the process, with
// exit code 0; after handOver() (a migrated guest is about to run) the signal waits in the
// signalfd for serveMachine. Each case runs in a child process: the watcher ends the process it
// is in, and the stop signals stay blocked there.
#include "cli/serve.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <thread>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

constexpr int kSignalWaited = 3;  // the child's exit code when its signalfd held the signal
constexpr int kNothing = 4;       // ... when the scenario ran out without either

int exitCodeOfChild(const std::function<int()>& scenario) {
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(scenario());
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool signalWaitsIn(const Fd& signals, int signo) {
  pollfd p{signals.get(), POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) return false;
  signalfd_siginfo info{};
  return ::read(signals.get(), &info, sizeof info) == sizeof info && static_cast<int>(info.ssi_signo) == signo;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stop_while_waiting)

BOOST_AUTO_TEST_CASE(a_stop_signal_while_waiting_ends_the_process_with_success) {
  int code = exitCodeOfChild([] {
    Fd signals = cli::blockStopSignals();
    cli::StopWhileWaiting watcher(signals);
    ::kill(::getpid(), SIGTERM);
    std::this_thread::sleep_for(2s);
    return kNothing;
  });
  BOOST_TEST(code == 0);
}

BOOST_AUTO_TEST_CASE(after_the_hand_over_a_stop_signal_waits_for_the_running_guest) {
  int code = exitCodeOfChild([] {
    Fd signals = cli::blockStopSignals();
    cli::StopWhileWaiting watcher(signals);
    watcher.handOver();
    ::kill(::getpid(), SIGHUP);
    return signalWaitsIn(signals, SIGHUP) ? kSignalWaited : kNothing;
  });
  BOOST_TEST(code == kSignalWaited);
}

BOOST_AUTO_TEST_SUITE_END()
