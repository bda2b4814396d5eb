/*
 * What the vCPUs share. vCPU 0 boots, reads the command line and runs the console; the others wait
 * for it, then take their part of the job. Plain loads and stores: x86 keeps stores in order, and
 * every shared field is written by one vCPU only (no locked instructions needed).
 */
#ifndef TANDEM_GUEST_SMP_H
#define TANDEM_GUEST_SMP_H

#include <stdint.h>

#include "layout.h"

struct smp_shared {
  volatile uint32_t cpus;            /* written by vCPU 0 before boot_done */
  volatile uint32_t boot_done;       /* vCPU 0: the job is chosen, the others may start */
  volatile uint32_t hold_gen;        /* vCPU 0: number of the current (or last) hold */
  volatile uint32_t hold;            /* vCPU 0: everyone else stop touching the working set */
  volatile uint32_t held[GUEST_MAX_CPUS]; /* vCPU i: "I am stopped for hold number held[i]" */
};

extern struct smp_shared smp;

/* vCPU 0: asks every other vCPU to stop at a safe point and waits until they have. */
void smp_hold_others(void);
void smp_release_others(void);
/* Other vCPUs: call at safe points; parks while vCPU 0 holds. */
void smp_checkpoint(uint32_t cpu);

#endif
