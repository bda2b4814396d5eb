/* The loader's identity map, which the guest keeps. */
#ifndef TANDEM_GUEST_PAGING_H
#define TANDEM_GUEST_PAGING_H

/* 1 when the page tables in CR3 are open to user mode (U/S set at every level on the walk to
 * address 0, where the guest lives). tandem's tables are (guest_abi.h) and so are the PVH entry's
 * (arch/entry.S); the guest keeps them, since switching tables costs some 11 ms on kvm_pvm. */
int paging_open_to_user(void);

#endif
