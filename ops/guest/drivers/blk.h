/* The virtio block device: whole 512-byte sectors, one request at a time, each waited for by its
 * interrupt (or in the idle port with irq=0). */
#ifndef TANDEM_GUEST_BLK_H
#define TANDEM_GUEST_BLK_H

#include <stdint.h>

/* Finds and starts the first virtio-blk device; returns its size in sectors, 0 if there is none or
 * another job opened it already. */
uint64_t blk_open(const char* cmdline);
/* Returns 1 when the device reports success. */
int blk_read(uint64_t sector, void* buf, uint32_t sectors);
int blk_write(uint64_t sector, const void* buf, uint32_t sectors);
int blk_flush(void);

#endif
