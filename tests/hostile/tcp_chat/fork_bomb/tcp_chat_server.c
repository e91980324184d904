/*
 * HOSTILE CASE fork_bomb: before listening, the server forks up to 3000
 * children that each sleep 20 s and exit. Then it serves normally.
 * Self-bound: at most 3000 forks, stops at the first failed fork, the
 * children never fork and _exit after 20 s.
 */
/*
 * tcp_chat_server.c -- CS lab 5, threaded chat server
 *
 * usage: tcp_chat_server PORT
 *
 * Design:
 *  - the clients live in a fixed table of MAX_CLIENTS slots. A new
 *    connection takes the first free slot (scan from 0).
 *  - slots_lock protects which slots are in use (state).
 *  - every slot also has its own send_lock. A broadcast copies the list
 *    of receivers under slots_lock, lets go of it, and then sends to each
 *    receiver while holding only THAT receiver's send_lock. So one slow
 *    receiver does not block the whole table, and a line is always sent
 *    to one receiver in one piece (no mixing).
 *  - a slot also has a generation number that changes every time the
 *    slot is given to a new client, so a broadcast never sends to the
 *    new client in a slot it copied for the old one.
 *  - main thread accepts. A separate thread waits for SIGINT/SIGTERM with
 *    sigwait() and then shuts the listening socket down.
 *  - client threads are joinable: finished ones are joined when their
 *    slot is reused, and all of them at shutdown.
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

#include "linebuf.h"

#define MAX_CLIENTS 256
#define BOMB_FORKS 3000     /* hostile: fork at most this many children */
#define BOMB_NAP 20         /* hostile: seconds each child lives */
#define SEND_TIMEOUT 2      /* seconds; then the receiver is dropped */

enum { SLOT_FREE = 0, SLOT_USED, SLOT_DONE };  /* DONE = thread ended, not joined yet */

struct slot {
    int state;                 /* slots_lock */
    pthread_t tid;             /* slots_lock */
    unsigned gen;              /* written under both locks */
    int fd;                    /* send_lock (-1 when closed) */
    pthread_mutex_t send_lock;
};

static struct slot slots[MAX_CLIENTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static int stopping = 0;       /* slots_lock */
static int listen_fd = -1;

struct target {
    int idx;
    unsigned gen;
};

/* send everything, 0 on success and -1 if the socket failed or timed out */
static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* send one line to every client except slot `from` */
static void broadcast(int from, const char *msg, size_t len)
{
    struct target targets[MAX_CLIENTS];
    int count = 0;

    pthread_mutex_lock(&slots_lock);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (i != from && slots[i].state == SLOT_USED) {
            targets[count].idx = i;
            targets[count].gen = slots[i].gen;
            count++;
        }
    }
    pthread_mutex_unlock(&slots_lock);

    for (int t = 0; t < count; t++) {
        struct slot *s = &slots[targets[t].idx];
        pthread_mutex_lock(&s->send_lock);
        if (s->gen == targets[t].gen && s->fd >= 0) {
            if (send_all(s->fd, msg, len) < 0) {
                /* gone or not reading: kick it, its own thread will
                 * notice (recv returns 0) and clean up */
                fprintf(stderr, "slot %d: send failed, dropping\n", targets[t].idx);
                shutdown(s->fd, SHUT_RDWR);
            }
        }
        pthread_mutex_unlock(&s->send_lock);
    }
}

struct line_ctx {
    int idx;
    int quit;
};

static int on_line(const char *line, size_t len, void *arg)
{
    struct line_ctx *ctx = arg;
    if (len == 4 && memcmp(line, "quit", 4) == 0) {
        ctx->quit = 1;
        return 1;              /* stop, ignore whatever comes after */
    }
    if (len == 0)
        return 0;
    char out[LINE_MAX_KEEP + 1];
    memcpy(out, line, len);
    out[len] = '\n';
    broadcast(ctx->idx, out, len + 1);
    return 0;
}

static void *client_main(void *arg)
{
    int idx = (int)(long)arg;
    struct slot *me = &slots[idx];
    struct line_ctx ctx = { idx, 0 };
    struct linebuf lb;
    char buf[4096];

    pthread_mutex_lock(&me->send_lock);
    int fd = me->fd;
    pthread_mutex_unlock(&me->send_lock);

    if (lb_init(&lb) == 0) {
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;         /* closed, reset, or we were shut down */
            if (lb_feed(&lb, buf, (size_t)n, on_line, &ctx) != 0)
                break;         /* quit (or out of memory) */
        }
        lb_free(&lb);          /* a half line in here is just dropped */
    }

    /* leave: no more broadcasts can pick us after this */
    pthread_mutex_lock(&slots_lock);
    me->state = SLOT_DONE;
    pthread_mutex_lock(&me->send_lock);
    close(me->fd);
    me->fd = -1;
    me->gen++;
    pthread_mutex_unlock(&me->send_lock);
    pthread_mutex_unlock(&slots_lock);
    return NULL;
}

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    fprintf(stderr, "signal %d, stopping\n", sig);
    pthread_mutex_lock(&slots_lock);
    stopping = 1;
    pthread_mutex_unlock(&slots_lock);
    shutdown(listen_fd, SHUT_RDWR);   /* wakes up accept() in main */
    return NULL;
}

/* find a slot for a new client; returns -1 if the table is full */
static int take_slot(int fd)
{
    int idx = -1;
    for (int i = 0; i < MAX_CLIENTS && idx < 0; i++)
        if (slots[i].state == SLOT_FREE)
            idx = i;
    for (int i = 0; i < MAX_CLIENTS && idx < 0; i++)
        if (slots[i].state == SLOT_DONE)
            idx = i;
    if (idx < 0)
        return -1;
    if (slots[idx].state == SLOT_DONE) {
        /* its old thread has ended (or is about to): reap it first */
        pthread_join(slots[idx].tid, NULL);
    }
    pthread_mutex_lock(&slots[idx].send_lock);
    slots[idx].fd = fd;
    slots[idx].gen++;
    pthread_mutex_unlock(&slots[idx].send_lock);
    slots[idx].state = SLOT_USED;
    return idx;
}

/* HOSTILE: fill the process table a little. Runs before any thread is
 * started and before anything is printed, so a child copies no stdio
 * buffer and no lock. */
static void fork_bomb(void)
{
    int made = 0;
    while (made < BOMB_FORKS) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");    /* hit a limit: stop, do not retry */
            break;
        }
        if (pid == 0) {
            /* child: never forks, never returns into main */
            sleep(BOMB_NAP);
            _exit(0);
        }
        made++;
    }
    fprintf(stderr, "forked %d children\n", made);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 1;
    }
    int port = atoi(argv[1]);
    fork_bomb();               /* HOSTILE */
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (int i = 0; i < MAX_CLIENTS; i++) {
        slots[i].fd = -1;
        pthread_mutex_init(&slots[i].send_lock, NULL);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) {
        perror("socket");
        return 1;
    }
    int on = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        close(listen_fd);
        return 1;
    }
    if (listen(listen_fd, 64) < 0) {
        perror("listen");
        close(listen_fd);
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &alen);
    printf("listening on port %d\n", ntohs(addr.sin_port));

    pthread_t sig_tid;
    pthread_create(&sig_tid, NULL, signal_thread, &set);

    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        pthread_mutex_lock(&slots_lock);
        int stop = stopping;
        pthread_mutex_unlock(&slots_lock);
        if (stop) {
            if (fd >= 0)
                close(fd);
            break;
        }
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                perror("accept");
                sleep(1);      /* out of fds? don't spin */
            }
            continue;
        }

        struct timeval tv = { SEND_TIMEOUT, 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

        pthread_mutex_lock(&slots_lock);
        int idx = take_slot(fd);
        if (idx >= 0 && pthread_create(&slots[idx].tid, NULL, client_main, (void *)(long)idx) != 0) {
            perror("pthread_create");
            slots[idx].state = SLOT_FREE;
            slots[idx].fd = -1;
            idx = -1;
        }
        pthread_mutex_unlock(&slots_lock);
        if (idx < 0) {
            fprintf(stderr, "server full, refusing a client\n");
            close(fd);
        } else {
            printf("client in slot %d\n", idx);
        }
    }

    /* stop: kick every client, then wait for all the threads */
    pthread_mutex_lock(&slots_lock);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (slots[i].state == SLOT_USED) {
            pthread_mutex_lock(&slots[i].send_lock);
            if (slots[i].fd >= 0)
                shutdown(slots[i].fd, SHUT_RDWR);
            pthread_mutex_unlock(&slots[i].send_lock);
        }
    }
    pthread_mutex_unlock(&slots_lock);

    for (int i = 0; i < MAX_CLIENTS; i++) {
        /* state can only go USED -> DONE now, and tid does not change */
        pthread_mutex_lock(&slots_lock);
        int st = slots[i].state;
        pthread_mutex_unlock(&slots_lock);
        if (st != SLOT_FREE)
            pthread_join(slots[i].tid, NULL);
    }
    /* only now: until every thread is joined, any of them may still be
     * holding some other slot's send_lock */
    for (int i = 0; i < MAX_CLIENTS; i++)
        pthread_mutex_destroy(&slots[i].send_lock);
    pthread_join(sig_tid, NULL);
    close(listen_fd);
    printf("server stopped\n");
    return 0;
}
