// udp_chat_client.c
// Author: M. Okafor, CS 341
//
// The socket is not connected: we sendto() the server and the listener
// thread uses recvfrom() and ignores anything that does not come from it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE_MAX_LEN 8192

struct client {
    int sock;
    struct sockaddr_in server;
};

static void *listener(void *p)
{
    struct client *c = p;
    char *buf = malloc(65536);
    if (!buf)
        return NULL;
    for (;;) {
        struct sockaddr_in src;
        socklen_t src_len = sizeof src;
        ssize_t n = recvfrom(c->sock, buf, 65535, 0, (struct sockaddr *)&src, &src_len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (src.sin_addr.s_addr != c->server.sin_addr.s_addr || src.sin_port != c->server.sin_port)
            continue;   // not from our server
        buf[n] = '\n';
        fwrite(buf, 1, (size_t)n + 1, stdout);
        fflush(stdout);
    }
    free(buf);
    return NULL;
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return EXIT_FAILURE;
    }
    static struct client c;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM };
    struct addrinfo *res = NULL;
    int err = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (err) {
        fprintf(stderr, "%s: %s\n", argv[1], gai_strerror(err));
        return EXIT_FAILURE;
    }
    memcpy(&c.server, res->ai_addr, sizeof c.server);
    freeaddrinfo(res);

    c.sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (c.sock == -1) {
        perror("socket");
        return EXIT_FAILURE;
    }

    pthread_t th;
    if (pthread_create(&th, NULL, listener, &c) != 0) {
        fprintf(stderr, "could not start listener\n");
        close(c.sock);
        return EXIT_FAILURE;
    }

    static char line[LINE_MAX_LEN];
    int quitting = 0;
    while (!quitting && fgets(line, sizeof line, stdin) != NULL) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        quitting = strcmp(line, "quit") == 0;
        sendto(c.sock, line, len, 0, (struct sockaddr *)&c.server, sizeof c.server);
    }
    if (!quitting)  // EOF on stdin counts as leaving
        sendto(c.sock, "quit", 4, 0, (struct sockaddr *)&c.server, sizeof c.server);

    close(c.sock);
    return EXIT_SUCCESS;    // exit() takes the listener thread down with us
}
