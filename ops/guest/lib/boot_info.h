/* What the loader tells the guest through the PVH start info: command line and memory map. */
#ifndef TANDEM_GUEST_BOOT_INFO_H
#define TANDEM_GUEST_BOOT_INFO_H

#include <stdint.h>

struct boot_info {
  const char* cmdline;   /* never NULL; "" when the loader gave none */
  uint64_t ram_bytes;    /* sum of the RAM ranges of the memory map */
  uint64_t low_ram_end;  /* end of the RAM range that contains 1 MiB (where the guest lives) */
};

/* Returns 0 when start_info is not a valid PVH start info. */
int boot_info_read(uint64_t start_info_gpa, struct boot_info* out);

#endif
