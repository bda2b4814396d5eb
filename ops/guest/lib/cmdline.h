/* key=value words of the kernel command line. */
#ifndef TANDEM_GUEST_CMDLINE_H
#define TANDEM_GUEST_CMDLINE_H

#include <stdint.h>

/* Copies the value of key into out (NUL-ended, at most cap-1 chars); returns 1 if key was present. */
int cmdline_get(const char* cmdline, const char* key, char* out, unsigned cap);
/* The value of key as an unsigned decimal, or fallback when absent; *ok = 0 when present but not a number. */
uint64_t cmdline_u64(const char* cmdline, const char* key, uint64_t fallback, int* ok);
int str_eq(const char* a, const char* b);
int str_starts(const char* s, const char* prefix);

#endif
