/* The 16550 UART at 0x3f8: output polled, input polled or announced by its interrupt (IRQ 4). */
#ifndef TANDEM_GUEST_CONSOLE_H
#define TANDEM_GUEST_CONSOLE_H

#include <stdint.h>

#define CONSOLE_LINE_MAX 128

void console_init(void);
/* Received bytes raise IRQ 4 (the guest then takes interrupts to wake from idle). */
void console_enable_rx_interrupt(void);
void console_putc(char c);
void console_puts(const char* s);
void console_put_u64(uint64_t v);
void console_put_hex(uint64_t v); /* 0x... */
/* Reads what the UART has without waiting; returns 1 when a whole line is in line (NUL-ended). */
int console_poll_line(char line[CONSOLE_LINE_MAX]);

#endif
