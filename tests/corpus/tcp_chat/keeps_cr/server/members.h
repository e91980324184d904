/*
 * members.h -- the chat room: a growable array of members.
 *
 * Every member has an output queue (bytes waiting to be sent) and a
 * writer thread that empties it. A broadcast only copies the line into the
 * queues, it never blocks on a socket. When a queue is at OUTQ_LIMIT the
 * broadcast waits up to OUTQ_WAIT seconds for the writer to make room; if
 * it does not, the member is not reading: it is dropped.
 */
#ifndef MEMBERS_H
#define MEMBERS_H

#include <pthread.h>
#include <stddef.h>

#define OUTQ_LIMIT (256 * 1024)
#define OUTQ_WAIT  2            /* seconds */

struct member {
    int fd;
    pthread_t reader;
    pthread_t writer;

    pthread_mutex_t qlock;     /* protects everything below */
    pthread_cond_t qcond;
    char *q;                   /* pending bytes, only whole lines */
    size_t qlen, qcap;
    int closing;               /* writer: finish up and exit */
    int broken;                /* send failed or queue overflow */
};

/* all return 0 on success, -1 on failure */
int  room_init(void);
void room_destroy(void);
int  room_add(struct member *m);
void room_remove(struct member *m);
/* queue line (with its \n) for everyone but `from` */
void room_broadcast(struct member *from, const char *line, size_t len);
/* shut down every member's socket; returns how many there were */
int  room_kick_all(void);

#endif
