#include "net/net.h"

#include "arch/cpu.h"
#include "drivers/virtio.h"
#include "drivers/vmm.h"
#include "kernel/clock.h"
#include "kernel/idle.h"

enum { RX = 0, TX = 1, HDR = 12, FRAME_MAX = 1514, F_MAC = 5 };
enum { ETH_ARP = 0x0806, ETH_IP = 0x0800, IP_ICMP = 1, IP_UDP = 17 };

uint8_t net_mac[6];
static struct virtio_dev dev;
static uint32_t my_ip;
static uint16_t my_port;
static udp_handler on_udp;
static uint8_t rx_buffers[VQ_SIZE][HDR + FRAME_MAX + 2] __attribute__((aligned(16)));
/* Transmit: TX_SLOTS buffers; a frame is handed to the device and not waited for (its buffer comes
 * back on a later send). Waiting for each frame spun at native speed on a core the host's io
 * thread may need to move it: replies then came up to a scheduler slice late. */
#define TX_SLOTS 64
static uint8_t tx_buffers[TX_SLOTS][HDR + FRAME_MAX] __attribute__((aligned(16)));
static uint8_t tx_free[TX_SLOTS]; /* 1: the device has given it back (or never had it) */
static uint8_t* tx_buffer;        /* the frame being built: a free slot's buffer */
static unsigned tx_slot;

static uint16_t be16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t* p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t* p, uint32_t v) { p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v; }
static void copy(uint8_t* d, const uint8_t* s, uint32_t n) { while (n--) *d++ = *s++; }

static uint16_t checksum(const uint8_t* p, uint32_t n) {
  uint32_t sum = 0;
  for (; n > 1; p += 2, n -= 2) sum += be16(p);
  if (n) sum += (uint32_t)p[0] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

int parse_ipv4(const char* text, uint32_t* ip, uint32_t* prefix) {
  uint32_t parts[4] = {0}, n = 0, value = 0, digits = 0;
  const char* p = text;
  for (;; ++p) {
    if (*p >= '0' && *p <= '9') {
      value = value * 10 + (uint32_t)(*p - '0');
      if (++digits > 3 || value > 255) return 0;
    } else if ((*p == '.' && n < 3) || ((*p == '/' || *p == 0) && n == 3)) {
      if (!digits) return 0;
      parts[n++] = value, value = 0, digits = 0;
      if (*p != '.') break;
    } else {
      return 0;
    }
  }
  *ip = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3];
  *prefix = 32;
  if (*p == '/') {
    uint32_t v = 0;
    for (++p; *p >= '0' && *p <= '9'; ++p) v = v * 10 + (uint32_t)(*p - '0');
    if (*p || v > 32) return 0;
    *prefix = v;
  }
  return 1;
}

int net_open(const char* cmdline, uint32_t ip, uint16_t port, udp_handler handler) {
  if (!virtio_open(&dev, cmdline, 1, 1ull << F_MAC, 2)) return 0;
  for (unsigned i = 0; i < 6; ++i) net_mac[i] = virtio_config8(&dev, i);
  my_ip = ip;
  my_port = port;
  on_udp = handler;
  for (unsigned i = 0; i < VQ_SIZE; ++i) virtio_post(&dev, RX, i, rx_buffers[i], sizeof rx_buffers[i]);
  virtio_notify(&dev, RX);
  for (unsigned i = 0; i < TX_SLOTS; ++i) tx_free[i] = 1;
  virtio_interrupts_off(&dev, TX); /* sent frames are taken back when the next is sent */
  return 1;
}

static void tx_reclaim(void) {
  unsigned slot;
  uint32_t length;
  while (virtio_poll(&dev, TX, &slot, &length))
    if (slot < TX_SLOTS) tx_free[slot] = 1;
}

/* Takes a free transmit buffer, waiting for the device to give one back if all are out. */
static void tx_acquire(void) {
  for (;;) {
    uint64_t seen = idle_wakes();
    tx_reclaim();
    for (unsigned i = 0; i < TX_SLOTS; ++i) {
      unsigned slot = (tx_slot + 1 + i) % TX_SLOTS;
      if (tx_free[slot]) {
        tx_slot = slot;
        tx_buffer = tx_buffers[slot];
        return;
      }
    }
    if (!idle_by_interrupts) {
      vmm_idle(50);
    } else if (!virtio_interrupts_on(&dev, TX)) {
      idle_until(seen, tsc_after_us(1000));
      virtio_interrupts_off(&dev, TX);
    }
  }
}

/* Sends the frame in tx_buffer (after its zeroed virtio-net header); does not wait for it. */
static void send(uint32_t length) {
  for (unsigned i = 0; i < HDR; ++i) tx_buffer[i] = 0;
  tx_free[tx_slot] = 0;
  virtio_offer(&dev, TX, tx_slot, tx_buffer, HDR + length, 0);
  virtio_notify(&dev, TX);
}

/* Starts a reply in a transmit buffer to the sender of frame: Ethernet addresses swapped. */
static uint8_t* reply_to(const uint8_t* frame, uint16_t type) {
  tx_acquire();
  uint8_t* eth = tx_buffer + HDR;
  copy(eth, frame + 6, 6);
  copy(eth + 6, net_mac, 6);
  put16(eth + 12, type);
  return eth + 14;
}

static void arp_input(const uint8_t* frame, const uint8_t* arp, uint32_t length) {
  if (length < 28 || be16(arp) != 1 || be16(arp + 2) != ETH_IP || be16(arp + 6) != 1) return;
  if (be32(arp + 24) != my_ip) return;
  uint8_t* out = reply_to(frame, ETH_ARP);
  put16(out, 1);
  put16(out + 2, ETH_IP);
  out[4] = 6, out[5] = 4;
  put16(out + 6, 2);
  copy(out + 8, net_mac, 6);
  put32(out + 14, my_ip);
  copy(out + 18, arp + 8, 10); /* their MAC and IP */
  send(14 + 28);
}

/* Fills in an IPv4 header at out for a reply to ip (the request's header). */
static void ip_reply_header(uint8_t* out, const uint8_t* ip, uint8_t protocol, uint32_t payload) {
  out[0] = 0x45, out[1] = 0;
  put16(out + 2, (uint16_t)(20 + payload));
  put16(out + 4, 0), put16(out + 6, 0x4000); /* don't fragment */
  out[8] = 64, out[9] = protocol;
  put16(out + 10, 0);
  put32(out + 12, my_ip);
  copy(out + 16, ip + 12, 4);
  put16(out + 10, checksum(out, 20));
}

static void icmp_input(const uint8_t* frame, const uint8_t* ip, const uint8_t* icmp, uint32_t length) {
  if (length < 8 || icmp[0] != 8 || length > FRAME_MAX - 34) return; /* echo request only */
  uint8_t* out = reply_to(frame, ETH_IP);
  ip_reply_header(out, ip, IP_ICMP, length);
  uint8_t* reply = out + 20;
  copy(reply, icmp, length);
  reply[0] = 0; /* echo reply */
  put16(reply + 2, 0);
  put16(reply + 2, checksum(reply, length));
  send(14 + 20 + length);
}

void udp_reply(const struct udp_request* request, const void* data, uint32_t length) {
  if (length > FRAME_MAX - 42) length = FRAME_MAX - 42;
  const uint8_t* ip = request->frame + 14;
  uint8_t* out = reply_to(request->frame, ETH_IP);
  ip_reply_header(out, ip, IP_UDP, 8 + length);
  uint8_t* udp = out + 20;
  put16(udp, my_port);
  put16(udp + 2, request->source_port);
  put16(udp + 4, (uint16_t)(8 + length));
  put16(udp + 6, 0); /* no checksum: optional in IPv4 */
  copy(udp + 8, data, length);
  send(14 + 20 + 8 + length);
}

static void ip_input(const uint8_t* frame, const uint8_t* ip, uint32_t length) {
  if (length < 20 || (ip[0] >> 4) != 4) return;
  uint32_t header = (uint32_t)(ip[0] & 0xf) * 4, total = be16(ip + 2);
  if (header < 20 || total > length || total < header || checksum(ip, header) != 0) return;
  if (be32(ip + 16) != my_ip || (be16(ip + 6) & 0x3fff)) return; /* not ours, or a fragment */
  const uint8_t* payload = ip + header;
  uint32_t payload_length = total - header;
  if (ip[9] == IP_ICMP) return icmp_input(frame, ip, payload, payload_length);
  if (ip[9] != IP_UDP || payload_length < 8) return;
  uint32_t udp_length = be16(payload + 4);
  if (be16(payload + 2) != my_port || udp_length < 8 || udp_length > payload_length) return;
  struct udp_request request = {frame, payload + 8, udp_length - 8, be32(ip + 12), be16(payload)};
  on_udp(&request);
}

static unsigned net_drain(void) {
  unsigned handled = 0, slot;
  uint32_t length;
  while (virtio_poll(&dev, RX, &slot, &length)) {
    if (slot < VQ_SIZE && length > HDR + 14) {
      const uint8_t* frame = rx_buffers[slot] + HDR;
      uint32_t frame_length = length - HDR;
      uint16_t type = be16(frame + 12);
      if (type == ETH_ARP) arp_input(frame, frame + 14, frame_length - 14);
      if (type == ETH_IP) ip_input(frame, frame + 14, frame_length - 14);
    }
    if (slot < VQ_SIZE) virtio_post(&dev, RX, slot, rx_buffers[slot], sizeof rx_buffers[slot]);
    ++handled;
  }
  if (handled) virtio_notify(&dev, RX);
  return handled;
}

/* NAPI: while frames keep coming the device is asked for no interrupts and the job polls; the
 * first poll that finds none asks for them again before the job idles. */
static int polling;

unsigned net_poll(void) {
  unsigned handled = net_drain();
  if (!idle_by_interrupts) return handled;
  if (handled && !polling) {
    virtio_interrupts_off(&dev, RX);
    polling = 1;
  } else if (!handled && polling) {
    polling = virtio_interrupts_on(&dev, RX);
    if (polling) handled = net_drain();
  }
  return handled;
}
