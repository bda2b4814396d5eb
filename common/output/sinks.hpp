// The sinks behind the OutputGate. The serial console: the UART writes into GatedConsole, the gate
// emits what it releases into ConsoleSink, which writes to the real console. Each tap: virtio-net
// hands its frames to the gate, which emits them into the tap's TapSink.
#pragma once

#include "devices/serial.hpp"
#include "devices/tap.hpp"
#include "output/output_gate.hpp"

namespace tandem {

class ConsoleSink final : public OutputSink {
public:
  static constexpr uint32_t kChannel = 0;
  explicit ConsoleSink(dev::ConsoleOutput& console) : OutputSink(kChannel), console_(console) {}
  void emit(std::span<const uint8_t> bytes) override { console_.write(bytes); }

private:
  dev::ConsoleOutput& console_;
};

class GatedConsole final : public dev::ConsoleOutput {
public:
  GatedConsole(OutputGate& gate, OutputSink& sink) : gate_(gate), sink_(sink) {}
  void write(std::span<const uint8_t> bytes) override { gate_.write(sink_, bytes); }

private:
  OutputGate& gate_;
  OutputSink& sink_;
};

class TapSink final : public OutputSink {
public:
  // NIC n (in --net order) is channel 1 + n.
  TapSink(dev::Tap& tap, uint32_t nic) : OutputSink(1 + nic), tap_(tap) {}
  void emit(std::span<const uint8_t> frame) override { tap_.write(frame); }

private:
  dev::Tap& tap_;
};

}  // namespace tandem
