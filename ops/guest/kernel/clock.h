/* Time from the TSC, its rate learned once from kvmclock (KVM's paravirtual clock). */
#ifndef TANDEM_GUEST_CLOCK_H
#define TANDEM_GUEST_CLOCK_H

#include <stdint.h>

/* Returns the TSC rate in Hz, or 0 when the hypervisor offers no kvmclock. vCPU 0 only, at CPL 0 (it writes an MSR). */
uint64_t clock_calibrate(void);
extern uint64_t tsc_hz;

/* The TSC value `us` microseconds from now. */
uint64_t tsc_after_us(uint64_t us);
/* Microseconds until TSC value `when`; 0 if it has passed, at most cap. */
uint32_t us_until(uint64_t when, uint32_t cap);

#endif
