// DiskWriteLog: the sync sees every chunk once after begin() and then the chunks written since;
// an epoch sees every write since the last take, in order, with its bytes.
#include "devices/disk_write_log.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace tandem;
using dev::DiskWriteLog;

namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

BOOST_AUTO_TEST_SUITE(disk_write_log)

BOOST_AUTO_TEST_CASE(nothing_is_recorded_before_begin) {
  DiskWriteLog log(1 * 1024 * 1024);
  log.record(0, bytes("before"));
  std::vector<dev::DiskWrite> writes;
  log.takeJournal(writes);
  BOOST_TEST(writes.empty());
  BOOST_TEST(log.takeChunks().count() == 0u);
}

BOOST_AUTO_TEST_CASE(begin_counts_every_chunk_the_last_one_partial) {
  DiskWriteLog log(3 * DiskWriteLog::kChunkBytes + 512);
  log.begin();
  BOOST_TEST(log.chunkCount() == 4u);
  BOOST_TEST(log.chunksWritten() == 4u);
  BOOST_TEST(log.takeChunks().count() == 4u);
  BOOST_TEST(log.chunksWritten() == 0u);
}

BOOST_AUTO_TEST_CASE(a_write_marks_every_chunk_it_touches_and_is_journaled_in_order) {
  DiskWriteLog log(4 * DiskWriteLog::kChunkBytes);
  log.begin();
  log.takeChunks();
  log.record(DiskWriteLog::kChunkBytes - 2, bytes("span"));  // chunks 0 and 1
  log.record(3 * DiskWriteLog::kChunkBytes, bytes("last"));
  std::vector<dev::DiskWrite> writes;
  log.takeJournal(writes);
  BOOST_REQUIRE(writes.size() == 2u);
  BOOST_TEST(writes[0].offset == DiskWriteLog::kChunkBytes - 2);
  BOOST_TEST(std::string(writes[0].bytes.begin(), writes[0].bytes.end()) == "span");
  BOOST_TEST(writes[1].offset == 3 * DiskWriteLog::kChunkBytes);
  auto chunks = log.takeChunks();
  BOOST_TEST(chunks.count() == 3u);
  BOOST_TEST(!chunks.test(2));
}

BOOST_AUTO_TEST_CASE(taking_chunks_empties_the_journal_and_taking_the_journal_keeps_the_chunks) {
  DiskWriteLog log(4 * DiskWriteLog::kChunkBytes);
  log.begin();
  log.record(0, bytes("a"));
  log.takeChunks();  // the sync reads chunk 0 after this: the write needs no journal entry
  std::vector<dev::DiskWrite> writes;
  log.takeJournal(writes);
  BOOST_TEST(writes.empty());
  log.record(512, bytes("b"));
  log.takeJournal(writes);
  BOOST_TEST(writes.size() == 1u);
  log.record(1024, bytes("c"));
  log.takeJournal(writes);  // appended to what the caller has
  BOOST_TEST(writes.size() == 2u);
  BOOST_TEST(log.chunksWritten() == 1u);
}

BOOST_AUTO_TEST_CASE(end_stops_recording_and_forgets) {
  DiskWriteLog log(4 * DiskWriteLog::kChunkBytes);
  log.begin();
  log.record(0, bytes("a"));
  log.end();
  log.record(0, bytes("b"));
  std::vector<dev::DiskWrite> writes;
  log.takeJournal(writes);
  BOOST_TEST(writes.empty());
  BOOST_TEST(log.chunksWritten() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
