/* Talking to the VMM: power off, and idle without spinning (see guest_abi.h). */
#ifndef TANDEM_GUEST_VMM_H
#define TANDEM_GUEST_VMM_H

#include <stdint.h>

#include "arch/cpu.h"
#include "guest_abi.h"

__attribute__((noreturn)) static inline void vmm_poweroff(uint8_t status) {
  for (;;) outb(TANDEM_PORT_EXIT, status);
}

/* Gives the host CPU back for up to max_us microseconds, or until console input arrives. */
static inline void vmm_idle(uint32_t max_us) { outl(TANDEM_PORT_IDLE, max_us); }

#endif
