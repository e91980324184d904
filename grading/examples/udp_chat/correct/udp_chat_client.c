/*
 * udp_chat_client.c - UDP group chat client
 *
 *   usage: ./udp_chat_client HOST PORT
 *
 * Each line typed is sent as one datagram (without its newline). A
 * receive thread prints every datagram that arrives, followed by \n.
 * The server learns about us from our first datagram.
 *
 * stdout: only received messages. Notices go to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *receive_thread(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536 + 1];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0) {
            /* ECONNREFUSED: the server is not there (yet); keep listening */
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            perror("recv");
            return NULL;
        }
        buf[n] = '\n';
        /* one fwrite + fflush per message: the line comes out whole */
        fwrite(buf, 1, (size_t)n + 1, stdout);
        fflush(stdout);
    }
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 1;
    }
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    int err = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (err != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], gai_strerror(err));
        return 1;
    }
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    /* connect() on UDP just fixes the peer: send() goes to the server and
     * recv() only takes datagrams from it */
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        perror("socket/connect");
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    freeaddrinfo(res);
    fprintf(stderr, "chatting via %s:%s (type quit to leave)\n", argv[1], argv[2]);

    pthread_t rt;
    if (pthread_create(&rt, NULL, receive_thread, &fd) != 0) {
        fprintf(stderr, "cannot start the receive thread\n");
        close(fd);
        return 1;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int quit = 0;
    while (!quit && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        quit = strcmp(line, "quit") == 0;
        if (send(fd, line, (size_t)len, 0) < 0 && errno != ECONNREFUSED)
            perror("send");
    }
    if (!quit)          /* end of input: leave the group */
        send(fd, "quit", 4, 0);
    free(line);
    close(fd);
    return 0;           /* ends the receive thread too */
}
