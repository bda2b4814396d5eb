/* GDT, TSS and IDT: built once by vCPU 0 at CPL 0, loaded by every vCPU before it drops to CPL 3. */
#ifndef TANDEM_GUEST_DESCRIPTORS_H
#define TANDEM_GUEST_DESCRIPTORS_H

#include <stdint.h>

/* vCPU 0: one GDT with kernel and user segments and a TSS per vCPU (RSP0 at the top of the vCPU's
 * kernel stack, an I/O bitmap that opens exactly the guest's ports), and one IDT for all. */
void descriptors_build(uint32_t cpus);
/* Each vCPU: lgdt, reload segments, ltr (its own TSS), lidt. */
void descriptors_load(uint32_t cpu);

#endif
