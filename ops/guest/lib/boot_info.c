#include "lib/boot_info.h"

#include "guest_abi.h"

struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr; /* version >= 1 */
  uint32_t memmap_entries;
  uint32_t reserved;
};

struct hvm_memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

int boot_info_read(uint64_t start_info_gpa, struct boot_info* out) {
  const struct hvm_start_info* si = (const struct hvm_start_info*)(uintptr_t)start_info_gpa;
  if (si == 0 || si->magic != PVH_START_MAGIC) return 0;
  out->cmdline = si->cmdline_paddr ? (const char*)(uintptr_t)si->cmdline_paddr : "";
  out->ram_bytes = 0;
  out->low_ram_end = 0;
  if (si->version >= 1 && si->memmap_paddr) {
    const struct hvm_memmap_entry* e = (const struct hvm_memmap_entry*)(uintptr_t)si->memmap_paddr;
    for (uint32_t i = 0; i < si->memmap_entries; ++i) {
      if (e[i].type != PVH_MEMMAP_TYPE_RAM) continue;
      out->ram_bytes += e[i].size;
      if (e[i].addr <= 0x100000 && e[i].addr + e[i].size > 0x100000) out->low_ram_end = e[i].addr + e[i].size;
    }
  }
  return 1;
}
