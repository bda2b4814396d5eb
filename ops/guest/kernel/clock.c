#include "kernel/clock.h"

#include "arch/cpu.h"

uint64_t tsc_hz;

/* struct pvclock_vcpu_time_info, as KVM writes it. */
struct pvclock {
  uint32_t version;
  uint32_t pad0;
  uint64_t tsc_timestamp;
  uint64_t system_time;
  uint32_t tsc_to_system_mul;
  int8_t tsc_shift;
  uint8_t flags;
  uint8_t pad[2];
};

static struct pvclock clock_page __attribute__((aligned(64)));

enum { kMsrKvmSystemTimeNew = 0x4b564d01, kKvmFeatureClocksource2 = 1u << 3 };

uint64_t clock_calibrate(void) {
  uint32_t a, b, c, d;
  cpuid(0x40000000, &a, &b, &c, &d);
  if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d) return 0; /* "KVMKVMKVM" */
  cpuid(0x40000001, &a, &b, &c, &d);
  if (!(a & kKvmFeatureClocksource2)) return 0;

  wrmsr(kMsrKvmSystemTimeNew, (uint64_t)(uintptr_t)&clock_page | 1);
  while (((volatile struct pvclock*)&clock_page)->tsc_to_system_mul == 0) cpu_relax();
  uint32_t mul = clock_page.tsc_to_system_mul;
  int shift = clock_page.tsc_shift;
  /* Switch it off again: the rate is all we need, and a clock page KVM no longer writes is one
   * piece of state less to carry across a snapshot or a migration. */
  wrmsr(kMsrKvmSystemTimeNew, 0);

  /* ns = ((tsc shifted by shift) * mul) >> 32, so Hz = 1e9 * 2^32 / mul, shifted back. */
  uint64_t hz = (1000000000ull << 32) / mul;
  hz = shift >= 0 ? hz >> shift : hz << -shift;
  tsc_hz = hz;
  return hz;
}

uint64_t tsc_after_us(uint64_t us) { return rdtsc() + us * (tsc_hz / 1000000); }

uint32_t us_until(uint64_t when, uint32_t cap) {
  uint64_t now = rdtsc();
  if (now >= when) return 0;
  uint64_t us = (when - now) / (tsc_hz / 1000000);
  return us > cap ? cap : (uint32_t)us;
}
