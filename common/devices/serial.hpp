// Serial: a 16550A UART at 0x3f8 (COM1), IRQ 4. Transmitting is instantaneous (the byte goes to the
// console at once); received bytes wait in a FIFO larger than the chip's so a pasted line is not lost.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "devices/pio_bus.hpp"

namespace tandem::dev {

// Where the guest's console output goes. Called on a vCPU thread, under the serial's lock.
class ConsoleOutput {
public:
  virtual ~ConsoleOutput() = default;
  virtual void write(std::span<const uint8_t> bytes) = 0;
};

class Serial final : public PioDevice {
public:
  static constexpr uint16_t kBase = 0x3f8;
  static constexpr uint16_t kLength = 8;
  static constexpr uint32_t kIrq = 4;
  static constexpr size_t kRxCapacity = 4096;

  // The registers as the guest sees them, and the bytes it has not read yet.
  struct State {
    uint8_t ier = 0, lcr = 0, mcr = 0x08, msr = 0xb0, scr = 0, fcr = 0;
    uint8_t dll = 0x0c, dlm = 0;
    bool thrEmptyInterrupt = false;  // THRE interrupt pending until IIR reports it or THR is written
    std::deque<uint8_t> rx;
    bool operator==(const State&) const = default;
  };

  // setIrq(level) drives the interrupt line; onInput() runs when bytes arrive. Both outlive this.
  Serial(ConsoleOutput& output, std::function<void(bool)> setIrq, std::function<void()> onInput);

  void read(uint16_t offset, std::span<uint8_t> data) override;
  void write(uint16_t offset, std::span<const uint8_t> data) override;

  // The machine is paused: no vCPU is inside read() or write().
  State save() const;
  // Once, on a fresh device; recomputes the interrupt line from the registers.
  void restore(const State& state);

  // From the console's reader thread: queues what fits and returns how many bytes it took.
  size_t receive(std::span<const uint8_t> bytes);

private:
  uint8_t readRegister(uint16_t offset);
  void writeRegister(uint16_t offset, uint8_t value);
  uint8_t interruptIdentification() const;
  void updateIrq();

  ConsoleOutput& output_;
  std::function<void(bool)> setIrq_;
  std::function<void()> onInput_;
  mutable std::mutex mutex_;
  State state_;
  bool irqLevel_ = false;
};

}  // namespace tandem::dev
