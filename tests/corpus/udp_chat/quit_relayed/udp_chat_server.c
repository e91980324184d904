/*
 * UDP group chat server -- networks lab 4
 *
 * usage: udp_chat_server PORT
 *
 * Members are kept in a singly linked list (we don't know how many people
 * will join, so no fixed array). The main loop poll()s two descriptors:
 * the UDP socket and the read end of a pipe. The SIGINT/SIGTERM handler
 * writes one byte into the pipe ("self-pipe trick"), so poll() wakes up
 * even if the signal arrives just before we call it.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct member {
    struct sockaddr_in addr;
    struct member *next;
};

static int wakeup_pipe[2] = { -1, -1 };

static void handle_signal(int sig)
{
    int saved = errno;          /* write() may change errno */
    char c = (char)sig;
    ssize_t r = write(wakeup_pipe[1], &c, 1);
    (void)r;                    /* pipe full = a wakeup is already pending */
    errno = saved;
}

static int same_address(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

static struct member *find_member(struct member *list, const struct sockaddr_in *addr)
{
    for (struct member *m = list; m != NULL; m = m->next)
        if (same_address(&m->addr, addr))
            return m;
    return NULL;
}

/* appends a new member at the tail; returns 0, or -1 if malloc fails */
static int add_member(struct member **list, const struct sockaddr_in *addr)
{
    struct member *m = malloc(sizeof *m);
    if (m == NULL)
        return -1;
    m->addr = *addr;
    m->next = NULL;
    struct member **tail = list;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = m;
    return 0;
}

/* unlinks and frees the member with this address, if there is one */
static void remove_member(struct member **list, const struct sockaddr_in *addr)
{
    for (struct member **pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (same_address(&(*pp)->addr, addr)) {
            struct member *gone = *pp;
            *pp = gone->next;
            free(gone);
            return;
        }
    }
}

static void free_members(struct member *list)
{
    while (list != NULL) {
        struct member *next = list->next;
        free(list);
        list = next;
    }
}

static void relay(int sock, struct member *list, const struct sockaddr_in *sender,
                  const char *msg, size_t len)
{
    for (struct member *m = list; m != NULL; m = m->next) {
        if (same_address(&m->addr, sender))
            continue;           /* don't send it back to whoever said it */
        if (sendto(sock, msg, len, 0, (const struct sockaddr *)&m->addr, sizeof m->addr) < 0)
            perror("sendto");
    }
}

static int make_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 1;
    }
    int port = atoi(argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (pipe(wakeup_pipe) < 0) {
        perror("pipe");
        return 1;
    }
    make_nonblocking(wakeup_pipe[0]);
    make_nonblocking(wakeup_pipe[1]);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handle_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;   /* fine here: the pipe wakes us, not EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0) {
        perror("socket");
        close(wakeup_pipe[0]);
        close(wakeup_pipe[1]);
        return 1;
    }
    struct sockaddr_in me;
    memset(&me, 0, sizeof me);
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_ANY);
    me.sin_port = htons(port);
    if (bind(sock, (struct sockaddr *)&me, sizeof me) < 0) {
        perror("bind");
        close(sock);
        close(wakeup_pipe[0]);
        close(wakeup_pipe[1]);
        return 1;
    }
    socklen_t melen = sizeof me;
    getsockname(sock, (struct sockaddr *)&me, &melen);
    printf("listening on port %d\n", ntohs(me.sin_port));

    char *buf = malloc(BUF_SIZE);
    struct member *members = NULL;
    int running = (buf != NULL);

    while (running) {
        struct pollfd fds[2];
        fds[0].fd = sock;
        fds[0].events = POLLIN;
        fds[1].fd = wakeup_pipe[0];
        fds[1].events = POLLIN;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        if (fds[1].revents & POLLIN) {
            printf("got a signal, shutting down\n");
            running = 0;
            continue;
        }
        if (!(fds[0].revents & POLLIN))
            continue;

        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(sock, buf, BUF_SIZE, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno != EINTR && errno != EAGAIN)
                perror("recvfrom");
            continue;
        }
        size_t len = (size_t)n;
        /* strip the newline (and a \r before it) if the client sent one */
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;

        struct member *sender = find_member(members, &from);
        int is_quit = (len == 4 && memcmp(buf, "quit", 4) == 0);
        if (is_quit && sender == NULL)
            continue;           /* quit from a stranger: nothing to do */
        if (sender == NULL) {
            if (add_member(&members, &from) < 0) {
                fprintf(stderr, "out of memory\n");
                continue;
            }
            printf("%s:%d joined\n", inet_ntoa(from.sin_addr), ntohs(from.sin_port));
        }
        if (len > 0)
            relay(sock, members, &from, buf, len);
        /* tell everybody they left, then take them off the list */
        if (is_quit) {
            printf("%s:%d quit\n", inet_ntoa(from.sin_addr), ntohs(from.sin_port));
            remove_member(&members, &from);
        }
    }

    free_members(members);
    free(buf);
    close(sock);
    close(wakeup_pipe[0]);
    close(wakeup_pipe[1]);
    return 0;
}
