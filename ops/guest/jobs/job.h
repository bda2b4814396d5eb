/*
 * A guest job: what the guest does after it booted. Several may run at once (job=kv+counter+disk):
 * vCPU 0 serves the console and polls each in turn, idling until the soonest one has work again
 * (interrupts: console input, received frames, completed disk requests, end the idle early). A job that keeps vCPU 0 busy itself
 * (dirty) has a main_loop instead of poll and runs alone; every other vCPU runs the job's
 * other_loop, or idles when several jobs run.
 */
#ifndef TANDEM_GUEST_JOB_H
#define TANDEM_GUEST_JOB_H

#include <stdint.h>

#include "lib/boot_info.h"

struct job {
  const char* name;
  /* vCPU 0, before the ready line: reads its options; prints the problem and returns 0 if unusable. */
  int (*setup)(const struct boot_info* boot, uint32_t cpus);
  /* vCPU 0, once after the ready line (may be NULL). */
  void (*start)(void);
  /* vCPU 0: does what is due now; returns the microseconds until it has work again (0: at once). */
  uint32_t (*poll)(void);
  /* Instead of start and poll: keeps vCPU 0 for itself (the job then runs alone). */
  __attribute__((noreturn)) void (*main_loop)(void);
  __attribute__((noreturn)) void (*other_loop)(uint32_t cpu);
  /* Console command "verify": checks what the job keeps. NULL when it keeps nothing. */
  void (*verify)(void);
  /* Console command "stats": one line about the job's progress. */
  void (*stats)(void);
};

extern const struct job counter_job;
extern const struct job dirty_job;
extern const struct job disk_job;
extern const struct job kv_job;

/* vCPU 0: reads console input and runs complete commands. Cheap to call often. */
void console_service(void);
/* Other vCPUs without a part in the job: park here, taking part in holds, for good. */
__attribute__((noreturn)) void idle_forever(uint32_t cpu);

#endif
