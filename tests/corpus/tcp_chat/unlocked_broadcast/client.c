// Chat client - assignment 3
// Usage: ./tcp_chat_client HOST PORT
//
// main thread: waits (poll) for the keyboard OR for a note from the receiver
//              thread that the server has hung up, reads a line, sends it
// receiver:    prints everything the server sends
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sock;
static int gone_pipe[2];   // receiver writes one byte here when the server is gone

static int send_whole(int fd, const char *data, size_t size)
{
    size_t sent = 0;
    while (sent < size) {
        ssize_t r = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        sent += (size_t)r;
    }
    return 0;
}

static void *receiver(void *arg)
{
    (void)arg;
    char buf[2048];
    ssize_t r;
    while ((r = recv(sock, buf, sizeof(buf), 0)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        fwrite(buf, 1, (size_t)r, stdout);
        fflush(stdout);
    }
    char c = 'x';
    if (write(gone_pipe[1], &c, 1) < 0)
        perror("write");
    return NULL;
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "Usage: %s HOST PORT\n", argv[0]);
        return 1;
    }

    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (err) {
        fprintf(stderr, "%s\n", gai_strerror(err));
        return 1;
    }
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1 || connect(sock, res->ai_addr, res->ai_addrlen) == -1) {
        perror("connect");
        freeaddrinfo(res);
        return 1;
    }
    freeaddrinfo(res);
    if (pipe(gone_pipe) == -1) {
        perror("pipe");
        return 1;
    }
    fprintf(stderr, "[connected]\n");

    pthread_t rt;
    pthread_create(&rt, NULL, receiver, NULL);

    char *line = NULL;
    size_t cap = 0;
    int server_gone = 0;
    int said_quit = 0;
    // stdin unbuffered: otherwise getline() reads ahead into the FILE buffer
    // and poll() would wait for input that we already have
    setvbuf(stdin, NULL, _IONBF, 0);
    while (!said_quit) {
        struct pollfd p[2] = { { 0, POLLIN, 0 }, { gone_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents) {
            server_gone = 1;
            break;
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        said_quit = (strcmp(line, "quit") == 0);
        line[n] = '\n';
        if (send_whole(sock, line, (size_t)n + 1) == -1)
            break;
    }
    free(line);
    if (server_gone) {
        fprintf(stderr, "[server closed the connection]\n");
    } else {
        if (!said_quit)
            send_whole(sock, "quit\n", 5);
        shutdown(sock, SHUT_RDWR);
    }
    pthread_join(rt, NULL);
    close(sock);
    close(gone_pipe[0]);
    close(gone_pipe[1]);
    return 0;
}
