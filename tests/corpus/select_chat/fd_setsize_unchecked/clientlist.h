#ifndef CLIENTLIST_H
#define CLIENTLIST_H

#include <stddef.h>

#define MAX_LINE 8192            /* longer lines get truncated to this */
#define MAX_QUEUED (512 * 1024)  /* bytes queued for one client before we give up on it */

/* one message waiting to go out to a client */
typedef struct OutMsg {
    char *data;
    size_t len;
    struct OutMsg *next;
} OutMsg;

typedef struct Client {
    int sock;
    char *inBuf;          /* the line so far (malloc'd, grows up to MAX_LINE) */
    size_t inLen;
    size_t inCap;
    int truncating;       /* line hit MAX_LINE, ignore bytes until '\n' */
    OutMsg *outHead;
    OutMsg *outTail;
    size_t headSent;      /* bytes of outHead already sent */
    size_t outBytes;      /* total queued */
    int closing;          /* remove at the end of this round */
    struct Client *next;
} Client;

typedef struct ClientList {
    Client *head;
    int count;
} ClientList;

Client *clientlist_add(ClientList *list, int sock);
void clientlist_remove_closing(ClientList *list);   /* closes + frees those marked */
void clientlist_free_all(ClientList *list);

/* queue a message (plus '\n'); returns -1 if the client's queue is full */
int client_queue(Client *c, const char *msg, size_t len);
/* send what the socket takes right now; returns -1 on a real error */
int client_flush(Client *c);
/* append bytes to the line being built, truncating past MAX_LINE */
int client_append_input(Client *c, const char *data, size_t len);

#endif
