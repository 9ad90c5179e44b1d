/*
 * conn.c - the session core (batches, answers, output) and TCP connections.
 *
 * Roadmap:
 *   output    mc_out_*: answers are staged in the batch's buffer and handed
 *             to the socket with one sk_write per 16 KiB (or per batch);
 *             values above MC_COPY_MAX go by reference from item memory.
 *   batches   a per-shard pool of struct mc_batch, taken by a session only
 *             while it has input to work on, so idle connections cost a few
 *             hundred bytes.
 *   parsing   mc_sess_parse(): values and swallowed bytes first, then one
 *             command at a time through the protocol picked by the first
 *             byte of the connection (0x80 = binary, as stock).
 *   running   mc_sess_run(): one mc_exec() for the whole batch, then every
 *             answer in request order; barriers (flush_all, stats) run their
 *             own future after the requests before them.
 *   TCP       conn_pump(): the per-connection loop.  It parses everything
 *             buffered before reading again, in place in the stack's
 *             buffers; a command cut by a buffer's end is gathered in a
 *             small carry buffer (so every line parses contiguous and the
 *             stack gets its buffer back), and output beyond MC_OUT_BOUND
 *             waits on sk_flush() before more is parsed.
 *
 * Futures are consumed with sk_future_on_done() callbacks and only when they
 * are pending, so the common case (everything local and ready) runs as one
 * plain loop without allocation or recursion.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "mc.h"
#include "proto.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"

#define MC_OUT_BOUND	(256u * 1024)	/* queued output before we wait */
#define MC_POOL_KEEP	32		/* free batches a shard keeps */
#define MC_CARRY_MIN	256

/* ---- output -------------------------------------------------------------- */

char *mc_out_room_slow(struct mc_out *o, size_t n)
{
	if (o->udp) {
		mc_udp_out_grow(o, n);
	} else {
		mc_out_flush(o);
		if (n > o->cap)
			return NULL;	/* no answer piece is this large */
	}
	if (o->cap - o->len < n)
		return NULL;
	return o->buf + o->len;
}

void mc_out_flush(struct mc_out *o)
{
	if (o->udp || o->len == 0)
		return;
	if (o->err == 0) {
		int rc = sk_write(o->sock, o->buf, o->len);
		if (rc < 0)
			o->err = rc;
	}
	mc_stats_local()->bytes_written += o->len;
	o->len = 0;
}

void mc_out_value(struct mc_out *o, struct mc_item *it, const char *data, size_t n)
{
	if (n <= MC_COPY_MAX || o->udp) {
		char *p = mc_out_room(o, n);
		if (p) {
			memcpy(p, data, n);
			o->len += n;
		}
		mc_item_put(it);
		return;
	}
	mc_out_flush(o);
	if (o->err) {
		mc_item_put(it);
		return;
	}
	/* The stack keeps the reference until the bytes are sent. */
	int rc = sk_write_ref(o->sock, data, n, mc_item_release, it);
	if (rc < 0)
		o->err = rc;
	mc_stats_local()->bytes_written += n;
}

/* ---- batches ------------------------------------------------------------- */

struct conn_shard {
	_Alignas(64) struct mc_batch *pool;	/* free batches */
	unsigned npool;
};
static struct conn_shard shards[SK_MAX_SHARDS];

static struct conn_shard *local_shard(void)
{
	return &shards[sk_shard_id()];
}

bool mc_sess_hold(struct mc_sess *s)
{
	if (s->b)
		return true;
	struct conn_shard *sh = local_shard();
	struct mc_batch *b = sh->pool;
	if (b) {
		sh->pool = b->next;
		sh->npool--;
	} else {
		b = sk_alloc(sizeof(*b));
		if (!b)
			return false;
	}
	b->next = NULL;
	b->ncmd = b->nreq = b->replied = 0;
	b->exec_err = b->barrier_err = 0;
	s->b = b;
	if (!s->udp) {
		s->out.buf = b->stage;
		s->out.cap = sizeof(b->stage);
		s->out.len = 0;
	}
	return true;
}

void mc_sess_release(struct mc_sess *s)
{
	struct mc_batch *b = s->b;
	if (!b || s->running || b->ncmd)
		return;
	mc_out_flush(&s->out);
	if (!s->udp) {
		s->out.buf = NULL;
		s->out.cap = 0;
	}
	s->b = NULL;
	struct conn_shard *sh = local_shard();
	if (sh->npool >= MC_POOL_KEEP) {
		sk_free(b);
		return;
	}
	b->next = sh->pool;
	sh->pool = b;
	sh->npool++;
}

void mc_sess_init(struct mc_sess *s, struct sk_sock *sock, struct mc_udp_out *udp)
{
	memset(s, 0, sizeof(*s));
	s->out.sock = sock;
	s->out.udp = udp;
	s->udp = udp != NULL;
	s->proto = udp ? MC_PROTO_TEXT : MC_PROTO_NONE;
}

void mc_sess_fini(struct mc_sess *s)
{
	SK_ASSERT(!s->running);
	if (s->vitem) {
		mc_item_put(s->vitem);
		s->vitem = NULL;
	}
	if (s->b) {
		/* Commands parsed but never run still own their new items. */
		struct mc_batch *b = s->b;
		for (unsigned i = b->replied; i < b->ncmd; i++) {
			struct mc_cmd *c = &b->cmd[i];
			for (unsigned r = c->first; r < (unsigned)c->first + c->nreq; r++)
				if (b->req[r].item) {
					mc_item_put(b->req[r].item);
					b->req[r].item = NULL;
				}
		}
		b->ncmd = b->nreq = b->replied = 0;
		mc_sess_release(s);
	}
	s->rstate = MC_RS_CMD;
}

/* ---- parsing ------------------------------------------------------------- */

void mc_sess_static(struct mc_sess *s, uint8_t proto, const char *str, size_t len,
		    bool noreply)
{
	struct mc_cmd *c = mc_cmd_new(s->b, proto, 0);
	c->u.t.str = str;
	c->u.t.len = (uint32_t)len;
	if (noreply)
		c->flags |= MC_CF_NOREPLY;
	mc_cmd_add(s->b);
}

enum mc_parse_rc mc_sess_value(struct mc_sess *s, struct mc_input *in)
{
	if (s->vdone < s->vlen) {
		size_t n = in->len - in->pos;
		if (n > s->vlen - s->vdone)
			n = s->vlen - s->vdone;
		memcpy(mc_item_value(s->vitem) + s->vdone, in->p + in->pos, n);
		s->vdone += (uint32_t)n;
		in->pos += n;
		if (s->vdone < s->vlen)
			return MC_P_MORE;
	}
	struct mc_batch *b = s->b;
	if (mc_batch_full(b))
		return MC_P_FULL;
	s->rstate = MC_RS_CMD;
	struct mc_item *it = s->vitem;
	s->vitem = NULL;
	mc_stats_local()->cmd_set++;
	if (s->vcrlf) {
		/* The text value must end with "\r\n" (which we copied into the
		 * item's own "\r\n" slot): anything else is a bad chunk. */
		const char *e = mc_item_value(it) + it->nbytes;
		if (e[0] != '\r' || e[1] != '\n') {
			mc_item_put(it);
			bool nr = (s->vcmd.flags & MC_CF_NOREPLY) && s->vcmd.proto == MC_CP_TEXT;
			MC_STATIC(s, "CLIENT_ERROR bad data chunk\r\n", nr);
			return MC_P_OK;
		}
	}
	struct mc_cmd *c = &b->cmd[b->ncmd];
	*c = s->vcmd;
	c->first = (uint16_t)b->nreq;
	c->nreq = 1;
	struct mc_req *r = &b->req[b->nreq];
	memcpy(r, &s->vreq, offsetof(struct mc_req, key) + s->vreq.nkey + 1);
	r->item = it;
	b->res[b->nreq].item = NULL;
	b->nreq++;
	b->ncmd++;
	return MC_P_OK;
}

enum mc_parse_rc mc_sess_parse(struct mc_sess *s, struct mc_input *in)
{
	for (;;) {
		enum mc_parse_rc rc;
		if (s->rstate == MC_RS_VALUE) {
			rc = mc_sess_value(s, in);
			if (rc != MC_P_OK)
				return rc;
			continue;
		}
		if (s->rstate == MC_RS_SWALLOW) {
			size_t n = in->len - in->pos;
			if (n > s->swallow)
				n = (size_t)s->swallow;
			in->pos += n;
			s->swallow -= n;
			if (s->swallow)
				return MC_P_MORE;
			s->rstate = MC_RS_CMD;
			continue;
		}
		if (in->pos >= in->len)
			return MC_P_MORE;
		if (mc_batch_full(s->b))
			return MC_P_FULL;
		if (SK_UNLIKELY(s->proto == MC_PROTO_NONE))
			s->proto = in->p[in->pos] == 0x80 ? MC_PROTO_BIN : MC_PROTO_TEXT;
		if (s->proto == MC_PROTO_TEXT)
			rc = mc_text_parse(s, in);
		else
			rc = mc_bin_parse(s, in);
		if (rc != MC_P_OK)
			return rc;
	}
}

/* ---- running a batch ----------------------------------------------------- */

static bool run_replies(struct mc_sess *s);

static void reply_one(struct mc_sess *s, struct mc_cmd *c)
{
	switch (c->proto) {
	case MC_CP_TEXT:
		mc_text_reply(s, c);
		break;
	case MC_CP_META:
		mc_meta_reply(s, c);
		break;
	default:
		mc_bin_reply(s, c);
		break;
	}
	if (s->udp)
		mc_out_boundary(&s->out, false);
}

static void run_finished(struct mc_sess *s)
{
	s->running = false;
	s->resume(s);
}

static void barrier_done(void *arg, int64_t v, int err)
{
	struct mc_sess *s = arg;
	struct mc_batch *b = s->b;
	(void)v;
	b->barrier_err = err;
	reply_one(s, &b->cmd[b->replied]);
	b->replied++;
	if (run_replies(s))
		run_finished(s);
}

/* Format answers from b->replied on; false when a barrier is pending. */
static bool run_replies(struct mc_sess *s)
{
	struct mc_batch *b = s->b;
	while (b->replied < b->ncmd) {
		struct mc_cmd *c = &b->cmd[b->replied];
		if ((c->flags & MC_CF_BARRIER) && c->phase == 0) {
			c->phase = 1;
			sk_future f = c->proto == MC_CP_BIN ? mc_bin_barrier(s, c)
							   : mc_text_barrier(s, c);
			if (!sk_future_available(f)) {
				mc_out_flush(&s->out);
				s->running = true;
				sk_future_on_done(f, barrier_done, s);
				return false;
			}
			sk_future_get(f, &b->barrier_err);
		}
		reply_one(s, c);
		b->replied++;
	}
	b->ncmd = b->nreq = b->replied = 0;
	b->exec_err = b->barrier_err = 0;
	return true;
}

static void exec_failed(struct mc_batch *b, int err)
{
	b->exec_err = err;
	/* Requests that did run may hold references for us. */
	for (unsigned i = 0; i < b->nreq; i++)
		if (b->req[i].op != MC_OP_STORE && b->res[i].item) {
			mc_item_put(b->res[i].item);
			b->res[i].item = NULL;
		}
}

/* mc_exec() finished: the store consumed the new items, stored or not
 * (the arrays are untouched while requests are in flight). */
static void exec_finished(struct mc_batch *b, int err)
{
	for (unsigned i = 0; i < b->nreq; i++)
		b->req[i].item = NULL;
	if (err)
		exec_failed(b, err);
}

static void exec_done(void *arg, int64_t v, int err)
{
	struct mc_sess *s = arg;
	(void)v;
	exec_finished(s->b, err);
	if (run_replies(s))
		run_finished(s);
}

bool mc_sess_run(struct mc_sess *s)
{
	struct mc_batch *b = s->b;
	if (b->nreq) {
		sk_future f = mc_exec(b->req, b->res, b->nreq);
		if (!sk_future_available(f)) {
			mc_out_flush(&s->out);
			s->running = true;
			sk_future_on_done(f, exec_done, s);
			return false;
		}
		int err;
		sk_future_get(f, &err);
		exec_finished(b, err);
	}
	return run_replies(s);
}

/* ---- TCP connections ----------------------------------------------------- */

struct mc_conn {
	struct mc_sess sess;		/* first: resume() gets &sess */
	struct sk_sock *s;
	struct sk_promise *done;	/* mc_conn_run()'s future */
	char *carry;			/* a command cut by a buffer's end */
	uint32_t carry_len, carry_cap;
	bool waiting;			/* a read/flush/yield callback is due */
	bool closing;			/* sk_close() called */
	bool closed;			/* ... and it resolved */
};

static void conn_pump(struct mc_conn *c);

static void conn_free(struct mc_conn *c)
{
	struct sk_promise *p = c->done;
	mc_stats_local()->curr_connections--;
	sk_free(c->carry);
	sk_free(c);
	sk_promise_set_value(p, 0);
}

static void conn_closed(void *arg, int64_t v, int err)
{
	struct mc_conn *c = arg;
	(void)v;
	(void)err;
	c->closed = true;
	if (!c->waiting)
		conn_free(c);
}

/* Send what is queued and close; the conn is freed once both the close and
 * any callback still due have come back. */
static void conn_close(struct mc_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	mc_out_flush(&c->sess.out);
	mc_sess_fini(&c->sess);
	sk_future_on_done(sk_close(c->s), conn_closed, c);
}

/* A read/flush/yield callback: false when the conn is going away. */
static bool conn_wake(struct mc_conn *c)
{
	c->waiting = false;
	if (c->closing) {
		if (c->closed)
			conn_free(c);
		return false;
	}
	return true;
}

static void conn_readable(void *arg, int64_t v, int err)
{
	struct mc_conn *c = arg;
	if (!conn_wake(c))
		return;
	if (err || v == 0) {
		conn_close(c);	/* EOF (or input ended at shutdown), reset */
		return;
	}
	conn_pump(c);
}

static void conn_flushed(void *arg, int64_t v, int err)
{
	struct mc_conn *c = arg;
	(void)v;
	if (!conn_wake(c))
		return;
	if (err) {
		conn_close(c);
		return;
	}
	conn_pump(c);
}

static void conn_resume(struct mc_sess *s)
{
	conn_pump((struct mc_conn *)s);
}

static bool carry_put(struct mc_conn *c, const uint8_t *p, size_t n)
{
	if (c->carry_len + n > c->carry_cap) {
		size_t cap = c->carry_cap ? c->carry_cap : MC_CARRY_MIN;
		while (cap < c->carry_len + n)
			cap *= 2;
		char *q = sk_realloc(c->carry, cap);
		if (!q)
			return false;
		c->carry = q;
		c->carry_cap = (uint32_t)cap;
	}
	memcpy(c->carry + c->carry_len, p, n);
	c->carry_len += (uint32_t)n;
	return true;
}

/*
 * A text line still without "\n": stock closes the connection once more
 * than 2048 bytes are buffered, unless it is a multi-get ("get "/"gets "
 * after at most 100 spaces), which may be long.
 */
static bool carry_too_long(const struct mc_conn *c)
{
	if (c->sess.proto == MC_PROTO_BIN || c->carry_len <= MC_LINE_MAX)
		return false;
	if (c->carry_len > MC_GET_LINE_MAX)
		return true;
	size_t i = 0;
	while (i < c->carry_len && c->carry[i] == ' ')
		i++;
	if (i > 100)
		return true;
	const char *p = c->carry + i;
	return !(memcmp(p, "get ", 4) == 0 || memcmp(p, "gets ", 5) == 0);
}

/*
 * Complete the command in the carry from the socket: up to the next "\n"
 * (text) or up to sess.need bytes (binary).  1: complete, 0: input ran out,
 * -1: close (line too long, no memory).
 */
static int carry_fill(struct mc_conn *c)
{
	bool bin = c->sess.proto == MC_PROTO_BIN;

	/* A multi-get run in chunks leaves its whole line here. */
	if (!bin && memchr(c->carry, '\n', c->carry_len))
		return 1;
	for (;;) {
		if (bin && c->carry_len >= c->sess.need)
			return 1;
		size_t len;
		const uint8_t *p = sk_read_peek(c->s, &len);
		if (!p || len == 0)
			return 0;
		size_t take;
		bool done;
		if (bin) {
			take = c->sess.need - c->carry_len;
			if (take > len)
				take = len;
			done = c->carry_len + take >= c->sess.need;
		} else {
			const uint8_t *nl = memchr(p, '\n', len);
			take = nl ? (size_t)(nl - p) + 1 : len;
			done = nl != NULL;
		}
		if (!carry_put(c, p, take))
			return -1;
		sk_read_consume(c->s, take);
		mc_stats_local()->bytes_read += take;
		if (done)
			return 1;
		if (carry_too_long(c))
			return -1;
	}
}

/* Parse everything buffered (or until the batch must run). */
static enum mc_parse_rc conn_parse(struct mc_conn *c)
{
	struct mc_sess *s = &c->sess;
	for (;;) {
		enum mc_parse_rc rc;
		if (c->carry_len) {
			int r = carry_fill(c);
			if (r < 0)
				return MC_P_CLOSE;
			if (r == 0)
				return MC_P_MORE;
			struct mc_input in = { (const uint8_t *)c->carry, c->carry_len, 0, false };
			rc = mc_sess_parse(s, &in);
			if (in.pos) {
				c->carry_len -= (uint32_t)in.pos;
				memmove(c->carry, c->carry + in.pos, c->carry_len);
			}
			if (rc != MC_P_MORE)
				return rc;
			continue;	/* still short (binary key) or done */
		}
		size_t len;
		const uint8_t *p = sk_read_peek(c->s, &len);
		if (!p || len == 0)
			return MC_P_MORE;
		struct mc_input in = { p, len, 0, false };
		rc = mc_sess_parse(s, &in);
		if (rc == MC_P_MORE && in.pos < len) {
			/* A command cut by the end of this buffer: keep its start
			 * so that sk_read() can wait for the rest. */
			if (!carry_put(c, p + in.pos, len - in.pos)) {
				rc = MC_P_CLOSE;
			} else {
				in.pos = len;
				if (carry_too_long(c))
					rc = MC_P_CLOSE;
			}
		}
		sk_read_consume(c->s, in.pos);
		mc_stats_local()->bytes_read += in.pos;
		if (rc != MC_P_MORE)
			return rc;
	}
}

static void conn_yielded(void *arg, int64_t v, int err)
{
	struct mc_conn *c = arg;
	(void)v;
	(void)err;
	if (conn_wake(c))
		conn_pump(c);
}

static void conn_pump(struct mc_conn *c)
{
	struct mc_sess *s = &c->sess;
	for (unsigned rounds = 0;; rounds++) {
		if (s->out.err) {
			conn_close(c);
			return;
		}
		/* A client that keeps us busy must let the others run. */
		if (rounds && sk_need_preempt()) {
			mc_out_flush(&s->out);
			mc_sess_release(s);
			c->waiting = true;
			sk_future_on_done(sk_yield(), conn_yielded, c);
			return;
		}
		/* A slow reader: stop parsing until its output drains. */
		if (sk_write_queued(c->s) + s->out.len > MC_OUT_BOUND) {
			mc_out_flush(&s->out);
			sk_future f = sk_flush(c->s);
			if (!sk_future_available(f)) {
				c->waiting = true;
				sk_future_on_done(f, conn_flushed, c);
				return;
			}
			int err;
			sk_future_get(f, &err);
			if (err) {
				conn_close(c);
				return;
			}
		}
		if (!mc_sess_hold(s)) {
			conn_close(c);
			return;
		}
		enum mc_parse_rc rc = conn_parse(c);
		if (s->b->ncmd) {
			if (!mc_sess_run(s))
				return;		/* conn_resume() continues */
		}
		if (rc == MC_P_CLOSE || s->quit) {
			conn_close(c);
			return;
		}
		if (rc == MC_P_FULL)
			continue;	/* more input is buffered */
		/* Everything buffered is consumed: wait for more (at shutdown
		 * main.c ends our input, so this read returns 0 and we close). */
		mc_out_flush(&s->out);
		mc_sess_release(s);
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

sk_future mc_conn_run(struct sk_sock *s)
{
	struct mc_conn *c = sk_zalloc(sizeof(*c));
	struct sk_promise *p = c ? sk_promise_new() : NULL;
	if (!p) {
		sk_free(c);
		sk_future_ignore(sk_close(s));
		return sk_make_error(-ENOMEM);
	}
	c->s = s;
	c->done = p;
	mc_sess_init(&c->sess, s, NULL);
	c->sess.resume = conn_resume;
	struct mc_stats *st = mc_stats_local();
	st->curr_connections++;
	st->total_connections++;
	sk_future f = sk_promise_future(p);
	if (sk_reactor_stopping())
		conn_close(c);
	else
		conn_pump(c);
	return f;
}

void mc_conn_reject(struct sk_sock *s)
{
	static const char msg[] = "ERROR Too many open connections\r\n";
	struct mc_stats *st = mc_stats_local();
	st->rejected_connections++;
	if (sk_write(s, msg, sizeof(msg) - 1) == 0)
		st->bytes_written += sizeof(msg) - 1;
	sk_future_ignore(sk_close(s));
}
