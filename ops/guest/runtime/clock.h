/* Time from the TSC, its rate learned once from kvmclock (KVM's paravirtual clock). */
#ifndef TANDEM_GUEST_CLOCK_H
#define TANDEM_GUEST_CLOCK_H

#include <stdint.h>

/* Returns the TSC rate in Hz, or 0 when the hypervisor offers no kvmclock. vCPU 0 only. */
uint64_t clock_calibrate(void);
extern uint64_t tsc_hz;

#endif
