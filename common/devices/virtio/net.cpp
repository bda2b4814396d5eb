#include "devices/virtio/net.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

namespace tandem::dev::virtio {

namespace {

constexpr uint64_t kFeatureMac = 1ull << 5;
constexpr size_t kHeaderBytes = 12;  // struct virtio_net_hdr with num_buffers (virtio 1.x)

}  // namespace

MacAddress parseMac(const std::string& text) {
  MacAddress mac{};
  unsigned b[6];
  char extra;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &extra) != 6 ||
      text.size() != 17)
    failBadInput("MAC '", text, "' is malformed; write it like 52:54:00:12:34:56");
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(b[i]);
  if (mac[0] & 1) failBadInput("MAC ", text, " is a multicast address; a NIC needs a unicast one");
  return mac;
}

MacAddress macFromName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return MacAddress{0x52, 0x54, 0x00, static_cast<uint8_t>(h >> 16), static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)};
}

std::string formatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

Net::Net(Tap& tap, MacAddress mac, Send send) : tap_(tap), mac_(mac), send_(std::move(send)) {}

uint64_t Net::features() const { return kFeatureVersion1 | kFeatureMac; }

void Net::readConfig(uint64_t offset, std::span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < mac_.size() ? mac_[offset + i] : 0;
}

bool Net::process(uint16_t index, Queue& queue, GuestMemory& memory) {
  if (index != kTransmitQueue) return receive(queue, memory);  // new receive buffers: fill them
  bool used = false;
  std::vector<uint8_t> frame;
  while (auto chain = queue.pop(memory)) {
    frame.clear();
    for (const auto& b : chain->buffers) {
      if (b.deviceWritable) continue;
      const uint8_t* p = memory.hostAddress(b.gpa, b.length);
      frame.insert(frame.end(), p, p + b.length);
    }
    if (frame.size() > kHeaderBytes) send_(std::span(frame).subspan(kHeaderBytes));
    queue.pushUsed(memory, chain->head, 0);
    used = true;
  }
  return used;
}

void Net::announce() {
  std::array<uint8_t, 60> frame{};  // minimum Ethernet frame, zero padded
  std::fill(frame.begin(), frame.begin() + 6, 0xff);
  std::copy(mac_.begin(), mac_.end(), frame.begin() + 6);
  const uint8_t rarp[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};  // type, htype, ptype, sizes, op 3
  std::copy(std::begin(rarp), std::end(rarp), frame.begin() + 12);
  std::copy(mac_.begin(), mac_.end(), frame.begin() + 22);  // sender MAC; sender IP 0
  std::copy(mac_.begin(), mac_.end(), frame.begin() + 32);  // target MAC; target IP 0
  tap_.write(frame);
}

bool Net::receive(Queue& queue, GuestMemory& memory) {
  bool used = false;
  std::array<uint8_t, kHeaderBytes + Tap::kMaxFrame> packet{};  // header stays zero
  for (;;) {
    size_t n = tap_.read(std::span(packet).subspan(kHeaderBytes));
    if (n == 0) return used;
    auto chain = queue.pop(memory);
    if (!chain) {
      ++dropped_;
      continue;
    }
    size_t total = kHeaderBytes + n, done = 0;
    for (const auto& b : chain->buffers) {
      if (!b.deviceWritable || done == total) continue;
      size_t part = std::min<size_t>(b.length, total - done);
      memory.write(b.gpa, std::span(packet.data() + done, part));
      done += part;
    }
    if (done < total) ++dropped_;  // buffers too small: the guest gets a truncated frame it will ignore
    queue.pushUsed(memory, chain->head, static_cast<uint32_t>(done));
    used = true;
  }
}

}  // namespace tandem::dev::virtio
