/*
 * lineio: the one module for line framing and full writes.
 *
 * Every program frames its TCP and stdin input with a struct linebuf and
 * writes with write_full(), so EINTR is retried here and nowhere else.
 */
#ifndef CHATGRADE_LINEIO_H
#define CHATGRADE_LINEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Longest line kept, in bytes (without the '\n').  The contract wants 1000
 * bytes relayed intact; longer lines are truncated to this length so a
 * client can never make us buffer without bound.
 */
#define LINEIO_MAX 4096

/* The whole-message word that makes a member leave. */
#define LINEIO_QUIT "quit"

/* Per-connection input state: the bytes of the line not yet terminated. */
struct linebuf {
	char   line[LINEIO_MAX];
	size_t len;        /* bytes of the pending line kept in line[] */
	bool   truncated;  /* the pending line was longer than LINEIO_MAX */
};

/*
 * Called once per complete line, with the '\n' and a trailing '\r' removed.
 * The bytes are valid only during the call and may contain NULs.  Return 0
 * to go on, anything else to stop framing (e.g. after "quit").
 */
typedef int (*linebuf_fn)(void *ctx, const char *line, size_t len);

/* Starts an empty line buffer. */
void linebuf_init(struct linebuf *lb);

/*
 * Appends n received bytes and calls fn for each line they complete.
 * An unterminated tail is kept for the next call.  Returns 0, or the first
 * nonzero value fn returned; the bytes after that line are discarded.
 */
int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_fn fn, void *ctx);

/*
 * Delivers a pending unterminated line, if any, as if it ended with '\n'
 * (clients use it at end of stdin; servers discard partial lines instead).
 * Returns 0 or what fn returned.
 */
int linebuf_flush(struct linebuf *lb, linebuf_fn fn, void *ctx);

/* True when a message is exactly the quit word. */
bool lineio_is_quit(const char *msg, size_t len);

/* Removes one trailing "\n" or "\r\n" (UDP datagrams); returns the new length. */
size_t lineio_strip_eol(const char *msg, size_t len);

/*
 * read(2) that retries EINTR.  Returns bytes read, 0 at end of file, or -1
 * with errno set (EAGAIN included, for non-blocking descriptors).
 */
ssize_t xread(int fd, void *buf, size_t len);

/*
 * write(2) that retries EINTR; may be short.  Returns bytes written or -1
 * with errno set.  (Every program ignores SIGPIPE, see net_ignore_sigpipe(),
 * so a vanished peer gives EPIPE here.)
 */
ssize_t xwrite(int fd, const void *buf, size_t len);

/*
 * writev(2) that retries EINTR; may be short.  Returns bytes written or -1
 * with errno set.
 */
ssize_t xwritev(int fd, const struct iovec *iov, int iovcnt);

/*
 * Writes all len bytes, looping over short writes.  Returns 0, or -1 with
 * errno set (EAGAIN when a socket send timeout expired).
 */
int write_full(int fd, const void *buf, size_t len);

/*
 * Writes msg followed by '\n'; lines up to LINEIO_MAX go out in a single
 * write_full() so they cannot interleave with other writers.  Returns 0 or
 * -1 with errno set.
 */
int write_line(int fd, const char *msg, size_t len);

/*
 * Formats one line (the '\n' is added) and writes it whole with one
 * write_full(), so concurrent log lines never interleave.  Lines longer
 * than LINEIO_MAX are cut.  Returns 0 or -1 with errno set.
 */
int write_linef(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
