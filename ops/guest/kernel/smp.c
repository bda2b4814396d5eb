#include "kernel/smp.h"

#include "kernel/clock.h"
#include "kernel/idle.h"

struct smp_shared smp;

void smp_hold_others(void) {
  /* hold_gen before hold: a vCPU that sees the hold also sees its number (stores stay in order). */
  uint32_t gen = smp.hold_gen + 1;
  smp.hold_gen = gen;
  smp.hold = 1;
  for (uint32_t i = 1; i < smp.cpus; ++i)
    while (smp.held[i] != gen) idle_until(idle_wakes(), tsc_after_us(50));
}

void smp_release_others(void) { smp.hold = 0; }

void smp_checkpoint(uint32_t cpu) {
  while (smp.hold) {
    smp.held[cpu] = smp.hold_gen;
    idle_until(idle_wakes(), tsc_after_us(200));
  }
}
