// Chat server - assignment 3
// Usage: ./tcp_chat_server PORT
//
// - the connected users are a doubly linked list (users_mutex)
// - a thread per user; main does the accepting itself
// - broadcast holds users_mutex for the whole loop so two messages can't mix
// - Ctrl-C / kill: the handler only sets a flag. main polls the listening
//   socket with a timeout so it sees the flag even when nobody connects.
// - threads that are finished put themselves on the "done" list and main
//   joins them (so there are no zombie threads piling up)
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BUFSIZE 1024        // a line longer than this is sent in pieces
#define SEND_TIMEOUT_S 3

typedef struct user {
    int sock;
    int kicked;
    pthread_t thread;
    struct user *prev, *next;
} user_t;

static user_t *users = NULL;       // connected
static user_t *done_users = NULL;  // thread finished, waiting for join
static pthread_mutex_t users_mutex = PTHREAD_MUTEX_INITIALIZER;

static volatile sig_atomic_t got_signal = 0;

static void on_signal(int sig)
{
    got_signal = sig;
}

static int send_whole(int sock, const char *data, size_t size)
{
    size_t sent = 0;
    while (sent < size) {
        ssize_t r = send(sock, data + sent, size - sent, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        sent += (size_t)r;
    }
    return 0;
}

// send msg (with its \n) to all users except `from`
static void broadcast(user_t *from, const char *msg, size_t size)
{
    pthread_mutex_lock(&users_mutex);
    for (user_t *u = users; u; u = u->next) {
        if (u == from || u->kicked)
            continue;
        if (send_whole(u->sock, msg, size) == -1) {
            printf("user on socket %d is not reading, kicking it\n", u->sock);
            u->kicked = 1;
            shutdown(u->sock, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&users_mutex);
}

// a complete line is in line[0..len) and there is room for one more char
static int process_line(user_t *me, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 4 && strncmp(line, "quit", 4) == 0)
        return 1;
    if (len == 0)
        return 0;
    line[len] = '\n';
    broadcast(me, line, len + 1);
    return 0;
}

static void *user_thread(void *arg)
{
    user_t *me = (user_t *)arg;
    char buf[BUFSIZE + 1];
    size_t have = 0;
    int quit = 0;

    while (!quit) {
        ssize_t r = recv(me->sock, buf + have, BUFSIZE - have, 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;

        size_t start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] == '\n') {
                quit = process_line(me, buf + start, i - start);
                start = i + 1;
                if (quit)
                    break;
            }
        }
        if (quit)
            break;
        have -= start;
        memmove(buf, buf + start, have);
        if (have == BUFSIZE) {
            // buffer full and still no newline: send what we have as a message
            buf[have] = '\n';       // there is room, buf is BUFSIZE + 1
            broadcast(me, buf, have + 1);
            have = 0;
        }
    }

    // leaving: out of the user list, onto the done list
    pthread_mutex_lock(&users_mutex);
    if (me->prev)
        me->prev->next = me->next;
    else
        users = me->next;
    if (me->next)
        me->next->prev = me->prev;
    shutdown(me->sock, SHUT_RDWR);   // hang up on it
    me->sock = -1;
    me->prev = NULL;
    me->next = done_users;
    done_users = me;
    pthread_mutex_unlock(&users_mutex);
    return NULL;
}

// join the threads that have finished; main calls it now and then
static void reap_done(void)
{
    pthread_mutex_lock(&users_mutex);
    user_t *list = done_users;
    done_users = NULL;
    pthread_mutex_unlock(&users_mutex);

    while (list) {
        user_t *next = list->next;
        pthread_join(list->thread, NULL);
        free(list);
        list = next;
    }
}

static void add_user(int sock)
{
    user_t *u = calloc(1, sizeof(user_t));
    if (!u) {
        close(sock);
        return;
    }
    u->sock = sock;

    // the handler must run in main only, so user threads start with the
    // signals blocked
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    pthread_mutex_lock(&users_mutex);
    u->next = users;
    if (users)
        users->prev = u;
    users = u;
    int err = pthread_create(&u->thread, NULL, user_thread, u);
    if (err) {
        users = u->next;
        if (users)
            users->prev = NULL;
    }
    pthread_mutex_unlock(&users_mutex);

    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fprintf(stderr, "pthread_create failed\n");
        close(sock);
        free(u);
    }
}

int main(int argc, char *argv[])
{
    if (argc != 2) {
        fprintf(stderr, "Usage: %s PORT\n", argv[0]);
        exit(1);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server == -1) {
        perror("socket");
        exit(1);
    }
    int opt = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &opt, sizeof(opt));

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = INADDR_ANY;
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    if (bind(server, (struct sockaddr *)&addr, sizeof(addr)) == -1 || listen(server, 100) == -1) {
        perror("bind/listen");
        close(server);
        exit(1);
    }
    socklen_t len = sizeof(addr);
    getsockname(server, (struct sockaddr *)&addr, &len);
    printf("listening on port %d\n", ntohs(addr.sin_port));

    while (!got_signal) {
        struct pollfd pfd = { .fd = server, .events = POLLIN };
        int n = poll(&pfd, 1, 500);
        reap_done();
        if (n <= 0)
            continue;          // timeout or EINTR: check the flag again
        int client = accept(server, NULL, NULL);
        if (client == -1) {
            perror("accept");
            continue;
        }
        struct timeval tv = { .tv_sec = SEND_TIMEOUT_S, .tv_usec = 0 };
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        add_user(client);
    }

    printf("caught signal %d, closing down\n", (int)got_signal);
    close(server);

    // wake everybody up, then wait until the user list is empty
    pthread_mutex_lock(&users_mutex);
    for (user_t *u = users; u; u = u->next)
        shutdown(u->sock, SHUT_RDWR);
    pthread_mutex_unlock(&users_mutex);

    for (;;) {
        pthread_mutex_lock(&users_mutex);
        int empty = (users == NULL);
        pthread_mutex_unlock(&users_mutex);
        reap_done();
        if (empty)
            break;
        poll(NULL, 0, 20);
    }
    reap_done();
    printf("bye\n");
    return 0;
}
