// NamedThread: a std::thread with a name (seen in ps and gdb) that joins in its destructor and
// keeps the exception its body threw, for the owner to rethrow.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace tandem {

class NamedThread {
public:
  NamedThread(std::string name, std::function<void()> body);
  // Not movable: the running body refers to this object. Hold it in a std::unique_ptr to move it.
  NamedThread(const NamedThread&) = delete;
  NamedThread& operator=(const NamedThread&) = delete;
  ~NamedThread();

  void join();
  // After join(): rethrows what the body threw, if anything.
  void rethrowIfFailed();
  std::thread::native_handle_type nativeHandle() { return thread_.native_handle(); }

private:
  std::string name_;
  std::exception_ptr failure_;
  std::thread thread_;
};

// While it lives, the calling thread runs under SCHED_FIFO (priority 1): nothing of normal
// priority preempts it. For short stretches whose length matters more than anything else (a
// released epoch's output written out right after the standby's answer). Where real-time
// scheduling is not allowed, it changes nothing (and says so once).
class RealtimeScope {
public:
  RealtimeScope();
  ~RealtimeScope();
  RealtimeScope(const RealtimeScope&) = delete;
  RealtimeScope& operator=(const RealtimeScope&) = delete;

private:
  bool raised_ = false;
};

}  // namespace tandem
