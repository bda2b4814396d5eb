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

}  // namespace tandem
