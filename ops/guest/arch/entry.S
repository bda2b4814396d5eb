/*
 * Entry points of the tandem test guest.
 *
 * Two ways in, one way on:
 *   - pvh_entry32: the PVH boot protocol (QEMU -M microvm -kernel, any PVH loader). 32-bit
 *     protected mode, paging off, %ebx = physical address of struct hvm_start_info. Builds an
 *     identity map open to user mode (64 GiB in 1 GiB pages, or 4 GiB in 2 MiB pages), enters
 *     long mode and continues at entry64 as vCPU 0 of 1.
 *   - entry64: tandem's direct entry, announced by the "tandem" ELF note. Long mode with the VMM's
 *     identity page tables (open to user mode, guest_abi.h) and GDT; %rdi = vCPU index,
 *     %rsi = hvm_start_info, %rdx = vCPU count. tandem starts every vCPU here itself (no INIT/SIPI).
 *
 * Both run at CPL 0 on the vCPU's kernel stack and call kernel_start (kernel/kernel.c), which sets
 * the vCPU up and drops to CPL 3 for good. Forbidden at CPL 0 (they end the VM on kvm_pvm): int n,
 * int3, iretq to CPL 0, cmpxchg16b, xrstor.
 */
#include "layout.h"

        .section .note.Xen, "a", @note
        .balign 4
        .long 4                         /* namesz: "Xen\0" */
        .long 8                         /* descsz: 64-bit address, readable as 32 bits too */
        .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .balign 4
        .quad pvh_entry32

        .section .note.tandem, "a", @note
        .balign 4
        .long 7                         /* namesz: "tandem\0" */
        .long 8                         /* descsz */
        .long TANDEM_NOTE_ENTRY64
        .asciz "tandem"
        .balign 4
        .quad entry64

/* count identity entries of (1 << shift)-byte pages, present | writable | user | large, at table. */
.macro LARGE_PAGES table, shift, count
        mov     $\table, %edi
        xor     %ecx, %ecx
1:      mov     %ecx, %eax
        shl     $\shift, %eax
        or      $0x87, %eax
        mov     %eax, (%edi,%ecx,8)
        mov     %ecx, %eax
        shr     $(32 - \shift), %eax      /* bits 32..: (i << shift) >> 32 */
        mov     %eax, 4(%edi,%ecx,8)
        inc     %ecx
        cmp     $\count, %ecx
        jne     1b
.endm

        .section .text.boot, "ax"
        .code32
        .globl pvh_entry32
pvh_entry32:
        cli
        mov     %ebx, %esi              /* keep start_info across the switch */

        /* Identity map, user-accessible (the jobs run at CPL 3; kernel/kernel.c keeps these tables:
         * on kvm_pvm a switch to new tables costs some 11 ms). Every instruction here is emulated,
         * so 1 GiB pages where the CPU has them: 64 entries map [0, 64 GiB). */
        mov     $0x80000000, %eax
        cpuid
        cmp     $0x80000001, %eax
        jb      2f
        mov     $0x80000001, %eax
        cpuid
        bt      $26, %edx               /* Page1GB */
        jnc     2f
        LARGE_PAGES boot_pdpt, 30, 64
        jmp     4f

        /* Without them, 4 page directories of 2 MiB pages: [0, 4 GiB). */
2:      LARGE_PAGES boot_pd, 21, 2048
        mov     $boot_pdpt, %edi
        mov     $boot_pd + 7, %eax      /* present | writable | user */
        mov     %eax, 0(%edi)
        add     $4096, %eax
        mov     %eax, 8(%edi)
        add     $4096, %eax
        mov     %eax, 16(%edi)
        add     $4096, %eax
        mov     %eax, 24(%edi)

4:      mov     $boot_pml4, %edi
        movl    $boot_pdpt + 7, (%edi)

        mov     $boot_pml4, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $0x20, %eax             /* PAE */
        mov     %eax, %cr4
        mov     $0xc0000080, %ecx       /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80010001, %eax       /* PG | WP | PE */
        mov     %eax, %cr0
        lgdt    boot_gdt_desc
        ljmp    $0x08, $from32

        .code64
from32:
        mov     $0x10, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %eax, %fs
        mov     %eax, %gs
        mov     %esi, %esi              /* zero-extend start_info */
        xor     %edi, %edi              /* vCPU 0 ... */
        mov     $1, %edx                /* ... of 1 */

        .globl entry64
entry64:
        cld
        cmp     $GUEST_MAX_CPUS, %rdi
        jae     park
        lea     1(%rdi), %rax
        shl     $KERNEL_STACK_SHIFT, %rax
        lea     kernel_stacks(%rip), %rsp
        add     %rax, %rsp
        call    kernel_start            /* does not return */
park:
        hlt
        jmp     park

        .section .rodata
        .balign 8
boot_gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_desc:
        .word boot_gdt_desc - boot_gdt - 1
        .long boot_gdt

        .section .bss
        .balign 4096
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
        .balign 1 << KERNEL_STACK_SHIFT
        .globl kernel_stacks
kernel_stacks:
        .skip GUEST_MAX_CPUS << KERNEL_STACK_SHIFT
        .balign 1 << GUEST_STACK_SHIFT
        .globl guest_stacks
guest_stacks:
        .skip GUEST_MAX_CPUS << GUEST_STACK_SHIFT
