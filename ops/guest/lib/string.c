/* memset, memcpy and memmove: the compiler may call them for struct copies. One instruction each. */
#include <stddef.h>

void* memset(void* d, int c, size_t n) {
  void* r = d;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return r;
}

void* memcpy(void* d, const void* s, size_t n) {
  void* r = d;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
  return r;
}

void* memmove(void* d, const void* s, size_t n) {
  unsigned char* dd = d;
  const unsigned char* ss = s;
  if (dd <= ss || dd >= ss + n) return memcpy(d, s, n);
  while (n--) dd[n] = ss[n];
  return d;
}
