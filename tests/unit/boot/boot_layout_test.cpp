#include "boot/boot_layout.hpp"

#include <boost/test/unit_test.hpp>

#include <cstring>

#include "base/error.hpp"
#include "boot/guest_abi.h"
#include "memory/guest_memory.hpp"

using namespace tandem;

namespace {

uint64_t read64(GuestMemory& m, uint64_t gpa) {
  uint64_t v;
  std::memcpy(&v, m.hostAddress(Gpa{gpa}, 8), 8);
  return v;
}

// Walks the identity page tables the way the CPU does for a 2 MiB page at CPL 3 (present and
// user-accessible at every level: the test guest runs its jobs there); returns the physical address.
uint64_t translate(GuestMemory& m, uint64_t va) {
  constexpr uint64_t kPresentUser = 0x5;
  uint64_t pml4e = read64(m, boot::kPageTables.value + ((va >> 39) & 511) * 8);
  BOOST_REQUIRE((pml4e & kPresentUser) == kPresentUser);
  uint64_t pdpte = read64(m, (pml4e & ~0xfffull) + ((va >> 30) & 511) * 8);
  BOOST_REQUIRE((pdpte & kPresentUser) == kPresentUser);
  uint64_t pde = read64(m, (pdpte & ~0xfffull) + ((va >> 21) & 511) * 8);
  BOOST_REQUIRE((pde & kPresentUser) == kPresentUser);
  BOOST_REQUIRE(pde & 0x80);
  return (pde & ~0x1fffffull) + (va & 0x1fffff);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(boot_layout)

BOOST_AUTO_TEST_CASE(page_tables_identity_map_ram_and_the_device_hole) {
  GuestMemory memory(64 * kMiB);
  boot::writeLongModeTables(memory);
  for (uint64_t va : {0x0ull, 0x100000ull, 0x3ffffffull, 0xd0000000ull, 0xfffff000ull})
    BOOST_TEST(translate(memory, va) == va);
}

BOOST_AUTO_TEST_CASE(start_info_carries_command_line_and_memory_map) {
  GuestMemory memory(64 * kMiB);
  boot::writeStartInfo(memory, "job=counter rate=5");
  BOOST_TEST(read64(memory, boot::kStartInfo.value) == (uint64_t{1} << 32 | PVH_START_MAGIC));
  BOOST_TEST(std::string(reinterpret_cast<const char*>(memory.hostAddress(boot::kCmdline, 1))) == "job=counter rate=5");
  uint64_t memmap = read64(memory, boot::kStartInfo.value + 40);  // memmap_paddr
  BOOST_TEST(read64(memory, memmap) == 0u);
  BOOST_TEST(read64(memory, memmap + 8) == 64 * kMiB);
}

BOOST_AUTO_TEST_CASE(too_long_a_command_line_is_bad_input) {
  GuestMemory memory(16 * kMiB);
  BOOST_CHECK_EXCEPTION(boot::writeStartInfo(memory, std::string(5000, 'x')), Error,
                        [](const Error& e) { return e.kind() == ErrorKind::BadInput; });
}

BOOST_AUTO_TEST_SUITE_END()
