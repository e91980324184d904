/* linebuf.h - collect bytes from a socket and cut them into lines */
#ifndef LINEBUF_H
#define LINEBUF_H

#include <stddef.h>

#define LINE_MAX_KEEP 8192   /* longer lines are thrown away */

struct linebuf {
    char *data;
    size_t len;
    size_t cap;
    int discarding;          /* 1 while skipping the rest of a too long line */
};

/* called for each complete line (no \n, \r already removed).
 * return nonzero to stop (the rest of the buffer is dropped) */
typedef int (*line_fn)(const char *line, size_t len, void *ctx);

int  lb_init(struct linebuf *lb);
void lb_free(struct linebuf *lb);
/* add n bytes and call fn for every complete line.
 * returns 1 if fn asked to stop, 0 otherwise, -1 if out of memory */
int  lb_feed(struct linebuf *lb, const char *bytes, size_t n, line_fn fn, void *ctx);

#endif
