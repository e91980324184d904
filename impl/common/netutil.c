#define _POSIX_C_SOURCE 200809L

#include "netutil.h"
#include "lineio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void usage_exit(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(2);
}

int parse_decimal(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned digit;

		if (*s < '0' || *s > '9')
			return -1;
		digit = (unsigned)(*s - '0');
		/* Check before multiplying so v never wraps around. */
		if (v > (max - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

int parse_port(const char *s, uint16_t *port)
{
	unsigned long v;

	if (parse_decimal(s, 65535, &v) < 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int net_init_process(void)
{
	struct sigaction sa;

	/* Line-buffered even into a pipe, so a reader sees each line at once. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGPIPE, &sa, NULL);
}

int net_resolve(const char *host, uint16_t port, struct sockaddr_in *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sin_family = AF_INET;
	addr->sin_port = htons(port);
	/* "localhost" is the loopback address; no resolver is consulted. */
	if (strcmp(host, "localhost") == 0) {
		addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return 0;
	}
	if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
		return -1;
	return 0;
}

int net_listen(int type, uint16_t port)
{
	struct sockaddr_in addr;
	socklen_t addrlen = sizeof addr;
	int one = 1;
	int save_errno;
	int fd;

	fd = socket(AF_INET, type, 0);
	if (fd < 0)
		return -1;
	/* A restarted server must not wait for old TIME_WAIT connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto out_close_fd;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	addr.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		goto out_close_fd;
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		goto out_close_fd;
	/* Port 0 means the kernel chose: report the port actually bound. */
	if (getsockname(fd, (struct sockaddr *)&addr, &addrlen) < 0)
		goto out_close_fd;
	if (write_linef(STDOUT_FILENO, "listening on port %u",
			(unsigned)ntohs(addr.sin_port)) < 0)
		goto out_close_fd;
	return fd;

out_close_fd:
	save_errno = errno;
	close(fd);
	errno = save_errno;
	return -1;
}

int net_connect(int type, const struct sockaddr_in *addr)
{
	int save_errno;
	int fd;
	int rc;

	fd = socket(AF_INET, type, 0);
	if (fd < 0)
		return -1;
	do
		rc = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		save_errno = errno;
		close(fd);
		errno = save_errno;
		return -1;
	}
	return fd;
}

void net_addr_str(const struct sockaddr_in *addr, char *buf)
{
	char ip[INET_ADDRSTRLEN];

	if (inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof ip) == NULL)
		strcpy(ip, "?");
	snprintf(buf, NET_ADDRSTRLEN, "%s:%u", ip, (unsigned)ntohs(addr->sin_port));
}

int net_set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int net_set_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int wakeup_open(struct wakeup *w)
{
	int fds[2];
	int save_errno;

	if (pipe(fds) < 0)
		return -1;
	/* Non-blocking write end: signalling twice must never block. */
	if (net_set_nonblocking(fds[1]) < 0) {
		save_errno = errno;
		close(fds[0]);
		close(fds[1]);
		errno = save_errno;
		return -1;
	}
	w->rd = fds[0];
	w->wr = fds[1];
	return 0;
}

int wakeup_signal(struct wakeup *w)
{
	int save_errno = errno;	/* may run in a signal handler */
	ssize_t n = xwrite(w->wr, "x", 1);

	/* A full pipe is already readable: the wakeup is pending anyway. */
	if (n < 0 && errno != EAGAIN)
		return -1;
	errno = save_errno;
	return 0;
}

void wakeup_close(struct wakeup *w)
{
	close(w->rd);
	close(w->wr);
	w->rd = w->wr = -1;
}

static struct wakeup sig_wakeup = { -1, -1 };

static void sig_pipe_handler(int signo)
{
	(void)signo;
	wakeup_signal(&sig_wakeup);
}

/* Installs handler for SIGINT and SIGTERM; returns 0 or -1. */
static int sig_set_handlers(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	return sigaction(SIGTERM, &sa, NULL);
}

int sig_pipe_open(void)
{
	int save_errno;

	if (wakeup_open(&sig_wakeup) < 0)
		return -1;
	if (sig_set_handlers(sig_pipe_handler) < 0) {
		save_errno = errno;
		sig_set_handlers(SIG_DFL);
		wakeup_close(&sig_wakeup);
		errno = save_errno;
		return -1;
	}
	return sig_wakeup.rd;
}

void sig_pipe_close(void)
{
	sig_set_handlers(SIG_DFL);
	wakeup_close(&sig_wakeup);
}

int thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	int err;

	/* The new thread inherits the mask in force while it is created. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	err = pthread_sigmask(SIG_BLOCK, &block, &old);
	if (err != 0)
		return err;
	err = pthread_create(tid, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}
