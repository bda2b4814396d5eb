/*
 * Waiting for work, from user mode. With interrupts (the default), a vCPU that has nothing to do
 * enters its CPL 0 idle path through `int3` and halts until a device or its timer interrupts;
 * with irq=0 on the command line it polls, giving the host its core back through the VMM's idle
 * port (or spinning, on a VMM without one). The pattern is NAPI's: take a wake count, look for
 * work, and sleep only if no interrupt came since the count was taken:
 *
 *   uint64_t seen = idle_wakes();
 *   if (!work()) idle_until(seen, tsc_after_us(1000));
 */
#ifndef TANDEM_GUEST_IDLE_H
#define TANDEM_GUEST_IDLE_H

#include <stdint.h>

/* 1: devices interrupt and idle vCPUs halt; 0: the guest polls (irq=0). Set at CPL 0 at boot. */
extern int idle_by_interrupts;

/* Interrupts this vCPU has taken so far. */
uint64_t idle_wakes(void);
/* Sleeps until an interrupt newer than `seen`, or TSC `deadline` (0: no deadline). */
void idle_until(uint64_t seen, uint64_t deadline);

#endif
