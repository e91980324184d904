/*
 * tcp_chat_client.c - threaded TCP chat client
 *
 *   usage: ./tcp_chat_client HOST PORT
 *
 * The main thread reads what the user types and sends it; a second
 * thread receives from the server and prints at once, so messages show
 * up even while the user is not typing.
 *
 * stdout gets ONLY the received messages. Everything else (connected,
 * server closed...) goes to stderr.
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

/* write all of buf to fd (a socket or stdout); 0 ok, -1 error */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(host, port, &hints, &res);
    if (err != 0) {
        fprintf(stderr, "%s: %s\n", host, gai_strerror(err));
        return -1;
    }
    int fd = -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        perror("connect");
    return fd;
}

static void *receive_thread(void *arg)
{
    int fd = *(int *)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        /* the server only ever sends whole lines, so pass them through */
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            break;
    }
    fprintf(stderr, "server closed the connection\n");
    _exit(0);   /* main is stuck in getline(); we are done anyway */
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    int fd = connect_to(argv[1], argv[2]);
    if (fd < 0)
        return 1;
    fprintf(stderr, "connected to %s:%s (type quit to leave)\n", argv[1], argv[2]);

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
        line[len] = '\n';
        if (write_all(fd, line, (size_t)len + 1) < 0)
            break;
    }
    if (!quit)          /* end of input: leave politely */
        write_all(fd, "quit\n", 5);
    free(line);
    shutdown(fd, SHUT_RDWR);
    return 0;
}
