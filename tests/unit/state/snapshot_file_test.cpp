// Snapshot files: written, read back, and refused when damaged, without KVM.
#include "state/snapshot_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

using namespace tandem;
namespace fs = std::filesystem;

namespace {

bool isBadInput(const Error& e) { return e.kind() == ErrorKind::BadInput; }

struct SnapshotDir {
  fs::path dir = fs::temp_directory_path() / ("tandem-unit-snapshot-" + std::to_string(::getpid()));
  SnapshotDir() { fs::remove_all(dir); }
  ~SnapshotDir() { fs::remove_all(dir); }
  std::string file() const { return snapshotPath(dir.string()); }
  std::vector<char> bytes() const {
    std::ifstream in(file(), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  void overwrite(const std::vector<char>& bytes) const {
    std::ofstream out(file(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

MachineState smallState() {
  MachineState s;
  s.memorySize = 16 * kMiB;
  s.regions = GuestMemory::layout(s.memorySize);
  s.cmdline = "job=dirty";
  s.vcpus.resize(1);
  s.vcpus[0].regs.rip = 0x100000;
  s.serial.rx = {'x'};
  return s;
}

// Fills memory with: a compressible run, incompressible pages, and zero pages between.
void fillPattern(GuestMemory& memory) {
  uint64_t x = 88172645463325252ull;
  for (uint64_t page = 0; page < memory.size() / kPageSize; page += 3) {
    uint8_t* p = memory.hostAddress(Gpa{page * kPageSize}, kPageSize);
    if (page % 2) {
      std::memset(p, static_cast<int>(page & 0xff), kPageSize);
    } else {
      for (size_t i = 0; i < kPageSize; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(p + i, &x, 8);
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(snapshot_file)

BOOST_AUTO_TEST_CASE(state_and_every_page_come_back) {
  SnapshotDir d;
  GuestMemory memory(16 * kMiB);
  fillPattern(memory);
  auto stats = writeSnapshot(d.dir.string(), smallState(), memory);
  BOOST_TEST(stats.pagesWritten + stats.zeroPages == memory.size() / kPageSize);
  BOOST_TEST(stats.zeroPages > stats.pagesWritten);
  BOOST_TEST(!fs::exists(d.file() + ".partial"));

  auto file = SnapshotFile::open(d.dir.string());
  BOOST_TEST((file.state() == smallState()));
  GuestMemory restored(16 * kMiB);
  file.loadMemory(restored);
  BOOST_TEST(std::memcmp(restored.hostBase(), memory.hostBase(), memory.size()) == 0);
}

BOOST_AUTO_TEST_CASE(a_page_written_again_in_a_later_pass_comes_back_as_last_written) {
  SnapshotDir d;
  GuestMemory memory(16 * kMiB);
  fillPattern(memory);
  SnapshotWriter writer(d.dir.string(), memory.size());
  writer.addBackedPages(memory);
  BOOST_TEST(fs::exists(d.file() + ".partial"));
  // Between passes the guest changed three pages: one got new data, one became zero, one (zero
  // before, so never written) got data.
  PageSet changed(memory.pageCount());
  std::memset(memory.hostAddress(Gpa{3 * kPageSize}, kPageSize), 0x5a, kPageSize);
  std::memset(memory.hostAddress(Gpa{6 * kPageSize}, kPageSize), 0, kPageSize);
  std::memset(memory.hostAddress(Gpa{7 * kPageSize}, kPageSize), 0xa5, kPageSize);
  for (uint64_t page : {3, 6, 7}) changed.set(page);
  writer.addPages(memory, changed);
  // And the last pass, copied aside as the pause does: out of order with the one before.
  std::memset(memory.hostAddress(Gpa{kPageSize}, kPageSize), 0x11, kPageSize);
  std::vector<uint8_t> copy(memory.hostAddress(Gpa{kPageSize}, kPageSize),
                            memory.hostAddress(Gpa{kPageSize}, kPageSize) + kPageSize);
  writer.addPage(1, copy.data());
  writer.finish(smallState());
  BOOST_TEST(!fs::exists(d.file() + ".partial"));

  auto file = SnapshotFile::open(d.dir.string());
  GuestMemory restored(16 * kMiB);
  file.loadMemory(restored);
  BOOST_TEST(std::memcmp(restored.hostBase(), memory.hostBase(), memory.size()) == 0);
}

BOOST_AUTO_TEST_CASE(an_unfinished_writer_leaves_nothing_behind) {
  SnapshotDir d;
  GuestMemory memory(16 * kMiB);
  fillPattern(memory);
  {
    SnapshotWriter writer(d.dir.string(), memory.size());
    writer.addBackedPages(memory);
  }
  BOOST_TEST(!fs::exists(d.file() + ".partial"));
  BOOST_TEST(!fs::exists(d.file()));
}

BOOST_AUTO_TEST_CASE(missing_truncated_corrupted_and_foreign_files_are_refused) {
  SnapshotDir d;
  BOOST_CHECK_EXCEPTION(SnapshotFile::open(d.dir.string()), Error, isBadInput);  // missing

  GuestMemory memory(16 * kMiB);
  fillPattern(memory);
  writeSnapshot(d.dir.string(), smallState(), memory);
  const auto good = d.bytes();

  auto truncated = good;
  truncated.resize(good.size() - 100);
  d.overwrite(truncated);
  BOOST_CHECK_EXCEPTION(SnapshotFile::open(d.dir.string()), Error, isBadInput);

  for (size_t at : {size_t{70}, good.size() / 2, good.size() - 20}) {  // state, memory, near the end
    auto corrupted = good;
    corrupted[at] ^= 0x01;
    d.overwrite(corrupted);
    BOOST_CHECK_EXCEPTION(SnapshotFile::open(d.dir.string()), Error, isBadInput);
  }

  auto otherVersion = good;
  otherVersion[8] = 1;  // format version, first byte
  d.overwrite(otherVersion);
  BOOST_CHECK_EXCEPTION(SnapshotFile::open(d.dir.string()), Error, [](const Error& e) {
    return e.kind() == ErrorKind::BadInput && std::string(e.what()).find("version") != std::string::npos;
  });

  d.overwrite(good);
  BOOST_CHECK_NO_THROW(SnapshotFile::open(d.dir.string()));
}

BOOST_AUTO_TEST_SUITE_END()
