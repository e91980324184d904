// udp_chat_server.c
// Group chat over UDP.  Author: M. Okafor, CS 341
//
// Design notes:
//  - members live in a fixed table of MAX_MEMBERS slots; a slot is free
//    when in_use == 0.  New members take the first free slot.
//  - SIGINT and SIGTERM are blocked and read from a signalfd, which we
//    poll() together with the socket. No handler, no flag, no race.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MEMBERS 512     // assignment asks for 64, leave some room
#define MAX_DGRAM   65507   // biggest UDP payload over IPv4

typedef struct {
    bool in_use;
    struct sockaddr_in addr;
} slot_t;

static slot_t table[MAX_MEMBERS];

static bool addr_equal(const struct sockaddr_in *x, const struct sockaddr_in *y)
{
    return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
}

// slot index of this address, -1 if not a member
static int lookup(const struct sockaddr_in *who)
{
    for (int i = 0; i < MAX_MEMBERS; i++)
        if (table[i].in_use && addr_equal(&table[i].addr, who))
            return i;
    return -1;
}

// takes the first free slot; -1 when the table is full
static int join(const struct sockaddr_in *who)
{
    for (int i = 0; i < MAX_MEMBERS; i++) {
        if (!table[i].in_use) {
            table[i].in_use = true;
            table[i].addr = *who;
            return i;
        }
    }
    return -1;
}

static void broadcast(int sock, const char *data, size_t len)
{
    for (int i = 0; i < MAX_MEMBERS; i++) {
        if (!table[i].in_use)
            continue;
        if (sendto(sock, data, len, 0, (struct sockaddr *)&table[i].addr,
                   sizeof(table[i].addr)) == -1)
            perror("sendto");
    }
}

static void on_datagram(int sock, char *data, size_t len, const struct sockaddr_in *src)
{
    if (len && data[len - 1] == '\n')
        len--;
    if (len && data[len - 1] == '\r')
        len--;

    int slot = lookup(src);
    bool is_quit = (len == 4 && memcmp(data, "quit", 4) == 0);

    if (is_quit) {
        if (slot >= 0) {
            table[slot].in_use = false;
            fprintf(stderr, "[-] %s:%u left\n", inet_ntoa(src->sin_addr), ntohs(src->sin_port));
        }
        return;
    }
    if (slot < 0) {
        slot = join(src);
        if (slot < 0) {
            fprintf(stderr, "table full, ignoring %s:%u\n",
                    inet_ntoa(src->sin_addr), ntohs(src->sin_port));
            return;
        }
        fprintf(stderr, "[+] %s:%u joined\n", inet_ntoa(src->sin_addr), ntohs(src->sin_port));
    }
    if (len > 0)
        broadcast(sock, data, len);
}

int main(int argc, char *argv[])
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return EXIT_FAILURE;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1) {
        perror("sigprocmask");
        return EXIT_FAILURE;
    }
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd == -1) {
        perror("signalfd");
        return EXIT_FAILURE;
    }

    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock == -1) {
        perror("socket");
        close(sfd);
        return EXIT_FAILURE;
    }
    struct sockaddr_in local = { 0 };
    local.sin_family = AF_INET;
    local.sin_port = htons((uint16_t)strtoul(argv[1], NULL, 10));
    local.sin_addr.s_addr = INADDR_ANY;
    if (bind(sock, (struct sockaddr *)&local, sizeof local) == -1) {
        perror("bind");
        close(sock);
        close(sfd);
        return EXIT_FAILURE;
    }
    socklen_t local_len = sizeof local;
    getsockname(sock, (struct sockaddr *)&local, &local_len);
    printf("listening on port %u\n", ntohs(local.sin_port));
    fflush(stdout);

    static char data[MAX_DGRAM + 1];
    for (;;) {
        struct pollfd p[2] = {
            { .fd = sock, .events = POLLIN },
            { .fd = sfd, .events = POLLIN },
        };
        if (poll(p, 2, -1) == -1) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                fprintf(stderr, "signal %u, bye\n", si.ssi_signo);
            break;
        }
        if (p[0].revents & POLLIN) {
            struct sockaddr_in src;
            socklen_t src_len = sizeof src;
            ssize_t got = recvfrom(sock, data, MAX_DGRAM, 0, (struct sockaddr *)&src, &src_len);
            if (got == -1) {
                if (errno != EINTR && errno != ECONNREFUSED)
                    perror("recvfrom");
                continue;
            }
            on_datagram(sock, data, (size_t)got, &src);
        }
    }

    close(sock);
    close(sfd);
    return EXIT_SUCCESS;
}
