/* The virtio network device (receive by interrupt and NAPI polling, transmit without waiting) and a
 * minimal stack: ARP, IPv4, ICMP echo, UDP. */
#ifndef TANDEM_GUEST_NET_H
#define TANDEM_GUEST_NET_H

#include <stdint.h>

struct udp_request {
  const uint8_t* frame;   /* the whole received frame, for addressing the reply */
  const uint8_t* data;
  uint32_t length;
  uint32_t source_ip;     /* host byte order */
  uint16_t source_port;
};

typedef void (*udp_handler)(const struct udp_request* request);

/* Finds the first virtio-net device, takes address ip/prefix (host byte order) and the UDP port
 * to serve with handler. Returns 1 when a NIC is there. */
int net_open(const char* cmdline, uint32_t ip, uint16_t port, udp_handler handler);
/* Handles every frame that has arrived (ARP and ping answered here, UDP to the handler). Returns
 * how many frames it handled. */
unsigned net_poll(void);
/* Answers request with data, from the port it was sent to. */
void udp_reply(const struct udp_request* request, const void* data, uint32_t length);
/* "10.77.0.2/16" -> ip and prefix; returns 0 if malformed. */
int parse_ipv4(const char* text, uint32_t* ip, uint32_t* prefix);

extern uint8_t net_mac[6];

#endif
