// The device side of a split virtqueue and the virtio-mmio registers, on plain guest memory.
#include "devices/virtio/queue.hpp"

#include <boost/test/unit_test.hpp>

#include <cstring>

#include "base/error.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "memory/guest_memory.hpp"

using namespace tandem;
using namespace tandem::dev::virtio;

namespace {

constexpr uint64_t kDesc = 0x10000, kAvail = 0x11000, kUsed = 0x12000;

struct Driver {
  GuestMemory memory{16 * kMiB};
  Queue queue;
  uint16_t availIdx = 0;
  Driver() { queue.state = QueueState{8, true, kDesc, kAvail, kUsed, 0, 0}; }

  template <typename T>
  void put(uint64_t gpa, T v) {
    memory.write(Gpa{gpa}, std::span(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }
  template <typename T>
  T get(uint64_t gpa) {
    T v;
    memory.read(Gpa{gpa}, std::span(reinterpret_cast<uint8_t*>(&v), sizeof v));
    return v;
  }
  void descriptor(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    put(kDesc + 16 * i, addr);
    put(kDesc + 16 * i + 8, len);
    put(kDesc + 16 * i + 12, flags);
    put(kDesc + 16 * i + 14, next);
  }
  void offer(uint16_t head) {
    put<uint16_t>(kAvail + 4 + 2 * (availIdx % 8), head);
    put<uint16_t>(kAvail + 2, ++availIdx);
  }
};

struct NullDevice : Device {
  uint32_t deviceId() const override { return 2; }
  uint64_t features() const override { return kFeatureVersion1 | (1u << 9); }
  uint16_t queueCount() const override { return 1; }
  void readConfig(uint64_t, std::span<uint8_t> data) const override { std::fill(data.begin(), data.end(), 0x5a); }
  bool process(uint16_t, Queue&, GuestMemory&) override { return false; }
};

uint32_t reg(Transport& t, uint64_t offset) {
  uint32_t v = 0;
  t.read(offset, std::span(reinterpret_cast<uint8_t*>(&v), 4));
  return v;
}
void setReg(Transport& t, uint64_t offset, uint32_t v) { t.write(offset, std::span(reinterpret_cast<const uint8_t*>(&v), 4)); }

}  // namespace

BOOST_AUTO_TEST_SUITE(virtio_queue)

BOOST_FIXTURE_TEST_CASE(pops_chains_in_order_and_returns_them_through_the_used_ring, Driver) {
  BOOST_TEST(!queue.pop(memory).has_value());
  descriptor(0, 0x20000, 16, 1, 1);  // NEXT
  descriptor(1, 0x21000, 512, 3, 2); // NEXT | WRITE
  descriptor(2, 0x22000, 1, 2, 0);   // WRITE
  offer(0);
  descriptor(5, 0x23000, 64, 0, 0);
  offer(5);

  auto first = queue.pop(memory);
  BOOST_REQUIRE(first);
  BOOST_TEST(first->head == 0);
  BOOST_REQUIRE_EQUAL(first->buffers.size(), 3u);
  BOOST_TEST(first->buffers[1].gpa.value == 0x21000u);
  BOOST_TEST(first->buffers[1].length == 512u);
  BOOST_TEST(first->buffers[1].deviceWritable);
  BOOST_TEST(!first->buffers[0].deviceWritable);
  auto second = queue.pop(memory);
  BOOST_REQUIRE(second);
  BOOST_TEST(second->head == 5);
  BOOST_TEST(!queue.pop(memory).has_value());

  queue.pushUsed(memory, 5, 0);
  queue.pushUsed(memory, 0, 513);
  BOOST_TEST(get<uint16_t>(kUsed + 2) == 2);
  BOOST_TEST(get<uint32_t>(kUsed + 4) == 5u);
  BOOST_TEST(get<uint32_t>(kUsed + 12) == 0u);
  BOOST_TEST(get<uint32_t>(kUsed + 16) == 513u);
}

BOOST_FIXTURE_TEST_CASE(a_looping_or_out_of_range_chain_is_an_error_not_a_hang, Driver) {
  descriptor(0, 0x20000, 16, 1, 1);
  descriptor(1, 0x20000, 16, 1, 0);  // back to 0: a loop
  offer(0);
  BOOST_CHECK_THROW(queue.pop(memory), Error);
  descriptor(2, 0x20000, 16, 1, 200);  // next out of range
  offer(2);
  BOOST_CHECK_THROW(queue.pop(memory), Error);
  descriptor(3, 64 * kMiB, 16, 0, 0);  // buffer outside RAM
  offer(3);
  BOOST_CHECK_THROW(queue.pop(memory), Error);
}

BOOST_AUTO_TEST_CASE(transport_negotiates_features_sets_up_a_queue_and_resets) {
  GuestMemory memory(16 * kMiB);
  NullDevice device;
  Transport t(device, memory, [] {});
  BOOST_TEST(reg(t, 0x000) == 0x74726976u);
  BOOST_TEST(reg(t, 0x004) == 2u);
  BOOST_TEST(reg(t, 0x008) == 2u);
  setReg(t, 0x014, 1);
  BOOST_TEST(reg(t, 0x010) == 1u);  // VERSION_1 in the high word

  setReg(t, 0x024, 1);
  setReg(t, 0x020, 1);
  setReg(t, 0x024, 0);
  setReg(t, 0x020, 1u << 3);  // a feature the device does not offer
  setReg(t, 0x070, 1 | 2 | 8);
  BOOST_TEST((reg(t, 0x070) & 8) == 0u);  // FEATURES_OK refused
  setReg(t, 0x020, 1u << 9);
  setReg(t, 0x070, 1 | 2 | 8);
  BOOST_TEST((reg(t, 0x070) & 8) == 8u);

  setReg(t, 0x030, 0);
  BOOST_TEST(reg(t, 0x034) == Queue::kMaxSize);
  setReg(t, 0x038, 16);
  setReg(t, 0x080, 0x10000);
  setReg(t, 0x090, 0x11000);
  setReg(t, 0x0a0, 0x12000);
  setReg(t, 0x044, 1);
  auto saved = t.save();
  BOOST_REQUIRE_EQUAL(saved.queues.size(), 1u);
  BOOST_TEST(saved.queues[0].size == 16);
  BOOST_TEST(saved.queues[0].ready);
  BOOST_TEST(saved.queues[0].usedRing == 0x12000u);
  BOOST_TEST(saved.driverFeatures == (kFeatureVersion1 | (1u << 9)));

  uint8_t config[2];
  t.read(0x100, config);
  BOOST_TEST(config[0] == 0x5a);

  BOOST_TEST(saved.deviceId == 2u);
  BOOST_TEST(saved.config == std::vector<uint8_t>(8, 0x5a));
  Transport fresh(device, memory, [] {});
  fresh.restore(saved);
  BOOST_TEST((fresh.save() == saved));
  auto otherConfig = saved;
  otherConfig.config[0] ^= 1;
  BOOST_CHECK_EXCEPTION(fresh.restore(otherConfig), Error, [](const Error& e) { return e.kind() == ErrorKind::BadInput; });
  auto otherKind = saved;
  otherKind.deviceId = 1;
  BOOST_CHECK_EXCEPTION(fresh.restore(otherKind), Error, [](const Error& e) { return e.kind() == ErrorKind::BadInput; });

  setReg(t, 0x070, 0);  // reset
  BOOST_TEST(reg(t, 0x070) == 0u);
  BOOST_TEST(!t.save().queues[0].ready);
}

BOOST_AUTO_TEST_SUITE_END()
