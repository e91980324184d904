// select_chat_server.c
// Single-threaded chat server using select().
//
// Design notes (for the report):
//  - clients are slots in a fixed table; a new client takes the first free
//    slot (fd == -1), and when the table is full we accept + close.
//  - messages are sent straight away with a non-blocking send(). Only what
//    the kernel didn't take is kept (the "tail") and we watch that client
//    for POLLOUT.. I mean for the write set. New messages for a client that
//    still has a tail are appended behind it so order is kept.
//  - a client whose tail grows past TAIL_LIMIT isn't reading: drop it.
//  - SIGINT/SIGTERM come in through a signalfd that sits in the read set.
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 1000
#define TAIL_LIMIT (1024 * 1024) // unsent bytes we keep per client

typedef struct {
    int fd;                  // -1 = free slot
    char *tail;              // unsent output
    size_t tail_len;
    bool drop;
} slot_t;

static slot_t slots[MAX_CLIENTS];
static int listen_sock = -1;
static int sig_fd = -1;
static int reserve_fd = -1;

static void slot_close(slot_t *s)
{
    close(s->fd);
    free(s->tail);
    s->tail = NULL;
    s->tail_len = 0;
    s->drop = false;
    s->fd = -1;
}

// Send msg to one client without ever blocking. If it already has
// unsent data, or the kernel takes only part, the rest goes in its tail.
static void send_to(slot_t *s, const char *msg, size_t len)
{
    size_t done = 0;

    if (s->tail_len == 0) {
        ssize_t n = send(s->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                s->drop = true;
                return;
            }
            n = 0;
        }
        done = (size_t)n;
    }
    if (done == len)
        return;
    if (s->tail_len + (len - done) > TAIL_LIMIT) {
        printf("slot fd=%d: %zu bytes unsent, dropping slow client\n", s->fd, s->tail_len);
        s->drop = true;
        return;
    }
    char *bigger = realloc(s->tail, s->tail_len + (len - done));
    if (bigger == NULL) {
        s->drop = true;
        return;
    }
    s->tail = bigger;
    memcpy(s->tail + s->tail_len, msg + done, len - done);
    s->tail_len += len - done;
}

static void send_tail(slot_t *s)
{
    ssize_t n = send(s->fd, s->tail, s->tail_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            s->drop = true;
        return;
    }
    s->tail_len -= (size_t)n;
    if (s->tail_len == 0) {
        free(s->tail);
        s->tail = NULL;
    } else {
        memmove(s->tail, s->tail + n, s->tail_len);
    }
}

// msg must have its '\n' at msg[len-1] already
static void relay(slot_t *from, const char *msg, size_t len)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        slot_t *s = &slots[i];
        if (s->fd < 0 || s == from || s->drop)
            continue;
        send_to(s, msg, len);
    }
}

static void read_from(slot_t *s)
{
    char data[8192];
    ssize_t n = recv(s->fd, data, sizeof(data), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        s->drop = true;
        return;
    }
    size_t len = (size_t)n;
    // "quit\n" (or "quit\r\n") means the client is leaving
    if (len >= 5 && memcmp(data, "quit", 4) == 0 && (data[4] == '\n' || data[4] == '\r')) {
        printf("fd=%d quit\n", s->fd);
        s->drop = true;
        return;
    }
    // windows clients: "\r\n" -> "\n"
    if (len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n') {
        data[len - 2] = '\n';
        len--;
    }
    if (len == 1 && data[0] == '\n')
        return;     // empty line
    relay(s, data, len);
}

static void new_connection(void)
{
    int fd = accept(listen_sock, NULL, NULL);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            // out of fds: free the reserve, take the connection, hang up
            close(reserve_fd);
            fd = accept(listen_sock, NULL, NULL);
            if (fd >= 0)
                close(fd);
            reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            printf("out of file descriptors, turned a client away\n");
        }
        return;
    }
    int free_slot = -1;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (slots[i].fd < 0) {
            free_slot = i;
            break;
        }
    }
    if (free_slot < 0 || fd >= FD_SETSIZE) {
        printf("no room for fd=%d\n", fd);
        close(fd);
        return;
    }
    slots[free_slot].fd = fd;
    slots[free_slot].drop = false;
    printf("fd=%d joined (slot %d)\n", fd, free_slot);
}

int main(int argc, char *argv[])
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 1;
    }
    int port = atoi(argv[1]);
    if (port < 0 || port > 65535 || (port == 0 && strcmp(argv[1], "0") != 0)) {
        fprintf(stderr, "bad port\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sig_fd < 0) {
        perror("signalfd");
        return 1;
    }

    listen_sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    if (bind(listen_sock, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(listen_sock, SOMAXCONN) < 0) {
        perror("bind/listen");
        close(listen_sock);
        close(sig_fd);
        return 1;
    }
    socklen_t alen = sizeof(addr);
    getsockname(listen_sock, (struct sockaddr *)&addr, &alen);
    printf("listening on port %d\n", ntohs(addr.sin_port));

    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        slots[i].fd = -1;
        slots[i].tail = NULL;
    }

    bool quit_server = false;
    while (!quit_server) {
        fd_set rfds, wfds;
        FD_ZERO(&rfds);
        FD_ZERO(&wfds);
        FD_SET(listen_sock, &rfds);
        FD_SET(sig_fd, &rfds);
        int top = listen_sock > sig_fd ? listen_sock : sig_fd;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (slots[i].fd < 0)
                continue;
            FD_SET(slots[i].fd, &rfds);
            if (slots[i].tail_len > 0)
                FD_SET(slots[i].fd, &wfds);
            if (slots[i].fd > top)
                top = slots[i].fd;
        }

        if (select(top + 1, &rfds, &wfds, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("select");
            break;
        }
        if (FD_ISSET(sig_fd, &rfds)) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof(si)) > 0)
                printf("signal %u, stopping\n", si.ssi_signo);
            quit_server = true;
            break;
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            slot_t *s = &slots[i];
            if (s->fd < 0 || s->drop)
                continue;
            if (s->tail_len > 0 && FD_ISSET(s->fd, &wfds))
                send_tail(s);
            if (!s->drop && FD_ISSET(s->fd, &rfds))
                read_from(s);
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (slots[i].fd >= 0 && slots[i].drop)
                slot_close(&slots[i]);
        }
        if (FD_ISSET(listen_sock, &rfds)) {
            for (int k = 0; k < 16; k++)
                new_connection();
        }
    }

    for (int i = 0; i < MAX_CLIENTS; i++)
        if (slots[i].fd >= 0)
            slot_close(&slots[i]);
    close(listen_sock);
    close(sig_fd);
    if (reserve_fd >= 0)
        close(reserve_fd);
    return 0;
}
