/*
 * The guest's CPL 0 part, run once per vCPU from its entry: vCPU 0 prepares what all share (the
 * console, the clock rate, GDT/TSS/IDT, the interrupt controllers; the loader's page tables are
 * open to user mode already),
 * each vCPU loads its descriptors and LAPIC, and drops to CPL 3 at guest_main, for good. From then
 * on CPL 0 runs only as the handlers of arch/traps.S.
 */
#include "arch/cpu.h"
#include "arch/descriptors.h"
#include "arch/paging.h"
#include "drivers/console.h"
#include "drivers/virtio.h"
#include "drivers/vmm.h"
#include "kernel/apic.h"
#include "kernel/clock.h"
#include "kernel/idle.h"
#include "layout.h"
#include "lib/boot_info.h"
#include "lib/cmdline.h"

void guest_main(uint64_t cpu, uint64_t start_info, uint64_t cpus);
__attribute__((noreturn)) void enter_user(void (*fn)(uint64_t, uint64_t, uint64_t), char* stack_top, uint64_t a0,
                                          uint64_t a1, uint64_t a2);
extern char guest_stacks[];

static volatile uint32_t kernel_ready;

__attribute__((noreturn)) static void fail(const char* why) {
  console_puts("tandem-guest: ");
  console_puts(why);
  console_putc('\n');
  vmm_poweroff(1);
}

/* vCPU 0: everything the vCPUs share. */
static void prepare(uint64_t start_info, uint32_t cpus) {
  console_init();
  struct boot_info info;
  if (!boot_info_read(start_info, &info)) fail("no PVH start info from the loader");
  if (!clock_calibrate()) fail("no kvmclock: cannot measure time");
  if (!paging_open_to_user()) fail("the loader's page tables are not open to user mode (U/S), where the jobs run");
  descriptors_build(cpus);
  pic_mask_all();

  int ok = 1;
  idle_by_interrupts = cmdline_u64(info.cmdline, "irq", 1, &ok) != 0;
  if (!ok) fail("irq= takes 1 (devices interrupt, idle vCPUs halt) or 0 (the guest polls)");
  if (idle_by_interrupts && !apic_has_tsc_deadline()) {
    console_puts("tandem-guest: the CPU offers no TSC-deadline timer; polling (as irq=0)\n");
    idle_by_interrupts = 0;
  }
  if (idle_by_interrupts) {
    console_enable_rx_interrupt();
    ioapic_route(4); /* COM1 */
    uint32_t gsi;
    for (unsigned n = 0; virtio_device_gsi(info.cmdline, n, &gsi); ++n)
      if (gsi < GSI_COUNT) ioapic_route(gsi);
  }
}

__attribute__((noreturn)) void kernel_start(uint64_t cpu, uint64_t start_info, uint64_t cpus) {
  if (cpu == 0) {
    prepare(start_info, (uint32_t)cpus);
    kernel_ready = 1;
  } else {
    while (!kernel_ready) cpu_relax();
  }
  descriptors_load((uint32_t)cpu);
  lapic_init();
  enter_user(guest_main, guest_stacks + ((cpu + 1) << GUEST_STACK_SHIFT), cpu, start_info, cpus);
}

/* From arch/traps.S: frame = vector, error code, then the CPU's rip, cs, rflags, rsp, ss. */
__attribute__((noreturn)) void fatal_exception(const uint64_t* frame) {
  uint64_t cr2;
  __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
  console_puts("\ntandem-guest: exception vector=");
  console_put_u64(frame[0]);
  console_puts(" error=");
  console_put_hex(frame[1]);
  console_puts(" rip=");
  console_put_hex(frame[2]);
  console_puts(" cpl=");
  console_put_u64(frame[3] & 3);
  if (frame[0] == 14) {
    console_puts(" address=");
    console_put_hex(cr2);
  }
  console_putc('\n');
  vmm_poweroff(1);
}
