/* The loader's identity map, opened to user mode. */
#ifndef TANDEM_GUEST_PAGING_H
#define TANDEM_GUEST_PAGING_H

/* vCPU 0 at CPL 0: sets U/S on every present entry of the page tables in CR3 (lower half), at
 * every level, so that CPL 3 reaches all of guest memory and the devices, then flushes the TLB.
 * One address space for the guest's kernel and its jobs: this guest protects nothing from itself. */
void paging_open_to_user(void);

#endif
