/*
 * job=kv ip=ADDR/PREFIX [port=P] [sync=1]: a key-value store over UDP, and ping.
 *   request  "ID SET KEY VALUE" -> "ID OK"         (applied before the answer; with sync=1 also
 *            "ID GET KEY"       -> "ID VALUE V"      written and flushed to the virtio disk,
 *                               or "ID NOTFOUND"     which is replayed on start)
 * ID is a decimal number a client increases with each new request and repeats when it retries:
 * a SET whose ID is not above the last one applied for that client is answered OK, not applied
 * again. Keys up to 31 bytes, values up to 63.
 */
#include "drivers/blk.h"
#include "lib/cmdline.h"
#include "drivers/console.h"
#include "net/net.h"
#include "drivers/vmm.h"
#include "jobs/job.h"

#define SLOTS 8192
#define KEY_MAX 32
#define VALUE_MAX 64
#define CLIENTS 64
#define LOG_MAGIC 0x31474f4c564b4e54ull /* "TNKVLOG1" */

struct entry {
  char key[KEY_MAX];
  char value[VALUE_MAX];
};

struct client {
  uint32_t ip;
  uint16_t port;
  uint64_t last_set;
};

static struct entry table[SLOTS];
static struct client clients[CLIENTS];
static unsigned client_count;
static uint64_t stored, requests;
static int sync_to_disk;
static uint64_t served_port;
static uint64_t log_records, disk_capacity;
static uint64_t log_sector[64] __attribute__((aligned(512)));

static unsigned hash(const char* s) {
  unsigned h = 2166136261u;
  while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

static void copy_str(char* d, const char* s, unsigned cap) {
  unsigned i = 0;
  for (; s[i] && i + 1 < cap; ++i) d[i] = s[i];
  d[i] = 0;
}

static struct entry* find(const char* key, int create) {
  for (unsigned i = hash(key) % SLOTS, n = 0; n < SLOTS; i = (i + 1) % SLOTS, ++n) {
    if (!table[i].key[0]) {
      if (!create) return 0;
      copy_str(table[i].key, key, KEY_MAX);
      ++stored;
      return &table[i];
    }
    if (str_eq(table[i].key, key)) return &table[i];
  }
  return 0;
}

static struct client* client_of(uint32_t ip, uint16_t port) {
  for (unsigned i = 0; i < client_count; ++i)
    if (clients[i].ip == ip && clients[i].port == port) return &clients[i];
  struct client* c = &clients[client_count < CLIENTS ? client_count++ : (ip ^ port) % CLIENTS];
  c->ip = ip, c->port = port, c->last_set = 0;
  return c;
}

/* The record of one SET in the disk log: magic, client, id, key, value. */
static int log_set(const struct client* c, uint64_t id, const char* key, const char* value) {
  if (log_records >= disk_capacity) return 0;
  for (unsigned i = 0; i < 64; ++i) log_sector[i] = 0;
  log_sector[0] = LOG_MAGIC;
  log_sector[1] = (uint64_t)c->ip << 16 | c->port;
  log_sector[2] = id;
  copy_str((char*)&log_sector[4], key, KEY_MAX);
  copy_str((char*)&log_sector[8], value, VALUE_MAX);
  if (!blk_write(log_records, log_sector, 1) || !blk_flush()) return 0;
  ++log_records;
  return 1;
}

static void replay_log(void) {
  for (log_records = 0; log_records < disk_capacity; ++log_records) {
    if (!blk_read(log_records, log_sector, 1) || log_sector[0] != LOG_MAGIC) break;
    struct client* c = client_of((uint32_t)(log_sector[1] >> 16), (uint16_t)log_sector[1]);
    if (log_sector[2] > c->last_set) c->last_set = log_sector[2];
    struct entry* e = find((const char*)&log_sector[4], 1);
    if (e) copy_str(e->value, (const char*)&log_sector[8], VALUE_MAX);
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

static void answer(const struct udp_request* r, const char* id, const char* a, const char* b) {
  char out[160];
  unsigned n = 0;
  for (const char* s = id; *s && n < 40; ++s) out[n++] = *s;
  out[n++] = ' ';
  for (const char* s = a; *s && n < 80; ++s) out[n++] = *s;
  if (b) {
    out[n++] = ' ';
    for (const char* s = b; *s && n < 150; ++s) out[n++] = *s;
  }
  out[n++] = '\n';
  udp_reply(r, out, n);
}

static void serve(const struct udp_request* r) {
  char line[256];
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
    struct entry* e = find(w[2], 0);
    return e ? answer(r, w[0], "VALUE", e->value) : answer(r, w[0], "NOTFOUND", 0);
  }
  if (!str_eq(w[1], "SET") || words < 4) return answer(r, w[0], "ERROR", "unknown request");
  struct client* c = client_of(r->source_ip, r->source_port);
  if (id <= c->last_set) return answer(r, w[0], "OK", 0); /* a retry of what was applied */
  struct entry* e = find(w[2], 1);
  if (!e) return answer(r, w[0], "ERROR", "the store is full");
  if (sync_to_disk && !log_set(c, id, w[2], w[3])) return answer(r, w[0], "ERROR", "the disk log failed");
  copy_str(e->value, w[3], VALUE_MAX);
  c->last_set = id;
  answer(r, w[0], "OK", 0);
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
  if (!ok || port == 0 || port > 65535) {
    console_puts("tandem-guest: kv needs port=1..65535 and sync=0|1\n");
    return 0;
  }
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
  console_putc('\n');
}

/* Nothing to do: idle until a frame arrives (it ends the idle at once). */
static uint32_t kv_poll(void) { return net_poll() ? 0 : 20000; }

static void kv_stats(void) {
  console_puts("stats job=kv keys=");
  console_put_u64(stored);
  console_puts(" requests=");
  console_put_u64(requests);
  console_puts(" log=");
  console_put_u64(log_records);
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
