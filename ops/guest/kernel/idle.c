#include "kernel/idle.h"

#include "drivers/vmm.h"
#include "kernel/clock.h"
#include "kernel/percpu.h"

int idle_by_interrupts;

uint64_t idle_wakes(void) { return percpu_of(this_cpu())->wakes; }

void idle_until(uint64_t seen, uint64_t deadline) {
  if (idle_by_interrupts) {
    __asm__ volatile("int3" ::"D"(seen), "S"(deadline) : "rax", "rcx", "rdx", "memory");
    return;
  }
  vmm_idle(deadline ? us_until(deadline, 1000000) : 100000);
}
