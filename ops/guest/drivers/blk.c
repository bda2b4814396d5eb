#include "drivers/blk.h"

#include "drivers/virtio.h"

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, F_FLUSH = 9 };

struct request_header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

static struct virtio_dev dev;
static struct request_header header;
static volatile uint8_t status;

static int opened;

uint64_t blk_open(const char* cmdline) {
  if (opened) return 0; /* one job per disk */
  if (!virtio_open(&dev, cmdline, 2, 1ull << F_FLUSH, 1)) return 0;
  opened = 1;
  return (uint64_t)virtio_config32(&dev, 0) | ((uint64_t)virtio_config32(&dev, 4) << 32);
}

static int request(uint32_t type, uint64_t sector, const void* buf, uint32_t bytes, int device_writes) {
  header.type = type;
  header.reserved = 0;
  header.sector = sector;
  status = 0xff;
  struct vq_buf bufs[3] = {{&header, sizeof header, 0}, {buf, bytes, device_writes}, {(const void*)&status, 1, 1}};
  if (bytes) {
    virtio_transact(&dev, 0, bufs, 3);
  } else {
    bufs[1] = bufs[2];
    virtio_transact(&dev, 0, bufs, 2);
  }
  return status == 0;
}

int blk_read(uint64_t sector, void* buf, uint32_t sectors) { return request(T_IN, sector, buf, sectors * 512, 1); }
int blk_write(uint64_t sector, const void* buf, uint32_t sectors) { return request(T_OUT, sector, buf, sectors * 512, 0); }
int blk_flush(void) { return request(T_FLUSH, 0, 0, 0, 0); }
