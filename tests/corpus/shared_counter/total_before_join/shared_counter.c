// shared_counter.c
// Jonas W. -- Systems Programming, exercise 5
//
// The counter and its mutex live together in one struct that main owns;
// each thread gets a malloc'd argument (its id + a pointer to that struct)
// and frees it itself when it is done. Output goes through write(2):
// one write() per line, done while holding the mutex.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t mutex;
    unsigned long value;
} counter_t;

typedef struct {
    int id;
    unsigned long iterations;
    counter_t *counter;
} thread_arg_t;

// writes the whole buffer, retrying short writes and EINTR; 0 or -1
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

static void *thread_main(void *p)
{
    thread_arg_t *arg = p;
    char line[64];
    for (unsigned long i = 0; i < arg->iterations; i++) {
        pthread_mutex_lock(&arg->counter->mutex);
        arg->counter->value++;
        int len = snprintf(line, sizeof line, "thread %d count %lu\n", arg->id, arg->counter->value);
        write_all(STDOUT_FILENO, line, (size_t)len);
        pthread_mutex_unlock(&arg->counter->mutex);
    }
    free(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS ITERS\n", argv[0]);
        return EXIT_FAILURE;
    }
    int nthreads = atoi(argv[1]);
    unsigned long iters = strtoul(argv[2], NULL, 10);
    if (nthreads <= 0) {
        fprintf(stderr, "need at least one thread\n");
        return EXIT_FAILURE;
    }

    counter_t counter = { .value = 0 };
    pthread_mutex_init(&counter.mutex, NULL);

    pthread_t *threads = malloc(sizeof(pthread_t) * (size_t)nthreads);
    if (!threads) {
        perror("malloc");
        return EXIT_FAILURE;
    }
    int created = 0;
    for (int i = 0; i < nthreads; i++) {
        thread_arg_t *arg = malloc(sizeof *arg);
        if (!arg)
            break;
        arg->id = i;
        arg->iterations = iters;
        arg->counter = &counter;
        int err = pthread_create(&threads[i], NULL, thread_main, arg);
        if (err != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            free(arg);
            break;
        }
        created++;
    }
    // read the total under the mutex, the threads may still be running
    pthread_mutex_lock(&counter.mutex);
    char line[64];
    int len = snprintf(line, sizeof line, "total %lu\n", counter.value);
    write_all(STDOUT_FILENO, line, (size_t)len);
    pthread_mutex_unlock(&counter.mutex);

    for (int i = 0; i < created; i++)
        pthread_join(threads[i], NULL);
    free(threads);

    pthread_mutex_destroy(&counter.mutex);
    return created == nthreads ? EXIT_SUCCESS : EXIT_FAILURE;
}
