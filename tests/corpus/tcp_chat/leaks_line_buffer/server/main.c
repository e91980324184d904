/*
 * tcp_chat_server -- threaded chat server (project 2)
 *
 *   tcp_chat_server PORT
 *
 * Threads:
 *   main        waits for SIGINT/SIGTERM (sigwait), then shuts down
 *   acceptor    accept() loop
 *   per member  a reader (reads lines, broadcasts) and a writer (empties
 *               the member's output queue, see members.c)
 *
 * Lines longer than MAX_MSG are cut: the first MAX_MSG bytes are relayed,
 * the rest up to the newline is thrown away.
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
#include <unistd.h>

#include "members.h"

#define MAX_MSG 4096

static int listen_fd = -1;
static int stopping = 0;                 /* stop_lock */
static int active = 0;                   /* member threads alive, stop_lock */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    struct member *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->qlock);
        while (m->qlen == 0 && !m->closing && !m->broken)
            pthread_cond_wait(&m->qcond, &m->qlock);
        if (m->broken || m->qlen == 0) {
            pthread_mutex_unlock(&m->qlock);
            break;
        }
        /* take the whole queue and send it without holding the lock */
        char *out = m->q;
        size_t n = m->qlen;
        m->q = NULL;
        m->qlen = m->qcap = 0;
        pthread_cond_broadcast(&m->qcond);   /* room again for a waiting broadcast */
        pthread_mutex_unlock(&m->qlock);

        int rc = send_all(m->fd, out, n);
        free(out);
        if (rc < 0) {
            pthread_mutex_lock(&m->qlock);
            m->broken = 1;
            shutdown(m->fd, SHUT_RDWR);
            pthread_mutex_unlock(&m->qlock);
            break;
        }
    }
    return NULL;
}

/* returns 1 when the member said quit */
static int handle_line(struct member *m, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 4 && memcmp(line, "quit", 4) == 0)
        return 1;
    if (len > 0) {
        line[len] = '\n';
        room_broadcast(m, line, len + 1);
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct member *m = arg;
    char in[2048];
    char *line = malloc(MAX_MSG + 1);
    size_t have = 0;
    int too_long = 0, quit = 0;

    while (line != NULL && !quit) {
        ssize_t n = recv(m->fd, in, sizeof in, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && !quit; i++) {
            if (in[i] == '\n') {
                quit = handle_line(m, line, have);
                have = 0;
                too_long = 0;
            } else if (have < MAX_MSG) {
                line[have++] = in[i];
            } else if (!too_long) {
                too_long = 1;
                fprintf(stderr, "fd %d: line too long, cutting it\n", m->fd);
            }
        }
    }

    room_remove(m);
    shutdown(m->fd, SHUT_RDWR);
    pthread_mutex_lock(&m->qlock);
    m->closing = 1;
    pthread_cond_broadcast(&m->qcond);
    pthread_mutex_unlock(&m->qlock);
    pthread_join(m->writer, NULL);

    close(m->fd);
    free(m->q);
    pthread_cond_destroy(&m->qcond);
    pthread_mutex_destroy(&m->qlock);
    free(m);

    pthread_mutex_lock(&stop_lock);
    active--;
    pthread_cond_signal(&all_done);
    pthread_mutex_unlock(&stop_lock);
    return NULL;
}

static struct member *new_member(int fd)
{
    struct member *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->fd = fd;
    pthread_mutex_init(&m->qlock, NULL);
    pthread_cond_init(&m->qcond, NULL);
    if (pthread_create(&m->writer, NULL, writer_main, m) != 0) {
        pthread_cond_destroy(&m->qcond);
        pthread_mutex_destroy(&m->qlock);
        free(m);
        return NULL;
    }
    return m;
}

static void *acceptor_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            pthread_mutex_lock(&stop_lock);
            int stop = stopping;
            pthread_mutex_unlock(&stop_lock);
            if (stop)
                break;
            if (errno != EINTR && errno != ECONNABORTED) {
                perror("accept");
                sleep(1);
            }
            continue;
        }
        struct member *m = new_member(fd);
        if (m == NULL) {
            close(fd);
            continue;
        }
        pthread_mutex_lock(&stop_lock);
        active++;
        pthread_mutex_unlock(&stop_lock);

        /* add before the reader runs: nothing it says can get lost */
        room_add(m);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&m->reader, &attr, reader_main, m) != 0) {
            /* no reader: do its cleanup here */
            fprintf(stderr, "no thread for fd %d\n", fd);
            shutdown(fd, SHUT_RDWR);
            room_remove(m);
            pthread_mutex_lock(&m->qlock);
            m->closing = 1;
            pthread_cond_signal(&m->qcond);
            pthread_mutex_unlock(&m->qlock);
            pthread_join(m->writer, NULL);
            close(fd);
            free(m->q);
            free(m);
            pthread_mutex_lock(&stop_lock);
            active--;
            pthread_mutex_unlock(&stop_lock);
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
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

    if (room_init() < 0)
        return 1;

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons((unsigned short)strtoul(argv[1], NULL, 10));
    if (bind(listen_fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(listen_fd, SOMAXCONN) < 0) {
        perror("bind");
        close(listen_fd);
        room_destroy();
        return 1;
    }
    socklen_t sl = sizeof sin;
    getsockname(listen_fd, (struct sockaddr *)&sin, &sl);
    printf("listening on port %u\n", ntohs(sin.sin_port));

    pthread_t acceptor;
    pthread_create(&acceptor, NULL, acceptor_main, NULL);

    int sig;
    sigwait(&stop_set, &sig);
    printf("signal %d: shutting down\n", sig);

    pthread_mutex_lock(&stop_lock);
    stopping = 1;
    pthread_mutex_unlock(&stop_lock);
    shutdown(listen_fd, SHUT_RDWR);
    pthread_join(acceptor, NULL);
    close(listen_fd);

    int n = room_kick_all();
    printf("disconnecting %d member(s)\n", n);
    pthread_mutex_lock(&stop_lock);
    while (active > 0)
        pthread_cond_wait(&all_done, &stop_lock);
    pthread_mutex_unlock(&stop_lock);

    room_destroy();
    return 0;
}
