// ReplicaDisks: a standby's disk files change only as checked chunks and writes say, and a sync
// that never committed is undone to the byte.
#include "secondary/replica_disks.hpp"

#include <capnp/message.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <span>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "codec/page_codec.hpp"
#include "devices/disk_write_log.hpp"

using namespace tandem;

namespace {

constexpr uint64_t kChunk = dev::DiskWriteLog::kChunkBytes;
constexpr uint64_t kDiskBytes = 4 * kChunk;

std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A disk file of random bytes in a directory of its own, removed at the end.
struct DiskFile {
  std::string dir = std::filesystem::temp_directory_path() / ("tandem-test-replica-disks-" + std::to_string(::getpid()));
  std::string path = dir + "/standby.img";
  DiskFile() {
    std::filesystem::create_directories(dir);
    std::vector<char> bytes(kDiskBytes);
    std::mt19937 random(7);
    for (auto& b : bytes) b = static_cast<char>(random());
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ~DiskFile() { std::filesystem::remove_all(dir); }
};

// A DiskChunk envelope part, encoded the way a primary sends it.
struct Chunk {
  capnp::MallocMessageBuilder message;
  std::vector<uint8_t> encoded;
  Chunk(uint32_t disk, uint64_t offset, const std::vector<uint8_t>& bytes) {
    auto chunk = message.initRoot<schema::DiskChunk>();
    chunk.setDisk(disk);
    chunk.setOffset(offset);
    chunk.setLength(static_cast<uint32_t>(bytes.size()));
    auto encoding = codec::encodeBlock(bytes, encoded);
    chunk.setEncoding(encoding == codec::Encoding::Zero  ? schema::Encoding::ZERO
                      : encoding == codec::Encoding::Lz4 ? schema::Encoding::LZ4
                                                         : schema::Encoding::RAW);
    if (!encoded.empty()) chunk.setBytes(capnp::Data::Reader(encoded.data(), encoded.size()));
  }
  schema::DiskChunk::Reader reader() { return message.getRoot<schema::DiskChunk>().asReader(); }
};

struct Writes {
  capnp::MallocMessageBuilder message;
  capnp::List<schema::DiskWrite>::Builder list;
  explicit Writes(unsigned n) : list(message.initRoot<schema::Commit>().initDiskWrites(n)) {}
  void set(unsigned i, uint32_t disk, uint64_t offset, const std::string& bytes) {
    list[i].setDisk(disk);
    list[i].setOffset(offset);
    list[i].setBytes(capnp::Data::Reader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  capnp::List<schema::DiskWrite>::Reader reader() { return message.getRoot<schema::Commit>().asReader().getDiskWrites(); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(replica_disks)

BOOST_AUTO_TEST_CASE(a_sync_that_never_commits_is_undone_to_the_byte) {
  DiskFile file;
  auto before = readFile(file.path);
  ReplicaDisks disks({DiskConfig{file.path, false}});
  disks.beginSync(true);  // an earlier session's epoch is committed: its disk must come back
  Chunk zeros(0, kChunk, std::vector<uint8_t>(kChunk, 0));
  disks.writeChunk(zeros.reader());
  Chunk again(0, kChunk, std::vector<uint8_t>(kChunk, 9));  // the same chunk twice: saved once
  disks.writeChunk(again.reader());
  Writes writes(1);
  writes.set(0, 0, 3 * kChunk + 100, "a write of the failed first epoch");
  disks.apply(writes.reader());
  BOOST_TEST((readFile(file.path) != before));
  disks.rollBackSync();
  BOOST_TEST((readFile(file.path) == before));
}

BOOST_AUTO_TEST_CASE(a_sync_kept_stays_and_later_rollbacks_do_nothing) {
  DiskFile file;
  ReplicaDisks disks({DiskConfig{file.path, false}});
  disks.beginSync(true);
  std::vector<uint8_t> sevens(kChunk, 7);
  Chunk chunk(0, 0, sevens);
  disks.writeChunk(chunk.reader());
  disks.keepSync();
  disks.rollBackSync();
  auto after = readFile(file.path);
  BOOST_TEST((std::vector<uint8_t>(after.begin(), after.begin() + kChunk) == sevens));
}

BOOST_AUTO_TEST_CASE(chunks_and_writes_that_do_not_fit_are_refused_and_change_nothing) {
  DiskFile file;
  auto before = readFile(file.path);
  ReplicaDisks disks({DiskConfig{file.path, false}});
  disks.beginSync(false);
  Chunk otherDisk(1, 0, std::vector<uint8_t>(kChunk, 1));
  BOOST_CHECK_THROW(disks.writeChunk(otherDisk.reader()), Error);
  Chunk pastTheEnd(0, kDiskBytes, std::vector<uint8_t>(kChunk, 1));
  BOOST_CHECK_THROW(disks.writeChunk(pastTheEnd.reader()), Error);
  Chunk unaligned(0, 512, std::vector<uint8_t>(kChunk, 1));
  BOOST_CHECK_THROW(disks.writeChunk(unaligned.reader()), Error);
  Chunk lying(0, 0, std::vector<uint8_t>(kChunk, 1));
  lying.message.getRoot<schema::DiskChunk>().setLength(kChunk / 2);  // its bytes decode to more
  BOOST_CHECK_THROW(disks.writeChunk(lying.reader()), Error);

  Writes writes(2);
  writes.set(0, 0, 0, "fits");
  writes.set(1, 0, kDiskBytes - 2, "does not fit");
  BOOST_TEST(disks.check(writes.reader()).has_value());
  Writes elsewhere(1);
  elsewhere.set(0, 3, 0, "no such disk");
  BOOST_TEST(disks.check(elsewhere.reader()).has_value());
  BOOST_TEST((readFile(file.path) == before));
}

BOOST_AUTO_TEST_CASE(a_primary_with_other_disks_is_bad_input) {
  DiskFile file;
  ReplicaDisks disks({DiskConfig{file.path, false}});
  capnp::MallocMessageBuilder message;
  auto sizes = message.initRoot<schema::Hello>().initDiskSizes(1);
  sizes.set(0, kDiskBytes);
  BOOST_CHECK_NO_THROW(disks.checkShape(message.getRoot<schema::Hello>().asReader().getDiskSizes()));
  sizes.set(0, 2 * kDiskBytes);
  try {
    disks.checkShape(message.getRoot<schema::Hello>().asReader().getDiskSizes());
    BOOST_FAIL("a disk of another size was accepted");
  } catch (const Error& e) {
    BOOST_TEST((e.kind() == ErrorKind::BadInput));
    BOOST_TEST(std::string(e.what()).find("truncate -s") != std::string::npos);
  }
}

// Raw chunks in a row travel as one DiskChunk (a run); it must be whole chunks but for the disk's end.
BOOST_AUTO_TEST_CASE(a_run_of_raw_chunks_is_written_whole_and_a_ragged_one_is_refused) {
  DiskFile file;
  ReplicaDisks disks({DiskConfig{file.path, false}});
  disks.beginSync(false);
  std::vector<uint8_t> random(2 * kChunk + 512);
  std::mt19937 generator(11);
  for (auto& b : random) b = static_cast<uint8_t>(generator());
  auto before = readFile(file.path);
  Chunk ragged(0, 0, std::vector<uint8_t>(random.begin(), random.begin() + kChunk + 512));
  BOOST_CHECK_THROW(disks.writeChunk(ragged.reader()), Error);
  BOOST_TEST((readFile(file.path) == before));

  Chunk run(0, kChunk, std::vector<uint8_t>(random.begin(), random.begin() + 2 * kChunk));
  BOOST_REQUIRE((run.reader().getEncoding() == schema::Encoding::RAW));
  disks.writeChunk(run.reader());
  disks.keepSync();  // (writes out what waits to be written)
  auto after = readFile(file.path);
  BOOST_TEST(std::equal(random.begin(), random.begin() + 2 * kChunk, after.begin() + kChunk));
  BOOST_TEST(std::equal(before.begin(), before.begin() + kChunk, after.begin()));
  BOOST_TEST(std::equal(before.begin() + 3 * kChunk, before.end(), after.begin() + 3 * kChunk));
}

// Shared storage on another host: the source's sampled digests (every sampleStride()-th chunk,
// after its final flush) must be what the standby's file holds at those chunks.
BOOST_AUTO_TEST_CASE(shared_storage_fingerprints_match_the_same_content_and_refuse_other_content) {
  DiskFile file;
  auto bytes = readFile(file.path);
  auto sampled = [&](const std::vector<uint8_t>& content, size_t count) {
    auto message = std::make_unique<capnp::MallocMessageBuilder>();
    auto digests = message->initRoot<schema::DiskDigests>();
    digests.setDisk(0);
    uint64_t chunks = content.size() / kChunk, stride = dev::sampleStride(chunks);
    auto list = digests.initDigests(static_cast<unsigned>(count));
    for (uint64_t c = 0, i = 0; i < count; c += stride, ++i)
      list.set(static_cast<unsigned>(i), dev::chunkDigest(std::span(content).subspan(c * kChunk, kChunk)));
    return message;
  };
  ReplicaDisks disks({DiskConfig{file.path, false}});
  auto same = sampled(bytes, kDiskBytes / kChunk);
  BOOST_CHECK_NO_THROW(disks.checkSameContent(same->getRoot<schema::DiskDigests>().asReader()));
  auto other = bytes;
  other[2 * kChunk + 100] ^= 1;  // one byte of a sampled chunk
  auto differing = sampled(other, kDiskBytes / kChunk);
  BOOST_CHECK_THROW(disks.checkSameContent(differing->getRoot<schema::DiskDigests>().asReader()), Error);
  auto tooFew = sampled(bytes, 2);
  BOOST_CHECK_THROW(disks.checkSameContent(tooFew->getRoot<schema::DiskDigests>().asReader()), Error);
  BOOST_TEST(readFile(file.path) == bytes);  // looking changes nothing
}

BOOST_AUTO_TEST_CASE(a_read_only_standby_disk_is_bad_input) {
  DiskFile file;
  BOOST_CHECK_THROW(ReplicaDisks({DiskConfig{file.path, true}}), Error);
}

BOOST_AUTO_TEST_SUITE_END()
