#include "devices/virtio/mmio_transport.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"

namespace tandem::dev::virtio {

namespace {

enum : uint64_t {
  kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
  kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
  kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
  kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
  kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueAvailLow = 0x090, kQueueAvailHigh = 0x094,
  kQueueUsedLow = 0x0a0, kQueueUsedHigh = 0x0a4, kConfigGeneration = 0x0fc, kConfig = 0x100,
};
constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x4d444e54;      // "TNDM"
constexpr uint32_t kInterruptUsedBuffer = 1;
constexpr uint32_t kStatusFeaturesOk = 8;

void setLow(uint64_t& field, uint32_t v) { field = (field & ~0xffffffffull) | v; }
void setHigh(uint64_t& field, uint32_t v) { field = (field & 0xffffffffull) | (uint64_t{v} << 32); }

}  // namespace

Transport::Transport(Device& device, GuestMemory& memory, std::function<void()> raiseInterrupt)
    : device_(device), memory_(memory), raiseInterrupt_(std::move(raiseInterrupt)) {
  queues_.resize(device.queueCount());
  for (uint16_t i = 0; i < device.queueCount(); ++i) notify_.push_back(std::make_unique<EventFd>());
}

void Transport::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset >= kConfig) return device_.readConfig(offset - kConfig, data);
  uint32_t value = data.size() == 4 && offset % 4 == 0 ? readRegister(offset) : 0;
  std::memcpy(data.data(), &value, std::min(data.size(), sizeof value));
}

void Transport::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset >= kConfig || data.size() != 4 || offset % 4 != 0) return;  // config space is read-only here
  uint32_t value = 0;
  std::memcpy(&value, data.data(), 4);
  writeRegister(offset, value);
}

uint32_t Transport::readRegister(uint64_t offset) {
  State& s = state_;
  Queue* q = s.queueSel < queues_.size() ? &queues_[s.queueSel] : nullptr;
  switch (offset) {
    case kMagic: return kMagicValue;
    case kVersion: return 2;
    case kDeviceId: return device_.deviceId();
    case kVendorId: return kVendor;
    case kDeviceFeatures:
      return s.deviceFeaturesSel < 2 ? static_cast<uint32_t>(device_.features() >> (32 * s.deviceFeaturesSel)) : 0;
    case kQueueNumMax: return q ? Queue::kMaxSize : 0;
    case kQueueReady: return q && q->state.ready ? 1 : 0;
    case kInterruptStatus: return s.interruptStatus;
    case kStatus: return s.status;
    case kConfigGeneration: return s.configGeneration;
    default: return 0;
  }
}

void Transport::writeRegister(uint64_t offset, uint32_t value) {
  State& s = state_;
  Queue* q = s.queueSel < queues_.size() ? &queues_[s.queueSel] : nullptr;
  switch (offset) {
    case kDeviceFeaturesSel: s.deviceFeaturesSel = value; break;
    case kDriverFeaturesSel: s.driverFeaturesSel = value; break;
    case kDriverFeatures:
      if (s.driverFeaturesSel == 0) setLow(s.driverFeatures, value);
      if (s.driverFeaturesSel == 1) setHigh(s.driverFeatures, value);
      break;
    case kQueueSel: s.queueSel = value; break;
    case kQueueNum:
      if (q && value > 0 && value <= Queue::kMaxSize && (value & (value - 1)) == 0) q->state.size = static_cast<uint16_t>(value);
      break;
    case kQueueReady:
      if (q) q->state.ready = value == 1;
      break;
    case kQueueDescLow: if (q) setLow(q->state.descTable, value); break;
    case kQueueDescHigh: if (q) setHigh(q->state.descTable, value); break;
    case kQueueAvailLow: if (q) setLow(q->state.availRing, value); break;
    case kQueueAvailHigh: if (q) setHigh(q->state.availRing, value); break;
    case kQueueUsedLow: if (q) setLow(q->state.usedRing, value); break;
    case kQueueUsedHigh: if (q) setHigh(q->state.usedRing, value); break;
    case kQueueNotify:
      // Normally the ioeventfd takes these writes in the kernel; a write that reaches us anyway
      // (another width, or before registration) is passed on the same way.
      if (value < notify_.size()) notify_[value]->signal();
      break;
    case kInterruptAck: s.interruptStatus &= ~value; break;
    case kStatus:
      if (value == 0) {
        reset();
      } else {
        // FEATURES_OK stays set only if the driver accepted nothing the device does not offer.
        if ((value & kStatusFeaturesOk) && (s.driverFeatures & ~device_.features())) value &= ~kStatusFeaturesOk;
        s.status = value;
      }
      break;
    default: break;
  }
}

void Transport::reset() {
  state_ = State{};  // deviceId and config are filled in by save(), not kept here
  for (auto& q : queues_) q.state = QueueState{};
}

void Transport::notified(uint16_t queue) {
  std::lock_guard lock(mutex_);
  // Not gated on DRIVER_OK: a queue that is not ready yields nothing, and a tap that is readable
  // before the driver is up must still be drained (its frames are dropped).
  if (queue >= queues_.size()) return;
  try {
    if (device_.process(queue, queues_[queue], memory_)) {
      state_.interruptStatus |= kInterruptUsedBuffer;
      if (queues_[queue].interruptWanted(memory_)) raiseInterrupt_();
    }
  } catch (const Error& e) {
    // A broken driver: the device stops (DEVICE_NEEDS_RESET), the VMM does not.
    log::warn("virtio device ", device_.deviceId(), " queue ", queue, ": ", e.what(), "; device needs a reset");
    state_.status |= 0x40;
  }
}

void Transport::kickAll() {
  for (uint16_t i = 0; i < queueCount(); ++i) notified(i);
}

Transport::Identity Transport::identity() const {
  Identity id{device_.deviceId(), device_.features(), queueCount(), std::vector<uint8_t>(kSavedConfigBytes)};
  device_.readConfig(0, id.config);
  return id;
}

Transport::State Transport::save() const {
  std::lock_guard lock(mutex_);
  State s = state_;
  s.deviceId = device_.deviceId();
  s.config.resize(kSavedConfigBytes);
  device_.readConfig(0, s.config);
  s.queues.clear();
  for (const auto& q : queues_) s.queues.push_back(q.state);
  return s;
}

void Transport::restore(const State& state) {
  std::lock_guard lock(mutex_);
  std::vector<uint8_t> config(kSavedConfigBytes);
  device_.readConfig(0, config);
  if (state.deviceId != device_.deviceId())
    failBadInput("the snapshot has a virtio device of type ", state.deviceId, " where this machine has type ",
                 device_.deviceId(), "; give --disk and --net in the snapshotted machine's order");
  if (state.config != config || state.queues.size() != queues_.size())
    failBadInput("a virtio device differs from the snapshotted one (type ", state.deviceId,
                 ": another disk size or MAC); give the same disks and MACs");
  state_ = state;
  for (size_t i = 0; i < queues_.size(); ++i) queues_[i].state = state.queues[i];
  state_.queues.clear();
}

}  // namespace tandem::dev::virtio
