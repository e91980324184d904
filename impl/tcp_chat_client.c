/*
 * tcp_chat_client HOST PORT
 *
 * The main thread reads stdin and sends each line; a receive thread prints
 * every message from the server as it arrives, so messages show up while
 * the user types nothing.  stdout carries only received messages; notices
 * go to stderr.
 *
 * Exit: a "quit" line or end of stdin sends "quit" and exits 0.  When the
 * server closes the connection, the receive thread signals a wakeup pipe
 * that main polls beside stdin, so main leaves its loop even though no
 * stdin line comes; it then joins the thread and exits 0.  Nobody exits
 * from under a running thread, which keeps valgrind quiet.
 */
#define _POSIX_C_SOURCE 200809L

#include "lineio.h"
#include "netutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "tcp_chat_client HOST PORT"
#define QUIT_GRACE_MS 1000	/* how long to let the server close after quit */

enum { LINE_SENT, LINE_QUIT, LINE_SEND_FAILED };

struct receiver {
	int sock;
	struct wakeup closed;	/* readable once the server closed */
};

/* linebuf callback: prints one received message on stdout. */
static int print_line(void *ctx, const char *line, size_t len)
{
	(void)ctx;
	return write_line(STDOUT_FILENO, line, len) < 0 ? -1 : 0;
}

/* Receive thread: prints messages until the connection ends. */
static void *receive_main(void *arg)
{
	struct receiver *r = arg;
	struct linebuf lb;
	char buf[4096];
	ssize_t n;

	linebuf_init(&lb);
	while ((n = xread(r->sock, buf, sizeof buf)) > 0)
		if (linebuf_feed(&lb, buf, (size_t)n, print_line, NULL) != 0)
			break;	/* stdout is gone: nobody to show messages to */
	/* A partial last line cannot be a relayed message: dropped. */
	wakeup_signal(&r->closed);
	return NULL;
}

/* linebuf callback: sends one stdin line; stops after "quit". */
static int send_line(void *ctx, const char *line, size_t len)
{
	const struct receiver *r = ctx;

	if (write_line(r->sock, line, len) < 0)
		return LINE_SEND_FAILED;
	return lineio_is_quit(line, len) ? LINE_QUIT : LINE_SENT;
}

/*
 * Sends stdin lines until "quit", end of stdin or the server closing.
 * Returns 1 if the server closed first (nothing more can be sent), else 0.
 */
static int chat(struct receiver *r)
{
	struct pollfd pfd[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = r->closed.rd, .events = POLLIN },
	};
	struct linebuf lb;
	char buf[4096];

	linebuf_init(&lb);
	for (;;) {
		ssize_t n;
		int rc;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("tcp_chat_client: poll");
			return 0;
		}
		if (pfd[1].revents != 0)
			return 1;
		if (pfd[0].revents == 0)
			continue;
		n = xread(STDIN_FILENO, buf, sizeof buf);
		if (n <= 0) {
			/* End of stdin: the last unterminated line, then quit. */
			rc = linebuf_flush(&lb, send_line, r);
			if (rc == LINE_SENT)
				rc = send_line(r, LINEIO_QUIT, strlen(LINEIO_QUIT));
		} else {
			rc = linebuf_feed(&lb, buf, (size_t)n, send_line, r);
		}
		if (rc == LINE_SEND_FAILED)
			return 1;
		if (rc == LINE_QUIT)
			return 0;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	struct receiver r;
	pthread_t tid;
	uint16_t port;
	int err;

	if (argc != 3 || parse_port(argv[2], &port) < 0 ||
	    net_resolve(argv[1], port, &addr) < 0)
		usage_exit(USAGE " (HOST: IPv4 address or localhost)");
	if (net_init_process() < 0) {
		perror("tcp_chat_client: sigaction");
		return 1;
	}
	r.sock = net_connect(SOCK_STREAM, &addr);
	if (r.sock < 0) {
		fprintf(stderr, "tcp_chat_client: connect to %s:%s: %s\n",
			argv[1], argv[2], strerror(errno));
		return 1;
	}
	if (wakeup_open(&r.closed) < 0) {
		perror("tcp_chat_client: pipe");
		goto out_close_sock;
	}
	err = pthread_create(&tid, NULL, receive_main, &r);
	if (err != 0) {
		fprintf(stderr, "tcp_chat_client: pthread_create: %s\n", strerror(err));
		goto out_close_wakeup;
	}
	fprintf(stderr, "connected to %s:%s; type messages, \"quit\" to leave\n",
		argv[1], argv[2]);

	if (chat(&r) == 1) {
		fprintf(stderr, "server closed the connection\n");
	} else {
		/* Messages relayed before our quit are still on their way. */
		struct pollfd closed = { .fd = r.closed.rd, .events = POLLIN };

		poll(&closed, 1, QUIT_GRACE_MS);
	}
	/* Wakes the receive thread if the server has not closed yet. */
	shutdown(r.sock, SHUT_RDWR);
	pthread_join(tid, NULL);
	wakeup_close(&r.closed);
	close(r.sock);
	return 0;

out_close_wakeup:
	wakeup_close(&r.closed);
out_close_sock:
	close(r.sock);
	return 1;
}
