/* The interrupt controllers, programmed at CPL 0: the vCPU's LAPIC, the IOAPIC, the legacy PIC. */
#ifndef TANDEM_GUEST_APIC_H
#define TANDEM_GUEST_APIC_H

#include <stdint.h>

/* 1 when the CPU offers the LAPIC timer's TSC-deadline mode (the idle path's timer). */
int apic_has_tsc_deadline(void);
/* This vCPU's LAPIC: enabled, spurious vector, LINT0/LINT1/error masked, timer in TSC-deadline
 * mode on VECTOR_TIMER (when offered). */
void lapic_init(void);
/* Masks every pin of the legacy 8259 pair: all interrupts come through the IOAPIC. */
void pic_mask_all(void);
/* Routes IOAPIC pin gsi to vCPU 0 as VECTOR_GSI_BASE + gsi, edge-triggered, active high. */
void ioapic_route(uint32_t gsi);

#endif
