#include "state/snapshot_file.hpp"

#include <fcntl.h>
#include <lz4.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

std::string snapshotPath(const std::string& dir) { return (std::filesystem::path(dir) / "snapshot.tandem").string(); }

SnapshotWriteStats writeSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) failBadInput("cannot create snapshot directory ", dir, ": ", ec.message());
  std::string path = snapshotPath(dir);
  std::string temporary = path + ".partial";
  int raw = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (raw < 0) failBadInput("cannot write snapshot ", temporary, ": ", std::strerror(errno));
  Fd fd(raw);

  SnapshotWriteStats stats;
  std::vector<uint8_t> encoded = encodeMachineState(state);
  stats.stateBytes = encoded.size();

  FileHeader header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.formatVersion = kSnapshotFormatVersion;
  header.stateOffset = sizeof header;
  header.stateBytes = encoded.size();
  header.memoryOffset = padded(header.stateOffset + header.stateBytes);
  header.memorySize = memory.size();
  // memoryBytes is only known at the end: the header is rewritten then (and checksummed as final).
  ChecksummedWriter body(fd.get(), temporary);
  // Reserve the header's place; the checksum covers the final header, so it is computed in two parts.
  std::vector<uint8_t> placeholder(sizeof header, 0);
  if (::write(fd.get(), placeholder.data(), placeholder.size()) != static_cast<ssize_t>(placeholder.size()))
    failBadInput("cannot write snapshot ", temporary, ": ", std::strerror(errno));
  body.write(encoded.data(), encoded.size());
  body.pad();

  std::vector<uint8_t> raw64(kChunkPages * kPageSize);
  std::vector<char> compressed(static_cast<size_t>(LZ4_compressBound(static_cast<int>(raw64.size()))));
  uint64_t memoryStart = body.offset();
  for (const auto& region : memory.regions()) {
    const uint8_t* base = memory.hostBase() + region.hostOffset;
    uint64_t pages = region.size / kPageSize;
    std::vector<uint8_t> backed = memory.backedPages(region);
    for (uint64_t first = 0; first < pages; first += kChunkPages) {
      uint64_t count = std::min(kChunkPages, pages - first);
      ChunkHeader chunk{};
      chunk.firstFrame = region.start.value / kPageSize + first;
      size_t used = 0;
      for (uint64_t i = 0; i < count; ++i) {
        const uint8_t* page = base + (first + i) * kPageSize;
        if (!backed[first + i] || codec::isZeroPage(page)) {
          ++stats.zeroPages;
          continue;
        }
        chunk.presentMask |= uint64_t{1} << i;
        std::memcpy(raw64.data() + used, page, kPageSize);
        used += kPageSize;
        ++stats.pagesWritten;
      }
      if (!chunk.presentMask) continue;
      int packed = LZ4_compress_default(reinterpret_cast<const char*>(raw64.data()), compressed.data(),
                                        static_cast<int>(used), static_cast<int>(compressed.size()));
      chunk.rawBytes = static_cast<uint32_t>(used);
      bool useRaw = packed <= 0 || static_cast<size_t>(packed) >= used;
      chunk.storedBytes = useRaw ? chunk.rawBytes : static_cast<uint32_t>(packed);
      body.write(&chunk, sizeof chunk);
      body.write(useRaw ? static_cast<const void*>(raw64.data()) : compressed.data(), chunk.storedBytes);
      body.pad();
    }
  }
  header.memoryBytes = body.offset() - memoryStart;
  body.flush();

  // Checksum = XXH3 over header then body; the body's running hash cannot be prefixed, so the
  // file's checksum is XXH3 of (header || XXH3(body)), which is just as sensitive to any change.
  uint64_t bodyHash = body.checksum();
  struct {
    FileHeader header;
    uint64_t bodyHash;
  } sealed{header, bodyHash};
  Trailer trailer{XXH3_64bits(&sealed, sizeof sealed), {}};
  std::memcpy(trailer.magic, kEndMagic, sizeof kEndMagic);
  if (::pwrite(fd.get(), &header, sizeof header, 0) != sizeof header ||
      ::pwrite(fd.get(), &trailer, sizeof trailer, static_cast<off_t>(sizeof header + body.offset())) != sizeof trailer)
    failBadInput("cannot write snapshot ", temporary, ": ", std::strerror(errno));
  stats.fileBytes = sizeof header + body.offset() + sizeof trailer;
  if (::fsync(fd.get()) < 0) failBadInput("cannot write snapshot ", temporary, ": ", std::strerror(errno));
  fd.reset();
  std::filesystem::rename(temporary, path, ec);
  if (ec) failBadInput("cannot put snapshot in place at ", path, ": ", ec.message());
  return stats;
}

SnapshotWriteStats writeSnapshotForked(const std::string& dir, const MachineState& state, const GuestMemory& memory,
                                       const std::function<void()>& afterFork) {
  struct Outcome {
    int kind;  // 0 written, otherwise the ErrorKind + 1 of what the child threw
    SnapshotWriteStats stats;
    char error[1024];
  };
  int fds[2];
  checkSys(::pipe2(fds, O_CLOEXEC), "pipe2");
  Fd readEnd(fds[0]), writeEnd(fds[1]);
  pid_t child = ::fork();
  if (child < 0) throwErrno("fork for the snapshot writer", errno);
  if (child == 0) {
    // Only this thread exists here. It writes the file and leaves with _exit: no destructor, no
    // atexit handler of the parent's runs twice.
    Outcome outcome{};
    try {
      outcome.stats = writeSnapshot(dir, state, memory);
    } catch (const Error& e) {
      outcome.kind = static_cast<int>(e.kind()) + 1;
      std::snprintf(outcome.error, sizeof outcome.error, "%s", e.what());
    } catch (const std::exception& e) {
      outcome.kind = static_cast<int>(ErrorKind::Failed) + 1;
      std::snprintf(outcome.error, sizeof outcome.error, "%s", e.what());
    }
    ssize_t n = ::write(writeEnd.get(), &outcome, sizeof outcome);
    ::_exit(n == sizeof outcome ? 0 : 1);
  }
  writeEnd.reset();
  afterFork();
  Outcome outcome{};
  size_t got = 0;
  while (got < sizeof outcome) {
    ssize_t n = ::read(readEnd.get(), reinterpret_cast<char*>(&outcome) + got, sizeof outcome - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  int status = 0;
  retrySys("waitpid for the snapshot writer", [&] { return ::waitpid(child, &status, 0); });
  if (got != sizeof outcome) throw Error(ErrorKind::Failed, "the snapshot writer died before it reported");
  if (outcome.kind != 0) throw Error(static_cast<ErrorKind>(outcome.kind - 1), outcome.error);
  return outcome.stats;
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
  if (header.stateOffset != sizeof header || header.memoryOffset != padded(header.stateOffset + header.stateBytes) ||
      header.memoryOffset + header.memoryBytes != sizeof header + bodyBytes)
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
