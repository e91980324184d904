/*
 * select_chat_server PORT
 *
 * select() waits on the listening socket and on a pipe the signal handler
 * writes to. Every client then gets a worker thread of its own that reads
 * its lines with a blocking recv() (simpler than juggling buffers for
 * everyone in one loop), and relays them to the others under a lock.
 *
 * Slow readers: every client socket has a 2 s send timeout; a client whose
 * send() times out is dropped.
 * Shutdown: the main loop shuts down every client socket, waits until all
 * workers have cleaned up, then closes the rest.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_LINE 4096

struct client {
	int fd;
	int dropped;             /* send timed out: the worker should exit */
	struct client *next;
};

static struct client *clients = NULL;
static int nworkers = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;

static int wake_pipe[2];
static int listen_fd, spare_fd;

static void on_signal(int sig)
{
	int saved = errno;
	char b = (char)sig;
	ssize_t r = write(wake_pipe[1], &b, 1);
	(void)r;
	errno = saved;
}

/* send all of buf; returns -1 on error or timeout */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* called with lock held; msg ends with '\n' */
static void relay(struct client *from, const char *msg, size_t len)
{
	for (struct client *c = clients; c != NULL; c = c->next) {
		if (c == from || c->dropped)
			continue;
		if (send_all(c->fd, msg, len) < 0) {
			fprintf(stderr, "fd %d not reading, dropping it\n", c->fd);
			c->dropped = 1;
			shutdown(c->fd, SHUT_RDWR);    /* its worker sees EOF */
		}
	}
}

/* returns 1 if the client said quit */
static int got_line(struct client *c, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 4 && memcmp(line, "quit", 4) == 0)
		return 1;
	if (len == 0)
		return 0;
	line[len] = '\n';
	pthread_mutex_lock(&lock);
	relay(c, line, len + 1);
	pthread_mutex_unlock(&lock);
	return 0;
}

static void *worker(void *arg)
{
	struct client *c = arg;
	char line[MAX_LINE + 1];
	size_t len = 0;
	int skipping = 0;
	char buf[8192];
	int done = 0;

	while (!done) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && !done; i++) {
			if (buf[i] == '\n') {
				if (!skipping)
					done = got_line(c, line, len);
				len = 0;
				skipping = 0;
			} else if (skipping) {
				continue;
			} else if (len == MAX_LINE) {
				skipping = 1;     /* too long: drop the whole line */
			} else {
				line[len++] = buf[i];
			}
		}
	}

	pthread_mutex_lock(&lock);
	for (struct client **pp = &clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	close(c->fd);
	free(c);

	pthread_mutex_lock(&lock);
	nworkers--;
	pthread_cond_signal(&all_done);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void new_client(void)
{
	int fd = accept(listen_fd, NULL, NULL);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			/* no fds left: use the spare one to accept and hang up */
			close(spare_fd);
			fd = accept(listen_fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			spare_fd = open("/dev/null", O_RDONLY);
			fprintf(stderr, "out of fds, refused a client\n");
		}
		return;
	}
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

	struct client *c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;

	pthread_mutex_lock(&lock);
	c->next = clients;
	clients = c;
	nworkers++;
	pthread_mutex_unlock(&lock);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t tid;
	int err = pthread_create(&tid, &attr, worker, c);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(err));
		pthread_mutex_lock(&lock);
		clients = c->next;       /* still at the front, we just put it there */
		nworkers--;
		pthread_mutex_unlock(&lock);
		close(fd);
		free(c);
		return;
	}
	printf("client on fd %d\n", fd);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 1;
	}
	char *end;
	long port = strtol(argv[1], &end, 10);
	if (*end != '\0' || end == argv[1] || port < 0 || port > 65535) {
		fprintf(stderr, "bad port %s\n", argv[1]);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (pipe(wake_pipe) < 0) {
		perror("pipe");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	int on = 1;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	addr.sin_port = htons((unsigned short)port);
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 128) < 0) {
		perror("bind/listen");
		return 1;
	}
	socklen_t alen = sizeof addr;
	getsockname(listen_fd, (struct sockaddr *)&addr, &alen);
	printf("listening on port %d\n", ntohs(addr.sin_port));
	spare_fd = open("/dev/null", O_RDONLY);

	for (;;) {
		fd_set rset;
		FD_ZERO(&rset);
		FD_SET(listen_fd, &rset);
		FD_SET(wake_pipe[0], &rset);
		int maxfd = listen_fd > wake_pipe[0] ? listen_fd : wake_pipe[0];
		if (select(maxfd + 1, &rset, NULL, NULL, NULL) < 0) {
			if (errno == EINTR)
				continue;
			perror("select");
			break;
		}
		if (FD_ISSET(wake_pipe[0], &rset))
			break;
		if (FD_ISSET(listen_fd, &rset))
			new_client();
	}

	printf("shutting down\n");
	pthread_mutex_lock(&lock);
	for (struct client *c = clients; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (nworkers > 0)
		pthread_cond_wait(&all_done, &lock);
	pthread_mutex_unlock(&lock);

	close(listen_fd);
	close(spare_fd);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	return 0;
}
