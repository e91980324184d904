/*
 * shared_counter THREADS ITERS with compile-time defects: the mutants the
 * counter checks must catch. Without a MUTANT_ define it is correct.
 *   MUTANT_NO_LOCK        increments and prints without the lock (a data race)
 *   MUTANT_PRINT_OUTSIDE  increments under the lock, prints after releasing it
 *   MUTANT_WRONG_TOTAL    prints the total before joining the threads
 *   MUTANT_LEAK           a thread never frees its argument
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct worker { int id; long iters; };

static long counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; i < w->iters; i++) {
#ifndef MUTANT_NO_LOCK
		pthread_mutex_lock(&lock);
#endif
		long value = ++counter;
#ifdef MUTANT_PRINT_OUTSIDE
		pthread_mutex_unlock(&lock);
		printf("thread %d count %ld\n", w->id, value);
#else
		printf("thread %d count %ld\n", w->id, value);
#ifndef MUTANT_NO_LOCK
		pthread_mutex_unlock(&lock);
#endif
#endif
	}
#ifndef MUTANT_LEAK
	free(w);
#endif
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s THREADS ITERS\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[1]);
	long iters = atol(argv[2]);
	pthread_t *tids = malloc(sizeof *tids * (size_t)n);
	if (!tids)
		return 1;
	for (int t = 0; t < n; t++) {
		struct worker *w = malloc(sizeof *w);   /* the thread frees it */
		if (!w)
			return 1;
		w->id = t;
		w->iters = iters;
		pthread_create(&tids[t], NULL, work, w);
	}
#ifdef MUTANT_WRONG_TOTAL
	pthread_mutex_lock(&lock);
	printf("total %ld\n", counter);
	pthread_mutex_unlock(&lock);
#endif
	for (int t = 0; t < n; t++)
		pthread_join(tids[t], NULL);
#ifndef MUTANT_WRONG_TOTAL
	printf("total %ld\n", counter);
#endif
	free(tids);
	return 0;
}
