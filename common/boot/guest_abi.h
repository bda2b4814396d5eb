/*
 * The contract between tandem and its test guest, in one place (plain C, included by both).
 *
 * Entry: tandem finds the guest's 64-bit entry in an ELF note named "tandem" of type
 * TANDEM_NOTE_ENTRY64 (8-byte address) and starts every vCPU there in long mode with
 *   rdi = vCPU index, rsi = guest-physical address of struct hvm_start_info (PVH), rdx = vCPU count,
 * and identity page tables that map all of memory and [0, 4 GiB) with U/S set at every level (the
 * guest runs its jobs at CPL 3 and keeps these tables: switching costs milliseconds on kvm_pvm).
 * The PVH note (name "Xen", type 18) gives the 32-bit entry that QEMU and other PVH loaders use.
 *
 * Ports:
 *   TANDEM_PORT_EXIT (0x501): a byte written here powers the VM off with that status. QEMU's
 *     isa-debug-exit device sits at the same port by default.
 *   TANDEM_PORT_IDLE (0x502): a 32-bit write of N asks the VMM to stop this vCPU for up to N
 *     microseconds or until console input arrives or a device uses a buffer. A guest that polls
 *     instead of taking interrupts (the test guest with irq=0) uses it instead of spinning; on a
 *     VMM without it the write is ignored and the guest spins.
 */
#ifndef TANDEM_GUEST_ABI_H
#define TANDEM_GUEST_ABI_H

#define TANDEM_NOTE_ENTRY64 1
#define TANDEM_PORT_EXIT 0x501
#define TANDEM_PORT_IDLE 0x502

#define PVH_NOTE_PHYS32_ENTRY 18
#define PVH_START_MAGIC 0x336ec578u
#define PVH_MEMMAP_TYPE_RAM 1

#endif
