/*
 * tcp_chat_server PORT
 *
 * Threaded TCP chat: one thread per client, one mutex around the shared
 * client list and the outbox.  A client's thread queues the complete lines
 * of each read, each with its '\n', in the outbox; one relay thread sends
 * everything queued to every member but the lines' senders, one writev()
 * per member, while the lock is held, so relayed lines never interleave.
 * While it sends, the other threads wait for the lock and then queue their
 * lines together, so under load one round relays the lines of many senders
 * for the same one write per receiver (with TCP_NODELAY every write is a
 * segment, and per-segment cost is what a busy chat spends its time on).
 * "quit" removes the sender; end of stream or a reset does the same
 * silently.
 *
 * Slow readers: every client socket has a 2 s send timeout.  A relay that
 * times out or fails drops that receiver: it is unlinked from the members
 * and its socket shut down, which wakes its thread to finish.
 *
 * Shutdown: SIGINT/SIGTERM write to a self-pipe that the main thread polls
 * beside the listening socket.  Main then shuts every client socket down
 * (each thread's recv() returns 0), joins every client thread, then the
 * relay thread, frees everything and exits 0.  Only a client's own thread closes its fd, after it has left
 * the list, so no fd is written to after close or reused under a writer.
 */
#define _POSIX_C_SOURCE 200809L

#include "lineio.h"
#include "netutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#define USAGE "tcp_chat_server PORT"
#define SEND_TIMEOUT_SEC 2	/* the contract allows at most 5 s */
#define RECV_CHUNK (64 * 1024)
/* Relayed bytes one read can complete: its own plus one kept partial line. */
#define BATCH_MAX (RECV_CHUNK + LINEIO_MAX + 1)
#define OUTBOX_MAX (4 * BATCH_MAX)	/* bytes queued for one relay round */
#define OUTBOX_RUNS 64			/* senders per round: iovecs per write */

struct client {
	struct client *prev, *next;	/* in clients, under clients_lock */
	pthread_t tid;
	int fd;
	unsigned long id;
	bool member;	/* receives relays; false once it left or was dropped */
	bool done;	/* its thread has finished and can be joined */
};

/* Every client whose thread has not been joined yet, members or not. */
static struct client *clients;
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;

/* A sender's consecutive lines in the outbox: bytes [start, end). */
struct run {
	unsigned long sender;	/* client id: unlike a pointer, never reused */
	size_t start, end;
};

/*
 * Lines queued for the next relay round, under clients_lock.  Threads wait
 * on has_room when it is full; the relay thread waits on has_lines.
 */
static struct {
	char data[OUTBOX_MAX];
	size_t len;
	struct run runs[OUTBOX_RUNS];
	int nruns;
	bool stopping;		/* shutdown: the relay thread is to finish */
} outbox;
static pthread_cond_t outbox_has_room = PTHREAD_COND_INITIALIZER;
static pthread_cond_t outbox_has_lines = PTHREAD_COND_INITIALIZER;

/* Links c at the head of the list.  Caller holds clients_lock. */
static void clients_link(struct client *c)
{
	c->prev = NULL;
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
}

/* Unlinks c from the list.  Caller holds clients_lock. */
static void clients_unlink(struct client *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

/*
 * Stops relaying to c and wakes its thread (its recv() returns 0).  The fd
 * stays open until that thread closes it.  Caller holds clients_lock.
 */
static void client_drop(struct client *c)
{
	c->member = false;
	shutdown(c->fd, SHUT_RDWR);
}

/*
 * Queues a batch of whole lines ("\n"-terminated, at most BATCH_MAX bytes)
 * for relaying to every member but the sender, waiting while the outbox is
 * full.  Lines queued are relayed even if the sender leaves meanwhile.
 */
static void broadcast(const struct client *sender, const char *lines, size_t len)
{
	struct run *last;
	bool new_run;

	pthread_mutex_lock(&clients_lock);
	for (;;) {
		last = outbox.nruns > 0 ? &outbox.runs[outbox.nruns - 1] : NULL;
		new_run = last == NULL || last->sender != sender->id;
		if (outbox.len + len <= OUTBOX_MAX &&
		    !(new_run && outbox.nruns == OUTBOX_RUNS))
			break;
		pthread_cond_wait(&outbox_has_room, &clients_lock);
	}
	if (new_run) {
		last = &outbox.runs[outbox.nruns++];
		last->sender = sender->id;
		last->start = outbox.len;
	}
	memcpy(outbox.data + outbox.len, lines, len);
	outbox.len += len;
	last->end = outbox.len;
	pthread_cond_signal(&outbox_has_lines);
	pthread_mutex_unlock(&clients_lock);
}

/*
 * Sends the outbox to member c, without the lines c sent, in one writev().
 * Drops c if the send fails or times out.  Caller holds clients_lock.
 */
static void relay_to(struct client *c)
{
	struct iovec iov[OUTBOX_RUNS];
	int iovcnt = 0;
	size_t len = 0;
	ssize_t n;

	for (int i = 0; i < outbox.nruns; i++) {
		const struct run *r = &outbox.runs[i];

		if (r->sender == c->id)
			continue;
		iov[iovcnt++] = (struct iovec){ outbox.data + r->start,
						r->end - r->start };
		len += r->end - r->start;
	}
	if (len == 0)
		return;
	/*
	 * One send, not a write_full() loop: a blocking send returns short
	 * only when SO_SNDTIMEO expired (this thread blocks the signals), and
	 * looping would restart the timeout for every trickle a slow reader
	 * lets through.
	 */
	n = xwritev(c->fd, iov, iovcnt);
	if (n < 0 || (size_t)n < len) {
		write_linef(STDERR_FILENO, "client %lu dropped: %s", c->id,
			    n >= 0 || errno == EAGAIN ? "not reading" :
			    strerror(errno));
		client_drop(c);
	}
}

/*
 * The relay thread: sends each round of queued lines to every member,
 * holding the lock from the first write to the last.
 */
static void *relay_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&clients_lock);
	for (;;) {
		while (outbox.nruns == 0 && !outbox.stopping)
			pthread_cond_wait(&outbox_has_lines, &clients_lock);
		if (outbox.stopping)
			break;
		for (struct client *c = clients; c != NULL; c = c->next)
			if (c->member)
				relay_to(c);
		outbox.len = 0;
		outbox.nruns = 0;
		pthread_cond_broadcast(&outbox_has_room);
	}
	pthread_mutex_unlock(&clients_lock);
	return NULL;
}

/* A client thread's buffers: one read, and the lines it completed. */
struct batch {
	char   in[RECV_CHUNK];
	char   data[BATCH_MAX];	/* the lines, gathered for one broadcast */
	size_t len;
};

/* linebuf callback: queues a line; returns 1 on "quit" to stop framing. */
static int on_line(void *ctx, const char *line, size_t len)
{
	struct batch *b = ctx;

	if (lineio_is_quit(line, len))
		return 1;
	if (len > 0) {
		memcpy(b->data + b->len, line, len);
		b->data[b->len + len] = '\n';
		b->len += len + 1;
	}
	return 0;
}

/* A client's thread: frames and relays its input until it leaves. */
static void *client_main(void *arg)
{
	struct client *c = arg;
	struct linebuf lb;
	struct batch *batch;
	bool quit = false;

	/* On the heap: thread stacks are not the place for 132 KiB. */
	batch = malloc(sizeof *batch);
	if (batch == NULL)
		write_linef(STDERR_FILENO, "client %lu: out of memory", c->id);
	linebuf_init(&lb);
	while (!quit && batch != NULL) {
		ssize_t n = xread(c->fd, batch->in, sizeof batch->in);

		/* End of stream, a reset or our own shutdown: all the same. */
		if (n <= 0)
			break;
		batch->len = 0;
		/* After "quit" the rest of this read is discarded. */
		quit = linebuf_feed(&lb, batch->in, (size_t)n, on_line,
				    batch) != 0;
		/* Lines before a quit in the same read are still relayed. */
		if (batch->len > 0)
			broadcast(c, batch->data, batch->len);
	}
	free(batch);
	/* A partial line left in lb is discarded with it. */

	pthread_mutex_lock(&clients_lock);
	c->member = false;
	pthread_mutex_unlock(&clients_lock);
	/* Out of the members: no relay can write to the fd any more. */
	close(c->fd);
	write_linef(STDERR_FILENO, "client %lu %s", c->id,
		    quit ? "quit" : "disconnected");

	pthread_mutex_lock(&clients_lock);
	c->done = true;
	pthread_mutex_unlock(&clients_lock);
	return NULL;
}

/* Joins and frees the clients whose threads have finished. */
static void reap_finished(void)
{
	struct client *c, *next;
	struct client *finished = NULL;

	pthread_mutex_lock(&clients_lock);
	for (c = clients; c != NULL; c = next) {
		next = c->next;
		if (c->done) {
			clients_unlink(c);
			c->next = finished;
			finished = c;
		}
	}
	pthread_mutex_unlock(&clients_lock);
	/* Join outside the lock: nothing is left for these threads to do. */
	for (c = finished; c != NULL; c = next) {
		next = c->next;
		pthread_join(c->tid, NULL);
		free(c);
	}
}

/*
 * Makes a member of a freshly accepted socket and starts its thread.
 * Returns 0, or -1 (the socket is closed) on failure.
 */
static int client_start(int fd, unsigned long id)
{
	struct timeval timeout = { .tv_sec = SEND_TIMEOUT_SEC, .tv_usec = 0 };
	struct client *c;
	int err;

	/* Bounds how long a relay can wait for a receiver that does not read. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) < 0)
		goto out_close_fd;
	/* Relayed lines are short: send them now, not after the next ACK. */
	if (net_set_nodelay(fd) < 0)
		goto out_close_fd;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto out_close_fd;
	c->fd = fd;
	c->id = id;
	c->member = true;

	/* Linked before it starts: the thread may finish at once. */
	pthread_mutex_lock(&clients_lock);
	clients_link(c);
	err = thread_start(&c->tid, client_main, c);
	if (err != 0)
		clients_unlink(c);
	pthread_mutex_unlock(&clients_lock);
	if (err != 0) {
		errno = err;
		goto out_free_client;
	}
	return 0;

out_free_client:
	free(c);
out_close_fd:
	write_linef(STDERR_FILENO, "client %lu refused: %s", id, strerror(errno));
	close(fd);
	return -1;
}

/* Shuts every client down, then joins and frees them all. */
static void stop_all_clients(void)
{
	pthread_mutex_lock(&clients_lock);
	for (struct client *c = clients; c != NULL; c = c->next)
		if (c->member)
			client_drop(c);
	pthread_mutex_unlock(&clients_lock);

	for (;;) {
		struct client *c;

		pthread_mutex_lock(&clients_lock);
		c = clients;
		if (c != NULL)
			clients_unlink(c);
		pthread_mutex_unlock(&clients_lock);
		if (c == NULL)
			break;
		pthread_join(c->tid, NULL);
		free(c);
	}
}

/* Accepts one connection and starts its thread (errors are logged). */
static void accept_client(int listen_fd, unsigned long *next_id)
{
	struct sockaddr_in addr;
	socklen_t addrlen = sizeof addr;
	char name[NET_ADDRSTRLEN];
	int fd;

	fd = accept(listen_fd, (struct sockaddr *)&addr, &addrlen);
	if (fd < 0) {
		/* The peer may be gone already; EMFILE etc. are logged. */
		if (errno != EINTR && errno != ECONNABORTED)
			write_linef(STDERR_FILENO, "accept: %s", strerror(errno));
		/* Do not spin on EMFILE: give the threads time to exit. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM)
			poll(NULL, 0, 100);
		return;
	}
	net_addr_str(&addr, name);
	write_linef(STDERR_FILENO, "client %lu connected from %s", *next_id, name);
	client_start(fd, (*next_id)++);
}

/* Tells the relay thread to finish and joins it (every client is gone). */
static void stop_relay(pthread_t tid)
{
	pthread_mutex_lock(&clients_lock);
	outbox.stopping = true;
	pthread_cond_signal(&outbox_has_lines);
	pthread_mutex_unlock(&clients_lock);
	pthread_join(tid, NULL);
}

int main(int argc, char **argv)
{
	struct pollfd pfd[2];
	unsigned long next_id = 1;
	pthread_t relay_tid;
	uint16_t port;
	int listen_fd, sig_fd;
	int status = 1;
	int err;

	if (argc != 2 || parse_port(argv[1], &port) < 0)
		usage_exit(USAGE);
	if (net_init_process() < 0) {
		perror("tcp_chat_server: sigaction");
		return 1;
	}
	sig_fd = sig_pipe_open();
	if (sig_fd < 0) {
		perror("tcp_chat_server: signals");
		return 1;
	}
	listen_fd = net_listen(SOCK_STREAM, port);
	if (listen_fd < 0) {
		perror("tcp_chat_server: listen");
		goto out_close_signals;
	}
	err = thread_start(&relay_tid, relay_main, NULL);
	if (err != 0) {
		errno = err;
		perror("tcp_chat_server: relay thread");
		goto out_close_listener;
	}

	pfd[0].fd = listen_fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sig_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;	/* the signal shows up on sig_fd */
			perror("tcp_chat_server: poll");
			goto out_stop_clients;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents != 0)
			accept_client(listen_fd, &next_id);
		reap_finished();
	}
	write_linef(STDERR_FILENO, "shutting down");
	status = 0;

out_stop_clients:
	stop_all_clients();
	stop_relay(relay_tid);
out_close_listener:
	close(listen_fd);
out_close_signals:
	sig_pipe_close();
	return status;
}
