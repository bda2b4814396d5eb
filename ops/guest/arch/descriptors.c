#include "arch/descriptors.h"

#include "guest_abi.h"
#include "layout.h"

extern char kernel_stacks[];
extern char exception_entries[], gsi_entries[], idle_entry[], timer_entry[], spurious_entry[];

/* The ports user mode may use: the console (COM1), the exit port, the idle port (32 bits wide). */
static const struct {
  uint16_t first, count;
} open_ports[] = {{0x3f8, 8}, {TANDEM_PORT_EXIT, 1}, {TANDEM_PORT_IDLE, 4}};
#define IO_BITMAP_BYTES ((TANDEM_PORT_IDLE + 4) / 8 + 1)

struct tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t io_bitmap_offset;
  uint8_t io_bitmap[IO_BITMAP_BYTES + 1]; /* + the all-ones byte the CPU may read past the end */
} __attribute__((packed, aligned(64)));

struct gate {
  uint16_t offset_low, selector;
  uint8_t ist, type_attributes;
  uint16_t offset_mid;
  uint32_t offset_high, reserved;
} __attribute__((packed));

struct table_pointer {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

#define GDT_ENTRIES (5 + 2 * GUEST_MAX_CPUS)
static uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static struct tss tss[GUEST_MAX_CPUS];
static struct gate idt[256] __attribute__((aligned(16)));

static void set_gate(unsigned vector, const void* handler, unsigned dpl) {
  uint64_t a = (uint64_t)(uintptr_t)handler;
  struct gate* g = &idt[vector];
  g->offset_low = (uint16_t)a;
  g->selector = KERNEL_CS;
  g->ist = 0;
  g->type_attributes = (uint8_t)(0x8e | (dpl << 5)); /* present, 64-bit interrupt gate */
  g->offset_mid = (uint16_t)(a >> 16);
  g->offset_high = (uint32_t)(a >> 32);
  g->reserved = 0;
}

void descriptors_build(uint32_t cpus) {
  gdt[0] = 0;
  gdt[KERNEL_CS / 8] = 0x00af9a000000ffffull;       /* 64-bit code, DPL 0 */
  gdt[KERNEL_DS / 8] = 0x00cf92000000ffffull;       /* data, DPL 0 */
  gdt[USER_DS / 8] = 0x00cff2000000ffffull;         /* data, DPL 3 */
  gdt[USER_CS / 8] = 0x00affa000000ffffull;         /* 64-bit code, DPL 3 */
  for (uint32_t cpu = 0; cpu < cpus; ++cpu) {
    struct tss* t = &tss[cpu];
    t->rsp[0] = (uint64_t)(uintptr_t)(kernel_stacks + ((uint64_t)(cpu + 1) << KERNEL_STACK_SHIFT));
    t->io_bitmap_offset = (uint16_t)__builtin_offsetof(struct tss, io_bitmap);
    for (unsigned i = 0; i <= IO_BITMAP_BYTES; ++i) t->io_bitmap[i] = 0xff; /* (about 160 emulated stores) */
    for (unsigned r = 0; r < sizeof open_ports / sizeof open_ports[0]; ++r)
      for (unsigned p = open_ports[r].first; p < open_ports[r].first + open_ports[r].count; ++p)
        t->io_bitmap[p / 8] &= (uint8_t)~(1u << (p % 8));
    uint64_t base = (uint64_t)(uintptr_t)t, limit = sizeof *t - 1;
    uint64_t* d = &gdt[TSS_SELECTOR(cpu) / 8];
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) /* present, available TSS */ |
           ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
    d[1] = base >> 32;
  }
  for (unsigned v = 0; v < 32; ++v) set_gate(v, exception_entries + 16 * v, 0);
  set_gate(VECTOR_IDLE, idle_entry, 3);
  for (unsigned g = 0; g < GSI_COUNT; ++g) set_gate(VECTOR_GSI_BASE + g, gsi_entries + 16 * g, 0);
  set_gate(VECTOR_TIMER, timer_entry, 0);
  set_gate(VECTOR_SPURIOUS, spurious_entry, 0);
}

void descriptors_load(uint32_t cpu) {
  struct table_pointer g = {(uint16_t)(sizeof gdt - 1), (uint64_t)(uintptr_t)gdt};
  struct table_pointer i = {(uint16_t)(sizeof idt - 1), (uint64_t)(uintptr_t)idt};
  __asm__ volatile("lgdt %0" ::"m"(g));
  /* CS (0x08) and the data selector (0x10) mean what they meant in the loader's GDT (tandem's and
   * the PVH entry's): CS is not reloaded (a far return at CPL 0 is one more emulated control
   * transfer kvm_pvm may refuse), the data segments are. */
  __asm__ volatile(
      "movl %0, %%eax\n\t"
      "movl %%eax, %%ds\n\t"
      "movl %%eax, %%es\n\t"
      "movl %%eax, %%ss\n\t"
      "movl %%eax, %%fs\n\t"
      "movl %%eax, %%gs" ::"i"(KERNEL_DS)
      : "rax", "memory");
  __asm__ volatile("ltr %w0" ::"r"((uint16_t)TSS_SELECTOR(cpu)));
  __asm__ volatile("lidt %0" ::"m"(i));
}
