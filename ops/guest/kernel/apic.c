#include "kernel/apic.h"

#include "arch/cpu.h"
#include "layout.h"

#define LAPIC_BASE 0xfee00000u
#define IOAPIC_BASE 0xfec00000u
enum {
  kLapicSvr = 0xf0, kLapicTpr = 0x80, kLvtTimer = 0x320, kLvtLint0 = 0x350, kLvtLint1 = 0x360,
  kLvtError = 0x370, kLvtMasked = 1 << 16, kTimerTscDeadline = 2 << 17, kSvrEnable = 1 << 8,
};

static void lapic_write(uint32_t reg, uint32_t value) { *(volatile uint32_t*)(uintptr_t)(LAPIC_BASE + reg) = value; }

int apic_has_tsc_deadline(void) {
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  return (c >> 24) & 1;
}

void lapic_init(void) {
  lapic_write(kLapicTpr, 0);
  lapic_write(kLapicSvr, kSvrEnable | VECTOR_SPURIOUS);
  lapic_write(kLvtLint0, kLvtMasked);
  lapic_write(kLvtLint1, kLvtMasked);
  lapic_write(kLvtError, kLvtMasked);
  lapic_write(kLvtTimer, apic_has_tsc_deadline() ? (kTimerTscDeadline | VECTOR_TIMER) : kLvtMasked);
}

void pic_mask_all(void) {
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
}

void ioapic_route(uint32_t gsi) {
  volatile uint32_t* select = (volatile uint32_t*)(uintptr_t)IOAPIC_BASE;
  volatile uint32_t* window = (volatile uint32_t*)(uintptr_t)(IOAPIC_BASE + 0x10);
  *select = 0x10 + 2 * gsi + 1;
  *window = 0;                        /* destination: APIC id 0 (vCPU 0), physical mode */
  *select = 0x10 + 2 * gsi;
  *window = VECTOR_GSI_BASE + gsi;    /* fixed delivery, edge, active high, unmasked */
}
