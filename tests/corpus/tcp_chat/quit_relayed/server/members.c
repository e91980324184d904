/* members.c -- see members.h */
#define _POSIX_C_SOURCE 200809L
#include "members.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static struct member **list;     /* room_lock */
static size_t count, capacity;   /* room_lock */
static pthread_mutex_t room_lock = PTHREAD_MUTEX_INITIALIZER;

int room_init(void)
{
    capacity = 16;
    count = 0;
    list = malloc(capacity * sizeof *list);
    return list ? 0 : -1;
}

void room_destroy(void)
{
    free(list);
    list = NULL;
}

int room_add(struct member *m)
{
    int rc = 0;
    pthread_mutex_lock(&room_lock);
    if (count == capacity) {
        struct member **bigger = realloc(list, 2 * capacity * sizeof *list);
        if (bigger == NULL) {
            rc = -1;
            goto out;
        }
        list = bigger;
        capacity *= 2;
    }
    list[count++] = m;
out:
    pthread_mutex_unlock(&room_lock);
    return rc;
}

void room_remove(struct member *m)
{
    pthread_mutex_lock(&room_lock);
    for (size_t i = 0; i < count; i++) {
        if (list[i] == m) {
            list[i] = list[--count];   /* order in the room does not matter */
            break;
        }
    }
    pthread_mutex_unlock(&room_lock);
}

/* append to m's queue; called with m->qlock held */
static void enqueue(struct member *m, const char *line, size_t len)
{
    if (m->broken || m->closing)
        return;
    if (m->qlen + len > OUTQ_LIMIT) {
        /* full: give its writer OUTQ_WAIT seconds to make room (a member
         * that reads, only slower than we get lines, keeps up this way) */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += OUTQ_WAIT;
        while (m->qlen + len > OUTQ_LIMIT && !m->broken && !m->closing) {
            if (pthread_cond_timedwait(&m->qcond, &m->qlock, &until) == ETIMEDOUT)
                break;
        }
        if (m->broken || m->closing)
            return;
        if (m->qlen + len > OUTQ_LIMIT) {
            m->broken = 1;            /* not reading at all: drop it */
            shutdown(m->fd, SHUT_RDWR);   /* its reader wakes up and cleans up */
            pthread_cond_broadcast(&m->qcond);
            return;
        }
    }
    if (m->qlen + len > m->qcap) {
        size_t cap = m->qcap ? m->qcap : 4096;
        while (cap < m->qlen + len)
            cap *= 2;
        char *p = realloc(m->q, cap);
        if (p == NULL) {
            m->broken = 1;
            shutdown(m->fd, SHUT_RDWR);
            return;
        }
        m->q = p;
        m->qcap = cap;
    }
    memcpy(m->q + m->qlen, line, len);
    m->qlen += len;
    pthread_cond_broadcast(&m->qcond);
}

void room_broadcast(struct member *from, const char *line, size_t len)
{
    /* holding room_lock for the whole loop: a line goes into every queue
     * before the next line goes into any */
    pthread_mutex_lock(&room_lock);
    for (size_t i = 0; i < count; i++) {
        struct member *m = list[i];
        if (m == from)
            continue;
        pthread_mutex_lock(&m->qlock);
        enqueue(m, line, len);
        pthread_mutex_unlock(&m->qlock);
    }
    pthread_mutex_unlock(&room_lock);
}

int room_kick_all(void)
{
    pthread_mutex_lock(&room_lock);
    int n = (int)count;
    for (size_t i = 0; i < count; i++)
        shutdown(list[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&room_lock);
    return n;
}
