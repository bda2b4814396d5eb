#include "secondary/replica_disks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/error.hpp"
#include "base/log.hpp"
#include "codec/page_codec.hpp"
#include "devices/disk_write_log.hpp"
#include "secondary/received_page.hpp"

namespace tandem {

namespace {

constexpr uint64_t kChunk = dev::DiskWriteLog::kChunkBytes;

void readAll(int fd, uint64_t offset, uint8_t* bytes, uint64_t length) {
  while (length) {
    ssize_t n = retrySys("pread", [&] { return ::pread(fd, bytes, length, static_cast<off_t>(offset)); });
    if (n == 0) throw Error(ErrorKind::Failed, concat("a disk file ended before byte ", offset));
    bytes += n, offset += static_cast<uint64_t>(n), length -= static_cast<uint64_t>(n);
  }
}

void writeAll(int fd, const std::string& name, uint64_t offset, const uint8_t* bytes, uint64_t length) {
  while (length) {
    ssize_t n = ::pwrite(fd, bytes, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorKind::Failed, concat("cannot write ", name, " at byte ", offset, ": ", std::strerror(errno)));
    bytes += n, offset += static_cast<uint64_t>(n), length -= static_cast<uint64_t>(n);
  }
}

}  // namespace

ReplicaDisks::ReplicaDisks(const std::vector<DiskConfig>& disks) {
  for (const auto& config : disks) {
    if (config.readonly)
      failBadInput("the standby's disk ", config.path, " is read-only; a standby writes its disks to keep them equal to the primary's");
    int fd = ::open(config.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) failBadInput("cannot open disk ", config.path, ": ", std::strerror(errno));
    Disk disk;
    disk.path = config.path;
    disk.fd.reset(fd);
    struct stat st{};
    if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) failBadInput("disk ", config.path, " is not a regular file");
    disk.size = static_cast<uint64_t>(st.st_size) / 512 * 512;  // what the guest sees (whole sectors)
    disk.direct.reset(::open(config.path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
    disks_.push_back(std::move(disk));
  }
}

void ReplicaDisks::checkShape(capnp::List<uint64_t>::Reader primarySizes, const char* peer) const {
  if (primarySizes.size() != disks_.size())
    failBadInput("the ", peer, " has ", primarySizes.size(), " disks and this standby ", disks_.size(), "; give the standby one --disk per disk of the ", peer);
  for (unsigned d = 0; d < disks_.size(); ++d)
    if (primarySizes[d] != disks_[d].size)
      failBadInput("the ", peer, "'s disk ", d, " has ", primarySizes[d], " bytes and this standby's ", disks_[d].path, " has ", disks_[d].size,
                   "; make the standby's disk the same size (truncate -s ", primarySizes[d], " ", disks_[d].path, ")");
}

void ReplicaDisks::beginSync(bool keepOld) {
  writeRun();
  dropUndo();
  keepOld_ = keepOld;
  if (!keepOld_) return;
  for (auto& disk : disks_) {
    auto dir = std::filesystem::path(disk.path).parent_path();
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorKind::Failed, concat("cannot make an undo file beside disk ", disk.path, ": ", std::strerror(errno)));
    disk.undo.reset(fd);
    disk.savedChunks = PageSet((disk.size + kChunk - 1) / kChunk);
  }
}

void ReplicaDisks::saveOld(Disk& disk, uint64_t offset, uint64_t length) {
  if (!keepOld_ || length == 0) return;
  std::vector<uint8_t> old;
  for (uint64_t c = offset / kChunk; c <= (offset + length - 1) / kChunk; ++c) {
    if (disk.savedChunks.test(c)) continue;
    uint64_t at = c * kChunk, n = std::min(kChunk, disk.size - at);
    old.resize(n);
    readAll(disk.fd.get(), at, old.data(), n);
    writeAll(disk.undo.get(), concat("the undo file of ", disk.path), disk.undoEnd, old.data(), n);
    disk.saved.push_back({at, n, disk.undoEnd});
    disk.undoEnd += n;
    disk.savedChunks.set(c);
  }
}

void ReplicaDisks::writeChunk(schema::DiskChunk::Reader chunk) {
  uint32_t d = chunk.getDisk();
  if (d >= disks_.size()) throw Error(ErrorKind::Failed, concat("the primary sent a chunk of disk ", d, ", which this standby does not have"));
  Disk& disk = disks_[d];
  uint64_t offset = chunk.getOffset(), length = chunk.getLength();
  codec::Encoding encoding;
  auto bytes = chunk.getBytes();
  if (!codecEncoding(chunk.getEncoding(), encoding))
    throw Error(ErrorKind::Failed, concat("the primary sent a chunk of disk ", d, " that does not decode (at byte ", offset, ")"));
  // One chunk, or (raw) a run of whole chunks in a row, the last one as long as the disk has left.
  uint64_t most = encoding == codec::Encoding::Raw ? kRunBytes : kChunk;
  if (offset % kChunk || length == 0 || length > most || offset > disk.size || length > disk.size - offset ||
      (length > kChunk && length % kChunk && offset + length != disk.size))
    throw Error(ErrorKind::Failed, concat("the primary sent a chunk of disk ", d, " that does not fit it (", length, " bytes at ", offset, ")"));
  // Decoded into the run of direct writes when it continues it; else a raw chunk is written from
  // the message as it arrived, the others decoded first.
  bool direct = disk.direct && offset % 4096 == 0 && length % 512 == 0;
  if (run_.length && (!direct || run_.disk != d || run_.offset + run_.length != offset || run_.length + length > kRunBytes))
    writeRun();
  const uint8_t* data = bytes.begin();
  if (direct || encoding != codec::Encoding::Raw || bytes.size() != length) {
    if (direct && !aligned_) aligned_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, kRunBytes)));
    chunk_.resize(direct ? 0 : length);
    std::span<uint8_t> into = direct ? std::span(aligned_.get() + run_.length, length) : std::span(chunk_);
    if (!codec::decodeBlock(encoding, std::span(bytes.begin(), bytes.size()), into))
      throw Error(ErrorKind::Failed, concat("the primary sent a chunk of disk ", d, " that does not decode (at byte ", offset, ")"));
    data = into.data();
  }
  saveOld(disk, offset, length);
  if (direct) {
    if (!run_.length) run_ = {d, offset, 0};
    run_.length += length;
    if (run_.length == kRunBytes) writeRun();
    return;
  }
  writeAll(disk.fd.get(), disk.path, offset, data, length);
}

void ReplicaDisks::writeRun() {
  if (!run_.length) return;
  Disk& disk = disks_[run_.disk];
  uint64_t offset = run_.offset, length = run_.length;
  run_.length = 0;
  if (!writeDirect(disk, offset, aligned_.get(), length)) writeAll(disk.fd.get(), disk.path, offset, aligned_.get(), length);
}

bool ReplicaDisks::writeDirect(Disk& disk, uint64_t offset, const uint8_t* bytes, uint64_t length) {
  while (length) {
    ssize_t n = ::pwrite(disk.direct.get(), bytes, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {  // this file system takes no direct writes of that shape
      log::info("disk ", disk.path, " takes no O_DIRECT writes; it is written through the page cache");
      disk.direct.reset();
      return false;
    }
    if (n <= 0) throw Error(ErrorKind::Failed, concat("cannot write ", disk.path, " at byte ", offset, ": ", std::strerror(errno)));
    bytes += n, offset += static_cast<uint64_t>(n), length -= static_cast<uint64_t>(n);
  }
  return true;
}

void ReplicaDisks::keepSync() {
  writeRun();
  dropUndo();
  keepOld_ = false;
}

void ReplicaDisks::rollBackSync() {
  writeRun();
  if (!keepOld_) return;
  std::vector<uint8_t> old;
  size_t chunks = 0;
  for (auto& disk : disks_) {
    for (const auto& s : disk.saved) {
      old.resize(s.length);
      readAll(disk.undo.get(), s.at, old.data(), s.length);
      writeAll(disk.fd.get(), disk.path, s.offset, old.data(), s.length);
    }
    chunks += disk.saved.size();
  }
  log::info("replication: the standby's disks are back at the committed epoch (", chunks, " chunks restored)");
  keepSync();
}

void ReplicaDisks::dropUndo() {
  for (auto& disk : disks_) {
    disk.undo.reset();
    disk.undoEnd = 0;
    disk.saved.clear();
    disk.savedChunks = PageSet();
  }
}

std::optional<std::string> ReplicaDisks::check(capnp::List<schema::DiskWrite>::Reader writes) const {
  for (auto w : writes) {
    if (w.getDisk() >= disks_.size()) return concat("a write to disk ", w.getDisk(), ", which this standby does not have");
    uint64_t size = disks_[w.getDisk()].size, length = w.getBytes().size();
    if (w.getOffset() > size || length > size - w.getOffset())
      return concat("a write of ", length, " bytes at ", w.getOffset(), " outside disk ", w.getDisk(), " (", size, " bytes)");
  }
  return std::nullopt;
}

void ReplicaDisks::apply(capnp::List<schema::DiskWrite>::Reader writes) {
  writeRun();
  for (auto w : writes) {
    Disk& disk = disks_[w.getDisk()];
    auto bytes = w.getBytes();
    saveOld(disk, w.getOffset(), bytes.size());
    writeAll(disk.fd.get(), disk.path, w.getOffset(), bytes.begin(), bytes.size());
    bytesApplied_ += bytes.size();
  }
}

// A chunk inside a hole of the file is zeros: its digest is the zero chunk's, without reading it
// (a fresh disk file is one hole, and reading a hole costs the kernel a memset per page).
std::vector<uint64_t> ReplicaDisks::digests(size_t d, uint64_t stride) {
  writeRun();
  Disk& disk = disks_.at(d);
  std::vector<uint64_t> out;
  out.reserve((disk.size + kChunk - 1) / kChunk / stride + 1);
  chunk_.resize(kChunk);
  dev::HoleWalk holes(disk.fd.get(), disk.size);
  for (uint64_t offset = 0; offset < disk.size; offset += kChunk * stride) {
    uint64_t length = std::min(kChunk, disk.size - offset);
    if (holes.inHole(offset, length)) {
      out.push_back(dev::zeroChunkDigest(length));
      continue;
    }
    readAll(disk.fd.get(), offset, chunk_.data(), length);
    out.push_back(dev::chunkDigest(std::span(chunk_.data(), length)));
  }
  return out;
}

void ReplicaDisks::checkSameFiles(capnp::List<schema::DiskIdentity>::Reader identities) const {
  for (unsigned d = 0; d < disks_.size() && d < identities.size(); ++d) {
    struct stat st{};
    if (::fstat(disks_[d].fd.get(), &st) != 0) throwErrno(concat("fstat of ", disks_[d].path), errno);
    if (st.st_dev != identities[d].getDevice() || st.st_ino != identities[d].getInode())
      failBadInput("with --storage shared the standby must open the source's own disk files, and its disk ", d, " (",
                   disks_[d].path, ") is another file on this host; give the standby the source's path, or use --storage copy");
  }
}

void ReplicaDisks::checkSameContent(schema::DiskDigests::Reader sampled) {
  uint32_t d = sampled.getDisk();
  if (d >= disks_.size()) throw Error(ErrorKind::Failed, concat("the source fingerprinted disk ", d, ", which it does not have"));
  auto mine = digests(d, dev::sampleStride((disks_[d].size + kChunk - 1) / kChunk));
  auto theirs = sampled.getDigests();
  bool same = theirs.size() == mine.size();
  for (unsigned i = 0; same && i < mine.size(); ++i) same = theirs[i] == mine[i];
  if (!same)
    failBadInput("with --storage shared the standby must see the source's disks, and its disk ", d, " (", disks_[d].path,
                 ") holds other data after the source's final flush; give it the very same storage, or use --storage copy");
}

bool ReplicaDisks::sendDigests(Channel& bulk) {
  for (size_t d = 0; d < disks_.size(); ++d) {
    auto digests = this->digests(d);
    capnp::MallocMessageBuilder message;
    auto out = bulk.start(message).initDiskDigests();
    out.setDisk(static_cast<uint32_t>(d));
    auto list = out.initDigests(static_cast<unsigned>(digests.size()));
    for (unsigned i = 0; i < digests.size(); ++i) list.set(i, digests[i]);
    if (!bulk.send(message)) return false;
  }
  return true;
}

void ReplicaDisks::makeDurable() {
  writeRun();
  auto start = std::chrono::steady_clock::now();
  for (auto& disk : disks_)
    if (::fdatasync(disk.fd.get()) != 0) throwErrno(concat("fdatasync of disk ", disk.path), errno);
  ++syncs_;
  syncMs_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace tandem
