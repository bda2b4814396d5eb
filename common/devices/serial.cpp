#include "devices/serial.hpp"

namespace tandem::dev {

namespace {

enum : uint16_t { kData = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7 };
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kIerRxData = 0x01, kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThrEmpty = 0x02, kIirRxData = 0x04, kIirFifo = 0xc0;
constexpr uint8_t kLsrDataReady = 0x01, kLsrThrEmpty = 0x20, kLsrTransmitterEmpty = 0x40;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;

}  // namespace

Serial::Serial(ConsoleOutput& output, std::function<void(bool)> setIrq, std::function<void()> onInput)
    : output_(output), setIrq_(std::move(setIrq)), onInput_(std::move(onInput)) {}

void Serial::read(uint16_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (auto& byte : data) byte = readRegister(offset);
  updateIrq();
}

void Serial::write(uint16_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  // A wider access than a byte writes its low byte (the 8250 has only byte registers).
  writeRegister(offset, data[0]);
  updateIrq();
}

Serial::State Serial::save() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void Serial::restore(const State& state) {
  std::lock_guard lock(mutex_);
  state_ = state;
  irqLevel_ = false;
  updateIrq();
}

size_t Serial::receive(std::span<const uint8_t> bytes) {
  size_t taken = 0;
  {
    std::lock_guard lock(mutex_);
    while (taken < bytes.size() && state_.rx.size() < kRxCapacity) state_.rx.push_back(bytes[taken++]);
    updateIrq();
  }
  if (taken) onInput_();
  return taken;
}

uint8_t Serial::readRegister(uint16_t offset) {
  State& s = state_;
  switch (offset) {
    case kData:
      if (s.lcr & kLcrDlab) return s.dll;
      if (s.rx.empty()) return 0;
      {
        uint8_t byte = s.rx.front();
        s.rx.pop_front();
        return byte;
      }
    case kIer:
      return (s.lcr & kLcrDlab) ? s.dlm : s.ier;
    case kIirFcr: {
      uint8_t iir = interruptIdentification();
      if (iir == kIirThrEmpty) s.thrEmptyInterrupt = false;  // reading IIR acknowledges THRE
      return iir | ((s.fcr & kFcrEnable) ? kIirFifo : 0);
    }
    case kLcr:
      return s.lcr;
    case kMcr:
      return s.mcr;
    case kLsr:
      return (s.rx.empty() ? 0 : kLsrDataReady) | kLsrThrEmpty | kLsrTransmitterEmpty;
    case kMsr:
      if (s.mcr & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        return static_cast<uint8_t>(((s.mcr & 0x01) << 5) | ((s.mcr & 0x02) << 3) | ((s.mcr & 0x04) << 4) |
                                    ((s.mcr & 0x08) << 4));
      }
      return s.msr;
    case kScr:
      return s.scr;
    default:
      return 0xff;
  }
}

void Serial::writeRegister(uint16_t offset, uint8_t value) {
  State& s = state_;
  switch (offset) {
    case kData:
      if (s.lcr & kLcrDlab) {
        s.dll = value;
      } else if (s.mcr & kMcrLoop) {
        if (s.rx.size() < kRxCapacity) s.rx.push_back(value);
        s.thrEmptyInterrupt = true;
      } else {
        output_.write(std::span(&value, 1));
        s.thrEmptyInterrupt = true;  // the byte left at once: THR is empty again
      }
      break;
    case kIer:
      if (s.lcr & kLcrDlab) {
        s.dlm = value;
      } else {
        // Enabling the THRE interrupt while THR is empty raises it at once, as the chip does.
        if ((value & kIerThrEmpty) && !(s.ier & kIerThrEmpty)) s.thrEmptyInterrupt = true;
        s.ier = value & 0x0f;
      }
      break;
    case kIirFcr:
      s.fcr = value & 0xc9;
      if (value & kFcrClearRx) s.rx.clear();
      break;
    case kLcr:
      s.lcr = value;
      break;
    case kMcr:
      s.mcr = value & 0x1f;
      break;
    case kScr:
      s.scr = value;
      break;
    default:
      break;  // LSR and MSR are read-only
  }
}

uint8_t Serial::interruptIdentification() const {
  if ((state_.ier & kIerRxData) && !state_.rx.empty()) return kIirRxData;
  if ((state_.ier & kIerThrEmpty) && state_.thrEmptyInterrupt) return kIirThrEmpty;
  return kIirNone;
}

void Serial::updateIrq() {
  bool level = interruptIdentification() != kIirNone;
  if (level != irqLevel_) {
    irqLevel_ = level;
    setIrq_(level);
  }
}

}  // namespace tandem::dev
