/*
 * select_chat_server PORT
 *
 * The tcp_chat protocol served by ONE thread with select() and
 * non-blocking sockets.  Each client has an input line buffer (a partial
 * line from one client never blocks the others) and a bounded output
 * buffer.  One loop turn reads what is ready and frames lines into the
 * turn's relay buffer, copying each line once, whatever the number of
 * receivers.  Then each receiver gets ONE writev() of its pending output
 * plus the relay minus its own lines (coalescing keeps the syscall count
 * per turn at one per receiver, however many lines were relayed).  A
 * client is read at most once per turn, so its own lines are one run of
 * the relay and what the others sent is the part before and after it.
 * Only what a socket does not take is copied into that client's output
 * buffer.
 *
 * Slow readers (the Redis answer): a client whose output buffer would grow
 * past OUTBUF_MAX is dropped; the others never wait for it.
 *
 * Capacity: select() cannot watch fds >= FD_SETSIZE, and accept() fails
 * with EMFILE at the open-file limit.  Either way the connection is accepted
 * and closed at once, so it is refused cleanly instead of left hanging in
 * the backlog.  For EMFILE a spare fd is kept open: closing it makes room
 * for the accept() that takes the connection off the backlog.
 *
 * Shutdown: SIGINT/SIGTERM reach a self-pipe in the read set; the loop ends,
 * every socket is closed, everything freed, and the exit status is 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "lineio.h"
#include "netutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "select_chat_server PORT"
#define OUTBUF_MAX (1024 * 1024)	/* per client; beyond it: dropped */
#define OUTBUF_KEEP (64 * 1024)		/* larger idle buffers are freed */
#define READ_CHUNK (64 * 1024)		/* one read per client per turn */
/* What one read can add to the relay: its bytes and a kept partial line. */
#define READ_RELAY_MAX (READ_CHUNK + LINEIO_MAX + 1)
/* Lines relayed per turn; at most OUTBUF_MAX, so one turn never drops a
 * receiver that had nothing pending. */
#define RELAY_MAX OUTBUF_MAX
#define ACCEPTS_PER_TURN 256		/* connecting clients wait a turn */

/* Pending output: the bytes data[off .. off+len). */
struct outbuf {
	char  *data;
	size_t off;
	size_t len;
	size_t cap;
};

struct client {
	int fd;
	unsigned long id;
	bool dead;		/* closed at the end of this turn */
	size_t run_start;	/* its own lines in the relay: [start, end) */
	size_t run_end;
	struct linebuf in;
	struct outbuf out;
};

struct server {
	int listen_fd;
	int sig_fd;
	int spare_fd;		/* reserved for refusing at EMFILE; -1 if lost */
	int max_fd;		/* highest fd in read_set */
	fd_set read_set;	/* listening socket, self-pipe, every client */
	struct client *by_fd[FD_SETSIZE];
	char *read_buf;
	char *relay;		/* this turn's lines, each with its '\n' */
	size_t relay_len;
	int read_from;		/* fd the next turn starts reading at */
	unsigned long next_id;
};

/*
 * Appends len bytes to ob.  Returns 0, or -1 when that would exceed
 * OUTBUF_MAX (or memory runs out); ob is then unchanged.
 */
static int outbuf_append(struct outbuf *ob, const char *data, size_t len)
{
	size_t need = ob->len + len;

	if (need > OUTBUF_MAX)
		return -1;
	if (ob->off + need > ob->cap) {
		if (need <= ob->cap) {
			/* Enough room once the sent bytes are out of the way. */
			memmove(ob->data, ob->data + ob->off, ob->len);
		} else {
			size_t cap = ob->cap != 0 ? ob->cap : 4096;
			char *grown;

			while (cap < need)
				cap *= 2;
			if (cap > OUTBUF_MAX)
				cap = OUTBUF_MAX;
			grown = malloc(cap);
			if (grown == NULL)
				return -1;
			if (ob->len > 0)
				memcpy(grown, ob->data + ob->off, ob->len);
			free(ob->data);
			ob->data = grown;
			ob->cap = cap;
		}
		ob->off = 0;
	}
	memcpy(ob->data + ob->off + ob->len, data, len);
	ob->len += len;
	return 0;
}

/* Forgets the first n pending bytes, which have been sent. */
static void outbuf_consume(struct outbuf *ob, size_t n)
{
	ob->off += n;
	ob->len -= n;
	if (ob->len == 0) {
		ob->off = 0;
		/* A burst should not pin a megabyte per idle client. */
		if (ob->cap > OUTBUF_KEEP) {
			free(ob->data);
			ob->data = NULL;
			ob->cap = 0;
		}
	}
}

/* Marks c for closing at the end of the turn, with a log line. */
static void client_kill(struct client *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	write_linef(STDERR_FILENO, "client %lu %s", c->id, why);
}

/* Closes and frees c and takes it out of the server. */
static void client_close(struct server *s, struct client *c)
{
	FD_CLR(c->fd, &s->read_set);
	s->by_fd[c->fd] = NULL;
	while (s->max_fd > 0 && !FD_ISSET(s->max_fd, &s->read_set))
		s->max_fd--;
	close(c->fd);
	free(c->out.data);
	free(c);
}

struct line_ctx {
	struct server *server;
	struct client *client;
};

/* linebuf callback: relays one line; returns 1 on "quit" to stop framing. */
static int on_line(void *arg, const char *line, size_t len)
{
	struct line_ctx *ctx = arg;

	if (lineio_is_quit(line, len)) {
		/* The rest of this read is discarded with the client. */
		client_kill(ctx->client, "quit");
		return 1;
	}
	if (len > 0) {
		/* client_read() made sure of the room. */
		struct server *s = ctx->server;

		memcpy(s->relay + s->relay_len, line, len);
		s->relay[s->relay_len + len] = '\n';
		s->relay_len += len + 1;
	}
	return 0;
}

/*
 * Reads once from a readable client and adds the lines it completed to the
 * relay, as the client's run.  The relay must have READ_RELAY_MAX bytes free.
 */
static void client_read(struct server *s, struct client *c)
{
	struct line_ctx ctx = { s, c };
	ssize_t n = xread(c->fd, s->read_buf, READ_CHUNK);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	/* End of stream or a reset: leave silently; a partial line is lost. */
	if (n <= 0) {
		client_kill(c, "disconnected");
		return;
	}
	c->run_start = s->relay_len;
	linebuf_feed(&c->in, s->read_buf, (size_t)n, on_line, &ctx);
	c->run_end = s->relay_len;
}

/*
 * Reads every ready client once, starting where the last full relay
 * stopped, so no client waits behind the same busy ones turn after turn.
 */
static void read_clients(struct server *s, const fd_set *ready)
{
	int nfds = s->max_fd + 1;

	for (int i = 0; i < nfds; i++) {
		int fd = (s->read_from + i) % nfds;
		struct client *c = s->by_fd[fd];

		if (c == NULL || c->dead || !FD_ISSET(fd, ready))
			continue;
		/* Full: the rest stay ready and are read first next turn. */
		if (RELAY_MAX - s->relay_len < READ_RELAY_MAX) {
			s->read_from = fd;
			return;
		}
		client_read(s, c);
	}
}

/*
 * Sends c its pending output and this turn's relay minus its own run, in
 * one writev(), and keeps in its output buffer what the socket did not take.
 */
static void client_flush(struct server *s, struct client *c)
{
	struct iovec iov[3];
	int iovcnt = 0;
	size_t pending = c->out.len;
	size_t sent;
	ssize_t n;

	if (pending > 0)
		iov[iovcnt++] = (struct iovec){ c->out.data + c->out.off, pending };
	if (c->run_start > 0)
		iov[iovcnt++] = (struct iovec){ s->relay, c->run_start };
	if (s->relay_len > c->run_end)
		iov[iovcnt++] = (struct iovec){ s->relay + c->run_end,
						s->relay_len - c->run_end };
	if (iovcnt == 0)
		return;
	n = xwritev(c->fd, iov, iovcnt);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		client_kill(c, "disconnected");
		return;
	}
	sent = n > 0 ? (size_t)n : 0;
	/* The pending bytes went first; then keep the unsent relay parts. */
	outbuf_consume(&c->out, sent < pending ? sent : pending);
	sent = sent < pending ? 0 : sent - pending;
	for (int i = pending > 0 ? 1 : 0; i < iovcnt; i++) {
		if (sent >= iov[i].iov_len) {
			sent -= iov[i].iov_len;
			continue;
		}
		if (outbuf_append(&c->out, (char *)iov[i].iov_base + sent,
				  iov[i].iov_len - sent) < 0) {
			client_kill(c, "dropped: output buffer full (not reading)");
			return;
		}
		sent = 0;
	}
}

/*
 * Takes one connection off the backlog and closes it, when accept() fails
 * with EMFILE: the spare fd is given up for the moment this takes.
 * Returns 0 if a connection was refused, -1 if the backlog was empty
 * (Linux reports EMFILE before it looks at the backlog).
 */
static int refuse_at_fd_limit(struct server *s)
{
	int fd;

	close(s->spare_fd);
	fd = accept(s->listen_fd, NULL, NULL);
	if (fd >= 0)
		close(fd);
	s->spare_fd = open("/dev/null", O_RDONLY);
	if (fd < 0)
		return -1;
	write_linef(STDERR_FILENO, "connection refused: open-file limit reached");
	return 0;
}

/* Makes a client of an accepted socket; closes it on failure. */
static void client_add(struct server *s, int fd)
{
	struct client *c;

	/* select() cannot watch it: refuse instead of overflowing fd_set. */
	if (fd >= FD_SETSIZE) {
		write_linef(STDERR_FILENO, "connection refused: FD_SETSIZE reached");
		goto out_close_fd;
	}
	if (net_set_nonblocking(fd) < 0)
		goto out_close_fd;
	/* Relayed lines are short: send them now, not after the next ACK. */
	if (net_set_nodelay(fd) < 0)
		goto out_close_fd;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto out_close_fd;
	c->fd = fd;
	c->id = s->next_id++;
	linebuf_init(&c->in);
	s->by_fd[fd] = c;
	FD_SET(fd, &s->read_set);
	if (fd > s->max_fd)
		s->max_fd = fd;
	write_linef(STDERR_FILENO, "client %lu connected", c->id);
	return;

out_close_fd:
	close(fd);
}

/* Accepts the connections waiting in the backlog, up to a per-turn cap. */
static void accept_clients(struct server *s)
{
	for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
		int fd = accept(s->listen_fd, NULL, NULL);

		if (fd >= 0) {
			client_add(s, fd);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
			if (s->spare_fd < 0 || refuse_at_fd_limit(s) < 0)
				return;
			continue;
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		default:
			write_linef(STDERR_FILENO, "accept: %s", strerror(errno));
			return;
		}
	}
}

/* Gives every live client its pending output and this turn's relay. */
static void flush_clients(struct server *s)
{
	for (int fd = 0; fd <= s->max_fd; fd++) {
		struct client *c = s->by_fd[fd];

		if (c == NULL)
			continue;
		if (!c->dead)
			client_flush(s, c);
		c->run_start = c->run_end = 0;
	}
	s->relay_len = 0;
}

/* One loop turn's end: closes dead clients. */
static void reap_clients(struct server *s)
{
	for (int fd = 0; fd <= s->max_fd; fd++) {
		struct client *c = s->by_fd[fd];

		if (c != NULL && c->dead)
			client_close(s, c);
	}
	/* A freed fd lets us take back the spare we could not reopen. */
	if (s->spare_fd < 0)
		s->spare_fd = open("/dev/null", O_RDONLY);
}

/*
 * Serves clients until SIGINT or SIGTERM.  Returns 0 then, or -1 with errno
 * set if select() fails.
 */
static int serve(struct server *s)
{
	for (;;) {
		/* Copy the fd sets: select() overwrites them with the ready fds. */
		fd_set rfds = s->read_set;
		fd_set wfds;
		int ready;

		FD_ZERO(&wfds);
		for (int fd = 0; fd <= s->max_fd; fd++)
			if (s->by_fd[fd] != NULL && s->by_fd[fd]->out.len > 0)
				FD_SET(fd, &wfds);
		/* Without a spare, EMFILE would leave the listener always ready. */
		if (s->spare_fd < 0)
			FD_CLR(s->listen_fd, &rfds);

		ready = select(s->max_fd + 1, &rfds, &wfds, NULL, NULL);
		if (ready < 0) {
			if (errno == EINTR)
				continue;	/* the signal shows up on sig_fd */
			return -1;
		}
		if (FD_ISSET(s->sig_fd, &rfds))
			return 0;
		read_clients(s, &rfds);
		flush_clients(s);
		/* After the flush: a client accepted now joins at the next line. */
		if (FD_ISSET(s->listen_fd, &rfds))
			accept_clients(s);
		reap_clients(s);
	}
}

/* Registers a server-owned fd (listener, self-pipe) in the read set. */
static void watch_fd(struct server *s, int fd)
{
	FD_SET(fd, &s->read_set);
	if (fd > s->max_fd)
		s->max_fd = fd;
}

int main(int argc, char **argv)
{
	static struct server s;	/* the fd table is too big for the stack */
	uint16_t port;
	int status = 1;

	if (argc != 2 || parse_port(argv[1], &port) < 0)
		usage_exit(USAGE);
	if (net_init_process() < 0) {
		perror("select_chat_server: sigaction");
		return 1;
	}
	FD_ZERO(&s.read_set);
	s.next_id = 1;
	s.read_buf = malloc(READ_CHUNK);
	s.relay = malloc(RELAY_MAX);
	if (s.read_buf == NULL || s.relay == NULL) {
		perror("select_chat_server: malloc");
		goto out_free_buf;
	}
	s.spare_fd = open("/dev/null", O_RDONLY);
	if (s.spare_fd < 0) {
		perror("select_chat_server: /dev/null");
		goto out_free_buf;
	}
	s.sig_fd = sig_pipe_open();
	if (s.sig_fd < 0) {
		perror("select_chat_server: signals");
		goto out_close_spare;
	}
	s.listen_fd = net_listen(SOCK_STREAM, port);
	if (s.listen_fd < 0) {
		perror("select_chat_server: listen");
		goto out_close_signals;
	}
	/* Non-blocking: a client that went away after select() must not hang accept(). */
	if (net_set_nonblocking(s.listen_fd) < 0) {
		perror("select_chat_server: fcntl");
		goto out_close_listener;
	}
	watch_fd(&s, s.listen_fd);
	watch_fd(&s, s.sig_fd);

	if (serve(&s) < 0)
		perror("select_chat_server: select");
	else
		status = 0;
	write_linef(STDERR_FILENO, "shutting down");

	for (int fd = 0; fd < FD_SETSIZE; fd++)
		if (s.by_fd[fd] != NULL)
			client_close(&s, s.by_fd[fd]);
out_close_listener:
	close(s.listen_fd);
out_close_signals:
	sig_pipe_close();
out_close_spare:
	if (s.spare_fd >= 0)
		close(s.spare_fd);
out_free_buf:
	free(s.relay);
	free(s.read_buf);
	return status;
}
