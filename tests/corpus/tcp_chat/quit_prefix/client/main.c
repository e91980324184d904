/*
 * tcp_chat_client -- chat client (project 2)
 *
 *   tcp_chat_client HOST PORT
 *
 * The main thread reads lines from stdin (fgets, long lines come in
 * several fgets calls and are sent as they come) and sends them. The
 * listener thread prints every complete line the server sends. When the
 * server goes away there is nothing left to do, so the listener ends the
 * whole program with exit(0).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int server_fd = -1;

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

static void *listener(void *arg)
{
    (void)arg;
    char chunk[4096];
    ssize_t n;
    while ((n = recv(server_fd, chunk, sizeof chunk, 0)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        fwrite(chunk, 1, (size_t)n, stdout);
        fflush(stdout);
    }
    fprintf(stderr, "*** disconnected from server\n");
    exit(0);
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 1;
    }
    struct addrinfo hints, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0) {
        fprintf(stderr, "cannot resolve %s\n", argv[1]);
        return 1;
    }
    server_fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (server_fd < 0 || connect(server_fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        perror("connect");
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);

    pthread_t tid;
    if (pthread_create(&tid, NULL, listener, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    pthread_detach(tid);

    char buf[1024];
    int at_line_start = 1;
    int leaving = 0;
    while (!leaving && fgets(buf, sizeof buf, stdin) != NULL) {
        size_t len = strlen(buf);
        int full = len > 0 && buf[len - 1] == '\n';
        if (at_line_start && full && strcmp(buf, "quit\n") == 0)
            leaving = 1;
        if (send_all(server_fd, buf, len) < 0)
            break;
        at_line_start = full;
    }
    if (!leaving) {
        /* end of input (or a last line without \n): finish the line, leave */
        if (!at_line_start)
            send_all(server_fd, "\n", 1);
        send_all(server_fd, "quit\n", 5);
    }
    shutdown(server_fd, SHUT_WR);
    /* the server closes on quit; the listener sees it and calls exit(0) */
    pause();
    return 0;
}
