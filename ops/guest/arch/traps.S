/*
 * The ways into CPL 0 once the guest runs at CPL 3, and the way out.
 *
 * Every gate is an interrupt gate (IF cleared on entry), so CPL 0 code never nests except in the
 * idle path, which waits with `sti; hlt`. On kvm_pvm an iretq from CPL 0 to CPL 0 can end the VM,
 * so no handler ever returns to CPL 0: an interrupt that ends the idle path's hlt returns straight
 * to the user-mode frame that entered it (at the top of the kernel stack).
 *
 * The vCPU's struct percpu sits at the bottom of its aligned kernel stack: rsp rounded down finds it.
 */
#include "layout.h"

#define KSTACK_SIZE (1 << KERNEL_STACK_SHIFT)
#define FRAME_BYTES 40          /* rip, cs, rflags, rsp, ss */

        .text

/* enter_user(fn, stack_top, a0, a1, a2): continues at fn(a0, a1, a2) at CPL 3 with interrupts on. */
        .globl enter_user
enter_user:
        mov     $USER_DS, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %fs
        mov     %eax, %gs
        sub     $8, %rsi                /* as if called: rsp + 8 is 16-byte aligned at entry */
        push    $USER_DS
        push    %rsi
        push    $0x202                  /* IF */
        push    $USER_CS
        push    %rdi
        mov     %rdx, %rdi
        mov     %rcx, %rsi
        mov     %r8, %rdx
        iretq

/*
 * The idle path: `int3` from CPL 3 with rdi = the percpu wake count the caller saw before it looked
 * for work, rsi = TSC deadline (0: none). Returns at once if an interrupt came since; otherwise arms
 * the LAPIC's TSC-deadline timer and halts until an interrupt. Clobbers rax, rcx, rdx.
 */
        .globl idle_entry
idle_entry:
        mov     %rsp, %rax
        and     $~(KSTACK_SIZE - 1), %rax
        cmp     PERCPU_WAKES(%rax), %rdi
        jne     2f
        test    %rsi, %rsi
        jz      1f
        mov     $MSR_TSC_DEADLINE, %ecx
        mov     %esi, %eax
        mov     %rsi, %rdx
        shr     $32, %rdx
        wrmsr
1:      sti
        hlt
2:      iretq

/* Device and timer interrupts: count, EOI, back to user mode. The stub pushes the offset of the
 * counter in struct percpu. */
irq_common:
        push    %rax
        push    %rdx
        mov     %rsp, %rax
        and     $~(KSTACK_SIZE - 1), %rax
        mov     16(%rsp), %rdx
        incq    (%rax,%rdx)
        incq    PERCPU_WAKES(%rax)
        mov     $LAPIC_EOI, %edx
        movl    $0, (%rdx)
        testb   $3, 32(%rsp)            /* the interrupted CS: rdx, rax, counter, rip, cs */
        jz      woke_idle
        pop     %rdx
        pop     %rax
        add     $8, %rsp
        iretq
woke_idle:                              /* the idle path's hlt: return for it (rax, rdx are its clobbers) */
        lea     (KSTACK_SIZE - FRAME_BYTES)(%rax), %rsp
        iretq

        .globl spurious_entry
spurious_entry:                         /* no EOI for the spurious vector */
        testb   $3, 8(%rsp)
        jz      1f
        iretq
1:      mov     %rsp, %rax
        and     $~(KSTACK_SIZE - 1), %rax
        lea     (KSTACK_SIZE - FRAME_BYTES)(%rax), %rsp
        iretq

        .globl timer_entry
timer_entry:
        push    $PERCPU_TIMER
        jmp     irq_common

/* gsi_entries: GSI_COUNT stubs of 16 bytes each, in pin order. */
        .balign 16
        .globl gsi_entries
gsi_entries:
        .set pin, 0
        .rept GSI_COUNT
        .balign 16
        push    $(PERCPU_GSI + 8 * pin)
        jmp     irq_common
        .set pin, pin + 1
        .endr

/* Exceptions: a frame of vector, error code (0 where the CPU pushes none), then the CPU's. */
exception_common:
        mov     %rsp, %rdi
        and     $~15, %rsp
        call    fatal_exception         /* prints one line and powers off */
3:      jmp     3b

/* exception_entries: 32 stubs of 16 bytes each, in vector order (3 is the idle path's, unused). */
        .balign 16
        .globl exception_entries
exception_entries:
        .set vector, 0
        .rept 32
        .balign 16
        .if vector == 8 || vector == 10 || vector == 11 || vector == 12 || vector == 13 || vector == 14 || vector == 17 || vector == 21 || vector == 29 || vector == 30
        push    $vector
        .else
        push    $0
        push    $vector
        .endif
        jmp     exception_common
        .set vector, vector + 1
        .endr
