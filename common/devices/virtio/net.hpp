// Net: a virtio network device with one queue pair (0 receive, 1 transmit) on a tap.
//
// Every frame the guest sends leaves through the `send` it was given (the Machine's OutputGate,
// which holds frames of a protected guest until their epoch is acknowledged). Received frames are written into guest memory
// through GuestMemory, like every host write. No offloads: the virtio-net header is all zeros.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "devices/tap.hpp"
#include "devices/virtio/mmio_transport.hpp"

namespace tandem::dev::virtio {

using MacAddress = std::array<uint8_t, 6>;

// "52:54:00:12:34:56" -> bytes; throws Error(BadInput) for anything else.
MacAddress parseMac(const std::string& text);
// A stable, locally administered MAC derived from a name (the tap's, when none is given).
MacAddress macFromName(const std::string& name);
std::string formatMac(const MacAddress& mac);

class Net final : public Device {
public:
  static constexpr uint16_t kReceiveQueue = 0, kTransmitQueue = 1;

  using Send = std::function<void(std::span<const uint8_t> frame)>;
  Net(Tap& tap, MacAddress mac, Send send);

  uint32_t deviceId() const override { return 1; }
  uint64_t features() const override;
  uint16_t queueCount() const override { return 2; }
  void readConfig(uint64_t offset, std::span<uint8_t> data) const override;
  bool process(uint16_t index, Queue& queue, GuestMemory& memory) override;

  // io thread, transport lock held, when the tap is readable: delivers what fits in the receive
  // queue; frames with no buffer to go to are dropped and counted.
  bool receive(Queue& receiveQueue, GuestMemory& memory);

  // Broadcasts a RARP frame from the guest's MAC, so switches learn where the guest is now
  // (after a restore, a migration or a failover), as QEMU's announce does. Straight to the tap:
  // it is the host speaking, not the guest.
  void announce();

  const MacAddress& mac() const { return mac_; }
  uint64_t droppedFrames() const { return dropped_.load(); }

private:
  Tap& tap_;
  MacAddress mac_;
  Send send_;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace tandem::dev::virtio
