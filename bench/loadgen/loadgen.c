/*
 * loadgen.c - skerry-loadgen: a memcached (text protocol) and HTTP/1.1 load
 * generator built on skerry's own runtime and socket API, on either stack
 * (--stack=posix, or native over a tap or DPDK netdev).
 *
 * Roadmap:
 *   main        options; the request script (every request's bytes built
 *               once, back to back); sk_smp_run; then the shards' counters
 *               and histograms are merged and printed (a summary and one
 *               RESULT line).
 *   lg_main     shard 0 runs the phases, each on every shard through
 *               sk_invoke_on_all: net_up -> connect -> preload -> run ->
 *               close -> net_down.  Close and net_down run even after an
 *               error, so every socket is gone before the shards exit.
 *   connection  keeps `depth` requests in flight.  Each read callback
 *               parses the responses in place (sk_read_peek; a line cut by
 *               a buffer edge is copied into a small per-connection buffer),
 *               completes the oldest in-flight requests and sends as many
 *               new ones as the next slice of the script - one or two
 *               sk_write_ref calls, no formatting, no allocation.
 *               --proto http: the script is N copies of one keep-alive
 *               GET; a response is a status line, header lines (only
 *               Content-Length and Connection matter) and a body skipped
 *               in place like a value.
 *   timing      one clock read per read callback; the send times of the
 *               requests in flight sit in a per-connection ring; latencies
 *               go into a per-shard log-linear histogram (hist.h).  Only
 *               responses between the end of the warm-up and the end of the
 *               run are counted.  Shard 0 samples getrusage at both edges.
 *
 * Sets carry every request's value (no noreply): every request is answered
 * and checked.  A protocol error (an unexpected line, a value of the wrong
 * length, a key that was not asked for) counts as an error and drops that
 * connection; the exit status is then 1.  An HTTP response counts as an
 * error too when it is not 2xx (the connection goes on), and when it is
 * malformed, has no Content-Length or says Connection: close (the
 * connection is dropped; there is no reconnect).
 *
 * --verify: a set's value is its key's 8 digits repeated, and every value
 * a get returns is compared with that, byte by byte (in its own parser
 * state, so the plain path is untouched).  A mismatch counts as an error
 * and as a verify error; the stream stays in step.  For HTTP, every body
 * must be as long as the first one the shard saw.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hist.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#define KEY_LEN 12		/* "key:%08u" */
#define MAX_CONNS 16384
#define MAX_DEPTH 4096
#define MAX_MULTIGET 100
#define MAX_VALUE (512 * 1024)
#define MAX_DURATION 600
#define LINE_MAX_LEN 1024	/* longest response line we accept when a
				 * buffer edge cuts it (HTTP headers) */
#define PATH_MAX_LEN 1024	/* --path */
#define HTTP_MAX_BODY (1u << 31)
/* Script length: enough requests that key choice looks random, bounded in
 * bytes so that big values or multi-gets do not take much memory. */
#define SCRIPT_MAX_REQS 65536u
#define SCRIPT_MAX_BYTES (32u << 20)
/* After the run, wait this long for answers still in flight. */
#define DRAIN_NS (2 * SK_NSEC_PER_SEC)

/* --- options and the shared, read-only request script --------------------- */

static struct {
	const char *server;
	unsigned long long conns, depth, keys, value_size, multiget, duration,
		warmup, seed, server_pid, batch;
	const char *get_ratio_s, *proto_s, *path;
	bool preload, verify;
	bool http;		/* --proto http */
	double get_ratio;
	unsigned nkeys_per_get;	/* max(1, multiget) */
	struct sk_sockaddr addr;
} cfg = {
	.server = "127.0.0.1:11211",
	.conns = 64,
	.depth = 16,
	.keys = 10000,
	.value_size = 32,
	.multiget = 0,
	.duration = 10,
	.warmup = 1,
	.seed = 1,
	.batch = 1,
	.get_ratio_s = "0.9",
	.proto_s = "memcached",
	.path = "/",
};

/* --stack and the native stack's options (SK_NET_OPTIONS). */
static struct sk_net_config netcfg = { .stack = SK_STACK_POSIX };

enum { REQ_GET, REQ_SET, REQ_HTTP };

/* Requests 0..n-1 back to back in bytes[]; request i is bytes[off[i]] up to
 * bytes[off[i+1]].  Connections walk it cyclically from random places, so
 * sending k requests is sending one (or, at the wrap, two) slices. */
static struct {
	uint8_t *bytes;
	uint32_t *off;
	uint8_t *kind;
	uint32_t n;
} script;

/* --- per shard -------------------------------------------------------------- */

enum { PH_IDLE, PH_PRELOAD, PH_RUN, PH_DRAIN };
/* P_LINE is also HTTP's status line; P_VDATA is P_DATA under --verify. */
enum { P_LINE, P_DATA, P_CR, P_LF, P_VDATA, H_HEAD, H_BODY };

struct lg_shard;

struct conn {
	struct sk_sock *s;
	struct lg_shard *sh;
	uint64_t *ts;		/* send times, ring indexed by request number */
	uint32_t mask;
	uint32_t sent, done;	/* requests sent / answered on this connection */
	uint32_t next;		/* script index of the next request to send */
	uint32_t oldest;	/* script index of the oldest request in flight */
	uint32_t pre_next, pre_end;	/* preload: keys still to set */
	/* response parser */
	uint8_t st;		/* P_* */
	bool closing;		/* close or abort started: s is not ours any more */
	bool preloading;	/* every request in flight is a preload set */
	bool pre_done;
	uint32_t data_left;	/* value (or body) bytes still to skip */
	uint16_t vals;		/* VALUE blocks of the current get */
	uint16_t keyi;		/* next key of the current get to match */
	uint16_t linelen;
	/* Off the memcached hot path: --verify, and the HTTP response. */
	bool vbad;		/* --verify: the value differs */
	bool h_len_seen, h_close, h_chunked;
	uint16_t h_status;
	uint32_t h_len;		/* Content-Length */
	uint32_t voff;		/* --verify: offset in the value */
	const uint8_t *vdig;	/* --verify: the value's key's 8 digits
				 * (in the script) */
	char line[LINE_MAX_LEN];
};

struct lg_stats {
	uint64_t reqs, gets, sets, keyops, hits, misses;
	uint64_t errors;	/* protocol and connection errors, non-2xx,
				 * verify errors */
	uint64_t verify_errors;	/* --verify: wrong values / body lengths */
	uint64_t bytes;		/* HTTP body bytes (memcached: from hits) */
	uint64_t reads, writes;	/* read callbacks and writes: batching */
	uint64_t t_start, t_stop;	/* the shard's counting window */
};

struct lg_shard {
	struct conn *conns;
	unsigned nconns;
	unsigned phase;
	bool counting;
	uint64_t now;		/* the current callback's clock */
	unsigned pending;	/* connections the current phase waits for */
	unsigned open;		/* connections not yet closed */
	struct sk_promise *phase_p;
	int phase_err;
	struct sk_timer warm_t, end_t, drain_t;
	struct sk_stop_hook stop_hook;
	uint8_t *set_tmpl;	/* "set key:XXXXXXXX 0 0 N\r\n<value>\r\n" */
	uint32_t set_len, set_val;	/* its length, where the value starts */
	int64_t http_len;	/* --verify: the first body length, -1 */
	bool logged_error, logged_status, logged_verify;
	struct lg_stats st;
	struct hist h;
} __attribute__((aligned(64)));

static struct lg_shard shards[SK_MAX_SHARDS];

/* Written by shard 0 before the phase that reads them starts. */
static struct {
	uint64_t t_warm, t_end;
	struct rusage ru0, ru1;
	uint64_t wall0, wall1;
	long long srv0, srv1;	/* --server-pid's CPU ticks, -1 unknown */
	unsigned ncpu0, ncpu1;	/* CPUs in /proc/stat at each edge */
	unsigned long long busy0[SK_MAX_SHARDS], busy1[SK_MAX_SHARDS];
	int err;		/* first phase error */
	unsigned nshards;
} g;

static inline struct lg_shard *me(void)
{
	return &shards[sk_shard_id()];
}

static void noop_release(void *arg)
{
	(void)arg;
}

static void conn_read(struct conn *c);
static void conn_finish(struct conn *c, bool abort);

/* --- phase completion -------------------------------------------------------- */

static sk_future phase_begin(struct lg_shard *sh, unsigned pending)
{
	sh->pending = pending;
	sh->phase_err = 0;
	if (!pending)
		return sk_make_ready(0);
	sh->phase_p = sk_promise_new();
	if (!sh->phase_p)
		return sk_make_error(-ENOMEM);
	return sk_promise_future(sh->phase_p);
}

static void phase_one_done(struct lg_shard *sh)
{
	if (!sh->pending || --sh->pending)
		return;
	struct sk_promise *p = sh->phase_p;
	sh->phase_p = NULL;
	if (!p)
		return;
	if (sh->phase_err)
		sk_promise_set_error(p, sh->phase_err);
	else
		sk_promise_set_value(p, 0);
}

/* --- errors ------------------------------------------------------------------ */

static void conn_error(struct conn *c, const char *why, const void *line, size_t n)
{
	struct lg_shard *sh = c->sh;

	if (!line) {
		line = "";
		n = 0;
	}
	sh->st.errors++;
	if (!sh->logged_error) {
		/* One line per shard is enough to see what went wrong. */
		sh->logged_error = true;
		if (n > 80)
			n = 80;
		while (n && (((const char *)line)[n - 1] == '\n' || ((const char *)line)[n - 1] == '\r'))
			n--;
		sk_log_error("loadgen: %s%s%.*s", why, n ? ": " : "", (int)n, (const char *)line);
	}
	conn_finish(c, true);
}

/* --- sending ----------------------------------------------------------------- */

static inline uint32_t inflight(const struct conn *c)
{
	return c->sent - c->done;
}

/* Fill the window from the script: at most two slices (the wrap). */
static int conn_send_run(struct conn *c)
{
	uint32_t room = (uint32_t)cfg.depth - inflight(c);
	uint32_t i = c->next;

	if (room < cfg.batch)
		return 0;	/* wait until a whole batch is free */
	for (unsigned k = 0; room && k < 2; k++) {
		uint32_t n = script.n - i < room ? script.n - i : room;
		const uint8_t *p = script.bytes + script.off[i];
		size_t len = script.off[i + n] - script.off[i];
		int r = sk_write_ref(c->s, p, len, noop_release, NULL);
		if (r)
			return r;
		c->sh->st.writes += c->sh->counting;
		for (uint32_t j = 0; j < n; j++)
			c->ts[(c->sent + j) & c->mask] = c->sh->now;
		c->sent += n;
		room -= n;
		i += n;
		if (i == script.n)
			i = 0;
	}
	c->next = i;
	return 0;
}

/* --verify: key:DDDDDDDD's value is DDDDDDDD repeated. */
static void fill_value(uint8_t *v, size_t n, const char *digits)
{
	for (size_t j = 0; j < n; j++)
		v[j] = (uint8_t)digits[j & 7];
}

/* Preload: one set per key of the connection's range, from the template. */
static int conn_send_preload(struct conn *c)
{
	struct lg_shard *sh = c->sh;

	while (inflight(c) < cfg.depth && c->pre_next < c->pre_end) {
		char digits[9];
		snprintf(digits, sizeof(digits), "%08u", c->pre_next % 100000000u);
		memcpy(sh->set_tmpl + 8, digits, 8);
		if (cfg.verify)
			fill_value(sh->set_tmpl + sh->set_val, cfg.value_size, digits);
		int r = sk_write(c->s, sh->set_tmpl, sh->set_len);	/* copied */
		if (r)
			return r;
		c->ts[c->sent & c->mask] = sh->now;
		c->sent++;
		c->pre_next++;
	}
	return 0;
}

/* --- receiving ---------------------------------------------------------------- */

/* The oldest request in flight is answered. */
static void req_done(struct conn *c)
{
	struct lg_shard *sh = c->sh;
	uint64_t t0 = c->ts[c->done & c->mask];

	c->done++;
	if (c->preloading)
		return;
	if (sh->counting) {
		sh->st.reqs++;
		hist_add(&sh->h, sh->now - t0);
	}
	if (++c->oldest == script.n)
		c->oldest = 0;
}

static inline bool starts(const uint8_t *l, size_t n, const char *lit, size_t litlen)
{
	return n >= litlen && memcmp(l, lit, litlen) == 0;
}

static unsigned long parse_num(const uint8_t **pp, const uint8_t *end, bool *ok)
{
	const uint8_t *p = *pp;
	unsigned long v = 0;
	unsigned digits = 0;

	while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
		v = v * 10 + (unsigned long)(*p - '0');
		p++;
		digits++;
	}
	*ok = digits > 0;
	*pp = p;
	return v;
}

/*
 * "VALUE <key> <flags> <bytes>[ <cas>]\r\n": the key must be the next one
 * asked for (keys the server skipped were misses), the length ours.
 */
static bool on_value(struct conn *c, const uint8_t *l, size_t n)
{
	const uint8_t *end = l + n - 2, *p = l + 6, *key;
	const uint8_t *req;
	bool ok;

	if (c->preloading || script.kind[c->oldest] != REQ_GET)
		return false;
	key = p;
	while (p < end && *p != ' ')
		p++;
	if (p - key != KEY_LEN || p == end)
		return false;
	req = script.bytes + script.off[c->oldest] + 4;	/* after "get " */
	while (c->keyi < cfg.nkeys_per_get &&
	       memcmp(req + (size_t)c->keyi * (KEY_LEN + 1), key, KEY_LEN) != 0)
		c->keyi++;
	if (c->keyi == cfg.nkeys_per_get)
		return false;
	c->vdig = req + (size_t)c->keyi * (KEY_LEN + 1) + 4;	/* after "key:" */
	c->keyi++;
	p++;
	parse_num(&p, end, &ok);	/* flags */
	if (!ok || p == end || *p != ' ')
		return false;
	p++;
	unsigned long bytes = parse_num(&p, end, &ok);
	if (!ok || bytes != cfg.value_size || (p != end && *p != ' '))
		return false;
	c->vals++;
	c->data_left = (uint32_t)bytes;
	c->st = !bytes ? P_CR : cfg.verify ? P_VDATA : P_DATA;
	c->voff = 0;
	c->vbad = false;
	return true;
}

/* --verify: one more wrong value or body (the stream is still in step). */
static void verify_error(struct conn *c, uint64_t a, uint64_t b)
{
	struct lg_shard *sh = c->sh;

	sh->st.verify_errors++;
	sh->st.errors++;
	if (!sh->logged_verify) {
		sh->logged_verify = true;
		if (cfg.http)
			sk_log_error("loadgen: --verify: body of %" PRIu64 " bytes, the first had %"
				     PRIu64, a, b);
		else
			sk_log_error("loadgen: --verify: value of key:%.8s differs at byte %" PRIu64,
				     (const char *)c->vdig, a);
	}
}

/* --verify: the next @n bytes of the current value against its pattern,
 * 56 bytes per memcmp (the pattern's period is 8). */
static void verify_value(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t pat[64];
	size_t done = 0;

	for (unsigned i = 0; i < 64; i += 8)
		memcpy(pat + i, c->vdig, 8);
	while (!c->vbad && done < n) {
		size_t o = (c->voff + done) & 7, k = n - done < 56 ? n - done : 56;
		if (memcmp(p + done, pat + o, k)) {
			size_t j = 0;
			while (p[done + j] == pat[o + j])
				j++;
			c->vbad = true;
			verify_error(c, c->voff + done + j, 0);
		}
		done += k;
	}
	c->voff += (uint32_t)n;
}

/* --- HTTP responses ---------------------------------------------------------- */

/* Case-insensitive "name:" at the start of header line @l. */
static bool header_is(const uint8_t *l, size_t n, const char *name, size_t len)
{
	if (n <= len || l[len] != ':')
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = l[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (uint8_t)(ch + 32);
		if (ch != (uint8_t)name[i])
			return false;
	}
	return true;
}

/* Does the header value @v..@end hold the token @tok (case-insensitive)? */
static bool value_has(const uint8_t *v, const uint8_t *end, const char *tok)
{
	size_t tl = strlen(tok);
	for (; v + tl <= end; v++)
		if (!strncasecmp((const char *)v, tok, tl))
			return true;
	return false;
}

/* A whole response was read (its body skipped). */
static void http_done(struct conn *c)
{
	struct lg_shard *sh = c->sh;

	if (c->h_status < 200 || c->h_status > 299) {
		sh->st.errors++;
		if (!sh->logged_status) {
			sh->logged_status = true;
			sk_log_error("loadgen: HTTP status %u for %s", c->h_status, cfg.path);
		}
	}
	if (cfg.verify) {
		if (sh->http_len < 0)
			sh->http_len = c->h_len;
		else if ((uint32_t)sh->http_len != c->h_len)
			verify_error(c, c->h_len, (uint64_t)sh->http_len);
	}
	if (sh->counting) {
		sh->st.keyops++;
		sh->st.bytes += c->h_len;
	}
	c->st = P_LINE;
	req_done(c);
}

/*
 * One line of an HTTP response: the status line ("HTTP/1.1 200 OK"), a
 * header, or the empty line that ends the headers.  False: protocol error
 * (the connection was dropped).
 */
static bool on_http_line(struct conn *c, const uint8_t *l, size_t n)
{
	const uint8_t *end = l + n - 1;	/* at the '\n' */
	const char *why = "unexpected response";

	if (end > l && end[-1] == '\r')
		end--;
	if (c->st == P_LINE) {
		if (!inflight(c) || end - l < 12 || memcmp(l, "HTTP/1.", 7) || l[8] != ' ' ||
		    l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
		    l[11] < '0' || l[11] > '9' || (end - l > 12 && l[12] != ' '))
			goto bad;
		c->h_status = (uint16_t)((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
		c->h_len_seen = c->h_close = c->h_chunked = false;
		c->h_len = 0;
		c->st = H_HEAD;
		return true;
	}
	if (end == l) {
		/* The end of the headers. */
		bool no_body = c->h_status == 204 || c->h_status == 304;
		if (c->h_status < 200) {
			why = "HTTP 1xx responses are not supported";
		} else if (c->h_chunked) {
			why = "chunked bodies are not supported";
		} else if (!c->h_len_seen && !no_body) {
			why = "response without Content-Length";
		} else if (c->h_close) {
			why = "server sends Connection: close";
		} else {
			if (no_body)
				c->h_len = 0;
			if (c->h_len) {
				c->data_left = c->h_len;
				c->st = H_BODY;
			} else {
				http_done(c);
			}
			return true;
		}
		conn_error(c, why, NULL, 0);
		return false;
	}
	if ((l[0] | 0x20) == 'c' && header_is(l, n, "content-length", 14)) {
		const uint8_t *p = l + 15;
		bool ok;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		unsigned long v = parse_num(&p, end, &ok);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (!ok || p != end || v >= HTTP_MAX_BODY)
			goto bad;
		c->h_len = (uint32_t)v;
		c->h_len_seen = true;
	} else if ((l[0] | 0x20) == 'c' && header_is(l, n, "connection", 10)) {
		c->h_close |= value_has(l + 11, end, "close");
	} else if ((l[0] | 0x20) == 't' && header_is(l, n, "transfer-encoding", 17)) {
		c->h_chunked = true;
	}
	return true;
bad:
	conn_error(c, why, l, n);
	return false;
}

/* One complete response line (ending in "\r\n"); false: protocol error. */
static bool on_line(struct conn *c, const uint8_t *l, size_t n)
{
	struct lg_shard *sh = c->sh;
	bool ok = true;

	if (n < 2 || l[n - 2] != '\r' || !inflight(c)) {
		ok = false;
	} else if (l[0] == 'V' && starts(l, n, "VALUE ", 6)) {
		if (!on_value(c, l, n))
			ok = false;
	} else if (n == 5 && !memcmp(l, "END\r\n", 5)) {
		if (c->preloading || script.kind[c->oldest] != REQ_GET) {
			ok = false;
		} else {
			if (sh->counting) {
				unsigned misses = cfg.nkeys_per_get - c->vals;
				sh->st.gets++;
				sh->st.keyops += cfg.nkeys_per_get;
				sh->st.hits += c->vals;
				sh->st.misses += misses;
				/* Every key was stored before: a miss is wrong. */
				if (cfg.preload && misses)
					sh->st.errors += misses;
			}
			c->vals = 0;
			c->keyi = 0;
			req_done(c);
		}
	} else if (n == 8 && !memcmp(l, "STORED\r\n", 8)) {
		if (!c->preloading && script.kind[c->oldest] != REQ_SET) {
			ok = false;
		} else {
			if (sh->counting && !c->preloading) {
				sh->st.sets++;
				sh->st.keyops++;
			}
			req_done(c);
		}
	} else {
		ok = false;
	}
	if (!ok)
		conn_error(c, "unexpected response", l, n);
	return ok;
}

/* Parse every buffered byte in place; false if the connection was dropped. */
static bool conn_parse(struct conn *c)
{
	const uint8_t *p;
	size_t len;

	/* Bounded: every round consumes one whole segment. */
	while ((p = sk_read_peek(c->s, &len)) != NULL) {
		size_t pos = 0;
		while (pos < len) {
			switch (c->st) {
			case P_DATA: {
				size_t take = len - pos < c->data_left ? len - pos : c->data_left;
				pos += take;
				c->data_left -= (uint32_t)take;
				if (!c->data_left)
					c->st = P_CR;
				break;
			}
			case P_VDATA: {
				size_t take = len - pos < c->data_left ? len - pos : c->data_left;
				verify_value(c, p + pos, take);
				pos += take;
				c->data_left -= (uint32_t)take;
				if (!c->data_left)
					c->st = P_CR;
				break;
			}
			case H_BODY: {
				size_t take = len - pos < c->data_left ? len - pos : c->data_left;
				pos += take;
				c->data_left -= (uint32_t)take;
				if (!c->data_left)
					http_done(c);
				break;
			}
			case P_CR:
			case P_LF:
				if (p[pos] != (c->st == P_CR ? '\r' : '\n')) {
					conn_error(c, "value not followed by CRLF", NULL, 0);
					return false;
				}
				pos++;
				c->st = c->st == P_CR ? P_LF : P_LINE;
				break;
			default: {
				const uint8_t *l = p + pos;
				const uint8_t *nl = memchr(l, '\n', len - pos);
				size_t n = nl ? (size_t)(nl + 1 - l) : len - pos;
				if (!nl || c->linelen) {
					/* A line cut by a buffer edge: gather it. */
					if (c->linelen + n > sizeof(c->line)) {
						conn_error(c, "response line too long", c->line, c->linelen);
						return false;
					}
					memcpy(c->line + c->linelen, l, n);
					c->linelen = (uint16_t)(c->linelen + n);
					pos += n;
					if (!nl)
						break;
					l = (const uint8_t *)c->line;
					n = c->linelen;
					c->linelen = 0;
				} else {
					pos += n;
				}
				if (!(cfg.http ? on_http_line(c, l, n) : on_line(c, l, n)))
					return false;
				break;
			}
			}
		}
		sk_read_consume(c->s, len);
	}
	return true;
}

/* --- the connection's life ------------------------------------------------------ */

static void conn_closed(void *arg, int64_t v, int err)
{
	struct conn *c = arg;
	(void)v;
	(void)err;
	c->s = NULL;
	if (--c->sh->open == 0 && c->sh->phase == PH_DRAIN) {
		sk_timer_cancel(&c->sh->drain_t);
		phase_one_done(c->sh);
	}
}

static void conn_finish(struct conn *c, bool abort)
{
	if (c->closing || !c->s)
		return;
	c->closing = true;
	if (c->preloading && !c->pre_done) {
		/* A preload that can no longer finish still ends its phase. */
		c->pre_done = true;
		c->sh->phase_err = -EIO;
		phase_one_done(c->sh);
	}
	if (abort) {
		sk_abort(c->s);
		conn_closed(c, 0, 0);
	} else {
		sk_future_on_done(sk_close(c->s), conn_closed, c);
	}
}

/* After answers were taken: send more, or see whether this phase is over. */
static void conn_step(struct conn *c)
{
	struct lg_shard *sh = c->sh;
	int r = 0;

	if (c->preloading) {
		r = conn_send_preload(c);
		if (!r && c->pre_next == c->pre_end && !inflight(c) && !c->pre_done) {
			c->pre_done = true;
			phase_one_done(sh);
		}
	} else if (sh->phase == PH_RUN) {
		r = conn_send_run(c);
	} else if (sh->phase == PH_DRAIN && !inflight(c)) {
		conn_finish(c, false);
		return;
	}
	if (r)
		conn_error(c, "write failed", NULL, 0);
}

static void conn_on_read(void *arg, int64_t n, int err)
{
	struct conn *c = arg;
	struct lg_shard *sh = c->sh;

	if (c->closing)
		return;		/* the close cancelled this read */
	if (err || n == 0) {
		if (sh->phase != PH_DRAIN || inflight(c)) {
			conn_error(c, err ? "connection failed" : "server closed the connection",
				   NULL, 0);
		} else {
			conn_finish(c, false);
		}
		return;
	}
	sh->now = sk_now_ns();
	sh->st.reads += sh->counting;
	if (!conn_parse(c))
		return;
	conn_step(c);
	if (!c->closing)
		conn_read(c);
}

static void conn_read(struct conn *c)
{
	sk_future_on_done(sk_read(c->s), conn_on_read, c);
}

/* --- phases (each runs on every shard) -------------------------------------------- */

static void end_run(struct lg_shard *sh);

static void on_stop(void *arg)
{
	struct lg_shard *sh = arg;
	/* SIGINT/SIGTERM: end the run now; what was measured is reported. */
	if (sh->phase == PH_RUN) {
		sk_timer_cancel(&sh->end_t);
		end_run(sh);
	}
}

static sk_future ph_net_up(void *arg)
{
	struct lg_shard *sh = me();
	unsigned id = sk_shard_id(), n = sk_shard_count();
	(void)arg;

	int r = sk_net_init(&netcfg);
	if (r)
		return sk_make_error(r);
	if (id == 0)
		g.nshards = n;
	sh->stop_hook.fn = on_stop;
	sh->stop_hook.arg = sh;
	sk_reactor_at_stop(&sh->stop_hook);

	/* Connection i belongs to shard i % n. */
	sh->nconns = (unsigned)(cfg.conns / n + (id < cfg.conns % n));
	sh->conns = sk_zalloc(sh->nconns * sizeof(*sh->conns) + 1);
	uint32_t ring = 1;
	while (ring < cfg.depth)
		ring <<= 1;
	/* "set key:00000000 0 0 N\r\n" + value + "\r\n" */
	char head[64];
	int hl = snprintf(head, sizeof(head), "set key:00000000 0 0 %llu\r\n", cfg.value_size);
	sh->set_len = (uint32_t)hl + (uint32_t)cfg.value_size + 2;
	sh->set_val = (uint32_t)hl;
	sh->http_len = -1;
	sh->set_tmpl = sk_alloc(sh->set_len);
	if (!sh->conns || !sh->set_tmpl)
		return sk_make_error(-ENOMEM);
	memcpy(sh->set_tmpl, head, (size_t)hl);
	memset(sh->set_tmpl + hl, 'v', cfg.value_size);
	memcpy(sh->set_tmpl + hl + cfg.value_size, "\r\n", 2);

	uint64_t rnd = cfg.seed * 0x9e3779b97f4a7c15ull + id + 1;
	for (unsigned i = 0; i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		c->sh = sh;
		c->mask = ring - 1;
		c->ts = sk_alloc(ring * sizeof(*c->ts));
		if (!c->ts)
			return sk_make_error(-ENOMEM);
		/* Start at a random place of the script (xorshift). */
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		c->next = c->oldest = (uint32_t)(rnd % script.n);
	}
	return sk_make_ready(0);
}

static void on_connected(void *arg, int64_t v, int err)
{
	struct conn *c = arg;
	struct lg_shard *sh = c->sh;

	if (err) {
		char a[32];
		sk_addr_format(&cfg.addr, a, sizeof(a));
		if (!sh->phase_err)
			sk_log_error("loadgen: connect to %s: %s", a, strerror(-err));
		sh->phase_err = err;
		sh->st.errors++;
	} else {
		c->s = sk_future_ptr_value(v);
		sh->open++;
		conn_read(c);
	}
	phase_one_done(sh);
}

static sk_future ph_connect(void *arg)
{
	struct lg_shard *sh = me();
	(void)arg;

	sk_future f = phase_begin(sh, sh->nconns);
	for (unsigned i = 0; i < sh->nconns; i++)
		sk_future_on_done(sk_connect(&cfg.addr), on_connected, &sh->conns[i]);
	return f;
}

static sk_future ph_preload(void *arg)
{
	struct lg_shard *sh = me();
	unsigned id = sk_shard_id(), n = sk_shard_count();
	uint64_t lo = cfg.keys * id / n, hi = cfg.keys * (id + 1) / n;
	(void)arg;

	sh->phase = PH_PRELOAD;
	sh->now = sk_now_ns();
	sk_future f = phase_begin(sh, sh->nconns);
	for (unsigned i = 0; i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		c->preloading = true;
		c->pre_done = false;
		if (!c->s || c->closing) {
			c->pre_done = true;	/* never connected: nothing to wait for */
			phase_one_done(sh);
			continue;
		}
		c->pre_next = (uint32_t)(lo + (hi - lo) * i / sh->nconns);
		c->pre_end = (uint32_t)(lo + (hi - lo) * (i + 1) / sh->nconns);
	}
	for (unsigned i = 0; i < sh->nconns; i++)
		if (!sh->conns[i].pre_done)
			conn_step(&sh->conns[i]);
	return f;
}

/*
 * utime + stime of --server-pid in clock ticks (/proc/PID/stat fields 14
 * and 15, counted after the ")" that ends the command name); -1 if unknown.
 * Read at the same instants as our own getrusage, so both CPU figures cover
 * exactly the measured interval.
 */
static long long server_ticks(void)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	if (!cfg.server_pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%llu/stat", cfg.server_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	/* After ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime (fields 3..15). */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/*
 * Busy ticks of every CPU from /proc/stat (user nice system irq softirq
 * steal).  The kernel charges loopback TCP work done in softirq context to
 * no process, so per-process CPU undercounts what a load really costs;
 * the busy time of the CPU a program runs alone on does not.
 */
static unsigned cpu_busy(unsigned long long *busy, unsigned max)
{
	char line[256];
	unsigned n = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = { 0 };
		unsigned id;
		if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
			continue;
		if (sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu", &id, &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 || id != n)
			break;
		/* user nice system [idle iowait] irq softirq steal */
		busy[n++] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	}
	fclose(f);
	return n;
}

static void on_warm(struct sk_timer *t)
{
	struct lg_shard *sh = t->arg;
	sh->st.t_start = sk_now_ns();
	sh->counting = true;
	if (sk_shard_id() == 0) {
		g.wall0 = sh->st.t_start;
		getrusage(RUSAGE_SELF, &g.ru0);
		g.srv0 = server_ticks();
		g.ncpu0 = cpu_busy(g.busy0, SK_MAX_SHARDS);
	}
}

static void drain_over(struct sk_timer *t)
{
	struct lg_shard *sh = t->arg;
	/* The server did not answer everything in time: drop the rest. */
	for (unsigned i = 0; i < sh->nconns; i++)
		conn_finish(&sh->conns[i], true);
}

static void end_run(struct lg_shard *sh)
{
	if (sh->counting) {
		sh->st.t_stop = sk_now_ns();
		sh->counting = false;
		if (sk_shard_id() == 0) {
			g.wall1 = sh->st.t_stop;
			getrusage(RUSAGE_SELF, &g.ru1);
			g.srv1 = server_ticks();
			g.ncpu1 = cpu_busy(g.busy1, SK_MAX_SHARDS);
		}
	}
	sk_timer_cancel(&sh->warm_t);
	sh->phase = PH_DRAIN;
	if (!sh->open) {
		phase_one_done(sh);
		return;
	}
	sk_timer_arm(&sh->drain_t, DRAIN_NS);
	for (unsigned i = 0; i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		if (c->s && !c->closing && !inflight(c))
			conn_finish(c, false);
	}
}

static void on_end(struct sk_timer *t)
{
	end_run(t->arg);
}

static sk_future ph_run(void *arg)
{
	struct lg_shard *sh = me();
	(void)arg;

	sk_future f = phase_begin(sh, 1);	/* done when every socket closed */
	sh->phase = PH_RUN;
	sh->now = sk_now_ns();
	sk_timer_init(&sh->warm_t, on_warm, sh);
	sk_timer_init(&sh->end_t, on_end, sh);
	sk_timer_init(&sh->drain_t, drain_over, sh);
	sk_timer_arm_at(&sh->warm_t, g.t_warm);
	sk_timer_arm_at(&sh->end_t, g.t_end);
	for (unsigned i = 0; i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		c->preloading = false;
		if (c->s && !c->closing)
			conn_step(c);
	}
	return f;
}

/* After an error: close whatever is still open. */
static sk_future ph_close(void *arg)
{
	struct lg_shard *sh = me();
	(void)arg;

	if (sh->phase == PH_DRAIN && !sh->pending)
		return sk_make_ready(0);	/* the run closed everything */
	sh->phase = PH_DRAIN;
	sk_future f = phase_begin(sh, sh->open ? 1 : 0);
	for (unsigned i = 0; i < sh->nconns; i++)
		conn_finish(&sh->conns[i], true);
	return f;
}

static sk_future ph_net_down(void *arg)
{
	struct lg_shard *sh = me();
	(void)arg;

	sk_net_fini();
	for (unsigned i = 0; sh->conns && i < sh->nconns; i++)
		sk_free(sh->conns[i].ts);
	sk_free(sh->conns);
	sk_free(sh->set_tmpl);
	sh->conns = NULL;
	sh->set_tmpl = NULL;
	return sk_make_ready(0);
}

/* --- shard 0: the sequence of phases ------------------------------------------------ */

static sk_future step_connect(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_invoke_on_all(ph_connect, NULL);
}

static sk_future step_preload(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	if (!cfg.preload)
		return sk_make_ready(0);
	return sk_invoke_on_all(ph_preload, NULL);
}

static sk_future step_run(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	if (sk_reactor_stopping())
		return sk_make_error(-ECANCELED);	/* interrupted before the run */
	/* Absolute deadlines: every shard counts over the same window. */
	g.t_warm = sk_now_ns() + cfg.warmup * SK_NSEC_PER_SEC;
	g.t_end = g.t_warm + cfg.duration * SK_NSEC_PER_SEC;
	return sk_invoke_on_all(ph_run, NULL);
}

static sk_future step_close(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err && !g.err)
		g.err = err;
	return sk_invoke_on_all(ph_close, NULL);
}

/* On the native stack our TCP is this process: were it to exit as soon as
 * its FINs were acknowledged, the servers' own FINs (and any RST) would
 * find nobody to answer them, and a server would hold those connections
 * until its retransmissions give up - its graceful shutdown waiting out
 * its whole grace period.  A moment's linger lets the handshakes finish. */
#define LINGER_NS (200 * SK_NSEC_PER_MSEC)

static sk_future ph_linger(void *arg)
{
	(void)arg;
	return netcfg.stack == SK_STACK_NATIVE ? sk_sleep(LINGER_NS) : sk_make_ready(0);
}

static sk_future step_linger(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err && !g.err)
		g.err = err;
	return sk_invoke_on_all(ph_linger, NULL);
}

static sk_future step_down(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err && !g.err)
		g.err = err;
	return sk_invoke_on_all(ph_net_down, NULL);
}

static sk_future step_status(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_make_ready(g.err ? 1 : 0);
}

static sk_future lg_main(void *arg)
{
	(void)arg;
	sk_future f = sk_invoke_on_all(ph_net_up, NULL);
	f = sk_future_then(f, step_connect, NULL);
	f = sk_future_then(f, step_preload, NULL);
	f = sk_future_then(f, step_run, NULL);
	f = sk_future_then_wrapped(f, step_close, NULL);
	f = sk_future_then_wrapped(f, step_linger, NULL);
	f = sk_future_then_wrapped(f, step_down, NULL);
	return sk_future_then(f, step_status, NULL);
}

/* --- the script ---------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool is_dup(const uint32_t *keys, unsigned n, uint32_t key)
{
	for (unsigned j = 0; j < n; j++)
		if (keys[j] == key)
			return true;
	return false;
}

/* HTTP: the same keep-alive GET, n times (n >= 2 x the deepest window). */
static int build_http_script(void)
{
	char req[PATH_MAX_LEN + 128];
	int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", cfg.path,
			   cfg.server);
	uint32_t n = 2 * MAX_DEPTH;

	script.n = n;
	script.bytes = malloc((size_t)n * (size_t)len);
	script.off = malloc((n + 1) * sizeof(*script.off));
	script.kind = malloc(n);
	if (!script.bytes || !script.off || !script.kind)
		return -ENOMEM;
	for (uint32_t i = 0; i <= n; i++) {
		script.off[i] = i * (uint32_t)len;
		if (i < n) {
			memcpy(script.bytes + script.off[i], req, (size_t)len);
			script.kind[i] = REQ_HTTP;
		}
	}
	return 0;
}

static int build_script(void)
{
	if (cfg.http)
		return build_http_script();

	size_t get_len = 3 + (size_t)cfg.nkeys_per_get * (KEY_LEN + 1) + 2;
	size_t set_len = 4 + KEY_LEN + 32 + cfg.value_size + 2;
	size_t max_len = get_len > set_len ? get_len : set_len;
	uint32_t n = SCRIPT_MAX_REQS;
	uint32_t threshold = (uint32_t)(cfg.get_ratio * 4294967295.0);
	size_t pos = 0;

	while (n > 1024 && (size_t)n * max_len > SCRIPT_MAX_BYTES)
		n /= 2;
	script.n = n;
	script.bytes = malloc((size_t)n * max_len);
	script.off = malloc((n + 1) * sizeof(*script.off));
	script.kind = malloc(n);
	if (!script.bytes || !script.off || !script.kind)
		return -ENOMEM;
	rng_state = cfg.seed;
	for (uint32_t i = 0; i < n; i++) {
		char *p = (char *)script.bytes + pos;
		script.off[i] = (uint32_t)pos;
		if ((uint32_t)rng() <= threshold && cfg.get_ratio > 0) {
			uint32_t keys[MAX_MULTIGET];
			script.kind[i] = REQ_GET;
			memcpy(p, "get", 3);
			p += 3;
			for (unsigned k = 0; k < cfg.nkeys_per_get; k++) {
				/* Distinct keys in one get: a duplicate would make the
				 * answer's order ambiguous.  keys >= 2 * K (checked in
				 * main), so a draw is new with probability >= 1/2, and
				 * the probe after it ends within k + 1 steps. */
				uint32_t key = (uint32_t)(rng() % cfg.keys);
				for (unsigned t = 0; t < 64 && is_dup(keys, k, key); t++)
					key = (uint32_t)(rng() % cfg.keys);
				for (unsigned j = 0; j <= k && is_dup(keys, k, key); j++)
					key = (key + 1) % (uint32_t)cfg.keys;
				keys[k] = key;
				p += sprintf(p, " key:%08u", key);
			}
			memcpy(p, "\r\n", 2);
			p += 2;
		} else {
			uint32_t key = (uint32_t)(rng() % cfg.keys);
			script.kind[i] = REQ_SET;
			p += sprintf(p, "set key:%08u 0 0 %llu\r\n", key, cfg.value_size);
			if (cfg.verify)
				fill_value((uint8_t *)p, cfg.value_size, (char *)script.bytes + pos + 8);
			else
				memset(p, 'v', cfg.value_size);
			p += cfg.value_size;
			memcpy(p, "\r\n", 2);
			p += 2;
		}
		pos = (size_t)(p - (char *)script.bytes);
	}
	script.off[n] = (uint32_t)pos;
	return 0;
}

/* --- main ---------------------------------------------------------------------------- */

static int check_options(void)
{
	char host[64], *colon, *end, net_err[160];
	unsigned long port;

	if (sk_net_config_check(&netcfg, net_err, sizeof(net_err))) {
		fprintf(stderr, "skerry-loadgen: %s\n", net_err);
		return -EINVAL;
	}
	if (!strcmp(cfg.proto_s, "http")) {
		cfg.http = true;
	} else if (strcmp(cfg.proto_s, "memcached")) {
		fprintf(stderr, "skerry-loadgen: --proto is memcached or http, not '%s'\n",
			cfg.proto_s);
		return -EINVAL;
	}
	if (cfg.path[0] != '/' || strlen(cfg.path) > PATH_MAX_LEN ||
	    strpbrk(cfg.path, " \t\r\n")) {
		fprintf(stderr, "skerry-loadgen: --path must start with '/', hold no blanks and "
			"be at most %d bytes\n", PATH_MAX_LEN);
		return -EINVAL;
	}
	if (cfg.http && (cfg.preload || cfg.multiget > 1)) {
		fprintf(stderr, "skerry-loadgen: --preload and --multiget are for --proto memcached\n");
		return -EINVAL;
	}

	if (strlen(cfg.server) >= sizeof(host) || !(colon = strrchr(cfg.server, ':')))
		goto bad_server;
	memcpy(host, cfg.server, (size_t)(colon - cfg.server));
	host[colon - cfg.server] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535 || sk_addr_parse(host, (uint16_t)port, &cfg.addr))
		goto bad_server;

	cfg.get_ratio = strtod(cfg.get_ratio_s, &end);
	if (*end || !(cfg.get_ratio >= 0 && cfg.get_ratio <= 1)) {
		fprintf(stderr, "skerry-loadgen: --get-ratio must be between 0 and 1\n");
		return -EINVAL;
	}
	cfg.nkeys_per_get = cfg.multiget > 1 ? (unsigned)cfg.multiget : 1;
	if (!cfg.conns || cfg.conns > MAX_CONNS || !cfg.depth || cfg.depth > MAX_DEPTH ||
	    cfg.multiget > MAX_MULTIGET || !cfg.keys || cfg.keys > 100000000ull ||
	    cfg.keys < 2ull * cfg.nkeys_per_get || cfg.value_size > MAX_VALUE ||
	    !cfg.duration || cfg.duration > MAX_DURATION || cfg.warmup > 60 ||
	    !cfg.batch || cfg.batch > cfg.depth) {
		fprintf(stderr, "skerry-loadgen: out of range: need 1 <= -c <= %d, 1 <= -d <= %d, "
			"--multiget <= %d, 2 x multiget <= --keys <= 1e8, --value-size <= %d, "
			"1 <= --duration <= %d, --warmup <= 60, 1 <= --batch <= depth\n",
			MAX_CONNS, MAX_DEPTH, MAX_MULTIGET, MAX_VALUE, MAX_DURATION);
		return -EINVAL;
	}
	return 0;
bad_server:
	fprintf(stderr, "skerry-loadgen: --server must be IPv4:PORT, e.g. 127.0.0.1:11211\n");
	return -EINVAL;
}

/* Enough descriptors for every connection. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.conns + 64) {
		rl.rlim_cur = rl.rlim_max < cfg.conns + 64 ? rl.rlim_max : cfg.conns + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static double tv_sec(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static int report(unsigned nshards)
{
	static struct hist h;
	struct lg_stats t = { 0 };
	double rps = 0, ops = 0, secs;

	for (unsigned s = 0; s < nshards; s++) {
		struct lg_stats *x = &shards[s].st;
		double d = x->t_stop > x->t_start ? (double)(x->t_stop - x->t_start) / 1e9 : 0;
		t.reqs += x->reqs;
		t.gets += x->gets;
		t.sets += x->sets;
		t.keyops += x->keyops;
		t.hits += x->hits;
		t.misses += x->misses;
		t.errors += x->errors;
		t.verify_errors += x->verify_errors;
		t.bytes += x->bytes;
		t.reads += x->reads;
		t.writes += x->writes;
		/* Each shard over its own window (they differ by timer jitter). */
		if (d > 0) {
			rps += (double)x->reqs / d;
			ops += (double)x->keyops / d;
		}
		hist_merge(&h, &shards[s].h);
	}
	secs = g.wall1 > g.wall0 ? (double)(g.wall1 - g.wall0) / 1e9 : 0;
	double user = tv_sec(&g.ru1.ru_utime) - tv_sec(&g.ru0.ru_utime);
	double sys = tv_sec(&g.ru1.ru_stime) - tv_sec(&g.ru0.ru_stime);
	double cpu_pct = secs > 0 ? 100.0 * (user + sys) / secs : 0;
	double p50 = (double)hist_quantile(&h, 0.50) / 1e3;
	double p99 = (double)hist_quantile(&h, 0.99) / 1e3;
	double p999 = (double)hist_quantile(&h, 0.999) / 1e3;
	double pmax = (double)h.max / 1e3;
	double srv_pct = -1;
	if (g.srv0 >= 0 && g.srv1 >= g.srv0 && secs > 0)
		srv_pct = 100.0 * (double)(g.srv1 - g.srv0) / (double)sysconf(_SC_CLK_TCK) / secs;

	const char *stack = netcfg.stack == SK_STACK_NATIVE ? ", native stack" : "";
	if (cfg.http) {
		printf("skerry-loadgen: http://%s%s, %llu connections x depth %llu on %u shard%s%s%s\n",
		       cfg.server, cfg.path, cfg.conns, cfg.depth, nshards, nshards == 1 ? "" : "s",
		       stack, cfg.verify ? ", verified" : "");
	} else {
		printf("skerry-loadgen: %s, %llu connections x depth %llu on %u shard%s, "
		       "%.0f%% gets of %u key%s, %llu keys, %llu-byte values%s%s%s\n",
		       cfg.server, cfg.conns, cfg.depth, nshards, nshards == 1 ? "" : "s",
		       cfg.get_ratio * 100, cfg.nkeys_per_get, cfg.nkeys_per_get == 1 ? "" : "s",
		       cfg.keys, cfg.value_size, cfg.preload ? ", preloaded" : "", stack,
		       cfg.verify ? ", verified" : "");
		/* Value bytes the gets brought back. */
		t.bytes = t.hits * cfg.value_size;
	}
	printf("  measured %.2f s after %llu s of warm-up\n", secs, cfg.warmup);
	if (cfg.http) {
		printf("  responses/s %12.0f   body %.1f MB/s\n", rps,
		       secs > 0 ? (double)t.bytes / secs / 1e6 : 0);
		printf("  responses %" PRIu64 "  body bytes %" PRIu64 "  errors %" PRIu64
		       " (incl. non-2xx)", t.reqs, t.bytes, t.errors);
	} else {
		printf("  key-ops/s   %12.0f   (a get of K keys counts K)\n", ops);
		printf("  requests/s  %12.0f\n", rps);
		printf("  gets %" PRIu64 "  sets %" PRIu64 "  hits %" PRIu64 "  misses %" PRIu64
		       "  errors %" PRIu64, t.gets, t.sets, t.hits, t.misses, t.errors);
	}
	if (cfg.verify)
		printf("  verify errors %" PRIu64, t.verify_errors);
	printf("\n");
	printf("  batching: %.2f requests per read callback, %.2f per write\n",
	       t.reads ? (double)t.reqs / (double)t.reads : 0,
	       t.writes ? (double)t.reqs / (double)t.writes : 0);
	printf("  latency per request: p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n",
	       p50, p99, p999, pmax);
	printf("  loadgen CPU: user %.2f s + sys %.2f s = %.1f%% of one core\n", user, sys, cpu_pct);
	if (srv_pct >= 0)
		printf("  server CPU (pid %llu): %.1f%% of one core\n", cfg.server_pid, srv_pct);
	char cpus[SK_MAX_SHARDS * 8] = "-";
	size_t cl = 0;
	for (unsigned i = 0; secs > 0 && i < g.ncpu0 && g.ncpu0 == g.ncpu1; i++)
		cl += (size_t)snprintf(cpus + cl, sizeof(cpus) - cl, "%s%.1f", i ? "," : "",
				       100.0 * (double)(g.busy1[i] - g.busy0[i]) /
				       (double)sysconf(_SC_CLK_TCK) / secs);
	printf("  busy %% of each CPU (all programs, incl. softirq): %s\n", cpus);
	printf("RESULT ops=%.0f rps=%.0f gets=%" PRIu64 " sets=%" PRIu64 " hits=%" PRIu64
	       " misses=%" PRIu64 " errors=%" PRIu64 " p50_us=%.1f p99_us=%.1f p999_us=%.1f"
	       " max_us=%.1f cpu_pct=%.1f user_s=%.3f sys_s=%.3f secs=%.3f server_cpu_pct=%.1f"
	       " cpus_busy_pct=%s verify_errors=%" PRIu64 " bytes=%" PRIu64 "\n",
	       ops, rps, t.gets, t.sets, t.hits, t.misses, t.errors, p50, p99, p999, pmax,
	       cpu_pct, user, sys, secs, srv_pct, cpus, t.verify_errors, t.bytes);
	return t.errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct sk_option mine[] = {
		{ "server", 's', SK_OPT_STRING, &cfg.server, "HOST:PORT", "server to load (memcached or HTTP)" },
		{ "proto", 0, SK_OPT_STRING, &cfg.proto_s, "NAME", "memcached (text protocol) or http (keep-alive GETs)" },
		{ "path", 0, SK_OPT_STRING, &cfg.path, "PATH", "http: the path every GET asks for" },
		{ "connections", 'c', SK_OPT_UINT, &cfg.conns, "N", "connections (spread over the shards)" },
		{ "depth", 'd', SK_OPT_UINT, &cfg.depth, "N", "requests in flight per connection, pipelined" },
		{ "get-ratio", 0, SK_OPT_STRING, &cfg.get_ratio_s, "R", "share of gets, 0..1 (the rest are sets)" },
		{ "keys", 0, SK_OPT_UINT, &cfg.keys, "N", "key space: key:00000000 .. key:N-1" },
		{ "value-size", 0, SK_OPT_UINT, &cfg.value_size, "BYTES", "value length of sets" },
		{ "multiget", 0, SK_OPT_UINT, &cfg.multiget, "K", "keys per get (0 or 1: single get)" },
		{ "duration", 0, SK_OPT_UINT, &cfg.duration, "SEC", "measured seconds (at most 600)" },
		{ "warmup", 0, SK_OPT_UINT, &cfg.warmup, "SEC", "seconds of load before measuring" },
		{ "preload", 0, SK_OPT_FLAG, &cfg.preload, NULL, "set every key once first (then a miss is an error)" },
		{ "batch", 0, SK_OPT_UINT, &cfg.batch, "N", "refill a connection only when N requests are answered (1: keep it full)" },
		{ "seed", 0, SK_OPT_UINT, &cfg.seed, "N", "seed of the request mix" },
		{ "server-pid", 0, SK_OPT_UINT, &cfg.server_pid, "PID", "also report this process's CPU over the measured interval" },
		{ "verify", 0, SK_OPT_FLAG, &cfg.verify, NULL, "memcached: values are their key's digits repeated, every value got is checked; http: every body as long as the first" },
		SK_NET_OPTIONS(&netcfg),
		{ 0 },
	};
	static const struct sk_program prog = { "skerry-loadgen",
		"Drive a memcached (text protocol) or HTTP/1.1 server and measure ops/s, latency and own CPU.",
		mine };
	struct sk_opts o;
	bool spin_given = false, level_given = false;

	int rc = sk_options_parse(&prog, argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (check_options())
		return 2;
	for (int i = 1; i < argc; i++) {
		spin_given |= !strncmp(argv[i], "--idle-spin-us", 14);
		level_given |= !strncmp(argv[i], "--log-level", 11);
	}
	/* Spinning while the server works would show up as our CPU time and
	 * hide what a request really costs us; sleep at once unless asked. */
	if (!spin_given)
		o.idle_spin_ns = 1;
	/* The runtime's start-up lines would bury the summary. */
	if (!level_given)
		o.log_level = SK_LOG_WARN;
	raise_nofile();
	if (build_script()) {
		fprintf(stderr, "skerry-loadgen: out of memory for the request script\n");
		return 1;
	}
	rc = sk_smp_run(&o, lg_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "skerry-loadgen: could not start the shards: %s\n", strerror(-rc));
		return 1;
	}
	int bad = report(g.nshards);
	free(script.bytes);
	free(script.off);
	free(script.kind);
	if (rc)
		return rc;
	return bad;
}
