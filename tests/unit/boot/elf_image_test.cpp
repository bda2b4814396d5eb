#include "boot/elf_image.hpp"

#include <boost/test/unit_test.hpp>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"
#include "support/tiny_elf.hpp"

using namespace tandem;
using tandem::test::TinyElfOptions;
using tandem::test::tinyElf;

namespace {
bool isBadInput(const Error& e) { return e.kind() == ErrorKind::BadInput; }
}  // namespace

BOOST_AUTO_TEST_SUITE(elf_image)

BOOST_AUTO_TEST_CASE(finds_segments_and_both_entry_notes) {
  TinyElfOptions o;
  o.code = {0xf4, 0xeb, 0xfd};
  o.pvhNote = true;
  auto image = ElfImage::parse("tiny", tinyElf(o));
  BOOST_REQUIRE_EQUAL(image.segments.size(), 1u);
  BOOST_TEST(image.segments[0].start.value == 0x100000u);
  BOOST_TEST(image.segments[0].bytes == o.code);
  BOOST_TEST(image.segments[0].memorySize == o.code.size() + 4096);
  BOOST_TEST(*image.entry64 == 0x100000u);
  BOOST_TEST(*image.pvhEntry32 == 0x100000u);
  BOOST_TEST(image.end().value == 0x100000u + o.code.size() + 4096);
}

BOOST_AUTO_TEST_CASE(refuses_files_that_are_not_x86_64_elf_with_an_entry_note) {
  TinyElfOptions noNote;
  noNote.code = {0xf4};
  noNote.entry64Note = false;
  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", tinyElf(noNote)), Error, isBadInput);

  TinyElfOptions arm;
  arm.code = {0xf4};
  arm.machine = 183;  // EM_AARCH64
  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", tinyElf(arm)), Error, isBadInput);

  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", {'h', 'e', 'l', 'l', 'o'}), Error, isBadInput);

  TinyElfOptions ok;
  ok.code = {0xf4};
  auto truncated = tinyElf(ok);
  truncated.resize(100);
  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", truncated), Error, isBadInput);
}

BOOST_AUTO_TEST_CASE(loads_code_and_zeroes_the_rest_of_the_segment) {
  TinyElfOptions o;
  o.code = {1, 2, 3, 4};
  auto image = ElfImage::parse("tiny", tinyElf(o));
  GuestMemory memory(16 * kMiB);
  memory.hostAddress(Gpa{0x100004}, 1)[0] = 0xaa;  // garbage where the segment's zero part goes
  image.loadInto(memory, Gpa{0x100000});
  BOOST_TEST(memory.hostAddress(Gpa{0x100000}, 1)[0] == 1);
  BOOST_TEST(memory.hostAddress(Gpa{0x100003}, 1)[0] == 4);
  BOOST_TEST(memory.hostAddress(Gpa{0x100004}, 1)[0] == 0);
}

BOOST_AUTO_TEST_CASE(refuses_to_load_below_the_boot_area_or_past_memory) {
  TinyElfOptions low;
  low.code = {0xf4};
  low.loadAddress = 0x8000;
  GuestMemory memory(16 * kMiB);
  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", tinyElf(low)).loadInto(memory, Gpa{0x100000}), Error, isBadInput);

  TinyElfOptions high;
  high.code = {0xf4};
  high.loadAddress = 32 * kMiB;
  BOOST_CHECK_EXCEPTION(ElfImage::parse("x", tinyElf(high)).loadInto(memory, Gpa{0x100000}), Error, isBadInput);
}

BOOST_AUTO_TEST_SUITE_END()
