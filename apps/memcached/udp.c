/*
 * udp.c - memcached's UDP transport: text commands in framed datagrams.
 *
 * Roadmap: every request datagram starts with stock's 8-byte frame header
 * (request id, sequence number, datagram count, reserved; big endian).
 * Only single-datagram requests are served (count 1), as stock; the
 * payload is parsed by the same session code as TCP (mc_sess_parse with
 * input.final set, so a command cut by the datagram's end is dropped).
 * Answers are assembled per answer object, exactly where stock starts a
 * new one (each command, and each key of a multi-get), and each object is
 * cut into datagrams of at most 1400 bytes that carry the request id, their
 * sequence number and the object's datagram count.
 *
 * One datagram is worked on at a time per socket (its buffer belongs to the
 * stack until released).  Once the shard begins to stop, main.c closes the
 * socket, so nothing here touches it after sk_reactor_stopping().
 */
#include <string.h>

#include "conn.h"
#include "mc.h"
#include "proto.h"
#include "skerry/alloc.h"
#include "skerry/reactor.h"
#include "skerry/socket.h"

#define UDP_HDR		8
#define UDP_MAX_DGRAM	1400	/* header included, as stock */
#define UDP_PAYLOAD	(UDP_MAX_DGRAM - UDP_HDR)

struct mc_udp_out {
	struct sk_udp *u;
	struct sk_sockaddr to;
	uint8_t reqid[2];	/* echoed as sent */
};

struct udp_ctx {
	struct mc_sess sess;	/* first: resume() gets &sess */
	struct mc_udp_out uo;
	struct sk_udp *u;
	struct sk_dgram d;
	size_t pos;		/* parse position in d */
	struct sk_promise *done;
};

void mc_udp_out_grow(struct mc_out *o, size_t n)
{
	size_t cap = o->cap ? o->cap : 2048;
	while (cap - o->len < n)
		cap *= 2;
	char *p = sk_realloc(o->buf, cap);
	if (!p)
		return;		/* the caller sees no room: output is dropped */
	o->buf = p;
	o->cap = cap;
}

void mc_out_boundary(struct mc_out *o, bool empty_too)
{
	struct mc_udp_out *uo = o->udp;
	uint8_t pkt[UDP_MAX_DGRAM];

	if (!uo || (o->len == 0 && !empty_too))
		return;
	/* An empty object still goes out, as a bare header with count 0. */
	size_t n = (o->len + UDP_PAYLOAD - 1) / UDP_PAYLOAD;
	size_t count = n;
	if (n == 0)
		n = 1;
	for (size_t i = 0, off = 0; i < n; i++) {
		size_t chunk = o->len - off < UDP_PAYLOAD ? o->len - off : UDP_PAYLOAD;
		pkt[0] = uo->reqid[0];
		pkt[1] = uo->reqid[1];
		pkt[2] = (uint8_t)(i >> 8);
		pkt[3] = (uint8_t)i;
		pkt[4] = (uint8_t)(count >> 8);
		pkt[5] = (uint8_t)count;
		pkt[6] = pkt[7] = 0;
		memcpy(pkt + UDP_HDR, o->buf + off, chunk);
		off += chunk;
		/* A full send queue drops the datagram: UDP may lose it. */
		if (!sk_reactor_stopping())
			(void)sk_udp_send(uo->u, &uo->to, pkt, UDP_HDR + chunk);
	}
	mc_stats_local()->bytes_written += o->len;
	o->len = 0;
}

static void udp_next(struct udp_ctx *x);

static void udp_finish(struct udp_ctx *x)
{
	struct sk_promise *p = x->done;
	mc_sess_fini(&x->sess);
	sk_free(x->sess.out.buf);
	sk_free(x);
	sk_promise_set_value(p, 0);
}

/* Leave nothing of one datagram's commands for the next one. */
static void udp_datagram_done(struct udp_ctx *x)
{
	struct mc_sess *s = &x->sess;
	if (s->vitem) {
		mc_item_put(s->vitem);
		s->vitem = NULL;
	}
	s->rstate = MC_RS_CMD;
	s->swallow = 0;
	s->get_resume = 0;
	s->quit = false;
	s->out.len = 0;
	mc_sess_release(s);
	sk_udp_release(x->u, &x->d);
}

/* Work on the held datagram; false when waiting for the store. */
static bool udp_work(struct udp_ctx *x)
{
	struct mc_sess *s = &x->sess;
	for (;;) {
		if (!mc_sess_hold(s))
			break;
		struct mc_input in = { x->d.data, x->d.len, x->pos, true };
		enum mc_parse_rc rc = mc_sess_parse(s, &in);
		x->pos = in.pos;
		if (s->b->ncmd && !mc_sess_run(s))
			return false;
		if (rc != MC_P_FULL)
			break;
	}
	udp_datagram_done(x);
	return true;
}

static void udp_resume(struct mc_sess *s)
{
	struct udp_ctx *x = (struct udp_ctx *)s;
	if (sk_reactor_stopping()) {
		/* The socket is closed or about to be: leave it alone. */
		udp_finish(x);
		return;
	}
	if (udp_work(x))
		udp_next(x);
}

/* A datagram arrived; false when it waits for the store. */
static bool udp_got(struct udp_ctx *x)
{
	const uint8_t *h = x->d.data;
	if (x->d.len < UDP_HDR || h[4] != 0 || h[5] != 1) {
		/* Too short, or a multi-datagram request: stock drops it. */
		sk_udp_release(x->u, &x->d);
		return true;
	}
	mc_stats_local()->bytes_read += x->d.len;
	x->uo.reqid[0] = h[0];
	x->uo.reqid[1] = h[1];
	x->uo.to = x->d.from;
	x->pos = UDP_HDR;
	return udp_work(x);
}

static void udp_received(void *arg, int64_t v, int err)
{
	struct udp_ctx *x = arg;
	(void)v;
	if (err || sk_reactor_stopping()) {
		udp_finish(x);	/* -ECANCELED: closed */
		return;
	}
	if (udp_got(x))
		udp_next(x);
}

static void udp_yielded(void *arg, int64_t v, int err)
{
	(void)v;
	(void)err;
	udp_next(arg);
}

static void udp_next(struct udp_ctx *x)
{
	for (;;) {
		if (sk_reactor_stopping()) {
			udp_finish(x);
			return;
		}
		sk_future f = sk_udp_recv(x->u, &x->d);
		if (!sk_future_available(f)) {
			sk_future_on_done(f, udp_received, x);
			return;
		}
		int err;
		sk_future_get(f, &err);
		if (err) {
			udp_finish(x);
			return;
		}
		if (!udp_got(x))
			return;		/* udp_resume() goes on */
		if (sk_need_preempt()) {
			/* Come back through the reactor: others get a turn. */
			sk_future_on_done(sk_yield(), udp_yielded, x);
			return;
		}
	}
}

sk_future mc_udp_serve(struct sk_udp *u)
{
	struct udp_ctx *x = sk_zalloc(sizeof(*x));
	struct sk_promise *p = x ? sk_promise_new() : NULL;
	if (!p) {
		sk_free(x);
		return sk_make_error(-ENOMEM);
	}
	x->u = u;
	x->uo.u = u;
	x->done = p;
	mc_sess_init(&x->sess, NULL, &x->uo);
	x->sess.resume = udp_resume;
	sk_future f = sk_promise_future(p);
	udp_next(x);
	return f;
}
