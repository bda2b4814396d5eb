/*
 * job=dirty mib=M rate=K [seq=1] [tick=T]: keeps an M MiB working set and writes K pages a second
 * across all vCPUs (rate=0: as fast as they can), random pages or sequential with seq=1. Each vCPU
 * owns an equal slice. Writing page p for its generation g stamps pattern(p, g) into its first and
 * last word and into a word whose place moves with g, so "verify" can check every page against its
 * generation: "verify ok pages=N" or the first bad page. Three stores, not 512: on kvm_pvm every
 * guest instruction (and every iteration of a rep prefix) costs about a microsecond.
 * tick=T (default 0: none): once the working set is filled, vCPU 0 also prints "tick N" (N = 1, 2,
 * ...) T times a second from its loop, so that an outside reader sees how long the guest stood
 * still (a migration's downtime) while it dirties memory. A tick is late by at most one batch of
 * pages; after a pause the ticks go on from now, without a burst.
 */
#include "../runtime/clock.h"
#include "../runtime/cmdline.h"
#include "../runtime/console.h"
#include "../runtime/cpu.h"
#include "../runtime/smp.h"
#include "../runtime/vmm.h"
#include "job.h"

extern char guest_image_end[];

enum { kPage = 4096, kMiB = 1 << 20, kBatch = 64 };

static uint8_t* working_set;
static volatile uint32_t* generation; /* one per page, after the working set */
static uint64_t pages;
static uint64_t rate_per_cpu;
static int sequential;
static uint64_t tick_rate;
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
  if (!ok || mib == 0 || tick_rate > 100000) {
    console_puts("tandem-guest: dirty needs mib=M (MiB, > 0), rate=K (pages/s, 0 = unlimited), seq=0|1, "
                 "tick=T (0..100000 ticks/s)\n");
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

static uint64_t moving_word(uint64_t p, uint32_t gen) { return 1 + (p * 7 + gen) % (kWords - 2); }

static void write_page(uint64_t p) {
  uint32_t gen = generation[p] + 1;
  generation[p] = gen;
  volatile uint64_t* w = (volatile uint64_t*)(working_set + p * kPage);
  uint64_t v = pattern(p, gen);
  w[0] = v;
  w[moving_word(p, gen)] = v;
  w[kWords - 1] = v;
}

static int page_ok(uint64_t p) {
  uint32_t gen = generation[p];
  const volatile uint64_t* w = (const volatile uint64_t*)(working_set + p * kPage);
  uint64_t v = pattern(p, gen);
  return w[0] == v && w[moving_word(p, gen)] == v && w[kWords - 1] == v;
}

/* The loop every vCPU runs over its slice [lo, hi). */
static void dirty_work(uint32_t cpu) {
  uint64_t lo = pages * cpu / smp.cpus, hi = pages * (cpu + 1) / smp.cpus;
  for (uint64_t p = lo; p < hi; ++p) write_page(p);
  filled[cpu] = 1;
  if (cpu == 0) {
    for (uint32_t i = 1; i < smp.cpus; ++i)
      while (!filled[i]) vmm_idle(100);
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
      vmm_idle(1000);
      continue;
    }
    /* Pages due now, written in one tight batch: the clock and the console are looked at once
     * per batch, not once per page, because every instruction counts here. */
    uint64_t due = kBatch;
    if (interval) {
      if (now < next) {
        vmm_idle(us_until(tick_period && next_tick < next ? next_tick : next, 1000));
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
