#include "arch/paging.h"

#include <stdint.h>

enum { kPresent = 1, kUser = 4, kLarge = 0x80 };
#define ADDRESS_MASK 0x000ffffffffff000ull

/* level 4: PML4 ... level 1: page table. Large pages end the walk (PDPT and PD levels). */
static void open_table(uint64_t table_address, int level) {
  volatile uint64_t* table = (volatile uint64_t*)(uintptr_t)table_address;
  unsigned entries = level == 4 ? 256 : 512; /* lower half only: the upper half is the host's */
  for (unsigned i = 0; i < entries; ++i) {
    uint64_t e = table[i];
    if (!(e & kPresent)) continue;
    if (!(e & kUser)) table[i] = e | kUser;
    if (level > 1 && !(level < 4 && (e & kLarge))) open_table(e & ADDRESS_MASK, level - 1);
  }
}

void paging_open_to_user(void) {
  uint64_t cr3;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  open_table(cr3 & ADDRESS_MASK, 4);
  __asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
}
