/* job=counter rate=R: prints "tick N" R times a second, N = 1, 2, 3, ... with no gap or repeat. */
#include "kernel/clock.h"
#include "lib/cmdline.h"
#include "drivers/console.h"
#include "arch/cpu.h"
#include "drivers/vmm.h"
#include "jobs/job.h"

static uint64_t rate;
static uint64_t ticks;

static int counter_setup(const struct boot_info* boot, uint32_t cpus) {
  (void)cpus;
  int ok = 1;
  rate = cmdline_u64(boot->cmdline, "rate", 1, &ok);
  if (!ok || rate == 0 || rate > 100000) {
    console_puts("tandem-guest: counter needs rate=1..100000 (ticks per second)\n");
    return 0;
  }
  return 1;
}

static uint64_t period, next;

static void counter_start(void) {
  period = tsc_hz / rate;
  next = rdtsc() + period;
}

static uint32_t counter_poll(void) {
  uint64_t now = rdtsc();
  if (now >= next) {
    ++ticks;
    console_puts("tick ");
    console_put_u64(ticks);
    console_putc('\n');
    next += period;
    /* Paused for longer than a period (a snapshot, a migration): go on from now, no burst. */
    if (now > next) next = now + period;
  }
  return us_until(next, 20000);
}

static void counter_stats(void) {
  console_puts("stats job=counter ticks=");
  console_put_u64(ticks);
  console_putc('\n');
}

const struct job counter_job = {
    .name = "counter",
    .setup = counter_setup,
    .start = counter_start,
    .poll = counter_poll,
    .other_loop = idle_forever,
    .verify = 0,
    .stats = counter_stats,
};
