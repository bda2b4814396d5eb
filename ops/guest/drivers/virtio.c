#include "drivers/virtio.h"

#include "lib/cmdline.h"
#include "arch/cpu.h"
#include "drivers/console.h"
#include "drivers/vmm.h"
#include "kernel/clock.h"
#include "kernel/idle.h"
#include "kernel/percpu.h"

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

/* Rings for every queue of every device we may open; each ring area is its own page. */
static struct vq_desc desc_area[MAX_DEVICES * VQ_MAX_QUEUES][VQ_SIZE] __attribute__((aligned(4096)));
static uint16_t avail_area[MAX_DEVICES * VQ_MAX_QUEUES][2048] __attribute__((aligned(4096)));
static uint16_t used_area[MAX_DEVICES * VQ_MAX_QUEUES][2048] __attribute__((aligned(4096)));
static unsigned opened;
static struct virtio_dev* devices[MAX_DEVICES];

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

/* The n-th virtio_mmio.device=SIZE@ADDR:GSI word: 1 with its address and pin, 0 when there are fewer. */
static int device_word(const char* cmdline, unsigned n, uint64_t* address, uint32_t* gsi) {
  static const char key[] = "virtio_mmio.device=";
  for (const char* p = cmdline; *p; ++p) {
    if ((p != cmdline && p[-1] != ' ') || !str_starts(p, key)) continue;
    const char* s = p + sizeof key - 1;
    parse_number(&s);                      /* size */
    if (*s == 'K' || *s == 'k') ++s;
    if (*s++ != '@') continue;
    uint64_t a = parse_number(&s);
    uint32_t g = 0;
    if (*s == ':') {
      ++s;
      g = (uint32_t)parse_number(&s);
    }
    if (n-- == 0) {
      *address = a;
      *gsi = g;
      return 1;
    }
  }
  return 0;
}

int virtio_device_gsi(const char* cmdline, unsigned n, uint32_t* gsi) {
  uint64_t address;
  return device_word(cmdline, n, &address, gsi);
}

void virtio_stats(void) {
  for (unsigned i = 0; i < opened; ++i) {
    struct virtio_dev* d = devices[i];
    if (!d) continue;
    console_puts("stats virtio dev=");
    console_puts(d->name);
    console_puts(" gsi=");
    console_put_u64(d->gsi);
    console_puts(" interrupts=");
    console_put_u64(d->gsi < GSI_COUNT ? percpu_of(0)->gsi[d->gsi] : 0);
    console_puts(" completions=");
    console_put_u64(d->completions);
    console_puts(" stalls=");
    console_put_u64(d->stalls);
    console_putc('\n');
  }
}

int virtio_open(struct virtio_dev* dev, const char* cmdline, uint32_t device_id, uint64_t wanted, unsigned nqueues) {
  for (unsigned n = 0; opened < MAX_DEVICES; ++n) {
    uint64_t address;
    uint32_t gsi;
    if (!device_word(cmdline, n, &address, &gsi)) return 0;
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
    int queues_ok = 1;
    for (unsigned qi = 0; qi < nqueues && qi < VQ_MAX_QUEUES; ++qi) {
      unsigned area = slot * VQ_MAX_QUEUES + qi;
      r[R_QUEUE_SEL] = qi;
      if (r[R_QUEUE_NUM_MAX] < VQ_SIZE) queues_ok = 0;
      r[R_QUEUE_NUM] = VQ_SIZE;
      uint64_t d = (uintptr_t)desc_area[area], a = (uintptr_t)avail_area[area], u = (uintptr_t)used_area[area];
      r[R_QUEUE_DESC_LOW] = (uint32_t)d;
      r[R_QUEUE_DESC_HIGH] = (uint32_t)(d >> 32);
      r[R_QUEUE_AVAIL_LOW] = (uint32_t)a;
      r[R_QUEUE_AVAIL_HIGH] = (uint32_t)(a >> 32);
      r[R_QUEUE_USED_LOW] = (uint32_t)u;
      r[R_QUEUE_USED_HIGH] = (uint32_t)(u >> 32);
      r[R_QUEUE_READY] = 1;
      struct virtq* q = &dev->q[qi];
      q->desc = desc_area[area];
      q->avail = avail_area[area];
      q->used = used_area[area];
      q->avail_idx = q->avail[1];
      q->used_seen = q->used[1];
    }
    if (!queues_ok) continue;
    r[R_STATUS] = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
    dev->regs = r;
    dev->features = accepted;
    dev->gsi = gsi;
    dev->name = device_id == 1 ? "net" : device_id == 2 ? "blk" : "other";
    devices[slot] = dev;
    return 1;
  }
  return 0;
}

uint8_t virtio_config8(struct virtio_dev* dev, uint32_t offset) {
  return ((volatile uint8_t*)(dev->regs + R_CONFIG))[offset];
}

uint32_t virtio_config32(struct virtio_dev* dev, uint32_t offset) { return dev->regs[R_CONFIG + offset / 4]; }

void virtio_notify(struct virtio_dev* dev, unsigned q) { dev->regs[R_QUEUE_NOTIFY] = q; }

static void offer(struct virtq* q, uint16_t head) {
  q->avail[2 + q->avail_idx % VQ_SIZE] = head;
  compiler_barrier(); /* x86 keeps stores in order; the compiler must too */
  q->avail[1] = ++q->avail_idx;
  compiler_barrier();
}

uint32_t virtio_transact(struct virtio_dev* dev, unsigned qi, const struct vq_buf* bufs, unsigned n) {
  struct virtq* q = &dev->q[qi];
  for (unsigned i = 0; i < n; ++i) {
    q->desc[i].addr = (uint64_t)(uintptr_t)bufs[i].addr;
    q->desc[i].len = bufs[i].len;
    q->desc[i].flags = (uint16_t)((i + 1 < n ? D_NEXT : 0) | (bufs[i].device_writes ? D_WRITE : 0));
    q->desc[i].next = (uint16_t)(i + 1);
  }
  uint64_t seen = idle_wakes();
  offer(q, 0);
  virtio_notify(dev, qi);
  if (idle_by_interrupts) {
    while (q->used[1] == q->used_seen) {
      uint64_t deadline = tsc_after_us(1000000);
      idle_until(seen, deadline);
      seen = idle_wakes();
      if (q->used[1] != q->used_seen && rdtsc() >= deadline) ++dev->stalls;
    }
  } else {
    /* Not a native spin: the host's io thread that serves the request may need this core. The
     * VMM's idle port returns when the device has used the buffer. */
    while (q->used[1] == q->used_seen) vmm_idle(100);
  }
  compiler_barrier();
  ++dev->completions;
  volatile uint32_t* elem = (volatile uint32_t*)(q->used + 2) + 2 * (q->used_seen % VQ_SIZE);
  ++q->used_seen;
  return elem[1];
}

void virtio_offer(struct virtio_dev* dev, unsigned qi, unsigned slot, const void* buf, uint32_t len, int device_writes) {
  struct virtq* q = &dev->q[qi];
  q->desc[slot].addr = (uint64_t)(uintptr_t)buf;
  q->desc[slot].len = len;
  q->desc[slot].flags = device_writes ? D_WRITE : 0;
  q->desc[slot].next = 0;
  offer(q, (uint16_t)slot);
}

void virtio_post(struct virtio_dev* dev, unsigned qi, unsigned slot, void* buf, uint32_t len) {
  virtio_offer(dev, qi, slot, buf, len, 1);
}

int virtio_poll(struct virtio_dev* dev, unsigned qi, unsigned* slot, uint32_t* len) {
  struct virtq* q = &dev->q[qi];
  if (q->used[1] == q->used_seen) return 0;
  compiler_barrier();
  volatile uint32_t* elem = (volatile uint32_t*)(q->used + 2) + 2 * (q->used_seen % VQ_SIZE);
  *slot = elem[0];
  *len = elem[1];
  ++q->used_seen;
  ++dev->completions;
  return 1;
}

enum { AVAIL_NO_INTERRUPT = 1 };

void virtio_interrupts_off(struct virtio_dev* dev, unsigned qi) { dev->q[qi].avail[0] = AVAIL_NO_INTERRUPT; }

int virtio_interrupts_on(struct virtio_dev* dev, unsigned qi) {
  struct virtq* q = &dev->q[qi];
  q->avail[0] = 0;
  /* The flag's store before the used index's load (the device fences the other way round). */
  __asm__ volatile("mfence" ::: "memory");
  if (q->used[1] == q->used_seen) return 0;
  q->avail[0] = AVAIL_NO_INTERRUPT;
  return 1;
}
