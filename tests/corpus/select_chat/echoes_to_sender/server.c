/*
 * select_chat_server PORT  --  chat server, single thread, select()
 *
 * Clients are kept in a linked list (clientlist.c). Every time round the
 * loop we rebuild the fd sets from the list and work out the biggest fd
 * again, so nothing has to be fixed up when a client leaves.
 *
 * Signals: the handler writes a byte into a pipe whose read end is in the
 * read set (the "self-pipe trick"), so select() wakes up.
 *
 * Too many clients: we ask getrlimit() how many fds we may open and keep a
 * few for ourselves; once we're full, new connections are accepted and
 * closed straight away.
 */
#define _POSIX_C_SOURCE 200809L

#include "clientlist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESERVED_FDS 8   /* stdin/out/err, listener, pipe, some slack */

static int sigPipe[2] = { -1, -1 };

static void handle_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    if (write(sigPipe[1], &c, 1) < 0) {
        /* pipe full: a byte is already waiting, that's enough */
    }
    errno = saved;
}

static int make_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int maxClients(void)
{
    struct rlimit rl;
    long limit = FD_SETSIZE;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && (long)rl.rlim_cur < limit)
        limit = (long)rl.rlim_cur;
    return (int)(limit - RESERVED_FDS);
}

/* send a message to everyone in the chat */
static void sendToAll(ClientList *list, const char *msg, size_t len)
{
    for (Client *c = list->head; c; c = c->next) {
        if (c->closing)
            continue;
        if (client_queue(c, msg, len) < 0) {
            printf("client on fd %d too slow, kicking it\n", c->sock);
            c->closing = 1;
        }
    }
}

/* A complete line arrived from c. */
static void gotLine(ClientList *list, Client *c)
{
    size_t len = c->inLen;
    if (len > 0 && c->inBuf[len - 1] == '\r')
        len--;
    if (len == 4 && memcmp(c->inBuf, "quit", 4) == 0) {
        printf("fd %d said quit\n", c->sock);
        c->closing = 1;
    } else if (len > 0) {
        sendToAll(list, c->inBuf, len);
    }
    c->inLen = 0;
    c->truncating = 0;
}

static void readFrom(ClientList *list, Client *c)
{
    char buf[16384];
    ssize_t n = recv(c->sock, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        c->closing = 1;    /* gone; drop whatever half line it had */
        return;
    }
    if (n < 0)
        return;

    char *p = buf;
    size_t left = (size_t)n;
    while (left > 0 && !c->closing) {
        char *nl = memchr(p, '\n', left);
        size_t part = nl ? (size_t)(nl - p) : left;
        if (client_append_input(c, p, part) < 0) {
            c->closing = 1;
            return;
        }
        if (!nl)
            break;
        gotLine(list, c);
        p = nl + 1;
        left -= part + 1;
    }
}

static void acceptNew(ClientList *list, int listener, int limit)
{
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            perror("accept");
        return;
    }
    if (list->count >= limit || fd >= FD_SETSIZE) {
        printf("full (%d clients), turning fd %d away\n", list->count, fd);
        close(fd);
        return;
    }
    if (make_nonblocking(fd) < 0 || clientlist_add(list, fd) == NULL) {
        close(fd);
        return;
    }
    printf("new client on fd %d (%d online)\n", fd, list->count);
}

static int setupListener(const char *portStr)
{
    char *end;
    long port = strtol(portStr, &end, 10);
    if (*portStr == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "invalid port '%s'\n", portStr);
        return -1;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        perror("socket");
        return -1;
    }
    int on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("bind");
        close(s);
        return -1;
    }
    if (listen(s, 64) < 0 || make_nonblocking(s) < 0) {
        perror("listen");
        close(s);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("listening on port %d\n", ntohs(a.sin_port));
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "Usage: %s PORT\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (pipe(sigPipe) < 0) {
        perror("pipe");
        return 1;
    }
    make_nonblocking(sigPipe[0]);
    make_nonblocking(sigPipe[1]);
    fcntl(sigPipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(sigPipe[1], F_SETFD, FD_CLOEXEC);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handle_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    int listener = setupListener(argv[1]);
    if (listener < 0) {
        close(sigPipe[0]);
        close(sigPipe[1]);
        return 1;
    }
    int limit = maxClients();
    printf("room for %d clients\n", limit);

    ClientList list = { NULL, 0 };
    int running = 1;

    while (running) {
        fd_set readSet, writeSet;
        FD_ZERO(&readSet);
        FD_ZERO(&writeSet);
        FD_SET(listener, &readSet);
        FD_SET(sigPipe[0], &readSet);
        int maxFd = listener > sigPipe[0] ? listener : sigPipe[0];
        for (Client *c = list.head; c; c = c->next) {
            FD_SET(c->sock, &readSet);
            if (c->outHead)
                FD_SET(c->sock, &writeSet);
            if (c->sock > maxFd)
                maxFd = c->sock;
        }

        if (select(maxFd + 1, &readSet, &writeSet, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;   /* the pipe will tell us if it was SIGINT/SIGTERM */
            perror("select");
            break;
        }

        if (FD_ISSET(sigPipe[0], &readSet)) {
            printf("got a signal, shutting down\n");
            running = 0;
            break;
        }

        for (Client *c = list.head; c; c = c->next) {
            if (!c->closing && FD_ISSET(c->sock, &readSet))
                readFrom(&list, c);
        }
        /* send right away; whatever doesn't fit waits for the write set */
        for (Client *c = list.head; c; c = c->next) {
            if (!c->closing && c->outHead && client_flush(c) < 0)
                c->closing = 1;
        }
        clientlist_remove_closing(&list);

        if (FD_ISSET(listener, &readSet)) {
            /* several may be waiting; take them all */
            for (int i = 0; i < 32; i++) {
                int before = list.count;
                errno = 0;
                acceptNew(&list, listener, limit);
                if (list.count == before && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
            }
        }
    }

    clientlist_free_all(&list);
    close(listener);
    close(sigPipe[0]);
    close(sigPipe[1]);
    printf("bye\n");
    return 0;
}
