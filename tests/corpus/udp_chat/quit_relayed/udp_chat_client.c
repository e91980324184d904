/*
 * UDP group chat client -- networks lab 4
 *
 * usage: udp_chat_client HOST PORT
 *
 * The socket is connect()ed to the server, so send()/recv() need no
 * address. Main thread: stdin -> server. Receiver thread: server -> stdout.
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

static void *receiver(void *arg)
{
    int sock = *(int *)arg;
    static char buf[65536];
    for (;;) {
        ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;   /* ICMP "port unreachable" from an earlier send */
            break;
        }
        buf[n] = '\n';
        fwrite(buf, 1, (size_t)n + 1, stdout);
        fflush(stdout);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 1;
    }
    struct addrinfo hints = { 0 };
    struct addrinfo *ai;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return 1;
    }
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || connect(sock, ai->ai_addr, ai->ai_addrlen) < 0) {
        perror("connect");
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);

    pthread_t tid;
    if (pthread_create(&tid, NULL, receiver, &sock) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        close(sock);
        return 1;
    }
    pthread_detach(tid);
    fprintf(stderr, "connected, type quit to leave\n");

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int said_quit = 0;
    while ((len = getline(&line, &cap, stdin)) != -1) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (send(sock, line, (size_t)len, 0) < 0)
            perror("send");
        if (strcmp(line, "quit") == 0) {
            said_quit = 1;
            break;
        }
    }
    if (!said_quit)
        send(sock, "quit", 4, 0);
    free(line);
    close(sock);
    return 0;
}
