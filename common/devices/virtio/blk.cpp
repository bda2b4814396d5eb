#include "devices/virtio/blk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

namespace tandem::dev::virtio {

namespace {

constexpr uint64_t kFeatureReadOnly = 1ull << 5, kFeatureFlush = 1ull << 9;
constexpr uint32_t kIn = 0, kOut = 1, kFlush = 4, kGetId = 8;
constexpr uint8_t kOk = 0, kIoError = 1, kUnsupported = 2;
constexpr size_t kIdBytes = 20;

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

}  // namespace

namespace {

Fd openDisk(const std::string& path, bool readonly) {
  int fd = ::open(path.c_str(), (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) failBadInput("cannot open disk ", path, ": ", std::strerror(errno));
  return Fd(fd);
}

uint64_t sectorsOf(const Fd& fd, const std::string& path) {
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) failBadInput("disk ", path, " is not a regular file");
  return static_cast<uint64_t>(st.st_size) / Blk::kSectorSize;
}

}  // namespace

Blk::Blk(std::string path, bool readonly)
    : path_(std::move(path)),
      readonly_(readonly),
      fd_(openDisk(path_, readonly)),
      sectors_(sectorsOf(fd_, path_)),
      writeLog_(sectors_ * kSectorSize) {}

bool Blk::readAt(uint64_t offset, std::span<uint8_t> out) const {
  if (offset > sizeBytes() || out.size() > sizeBytes() - offset) return false;
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

uint64_t Blk::features() const { return kFeatureVersion1 | kFeatureFlush | (readonly_ ? kFeatureReadOnly : 0); }

void Blk::readConfig(uint64_t offset, std::span<uint8_t> data) const {
  uint8_t config[8];
  std::memcpy(config, &sectors_, 8);  // capacity, in 512-byte sectors; nothing else offered
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof config ? config[offset + i] : 0;
}

bool Blk::process(uint16_t, Queue& queue, GuestMemory& memory) {
  bool used = false;
  while (auto chain = queue.pop(memory)) {
    uint32_t written = 0;
    uint8_t status = serve(*chain, memory, written);
    const Buffer& last = chain->buffers.back();
    if (last.deviceWritable && last.length >= 1) {
      memory.write(last.gpa, std::span(&status, 1));
      ++written;
    }
    queue.pushUsed(memory, chain->head, written);
    used = true;
  }
  return used;
}

uint8_t Blk::serve(const Chain& chain, GuestMemory& memory, uint32_t& written) {
  if (chain.buffers.size() < 2 || chain.buffers[0].length < sizeof(RequestHeader) || chain.buffers[0].deviceWritable)
    return kIoError;
  RequestHeader header;
  memory.read(chain.buffers[0].gpa, std::span(reinterpret_cast<uint8_t*>(&header), sizeof header));
  auto data = std::span(chain.buffers).subspan(1, chain.buffers.size() - 2);  // between header and status
  uint64_t offset = header.sector * kSectorSize;
  uint64_t total = 0;
  for (const auto& b : data) total += b.length;

  switch (header.type) {
    case kIn: {
      if (header.sector > sectors_ || total > (sectors_ - header.sector) * kSectorSize) return kIoError;
      for (const auto& b : data) {
        if (!b.deviceWritable) return kIoError;
        std::vector<uint8_t> bytes(b.length);
        if (::pread(fd_.get(), bytes.data(), b.length, static_cast<off_t>(offset)) != static_cast<ssize_t>(b.length))
          return kIoError;
        memory.write(b.gpa, bytes);  // reads into guest memory mark it dirty like any host write
        offset += b.length;
        written += b.length;
      }
      return kOk;
    }
    case kOut: {
      if (readonly_) return kIoError;
      if (header.sector > sectors_ || total > (sectors_ - header.sector) * kSectorSize) return kIoError;
      for (const auto& b : data) {
        if (b.deviceWritable) return kIoError;
        if (!writeToDisk(offset, memory.hostAddress(b.gpa, b.length), b.length)) return kIoError;
        offset += b.length;
      }
      return kOk;
    }
    case kFlush:
      if (::fdatasync(fd_.get()) != 0) return kIoError;
      writeLog_.recordFlush();  // before the guest hears of it: its epoch makes the standby's disk durable too
      return kOk;
    case kGetId: {
      if (data.empty() || !data[0].deviceWritable) return kIoError;
      char id[kIdBytes] = {};
      std::snprintf(id, sizeof id, "tandem-%llx", static_cast<unsigned long long>(sectors_));
      size_t n = std::min<size_t>(kIdBytes, data[0].length);
      memory.write(data[0].gpa, std::span(reinterpret_cast<const uint8_t*>(id), n));
      written += static_cast<uint32_t>(n);
      return kOk;
    }
    default:
      return kUnsupported;
  }
}

bool Blk::writeToDisk(uint64_t offset, const uint8_t* data, size_t length) {
  const uint8_t* start = data;
  uint64_t at = offset;
  while (length) {
    ssize_t n = ::pwrite(fd_.get(), data, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    length -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  writeLog_.record(at, std::span(start, static_cast<size_t>(data - start)));
  return true;
}

}  // namespace tandem::dev::virtio
