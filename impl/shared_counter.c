/*
 * shared_counter THREADS ITERS [--unsafe]
 *
 * THREADS threads each add 1 to a shared counter ITERS times, printing
 * "thread <t> count <value>" inside the critical section, so the printed
 * counts run 1, 2, ..., THREADS*ITERS in output order.  After joining all
 * threads it prints "total <value>".  --unsafe drops the lock: the data race
 * demonstrated in class (helgrind and DRD report it; counts may repeat).
 */
#define _POSIX_C_SOURCE 200809L

#include "lineio.h"
#include "netutil.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE "shared_counter THREADS ITERS [--unsafe]"
#define MAX_THREADS 1024
#define MAX_ITERS 100000000UL

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long counter;
static unsigned long iterations;
static bool unsafe;

struct worker {
	pthread_t tid;
	unsigned id;
};

/* Adds 1 to the counter, once per iteration; returns NULL. */
static void *worker_main(void *arg)
{
	const struct worker *w = arg;

	for (unsigned long i = 0; i < iterations; i++) {
		if (!unsafe)
			pthread_mutex_lock(&counter_lock);
		counter++;
		/*
		 * Print inside the critical section, so the order of the lines
		 * is the order of the increments.  write(2), not stdio: no
		 * hidden stdio lock shared between the threads.
		 */
		write_linef(STDOUT_FILENO, "thread %u count %lu", w->id, counter);
		if (!unsafe)
			pthread_mutex_unlock(&counter_lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long nthreads;
	struct worker *workers;
	unsigned long started;
	int status = 0;

	if (argc < 3 || argc > 4 ||
	    parse_decimal(argv[1], MAX_THREADS, &nthreads) < 0 || nthreads == 0 ||
	    parse_decimal(argv[2], MAX_ITERS, &iterations) < 0)
		usage_exit(USAGE);
	if (argc == 4) {
		if (strcmp(argv[3], "--unsafe") != 0)
			usage_exit(USAGE);
		unsafe = true;
	}
	if (net_init_process() < 0) {
		perror("shared_counter: sigaction");
		return 1;
	}

	workers = calloc(nthreads, sizeof *workers);
	if (workers == NULL) {
		perror("shared_counter: calloc");
		return 1;
	}
	for (started = 0; started < nthreads; started++) {
		int err;

		workers[started].id = (unsigned)started;
		err = pthread_create(&workers[started].tid, NULL, worker_main,
				     &workers[started]);
		if (err != 0) {
			fprintf(stderr, "shared_counter: pthread_create: %s\n",
				strerror(err));
			status = 1;
			break;
		}
	}
	/* Join whatever started, even after a failure, before freeing. */
	for (unsigned long i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	free(workers);
	if (status != 0)
		return status;

	write_linef(STDOUT_FILENO, "total %lu", counter);
	return 0;
}
