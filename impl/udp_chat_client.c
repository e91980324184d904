/*
 * udp_chat_client HOST PORT
 *
 * Sends each stdin line as one datagram (newline stripped); a receive
 * thread prints each datagram it receives, followed by '\n'.  The client
 * joins by its first message: nothing is sent at start.  A "quit" line or
 * end of stdin sends "quit" and exits 0.
 *
 * The socket is connected to the server, so only the server's datagrams
 * are received.  To stop the receive thread, main signals a wakeup pipe
 * that the thread polls beside the socket, then joins it.
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

#define USAGE "udp_chat_client HOST PORT"
#define DATAGRAM_MAX 65536

enum { LINE_SENT, LINE_QUIT };

struct receiver {
	int sock;
	struct wakeup stop;	/* readable once main wants the thread gone */
};

/* Receive thread: prints datagrams until told to stop. */
static void *receive_main(void *arg)
{
	struct receiver *r = arg;
	struct pollfd pfd[2] = {
		{ .fd = r->sock, .events = POLLIN },
		{ .fd = r->stop.rd, .events = POLLIN },
	};
	char *buf = malloc(DATAGRAM_MAX);

	if (buf == NULL) {
		perror("udp_chat_client: malloc");
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("udp_chat_client: poll");
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents == 0)
			continue;
		n = recv(r->sock, buf, DATAGRAM_MAX, 0);
		/* ECONNREFUSED: no server yet (ICMP); keep listening. */
		if (n < 0)
			continue;
		if (write_line(STDOUT_FILENO, buf, (size_t)n) < 0)
			break;
	}
	free(buf);
	return NULL;
}

/* linebuf callback: sends one stdin line as a datagram; stops after quit. */
static int send_line(void *ctx, const char *line, size_t len)
{
	const struct receiver *r = ctx;

	/* Lost datagrams are UDP's nature; ECONNREFUSED only says no server. */
	if (send(r->sock, line, len, 0) < 0 && errno != ECONNREFUSED)
		fprintf(stderr, "udp_chat_client: send: %s\n", strerror(errno));
	return lineio_is_quit(line, len) ? LINE_QUIT : LINE_SENT;
}

/* Sends stdin lines until "quit" or end of stdin (then sends quit). */
static void chat(struct receiver *r)
{
	struct linebuf lb;
	char buf[4096];

	linebuf_init(&lb);
	for (;;) {
		ssize_t n = xread(STDIN_FILENO, buf, sizeof buf);

		if (n <= 0) {
			if (linebuf_flush(&lb, send_line, r) != LINE_QUIT)
				send_line(r, LINEIO_QUIT, strlen(LINEIO_QUIT));
			return;
		}
		if (linebuf_feed(&lb, buf, (size_t)n, send_line, r) == LINE_QUIT)
			return;
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
		perror("udp_chat_client: sigaction");
		return 1;
	}
	r.sock = net_connect(SOCK_DGRAM, &addr);
	if (r.sock < 0) {
		perror("udp_chat_client: socket");
		return 1;
	}
	if (wakeup_open(&r.stop) < 0) {
		perror("udp_chat_client: pipe");
		goto out_close_sock;
	}
	err = pthread_create(&tid, NULL, receive_main, &r);
	if (err != 0) {
		fprintf(stderr, "udp_chat_client: pthread_create: %s\n", strerror(err));
		goto out_close_wakeup;
	}
	fprintf(stderr, "chatting with %s:%s; type messages, \"quit\" to leave\n",
		argv[1], argv[2]);

	chat(&r);
	wakeup_signal(&r.stop);
	pthread_join(tid, NULL);
	wakeup_close(&r.stop);
	close(r.sock);
	return 0;

out_close_wakeup:
	wakeup_close(&r.stop);
out_close_sock:
	close(r.sock);
	return 1;
}
