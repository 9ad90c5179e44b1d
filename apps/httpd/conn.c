/*
 * conn.c - serving one HTTP connection, and the per-shard pieces it needs.
 *
 * Roadmap:
 *   shard     per-shard state: the cached "Date:" line and a coarse clock
 *             (both refreshed by a 100 ms timer, so no request formats a
 *             date or reads the clock), the output stage, a path buffer.
 *   output    out_put()/out_flush(): responses are staged in the shard's
 *             buffer and handed to the socket with one sk_write() per
 *             batch of pipelined requests; bodies above HC_COPY_MAX go out
 *             by reference from the file table (sk_write_ref, no copy).
 *             The stage is always empty when a connection's pump returns,
 *             so one buffer serves every connection of the shard.
 *   answers   respond(): prepared head + Date + Connection + body; the
 *             error answers are prepared once at start-up.
 *   input     conn_input(): parses everything buffered, in place in the
 *             stack's buffers; a head cut by a buffer's end is gathered in
 *             a small carry buffer (bounded by the head limits), so the
 *             stack gets its buffer back.  Bodies (Content-Length or
 *             chunked) are skipped, then the request is answered, so
 *             answers keep request order.
 *   timers    one sk_timer per connection holds the next deadline lazily:
 *             moving the deadline later costs a store, and the timer
 *             re-arms itself when it fires early.  A head that is not
 *             complete by --header-timeout gets 408 and the connection
 *             closes; an idle keep-alive connection closes after
 *             --keepalive-timeout.
 *   pump      conn_pump(): the connection loop (as in memcached's conn.c):
 *             parse, answer, flush the stage, wait on sk_flush() when
 *             output passes HC_OUT_BOUND, yield when the task budget is
 *             spent, read again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_parser.h"
#include "httpd.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#define HC_STAGE	(32u * 1024)	/* output stage per shard */
#define HC_COPY_MAX	(8u * 1024)	/* bodies up to this are copied */
#define HC_OUT_BOUND	(256u * 1024)	/* queued output before we wait */
#define HC_CARRY_MIN	512

struct httpd_settings httpd_settings = {
	.header_timeout_ns = 10 * SK_NSEC_PER_SEC,
	.keepalive_timeout_ns = 60 * SK_NSEC_PER_SEC,
	.maxconns = 1024,
};

/* ---- prepared error answers ---------------------------------------------- */

struct herr {
	uint16_t status;
	uint16_t head_len, body_len;
	char head[200];
	char body[200];
};

static const struct {
	uint16_t status;
	const char *reason;
} err_reasons[] = {
	{ 400, "Bad Request" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 413, "Content Too Large" },
	{ 414, "URI Too Long" },
	{ 431, "Request Header Fields Too Large" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
	{ 505, "HTTP Version Not Supported" },
};
#define N_ERRS (sizeof(err_reasons) / sizeof(err_reasons[0]))
static struct herr errs[N_ERRS];

int httpd_conn_global_init(void)
{
	for (size_t i = 0; i < N_ERRS; i++) {
		struct herr *e = &errs[i];
		unsigned st = err_reasons[i].status;
		const char *why = err_reasons[i].reason;
		int b = snprintf(e->body, sizeof(e->body),
				 "<html><head><title>%u %s</title></head>"
				 "<body><h1>%u %s</h1></body></html>\n", st, why, st, why);
		int h = snprintf(e->head, sizeof(e->head),
				 "HTTP/1.1 %u %s\r\nServer: skerry-httpd\r\n"
				 "Content-Type: text/html; charset=utf-8\r\n"
				 "Content-Length: %d\r\n%s", st, why, b,
				 st == 405 ? "Allow: GET, HEAD\r\n" : "");
		if (b <= 0 || (size_t)b >= sizeof(e->body) || h <= 0 || (size_t)h >= sizeof(e->head))
			return -EINVAL;
		e->status = (uint16_t)st;
		e->head_len = (uint16_t)h;
		e->body_len = (uint16_t)b;
	}
	return 0;
}

static const struct herr *err_of(unsigned status)
{
	for (size_t i = 0; i < N_ERRS; i++)
		if (errs[i].status == status)
			return &errs[i];
	return &errs[0];
}

/* ---- per shard ----------------------------------------------------------- */

struct hshard {
	size_t stage_len;
	uint64_t now;			/* monotonic ns, refreshed every tick */
	int64_t date_sec;		/* the second sh->date shows */
	uint32_t date_len;
	char date[48];			/* "Date: ... GMT\r\n" */
	struct sk_timer date_timer;
	char path[HTTP_MAX_URI + HTTP_PATH_EXTRA];
	char stage[HC_STAGE];
};
static struct hshard *hshards[SK_MAX_SHARDS];

static inline struct hshard *local(void)
{
	return hshards[sk_shard_id()];
}

#define HC_TICK	(100 * SK_NSEC_PER_MSEC)

/* Every tick: the coarse clock the connection deadlines use (so no
 * request reads the clock), and the Date line when the second changed. */
static void date_update(struct hshard *sh)
{
	int64_t sec = (int64_t)time(NULL);

	sh->now = sk_now_ns();
	if (sec == sh->date_sec)
		return;
	sh->date_sec = sec;
	memcpy(sh->date, "Date: ", 6);
	http_format_date(sec, sh->date + 6);
	memcpy(sh->date + 6 + HTTP_DATE_LEN, "\r\n", 2);
	sh->date_len = 6 + HTTP_DATE_LEN + 2;
}

static void date_tick(struct sk_timer *t)
{
	date_update(t->arg);
}

int httpd_conn_shard_init(void)
{
	struct hshard *sh = sk_zalloc(sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	hshards[sk_shard_id()] = sh;
	date_update(sh);
	sk_timer_init(&sh->date_timer, date_tick, sh);
	sh->date_timer.flags = SK_TIMER_BACKGROUND;
	return sk_timer_arm_periodic(&sh->date_timer, HC_TICK);
}

void httpd_conn_shard_stop(void)
{
	struct hshard *sh = local();
	if (sh)
		sk_timer_cancel(&sh->date_timer);
}

/* ---- a connection -------------------------------------------------------- */

enum { ST_HEAD, ST_BODY, ST_CHUNKED };
enum { IN_OK, IN_MORE, IN_CLOSE, IN_AGAIN };

struct hconn {
	struct sk_sock *s;
	struct sk_promise *done;	/* httpd_conn_run()'s future */
	uint8_t *carry;			/* a head cut by a buffer's end */
	uint32_t carry_len, carry_cap;
	struct http_scan scan;
	uint8_t state;			/* ST_* */
	bool waiting;			/* a read/flush/yield callback is due */
	bool closing;			/* sk_close() called */
	bool closed;			/* ... and it resolved */
	bool expired;			/* the timer fired: finish up */
	bool served;			/* answered a request: keep-alive timeout */
	bool head_timed;		/* the header deadline of this head is set */
	bool flushing;			/* waiting on sk_flush(): send deadline */
	bool drained;			/* conn_close() waited for the output */
	bool aborted;			/* sk_abort() called: no sk_close() */
	size_t flush_left;		/* queued output at the last send check */
	int err;			/* write error */
	uint64_t deadline;		/* 0 = none */
	uint64_t body_left;
	struct http_chunked ck;
	/* the answer due once the body has been skipped */
	const struct hfile *pf;
	uint16_t pstatus;
	bool phead, pkeep, pminor1;
	struct sk_timer timer;
};

static void out_flush(struct hconn *c, struct hshard *sh)
{
	if (sh->stage_len == 0)
		return;
	if (c->err == 0) {
		int rc = sk_write(c->s, sh->stage, sh->stage_len);
		if (rc < 0)
			c->err = rc;
	}
	sh->stage_len = 0;
}

static inline void out_put(struct hconn *c, struct hshard *sh, const void *p, size_t n)
{
	if (SK_UNLIKELY(sh->stage_len + n > HC_STAGE)) {
		out_flush(c, sh);
		if (n > HC_STAGE) {
			if (c->err == 0) {
				int rc = sk_write(c->s, p, n);
				if (rc < 0)
					c->err = rc;
			}
			return;
		}
	}
	memcpy(sh->stage + sh->stage_len, p, n);
	sh->stage_len += n;
}

static void body_release(void *arg)
{
	(void)arg;	/* the file table outlives every socket */
}

static void put_tail(struct hconn *c, struct hshard *sh, bool keep, bool minor1)
{
	static const char t_keep11[] = "\r\n";
	static const char t_keep10[] = "Connection: keep-alive\r\n\r\n";
	static const char t_close[] = "Connection: close\r\n\r\n";

	out_put(c, sh, sh->date, sh->date_len);
	if (!keep)
		out_put(c, sh, t_close, sizeof(t_close) - 1);
	else if (minor1)
		out_put(c, sh, t_keep11, sizeof(t_keep11) - 1);
	else
		out_put(c, sh, t_keep10, sizeof(t_keep10) - 1);
}

/* The answer held in c->p*. */
static void respond(struct hconn *c, struct hshard *sh)
{
	const struct hfile *f = c->pf;

	if (c->pstatus == 200) {
		out_put(c, sh, f->hdr_ok, f->hdr_ok_len);
		put_tail(c, sh, c->pkeep, c->pminor1);
		if (c->phead || f->len == 0)
			return;
		if (f->len <= HC_COPY_MAX) {
			out_put(c, sh, f->body, f->len);
			return;
		}
		out_flush(c, sh);
		if (c->err == 0) {
			int rc = sk_write_ref(c->s, f->body, f->len, body_release, NULL);
			if (rc < 0)
				c->err = rc;
		}
		return;
	}
	if (c->pstatus == 304) {
		out_put(c, sh, f->hdr_nm, f->hdr_nm_len);
		put_tail(c, sh, c->pkeep, c->pminor1);
		return;
	}
	const struct herr *e = err_of(c->pstatus);
	out_put(c, sh, e->head, e->head_len);
	put_tail(c, sh, c->pkeep, c->pminor1);
	if (!c->phead)
		out_put(c, sh, e->body, e->body_len);
}

/* An error answer that ends the connection (malformed input, limits). */
static int respond_fatal(struct hconn *c, struct hshard *sh, unsigned status)
{
	c->pf = NULL;
	c->pstatus = (uint16_t)status;
	c->phead = false;
	c->pkeep = false;
	c->pminor1 = true;
	respond(c, sh);
	return IN_CLOSE;
}

/* After an answer: go on, stop to let output drain, or close. */
static int answered(struct hconn *c, struct hshard *sh)
{
	c->served = true;
	if (!c->pkeep)
		return IN_CLOSE;
	if (sh->stage_len + sk_write_queued(c->s) > HC_OUT_BOUND)
		return IN_AGAIN;
	return IN_OK;
}

static bool not_modified(const struct http_req *r, const uint8_t *h, const struct hfile *f)
{
	const uint8_t *v = h + r->ims_off;
	if (r->ims_len == HTTP_DATE_LEN &&
	    memcmp(v, f->hdr_ok + f->lastmod_off, HTTP_DATE_LEN) == 0)
		return true;	/* the client echoes our Last-Modified */
	int64_t t = http_parse_date(v, r->ims_len);
	return t >= 0 && t >= f->mtime;
}

/* A complete head h[0..len): decide the answer, then skip the body. */
static int on_head(struct hconn *c, struct hshard *sh, const uint8_t *h, size_t len)
{
	struct http_req r;
	int rc = http_parse_head(h, len, &r);

	memset(&c->scan, 0, sizeof(c->scan));
	c->head_timed = false;
	if (rc < 0)
		return respond_fatal(c, sh, (unsigned)-rc);
	c->pf = NULL;
	c->phead = r.method == HTTP_M_HEAD;
	c->pkeep = r.keepalive;
	c->pminor1 = r.minor == 1;
	if (r.method == HTTP_M_OTHER) {
		c->pstatus = 405;
	} else {
		int n = http_path_decode(h + r.target_off, r.target_len, sh->path, sizeof(sh->path));
		if (n < 0)
			return respond_fatal(c, sh, 400);
		c->pf = httpd_file_find(sh->path, (size_t)n);
		if (!c->pf)
			c->pstatus = 404;
		else if (r.ims_len && not_modified(&r, h, c->pf))
			c->pstatus = 304;
		else
			c->pstatus = 200;
	}
	if (r.chunked) {
		memset(&c->ck, 0, sizeof(c->ck));
		c->state = ST_CHUNKED;
		return IN_OK;
	}
	if (r.content_length) {
		c->body_left = r.content_length;
		c->state = ST_BODY;
		return IN_OK;
	}
	respond(c, sh);
	return answered(c, sh);
}

static bool carry_put(struct hconn *c, const uint8_t *p, size_t n)
{
	if (c->carry_len + n > c->carry_cap) {
		size_t cap = c->carry_cap ? c->carry_cap : HC_CARRY_MIN;
		while (cap < c->carry_len + n)
			cap *= 2;
		uint8_t *q = sk_realloc(c->carry, cap);
		if (!q)
			return false;
		c->carry = q;
		c->carry_cap = (uint32_t)cap;
	}
	memcpy(c->carry + c->carry_len, p, n);
	c->carry_len += (uint32_t)n;
	return true;
}

/* Work through p[0..len) in place; *off says how far we got. */
static int input_run(struct hconn *c, struct hshard *sh, const uint8_t *p, size_t len,
		     size_t *offp)
{
	size_t off = 0;
	int r = IN_OK;

	while (off < len && r == IN_OK) {
		if (c->state == ST_BODY) {
			size_t n = len - off;
			if (n > c->body_left)
				n = (size_t)c->body_left;
			off += n;
			c->body_left -= n;
			if (c->body_left == 0) {
				c->state = ST_HEAD;
				respond(c, sh);
				r = answered(c, sh);
			}
			continue;
		}
		if (c->state == ST_CHUNKED) {
			size_t used;
			int k = http_chunked_skip(&c->ck, p + off, len - off, &used);
			off += used;
			if (k < 0) {
				r = respond_fatal(c, sh, (unsigned)-k);
			} else if (k > 0) {
				c->state = ST_HEAD;
				respond(c, sh);
				r = answered(c, sh);
			}
			continue;
		}
		/* Blank lines before a request line are allowed (RFC 9112 2.2). */
		if (c->scan.pos == 0 && (p[off] == '\r' || p[off] == '\n')) {
			off++;
			continue;
		}
		int hl = http_head_scan(&c->scan, p + off, len - off);
		if (hl < 0) {
			r = respond_fatal(c, sh, (unsigned)-hl);
		} else if (hl == 0) {
			/* Cut by the end of this buffer: keep it (within the
			 * limits the scan checked) and give the buffer back. */
			if (!carry_put(c, p + off, len - off))
				r = IN_CLOSE;
			off = len;
		} else {
			r = on_head(c, sh, p + off, (size_t)hl);
			off += (size_t)hl;
		}
	}
	*offp = off;
	return r;
}

/* Parse and answer everything buffered. */
static int conn_input(struct hconn *c, struct hshard *sh)
{
	for (;;) {
		size_t len, off;
		const uint8_t *p = sk_read_peek(c->s, &len);
		if (!p || len == 0)
			return IN_MORE;
		if (c->carry_len) {
			size_t old = c->carry_len;
			size_t take = HTTP_MAX_HEAD + 1 - old;
			if (take > len)
				take = len;
			if (!carry_put(c, p, take))
				return IN_CLOSE;
			int hl = http_head_scan(&c->scan, c->carry, c->carry_len);
			if (hl < 0) {
				sk_read_consume(c->s, take);
				return respond_fatal(c, sh, (unsigned)-hl);
			}
			if (hl == 0) {
				sk_read_consume(c->s, take);
				continue;
			}
			sk_read_consume(c->s, (size_t)hl - old);
			c->carry_len = 0;
			int r = on_head(c, sh, c->carry, (size_t)hl);
			if (c->carry_cap > 4 * HC_CARRY_MIN) {
				sk_free(c->carry);	/* a big head: do not keep its buffer */
				c->carry = NULL;
				c->carry_cap = 0;
			}
			if (r != IN_OK)
				return r;
			continue;
		}
		int r = input_run(c, sh, p, len, &off);
		sk_read_consume(c->s, off);
		if (r != IN_OK)
			return r;
	}
}

/* ---- timers -------------------------------------------------------------- */

static void set_deadline(struct hconn *c, uint64_t d)
{
	c->deadline = d;
	if (!sk_timer_armed(&c->timer) || c->timer.deadline > d)
		sk_timer_arm_at(&c->timer, d);
}

static void conn_timeout(struct sk_timer *t)
{
	struct hconn *c = t->arg;
	uint64_t now = sk_now_ns();

	if (c->closing || c->deadline == 0)
		return;
	if (now < c->deadline) {
		sk_timer_arm_at(t, c->deadline);
		return;
	}
	if (c->flushing && sk_write_queued(c->s) < c->flush_left) {
		/* Output is moving: give it another keep-alive time. */
		c->flush_left = sk_write_queued(c->s);
		c->deadline = now + httpd_settings.keepalive_timeout_ns;
		sk_timer_arm_at(t, c->deadline);
		return;
	}
	if (c->flushing) {
		/* A peer that stopped reading: drop its output and go.  The
		 * flush fails, and its callback frees the connection. */
		c->expired = true;
		c->aborted = true;
		sk_abort(c->s);
		return;
	}
	if (c->expired)
		return;
	c->expired = true;
	/* Part of a request came but not all of it: 408, then close.  An
	 * idle connection just closes.  Nothing of ours is staged now. */
	if (c->carry_len || c->state != ST_HEAD) {
		struct hshard *sh = local();
		respond_fatal(c, sh, 408);
		out_flush(c, sh);
	}
	sk_shutdown_read(c->s);	/* the pending read ends; the pump closes */
}

/* ---- the connection loop ------------------------------------------------- */

static void conn_pump(struct hconn *c);

static void conn_free(struct hconn *c)
{
	struct sk_promise *p = c->done;
	sk_timer_cancel(&c->timer);
	sk_free(c->carry);
	sk_free(c);
	sk_promise_set_value(p, 0);
}

static void conn_closed(void *arg, int64_t v, int err)
{
	struct hconn *c = arg;
	(void)v;
	(void)err;
	c->closed = true;
	if (!c->waiting)
		conn_free(c);
}

static void conn_drained(void *arg, int64_t v, int err);

static void conn_close(struct hconn *c)
{
	if (c->closing)
		return;
	if (c->aborted) {
		/* The stack frees the socket: there is nothing to close. */
		c->closing = c->closed = true;
		conn_free(c);
		return;
	}
	/* sk_close() waits for the output to go out: bound that wait, so a
	 * peer that does not read cannot keep us (and shutdown) for ever. */
	if (!c->drained && !c->err && sk_write_queued(c->s)) {
		sk_future f = sk_flush(c->s);
		c->drained = true;
		if (!sk_future_available(f)) {
			c->flushing = true;
			c->flush_left = sk_write_queued(c->s);
			c->waiting = true;
			set_deadline(c, local()->now + httpd_settings.keepalive_timeout_ns);
			sk_future_on_done(f, conn_drained, c);
			return;
		}
		int ferr;
		sk_future_get(f, &ferr);
	}
	c->closing = true;
	sk_timer_cancel(&c->timer);
	sk_future_on_done(sk_close(c->s), conn_closed, c);
}

/* A read/flush/yield callback: false when the conn is going away. */
static bool conn_wake(struct hconn *c)
{
	c->waiting = false;
	c->flushing = false;
	if (c->closing) {
		if (c->closed)
			conn_free(c);
		return false;
	}
	return true;
}

static void conn_readable(void *arg, int64_t v, int err)
{
	struct hconn *c = arg;
	if (!conn_wake(c))
		return;
	if (err || v == 0) {
		conn_close(c);
		return;
	}
	conn_pump(c);
}

static void conn_resumed(void *arg, int64_t v, int err)
{
	struct hconn *c = arg;
	(void)v;
	if (!conn_wake(c))
		return;
	if (err) {
		conn_close(c);
		return;
	}
	conn_pump(c);
}

static void conn_drained(void *arg, int64_t v, int err)
{
	struct hconn *c = arg;
	(void)v;
	(void)err;
	if (conn_wake(c))
		conn_close(c);
}

static void conn_pump(struct hconn *c)
{
	struct hshard *sh = local();

	for (unsigned rounds = 0;; rounds++) {
		if (c->err || c->expired) {
			conn_close(c);
			return;
		}
		/* A client that keeps us busy must let the others run. */
		if (rounds && sk_need_preempt()) {
			c->waiting = true;
			sk_future_on_done(sk_yield(), conn_resumed, c);
			return;
		}
		/* A slow reader: stop parsing until its output drains. */
		if (sk_write_queued(c->s) > HC_OUT_BOUND) {
			sk_future f = sk_flush(c->s);
			if (!sk_future_available(f)) {
				/* No send progress for keep-alive time: abort. */
				c->flushing = true;
				c->flush_left = sk_write_queued(c->s);
				set_deadline(c, sh->now + httpd_settings.keepalive_timeout_ns);
				c->waiting = true;
				sk_future_on_done(f, conn_resumed, c);
				return;
			}
			int err;
			sk_future_get(f, &err);
			if (err) {
				conn_close(c);
				return;
			}
		}
		int r = conn_input(c, sh);
		out_flush(c, sh);
		if (r == IN_CLOSE) {
			conn_close(c);
			return;
		}
		if (r == IN_AGAIN)
			continue;
		/* Everything buffered is consumed: wait for more (at shutdown
		 * main.c ends our input, so this read returns 0 and we close). */
		uint64_t now = sh->now;
		if (c->carry_len || c->state == ST_CHUNKED || c->state == ST_BODY) {
			/* Inside a request: its head has header-timeout from its
			 * first bytes; a body gets keep-alive time per read. */
			if (c->state != ST_HEAD)
				set_deadline(c, now + httpd_settings.keepalive_timeout_ns);
			else if (!c->head_timed)
				set_deadline(c, now + httpd_settings.header_timeout_ns);
			c->head_timed = true;
		} else if (c->served) {
			set_deadline(c, now + httpd_settings.keepalive_timeout_ns);
		}
		sk_future f = sk_read(c->s);
		if (!sk_future_available(f)) {
			c->waiting = true;
			sk_future_on_done(f, conn_readable, c);
			return;
		}
		int err;
		int64_t n = sk_future_get(f, &err);
		if (err || n == 0) {
			conn_close(c);
			return;
		}
	}
}

sk_future httpd_conn_run(struct sk_sock *s)
{
	struct hconn *c = sk_zalloc(sizeof(*c));
	struct sk_promise *p = c ? sk_promise_new() : NULL;
	if (!p) {
		sk_free(c);
		sk_future_ignore(sk_close(s));
		return sk_make_error(-ENOMEM);
	}
	c->s = s;
	c->done = p;
	sk_timer_init(&c->timer, conn_timeout, c);
	c->timer.flags = SK_TIMER_BACKGROUND;
	sk_future f = sk_promise_future(p);
	if (sk_reactor_stopping()) {
		conn_close(c);
		return f;
	}
	/* The first request's head must come within the header timeout. */
	set_deadline(c, local()->now + httpd_settings.header_timeout_ns);
	c->head_timed = true;
	conn_pump(c);
	return f;
}

void httpd_conn_reject(struct sk_sock *s)
{
	const struct herr *e = err_of(503);
	static const char tail[] = "Connection: close\r\n\r\n";
	char buf[512];
	size_t n = 0;

	memcpy(buf, e->head, e->head_len);
	n += e->head_len;
	memcpy(buf + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	memcpy(buf + n, e->body, e->body_len);
	n += e->body_len;
	sk_write(s, buf, n);
	sk_future_ignore(sk_close(s));
}
