/*
 * job=kv ip=ADDR/PREFIX [port=P] [sync=1] [preload=N [preload_bytes=B]]: a key-value store over
 * UDP, and ping. preload=N stores keys "key0" ... "key<N-1>" before serving, each with a value of
 * B bytes (default 1000) that starts "value<i>-" and goes on in letters (not logged to the disk).
 *   request  "ID SET KEY VALUE" -> "ID OK"         (applied before the answer; with sync=1 also
 *            "ID GET KEY"       -> "ID VALUE V"      written and flushed to the virtio disk,
 *                               or "ID NOTFOUND"     which is replayed on start)
 * ID is a decimal number a client increases with each new request and repeats when it retries:
 * a SET whose ID is not above the last one applied for that client is answered OK, not applied
 * again. Keys up to 31 bytes, values up to 1 KiB.
 *
 * The store takes the guest's memory above its image: an open-addressing index (a third of it,
 * filled to at most three quarters) and an arena for the values (the rest). A guest of 512 MiB
 * holds 1.5 million keys; a value that outgrows its place moves to a new one (the old one is not
 * reused: the arena only grows).
 */
#include "drivers/blk.h"
#include "drivers/console.h"
#include "drivers/vmm.h"
#include "jobs/job.h"
#include "lib/cmdline.h"
#include "lib/string.h"
#include "net/net.h"

#define KEY_MAX 32
#define VALUE_MAX 1024
#define CLIENTS 64
#define LOG_MAGIC 0x32474f4c564b4e54ull /* "TNKVLOG2" */
#define LOG_HEADER 64                    /* magic, client, id, length, key; the value follows */

extern char guest_image_end[];

struct slot {
  char key[KEY_MAX];
  uint64_t value_at; /* offset in the arena */
  uint32_t length;
  uint32_t capacity;
};

struct client {
  uint32_t ip;
  uint16_t port;
  uint64_t last_set;
};

static struct slot* table;
static uint64_t slots, max_keys; /* slots: a power of two */
static char* arena;
static uint64_t arena_size, arena_used;
static struct client clients[CLIENTS];
static unsigned client_count;
static uint64_t stored, requests;
static int sync_to_disk;
static uint64_t served_port;
static uint64_t log_sectors, disk_capacity;
static uint64_t log_buffer[(LOG_HEADER + VALUE_MAX + 511) / 512 * 64] __attribute__((aligned(512)));

static uint64_t hash(const char* s) {
  uint64_t h = 14695981039346656037ull;
  while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
  return h;
}

static unsigned length_of(const char* s, unsigned cap) {
  unsigned n = 0;
  while (n < cap && s[n]) ++n;
  return n;
}

/* The slot of key, or the empty slot where it would go (create), or 0. */
static struct slot* find(const char* key, int create) {
  for (uint64_t i = hash(key) & (slots - 1), n = 0; n < slots; i = (i + 1) & (slots - 1), ++n) {
    if (!table[i].key[0]) {
      if (!create || stored >= max_keys) return 0;
      unsigned k = length_of(key, KEY_MAX - 1);
      memcpy(table[i].key, key, k);
      table[i].key[k] = 0;
      ++stored;
      return &table[i];
    }
    if (str_eq(table[i].key, key)) return &table[i];
  }
  return 0;
}

/* Stores value (length bytes) in e; 0 when the arena is full. */
static int put_value(struct slot* e, const char* value, uint32_t length) {
  if (length > e->capacity) {
    uint32_t capacity = (length + 15) & ~15u;
    if (arena_used + capacity > arena_size) return 0;
    e->value_at = arena_used;
    e->capacity = capacity;
    arena_used += capacity;
  }
  memcpy(arena + e->value_at, value, length);
  e->length = length;
  return 1;
}

static struct client* client_of(uint32_t ip, uint16_t port) {
  for (unsigned i = 0; i < client_count; ++i)
    if (clients[i].ip == ip && clients[i].port == port) return &clients[i];
  struct client* c = &clients[client_count < CLIENTS ? client_count++ : (ip ^ port) % CLIENTS];
  c->ip = ip, c->port = port, c->last_set = 0;
  return c;
}

/* The record of one SET in the disk log: a header (magic, client, id, value length, key) and
 * the value, in as many sectors as they take. */
static int log_set(const struct client* c, uint64_t id, const char* key, const char* value, uint32_t length) {
  uint32_t sectors = (LOG_HEADER + length + 511) / 512;
  if (log_sectors + sectors > disk_capacity) return 0;
  log_buffer[0] = LOG_MAGIC;
  log_buffer[1] = (uint64_t)c->ip << 16 | c->port;
  log_buffer[2] = id;
  log_buffer[3] = length;
  char* bytes = (char*)log_buffer;
  unsigned k = length_of(key, KEY_MAX - 1);
  memcpy(bytes + 32, key, k);
  bytes[32 + k] = 0;
  memcpy(bytes + LOG_HEADER, value, length);
  for (unsigned i = LOG_HEADER + length; i < sectors * 512; ++i) bytes[i] = 0;
  if (!blk_write(log_sectors, log_buffer, sectors) || !blk_flush()) return 0;
  log_sectors += sectors;
  return 1;
}

static void replay_log(void) {
  for (log_sectors = 0; log_sectors < disk_capacity;) {
    if (!blk_read(log_sectors, log_buffer, 1) || log_buffer[0] != LOG_MAGIC || log_buffer[3] > VALUE_MAX) break;
    uint32_t length = (uint32_t)log_buffer[3];
    uint32_t sectors = (LOG_HEADER + length + 511) / 512;
    if (log_sectors + sectors > disk_capacity) break;
    if (sectors > 1 && !blk_read(log_sectors + 1, log_buffer + 64, sectors - 1)) break;
    struct client* c = client_of((uint32_t)(log_buffer[1] >> 16), (uint16_t)log_buffer[1]);
    if (log_buffer[2] > c->last_set) c->last_set = log_buffer[2];
    const char* bytes = (const char*)log_buffer;
    struct slot* e = find(bytes + 32, 1);
    if (e) put_value(e, bytes + LOG_HEADER, length);
    log_sectors += sectors;
  }
}

/* Splits line at spaces into at most max words (the last one keeps the rest of the line). */
static unsigned split(char* line, char** words, unsigned max) {
  unsigned n = 0;
  while (*line && n < max) {
    while (*line == ' ') *line++ = 0;
    if (!*line) break;
    words[n++] = line;
    if (n == max) break;
    while (*line && *line != ' ') ++line;
  }
  return n;
}

/* "ID A[ B]\n"; b is b_length bytes (not NUL-ended: a value from the arena). */
static void answer_bytes(const struct udp_request* r, const char* id, const char* a, const char* b, uint32_t b_length) {
  char out[KEY_MAX + VALUE_MAX + 128];
  unsigned n = 0;
  for (const char* s = id; *s && n < 40; ++s) out[n++] = *s;
  out[n++] = ' ';
  for (const char* s = a; *s && n < 80; ++s) out[n++] = *s;
  if (b) {
    out[n++] = ' ';
    for (uint32_t i = 0; i < b_length && i < VALUE_MAX; ++i) out[n++] = b[i];
  }
  out[n++] = '\n';
  udp_reply(r, out, n);
}

static void answer(const struct udp_request* r, const char* id, const char* a, const char* b) {
  answer_bytes(r, id, a, b, b ? length_of(b, VALUE_MAX) : 0);
}

static void serve(const struct udp_request* r) {
  char line[KEY_MAX + VALUE_MAX + 64];
  unsigned n = r->length < sizeof line - 1 ? r->length : sizeof line - 1;
  for (unsigned i = 0; i < n; ++i) line[i] = r->data[i] == '\n' ? 0 : (char)r->data[i];
  line[n] = 0;
  char* w[4];
  unsigned words = split(line, w, 4);
  ++requests;
  if (words < 3) return answer(r, words ? w[0] : "0", "ERROR", "expected: ID SET KEY VALUE or ID GET KEY");
  int ok = 1;
  uint64_t id = 0;
  for (const char* s = w[0]; *s; ++s) {
    if (*s < '0' || *s > '9') ok = 0;
    id = id * 10 + (uint64_t)(*s - '0');
  }
  if (!ok) return answer(r, "0", "ERROR", "the ID must be a number");
  if (str_eq(w[1], "GET")) {
    struct slot* e = find(w[2], 0);
    return e ? answer_bytes(r, w[0], "VALUE", arena + e->value_at, e->length) : answer(r, w[0], "NOTFOUND", 0);
  }
  if (!str_eq(w[1], "SET") || words < 4) return answer(r, w[0], "ERROR", "unknown request");
  struct client* c = client_of(r->source_ip, r->source_port);
  if (id <= c->last_set) return answer(r, w[0], "OK", 0); /* a retry of what was applied */
  uint32_t length = length_of(w[3], VALUE_MAX + 1);
  if (length > VALUE_MAX || length_of(w[2], KEY_MAX) >= KEY_MAX)
    return answer(r, w[0], "ERROR", "keys take at most 31 bytes, values 1024");
  struct slot* e = find(w[2], 1);
  if (!e) return answer(r, w[0], "ERROR", "the store is full");
  if (sync_to_disk && !log_set(c, id, w[2], w[3], length)) return answer(r, w[0], "ERROR", "the disk log failed");
  if (!put_value(e, w[3], length)) return answer(r, w[0], "ERROR", "the store is full");
  c->last_set = id;
  answer(r, w[0], "OK", 0);
}

/* The index and the arena in the memory above the guest's image. */
static int place_store(const struct boot_info* boot) {
  uint64_t base = ((uint64_t)(uintptr_t)guest_image_end + (2 << 20) - 1) & ~(uint64_t)((2 << 20) - 1);
  uint64_t room = boot->low_ram_end > base ? boot->low_ram_end - base : 0;
  for (slots = 8192; (slots * 2) * sizeof(struct slot) <= room / 3; slots *= 2) {}
  if (slots * sizeof(struct slot) + (1 << 20) > room) {
    console_puts("tandem-guest: kv needs at least 4 MiB of guest memory above its image\n");
    return 0;
  }
  max_keys = slots / 4 * 3;
  table = (struct slot*)(uintptr_t)base;
  arena = (char*)(uintptr_t)(base + slots * sizeof(struct slot));
  arena_size = room - slots * sizeof(struct slot);
  return 1;
}

static void put_u64(char* out, uint64_t v, unsigned* n) {
  char digits[20];
  unsigned d = 0;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (d) out[(*n)++] = digits[--d];
}

/* preload=N: the keys a test or a benchmark wants there without sending them one by one. */
static int preload(uint64_t keys, uint64_t bytes) {
  static char key[KEY_MAX], value[VALUE_MAX];
  for (uint64_t i = 0; i < keys; ++i) {
    unsigned k = 0;
    memcpy(key, "key", 3);
    k = 3;
    put_u64(key, i, &k);
    key[k] = 0;
    unsigned v = 0;
    memcpy(value, "value", 5);
    v = 5;
    put_u64(value, i, &v);
    value[v++] = '-';
    while (v < bytes) value[v] = (char)('a' + (v + i) % 26), ++v;
    struct slot* e = find(key, 1);
    if (!e || !put_value(e, value, (uint32_t)bytes)) {
      console_puts("tandem-guest: kv preload stopped at ");
      console_put_u64(i);
      console_puts(" keys: the store is full (give the guest more memory)\n");
      return 0;
    }
  }
  return 1;
}

static int kv_setup(const struct boot_info* boot, uint32_t cpus) {
  (void)cpus;
  char text[24];
  uint32_t ip = 0, prefix = 0;
  int ok = 1;
  if (!cmdline_get(boot->cmdline, "ip", text, sizeof text) || !parse_ipv4(text, &ip, &prefix)) {
    console_puts("tandem-guest: kv needs ip=ADDR/PREFIX, e.g. ip=10.77.0.2/16\n");
    return 0;
  }
  uint64_t port = cmdline_u64(boot->cmdline, "port", 7777, &ok);
  served_port = port;
  sync_to_disk = cmdline_u64(boot->cmdline, "sync", 0, &ok) != 0;
  uint64_t preload_keys = cmdline_u64(boot->cmdline, "preload", 0, &ok);
  uint64_t preload_bytes = cmdline_u64(boot->cmdline, "preload_bytes", 1000, &ok);
  if (!ok || port == 0 || port > 65535 || preload_bytes < 24 || preload_bytes > VALUE_MAX) {
    console_puts("tandem-guest: kv needs port=1..65535, sync=0|1, preload=N, preload_bytes=24..1024\n");
    return 0;
  }
  if (!place_store(boot)) return 0;
  if (preload_keys && !preload(preload_keys, preload_bytes)) return 0;
  if (!net_open(boot->cmdline, ip, (uint16_t)port, serve)) {
    console_puts("tandem-guest: kv needs a virtio network device (tandem run --net tap=NAME)\n");
    return 0;
  }
  if (sync_to_disk) {
    disk_capacity = blk_open(boot->cmdline);
    if (!disk_capacity) {
      console_puts("tandem-guest: kv sync=1 needs a virtio disk of its own (tandem run --disk FILE)\n");
      return 0;
    }
    replay_log();
  }
  return 1;
}

static void kv_start(void) {
  console_puts("kv: serving port ");
  console_put_u64(served_port);
  console_puts(" keys=");
  console_put_u64(stored);
  console_puts(" capacity=");
  console_put_u64(max_keys);
  console_putc('\n');
}

/* Nothing to do: idle until a frame arrives (it ends the idle at once). */
static uint32_t kv_poll(void) { return net_poll() ? 0 : 20000; }

static void kv_stats(void) {
  console_puts("stats job=kv keys=");
  console_put_u64(stored);
  console_puts(" requests=");
  console_put_u64(requests);
  console_puts(" capacity=");
  console_put_u64(max_keys);
  console_puts(" arena_used=");
  console_put_u64(arena_used);
  console_puts(" log_sectors=");
  console_put_u64(log_sectors);
  console_putc('\n');
}

const struct job kv_job = {
    .name = "kv",
    .setup = kv_setup,
    .start = kv_start,
    .poll = kv_poll,
    .other_loop = idle_forever,
    .verify = 0,
    .stats = kv_stats,
};
