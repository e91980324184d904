/*
 * tcp_chat_server.c - threaded TCP chat server
 *
 *   usage: ./tcp_chat_server PORT
 *
 * One thread per client. Every client is in a linked list that all
 * threads share, so every use of the list (add, remove, broadcast) is
 * done while holding list_lock.
 *
 * Threads:
 *   main      - blocks SIGINT/SIGTERM and waits for them with sigwait()
 *   acceptor  - accept() loop, starts one client thread per connection
 *   client    - reads lines from its socket and broadcasts them
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_LINE 4096          /* longest line we keep; longer ones are dropped */
#define SEND_TIMEOUT_SEC 2     /* a client that does not read for this long is dropped */

struct client {
    int fd;
    int dead;                  /* set when a send to it failed: skip it from now on */
    struct client *next;
};

static struct client *clients = NULL;      /* protected by list_lock */
static int nclients = 0;                   /* protected by list_lock */
static int stopping = 0;                   /* protected by list_lock */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_gone = PTHREAD_COND_INITIALIZER;

static int listen_fd = -1;

/* send all of buf; returns 0 on success, -1 on error or timeout */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;         /* EAGAIN here means SO_SNDTIMEO expired */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* send msg (already ending in \n) to everybody except from. Takes the lock,
 * so two broadcasts never mix their bytes at a receiver. */
static void broadcast(struct client *from, const char *msg, size_t len)
{
    pthread_mutex_lock(&list_lock);
    for (struct client *c = clients; c != NULL; c = c->next) {
        if (c == from || c->dead)
            continue;
        if (send_all(c->fd, msg, len) < 0) {
            /* slow or gone: drop it. shutdown() wakes its thread up, and
             * that thread removes it from the list and closes the fd. */
            fprintf(stderr, "dropping client fd %d\n", c->fd);
            c->dead = 1;
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&list_lock);
}

static void remove_client(struct client *me)
{
    pthread_mutex_lock(&list_lock);
    for (struct client **p = &clients; *p != NULL; p = &(*p)->next) {
        if (*p == me) {
            *p = me->next;
            break;
        }
    }
    pthread_mutex_unlock(&list_lock);

    close(me->fd);
    free(me);

    /* only count it as gone once everything is freed, so main can exit */
    pthread_mutex_lock(&list_lock);
    nclients--;
    pthread_cond_broadcast(&all_gone);
    pthread_mutex_unlock(&list_lock);
}

/* handle one complete line (without the \n). returns 1 if the client quit */
static int handle_line(struct client *me, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 4 && memcmp(line, "quit", 4) == 0)
        return 1;
    if (len == 0)
        return 0               /* empty messages are not relayed */
    line[len] = '\n';          /* there is always room: see client_thread */
    broadcast(me, line, len + 1);
    return 0;
}

static void *client_thread(void *arg)
{
    struct client *me = arg;
    char buf[MAX_LINE + 1];    /* +1 so handle_line can put the \n back */
    size_t used = 0;
    int skipping = 0;          /* inside an overlong line: drop until \n */
    int quit = 0;

    while (!quit) {
        ssize_t n = recv(me->fd, buf + used, MAX_LINE - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;             /* end of stream, reset, or shutdown by us */
        used += (size_t)n;

        size_t start = 0;
        for (size_t i = 0; i < used && !quit; i++) {
            if (buf[i] != '\n')
                continue;
            if (!skipping)
                quit = handle_line(me, buf + start, i - start);
            skipping = 0;
            start = i + 1;
        }
        if (quit)
            break;             /* whatever came after quit is thrown away */

        /* keep the partial line at the front of the buffer */
        memmove(buf, buf + start, used - start);
        used -= start;
        if (used == MAX_LINE) {
            /* too long for us: forget it, and the rest of it up to the \n */
            used = 0;
            skipping = 1;
        }
    }
    /* a partial line left in buf is simply forgotten */
    remove_client(me);
    return NULL;
}

static void *acceptor_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            pthread_mutex_lock(&list_lock);
            int done = stopping;
            pthread_mutex_unlock(&list_lock);
            if (done)
                break;         /* main shut the listening socket down */
            perror("accept");
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                sleep(1);      /* don't spin; try again later */
            continue;
        }

        struct timeval tv = { .tv_sec = SEND_TIMEOUT_SEC, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

        struct client *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;

        pthread_mutex_lock(&list_lock);
        if (stopping) {
            pthread_mutex_unlock(&list_lock);
            close(fd);
            free(c);
            break;
        }
        c->next = clients;
        clients = c;
        nclients++;
        pthread_mutex_unlock(&list_lock);

        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, client_thread, c) != 0) {
            fprintf(stderr, "cannot start a thread for fd %d\n", fd);
            remove_client(c);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
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
    signal(SIGPIPE, SIG_IGN);

    /* block the stop signals in every thread; main waits for them below */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) {
        perror("socket");
        return 1;
    }
    int yes = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons((unsigned short)port);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 128) < 0) {
        perror("bind/listen");
        close(listen_fd);
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &alen);
    printf("listening on port %d\n", ntohs(addr.sin_port));

    pthread_t acceptor;
    if (pthread_create(&acceptor, NULL, acceptor_thread, NULL) != 0) {
        fprintf(stderr, "cannot start the acceptor thread\n");
        close(listen_fd);
        return 1;
    }

    int sig;
    sigwait(&stop_signals, &sig);
    printf("got signal %d, shutting down\n", sig);

    /* 1. stop accepting: shutdown() makes the blocked accept() return */
    pthread_mutex_lock(&list_lock);
    stopping = 1;
    pthread_mutex_unlock(&list_lock);
    shutdown(listen_fd, SHUT_RDWR);
    pthread_join(acceptor, NULL);
    close(listen_fd);

    /* 2. wake every client thread up; each one cleans up after itself */
    pthread_mutex_lock(&list_lock);
    for (struct client *c = clients; c != NULL; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (nclients > 0)
        pthread_cond_wait(&all_gone, &list_lock);
    pthread_mutex_unlock(&list_lock);

    printf("bye\n");
    return 0;
}
