// What the control socket of a running machine answers: status, pause, resume, snapshot, quit.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "machine/machine.hpp"

namespace tandem::cli {

class MachineControl {
public:
  MachineControl(Machine& machine, std::string console) : machine_(machine), console_(std::move(console)) {}

  // Runs on the control thread; the machine's owner only waits meanwhile.
  nlohmann::json handle(const nlohmann::json& request);

private:
  nlohmann::json status() const;
  nlohmann::json snapshot(const std::string& dir);
  nlohmann::json migrate(const nlohmann::json& request);

  Machine& machine_;
  std::string console_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace tandem::cli
