// VirtioMmio: the virtio-mmio transport, version 2 ("modern") register layout, for one device.
//
// The guest finds it on its command line (virtio_mmio.device=4K@ADDR:GSI, as QEMU's microvm
// writes it). Queue notifications do not exit to user space: the guest's write to QueueNotify
// signals the queue's eventfd (an ioeventfd the Machine registers) and the io thread calls
// notified(). Used buffers raise the device's interrupt at once, on the thread that used them (an
// irqfd would inject from a kernel worker later, after a capture may have read the LAPIC: the
// interrupt would be in neither the capture nor the eventfd, and lost; see Machine::pause).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/fd.hpp"
#include "devices/mmio_bus.hpp"
#include "devices/virtio/queue.hpp"

namespace tandem {
class GuestMemory;
}

namespace tandem::dev::virtio {

constexpr uint64_t kFeatureVersion1 = 1ull << 32;
constexpr uint64_t kTransportSize = 0x1000;
constexpr uint64_t kNotifyOffset = 0x50;

// What sits behind the transport: a block device, a network device.
class Device {
public:
  virtual ~Device() = default;
  virtual uint32_t deviceId() const = 0;
  virtual uint64_t features() const = 0;  // kFeatureVersion1 included
  virtual uint16_t queueCount() const = 0;
  virtual void readConfig(uint64_t offset, std::span<uint8_t> data) const = 0;
  // io thread, transport lock held: serves what queue `index` holds. Returns true if it put
  // anything in the used ring.
  virtual bool process(uint16_t index, Queue& queue, GuestMemory& memory) = 0;
};

class Transport final : public MmioDevice {
public:
  static constexpr size_t kSavedConfigBytes = 8;  // capacity of a disk, MAC of a NIC

  struct State {
    uint32_t deviceId = 0;             // which device this was, and what its config space said:
    std::vector<uint8_t> config;       // a restore onto another kind, disk size or MAC is refused
    uint32_t deviceFeaturesSel = 0, driverFeaturesSel = 0, queueSel = 0;
    uint64_t driverFeatures = 0;
    uint32_t status = 0, interruptStatus = 0, configGeneration = 0;
    std::vector<QueueState> queues;
    bool operator==(const State&) const = default;
  };

  // What a restore of this device's State needs of the device it goes into: the same kind, the
  // same features and queues, the same config (disk capacity, MAC). Compared when a replication
  // session starts, so that a takeover never finds out.
  struct Identity {
    uint32_t deviceId = 0;
    uint64_t features = 0;
    uint16_t queues = 0;
    std::vector<uint8_t> config;  // kSavedConfigBytes
    bool operator==(const Identity&) const = default;
  };

  // raiseInterrupt: an edge on the device's interrupt pin, injected before it returns.
  Transport(Device& device, GuestMemory& memory, std::function<void()> raiseInterrupt);
  Identity identity() const;

  // vCPU threads.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // io thread: the guest wrote `queue` to QueueNotify (or the machine kicks after a restore).
  void notified(uint16_t queue);
  void kickAll();

  // One eventfd per queue for the ioeventfd.
  int notifyFd(uint16_t queue) const { return notify_[queue]->fd(); }
  uint16_t queueCount() const { return static_cast<uint16_t>(notify_.size()); }

  State save() const;
  // Throws Error(BadInput) if state was saved from another kind of device or another config
  // (a disk of another size, a NIC with another MAC).
  void restore(const State& state);

private:
  uint32_t readRegister(uint64_t offset);
  void writeRegister(uint64_t offset, uint32_t value);
  void reset();

  Device& device_;
  GuestMemory& memory_;
  mutable std::mutex mutex_;
  State state_;
  std::vector<Queue> queues_;
  std::vector<std::unique_ptr<EventFd>> notify_;
  std::function<void()> raiseInterrupt_;
};

}  // namespace tandem::dev::virtio
