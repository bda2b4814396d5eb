#include "primary/disk_sender.hpp"

#include <algorithm>

#include "base/error.hpp"
#include "codec/page_codec.hpp"
#include "devices/disk_write_log.hpp"

namespace tandem {

namespace {

schema::Encoding toSchema(codec::Encoding e) {
  switch (e) {
    case codec::Encoding::Zero: return schema::Encoding::ZERO;
    case codec::Encoding::Lz4: return schema::Encoding::LZ4;
    default: return schema::Encoding::RAW;
  }
}

}  // namespace

DiskSender::DiskSender(Machine& machine)
    : machine_(machine),
      epoch_(machine.diskCount()),
      standbyDigests_(machine.diskCount()),
      staging_(StagingPool::make(kRunChunks * dev::DiskWriteLog::kChunkBytes)) {
  for (size_t d = 0; d < machine_.diskCount(); ++d) machine_.disk(d).writeLog().begin();
}

DiskSender::~DiskSender() {
  for (size_t d = 0; d < machine_.diskCount(); ++d) machine_.disk(d).writeLog().end();
}

void DiskSender::standbyHolds(schema::DiskDigests::Reader digests) {
  if (digests.getDisk() >= standbyDigests_.size()) return;
  auto& mine = standbyDigests_[digests.getDisk()];
  mine.clear();
  mine.reserve(digests.getDigests().size());
  for (uint64_t d : digests.getDigests()) mine.push_back(d);
}

uint64_t DiskSender::chunksWritten() const {
  uint64_t n = 0;
  for (size_t d = 0; d < machine_.diskCount(); ++d) n += machine_.disk(d).writeLog().chunksWritten();
  return n;
}

// Whether the standby's chunk (its digest) is ours. Against zeros there (a fresh disk file), a
// look for a nonzero byte, which stops at the first, instead of a digest of the whole chunk.
bool DiskSender::standbyHas(uint64_t theirs, bool hole, std::span<const uint8_t> bytes) const {
  if (hole) return theirs == dev::zeroChunkDigest(bytes.size());
  if (theirs == dev::zeroChunkDigest(bytes.size()))
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
  return theirs == dev::chunkDigest(bytes);
}

// Chunks that go raw travel in runs: contiguous chunks read one after the other into one staging
// buffer, sent as one DiskChunk of up to kRunChunks chunks without a copy (a message per 64 KiB
// cost each side's ZeroMQ thread more than the bytes). A chunk that is zeros (a hole of the file:
// known without reading) or that lz4 shrinks goes alone, the run before it first.
uint64_t DiskSender::sendChunks(const Channel& channel, const std::function<void(std::unique_ptr<OutgoingMessage>, uint32_t)>& deliver) {
  constexpr uint64_t kChunk = dev::DiskWriteLog::kChunkBytes;
  uint64_t sent = 0;
  for (size_t d = 0; d < machine_.diskCount(); ++d) {
    auto& disk = machine_.disk(d);
    PageSet chunks = disk.writeLog().takeChunks();
    const auto& theirs = standbyDigests_[d];
    dev::HoleWalk holes = disk.holes();
    std::unique_ptr<OutgoingMessage> run;  // raw chunks [runOffset, runOffset + runLength) in its staging buffer
    uint8_t* runBytes = nullptr;
    uint64_t runOffset = 0, runLength = 0;
    auto start = [&](OutgoingMessage& message, uint64_t offset, uint64_t length, codec::Encoding encoding) {
      auto out = channel.start(message).initDiskChunk();
      out.setDisk(static_cast<uint32_t>(d));
      out.setOffset(offset);
      out.setLength(static_cast<uint32_t>(length));
      out.setEncoding(toSchema(encoding));
      return out;
    };
    // Sends the run, if it holds any chunk; either way the next raw chunk starts a new one.
    auto sendRun = [&] {
      if (run && runLength > 0) {
        start(*run, runOffset, runLength, codec::Encoding::Raw).adoptBytes(run->referenceStaging(runLength));
        deliver(std::move(run), static_cast<uint32_t>((runLength + kChunk - 1) / kChunk));
      }
      run.reset();
    };
    std::exception_ptr failure;
    chunks.forEach([&](uint64_t chunk) {
      if (failure) return;
      uint64_t offset = chunk * kChunk;
      size_t length = std::min(kChunk, disk.sizeBytes() - offset);
      bool hole = holes.inHole(offset, length);
      if (run && (runOffset + runLength != offset || runLength == kRunChunks * kChunk)) sendRun();
      if (!run) {
        run = std::make_unique<OutgoingMessage>();
        runBytes = run->staging(kRunChunks * kChunk, *staging_);
        runOffset = offset;
        runLength = 0;
      }
      std::span<uint8_t> bytes(runBytes + runLength, length);  // (a hole's are not read, nor looked at)
      if (!hole && !disk.readAt(offset, bytes)) {
        failure = std::make_exception_ptr(Error(ErrorKind::Failed, concat("cannot read disk ", disk.path(), " at byte ", offset)));
        return;
      }
      if (chunk < theirs.size() && standbyHas(theirs[chunk], hole, bytes)) {
        ++skipped_;
        sendRun();  // (the run ends here: this chunk is not in it)
        return;
      }
      // After a chunk lz4 could not shrink, the next ones skip it, twice as many each time (up to
      // 64): a disk of incompressible data costs one try in 64; one that shrinks resets it.
      bool tryLz4 = !hole && lz4SkipLeft_ == 0;
      if (!hole && !tryLz4) --lz4SkipLeft_;
      auto encoding = hole ? codec::Encoding::Zero
                           : codec::encodeBlock(bytes, encoded_, codec::RawCopy::Skip, tryLz4 ? codec::Lz4::Try : codec::Lz4::Skip);
      if (tryLz4 && encoding == codec::Encoding::Raw) lz4SkipLeft_ = lz4Backoff_ = std::min<uint32_t>(64, lz4Backoff_ * 2 + 1);
      if (encoding == codec::Encoding::Lz4) lz4Backoff_ = 0;
      ++sent;
      if (encoding == codec::Encoding::Raw) {
        runLength += length;
        return;
      }
      sendRun();
      auto alone = std::make_unique<OutgoingMessage>();
      auto out = start(*alone, offset, length, encoding);
      if (encoding == codec::Encoding::Lz4) out.setBytes(capnp::Data::Reader(encoded_.data(), encoded_.size()));
      deliver(std::move(alone), 1);
    });
    if (failure) std::rethrow_exception(failure);
    sendRun();
    standbyDigests_[d].clear();  // only the first round compares: later ones send what was written
  }
  return sent;
}

void DiskSender::takeEpoch() {
  for (size_t d = 0; d < machine_.diskCount(); ++d)
    if (machine_.disk(d).writeLog().takeJournal(epoch_[d])) epochFlushed_ = true;
}

uint64_t DiskSender::epochWriteBytes() const {
  uint64_t bytes = 0;
  for (const auto& writes : epoch_)
    for (const auto& w : writes) bytes += w.bytes.size();
  return bytes;
}

void DiskSender::fillCommit(schema::Commit::Builder commit) {
  commit.setDiskFlush(std::exchange(epochFlushed_, false));
  size_t count = 0;
  for (const auto& writes : epoch_) count += writes.size();
  if (count == 0) return;
  auto list = commit.initDiskWrites(static_cast<unsigned>(count));
  unsigned i = 0;
  for (size_t d = 0; d < epoch_.size(); ++d) {
    for (const auto& w : epoch_[d]) {
      list[i].setDisk(static_cast<uint32_t>(d));
      list[i].setOffset(w.offset);
      list[i].setBytes(capnp::Data::Reader(w.bytes.data(), w.bytes.size()));
      ++i;
    }
    epoch_[d].clear();
  }
}

}  // namespace tandem
