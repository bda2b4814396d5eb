#include "support/tiny_elf.hpp"

#include <elf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "boot/guest_abi.h"

namespace tandem::test {

namespace {

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

void appendNote(std::vector<uint8_t>& out, const char* name, uint32_t type, uint64_t value) {
  Elf64_Nhdr header{static_cast<Elf64_Word>(std::strlen(name) + 1), 8, type};
  append(out, header);
  std::vector<uint8_t> padded((header.n_namesz + 3) & ~3u, 0);
  std::memcpy(padded.data(), name, header.n_namesz);
  out.insert(out.end(), padded.begin(), padded.end());
  append(out, value);
}

}  // namespace

std::vector<uint8_t> tinyElf(const TinyElfOptions& o) {
  std::vector<uint8_t> notes;
  if (o.entry64Note) appendNote(notes, "tandem", TANDEM_NOTE_ENTRY64, o.loadAddress);
  if (o.pvhNote) appendNote(notes, "Xen", PVH_NOTE_PHYS32_ENTRY, o.loadAddress);

  const uint64_t phoff = sizeof(Elf64_Ehdr);
  const uint16_t phnum = notes.empty() ? 1 : 2;
  const uint64_t codeOffset = 0x1000;
  const uint64_t notesOffset = codeOffset + o.code.size();

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = o.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = o.loadAddress;
  eh.e_phoff = phoff;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = phnum;

  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_flags = PF_R | PF_W | PF_X;
  load.p_offset = codeOffset;
  load.p_vaddr = load.p_paddr = o.loadAddress;
  load.p_filesz = o.code.size();
  load.p_memsz = o.code.size() + 4096;
  load.p_align = 4096;

  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = notesOffset;
  note.p_filesz = notes.size();
  note.p_align = 4;

  std::vector<uint8_t> out;
  append(out, eh);
  append(out, load);
  if (phnum == 2) append(out, note);
  out.resize(codeOffset, 0);
  out.insert(out.end(), o.code.begin(), o.code.end());
  out.insert(out.end(), notes.begin(), notes.end());
  return out;
}

std::string writeTempFile(const std::vector<uint8_t>& bytes, const std::string& stem) {
  std::string path = "/tmp/tandem-test-" + stem + "-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    throw std::runtime_error("write of temp file failed");
  }
  ::close(fd);
  return path;
}

}  // namespace tandem::test
