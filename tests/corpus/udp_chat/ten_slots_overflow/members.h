#ifndef MEMBERS_H
#define MEMBERS_H

#include <netinet/in.h>
#include <stddef.h>

#define MAX_CLIENTS 10

/* the group: a plain array, nothing to malloc */
struct group {
    struct sockaddr_in who[MAX_CLIENTS];
    size_t n;
};

void group_init(struct group *g);
void group_free(struct group *g);
/* index of addr, or -1 */
long group_find(const struct group *g, const struct sockaddr_in *addr);
/* 0 on success */
int group_add(struct group *g, const struct sockaddr_in *addr);
void group_remove(struct group *g, size_t idx);

#endif
