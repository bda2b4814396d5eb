/* Constants shared by the guest's assembly and C code. */
#ifndef TANDEM_GUEST_LAYOUT_H
#define TANDEM_GUEST_LAYOUT_H

#include "guest_abi.h"
#define GUEST_MAX_CPUS 256
#define GUEST_STACK_SHIFT 13    /* 8 KiB of user-mode stack per vCPU */
#define KERNEL_STACK_SHIFT 13   /* 8 KiB per vCPU for CPL 0: its struct percpu at the bottom, the
                                   stack (TSS.RSP0) at the top; aligned, so rsp finds its percpu */

/* Segment selectors of the guest's GDT (arch/descriptors.c). */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS 0x1b            /* 0x18 | RPL 3 */
#define USER_CS 0x23            /* 0x20 | RPL 3 */
#define TSS_SELECTOR(cpu) (0x28 + 16 * (cpu))

/* Interrupt vectors. IOAPIC pin (GSI) g raises VECTOR_GSI_BASE + g. */
#define VECTOR_IDLE 3           /* int3 from CPL 3: the idle path (kernel/idle.h) */
#define VECTOR_GSI_BASE 0x20
#define GSI_COUNT 24
#define VECTOR_TIMER 0xef
#define VECTOR_SPURIOUS 0xff

/* struct percpu (kernel/percpu.h), as the assembly sees it. */
#define PERCPU_WAKES 0          /* interrupts taken: the idle path compares against it */
#define PERCPU_TIMER 8          /* timer interrupts taken */
#define PERCPU_GSI 16           /* GSI_COUNT counters: device interrupts taken, per pin */

#define LAPIC_EOI 0xfee000b0
#define MSR_TSC_DEADLINE 0x6e0

#endif
