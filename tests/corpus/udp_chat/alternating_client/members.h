#ifndef MEMBERS_H
#define MEMBERS_H

#include <netinet/in.h>
#include <stddef.h>

/* the group: a dynamic array that doubles when it is full */
struct group {
    struct sockaddr_in *who;
    size_t n;
    size_t room;
};

void group_init(struct group *g);
void group_free(struct group *g);
/* index of addr, or -1 */
long group_find(const struct group *g, const struct sockaddr_in *addr);
/* 0 on success, -1 when out of memory */
int group_add(struct group *g, const struct sockaddr_in *addr);
void group_remove(struct group *g, size_t idx);

#endif
