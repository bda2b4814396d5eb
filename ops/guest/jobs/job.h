/*
 * A guest job: what the guest does after it booted. vCPU 0 runs main_loop and serves the console
 * from it (console_service); every other vCPU runs other_loop.
 */
#ifndef TANDEM_GUEST_JOB_H
#define TANDEM_GUEST_JOB_H

#include <stdint.h>

#include "../runtime/boot_info.h"

struct job {
  const char* name;
  /* vCPU 0, before the ready line: reads its options; prints the problem and returns 0 if unusable. */
  int (*setup)(const struct boot_info* boot, uint32_t cpus);
  __attribute__((noreturn)) void (*main_loop)(void);
  __attribute__((noreturn)) void (*other_loop)(uint32_t cpu);
  /* Console command "verify": checks what the job keeps in memory. NULL when it keeps nothing. */
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
/* Microseconds until TSC value `when`, for vmm_idle; 0 if it has passed, at most cap. */
uint32_t us_until(uint64_t when, uint32_t cap);

#endif
