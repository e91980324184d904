#include "members.h"

#include <string.h>

void group_init(struct group *g)
{
    memset(g, 0, sizeof(*g));
}

void group_free(struct group *g)
{
    g->n = 0;       /* nothing was malloc'd */
}

long group_find(const struct group *g, const struct sockaddr_in *addr)
{
    for (size_t i = 0; i < g->n; i++) {
        /* compare the fields, not the whole struct (sin_zero padding) */
        if (g->who[i].sin_addr.s_addr == addr->sin_addr.s_addr &&
            g->who[i].sin_port == addr->sin_port)
            return (long)i;
    }
    return -1;
}

int group_add(struct group *g, const struct sockaddr_in *addr)
{
    g->who[g->n++] = *addr;
    return 0;
}

/* keeps the order of the others (memmove), so the log reads nicely */
void group_remove(struct group *g, size_t idx)
{
    memmove(&g->who[idx], &g->who[idx + 1], (g->n - idx - 1) * sizeof(struct sockaddr_in));
    g->n--;
}
