/*
 * virtio-mmio (version 2): finds devices on the command line (virtio_mmio.device=SIZE@ADDR:IRQ, as
 * tandem and QEMU's microvm write it) and brings one up with its split virtqueues. Used buffers
 * interrupt (kernel/kernel.c routes each device's pin); a driver that waits for one request sleeps
 * until the interrupt, or in the VMM's idle port when the guest polls (irq=0).
 */
#ifndef TANDEM_GUEST_VIRTIO_H
#define TANDEM_GUEST_VIRTIO_H

#include <stdint.h>

#define VQ_SIZE 256 /* as QEMU's and Linux's: a burst of requests (replies held for an epoch) fits */
#define VQ_MAX_QUEUES 2

struct vq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

struct virtq {
  struct vq_desc* desc;
  volatile uint16_t* avail; /* flags, idx, ring[VQ_SIZE] */
  volatile uint16_t* used;  /* flags, idx, then ring[VQ_SIZE] of {u32 id, u32 len} */
  uint16_t avail_idx;
  uint16_t used_seen;
};

struct virtio_dev {
  volatile uint32_t* regs;
  uint64_t features; /* what the driver accepted */
  struct virtq q[VQ_MAX_QUEUES];
  uint32_t gsi;      /* its interrupt pin, from the command line */
  const char* name;
  uint64_t completions; /* used buffers taken */
  uint64_t stalls;      /* waits that found the buffer used but no interrupt came: a lost one */
};

/* Finds the first device of type device_id on the command line and initializes it with nqueues
 * queues, accepting the features in wanted (VERSION_1 is always asked for). Returns 1 on success. */
int virtio_open(struct virtio_dev* dev, const char* cmdline, uint32_t device_id, uint64_t wanted, unsigned nqueues);
/* The interrupt pin of the n-th virtio_mmio.device= word; 0 when there are fewer. */
int virtio_device_gsi(const char* cmdline, unsigned n, uint32_t* gsi);
/* One "stats virtio ..." line per device opened: interrupts taken, completions, stalls. */
void virtio_stats(void);
/* Device-specific configuration space, one byte at offset. */
uint8_t virtio_config8(struct virtio_dev* dev, uint32_t offset);
uint32_t virtio_config32(struct virtio_dev* dev, uint32_t offset);

struct vq_buf {
  const void* addr;
  uint32_t len;
  int device_writes; /* 1: the device writes this buffer */
};
/* Puts a chain of n buffers on queue q, notifies, and waits until the device returns it (one
 * request in flight). A wait by interrupt that ends by its one-second deadline with the buffer
 * used counts a stall (an interrupt the guest never saw). Returns the length the device reports having written. */
uint32_t virtio_transact(struct virtio_dev* dev, unsigned q, const struct vq_buf* bufs, unsigned n);

/* Receive-style queues: descriptor slot (0..VQ_SIZE-1) permanently describes one device-writable
 * buffer; post() offers it, poll() returns 1 with the slot and length of the next filled one. */
void virtio_post(struct virtio_dev* dev, unsigned q, unsigned slot, void* buf, uint32_t len);
/* The same for either direction: device_writes 0 for a buffer the device reads (a frame to send). */
void virtio_offer(struct virtio_dev* dev, unsigned q, unsigned slot, const void* buf, uint32_t len, int device_writes);
int virtio_poll(struct virtio_dev* dev, unsigned q, unsigned* slot, uint32_t* len);
void virtio_notify(struct virtio_dev* dev, unsigned q);
/* NAPI: a driver that keeps finding work asks the device for no interrupts on queue q and polls;
 * when it finds none it asks for them again and must look once more (returns 1 if work came
 * meanwhile, with interrupts off again). Only with interrupts on (idle_by_interrupts). */
void virtio_interrupts_off(struct virtio_dev* dev, unsigned q);
int virtio_interrupts_on(struct virtio_dev* dev, unsigned q);

#endif
