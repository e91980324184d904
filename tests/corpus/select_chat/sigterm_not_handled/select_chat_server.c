/*
 * select_chat_server PORT
 *
 * Chat server with one thread and select().
 * Clients live in an array indexed by their fd (clients[fd]), so finding
 * the client for a ready fd is O(1).  Each client has a fixed input buffer
 * for the line being typed and a growing output buffer that we cap at
 * OUT_LIMIT bytes: a client that lets it fill up is not reading, and is
 * dropped so it can't hold up everybody else.
 *
 * Lab 6, systems programming.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096          /* longer lines are thrown away */
#define OUT_LIMIT (1024 * 1024)    /* max bytes waiting for one client */
#define RECV_SIZE 65536

struct client {
	int fd;
	char line[LINE_MAX_LEN];
	size_t line_len;
	int skipping;          /* 1 while throwing away an overlong line */
	char *out;             /* bytes out[out_start .. out_end) still to send */
	size_t out_start;
	size_t out_end;
	size_t out_cap;
	int gone;              /* removed at the end of the loop turn */
};

static struct client *clients[FD_SETSIZE];
static fd_set watched;             /* listener + every client */
static int max_fd = -1;
static int listen_fd = -1;
static int spare_fd = -1;          /* given up on EMFILE to refuse a client */
static volatile sig_atomic_t got_signal = 0;
static char recv_buf[RECV_SIZE];

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL, 0);
	if (flags < 0)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Queue bytes for a client. Returns -1 if that would go over OUT_LIMIT. */
static int queue_bytes(struct client *c, const char *data, size_t len)
{
	size_t pending = c->out_end - c->out_start;

	if (pending + len > OUT_LIMIT)
		return -1;
	if (c->out_end + len > c->out_cap) {
		/* slide the pending part to the front first, maybe that's enough */
		if (c->out_start > 0) {
			memmove(c->out, c->out + c->out_start, pending);
			c->out_start = 0;
			c->out_end = pending;
		}
		if (c->out_end + len > c->out_cap) {
			size_t newcap = c->out_cap ? c->out_cap : 4096;
			while (newcap < c->out_end + len)
				newcap *= 2;
			char *p = realloc(c->out, newcap);
			if (p == NULL)
				return -1;
			c->out = p;
			c->out_cap = newcap;
		}
	}
	memcpy(c->out + c->out_end, data, len);
	c->out_end += len;
	return 0;
}

/* Send what we can without blocking. Marks the client gone on error. */
static void flush_client(struct client *c)
{
	while (c->out_start < c->out_end) {
		ssize_t n = send(c->fd, c->out + c->out_start, c->out_end - c->out_start,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->gone = 1;
			return;
		}
		c->out_start += (size_t)n;
	}
	c->out_start = c->out_end = 0;
	/* don't keep a huge buffer around after a burst */
	if (c->out_cap > 64 * 1024) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

static void broadcast(struct client *from, const char *msg, size_t len)
{
	for (int fd = 0; fd <= max_fd; fd++) {
		struct client *c = clients[fd];
		if (c == NULL || c == from || c->gone)
			continue;
		if (queue_bytes(c, msg, len) < 0 || queue_bytes(c, "\n", 1) < 0) {
			fprintf(stderr, "client %d is not reading, dropping it\n", fd);
			c->gone = 1;
		}
	}
}

static void handle_line(struct client *c)
{
	size_t len = c->line_len;

	if (len > 0 && c->line[len - 1] == '\r')
		len--;
	if (len == 4 && memcmp(c->line, "quit", 4) == 0) {
		printf("client %d quit\n", c->fd);
		c->gone = 1;
		return;
	}
	if (len > 0)
		broadcast(c, c->line, len);
}

/* Split what we received into lines. Stops as soon as the client is gone
 * (so whatever came after "quit" is ignored). */
static void handle_input(struct client *c, const char *data, size_t n)
{
	size_t i = 0;

	while (i < n && !c->gone) {
		const char *nl = memchr(data + i, '\n', n - i);
		size_t chunk = nl ? (size_t)(nl - (data + i)) : n - i;

		if (c->skipping) {
			if (nl)
				c->skipping = 0;
		} else if (c->line_len + chunk > LINE_MAX_LEN) {
			fprintf(stderr, "client %d: line too long, dropped\n", c->fd);
			c->line_len = 0;
			c->skipping = (nl == NULL);
		} else {
			memcpy(c->line + c->line_len, data + i, chunk);
			c->line_len += chunk;
			if (nl) {
				handle_line(c);
				c->line_len = 0;
			}
		}
		i += chunk + (nl ? 1 : 0);
	}
}

static void read_client(struct client *c)
{
	ssize_t n = recv(c->fd, recv_buf, sizeof recv_buf, 0);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		c->gone = 1;           /* reset etc. */
		return;
	}
	if (n == 0) {
		c->gone = 1;           /* closed; a half line is just dropped */
		return;
	}
	handle_input(c, recv_buf, (size_t)n);
}

static void remove_client(struct client *c)
{
	int fd = c->fd;

	FD_CLR(fd, &watched);
	close(fd);
	clients[fd] = NULL;
	free(c->out);
	free(c);
	while (max_fd >= 0 && !FD_ISSET(max_fd, &watched))
		max_fd--;
}

/* accept() failed with EMFILE: use the spare fd to take the connection
 * off the queue and close it, otherwise select() keeps saying the
 * listener is ready and we spin. */
static void refuse_one(void)
{
	if (spare_fd < 0)
		return;
	close(spare_fd);
	int fd = accept(listen_fd, NULL, NULL);
	if (fd >= 0)
		close(fd);
	spare_fd = open("/dev/null", O_RDONLY);
	fprintf(stderr, "too many open files, refused a client\n");
}

static void accept_clients(void)
{
	for (int k = 0; k < 64; k++) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				refuse_one();
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
				 && errno != ECONNABORTED)
				perror("accept");
			return;
		}
		if (fd >= FD_SETSIZE) {
			fprintf(stderr, "fd %d too big for select, refused\n", fd);
			close(fd);
			continue;
		}
		struct client *c = calloc(1, sizeof *c);
		if (c == NULL || set_nonblocking(fd) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		clients[fd] = c;
		FD_SET(fd, &watched);
		if (fd > max_fd)
			max_fd = fd;
		printf("client %d connected\n", fd);
	}
}

static int open_listener(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return -1;
	}
	int yes = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	addr.sin_port = htons((unsigned short)port);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0
	    || set_nonblocking(fd) < 0) {
		perror("bind/listen");
		close(fd);
		return -1;
	}
	socklen_t alen = sizeof addr;
	getsockname(fd, (struct sockaddr *)&addr, &alen);
	printf("listening on port %d\n", ntohs(addr.sin_port));
	return fd;
}

int main(int argc, char *argv[])
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 1;
	}
	char *end;
	long port = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
		fprintf(stderr, "bad port: %s\n", argv[1]);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Ctrl-C is blocked except while we sit in pselect(), so we can't
	 * miss one between checking the flag and waiting. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);

	listen_fd = open_listener((int)port);
	if (listen_fd < 0)
		return 1;
	spare_fd = open("/dev/null", O_RDONLY);
	FD_ZERO(&watched);
	FD_SET(listen_fd, &watched);
	max_fd = listen_fd;

	while (!got_signal) {
		fd_set rset = watched;   /* select() overwrites its sets */
		fd_set wset;
		FD_ZERO(&wset);
		for (int fd = 0; fd <= max_fd; fd++)
			if (clients[fd] && clients[fd]->out_end > clients[fd]->out_start)
				FD_SET(fd, &wset);

		int ready = pselect(max_fd + 1, &rset, &wset, NULL, NULL, &waitmask);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			perror("select");
			break;
		}

		for (int fd = 0; fd <= max_fd; fd++) {
			if (clients[fd] && !clients[fd]->gone && FD_ISSET(fd, &rset))
				read_client(clients[fd]);
		}
		if (FD_ISSET(listen_fd, &rset))
			accept_clients();

		/* try to send right away instead of waiting for the next turn */
		for (int fd = 0; fd <= max_fd; fd++) {
			struct client *c = clients[fd];
			if (c && !c->gone && c->out_end > c->out_start)
				flush_client(c);
		}
		for (int fd = 0; fd <= max_fd; fd++) {
			if (clients[fd] && clients[fd]->gone)
				remove_client(clients[fd]);
		}
	}

	printf("shutting down\n");
	for (int fd = 0; fd < FD_SETSIZE; fd++)
		if (clients[fd])
			remove_client(clients[fd]);
	close(listen_fd);
	if (spare_fd >= 0)
		close(spare_fd);
	return 0;
}
