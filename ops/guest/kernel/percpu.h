/*
 * What each vCPU's CPL 0 part counts, at the bottom of its kernel stack (layout.h gives the
 * offsets the assembly uses). Written only at CPL 0 by the vCPU itself; read by its own user mode.
 */
#ifndef TANDEM_GUEST_PERCPU_H
#define TANDEM_GUEST_PERCPU_H

#include <stdint.h>

#include "layout.h"

struct percpu {
  volatile uint64_t wakes;          /* every interrupt taken */
  volatile uint64_t timer;          /* timer interrupts taken */
  volatile uint64_t gsi[GSI_COUNT]; /* device interrupts taken, per IOAPIC pin */
};

_Static_assert(__builtin_offsetof(struct percpu, wakes) == PERCPU_WAKES, "PERCPU_WAKES");
_Static_assert(__builtin_offsetof(struct percpu, timer) == PERCPU_TIMER, "PERCPU_TIMER");
_Static_assert(__builtin_offsetof(struct percpu, gsi) == PERCPU_GSI, "PERCPU_GSI");

extern char kernel_stacks[];
extern char guest_stacks[];

static inline struct percpu* percpu_of(uint32_t cpu) {
  return (struct percpu*)(kernel_stacks + ((uint64_t)cpu << KERNEL_STACK_SHIFT));
}

/* At CPL 3: the vCPU whose user stack this code runs on. */
static inline uint32_t this_cpu(void) {
  char here;
  return (uint32_t)(((uint64_t)(uintptr_t)&here - (uint64_t)(uintptr_t)guest_stacks) >> GUEST_STACK_SHIFT);
}

#endif
