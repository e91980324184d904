/* Shared counter -- OS course, homework 2 (Lin Chen)
 *
 * The thread number is smuggled through the void * argument itself
 * ((void *)(intptr_t)i), so there is nothing to allocate or free per
 * thread. The counter is a file-scope variable protected by one mutex.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 1024

static pthread_mutex_t mtx;
static uint64_t shared_count;
static int iterations;

static void *run(void *arg)
{
    int me = (int)(intptr_t)arg;
    int i;

    for (i = 0; i < iterations; ++i) {
        pthread_mutex_lock(&mtx);
        ++shared_count;
        pthread_mutex_unlock(&mtx);
        /* printing is slow, don't hold the lock for it */
        printf("thread %d count %" PRIu64 "\n", me, shared_count);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t tids[MAX_THREADS];
    int n, i;

    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS ITERS\n", argv[0]);
        return 2;
    }
    n = atoi(argv[1]);
    iterations = atoi(argv[2]);
    if (n < 1 || n > MAX_THREADS || iterations < 1) {
        fprintf(stderr, "THREADS must be 1..%d and ITERS at least 1\n", MAX_THREADS);
        return 2;
    }

    if (pthread_mutex_init(&mtx, NULL) != 0) {
        fprintf(stderr, "mutex init failed\n");
        return 1;
    }
    for (i = 0; i < n; ++i) {
        if (pthread_create(&tids[i], NULL, run, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "could not create thread %d\n", i);
            return 1;
        }
    }
    for (i = 0; i < n; ++i)
        pthread_join(tids[i], NULL);

    printf("total %" PRIu64 "\n", shared_count);
    pthread_mutex_destroy(&mtx);
    return 0;
}
