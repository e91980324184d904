/*
 * udp_chat_server.c - UDP group chat server
 *
 *   usage: ./udp_chat_server PORT
 *
 * One socket, one thread. The server remembers the address (IP and port)
 * of everyone who has sent it a datagram; each message is sent on to
 * every other member. "quit" takes the sender off the list.
 *
 * SIGINT/SIGTERM: they are blocked except while we wait in ppoll(), so a
 * signal can never slip in between "check the flag" and "wait".
 */
#define _GNU_SOURCE            /* ppoll */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DATAGRAM 65536

struct members {
    struct sockaddr_in *addr;
    size_t count;
    size_t cap;
};

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* index of addr in the list, or -1 */
static long find_member(const struct members *m, const struct sockaddr_in *addr)
{
    for (size_t i = 0; i < m->count; i++)
        if (same_addr(&m->addr[i], addr))
            return (long)i;
    return -1;
}

/* add addr to the list (growing it if needed); 0 ok, -1 out of memory */
static int add_member(struct members *m, const struct sockaddr_in *addr)
{
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct sockaddr_in *bigger = realloc(m->addr, cap * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        m->addr = bigger;
        m->cap = cap;
    }
    m->addr[m->count++] = *addr;
    return 0;
}

static void remove_member(struct members *m, long i)
{
    m->addr[i] = m->addr[m->count - 1];   /* order does not matter */
    m->count--;
}

static void handle_datagram(int fd, struct members *m, char *buf, size_t len,
                            const struct sockaddr_in *from)
{
    /* a trailing \n or \r\n is not part of the message */
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;

    long me = find_member(m, from);
    if (len == 4 && memcmp(buf, "quit", 4) == 0) {
        if (me >= 0) {
            printf("%s:%d left\n", inet_ntoa(from->sin_addr), ntohs(from->sin_port));
            remove_member(m, me);
        }
        return;    /* a stranger's quit is ignored */
    }
    if (me < 0) {
        if (add_member(m, from) < 0) {
            fprintf(stderr, "out of memory, ignoring a new member\n");
            return;
        }
        printf("%s:%d joined\n", inet_ntoa(from->sin_addr), ntohs(from->sin_port));
    }
    if (len == 0)
        return;    /* empty: joins, relays nothing */

    for (size_t i = 0; i < m->count; i++) {
        if (same_addr(&m->addr[i], from))
            continue;
        if (sendto(fd, buf, len, 0, (const struct sockaddr *)&m->addr[i], sizeof m->addr[i]) < 0)
            perror("sendto");  /* one bad member must not stop the others */
    }
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

    sigset_t stop_signals, during_wait;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, &during_wait);
    sigdelset(&during_wait, SIGINT);
    sigdelset(&during_wait, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        close(fd);
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    printf("listening on port %d\n", ntohs(addr.sin_port));

    char *buf = malloc(MAX_DATAGRAM);
    if (buf == NULL) {
        perror("malloc");
        close(fd);
        return 1;
    }
    struct members m = { NULL, 0, 0 };

    while (!stop_requested) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = ppoll(&pfd, 1, NULL, &during_wait);
        if (r < 0) {
            if (errno == EINTR)
                continue;      /* the loop condition sees the flag */
            perror("ppoll");
            break;
        }
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, buf, MAX_DATAGRAM, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            /* EAGAIN: nothing after all; ECONNREFUSED: an old ICMP error */
            continue;
        }
        handle_datagram(fd, &m, buf, (size_t)n, &from);
    }

    printf("shutting down\n");
    free(m.addr);
    free(buf);
    close(fd);
    return 0;
}
