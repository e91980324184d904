/* linebuf.c - line framing for the chat server (see linebuf.h) */
#include "linebuf.h"

#include <stdlib.h>
#include <string.h>

int lb_init(struct linebuf *lb)
{
    lb->cap = 1024;
    lb->len = 0;
    lb->discarding = 0;
    lb->data = malloc(lb->cap);
    return lb->data ? 0 : -1;
}

void lb_free(struct linebuf *lb)
{
    free(lb->data);
    lb->data = NULL;
    lb->len = lb->cap = 0;
}

/* append to the buffer, growing it up to LINE_MAX_KEEP */
static int lb_append(struct linebuf *lb, const char *p, size_t n)
{
    if (lb->discarding)
        return 0;
    if (lb->len + n > LINE_MAX_KEEP) {
        /* way too long, nobody wants to read this: drop the whole line */
        lb->len = 0;
        lb->discarding = 1;
        return 0;
    }
    if (lb->len + n > lb->cap) {
        size_t newcap = lb->cap;
        while (newcap < lb->len + n)
            newcap *= 2;
        char *tmp = realloc(lb->data, newcap);
        if (tmp == NULL)
            return -1;
        lb->data = tmp;
        lb->cap = newcap;
    }
    memcpy(lb->data + lb->len, p, n);
    lb->len += n;
    return 0;
}

int lb_feed(struct linebuf *lb, const char *bytes, size_t n, line_fn fn, void *ctx)
{
    size_t pos = 0;
    while (pos < n) {
        const char *nl = memchr(bytes + pos, '\n', n - pos);
        if (nl == NULL)
            return lb_append(lb, bytes + pos, n - pos);

        size_t piece = (size_t)(nl - (bytes + pos));
        if (lb_append(lb, bytes + pos, piece) < 0)
            return -1;
        pos += piece + 1;

        if (lb->discarding) {       /* end of the overlong line */
            lb->discarding = 0;
            lb->len = 0;
            continue;
        }
        size_t len = lb->len;
        if (len > 0 && lb->data[len - 1] == '\r')
            len--;
        lb->len = 0;
        if (fn(lb->data, len, ctx))
            return 1;
    }
    return 0;
}
