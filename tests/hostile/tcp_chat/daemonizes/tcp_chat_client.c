/*
 * tcp_chat_client.c -- CS lab 5, chat client
 *
 * usage: tcp_chat_client HOST PORT
 *
 * main thread: read(0) -> cut into lines -> send
 * recv thread: recv() -> stdout
 *
 * When the server hangs up, the recv thread has to get main out of its
 * blocking read(0). It does that with SIGUSR1: the handler is installed
 * without SA_RESTART, so read() fails with EINTR and main sees the flag.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock = -1;
static pthread_t main_thread;
static atomic_int server_gone = 0;
static atomic_int main_done = 0;

static void on_usr1(int sig)
{
    (void)sig;   /* nothing to do, we only want read() to be interrupted */
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *recv_thread(void *arg)
{
    (void)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(sock, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            break;
    }
    server_gone = 1;
    /* keep poking main until it noticed (it might not be in read() yet) */
    struct timespec nap = { 0, 50 * 1000 * 1000 };
    while (!main_done) {
        pthread_kill(main_thread, SIGUSR1);
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        perror("connect");
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;          /* no SA_RESTART on purpose */
    sigaction(SIGUSR1, &sa, NULL);

    sock = connect_to(argv[1], argv[2]);
    if (sock < 0)
        return 1;
    fprintf(stderr, "connected, type quit to leave\n");

    main_thread = pthread_self();
    pthread_t rt;
    if (pthread_create(&rt, NULL, recv_thread, NULL) != 0) {
        perror("pthread_create");
        close(sock);
        return 1;
    }

    size_t cap = 1024, len = 0;
    char *line = malloc(cap);
    int said_quit = 0;
    while (line != NULL && !server_gone && !said_quit) {
        if (len == cap) {
            char *bigger = realloc(line, cap * 2);
            if (bigger == NULL)
                break;
            line = bigger;
            cap *= 2;
        }
        ssize_t n = read(STDIN_FILENO, line + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;          /* maybe the server left: loop test checks */
        if (n <= 0)
            break;             /* end of input */
        len += (size_t)n;

        /* send every complete line we have */
        char *start = line;
        char *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - line))) != NULL) {
            size_t l = (size_t)(nl - start);
            if (l == 4 && memcmp(start, "quit", 4) == 0)
                said_quit = 1;
            if (write_all(sock, start, l + 1) < 0)
                server_gone = 1;
            start = nl + 1;
            if (said_quit || server_gone)
                break;
        }
        len -= (size_t)(start - line);
        memmove(line, start, len);
    }
    free(line);

    if (!server_gone && !said_quit)
        write_all(sock, "quit\n", 5);    /* end of input: say goodbye */

    main_done = 1;
    shutdown(sock, SHUT_RDWR);
    pthread_join(rt, NULL);
    close(sock);
    return 0;
}
