#include "lib/cmdline.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

int str_eq(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

int str_starts(const char* s, const char* prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

int cmdline_get(const char* cmdline, const char* key, char* out, unsigned cap) {
  const char* p = cmdline;
  while (*p) {
    while (is_space(*p)) ++p;
    const char* word = p;
    while (*p && !is_space(*p)) ++p;
    const char* k = key;
    const char* w = word;
    while (*k && w < p && *w == *k) ++w, ++k;
    if (*k == 0 && w < p && *w == '=') {
      ++w;
      unsigned n = 0;
      while (w < p && n + 1 < cap) out[n++] = *w++;
      out[n] = 0;
      return 1;
    }
  }
  return 0;
}

uint64_t cmdline_u64(const char* cmdline, const char* key, uint64_t fallback, int* ok) {
  char buf[24];
  if (!cmdline_get(cmdline, key, buf, sizeof buf)) return fallback;
  uint64_t v = 0;
  if (buf[0] == 0) *ok = 0;
  for (const char* c = buf; *c; ++c) {
    if (*c < '0' || *c > '9') {
      *ok = 0;
      return fallback;
    }
    v = v * 10 + (uint64_t)(*c - '0');
  }
  return v;
}
