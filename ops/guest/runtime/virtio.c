#include "virtio.h"

#include "cmdline.h"
#include "cpu.h"

enum {
  R_MAGIC = 0x000 / 4, R_VERSION = 0x004 / 4, R_DEVICE_ID = 0x008 / 4, R_DEVICE_FEATURES = 0x010 / 4,
  R_DEVICE_FEATURES_SEL = 0x014 / 4, R_DRIVER_FEATURES = 0x020 / 4, R_DRIVER_FEATURES_SEL = 0x024 / 4,
  R_QUEUE_SEL = 0x030 / 4, R_QUEUE_NUM_MAX = 0x034 / 4, R_QUEUE_NUM = 0x038 / 4, R_QUEUE_READY = 0x044 / 4,
  R_QUEUE_NOTIFY = 0x050 / 4, R_STATUS = 0x070 / 4, R_QUEUE_DESC_LOW = 0x080 / 4, R_QUEUE_DESC_HIGH = 0x084 / 4,
  R_QUEUE_AVAIL_LOW = 0x090 / 4, R_QUEUE_AVAIL_HIGH = 0x094 / 4, R_QUEUE_USED_LOW = 0x0a0 / 4,
  R_QUEUE_USED_HIGH = 0x0a4 / 4, R_CONFIG = 0x100 / 4,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };
enum { D_NEXT = 1, D_WRITE = 2 };

#define MAX_DEVICES 8
#define VERSION_1 (1ull << 32)

/* One set of rings per device we may open; each ring area is its own page. */
static struct vq_desc desc_area[MAX_DEVICES][VQ_SIZE] __attribute__((aligned(4096)));
static uint16_t avail_area[MAX_DEVICES][2048] __attribute__((aligned(4096)));
static uint16_t used_area[MAX_DEVICES][2048] __attribute__((aligned(4096)));
static unsigned opened;

static uint64_t parse_number(const char** p) {
  uint64_t v = 0;
  const char* s = *p;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    for (;; ++s) {
      char c = *s;
      if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
      else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v = v * 16 + (uint64_t)(c - 'A' + 10);
      else break;
    }
  } else {
    while (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
  }
  *p = s;
  return v;
}

/* The address of the n-th virtio_mmio.device= word, or 0 when there are fewer. */
static uint64_t device_address(const char* cmdline, unsigned n) {
  static const char key[] = "virtio_mmio.device=";
  for (const char* p = cmdline; *p; ++p) {
    if ((p != cmdline && p[-1] != ' ') || !str_starts(p, key)) continue;
    const char* s = p + sizeof key - 1;
    parse_number(&s);                      /* size */
    if (*s == 'K' || *s == 'k') ++s;
    if (*s++ != '@') continue;
    uint64_t address = parse_number(&s);
    if (n-- == 0) return address;
  }
  return 0;
}

int virtio_open(struct virtio_dev* dev, const char* cmdline, uint32_t device_id, uint64_t wanted) {
  for (unsigned n = 0; opened < MAX_DEVICES; ++n) {
    uint64_t address = device_address(cmdline, n);
    if (!address) return 0;
    volatile uint32_t* r = (volatile uint32_t*)(uintptr_t)address;
    if (r[R_MAGIC] != 0x74726976 || r[R_VERSION] != 2 || r[R_DEVICE_ID] != device_id) continue;

    r[R_STATUS] = 0;
    r[R_STATUS] = S_ACK | S_DRIVER;
    r[R_DEVICE_FEATURES_SEL] = 0;
    uint64_t offered = r[R_DEVICE_FEATURES];
    r[R_DEVICE_FEATURES_SEL] = 1;
    offered |= (uint64_t)r[R_DEVICE_FEATURES] << 32;
    uint64_t accepted = offered & (wanted | VERSION_1);
    if (!(accepted & VERSION_1)) continue;
    r[R_DRIVER_FEATURES_SEL] = 0;
    r[R_DRIVER_FEATURES] = (uint32_t)accepted;
    r[R_DRIVER_FEATURES_SEL] = 1;
    r[R_DRIVER_FEATURES] = (uint32_t)(accepted >> 32);
    r[R_STATUS] = S_ACK | S_DRIVER | S_FEATURES_OK;
    if (!(r[R_STATUS] & S_FEATURES_OK)) continue;

    unsigned slot = opened++;
    r[R_QUEUE_SEL] = 0;
    if (r[R_QUEUE_NUM_MAX] < VQ_SIZE) continue;
    r[R_QUEUE_NUM] = VQ_SIZE;
    uint64_t d = (uintptr_t)desc_area[slot], a = (uintptr_t)avail_area[slot], u = (uintptr_t)used_area[slot];
    r[R_QUEUE_DESC_LOW] = (uint32_t)d;
    r[R_QUEUE_DESC_HIGH] = (uint32_t)(d >> 32);
    r[R_QUEUE_AVAIL_LOW] = (uint32_t)a;
    r[R_QUEUE_AVAIL_HIGH] = (uint32_t)(a >> 32);
    r[R_QUEUE_USED_LOW] = (uint32_t)u;
    r[R_QUEUE_USED_HIGH] = (uint32_t)(u >> 32);
    r[R_QUEUE_READY] = 1;
    r[R_STATUS] = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;

    dev->regs = r;
    dev->features = accepted;
    dev->desc = desc_area[slot];
    dev->avail = avail_area[slot];
    dev->used = used_area[slot];
    dev->avail_idx = dev->avail[1];
    dev->used_seen = dev->used[1];
    return 1;
  }
  return 0;
}

uint32_t virtio_config32(struct virtio_dev* dev, uint32_t offset) { return dev->regs[R_CONFIG + offset / 4]; }

uint32_t virtio_transact(struct virtio_dev* dev, const struct vq_buf* bufs, unsigned n) {
  /* One request in flight at a time: descriptors 0..n-1 are always free here. */
  for (unsigned i = 0; i < n; ++i) {
    dev->desc[i].addr = (uint64_t)(uintptr_t)bufs[i].addr;
    dev->desc[i].len = bufs[i].len;
    dev->desc[i].flags = (uint16_t)((i + 1 < n ? D_NEXT : 0) | (bufs[i].device_writes ? D_WRITE : 0));
    dev->desc[i].next = (uint16_t)(i + 1);
  }
  dev->avail[2 + dev->avail_idx % VQ_SIZE] = 0;
  compiler_barrier(); /* x86 keeps stores in order; the compiler must too */
  dev->avail[1] = ++dev->avail_idx;
  compiler_barrier();
  dev->regs[R_QUEUE_NOTIFY] = 0;
  while (dev->used[1] == dev->used_seen) cpu_relax();
  compiler_barrier();
  volatile uint32_t* elem = (volatile uint32_t*)(dev->used + 2) + 2 * (dev->used_seen % VQ_SIZE);
  ++dev->used_seen;
  return elem[1];
}
