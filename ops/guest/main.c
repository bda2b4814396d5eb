/*
 * The tandem test guest: boots on vCPU 0, reads its jobs from the command line (job=NAME, or
 * several at once: job=kv+counter+disk; options such as rate= go to every job that reads them),
 * prints
 *   tandem-guest: ready cpus=N mem_mb=M
 * exactly once, then runs them. Console commands: verify, stats, cmdline, echo TEXT, poweroff.
 */
#include "jobs/job.h"
#include "runtime/boot_info.h"
#include "runtime/clock.h"
#include "runtime/cmdline.h"
#include "runtime/console.h"
#include "runtime/cpu.h"
#include "runtime/smp.h"
#include "runtime/vmm.h"

#define MAX_RUNNING 4

static const struct job* const jobs[] = {&counter_job, &dirty_job, &disk_job, &kv_job};
static const struct job* running[MAX_RUNNING];
static unsigned running_count;
static uint64_t ticks_per_us;
static const char* boot_cmdline = "";

uint32_t us_until(uint64_t when, uint32_t cap) {
  uint64_t now = rdtsc();
  if (now >= when) return 0;
  uint64_t us = (when - now) / ticks_per_us;
  return us > cap ? cap : (uint32_t)us;
}

void idle_forever(uint32_t cpu) {
  for (;;) {
    smp_checkpoint(cpu);
    vmm_idle(100000);
  }
}

static void run_command(const char* line) {
  if (str_eq(line, "poweroff")) {
    console_puts("tandem-guest: poweroff\n");
    vmm_poweroff(0);
  } else if (str_eq(line, "verify")) {
    for (unsigned i = 0; i < running_count; ++i) {
      if (running[i]->verify) {
        running[i]->verify();
      } else {
        console_puts("verify: job ");
        console_puts(running[i]->name);
        console_puts(" keeps no working set\n");
      }
    }
  } else if (str_eq(line, "cmdline")) {
    console_puts("cmdline ");
    console_puts(boot_cmdline);
    console_putc('\n');
  } else if (str_eq(line, "stats")) {
    for (unsigned i = 0; i < running_count; ++i) running[i]->stats();
  } else if (str_starts(line, "echo ") || str_eq(line, "echo")) {
    console_puts("echo");
    console_puts(line + 4);
    console_putc('\n');
  } else {
    console_puts("unknown command: ");
    console_puts(line);
    console_puts(" (commands: verify, stats, cmdline, echo TEXT, poweroff)\n");
  }
}

void console_service(void) {
  static char line[CONSOLE_LINE_MAX];
  if (console_poll_line(line)) run_command(line);
}

__attribute__((noreturn)) static void fail(const char* why) {
  console_puts("tandem-guest: ");
  console_puts(why);
  console_putc('\n');
  vmm_poweroff(1);
}

static void boot(uint64_t start_info, uint32_t cpus) {
  console_init();
  struct boot_info info;
  if (!boot_info_read(start_info, &info)) fail("no PVH start info from the loader");
  if (!clock_calibrate()) fail("no kvmclock: cannot measure time");
  ticks_per_us = tsc_hz / 1000000;
  boot_cmdline = info.cmdline;

  char names[48];
  if (!cmdline_get(info.cmdline, "job", names, sizeof names)) {
    const char* fallback = "counter";
    unsigned n = 0;
    for (; fallback[n]; ++n) names[n] = fallback[n];
    names[n] = 0;
  }
  /* names: one or more job names joined by '+' */
  for (char* name = names; *name;) {
    char* end = name;
    while (*end && *end != '+') ++end;
    int last = *end == 0;
    *end = 0;
    const struct job* found = 0;
    for (unsigned i = 0; i < sizeof jobs / sizeof jobs[0]; ++i)
      if (str_eq(jobs[i]->name, name)) found = jobs[i];
    if (!found) {
      console_puts("tandem-guest: unknown job ");
      console_puts(name);
      console_puts(" (jobs: counter, dirty, disk, kv; several joined by +)\n");
      vmm_poweroff(1);
    }
    if (running_count == MAX_RUNNING) fail("too many jobs at once");
    running[running_count++] = found;
    if (last) break;
    name = end + 1;
  }
  for (unsigned i = 0; i < running_count; ++i)
    if (running[i]->main_loop && running_count > 1) {
      console_puts("tandem-guest: job ");
      console_puts(running[i]->name);
      console_puts(" keeps its vCPUs to itself and runs alone\n");
      vmm_poweroff(1);
    }
  for (unsigned i = 0; i < running_count; ++i)
    if (!running[i]->setup(&info, cpus)) vmm_poweroff(1);

  smp.cpus = cpus;
  console_puts("tandem-guest: ready cpus=");
  console_put_u64(cpus);
  console_puts(" mem_mb=");
  console_put_u64((info.ram_bytes + (1 << 20) - 1) >> 20);
  console_putc('\n');
  smp.boot_done = 1;
}

/* vCPU 0 with jobs that poll: each does what is due, then the guest idles until the soonest. */
__attribute__((noreturn)) static void poll_jobs(void) {
  for (unsigned i = 0; i < running_count; ++i)
    if (running[i]->start) running[i]->start();
  for (;;) {
    console_service();
    uint32_t idle = 100000;
    for (unsigned i = 0; i < running_count; ++i) {
      uint32_t wait = running[i]->poll();
      if (wait < idle) idle = wait;
    }
    if (idle) vmm_idle(idle);
  }
}

__attribute__((noreturn)) void guest_main(uint64_t cpu, uint64_t start_info, uint64_t cpus) {
  if (cpu == 0) {
    boot(start_info, (uint32_t)cpus);
    if (running[0]->main_loop) running[0]->main_loop();
    poll_jobs();
  }
  while (!smp.boot_done) vmm_idle(1000);
  if (running_count == 1) running[0]->other_loop((uint32_t)cpu);
  idle_forever((uint32_t)cpu);
}
