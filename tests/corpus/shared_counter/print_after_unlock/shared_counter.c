/*
 * shared_counter.c  --  lab 3: threads and a lock
 *
 *   ./shared_counter THREADS ITERS
 *
 * Every thread gets its own slot in an array of structs (its number and
 * its pthread_t), so no two threads ever share an argument.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct worker {
    pthread_t tid;
    int id;
    long iters;
};

static long counter = 0;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->iters; i++) {
        /* keep the critical section short: copy the value, print later */
        pthread_mutex_lock(&counter_lock);
        long mine = ++counter;
        pthread_mutex_unlock(&counter_lock);
        printf("thread %d count %ld\n", w->id, mine);
    }
    return NULL;
}

static long parse_positive(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0)
        return -1;
    return v;
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS ITERS\n", argv[0]);
        return 1;
    }
    long nthreads = parse_positive(argv[1]);
    long iters = parse_positive(argv[2]);
    if (nthreads < 0 || iters < 0) {
        fprintf(stderr, "THREADS and ITERS must be positive numbers\n");
        return 1;
    }

    struct worker *workers = calloc((size_t)nthreads, sizeof *workers);
    if (workers == NULL) {
        perror("calloc");
        return 1;
    }
    long started = 0;
    for (; started < nthreads; started++) {
        workers[started].id = (int)started;
        workers[started].iters = iters;
        if (pthread_create(&workers[started].tid, NULL, work, &workers[started]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            break;
        }
    }
    for (long i = 0; i < started; i++)
        pthread_join(workers[i].tid, NULL);

    printf("total %ld\n", counter);
    free(workers);
    return started == nthreads ? 0 : 1;
}
