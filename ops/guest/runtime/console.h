/* The 16550 UART at 0x3f8, polled: no interrupts. */
#ifndef TANDEM_GUEST_CONSOLE_H
#define TANDEM_GUEST_CONSOLE_H

#include <stdint.h>

#define CONSOLE_LINE_MAX 128

void console_init(void);
void console_putc(char c);
void console_puts(const char* s);
void console_put_u64(uint64_t v);
/* Reads what the UART has without waiting; returns 1 when a whole line is in line (NUL-ended). */
int console_poll_line(char line[CONSOLE_LINE_MAX]);

#endif
