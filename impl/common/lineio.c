#define _POSIX_C_SOURCE 200809L

#include "lineio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void linebuf_init(struct linebuf *lb)
{
	lb->len = 0;
	lb->truncated = false;
}

/* Hands the completed pending line to fn and empties the buffer. */
static int linebuf_deliver(struct linebuf *lb, linebuf_fn fn, void *ctx)
{
	size_t len = lb->len;

	/* A '\r' kept just before a cut is not the one before the '\n'. */
	if (!lb->truncated && len > 0 && lb->line[len - 1] == '\r')
		len--;
	linebuf_init(lb);
	return fn(ctx, lb->line, len);
}

int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_fn fn, void *ctx)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t chunk = nl != NULL ? (size_t)(nl - data) : n;
		int rc;

		if (nl != NULL && lb->len == 0 && chunk <= LINEIO_MAX) {
			/* Fast path: a whole line inside data needs no copy. */
			size_t len = chunk;

			if (len > 0 && data[len - 1] == '\r')
				len--;
			rc = fn(ctx, data, len);
		} else {
			size_t room = LINEIO_MAX - lb->len;
			size_t keep = chunk < room ? chunk : room;

			memcpy(lb->line + lb->len, data, keep);
			lb->len += keep;
			if (keep < chunk)
				lb->truncated = true;
			if (nl == NULL)
				return 0;
			rc = linebuf_deliver(lb, fn, ctx);
		}
		if (rc != 0)
			return rc;
		data += chunk + 1;
		n -= chunk + 1;
	}
	return 0;
}

int linebuf_flush(struct linebuf *lb, linebuf_fn fn, void *ctx)
{
	if (lb->len == 0 && !lb->truncated)
		return 0;
	return linebuf_deliver(lb, fn, ctx);
}

bool lineio_is_quit(const char *msg, size_t len)
{
	return len == strlen(LINEIO_QUIT) && memcmp(msg, LINEIO_QUIT, len) == 0;
}

size_t lineio_strip_eol(const char *msg, size_t len)
{
	if (len > 0 && msg[len - 1] == '\n') {
		len--;
		if (len > 0 && msg[len - 1] == '\r')
			len--;
	}
	return len;
}

ssize_t xread(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t xwrite(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t xwritev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	do
		n = writev(fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	return n;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = xwrite(fd, p, len);

		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_line(int fd, const char *msg, size_t len)
{
	char out[LINEIO_MAX + 1];

	if (len > LINEIO_MAX) {
		/* Too long for one buffer: two writes, no atomicity promised. */
		if (write_full(fd, msg, len) < 0)
			return -1;
		return write_full(fd, "\n", 1);
	}
	memcpy(out, msg, len);
	out[len] = '\n';
	return write_full(fd, out, len + 1);
}

int write_linef(int fd, const char *fmt, ...)
{
	char out[LINEIO_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, LINEIO_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (n >= LINEIO_MAX)
		n = LINEIO_MAX - 1;
	out[n] = '\n';
	return write_full(fd, out, (size_t)n + 1);
}
