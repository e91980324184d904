/*
 * udp_chat_server.c -- assignment 2, UDP group chat
 * Priya R.
 *
 * Plain blocking recvfrom() loop. The signal handler only sets a flag;
 * because it is installed WITHOUT SA_RESTART, a blocked recvfrom() returns
 * -1/EINTR and the loop sees the flag. If the signal lands just between the
 * flag test and recvfrom(), the 500 ms receive timeout (SO_RCVTIMEO) gets
 * us back to the test anyway.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "members.h"

#define RECV_BUF 65536

static volatile sig_atomic_t done = 0;

static void stop(int signo)
{
    (void)signo;
    done = 1;
}

static void send_to_others(int s, const struct group *g, long sender, const char *msg, size_t len)
{
    for (size_t i = 0; i < g->n; i++) {
        if ((long)i == sender)
            continue;
        if (sendto(s, msg, len, 0, (const struct sockaddr *)&g->who[i], sizeof(g->who[i])) < 0)
            perror("sendto");
    }
}

int main(int argc, char *argv[])
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        exit(1);
    }

    struct sigaction act;
    memset(&act, 0, sizeof(act));
    act.sa_handler = stop;
    sigemptyset(&act.sa_mask);
    act.sa_flags = 0;                       /* no SA_RESTART on purpose */
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) {
        perror("socket");
        exit(1);
    }
    struct timeval tv = { .tv_sec = 0, .tv_usec = 500000 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("bind");
        close(s);
        exit(1);
    }
    socklen_t alen = sizeof(addr);
    getsockname(s, (struct sockaddr *)&addr, &alen);
    printf("listening on port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct group g;
    group_init(&g);
    char *msg = malloc(RECV_BUF);
    if (msg == NULL) {
        close(s);
        exit(1);
    }

    while (!done) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(s, msg, RECV_BUF, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            /* EINTR = signal, EAGAIN = timeout: either way go check `done` */
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                perror("recvfrom");
            continue;
        }
        size_t len = (size_t)n;
        if (len > 0 && msg[len - 1] == '\n')
            len--;
        if (len > 0 && msg[len - 1] == '\r')
            len--;

        long who = group_find(&g, &from);
        if (len == 4 && strncmp(msg, "quit", 4) == 0) {
            if (who >= 0) {
                group_remove(&g, (size_t)who);
                printf("member %s:%d left (%zu left)\n", inet_ntoa(from.sin_addr),
                       ntohs(from.sin_port), g.n);
            }
            continue;
        }
        if (who < 0) {
            if (group_add(&g, &from) < 0) {
                fprintf(stderr, "no memory for a new member\n");
                continue;
            }
            who = (long)g.n - 1;
            printf("new member %s:%d (%zu in group)\n", inet_ntoa(from.sin_addr),
                   ntohs(from.sin_port), g.n);
        }
        if (len == 0)
            continue;       /* empty datagram = "hello, I'm here" */
        send_to_others(s, &g, who, msg, len);
    }

    printf("stopping\n");
    free(msg);
    group_free(&g);
    close(s);
    return 0;
}
