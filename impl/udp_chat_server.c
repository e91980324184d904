/*
 * udp_chat_server PORT
 *
 * UDP group chat, one thread.  The member list holds addresses (IP and
 * port) in a growable array.  A datagram from an unknown address makes it a
 * member; every message other than "quit" is relayed as one datagram to all
 * other members; "quit" removes the sender (an unknown sender's quit is
 * ignored).  Empty messages are not relayed.
 *
 * Shutdown: SIGINT/SIGTERM reach a self-pipe polled beside the socket; the
 * loop ends, everything is freed and closed, and the exit status is 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "lineio.h"
#include "netutil.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "udp_chat_server PORT"
/* Larger than any IPv4 UDP payload (65507), so no datagram is cut. */
#define DATAGRAM_MAX 65536

struct members {
	struct sockaddr_in *addr;
	size_t count;
	size_t cap;
};

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_addr.s_addr == b->sin_addr.s_addr &&
	       a->sin_port == b->sin_port;
}

/* Returns the index of addr among the members, or -1 if it is unknown. */
static long members_find(const struct members *m, const struct sockaddr_in *addr)
{
	for (size_t i = 0; i < m->count; i++)
		if (same_addr(&m->addr[i], addr))
			return (long)i;
	return -1;
}

/* Appends addr, growing the array; returns 0 or -1 (out of memory). */
static int members_add(struct members *m, const struct sockaddr_in *addr)
{
	if (m->count == m->cap) {
		size_t cap = m->cap != 0 ? m->cap * 2 : 16;
		struct sockaddr_in *grown = realloc(m->addr, cap * sizeof *grown);

		if (grown == NULL)
			return -1;
		m->addr = grown;
		m->cap = cap;
	}
	m->addr[m->count++] = *addr;
	return 0;
}

/* Removes member i; the last member takes its place (order is free). */
static void members_remove(struct members *m, size_t i)
{
	m->addr[i] = m->addr[--m->count];
}

/* Sends msg to every member except the one at index skip. */
static void relay(int sock, const struct members *m, size_t skip,
		  const char *msg, size_t len)
{
	for (size_t i = 0; i < m->count; i++) {
		ssize_t n;

		if (i == skip)
			continue;
		do
			n = sendto(sock, msg, len, 0,
				   (const struct sockaddr *)&m->addr[i],
				   sizeof m->addr[i]);
		while (n < 0 && errno == EINTR);
		/* UDP gives no delivery promise; a failed send is only logged. */
		if (n < 0) {
			char name[NET_ADDRSTRLEN];

			net_addr_str(&m->addr[i], name);
			write_linef(STDERR_FILENO, "send to %s: %s", name,
				    strerror(errno));
		}
	}
}

/* Applies one datagram from addr to the member list and relays it. */
static void handle_datagram(int sock, struct members *m,
			    const struct sockaddr_in *addr, const char *msg,
			    size_t len)
{
	char name[NET_ADDRSTRLEN];
	long i = members_find(m, addr);

	len = lineio_strip_eol(msg, len);
	net_addr_str(addr, name);
	if (lineio_is_quit(msg, len)) {
		if (i >= 0) {
			members_remove(m, (size_t)i);
			write_linef(STDERR_FILENO, "member %s left", name);
		}
		return;
	}
	if (i < 0) {
		if (members_add(m, addr) < 0) {
			write_linef(STDERR_FILENO, "member %s refused: out of memory",
				    name);
			return;
		}
		i = (long)m->count - 1;
		write_linef(STDERR_FILENO, "member %s joined", name);
	}
	if (len > 0)
		relay(sock, m, (size_t)i, msg, len);
}

int main(int argc, char **argv)
{
	struct members members = { NULL, 0, 0 };
	struct pollfd pfd[2];
	char *buf;
	uint16_t port;
	int sock, sig_fd;
	int status = 1;

	if (argc != 2 || parse_port(argv[1], &port) < 0)
		usage_exit(USAGE);
	if (net_init_process() < 0) {
		perror("udp_chat_server: sigaction");
		return 1;
	}
	buf = malloc(DATAGRAM_MAX);
	if (buf == NULL) {
		perror("udp_chat_server: malloc");
		return 1;
	}
	sig_fd = sig_pipe_open();
	if (sig_fd < 0) {
		perror("udp_chat_server: signals");
		goto out_free_buf;
	}
	sock = net_listen(SOCK_DGRAM, port);
	if (sock < 0) {
		perror("udp_chat_server: bind");
		goto out_close_signals;
	}

	pfd[0].fd = sock;
	pfd[0].events = POLLIN;
	pfd[1].fd = sig_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		struct sockaddr_in addr;
		socklen_t addrlen = sizeof addr;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;	/* the signal shows up on sig_fd */
			perror("udp_chat_server: poll");
			goto out_close_sock;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents == 0)
			continue;
		n = recvfrom(sock, buf, DATAGRAM_MAX, 0, (struct sockaddr *)&addr,
			     &addrlen);
		if (n < 0) {
			/* e.g. an ICMP error for an earlier send: keep serving. */
			if (errno != EINTR)
				write_linef(STDERR_FILENO, "recvfrom: %s", strerror(errno));
			continue;
		}
		if (addrlen != sizeof addr || addr.sin_family != AF_INET)
			continue;
		handle_datagram(sock, &members, &addr, buf, (size_t)n);
	}
	write_linef(STDERR_FILENO, "shutting down");
	status = 0;

out_close_sock:
	close(sock);
out_close_signals:
	sig_pipe_close();
out_free_buf:
	free(members.addr);
	free(buf);
	return status;
}
