#define _POSIX_C_SOURCE 200809L
#include "clientlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Client *clientlist_add(ClientList *list, int sock)
{
    Client *c = calloc(1, sizeof(Client));
    if (!c)
        return NULL;
    c->sock = sock;
    /* new clients go at the front, order doesn't matter */
    c->next = list->head;
    list->head = c;
    list->count++;
    return c;
}

static void free_client(Client *c)
{
    OutMsg *m = c->outHead;
    while (m) {
        OutMsg *next = m->next;
        free(m->data);
        free(m);
        m = next;
    }
    free(c->inBuf);
    close(c->sock);
    free(c);
}

void clientlist_remove_closing(ClientList *list)
{
    Client **pp = &list->head;
    while (*pp) {
        Client *c = *pp;
        if (c->closing) {
            *pp = c->next;
            list->count--;
            free_client(c);
        } else {
            pp = &c->next;
        }
    }
}

void clientlist_free_all(ClientList *list)
{
    Client *c = list->head;
    while (c) {
        Client *next = c->next;
        free_client(c);
        c = next;
    }
    list->head = NULL;
    list->count = 0;
}

int client_queue(Client *c, const char *msg, size_t len)
{
    if (c->outBytes + len + 1 > MAX_QUEUED)
        return -1;
    OutMsg *m = malloc(sizeof(OutMsg));
    if (!m)
        return -1;
    m->data = malloc(len + 1);
    if (!m->data) {
        free(m);
        return -1;
    }
    memcpy(m->data, msg, len);
    m->data[len] = '\n';
    m->len = len + 1;
    m->next = NULL;
    if (c->outTail)
        c->outTail->next = m;
    else
        c->outHead = m;
    c->outTail = m;
    c->outBytes += m->len;
    return 0;
}

int client_flush(Client *c)
{
    while (c->outHead) {
        OutMsg *m = c->outHead;
        ssize_t n = send(c->sock, m->data + c->headSent, m->len - c->headSent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;   /* try again when select says writable */
            return -1;
        }
        c->headSent += (size_t)n;
        c->outBytes -= (size_t)n;
        if (c->headSent == m->len) {
            c->outHead = m->next;
            if (!c->outHead)
                c->outTail = NULL;
            free(m->data);
            free(m);
            c->headSent = 0;
        }
    }
    return 0;
}

int client_append_input(Client *c, const char *data, size_t len)
{
    if (c->truncating)
        return 0;
    if (c->inLen + len > MAX_LINE) {
        len = MAX_LINE - c->inLen;
        c->truncating = 1;
    }
    if (c->inLen + len > c->inCap) {
        size_t newCap = c->inCap ? c->inCap : 256;
        while (newCap < c->inLen + len)
            newCap *= 2;
        if (newCap > MAX_LINE)
            newCap = MAX_LINE;
        char *p = realloc(c->inBuf, newCap);
        if (!p)
            return -1;
        c->inBuf = p;
        c->inCap = newCap;
    }
    memcpy(c->inBuf + c->inLen, data, len);
    c->inLen += len;
    return 0;
}
