/*
 * loadgen.c - load generator for newline-framed chat relay servers.
 *
 * Opens N TCP clients to 127.0.0.1:PORT, confirms that every client is a
 * member of the chat, then has each client send M lines of a fixed size,
 * either as fast as the sockets take them (flood) or at R lines per second
 * per client (paced).  Every line names its sender, a sequence number and
 * the CLOCK_MONOTONIC time it was handed to the kernel, so the receiving
 * side can measure relay latency, loss, order and whether the line arrived
 * whole.
 *
 * Threads: setup runs on the main thread (one epoll for all clients).  For
 * the measurement the clients are dealt out to K workers (-j), client i to
 * worker i % K, each with its own epoll, timer and statistics; worker 0 is
 * the main thread.  A worker touches only its own clients; what workers
 * share is read-mostly: the per-sender delivery counts of the flood window
 * and the arrival time of the idle rule, each written by one worker only.
 * The statistics are merged once every worker has stopped.
 *
 * Output: one JSON object on stdout (for scripts), one human line on stderr.
 * Exit status: 0 a measurement was made (whatever its result), 1 the run
 * could not be set up (connect failed, membership never confirmed), 2 usage.
 *
 * Wire formats (each line is exactly --size bytes plus '\n' for data lines):
 *   H <id>                    hello (membership phase)
 *   R <id>                    ready (membership check phase)
 *   M <id> <seq> <ns> xxx...  data line, padded with 'x' to --size bytes
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SCM_TIMESTAMPNS            /* glibc hides it without _GNU_SOURCE */
#define SCM_TIMESTAMPNS SO_TIMESTAMPNS
#endif

#define MIN_SIZE      48          /* room for the longest "M id seq ns " header */
#define MAX_SIZE      1000        /* the protocol only promises 1000-byte lines */
#define IN_CAP        (64 * 1024) /* per-client receive buffer; also the longest line kept */
#define SEND_BATCH    (16 * 1024) /* flood: bytes formatted per writable event */
#define MAX_EVENTS    256
#define HIST_SUB_BITS 6           /* 64 sub-buckets per power of two: < 1.6 % error */
#define HIST_BUCKETS  (128 + 58 * 64)
#define PER_SENDER_MAX 64         /* cap the per-sender list in the JSON line */
#define MAX_THREADS   64
#define WINDOW_RECHECK_NS 1000000 /* flood: how often a worker re-checks senders
                                     waiting for deliveries seen by other workers */

enum phase {
	PHASE_HELLO,   /* connecting; waiting until every client is known to be a member */
	PHASE_READY,   /* every client sent R; waiting until each has all N-1 of them */
	PHASE_MEASURE, /* data lines flowing */
};

struct worker;

struct client {
	int fd;
	struct worker *w;   /* the worker whose epoll polls it */
	bool connected;     /* non-blocking connect() has completed */
	bool member;        /* proven to be in the server's member list */
	bool closed;        /* server closed it, or an error: no longer polled */
	bool want_out;      /* EPOLLOUT currently registered */
	bool skipping;      /* discarding an over-long line up to its '\n' */
	uint32_t ready_seen;/* R lines received from other clients */
	uint32_t next_seq;  /* next data sequence number to format */
	char *in;           /* bytes received, not yet a whole line */
	size_t in_len;
	char *out;          /* bytes formatted, not yet accepted by the kernel */
	size_t out_off, out_len, out_cap;
};

struct options {
	int port;
	uint32_t clients;
	uint32_t messages;
	uint32_t size;
	double rate;        /* lines/s per client; 0 = flood */
	double deadline_s;  /* the whole run, setup included */
	double idle_s;      /* stop this long after the last arrival once all is sent */
	const char *strip;  /* regex: removed from the start of a line if it matches there */
	const char *ignore; /* regex: lines that match are server notices, not messages */
	uint32_t window;    /* connects in flight whose membership is not yet proven */
	double backlog;     /* flood: bytes in flight per receiver to aim at; 0 = open loop */
	uint32_t threads;   /* workers during the measurement (-j) */
	int server_pid;     /* whose CPU time to report; 0 = none */
	bool quiet;
};

/* A latency distribution: histogram, count and exact maximum, in ns. */
struct latency {
	uint64_t hist[HIST_BUCKETS];
	uint64_t max;
	uint64_t count;
};

/* Everything the receive side counts (one per worker, merged at the end). */
struct stats {
	uint64_t received;      /* whole data lines from another client */
	uint64_t broken;        /* lines that are no whole message of ours */
	uint64_t broken_setup;  /* the same, before the measurement started */
	uint64_t ignored;       /* server notices matched by --ignore */
	uint64_t echoed;        /* a client got its own line back */
	uint64_t out_of_order;
	uint64_t disconnected;  /* clients the server closed */
	struct latency lat;     /* send -> queued in the receiving socket (kernel stamp) */
	struct latency read_lat;/* send -> our read() returned it */
	uint64_t unstamped;     /* reads without a kernel timestamp: read time used */
	uint64_t max_send_lag;  /* paced: how late the worst line left vs its slot */
};

/*
 * One thread's share of the clients: ids idx, idx + K, idx + 2K, ...
 * Only the worker itself writes its fields, except as noted.
 */
struct worker {
	pthread_t tid;
	bool started;           /* tid is a thread to join */
	uint32_t idx;
	uint32_t n_own;         /* clients it owns */
	int epfd;
	int tfd;                /* paced: fires at its next slot */
	bool measuring;
	bool deadline_hit;
	const char *error;      /* epoll_wait failed: the measurement is void */
	uint64_t expected;      /* data lines its receivers are to get */
	uint64_t paced_next;    /* paced: index of its next own slot */
	uint64_t next_recheck;  /* flood: when to re-check waiting senders */
	uint32_t waiting;       /* flood: own senders waiting for deliveries */
	struct stats st;
	/*
	 * Read by other workers, so atomic (relaxed: a stale value only
	 * delays a decision by one loop turn).  delivered[s]: lines of sender
	 * s received by this worker's clients (the flood window); last_rx_ns:
	 * read() of its latest data line (the idle rule).
	 */
	_Atomic uint64_t *delivered;
	_Atomic uint64_t last_rx_ns;
};

static struct options opt = {
	.port = -1, .clients = 10, .messages = 100, .size = 64,
	.rate = 0, .deadline_s = 30, .idle_s = 2, .window = 8,
	.backlog = 256 * 1024, .threads = 2,
};
static struct client *clients;
static struct worker workers[MAX_THREADS];
static uint32_t *pair_count;    /* [receiver * N + sender]: lines received */
static uint32_t *pair_next;     /* [receiver * N + sender]: highest seq seen + 1 */
static regex_t strip_re, ignore_re;
static char padding[MAX_SIZE];  /* all 'x': what a data line ends with */
static enum phase phase = PHASE_HELLO;
static uint32_t members, ready_clients, connected, started;
static uint64_t t_start, t_measure, deadline;

/* Returns CLOCK_MONOTONIC in nanoseconds: the clock embedded in every line. */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: chat_loadgen -p PORT [-n CLIENTS] [-m MESSAGES] [-s SIZE]\n"
	    "                    [-r RATE] [-d DEADLINE_S] [-i IDLE_S]\n"
	    "                    [-x STRIP_REGEX] [-g IGNORE_REGEX] [--ncat]\n"
	    "                    [-w WINDOW] [-b BACKLOG] [-j THREADS]\n"
	    "                    [--server-pid PID] [-q]\n"
	    "  -p, --port       server port on 127.0.0.1 (required)\n"
	    "  -n, --clients    clients (default 10)\n"
	    "  -m, --messages   data lines per client (default 100)\n"
	    "  -s, --size       bytes per line without '\\n', %d..%d (default 64)\n"
	    "  -r, --rate       lines/s per client; 0 = flood (default 0)\n"
	    "  -d, --deadline   stop after this many seconds in all (default 30)\n"
	    "  -i, --idle       once all is sent, stop after this long without\n"
	    "                   an arrival (default 2)\n"
	    "  -x, --strip      POSIX ERE removed from the start of a line\n"
	    "  -g, --ignore     POSIX ERE: matching lines are notices, not counted\n"
	    "      --ncat       same as -x '^<user[0-9]+> ' -g '^<announce> '\n"
	    "  -w, --window     connects in flight before membership is proven,\n"
	    "                   at least 2 (default 8: below common listen backlogs)\n"
	    "  -b, --backlog    flood: limit each sender's lines in flight so each\n"
	    "                   receiver has about this many bytes on the way;\n"
	    "                   0 = open loop (default 262144)\n"
	    "  -j, --threads    reader threads during the measurement, 1..%d,\n"
	    "                   at most CLIENTS (default 2)\n"
	    "      --server-pid report this process's CPU time while measuring\n"
	    "  -q, --quiet      no human-readable line on stderr\n",
	    MIN_SIZE, MAX_SIZE, MAX_THREADS);
}

/* Parses a decimal in [lo, hi] into *out; returns -1 if it is not one. */
static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Fills opt from argv; exits 2 on a usage error. */
static void parse_args(int argc, char **argv)
{
	static const struct option longs[] = {
		{"port", required_argument, NULL, 'p'},
		{"clients", required_argument, NULL, 'n'},
		{"messages", required_argument, NULL, 'm'},
		{"size", required_argument, NULL, 's'},
		{"rate", required_argument, NULL, 'r'},
		{"deadline", required_argument, NULL, 'd'},
		{"idle", required_argument, NULL, 'i'},
		{"strip", required_argument, NULL, 'x'},
		{"ignore", required_argument, NULL, 'g'},
		{"ncat", no_argument, NULL, 'N'},
		{"window", required_argument, NULL, 'w'},
		{"backlog", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 'j'},
		{"server-pid", required_argument, NULL, 'P'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	double v;
	int c;

	while ((c = getopt_long(argc, argv, "p:n:m:s:r:d:i:x:g:w:b:j:qh", longs, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 'p': bad = parse_num(optarg, 1, 65535, &v); opt.port = (int)v; break;
		case 'n': bad = parse_num(optarg, 2, 10000, &v); opt.clients = (uint32_t)v; break;
		case 'm': bad = parse_num(optarg, 1, 1e8, &v); opt.messages = (uint32_t)v; break;
		case 's': bad = parse_num(optarg, MIN_SIZE, MAX_SIZE, &v); opt.size = (uint32_t)v; break;
		case 'r': bad = parse_num(optarg, 0, 1e6, &opt.rate); break;
		case 'd': bad = parse_num(optarg, 0.1, 3600, &opt.deadline_s); break;
		case 'i': bad = parse_num(optarg, 0.01, 3600, &opt.idle_s); break;
		case 'x': opt.strip = optarg; break;
		case 'g': opt.ignore = optarg; break;
		case 'b': bad = parse_num(optarg, 0, 1e9, &opt.backlog); break;
		case 'w': bad = parse_num(optarg, 2, 10000, &v); opt.window = (uint32_t)v; break;
		case 'j': bad = parse_num(optarg, 1, MAX_THREADS, &v); opt.threads = (uint32_t)v; break;
		case 'P': bad = parse_num(optarg, 1, 1e9, &v); opt.server_pid = (int)v; break;
		case 'N': opt.strip = "^<user[0-9]+> "; opt.ignore = "^<announce> "; break;
		case 'q': opt.quiet = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
		if (bad) {
			fprintf(stderr, "chat_loadgen: bad value for -%c: %s\n", c, optarg);
			exit(2);
		}
	}
	if (opt.port < 0 || optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (opt.threads > opt.clients)
		opt.threads = opt.clients;	/* every worker owns a client */
	if (opt.strip && regcomp(&strip_re, opt.strip, REG_EXTENDED) != 0) {
		fprintf(stderr, "chat_loadgen: bad --strip regex: %s\n", opt.strip);
		exit(2);
	}
	if (opt.ignore && regcomp(&ignore_re, opt.ignore, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "chat_loadgen: bad --ignore regex: %s\n", opt.ignore);
		exit(2);
	}
}

/*
 * Raises the soft open-file limit so N sockets fit (500 clients is above the
 * common default of 1024 only with other fds, but a soft limit of 256 or 512
 * is not rare).  Returns -1 if even the hard limit is too low.
 */
static int raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		return -1;
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

/* Latency histogram: exact below 128 ns, then 64 buckets per power of two. */
static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 128)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return 128u + (shift - 1u) * 64u + (unsigned)((v >> shift) - 64u);
}

/* Returns the middle of a histogram bucket, the value reported for it. */
static uint64_t hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < 128)
		return idx;
	shift = (idx - 128u) / 64u + 1u;
	return ((uint64_t)((idx - 128u) % 64u + 64u) << shift) + ((uint64_t)1 << (shift - 1u));
}

/* Adds one latency (ns) to a distribution. */
static void lat_record(struct latency *l, uint64_t v)
{
	l->hist[hist_index(v)]++;
	l->count++;
	if (v > l->max)
		l->max = v;
}

/* Returns the p-quantile (0 < p <= 1) of a distribution, in ns. */
static uint64_t lat_quantile(const struct latency *l, double p)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (l->count == 0)
		return 0;
	rank = (uint64_t)(p * (double)l->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += l->hist[i];
		if (seen >= rank)
			return hist_value(i) < l->max ? hist_value(i) : l->max;
	}
	return l->max;
}

/* Registers the events a client needs now: always input, output only while
 * something waits to be sent (level-triggered EPOLLOUT would spin otherwise). */
static void update_events(uint32_t id, bool want_out)
{
	struct client *c = &clients[id];
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = id };

	if (c->closed || c->want_out == want_out)
		return;
	if (want_out)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = want_out;
}

/* Stops polling a client the server closed (or that failed). */
static void drop_client(uint32_t id)
{
	struct client *c = &clients[id];

	if (c->closed)
		return;
	epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->closed = true;
	c->w->st.disconnected++;
}

/* Appends bytes to a client's pending output, growing the buffer. */
static int out_append(struct client *c, const char *buf, size_t len)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p)
			return -1;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return 0;
}

/*
 * Writes as much pending output as the kernel takes.  Returns 1 if all of it
 * went, 0 if some is left (EAGAIN), -1 if the connection failed.
 */
static int flush_out(uint32_t id)
{
	struct client *c = &clients[id];

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 1;
}

/* Sends what is pending and keeps EPOLLOUT registered exactly while needed. */
static void send_pending(uint32_t id, bool more_to_come)
{
	int r = flush_out(id);

	if (r < 0) {
		drop_client(id);
		return;
	}
	update_events(id, r == 0 || more_to_come);
}

/* Formats data line `seq` of client `id` into buf (size + 1 bytes). */
static void format_line(char *buf, uint32_t id, uint32_t seq, uint64_t ts)
{
	int n = snprintf(buf, opt.size + 1, "M %" PRIu32 " %" PRIu32 " %" PRIu64 " ",
	    id, seq, ts);

	memset(buf + n, 'x', opt.size - (size_t)n);
	buf[opt.size] = '\n';
}

/*
 * Flood window: how many more lines sender `id` may send now.  An open-loop
 * flood outruns a single-threaded reader, and a server that bounds its
 * per-client output (as the protocol asks) then drops our "slow" clients,
 * so the run would measure that policy, not throughput.  Closing the loop
 * on deliveries keeps the backlog at each receiver near --backlog bytes:
 * (N-1) senders x window lines x (size+1) bytes.
 */
static uint32_t flood_allowance(uint32_t id)
{
	uint64_t window, in_flight, delivered = 0;
	uint32_t i;

	if (opt.backlog <= 0)
		return UINT32_MAX;
	window = (uint64_t)(opt.backlog / ((double)(opt.clients - 1) * (opt.size + 1)));
	if (window < 1)
		window = 1;
	for (i = 0; i < opt.threads; i++)
		delivered += atomic_load_explicit(&workers[i].delivered[id],
		    memory_order_relaxed);
	/* Lines not yet delivered to everyone, counted in whole lines. */
	in_flight = clients[id].next_seq - delivered / (opt.clients - 1);
	return in_flight >= window ? 0 : (uint32_t)(window - in_flight);
}

/*
 * Flood: on each writable event, first finish the earlier batch, then format
 * a new one stamped with the current time.  Formatting only when the socket
 * has room keeps our own queueing out of the measured latency.
 */
static void flood_send(uint32_t id)
{
	struct client *c = &clients[id];
	char batch[SEND_BATCH];
	size_t len = 0;
	uint32_t allowed;
	uint64_t ts;
	int r;

	r = flush_out(id);
	if (r < 0) {
		drop_client(id);
		return;
	}
	if (r == 0)
		return;
	allowed = flood_allowance(id);
	if (allowed == 0) {
		/* Wait for deliveries (record_data re-arms EPOLLOUT). */
		update_events(id, false);
		return;
	}
	ts = now_ns();
	while (c->next_seq < opt.messages && len + opt.size + 1 <= sizeof(batch)
	    && allowed-- > 0) {
		format_line(batch + len, id, c->next_seq++, ts);
		len += opt.size + 1;
	}
	if (len > 0 && out_append(c, batch, len) < 0) {
		drop_client(id);
		return;
	}
	send_pending(id, c->next_seq < opt.messages);
}

/* Queues a short control line (hello or ready) and tries to send it now. */
static void send_control(uint32_t id, char kind)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%c %" PRIu32 "\n", kind, id);

	if (out_append(&clients[id], line, (size_t)n) < 0) {
		drop_client(id);
		return;
	}
	send_pending(id, false);
}

/* Parses an unsigned decimal of at least one digit; advances *p past it. */
static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	*p = s;
	*out = v;
	return true;
}

/* A control line "H id" / "R id": returns the id, or -1 if malformed. */
static long parse_control(const char *s, const char *end)
{
	uint64_t id;

	s += 2;
	if (!parse_u64(&s, end, &id) || s != end || id >= opt.clients)
		return -1;
	return (long)id;
}

/* When the bytes of one read() arrived: queued by the kernel, read by us. */
struct arrival {
	uint64_t queued;
	uint64_t read;
};

/* Records one data line from `sender` with sequence `seq` arriving at `rcv`. */
static void record_data(uint32_t rcv, uint32_t sender, uint32_t seq, uint64_t sent,
    const struct arrival *arrived)
{
	size_t k = (size_t)rcv * opt.clients + sender;
	struct worker *w = clients[rcv].w;
	struct stats *st = &w->st;
	_Atomic uint64_t *delivered = &w->delivered[sender];

	if (sender == rcv) {
		st->echoed++;
		return;
	}
	st->received++;
	pair_count[k]++;
	/* Only this worker writes it: load and store, no locked add. */
	atomic_store_explicit(delivered,
	    atomic_load_explicit(delivered, memory_order_relaxed) + 1,
	    memory_order_relaxed);
	/* A delivery may reopen the sender's flood window: poll it again.  A
	 * sender of another worker is re-checked by that worker's timer. */
	if (phase == PHASE_MEASURE && opt.rate == 0 && clients[sender].w == w
	    && clients[sender].next_seq < opt.messages)
		update_events(sender, true);
	if (seq + 1 <= pair_next[k])
		st->out_of_order++;
	else
		pair_next[k] = seq + 1;
	lat_record(&st->lat, arrived->queued > sent ? arrived->queued - sent : 0);
	lat_record(&st->read_lat, arrived->read > sent ? arrived->read - sent : 0);
	atomic_store_explicit(&w->last_rx_ns, arrived->read, memory_order_relaxed);
}

/* Counts a line received by `rcv` that is no whole message of ours
 * (merged, split, garbled). */
static void count_broken(uint32_t rcv)
{
	if (phase == PHASE_MEASURE)
		clients[rcv].w->st.broken++;
	else
		clients[rcv].w->st.broken_setup++;
}

/* Marks a client as proven to be in the server's member list. */
static void set_member(uint32_t id)
{
	if (!clients[id].member) {
		clients[id].member = true;
		members++;
	}
}

/* True if a line starts like one of ours: "M ", "H " or "R ". */
static bool looks_like_ours(const char *s, size_t len)
{
	return len >= 2 && (s[0] == 'M' || s[0] == 'H' || s[0] == 'R') && s[1] == ' ';
}

/*
 * Handles one received line (without its '\n', NUL-terminated in place).
 * Whether it parses is the "whole line" check: a data line must be exactly
 * --size bytes of "M id seq ns " plus 'x' padding, so a merged line is too
 * long or has a foreign byte in its padding, and a split one is too short.
 */
static void handle_line(uint32_t rcv, char *s, size_t len, const struct arrival *arrived)
{
	const char *p, *end;
	uint64_t sender = 0, seq = 0, ts = 0;
	regmatch_t m;
	long id;

	/*
	 * regexec() costs more than all the rest of this function; a line that
	 * already starts like one of ours has no prefix to strip and is no
	 * notice, so skip it there and keep the generator from being what a
	 * prefixing server's numbers measure.
	 */
	if (!looks_like_ours(s, len)) {
		if (opt.ignore && regexec(&ignore_re, s, 0, NULL, 0) == 0) {
			clients[rcv].w->st.ignored++;
			return;
		}
		if (opt.strip && regexec(&strip_re, s, 1, &m, 0) == 0 && m.rm_so == 0) {
			s += m.rm_eo;
			len -= (size_t)m.rm_eo;
		}
	}
	end = s + len;
	if (len >= 3 && (s[0] == 'H' || s[0] == 'R') && s[1] == ' ') {
		id = parse_control(s, end);
		if (id < 0 || (uint32_t)id == rcv) {
			count_broken(rcv);
			return;
		}
		if (s[0] == 'H') {
			set_member((uint32_t)id);
		} else if (++clients[rcv].ready_seen == opt.clients - 1) {
			ready_clients++;
		}
		return;
	}
	p = s + 2;
	if (len != opt.size || s[0] != 'M' || s[1] != ' '
	    || !parse_u64(&p, end, &sender) || p == end || *p++ != ' '
	    || !parse_u64(&p, end, &seq) || p == end || *p++ != ' '
	    || !parse_u64(&p, end, &ts) || p == end || *p++ != ' '
	    || sender >= opt.clients || seq >= opt.messages) {
		count_broken(rcv);
		return;
	}
	/* memcmp() checks the padding many bytes at a time; in a flood this
	 * check is the generator's hottest loop. */
	if (memcmp(p, padding, (size_t)(end - p)) != 0) {
		count_broken(rcv);
		return;
	}
	record_data(rcv, (uint32_t)sender, (uint32_t)seq, ts, arrived);
}

/*
 * The kernel's receive timestamp of a recvmsg() (SO_TIMESTAMPNS: when the
 * newest of the bytes read was queued for this socket), converted to
 * CLOCK_MONOTONIC by how long ago it was on CLOCK_REALTIME.  Returns
 * read_ns if there is none.
 */
static uint64_t queued_ns(struct msghdr *msg, uint64_t read_ns, struct stats *st)
{
	struct cmsghdr *cm;
	struct timespec now;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		struct timespec ts;
		int64_t waited;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
		clock_gettime(CLOCK_REALTIME, &now);
		waited = (int64_t)(now.tv_sec - ts.tv_sec) * 1000000000
		    + (now.tv_nsec - ts.tv_nsec);
		if (ts.tv_sec == 0 || waited < 0 || (uint64_t)waited > read_ns)
			break;
		return read_ns - (uint64_t)waited;
	}
	st->unstamped++;
	return read_ns;
}

/*
 * Reads what one client has and handles every whole line in it.  One
 * timestamp pair per read(): the lines in one buffer arrived together, and
 * a clock call per line would cost more than the parsing.  The kernel's
 * stamp is what latency is measured to, so that the time the bytes wait
 * for this one thread to get round to their socket (up to a millisecond
 * when 100 sockets receive 99,000 lines/s) is not charged to the server;
 * the read() time is reported beside it (lat_read_*).
 */
static void read_client(uint32_t id)
{
	struct client *c = &clients[id];
	char *line, *nl, *end;
	struct arrival arrived;
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { c->in + c->in_len, IN_CAP - c->in_len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	ssize_t n;

	n = recvmsg(c->fd, &msg, 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		drop_client(id);
		return;
	}
	arrived.read = now_ns();
	arrived.queued = queued_ns(&msg, arrived.read, &c->w->st);
	/* Any byte from the server proves it has accepted this client. */
	set_member(id);
	end = c->in + c->in_len + n;
	line = c->in;
	while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
		*nl = '\0';
		if (c->skipping)
			c->skipping = false;
		else
			handle_line(id, line, (size_t)(nl - line), &arrived);
		line = nl + 1;
	}
	c->in_len = (size_t)(end - line);
	if (c->in_len == IN_CAP) {
		/* A line longer than the buffer is certainly not one of ours. */
		count_broken(id);
		c->skipping = true;
		c->in_len = 0;
	} else if (line != c->in) {
		memmove(c->in, line, c->in_len);
	}
}

/* Starts a non-blocking connect to 127.0.0.1:port.  Returns the fd or -1. */
static int start_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1, save_errno;

	sa.sin_port = htons((uint16_t)opt.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		goto out_close_fd;
	/* Latency is the point: do not let Nagle hold back small lines. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Receive timestamps: when data reached the socket (see read_client). */
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		goto out_close_fd;
	return fd;

out_close_fd:
	save_errno = errno;
	close(fd);
	errno = save_errno;
	return -1;
}

/* Starts the connect of client `id` and polls it.  Returns -1 on failure. */
static int connect_client(uint32_t id)
{
	struct client *c = &clients[id];
	/* EPOLLOUT first: it reports the end of the connect. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = id };

	c->fd = start_connect();
	if (c->fd < 0)
		return -1;
	c->want_out = true;
	c->w = &workers[0];	/* setup runs on the main thread */
	return epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Completes a non-blocking connect; sends the hello.  Returns -1 on failure. */
static int finish_connect(uint32_t id)
{
	struct client *c = &clients[id];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		errno = err ? err : errno;
		return -1;
	}
	c->connected = true;
	connected++;
	update_events(id, false);
	send_control(id, 'H');
	return 0;
}

/* The clients worker w owns: ids w->idx, w->idx + K, ... */
#define for_each_own(id, w) \
	for ((id) = (w)->idx; (id) < opt.clients; (id) += opt.threads)

/* Data lines of w's clients not yet accepted by the kernel (each is exactly
 * size+1 bytes). */
static uint64_t unsent_lines(const struct worker *w)
{
	uint64_t total = 0;
	uint32_t id;

	for_each_own(id, w) {
		const struct client *c = &clients[id];

		if (c->closed)
			continue;	/* never to be sent: counted as lost */
		total += opt.messages - c->next_seq;
		total += (c->out_len - c->out_off + opt.size) / (opt.size + 1);
	}
	return total;
}

/* The latest arrival at w's clients, or the start if none. */
static uint64_t last_arrival(const struct worker *w)
{
	uint64_t t = atomic_load_explicit(&w->last_rx_ns, memory_order_relaxed);

	return t > t_measure ? t : t_measure;
}

/*
 * True once no worker's clients have received anything for --idle seconds.
 * The others are asked only after `self` has been idle that long: their
 * arrival times are written for every line.
 */
static bool all_idle(const struct worker *self, uint64_t now, uint64_t idle_ns)
{
	uint32_t i;

	if (now <= last_arrival(self) + idle_ns)
		return false;
	for (i = 0; i < opt.threads; i++)
		if (now <= last_arrival(&workers[i]) + idle_ns)
			return false;
	return true;
}

/*
 * Flood: gives each of w's senders that waits for its window another chance.
 * Deliveries to w's own clients re-arm a sender at once (record_data); this
 * catches those seen by the other workers.  Returns how many still wait.
 */
static uint32_t recheck_windows(struct worker *w)
{
	uint32_t id, waiting = 0;

	for_each_own(id, w) {
		struct client *c = &clients[id];

		if (c->closed || c->want_out || c->next_seq >= opt.messages)
			continue;
		flood_send(id);
		if (!c->closed && !c->want_out)
			waiting++;
	}
	return waiting;
}

/*
 * Paced: the whole run is one global schedule of N*M slots, slot k at
 * t_measure + k / (N * R) seconds, for client k % N.  Staggering the
 * clients keeps them from all sending in the same instant; the line is
 * stamped when actually sent, so our own lateness is not counted as relay
 * latency (it is reported separately as max_send_lag).  Each worker walks
 * the slots of its own clients: its j-th is round j / n_own of its
 * (j % n_own)-th client.
 */
static uint64_t slot_time(uint64_t k)
{
	return t_measure + (uint64_t)((double)k * 1e9 / (opt.rate * opt.clients));
}

static uint64_t own_slot(const struct worker *w, uint64_t j)
{
	return j / w->n_own * opt.clients + w->idx + j % w->n_own * opt.threads;
}

static void paced_send_due(struct worker *w)
{
	uint64_t total = (uint64_t)w->n_own * opt.messages, now = now_ns();
	struct itimerspec its = { 0 };
	char line[MAX_SIZE + 1];

	while (w->paced_next < total && slot_time(own_slot(w, w->paced_next)) <= now) {
		uint64_t k = own_slot(w, w->paced_next++), due = slot_time(k);
		uint32_t id = (uint32_t)(k % opt.clients);
		struct client *c = &clients[id];

		if (now - due > w->st.max_send_lag)
			w->st.max_send_lag = now - due;
		if (c->closed)
			continue;
		format_line(line, id, c->next_seq++, now);
		if (out_append(c, line, opt.size + 1) < 0) {
			drop_client(id);
			continue;
		}
		send_pending(id, false);
		now = now_ns();
	}
	if (w->paced_next < total) {
		uint64_t t = slot_time(own_slot(w, w->paced_next));

		its.it_value.tv_sec = (time_t)(t / 1000000000u);
		its.it_value.tv_nsec = (long)(t % 1000000000u);
	}
	/* An all-zero it_value disarms the timer once the schedule is done. */
	timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* CPU time used so far by process `pid`, or by this one (pid 0), in ns;
 * 0 if it cannot be read (the process is gone). */
static uint64_t cpu_ns(int pid)
{
	clockid_t clk = CLOCK_PROCESS_CPUTIME_ID;
	struct timespec ts;

	if (pid > 0 && clock_getcpuclockid(pid, &clk) != 0)
		return 0;
	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the generator and the server over the measurement. */
static struct {
	uint64_t gen_start, server_start, gen_ns, server_ns, wall_ns;
} cpu;

static void *worker_main(void *arg);

/*
 * Starts the measurement: deals the clients out to the workers (client i
 * to worker i % K: it moves from the setup epoll to its worker's) and
 * starts workers 1..K-1; worker 0 is the caller.  Returns NULL or what
 * failed.
 */
static const char *start_measuring(void)
{
	uint32_t id, i;
	int err;

	for (id = 0; id < opt.clients; id++) {
		struct client *c = &clients[id];
		struct worker *w = &workers[id % opt.threads];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = id };

		if (w == c->w)
			continue;
		if (c->want_out)
			ev.events |= EPOLLOUT;
		if (epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0
		    || epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
			perror("chat_loadgen: epoll_ctl");
			return "cannot hand the clients to the workers";
		}
		c->w = w;
	}
	phase = PHASE_MEASURE;
	t_measure = now_ns();
	cpu.gen_start = cpu_ns(0);
	if (opt.server_pid > 0)
		cpu.server_start = cpu_ns(opt.server_pid);
	for (i = 1; i < opt.threads; i++) {
		err = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
		if (err != 0) {
			errno = err;
			perror("chat_loadgen: pthread_create");
			return "cannot start the worker threads";
		}
		workers[i].started = true;
	}
	return NULL;
}

/*
 * Membership without sleeping: a client is a member once the server has
 * written to it or relayed its hello (it reads a client only after accepting
 * it).  Once all are members, every client sends R; those are relayed to all,
 * so when each client holds N-1 of them, all N are in the member list.
 *
 * Connects are started a window at a time: a burst of 500 SYNs overflows a
 * small listen backlog (ncat's is 10) and the kernel then retries only after
 * a second, which would make setup time measure the backlog.  Any window of
 * two or more makes progress, since each new hello proves its sender and
 * reaches the earlier members.  Returns NULL, or what failed.
 */

static const char *advance_setup(void)
{
	uint32_t i;

	if (phase == PHASE_HELLO) {
		while (started < opt.clients && started - members < opt.window)
			if (connect_client(started++) < 0) {
				perror("chat_loadgen: connect to 127.0.0.1");
				return "cannot open the clients";
			}
		if (members < opt.clients)
			return NULL;
		phase = PHASE_READY;
		for (i = 0; i < opt.clients; i++)
			send_control(i, 'R');
	}
	if (phase == PHASE_READY && ready_clients == opt.clients)
		return start_measuring();
	return NULL;
}

/*
 * One worker's event loop.  Worker 0, on the main thread, first runs the
 * setup with every client and then starts the others.  Returns when its
 * own clients have every line (and have sent all theirs), at the idle
 * timeout, at the deadline, or on an error (w->error).
 */
static void run_worker(struct worker *w)
{
	struct epoll_event events[MAX_EVENTS];
	uint64_t idle_ns = (uint64_t)(opt.idle_s * 1e9);
	uint32_t id;

	for (;;) {
		uint64_t now = now_ns(), wake;
		int n, i, timeout_ms;

		if (!w->measuring && phase == PHASE_MEASURE) {
			/* The first lines go out right now, in the same loop turn. */
			w->measuring = true;
			if (opt.rate > 0) {
				paced_send_due(w);
			} else {
				for_each_own(id, w)
					if (!clients[id].closed)
						flood_send(id);
			}
			now = now_ns();
		}
		if (w->measuring && w->st.received >= w->expected && unsent_lines(w) == 0)
			break;
		/* Lines still missing after a quiet spell are lost, not late (a
		 * flood window may wait for them forever, so do not wait for it). */
		if (w->measuring && all_idle(w, now, idle_ns)
		    && (opt.rate == 0 || unsent_lines(w) == 0))
			break;
		if (now >= deadline) {
			w->deadline_hit = true;
			break;
		}
		if (!w->measuring && w->st.disconnected > 0) {
			w->error = "the server closed a client during setup";
			break;
		}
		if (w->measuring && opt.rate == 0 && now >= w->next_recheck) {
			w->waiting = recheck_windows(w);
			w->next_recheck = now + WINDOW_RECHECK_NS;
		}
		/* Wake for the deadline, the idle check or a window re-check,
		 * whichever is first; at least every 100 ms so the checks above
		 * stay current. */
		wake = deadline;
		if (w->measuring && last_arrival(w) + idle_ns < wake)
			wake = last_arrival(w) + idle_ns;
		if (w->waiting > 0 && w->next_recheck < wake)
			wake = w->next_recheck;
		timeout_ms = wake > now ? (int)((wake - now) / 1000000u) + 1 : 0;
		if (timeout_ms > 100)
			timeout_ms = 100;
		n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout_ms);
		if (n < 0 && errno != EINTR) {
			perror("chat_loadgen: epoll_wait");
			w->error = "epoll_wait failed";
			break;
		}
		for (i = 0; i < n; i++) {
			struct client *c;

			id = events[i].data.u32;
			if (id == opt.clients) {
				uint64_t expirations;

				if (read(w->tfd, &expirations, sizeof(expirations)) > 0)
					paced_send_due(w);
				continue;
			}
			c = &clients[id];
			if (c->closed)
				continue;
			if (!c->connected) {
				if (finish_connect(id) < 0) {
					perror("chat_loadgen: connect to 127.0.0.1");
					w->error = "connect failed";
					return;
				}
				continue;
			}
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				read_client(id);
			if (c->closed || !(events[i].events & EPOLLOUT))
				continue;
			if (w->measuring && opt.rate == 0)
				flood_send(id);
			else
				send_pending(id, false);
		}
		if (phase != PHASE_MEASURE && (w->error = advance_setup()) != NULL)
			break;
	}
}

static void *worker_main(void *arg)
{
	run_worker(arg);
	return NULL;
}

/* Adds one latency distribution to another. */
static void lat_merge(struct latency *into, const struct latency *from)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		into->hist[i] += from->hist[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

/* Sums the workers' statistics into *st. */
static void merge_stats(struct stats *st)
{
	uint32_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < opt.threads; i++) {
		const struct stats *w = &workers[i].st;

		st->received += w->received;
		st->broken += w->broken;
		st->broken_setup += w->broken_setup;
		st->ignored += w->ignored;
		st->echoed += w->echoed;
		st->out_of_order += w->out_of_order;
		st->disconnected += w->disconnected;
		st->unstamped += w->unstamped;
		lat_merge(&st->lat, &w->lat);
		lat_merge(&st->read_lat, &w->read_lat);
		if (w->max_send_lag > st->max_send_lag)
			st->max_send_lag = w->max_send_lag;
	}
}

/* Prints the JSON line (stdout) and the human line (stderr). */
static void report(const char *error, bool deadline_hit)
{
	uint64_t expected = (uint64_t)opt.clients * (opt.clients - 1) * opt.messages;
	uint64_t lost = 0, extra = 0, unsent = 0, last_rx = t_measure;
	double wall = 0, rate = 0;
	uint32_t r, s, listed = 0, senders_with_loss = 0;
	uint64_t *lost_by = calloc(opt.clients, sizeof(*lost_by));
	struct stats *st = calloc(1, sizeof(*st));

	if (!st) {
		perror("chat_loadgen: calloc");
		exit(1);
	}
	merge_stats(st);
	for (r = 0; phase == PHASE_MEASURE && r < opt.threads; r++) {
		unsent += unsent_lines(&workers[r]);
		if (last_arrival(&workers[r]) > last_rx)
			last_rx = last_arrival(&workers[r]);
	}
	if (phase == PHASE_MEASURE && last_rx > t_measure)
		wall = (double)(last_rx - t_measure) / 1e9;
	if (wall > 0)
		rate = (double)st->received / wall;
	for (r = 0; phase == PHASE_MEASURE && r < opt.clients; r++) {
		for (s = 0; s < opt.clients; s++) {
			uint32_t n = pair_count[(size_t)r * opt.clients + s];

			if (r == s)
				continue;
			if (n < opt.messages) {
				lost += opt.messages - n;
				if (lost_by)
					lost_by[s] += opt.messages - n;
			} else {
				extra += n - opt.messages;
			}
		}
	}
	printf("{\"port\":%d,\"clients\":%" PRIu32 ",\"messages\":%" PRIu32
	    ",\"size\":%" PRIu32 ",\"mode\":\"%s\",\"rate\":%g,\"backlog\":%.0f"
	    ",\"threads\":%" PRIu32,
	    opt.port, opt.clients, opt.messages, opt.size,
	    opt.rate > 0 ? "paced" : "flood", opt.rate, opt.rate > 0 ? 0 : opt.backlog,
	    opt.threads);
	printf(",\"ok\":%s", error ? "false" : "true");
	if (error)
		printf(",\"error\":\"%s\"", error);
	printf(",\"setup_s\":%.6f,\"wall_s\":%.6f,\"deadline_hit\":%s",
	    phase == PHASE_MEASURE ? (double)(t_measure - t_start) / 1e9 : 0.0,
	    wall, deadline_hit ? "true" : "false");
	printf(",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
	    ",\"deliveries_per_s\":%.1f", expected, st->received, rate);
	/* CPU over the measurement (start of sending to the last worker's end). */
	printf(",\"cpu_wall_s\":%.6f,\"gen_cpu_s\":%.6f", (double)cpu.wall_ns / 1e9,
	    (double)cpu.gen_ns / 1e9);
	if (cpu.server_ns > 0)
		printf(",\"server_cpu_s\":%.6f", (double)cpu.server_ns / 1e9);
	else
		printf(",\"server_cpu_s\":null");
	printf(",\"lat_p50_us\":%.3f,\"lat_p99_us\":%.3f,\"lat_max_us\":%.3f",
	    (double)lat_quantile(&st->lat, 0.50) / 1e3,
	    (double)lat_quantile(&st->lat, 0.99) / 1e3, (double)st->lat.max / 1e3);
	printf(",\"lat_read_p50_us\":%.3f,\"lat_read_p99_us\":%.3f"
	    ",\"lat_read_max_us\":%.3f,\"unstamped_reads\":%" PRIu64,
	    (double)lat_quantile(&st->read_lat, 0.50) / 1e3,
	    (double)lat_quantile(&st->read_lat, 0.99) / 1e3,
	    (double)st->read_lat.max / 1e3, st->unstamped);
	printf(",\"broken\":%" PRIu64 ",\"broken_setup\":%" PRIu64
	    ",\"ignored\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"out_of_order\":%" PRIu64
	    ",\"duplicates\":%" PRIu64 ",\"echoed\":%" PRIu64
	    ",\"unsent\":%" PRIu64 ",\"disconnected\":%" PRIu64
	    ",\"max_send_lag_us\":%.3f",
	    st->broken, st->broken_setup, st->ignored, lost, st->out_of_order, extra,
	    st->echoed, unsent, st->disconnected, (double)st->max_send_lag / 1e3);
	/* Per sender: lines lost on the way to all its receivers. */
	printf(",\"lost_by_sender\":{");
	for (s = 0; lost_by && s < opt.clients; s++) {
		if (lost_by[s] == 0)
			continue;
		senders_with_loss++;
		if (listed < PER_SENDER_MAX)
			printf("%s\"%" PRIu32 "\":%" PRIu64, listed++ ? "," : "", s, lost_by[s]);
	}
	printf("},\"senders_with_loss\":%" PRIu32 "}\n", senders_with_loss);
	fflush(stdout);
	free(lost_by);

	if (!opt.quiet && error) {
		fprintf(stderr, "chat_loadgen: %s (members %" PRIu32 "/%" PRIu32
		    ", ready %" PRIu32 "/%" PRIu32 ")\n",
		    error, members, opt.clients, ready_clients, opt.clients);
	} else if (!opt.quiet) {
		fprintf(stderr, "chat_loadgen: %s %" PRIu32 " clients x %" PRIu32
		    " lines of %" PRIu32 " B, %" PRIu32 " threads: %.0f deliveries/s"
		    " over %.3f s, latency p50 %.1f us p99 %.1f us max %.1f us, %"
		    PRIu64 "/%" PRIu64 " received, lost %" PRIu64 ", out of order %"
		    PRIu64 ", broken %" PRIu64 "%s\n",
		    opt.rate > 0 ? "paced" : "flood", opt.clients, opt.messages,
		    opt.size, opt.threads, rate, wall,
		    (double)lat_quantile(&st->lat, 0.50) / 1e3,
		    (double)lat_quantile(&st->lat, 0.99) / 1e3, (double)st->lat.max / 1e3,
		    st->received, expected, lost, st->out_of_order, st->broken,
		    deadline_hit ? " (deadline hit)" : "");
	}
	free(st);
}

/* Allocates the clients and the per-pair counters.  Returns -1 on failure. */
static int open_clients(void)
{
	uint32_t i;

	clients = calloc(opt.clients, sizeof(*clients));
	pair_count = calloc((size_t)opt.clients * opt.clients, sizeof(uint32_t));
	pair_next = calloc((size_t)opt.clients * opt.clients, sizeof(uint32_t));
	if (!clients || !pair_count || !pair_next)
		return -1;
	for (i = 0; i < opt.clients; i++) {
		clients[i].fd = -1;
		clients[i].in = malloc(IN_CAP);
		if (!clients[i].in)
			return -1;
	}
	return 0;
}

/* Frees what open_clients() took. */
static void close_clients(void)
{
	uint32_t i;

	for (i = 0; clients && i < opt.clients; i++) {
		if (clients[i].fd >= 0)
			close(clients[i].fd);
		free(clients[i].in);
		free(clients[i].out);
	}
	free(clients);
	free(pair_count);
	free(pair_next);
}

/* Gives each worker its epoll, its timer (id N in that epoll) and its
 * delivery counters.  Returns -1 on failure. */
static int open_workers(void)
{
	uint32_t i;

	for (i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = opt.clients };

		w->idx = i;
		w->n_own = (opt.clients - i + opt.threads - 1) / opt.threads;
		w->expected = (uint64_t)w->n_own * (opt.clients - 1) * opt.messages;
		w->epfd = epoll_create1(0);
		w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
		w->delivered = calloc(opt.clients, sizeof(*w->delivered));
		if (w->epfd < 0 || w->tfd < 0 || !w->delivered
		    || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev) < 0)
			return -1;
	}
	return 0;
}

/* Frees what open_workers() took. */
static void close_workers(void)
{
	uint32_t i;

	for (i = 0; i < opt.threads; i++) {
		if (workers[i].epfd > 0)
			close(workers[i].epfd);
		if (workers[i].tfd > 0)
			close(workers[i].tfd);
		free(workers[i].delivered);
	}
}

int main(int argc, char **argv)
{
	const char *error = NULL;
	bool deadline_hit = false;
	uint32_t i;

	parse_args(argc, argv);
	memset(padding, 'x', sizeof(padding));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (raise_nofile((rlim_t)opt.clients + 32 + 2 * opt.threads) < 0) {
		fprintf(stderr, "chat_loadgen: cannot open %" PRIu32 " sockets: "
		    "RLIMIT_NOFILE hard limit too low\n", opt.clients);
		return 1;
	}
	t_start = now_ns();
	deadline = t_start + (uint64_t)(opt.deadline_s * 1e9);
	if (open_workers() < 0 || open_clients() < 0) {
		perror("chat_loadgen: setup");
		error = "cannot set up the workers";
		goto out;
	}
	error = advance_setup();
	if (!error)
		run_worker(&workers[0]);
	for (i = 1; i < opt.threads; i++)
		if (workers[i].started)
			pthread_join(workers[i].tid, NULL);
	if (phase == PHASE_MEASURE) {
		cpu.wall_ns = now_ns() - t_measure;
		cpu.gen_ns = cpu_ns(0) - cpu.gen_start;
		if (opt.server_pid > 0 && cpu.server_start > 0) {
			uint64_t end = cpu_ns(opt.server_pid);

			cpu.server_ns = end > cpu.server_start ? end - cpu.server_start : 0;
		}
	}
	for (i = 0; i < opt.threads; i++) {
		if (!error)
			error = workers[i].error;
		deadline_hit |= workers[i].deadline_hit;
	}
	if (!error && phase != PHASE_MEASURE) {
		error = phase == PHASE_HELLO
		    ? "membership not confirmed before the deadline"
		    : "not every client saw every ready line before the deadline";
	}
out:
	report(error, deadline_hit);
	close_clients();
	close_workers();
	if (opt.strip)
		regfree(&strip_re);
	if (opt.ignore)
		regfree(&ignore_re);
	return error ? 1 : 0;
}
