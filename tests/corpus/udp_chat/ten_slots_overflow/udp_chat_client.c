/*
 * udp_chat_client.c -- assignment 2
 * Priya R.
 *
 * main thread: reads the keyboard and sends.
 * printer thread: prints what the server relays. At the end main cancels
 * it (recv is a cancellation point) and joins it.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sock = -1;

static void *printer(void *unused)
{
    (void)unused;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            perror("recv");
            return NULL;
        }
        buf[n] = '\n';
        fwrite(buf, 1, n + 1, stdout);
        fflush(stdout);
    }
}

static int send_line(const char *s, size_t len)
{
    if (send(sock, s, len, 0) < 0 && errno != ECONNREFUSED) {
        perror("send");
        return -1;
    }
    return 0;
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        exit(1);
    }
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0) {
        fprintf(stderr, "unknown host %s\n", argv[1]);
        exit(1);
    }
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || connect(sock, res->ai_addr, res->ai_addrlen) < 0) {
        perror("socket");
        freeaddrinfo(res);
        exit(1);
    }
    freeaddrinfo(res);

    pthread_t tid;
    pthread_create(&tid, NULL, printer, NULL);

    char line[4096];
    int left = 0;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        send_line(line, len);
        if (strcmp(line, "quit") == 0) {
            left = 1;
            break;
        }
    }
    if (!left)
        send_line("quit", 4);

    pthread_cancel(tid);
    pthread_join(tid, NULL);
    close(sock);
    return 0;
}
