// Chat client - assignment 3
// Usage: ./tcp_chat_client HOST PORT
//
// read a line, send it, then print whatever the server has sent us in the
// meantime (MSG_DONTWAIT, so we never get stuck waiting for the server)
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

// print what is waiting on the socket; returns -1 if the server is gone
static int show_incoming(int sock)
{
    char buf[2048];
    for (;;) {
        ssize_t r = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 0)
            return -1;
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        fwrite(buf, 1, (size_t)r, stdout);
        fflush(stdout);
    }
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
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1 || connect(sock, res->ai_addr, res->ai_addrlen) == -1) {
        perror("connect");
        freeaddrinfo(res);
        return 1;
    }
    freeaddrinfo(res);
    fprintf(stderr, "[connected]\n");

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int said_quit = 0;
    while (!said_quit && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        said_quit = (strcmp(line, "quit") == 0);
        line[n] = '\n';
        if (send_whole(sock, line, (size_t)n + 1) == -1)
            break;
        if (!said_quit && show_incoming(sock) < 0) {
            fprintf(stderr, "[server closed the connection]\n");
            break;
        }
    }
    if (n < 0)
        send_whole(sock, "quit\n", 5);   // end of input
    free(line);
    close(sock);
    return 0;
}
