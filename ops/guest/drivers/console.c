#include "drivers/console.h"

#include "arch/cpu.h"

enum {
  kCom1 = 0x3f8,
  kRegData = 0,
  kRegIer = 1,
  kRegFcr = 2,
  kRegLcr = 3,
  kRegMcr = 4,
  kRegLsr = 5,
  kLsrDataReady = 0x01,
  kLsrThrEmpty = 0x20,
  kFifoDepth = 16,
};

/* Bytes written since the transmitter last reported empty; we check LSR once per FIFO load,
 * not once per byte, because every port access is a VM exit. */
static unsigned tx_since_empty = kFifoDepth;
static char pending[CONSOLE_LINE_MAX];
static unsigned pending_len;

void console_init(void) {
  outb(kCom1 + kRegIer, 0x00);  /* no interrupts until asked for */
  outb(kCom1 + kRegLcr, 0x80);  /* divisor latch */
  outb(kCom1 + kRegData, 0x01); /* 115200 baud */
  outb(kCom1 + kRegIer, 0x00);
  outb(kCom1 + kRegLcr, 0x03);  /* 8N1 */
  outb(kCom1 + kRegFcr, 0x01);  /* enable FIFOs; not cleared: input typed before boot is kept */
  outb(kCom1 + kRegMcr, 0x03);  /* DTR | RTS */
}

void console_enable_rx_interrupt(void) {
  outb(kCom1 + kRegMcr, 0x0b); /* DTR | RTS | OUT2: OUT2 lets the UART's interrupt out */
  outb(kCom1 + kRegIer, 0x01); /* received data available */
}

void console_putc(char c) {
  if (c == '\n') console_putc('\r');
  if (tx_since_empty >= kFifoDepth) {
    while (!(inb(kCom1 + kRegLsr) & kLsrThrEmpty)) cpu_relax();
    tx_since_empty = 0;
  }
  outb(kCom1 + kRegData, (uint8_t)c);
  ++tx_since_empty;
}

void console_puts(const char* s) {
  while (*s) console_putc(*s++);
}

void console_put_u64(uint64_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  console_puts(buf + i);
}

void console_put_hex(uint64_t v) {
  char buf[19];
  int i = 18;
  buf[i] = 0;
  do {
    buf[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  buf[--i] = 'x';
  buf[--i] = '0';
  console_puts(buf + i);
}

int console_poll_line(char line[CONSOLE_LINE_MAX]) {
  while (inb(kCom1 + kRegLsr) & kLsrDataReady) {
    char c = (char)inb(kCom1 + kRegData);
    if (c == '\r' || c == '\n') {
      if (pending_len == 0) continue;
      for (unsigned i = 0; i < pending_len; ++i) line[i] = pending[i];
      line[pending_len] = 0;
      pending_len = 0;
      return 1;
    }
    if (pending_len < CONSOLE_LINE_MAX - 1) pending[pending_len++] = c;
  }
  return 0;
}
