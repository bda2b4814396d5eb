/*
 * The tandem test guest's user mode (CPL 3, native speed on kvm_pvm; kernel/kernel.c got it here):
 * vCPU 0 reads its jobs from the command line (job=NAME, or several at once: job=kv+counter+disk;
 * options such as rate= go to every job that reads them), prints
 *   tandem-guest: ready cpus=N mem_mb=M cpl=C irq=0|1 mips=S
 * exactly once (C: the privilege level its jobs run at, S: millions of simple instructions a
 * second measured there), then runs them. Console commands: verify, stats, cmdline, echo TEXT,
 * fault (an invalid instruction: the exception path), poweroff.
 */
#include "arch/cpu.h"
#include "drivers/console.h"
#include "drivers/virtio.h"
#include "drivers/vmm.h"
#include "jobs/job.h"
#include "kernel/clock.h"
#include "kernel/idle.h"
#include "kernel/percpu.h"
#include "kernel/smp.h"
#include "lib/boot_info.h"
#include "lib/cmdline.h"

#define MAX_RUNNING 4

static const struct job* const jobs[] = {&counter_job, &dirty_job, &disk_job, &kv_job};
static const struct job* running[MAX_RUNNING];
static unsigned running_count;
static const char* boot_cmdline = "";

void idle_forever(uint32_t cpu) {
  for (;;) {
    uint64_t seen = idle_wakes();
    smp_checkpoint(cpu);
    idle_until(seen, tsc_after_us(10000));
  }
}

static void interrupt_stats(void) {
  struct percpu* p = percpu_of(0);
  console_puts("stats interrupts mode=");
  console_puts(idle_by_interrupts ? "irq" : "poll");
  console_puts(" taken=");
  console_put_u64(p->wakes);
  console_puts(" timer=");
  console_put_u64(p->timer);
  console_putc('\n');
  virtio_stats();
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
    interrupt_stats();
  } else if (str_eq(line, "fault")) {
    __asm__ volatile("ud2");
  } else if (str_starts(line, "echo ") || str_eq(line, "echo")) {
    console_puts("echo");
    console_puts(line + 4);
    console_putc('\n');
  } else {
    console_puts("unknown command: ");
    console_puts(line);
    console_puts(" (commands: verify, stats, cmdline, echo TEXT, fault, poweroff)\n");
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

/* Millions of simple instructions a second, here: a dependent add/dec/branch loop of 300,000
 * instructions timed by the TSC, the best of up to 16 rounds within about 2 ms (one round where
 * rounds are slow: emulated code), so that a round the host preempted does not count. */
static uint64_t measure_mips(void) {
  uint64_t best = 0, began = rdtsc();
  for (int round = 0; round < 16 && rdtsc() - began < tsc_hz / 500; ++round) {
    uint64_t n = 100000, sum = 0, start = rdtsc();
    __asm__ volatile("1: add %1, %0\n\tdec %1\n\tjnz 1b" : "+r"(sum), "+r"(n));
    uint64_t spent = rdtsc() - start + 1;
    uint64_t mips = 300000 * (tsc_hz / 1000) / spent / 1000; /* instructions * Hz / ticks / 1e6 */
    if (mips > best) best = mips;
  }
  return best;
}

static unsigned current_cpl(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  return cs & 3;
}

static void boot(uint64_t start_info, uint32_t cpus) {
  struct boot_info info;
  if (!boot_info_read(start_info, &info)) fail("no PVH start info from the loader");
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
  console_puts(" cpl=");
  console_put_u64(current_cpl());
  console_puts(" irq=");
  console_put_u64((uint64_t)idle_by_interrupts);
  console_puts(" mips=");
  console_put_u64(measure_mips());
  console_putc('\n');
  smp.boot_done = 1;
}

/* vCPU 0 with jobs that poll: each does what is due, then the guest idles until the soonest. */
__attribute__((noreturn)) static void poll_jobs(void) {
  for (unsigned i = 0; i < running_count; ++i)
    if (running[i]->start) running[i]->start();
  for (;;) {
    uint64_t seen = idle_wakes();
    console_service();
    uint32_t idle = 100000;
    for (unsigned i = 0; i < running_count; ++i) {
      uint32_t wait = running[i]->poll();
      if (wait < idle) idle = wait;
    }
    if (idle) idle_until(seen, tsc_after_us(idle));
  }
}

__attribute__((noreturn)) void guest_main(uint64_t cpu, uint64_t start_info, uint64_t cpus) {
  if (cpu == 0) {
    boot(start_info, (uint32_t)cpus);
    if (running[0]->main_loop) running[0]->main_loop();
    poll_jobs();
  }
  while (!smp.boot_done) idle_until(idle_wakes(), tsc_after_us(1000));
  if (running_count == 1) running[0]->other_loop((uint32_t)cpu);
  idle_forever((uint32_t)cpu);
}
