/*
 * A minimal thread-per-client TCP chat server with compile-time defects:
 * the mutants the valgrind checks (memcheck, helgrind, DRD) must catch.
 *
 *   gcc -g -pthread [-DMUTANT_xxx] c_chat_server.c -o tcp_chat_server
 *
 * Without a MUTANT_ define it is correct: every allocation freed, every
 * socket closed, every thread joined, exit 0 on SIGINT/SIGTERM.
 *   MUTANT_LEAK         the per-client state is never freed
 *   MUTANT_FD_LEAK      the listening socket is left open at exit
 *   MUTANT_EXIT1        exits 1 on SIGINT/SIGTERM
 *   MUTANT_NO_SIGINT    no SIGINT handler: SIGINT kills it
 *   MUTANT_RACE         broadcasts without the lock around the client list
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 128
#define LINE_MAX_LEN 2048

struct slot {
	int fd;              /* -1 once the member has left */
	pthread_t thread;
	int started;
};

struct client {
	int fd;
	char *buf;
};

static struct slot slots[MAX_CLIENTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

/* Send all of buf; -1 on error. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Relay line (with its '\n') to every member but `from`. */
static void broadcast(int from, const char *line, size_t len)
{
#ifndef MUTANT_RACE
	pthread_mutex_lock(&lock);
#endif
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (slots[i].fd >= 0 && slots[i].fd != from)
			write_all(slots[i].fd, line, len);
#ifndef MUTANT_RACE
	pthread_mutex_unlock(&lock);
#endif
}

/* Handle one complete line (without '\n'); 1 when the member quits. */
static int handle_line(int fd, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 4 && memcmp(line, "quit", 4) == 0)
		return 1;
	if (len == 0)
		return 0;
	line[len] = '\n';
	broadcast(fd, line, len + 1);
	return 0;
}

static void *serve_client(void *arg)
{
	struct client *c = arg;
	size_t used = 0;
	int slot_index = -1;

	for (;;) {
		ssize_t n = recv(c->fd, c->buf + used, LINE_MAX_LEN - 1 - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		char *start = c->buf, *nl;
		int quit = 0;
		while (!quit && (nl = memchr(start, '\n', used - (size_t)(start - c->buf))))
		{
			quit = handle_line(c->fd, start, (size_t)(nl - start));
			start = nl + 1;
		}
		if (quit)
			break;
		used -= (size_t)(start - c->buf);
		memmove(c->buf, start, used);
		if (used == LINE_MAX_LEN - 1)
			used = 0;   /* an overlong line: dropped */
	}
	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (slots[i].fd == c->fd) {
			slots[i].fd = -1;
			slot_index = i;
		}
	close(c->fd);
	pthread_mutex_unlock(&lock);
	(void)slot_index;
#ifndef MUTANT_LEAK
	free(c->buf);
	free(c);
#endif
	return NULL;
}

static int add_client(int fd)
{
	struct client *c = malloc(sizeof *c);
	if (!c)
		return -1;
	c->fd = fd;
	c->buf = malloc(LINE_MAX_LEN);
	if (!c->buf) {
		free(c);
		return -1;
	}
	pthread_mutex_lock(&lock);
	int i;
	for (i = 0; i < MAX_CLIENTS && slots[i].started; i++)
		;
	if (i == MAX_CLIENTS) {
		pthread_mutex_unlock(&lock);
		free(c->buf);
		free(c);
		return -1;
	}
	slots[i].fd = fd;
	slots[i].started = 1;
	if (pthread_create(&slots[i].thread, NULL, serve_client, c) != 0) {
		slots[i].fd = -1;
		slots[i].started = 0;
		pthread_mutex_unlock(&lock);
		free(c->buf);
		free(c);
		return -1;
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		slots[i].fd = -1;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
#ifndef MUTANT_NO_SIGINT
	sigaction(SIGINT, &sa, NULL);
#endif
	/* Signals reach only ppoll() in main: client threads inherit the block. */
	sigset_t block, orig;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
#ifndef MUTANT_NO_SIGINT
	sigaddset(&block, SIGINT);
#endif
	pthread_sigmask(SIG_BLOCK, &block, &orig);

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
		perror("listen");
		close(lfd);
		return 1;
	}
	printf("listening on port %s\n", argv[1]);
	fflush(stdout);

	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	while (!stopping) {
		int r = ppoll(&pfd, 1, NULL, &orig);
		if (r < 0)
			continue;   /* EINTR: the loop condition sees the signal */
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0 && add_client(fd) < 0)
			close(fd);
	}

	/* Wake every client thread (recv returns 0), then join them all. */
	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (slots[i].fd >= 0)
			shutdown(slots[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (slots[i].started)
			pthread_join(slots[i].thread, NULL);
#ifndef MUTANT_FD_LEAK
	close(lfd);
#endif
	fprintf(stderr, "server stopped\n");
#ifdef MUTANT_EXIT1
	return 1;
#else
	return 0;
#endif
}
