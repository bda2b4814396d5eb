/*
 * job=dirty mib=M rate=K [seq=1] [tick=T] [fill=zero|text|random]: keeps an M MiB working set and
 * writes K pages a second across all vCPUs (rate=0: as fast as they can), random pages or
 * sequential with seq=1. Each vCPU owns an equal slice. Writing page p for its generation g writes
 * the whole page, derived from (p, g), so "verify" can check every page against its generation:
 * "verify ok pages=N" or the first bad page. What a page holds (fill=, default text):
 *   zero    zero bytes but for a stamp of (p, g) in the first and last word (lz4: ~100x smaller)
 *   text    words of a small vocabulary, as prose or logs would be (lz4: about 2.5x smaller)
 *   random  bytes no compressor can shrink
 * tick=T (default 0: none): once the working set is filled, vCPU 0 also prints "tick N" (N = 1, 2,
 * ...) T times a second from its loop, so that an outside reader sees how long the guest stood
 * still (a migration's downtime) while it dirties memory. A tick is late by at most one batch of
 * pages; after a pause the ticks go on from now, without a burst.
 */
#include "kernel/clock.h"
#include "lib/cmdline.h"
#include "drivers/console.h"
#include "arch/cpu.h"
#include "kernel/smp.h"
#include "kernel/idle.h"
#include "jobs/job.h"

extern char guest_image_end[];

enum { kPage = 4096, kMiB = 1 << 20, kBatch = 64 };

static uint8_t* working_set;
static volatile uint32_t* generation; /* one per page, after the working set */
static uint64_t pages;
static uint64_t rate_per_cpu;
static int sequential;
static uint64_t tick_rate;
enum fill { kFillZero, kFillText, kFillRandom };
static enum fill fill = kFillText;
static volatile uint64_t written[GUEST_MAX_CPUS];
static volatile uint32_t filled[GUEST_MAX_CPUS];

static uint64_t pattern(uint64_t page, uint32_t gen) {
  return ((page << 32) | gen) * 0x9e3779b97f4a7c15ull + 0x5bd1e995;
}

static int dirty_setup(const struct boot_info* boot, uint32_t cpus) {
  int ok = 1;
  uint64_t mib = cmdline_u64(boot->cmdline, "mib", 16, &ok);
  uint64_t rate = cmdline_u64(boot->cmdline, "rate", 1000, &ok);
  sequential = cmdline_u64(boot->cmdline, "seq", 0, &ok) != 0;
  tick_rate = cmdline_u64(boot->cmdline, "tick", 0, &ok);
  char fill_name[8] = "text";
  cmdline_get(boot->cmdline, "fill", fill_name, sizeof fill_name);
  if (str_eq(fill_name, "zero")) fill = kFillZero;
  else if (str_eq(fill_name, "text")) fill = kFillText;
  else if (str_eq(fill_name, "random")) fill = kFillRandom;
  else ok = 0;
  if (!ok || mib == 0 || tick_rate > 100000) {
    console_puts("tandem-guest: dirty needs mib=M (MiB, > 0), rate=K (pages/s, 0 = unlimited), seq=0|1, "
                 "tick=T (0..100000 ticks/s), fill=zero|text|random\n");
    return 0;
  }
  uint64_t base = ((uint64_t)(uintptr_t)guest_image_end + 2 * kMiB - 1) & ~(uint64_t)(2 * kMiB - 1);
  pages = mib * (kMiB / kPage);
  uint64_t end = base + mib * kMiB + pages * sizeof(uint32_t);
  if (end > boot->low_ram_end) {
    console_puts("tandem-guest: dirty mib=");
    console_put_u64(mib);
    console_puts(" does not fit in guest memory; at most ");
    uint64_t room = boot->low_ram_end > base ? boot->low_ram_end - base : 0;
    console_put_u64(room / (kMiB + kMiB / kPage * sizeof(uint32_t)));
    console_puts(" MiB\n");
    return 0;
  }
  working_set = (uint8_t*)(uintptr_t)base;
  generation = (volatile uint32_t*)(uintptr_t)(base + mib * kMiB);
  rate_per_cpu = rate == 0 ? 0 : (rate + cpus - 1) / cpus;
  return 1;
}

enum { kWords = kPage / 8 };

/* 64 words of 2 to 8 letters and a space, 8 bytes each: text is whole words of it. */
static const char vocabulary[64][8] = {
    "the     ", "of      ", "and     ", "to      ", "in      ", "is      ", "that    ", "for     ",
    "it      ", "as      ", "was     ", "with    ", "be      ", "by      ", "on      ", "not     ",
    "he      ", "this    ", "are     ", "or      ", "his     ", "from    ", "at      ", "which   ",
    "but     ", "have    ", "an      ", "had     ", "they    ", "you     ", "were    ", "their   ",
    "request ", "server  ", "epoch   ", "guest   ", "memory  ", "page    ", "primary ", "standby ",
    "commit  ", "replica ", "latency ", "error   ", "warning ", "info    ", "status  ", "client  ",
    "key     ", "value   ", "record  ", "disk    ", "network ", "packet  ", "session ", "timeout ",
    "retry   ", "user    ", "time    ", "count   ", "total   ", "bytes   ", "ok      ", "done    ",
};

static uint64_t next_random(uint64_t* state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

/* Word i (1 .. kWords-2) of a page whose stamp seeded state, in order: the first and last words
 * are the stamp in every fill. Writing and verifying both draw them here. */
static uint64_t next_word(unsigned i, uint64_t* state) {
  if (fill == kFillZero) return 0;
  if (fill == kFillRandom) return next_random(state);
  if ((i & 7) == 1) next_random(state); /* 8 words from one draw of 6 bits each */
  return *(const uint64_t*)vocabulary[(*state >> (6 * (i & 7))) & 63];
}

static void fill_page(volatile uint64_t* w, uint64_t p, uint32_t gen) {
  uint64_t stamp = pattern(p, gen), state = stamp | 1;
  w[0] = stamp;
  for (unsigned i = 1; i < kWords - 1; ++i) w[i] = next_word(i, &state);
  w[kWords - 1] = stamp;
}

static int page_matches(const volatile uint64_t* w, uint64_t p, uint32_t gen) {
  uint64_t stamp = pattern(p, gen), state = stamp | 1;
  if (w[0] != stamp || w[kWords - 1] != stamp) return 0;
  for (unsigned i = 1; i < kWords - 1; ++i)
    if (w[i] != next_word(i, &state)) return 0;
  return 1;
}

static void write_page(uint64_t p) {
  uint32_t gen = generation[p] + 1;
  generation[p] = gen;
  fill_page((volatile uint64_t*)(working_set + p * kPage), p, gen);
}

static int page_ok(uint64_t p) {
  return page_matches((const volatile uint64_t*)(working_set + p * kPage), p, generation[p]);
}

/* The loop every vCPU runs over its slice [lo, hi). */
static void dirty_work(uint32_t cpu) {
  uint64_t lo = pages * cpu / smp.cpus, hi = pages * (cpu + 1) / smp.cpus;
  for (uint64_t p = lo; p < hi; ++p) write_page(p);
  filled[cpu] = 1;
  if (cpu == 0) {
    for (uint32_t i = 1; i < smp.cpus; ++i)
      while (!filled[i]) idle_until(idle_wakes(), tsc_after_us(100));
    console_puts("dirty: working set filled pages=");
    console_put_u64(pages);
    console_putc('\n');
  }

  uint64_t span = hi - lo;
  uint64_t interval = rate_per_cpu ? tsc_hz / rate_per_cpu : 0;
  uint64_t late_limit = tsc_hz / 10;
  uint64_t service_every = tsc_hz / 1000;
  uint64_t next = rdtsc(), next_service = next;
  uint64_t tick_period = cpu == 0 && tick_rate ? tsc_hz / tick_rate : 0;
  uint64_t next_tick = next + tick_period, ticks = 0;
  uint64_t cursor = 0, rng = 0x2545f4914f6cdd1dull ^ ((uint64_t)cpu << 17) ^ rdtsc();
  for (;;) {
    uint64_t now = rdtsc();
    if (cpu == 0) {
      if (now >= next_service) {
        console_service();
        next_service = now + service_every;
      }
      if (tick_period && now >= next_tick) {
        console_puts("tick ");
        console_put_u64(++ticks);
        console_putc('\n');
        next_tick += tick_period;
        if (now > next_tick) next_tick = now + tick_period; /* paused from outside: no burst */
      }
    } else {
      smp_checkpoint(cpu);
    }
    if (span == 0) {
      idle_until(idle_wakes(), tsc_after_us(1000));
      continue;
    }
    /* Pages due now, written in one tight batch: the clock and the console are looked at once
     * per batch, not once per page, because every instruction counts here. */
    uint64_t due = kBatch;
    if (interval) {
      if (now < next) {
        uint64_t wake = tick_period && next_tick < next ? next_tick : next;
        idle_until(idle_wakes(), wake < now + tsc_hz / 1000 ? wake : now + tsc_hz / 1000);
        continue;
      }
      due = (now - next) / interval + 1;
      if (due > kBatch) due = kBatch;
      next += due * interval;
      if (now > next + late_limit) next = now; /* paused from outside: no burst afterwards */
    }
    for (uint64_t i = 0; i < due; ++i) {
      uint64_t p;
      if (sequential) {
        p = lo + cursor;
        if (++cursor == span) cursor = 0;
      } else {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p = lo + (((rng >> 32) * span) >> 32); /* uniform in [0, span) without a division */
      }
      write_page(p);
    }
    written[cpu] = written[cpu] + due;
  }
}

__attribute__((noreturn)) static void dirty_main(void) {
  dirty_work(0);
  for (;;) {}
}

__attribute__((noreturn)) static void dirty_other(uint32_t cpu) {
  dirty_work(cpu);
  for (;;) {}
}

static void dirty_verify(void) {
  smp_hold_others();
  uint64_t bad = pages;
  for (uint64_t p = 0; p < pages; ++p) {
    if (!page_ok(p)) {
      bad = p;
      break;
    }
  }
  smp_release_others();
  if (bad == pages) {
    console_puts("verify ok pages=");
    console_put_u64(pages);
  } else {
    console_puts("verify bad page=");
    console_put_u64(bad);
    console_puts(" gen=");
    console_put_u64(generation[bad]);
  }
  console_putc('\n');
}

static void dirty_stats(void) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < smp.cpus; ++i) total += written[i];
  console_puts("stats job=dirty pages=");
  console_put_u64(pages);
  console_puts(" written=");
  console_put_u64(total);
  console_putc('\n');
}

const struct job dirty_job = {
    .name = "dirty",
    .setup = dirty_setup,
    .main_loop = dirty_main,
    .other_loop = dirty_other,
    .verify = dirty_verify,
    .stats = dirty_stats,
};
