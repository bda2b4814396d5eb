/* Constants shared by the guest's assembly and C code. */
#ifndef TANDEM_GUEST_LAYOUT_H
#define TANDEM_GUEST_LAYOUT_H

#include "guest_abi.h"
#define GUEST_MAX_CPUS 256
#define GUEST_STACK_SHIFT 13    /* 8 KiB of stack per vCPU */

#endif
