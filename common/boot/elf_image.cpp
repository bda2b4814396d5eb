#include "boot/elf_image.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "base/error.hpp"
#include "boot/guest_abi.h"
#include "memory/guest_memory.hpp"

namespace tandem {

namespace {

constexpr uint64_t kMaxKernelFile = 256 * kMiB;

template <typename T>
T readAt(const std::vector<uint8_t>& file, uint64_t offset) {
  T value;
  std::memcpy(&value, file.data() + offset, sizeof value);
  return value;
}

void parseNotes(ElfImage& image, const std::vector<uint8_t>& file, uint64_t offset, uint64_t size) {
  uint64_t end = offset + size;
  while (offset + sizeof(Elf64_Nhdr) <= end) {
    auto header = readAt<Elf64_Nhdr>(file, offset);
    uint64_t nameAt = offset + sizeof header;
    uint64_t descAt = nameAt + ((header.n_namesz + 3) & ~3u);
    uint64_t next = descAt + ((header.n_descsz + 3) & ~3u);
    if (next > end) break;
    std::string name(reinterpret_cast<const char*>(file.data() + nameAt), header.n_namesz ? header.n_namesz - 1 : 0);
    uint64_t value = 0;
    if (header.n_descsz == 4) value = readAt<uint32_t>(file, descAt);
    if (header.n_descsz == 8) value = readAt<uint64_t>(file, descAt);
    if (header.n_descsz == 4 || header.n_descsz == 8) {
      if (name == "tandem" && header.n_type == TANDEM_NOTE_ENTRY64) image.entry64 = value;
      if (name == "Xen" && header.n_type == PVH_NOTE_PHYS32_ENTRY) image.pvhEntry32 = value & 0xffffffffu;
    }
    offset = next;
  }
}

}  // namespace

ElfImage ElfImage::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) failBadInput("cannot read kernel ", path, ": ", std::strerror(errno), "; give --kernel a readable ELF file");
  in.seekg(0, std::ios::end);
  auto size = static_cast<uint64_t>(in.tellg());
  if (!in || size > kMaxKernelFile) failBadInput("cannot read kernel ", path, ": not a regular file of at most 256 MiB");
  in.seekg(0);
  std::vector<uint8_t> file(size);
  if (!in.read(reinterpret_cast<char*>(file.data()), static_cast<std::streamsize>(size)))
    failBadInput("cannot read kernel ", path, ": read failed");
  return parse(path, file);
}

ElfImage ElfImage::parse(const std::string& path, const std::vector<uint8_t>& file) {
  auto notElf = [&](const char* why) {
    failBadInput(path, " is not a usable guest kernel (", why,
                 "); give --kernel an x86-64 ELF64 with a tandem or PVH entry note");
  };
  if (file.size() < sizeof(Elf64_Ehdr) || std::memcmp(file.data(), ELFMAG, SELFMAG) != 0) notElf("no ELF header");
  auto eh = readAt<Elf64_Ehdr>(file, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) notElf("not a little-endian ELF64");
  if (eh.e_machine != EM_X86_64) notElf("not built for x86-64");
  if (eh.e_type != ET_EXEC) notElf("not an executable");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff + uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > file.size())
    notElf("program headers out of the file");

  ElfImage image;
  image.path = path;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = readAt<Elf64_Phdr>(file, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) notElf("a segment lies outside the file");
    if (ph.p_type == PT_LOAD && ph.p_memsz > 0) {
      if (ph.p_filesz > ph.p_memsz) notElf("a segment is larger in the file than in memory");
      Segment s;
      s.start = Gpa{ph.p_paddr};
      s.bytes.assign(file.begin() + static_cast<long>(ph.p_offset),
                     file.begin() + static_cast<long>(ph.p_offset + ph.p_filesz));
      s.memorySize = ph.p_memsz;
      image.segments.push_back(std::move(s));
    } else if (ph.p_type == PT_NOTE) {
      parseNotes(image, file, ph.p_offset, ph.p_filesz);
    }
  }
  if (image.segments.empty()) notElf("nothing to load");
  if (!image.entry64 && !image.pvhEntry32) notElf("no entry note");
  return image;
}

Gpa ElfImage::end() const {
  Gpa high{0};
  for (const auto& s : segments) high = std::max(high, s.start + s.memorySize);
  return high;
}

void ElfImage::loadInto(GuestMemory& memory, Gpa lowestAllowed) const {
  for (const auto& s : segments) {
    if (s.start < lowestAllowed)
      failBadInput(path, " wants to load at 0x", std::hex, s.start.value, ", below 0x", lowestAllowed.value,
                   " where tandem keeps its boot structures; link the kernel at 1 MiB or above");
    try {
      memory.hostAddress(s.start, s.memorySize);
    } catch (const Error&) {
      failBadInput(path, " needs guest memory up to ", (s.start.value + s.memorySize + kMiB - 1) / kMiB,
                   " MiB; give --memory more");
    }
    memory.write(s.start, s.bytes);
    memory.zero(s.start + s.bytes.size(), s.memorySize - s.bytes.size());
  }
}

}  // namespace tandem
