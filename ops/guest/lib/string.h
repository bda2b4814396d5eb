/* The guest's memset, memcpy and memmove (lib/string.c). */
#ifndef TANDEM_GUEST_STRING_H
#define TANDEM_GUEST_STRING_H

#include <stddef.h>

void* memset(void* d, int c, size_t n);
void* memcpy(void* d, const void* s, size_t n);
void* memmove(void* d, const void* s, size_t n);

#endif
