#include "state/snapshot_file.hpp"

#include <fcntl.h>
#include <lz4.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "codec/page_codec.hpp"
#include "memory/guest_memory.hpp"

namespace tandem {

namespace {

constexpr char kMagic[8] = {'T', 'A', 'N', 'D', 'E', 'M', 'S', 'S'};
constexpr char kEndMagic[8] = {'T', 'A', 'N', 'D', 'E', 'M', 'E', 'N'};
constexpr uint64_t kChunkPages = 64;

struct FileHeader {
  char magic[8];
  uint32_t formatVersion;
  uint32_t reserved;
  uint64_t stateOffset;
  uint64_t stateBytes;
  uint64_t memoryOffset;
  uint64_t memoryBytes;
  uint64_t memorySize;
  uint64_t reserved2;
};
static_assert(sizeof(FileHeader) == 64);

struct ChunkHeader {
  uint64_t firstFrame;     // guest-physical address / 4096 of the chunk's first page
  uint64_t presentMask;    // bit i: page firstFrame + i follows
  uint32_t storedBytes;    // bytes that follow (padded to 8 on disk)
  uint32_t rawBytes;       // pages present * 4096; storedBytes == rawBytes means stored raw
};
static_assert(sizeof(ChunkHeader) == 24);

struct Trailer {
  uint64_t checksum;
  char magic[8];
};
static_assert(sizeof(Trailer) == 16);

uint64_t padded(uint64_t n) { return (n + 7) & ~uint64_t{7}; }


void readExactly(int fd, uint64_t offset, void* out, size_t n, const std::string& path) {
  auto* p = static_cast<uint8_t*>(out);
  while (n) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) failBadInput("snapshot ", path, " is truncated");
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

Fd openForReading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) failBadInput("cannot read snapshot ", path, ": ", std::strerror(errno));
  return Fd(fd);
}

}  // namespace

// Buffered writes that also feed the checksum.
class ChecksummedWriter {
public:
  ChecksummedWriter(int fd, const std::string& path) : fd_(fd), path_(path), hash_(XXH3_createState()) {
    XXH3_64bits_reset(hash_.get());
    buffer_.reserve(kBufferSize);
  }
  void write(const void* data, size_t n) {
    XXH3_64bits_update(hash_.get(), data, n);
    const auto* p = static_cast<const uint8_t*>(data);
    offset_ += n;
    if (buffer_.size() + n > kBufferSize) flush();
    if (n >= kBufferSize) return writeOut(p, n);
    buffer_.insert(buffer_.end(), p, p + n);
  }
  void pad() {
    static const uint8_t zeros[8] = {};
    write(zeros, padded(offset_) - offset_);
  }
  void flush() {
    writeOut(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  uint64_t offset() const { return offset_; }
  uint64_t checksum() const { return XXH3_64bits_digest(hash_.get()); }

private:
  static constexpr size_t kBufferSize = 4 * kMiB;
  void writeOut(const uint8_t* p, size_t n) {
    while (n) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) failBadInput("cannot write snapshot ", path_, ": ", std::strerror(errno));
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  struct FreeState {
    void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
  };
  int fd_;
  std::string path_;
  std::unique_ptr<XXH3_state_t, FreeState> hash_;
  std::vector<uint8_t> buffer_;
  uint64_t offset_ = 0;
};

std::string snapshotPath(const std::string& dir) { return (std::filesystem::path(dir) / "snapshot.tandem").string(); }

SnapshotWriter::SnapshotWriter(const std::string& dir, uint64_t memorySize)
    : path_(snapshotPath(dir)), temporary_(path_ + ".partial"), memorySize_(memorySize),
      raw_(kChunkPages * kPageSize),
      compressed_(static_cast<size_t>(LZ4_compressBound(static_cast<int>(kChunkPages * kPageSize)))) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) failBadInput("cannot create snapshot directory ", dir, ": ", ec.message());
  int fd = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) failBadInput("cannot write snapshot ", temporary_, ": ", std::strerror(errno));
  fd_ = Fd(fd);
  // The header's place; it is written last, when the offsets are known (and checksummed then).
  FileHeader placeholder{};
  if (::write(fd_.get(), &placeholder, sizeof placeholder) != static_cast<ssize_t>(sizeof placeholder))
    failBadInput("cannot write snapshot ", temporary_, ": ", std::strerror(errno));
  body_ = std::make_unique<ChecksummedWriter>(fd_.get(), temporary_);
}

SnapshotWriter::~SnapshotWriter() {
  if (finished_) return;
  fd_.reset();
  ::unlink(temporary_.c_str());
}

void SnapshotWriter::addPage(uint64_t frame, const uint8_t* data) {
  if (chunkPages_ && (frame < chunkFirst_ || frame >= chunkFirst_ + kChunkPages ||
                      chunkMask_ >> (frame - chunkFirst_) != 0))
    flushChunk();
  if (!chunkPages_) chunkFirst_ = frame, chunkMask_ = 0;
  chunkMask_ |= uint64_t{1} << (frame - chunkFirst_);
  std::memcpy(raw_.data() + chunkPages_ * kPageSize, data, kPageSize);
  ++chunkPages_;
  ++stats_.pagesWritten;
}

void SnapshotWriter::addBackedPages(const GuestMemory& memory) {
  for (const auto& region : memory.regions()) {
    const uint8_t* base = memory.hostBase() + region.hostOffset;
    std::vector<uint8_t> backed = memory.backedPages(region);
    for (uint64_t i = 0; i < backed.size(); ++i) {
      const uint8_t* page = base + i * kPageSize;
      if (!backed[i] || codec::isZeroPage(page)) {
        ++stats_.zeroPages;
        continue;
      }
      addPage(region.start.value / kPageSize + i, page);
    }
  }
}

void SnapshotWriter::addPages(const GuestMemory& memory, const PageSet& pages) {
  pages.forEach([&](uint64_t page) { addPage(memory.gpaOfPage(page).value / kPageSize, memory.hostBase() + page * kPageSize); });
}

void SnapshotWriter::flushChunk() {
  if (!chunkPages_) return;
  ChunkHeader chunk{};
  chunk.firstFrame = chunkFirst_;
  chunk.presentMask = chunkMask_;
  chunk.rawBytes = static_cast<uint32_t>(chunkPages_ * kPageSize);
  int packed = LZ4_compress_default(reinterpret_cast<const char*>(raw_.data()), compressed_.data(),
                                    static_cast<int>(chunk.rawBytes), static_cast<int>(compressed_.size()));
  bool useRaw = packed <= 0 || static_cast<uint32_t>(packed) >= chunk.rawBytes;
  chunk.storedBytes = useRaw ? chunk.rawBytes : static_cast<uint32_t>(packed);
  body_->write(&chunk, sizeof chunk);
  body_->write(useRaw ? static_cast<const void*>(raw_.data()) : compressed_.data(), chunk.storedBytes);
  body_->pad();
  chunkPages_ = 0;
}

SnapshotWriteStats SnapshotWriter::finish(const MachineState& state) {
  require(state.memorySize == memorySize_, "a state of ", state.memorySize, " bytes of memory for a snapshot of ", memorySize_);
  flushChunk();
  FileHeader header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.formatVersion = kSnapshotFormatVersion;
  header.memoryOffset = sizeof header;
  header.memoryBytes = body_->offset();
  header.memorySize = memorySize_;
  std::vector<uint8_t> encoded = encodeMachineState(state);
  header.stateOffset = sizeof header + body_->offset();
  header.stateBytes = encoded.size();
  stats_.stateBytes = encoded.size();
  body_->write(encoded.data(), encoded.size());
  body_->pad();
  body_->flush();

  // Checksum = XXH3 over header then body; the body's running hash cannot be prefixed, so the
  // file's checksum is XXH3 of (header || XXH3(body)), which is just as sensitive to any change.
  struct {
    FileHeader header;
    uint64_t bodyHash;
  } sealed{header, body_->checksum()};
  Trailer trailer{XXH3_64bits(&sealed, sizeof sealed), {}};
  std::memcpy(trailer.magic, kEndMagic, sizeof kEndMagic);
  if (::pwrite(fd_.get(), &header, sizeof header, 0) != sizeof header ||
      ::pwrite(fd_.get(), &trailer, sizeof trailer, static_cast<off_t>(sizeof header + body_->offset())) != sizeof trailer)
    failBadInput("cannot write snapshot ", temporary_, ": ", std::strerror(errno));
  stats_.fileBytes = sizeof header + body_->offset() + sizeof trailer;
  if (::fsync(fd_.get()) < 0) failBadInput("cannot write snapshot ", temporary_, ": ", std::strerror(errno));
  fd_.reset();
  std::error_code ec;
  std::filesystem::rename(temporary_, path_, ec);
  if (ec) failBadInput("cannot put snapshot in place at ", path_, ": ", ec.message());
  finished_ = true;
  return stats_;
}

SnapshotWriteStats writeSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory) {
  SnapshotWriter writer(dir, memory.size());
  writer.addBackedPages(memory);
  return writer.finish(state);
}

SnapshotFile SnapshotFile::open(const std::string& dir) {
  SnapshotFile file;
  file.path_ = snapshotPath(dir);
  const std::string& path = file.path_;
  Fd fd = openForReading(path);
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) failBadInput("snapshot ", path, " is not a regular file");
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof(FileHeader) + sizeof(Trailer)) failBadInput("snapshot ", path, " is truncated (", size, " bytes)");

  FileHeader header{};
  readExactly(fd.get(), 0, &header, sizeof header, path);
  if (std::memcmp(header.magic, kMagic, sizeof kMagic) != 0) failBadInput(path, " is not a tandem snapshot");
  if (header.formatVersion != kSnapshotFormatVersion)
    failBadInput("snapshot ", path, " has format version ", header.formatVersion, "; this tandem reads version ",
                 kSnapshotFormatVersion);
  uint64_t bodyBytes = size - sizeof header - sizeof(Trailer);
  if (header.memoryOffset != sizeof header || header.stateOffset != header.memoryOffset + header.memoryBytes ||
      header.stateOffset + padded(header.stateBytes) != sizeof header + bodyBytes)
    failBadInput("snapshot ", path, " is truncated or its header is damaged");

  Trailer trailer{};
  readExactly(fd.get(), size - sizeof trailer, &trailer, sizeof trailer, path);
  if (std::memcmp(trailer.magic, kEndMagic, sizeof kEndMagic) != 0) failBadInput("snapshot ", path, " is truncated");
  XXH3_state_t* hash = XXH3_createState();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hashOwner(hash, &XXH3_freeState);
  XXH3_64bits_reset(hash);
  std::vector<uint8_t> block(4 * kMiB);
  for (uint64_t at = sizeof header; at < sizeof header + bodyBytes;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), sizeof header + bodyBytes - at));
    readExactly(fd.get(), at, block.data(), n, path);
    XXH3_64bits_update(hash, block.data(), n);
    at += n;
  }
  struct {
    FileHeader header;
    uint64_t bodyHash;
  } sealed{header, XXH3_64bits_digest(hash)};
  if (XXH3_64bits(&sealed, sizeof sealed) != trailer.checksum)
    failBadInput("snapshot ", path, " is corrupted: its checksum does not match its contents");

  std::vector<uint8_t> encoded(header.stateBytes);
  readExactly(fd.get(), header.stateOffset, encoded.data(), encoded.size(), path);
  file.state_ = decodeMachineState(encoded);
  if (file.state_.memorySize != header.memorySize) failBadInput("snapshot ", path, " disagrees with itself on memory size");
  file.memoryOffset_ = header.memoryOffset;
  file.memoryBytes_ = header.memoryBytes;
  return file;
}

void SnapshotFile::loadMemory(GuestMemory& memory) const {
  require(memory.size() == state_.memorySize, "memory of ", memory.size(), " bytes for a snapshot of ", state_.memorySize);
  Fd fd = openForReading(path_);
  std::vector<char> stored(LZ4_compressBound(static_cast<int>(kChunkPages * kPageSize)));
  std::vector<uint8_t> pages(kChunkPages * kPageSize);
  for (uint64_t at = memoryOffset_, end = memoryOffset_ + memoryBytes_; at < end;) {
    ChunkHeader chunk{};
    readExactly(fd.get(), at, &chunk, sizeof chunk, path_);
    uint64_t present = static_cast<uint64_t>(__builtin_popcountll(chunk.presentMask));
    if (chunk.rawBytes != present * kPageSize || chunk.storedBytes > stored.size() || chunk.storedBytes > chunk.rawBytes)
      failBadInput("snapshot ", path_, " has a damaged memory chunk");
    readExactly(fd.get(), at + sizeof chunk, stored.data(), chunk.storedBytes, path_);
    if (chunk.storedBytes == chunk.rawBytes) {
      std::memcpy(pages.data(), stored.data(), chunk.rawBytes);
    } else if (LZ4_decompress_safe(stored.data(), reinterpret_cast<char*>(pages.data()), static_cast<int>(chunk.storedBytes),
                                   static_cast<int>(chunk.rawBytes)) != static_cast<int>(chunk.rawBytes)) {
      failBadInput("snapshot ", path_, " has a memory chunk that does not decompress");
    }
    size_t used = 0;
    for (uint64_t i = 0; i < kChunkPages; ++i) {
      if (!(chunk.presentMask & (uint64_t{1} << i))) continue;
      Gpa gpa{(chunk.firstFrame + i) * kPageSize};
      try {
        memory.write(gpa, std::span(pages.data() + used, kPageSize));
      } catch (const Error&) {
        failBadInput("snapshot ", path_, " has a page outside guest memory");
      }
      used += kPageSize;
    }
    at += sizeof chunk + padded(chunk.storedBytes);
  }
}

}  // namespace tandem
