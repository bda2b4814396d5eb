/*
 * job=disk [rate=R] [every=E]: on start, reads and checks every record already on the virtio disk and
 * prints "disk: verified N records" (or "disk: bad record at sector S" and powers off with status
 * 1); then appends record N+1, N+2, ... R per second (0: as fast as it can), each written and
 * flushed before "disk: wrote record K" is printed (for every E-th record only with every=E: each
 * byte printed is a VM exit). Record k sits in sector k-1: magic, k, words derived
 * from k, and a checksum of them.
 */
#include "drivers/blk.h"
#include "kernel/clock.h"
#include "lib/cmdline.h"
#include "drivers/console.h"
#include "arch/cpu.h"
#include "drivers/vmm.h"
#include "jobs/job.h"

#define RECORD_MAGIC 0x314345524d444e54ull /* "TNDMREC1" */
#define RECORD_WORDS 64                    /* 512 bytes */

static uint64_t capacity;
static uint64_t records;
static uint64_t rate;
static uint64_t every;
static uint64_t record[RECORD_WORDS] __attribute__((aligned(512)));

static uint64_t mix(uint64_t seq, uint64_t i) { return (seq * 0x9e3779b97f4a7c15ull) ^ (i * 0xc2b2ae3d27d4eb4full); }

static uint64_t checksum(const uint64_t* words) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned i = 0; i < RECORD_WORDS - 1; ++i) h = (h ^ words[i]) * 0x100000001b3ull;
  return h;
}

static void make_record(uint64_t seq) {
  record[0] = RECORD_MAGIC;
  record[1] = seq;
  for (unsigned i = 2; i < RECORD_WORDS - 1; ++i) record[i] = mix(seq, i);
  record[RECORD_WORDS - 1] = checksum(record);
}

/* 1: a good record k; 0: no record (never written); -1: damaged or out of order. */
static int check_record(uint64_t k) {
  if (record[0] != RECORD_MAGIC) return 0;
  if (record[1] != k || record[RECORD_WORDS - 1] != checksum(record)) return -1;
  for (unsigned i = 2; i < RECORD_WORDS - 1; ++i)
    if (record[i] != mix(k, i)) return -1;
  return 1;
}

static int disk_setup(const struct boot_info* boot, uint32_t cpus) {
  (void)cpus;
  int ok = 1;
  rate = cmdline_u64(boot->cmdline, "rate", 10, &ok);
  every = cmdline_u64(boot->cmdline, "every", 1, &ok);
  if (!ok || every == 0) {
    console_puts("tandem-guest: disk needs rate=R (records per second, 0 = unlimited), every=E (print every E-th record, > 0)\n");
    return 0;
  }
  capacity = blk_open(boot->cmdline);
  if (capacity == 0) {
    console_puts("tandem-guest: disk needs a virtio block device of its own (tandem run --disk FILE)\n");
    return 0;
  }
  return 1;
}

static uint64_t interval, next;
static int full;

static void disk_start(void) {
  for (records = 0; records < capacity; ++records) {
    if (!blk_read(records, record, 1)) {
      console_puts("disk: read error at sector ");
      console_put_u64(records);
      console_putc('\n');
      vmm_poweroff(1);
    }
    int verdict = check_record(records + 1);
    if (verdict == 0) break;
    if (verdict < 0) {
      console_puts("disk: bad record at sector ");
      console_put_u64(records);
      console_putc('\n');
      vmm_poweroff(1);
    }
  }
  console_puts("disk: verified ");
  console_put_u64(records);
  console_puts(" records\n");
  interval = rate ? tsc_hz / rate : 0;
  next = rdtsc();
}

static uint32_t disk_poll(void) {
  if (full) return 100000;
  if (records >= capacity) {
    console_puts("disk: full after ");
    console_put_u64(records);
    console_puts(" records\n");
    full = 1;
    return 100000;
  }
  if (interval) {
    uint64_t now = rdtsc();
    if (now < next) return us_until(next, 20000);
    next = now > next + interval ? now + interval : next + interval;
  }
  make_record(records + 1);
  if (!blk_write(records, record, 1) || !blk_flush()) {
    console_puts("disk: write error at sector ");
    console_put_u64(records);
    console_putc('\n');
    vmm_poweroff(1);
  }
  ++records;
  if (records % every == 0) {
    console_puts("disk: wrote record ");
    console_put_u64(records);
    console_putc('\n');
  }
  return interval ? us_until(next, 20000) : 0;
}

static void disk_verify(void) {
  for (uint64_t k = 0; k < records; ++k) {
    if (!blk_read(k, record, 1) || check_record(k + 1) != 1) {
      console_puts("verify bad record=");
      console_put_u64(k + 1);
      console_putc('\n');
      return;
    }
  }
  console_puts("verify ok records=");
  console_put_u64(records);
  console_putc('\n');
}

static void disk_stats(void) {
  console_puts("stats job=disk records=");
  console_put_u64(records);
  console_puts(" capacity=");
  console_put_u64(capacity);
  console_putc('\n');
}

const struct job disk_job = {
    .name = "disk",
    .setup = disk_setup,
    .start = disk_start,
    .poll = disk_poll,
    .other_loop = idle_forever,
    .verify = disk_verify,
    .stats = disk_stats,
};
