#include "arch/paging.h"

#include <stdint.h>

enum { kPresent = 1, kUser = 4, kLarge = 0x80 };
#define ADDRESS_MASK 0x000ffffffffff000ull

int paging_open_to_user(void) {
  uint64_t cr3;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  const volatile uint64_t* table = (const volatile uint64_t*)(uintptr_t)(cr3 & ADDRESS_MASK);
  for (int level = 4; level >= 1; --level) {
    uint64_t e = table[0];
    if (!(e & kPresent) || !(e & kUser)) return 0;
    if (level == 1 || (level < 4 && (e & kLarge))) return 1;
    table = (const volatile uint64_t*)(uintptr_t)(e & ADDRESS_MASK);
  }
  return 1;
}
