/*
 * netutil: argument parsing, socket setup and signal plumbing shared by the
 * chat programs.
 */
#ifndef CHATGRADE_NETUTIL_H
#define CHATGRADE_NETUTIL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

/* Prints "usage: <usage>" to stderr and exits with status 2. */
void usage_exit(const char *usage) __attribute__((noreturn));

/*
 * Parses a strict unsigned decimal (digits only: no sign, no blanks, no
 * trailing text) no larger than max.  Returns 0, or -1 on bad input.
 */
int parse_decimal(const char *s, unsigned long max, unsigned long *out);

/* Parses a PORT argument (0..65535); returns 0, or -1 on bad input. */
int parse_port(const char *s, uint16_t *port);

/*
 * Process setup every program does first: stdout line-buffered, SIGPIPE
 * ignored (a write to a vanished peer then fails with EPIPE instead of
 * killing us).  Returns 0, or -1 with errno set.
 */
int net_init_process(void);

/*
 * Resolves HOST (IPv4 dotted quad or "localhost") and port into *addr.
 * Returns 0, or -1 if HOST is neither.
 */
int net_resolve(const char *host, uint16_t port, struct sockaddr_in *addr);

/*
 * Creates a socket of type (SOCK_STREAM or SOCK_DGRAM) bound to port on all
 * IPv4 addresses (port 0: the kernel picks one), listening if it is TCP,
 * then prints "listening on port N" with the bound port to stdout.
 * Returns the socket, or -1 with errno set.
 */
int net_listen(int type, uint16_t port);

/*
 * Creates a socket of type and connects it to *addr (for UDP this fixes the
 * peer, so recv() hears only the server).  Returns the socket or -1 with
 * errno set.
 */
int net_connect(int type, const struct sockaddr_in *addr);

/* Makes fd non-blocking; returns 0 or -1 with errno set. */
int net_set_nonblocking(int fd);

/*
 * Turns Nagle's algorithm off on a TCP socket (TCP_NODELAY), so a short
 * relayed line leaves at once instead of waiting for the ACK of the
 * previous one (which a receiver may delay by up to 40 ms).  Returns 0 or
 * -1 with errno set.
 */
int net_set_nodelay(int fd);

/* Formats addr as "a.b.c.d:port" into buf (at least NET_ADDRSTRLEN bytes). */
#define NET_ADDRSTRLEN (INET_ADDRSTRLEN + 6)
void net_addr_str(const struct sockaddr_in *addr, char *buf);

/*
 * A wakeup: a pipe whose read end becomes readable once wakeup_signal() ran,
 * so a thread blocked in poll()/select() can be told to stop.
 */
struct wakeup {
	int rd;
	int wr;
};

/* Opens a wakeup; returns 0 or -1 with errno set. */
int wakeup_open(struct wakeup *w);
/* Makes w->rd readable; async-signal-safe; returns 0 or -1. */
int wakeup_signal(struct wakeup *w);
/* Closes both ends. */
void wakeup_close(struct wakeup *w);

/*
 * Routes SIGINT and SIGTERM to a self-pipe and returns its read end, which
 * becomes readable when either signal arrives; -1 with errno set on error.
 * Call once, before starting threads.
 */
int sig_pipe_open(void);
/* Restores the default handlers and closes the self-pipe. */
void sig_pipe_close(void);

/*
 * pthread_create() with SIGINT and SIGTERM blocked in the new thread, so
 * only the main thread is interrupted by them.  Returns 0 or an error
 * number (as pthread_create does).
 */
int thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);

#endif
