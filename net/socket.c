/*
 * socket.c - the stack-neutral half of the socket API.
 *
 * Roadmap: sk_net_init() picks a stack (struct sk_stack) for the shard;
 * listen/accept/connect/UDP go straight to it.  Connections are struct
 * sk_sock (sock.h): their input and output are segment queues handled here,
 * so reading, writing, flushing and closing behave the same on every stack.
 *
 *   stack rx path -> sk__sock_rx() -> in queue -> sk_read/peek/consume
 *   sk_write/write_ref -> out queue -> ops->tx_kick -> stack tx path
 *                                   <- sk__sock_tx_done() releases segments
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sock.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/reactor.h"

/* Output copy chunks: small replies from many writes share one. */
#define CHUNK_SIZE 16384
/* sk_write_ref of this much or less is copied: cheaper than a reference. */
#define REF_COPY_MAX 256
/* A reader waiting on a fragment of at most this much gets it compacted
 * out of the stack's receive buffer, so idle connections hold no buffers. */
#define COMPACT_MAX 4096

struct net_shard {
	const struct sk_stack *stack;
	struct sk_seg *free_segs;
	unsigned nfree;
	struct sk_reactor *owner;	/* reactor the free list belongs to */
	struct sk_stop_hook hook;
};
static _Thread_local struct net_shard net;

/* --- segments ----------------------------------------------------------- */

static void segs_trim(void)
{
	while (net.free_segs) {
		struct sk_seg *seg = net.free_segs;
		net.free_segs = seg->next;
		sk_free(seg);
	}
	net.nfree = 0;
}

static void segs_stop(void *arg)
{
	(void)arg;
	segs_trim();
	net.owner = NULL;
}

/*
 * The free list lives and dies with the shard's reactor: a stop hook
 * empties it (stacks used without sk_net_init/fini, as tests do, would
 * otherwise leave it pointing into a finished allocator), and while the
 * shard stops, or outside shards, segments go straight to the allocator.
 */
static bool segs_on(void)
{
	struct sk_reactor *r = sk_reactor_local();

	if (r && r == net.owner)
		return true;
	if (!r || sk_reactor_stopping())
		return false;
	net.free_segs = NULL;	/* an earlier reactor's: forget, don't touch */
	net.nfree = 0;
	net.owner = r;
	net.hook = (struct sk_stop_hook){ .fn = segs_stop };
	sk_reactor_at_stop(&net.hook);
	return true;
}

struct sk_seg *sk__seg_get(void)
{
	struct sk_seg *seg = segs_on() ? net.free_segs : NULL;
	if (seg) {
		net.free_segs = seg->next;
		net.nfree--;
	} else {
		seg = sk_alloc(sizeof(*seg));
		if (!seg)
			return NULL;
	}
	memset(seg, 0, sizeof(*seg));
	return seg;
}

void sk__seg_put(struct sk_seg *seg)
{
	if (net.nfree >= 4096 || !segs_on()) {
		sk_free(seg);
		return;
	}
	seg->next = net.free_segs;
	net.free_segs = seg;
	net.nfree++;
}

static void seg_release(struct sk_seg *seg)
{
	if (seg->release)
		seg->release(seg);
	sk__seg_put(seg);
}

static void chunk_release(struct sk_seg *seg)
{
	sk_free(seg->arg);
}

static void ref_release(struct sk_seg *seg)
{
	seg->app_release(seg->arg);
}

static void q_init(struct sk_seg_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->bytes = 0;
}

static void q_push(struct sk_seg_queue *q, struct sk_seg *seg)
{
	seg->next = NULL;
	*q->tail = seg;
	q->tail = &seg->next;
	q->bytes += seg->len;
}

static struct sk_seg *q_pop(struct sk_seg_queue *q)
{
	struct sk_seg *seg = q->head;
	q->head = seg->next;
	if (!q->head)
		q->tail = &q->head;
	return seg;
}

/* Drop @n bytes from the front of @q, releasing whole segments. */
static void q_consume(struct sk_seg_queue *q, size_t n)
{
	q->bytes -= n;
	while (n) {
		struct sk_seg *seg = q->head;
		if (n < seg->len) {
			seg->p += n;
			seg->len -= n;
			return;
		}
		n -= seg->len;
		seg_release(q_pop(q));
	}
}

static void q_drain(struct sk_seg_queue *q)
{
	while (q->head)
		seg_release(q_pop(q));
	q->bytes = 0;
}

/* --- stack hooks ------------------------------------------------------- */

void sk__sock_init(struct sk_sock *s, const struct sk_sock_ops *ops, size_t rx_limit)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	q_init(&s->in);
	q_init(&s->out);
	s->rx_limit = rx_limit;
}

static void wake_reader(struct sk_sock *s)
{
	struct sk_promise *p = s->rd;
	if (!p)
		return;
	s->rd = NULL;
	if (s->in.bytes > s->seen) {
		s->seen = s->in.bytes;
		sk_promise_set_value(p, (int64_t)s->in.bytes);
	} else if (s->err) {
		sk_promise_set_error(p, s->err);
	} else {
		sk_promise_set_value(p, 0);	/* end of stream */
	}
}

void sk__sock_rx(struct sk_sock *s, struct sk_seg *seg)
{
	q_push(&s->in, seg);
	s->in_segs++;
	wake_reader(s);
}

void sk__sock_rx_end(struct sk_sock *s, int err)
{
	if (err) {
		/* A reset connection sends nothing more either: fail the
		 * output too, so a pending sk_flush learns of it. */
		sk__sock_fail(s, err);
		return;
	}
	s->eof = true;
	wake_reader(s);
}

void sk__sock_tx_done(struct sk_sock *s, size_t n)
{
	q_consume(&s->out, n);
	if (!s->out.bytes && s->fl) {
		struct sk_promise *p = s->fl;
		s->fl = NULL;
		sk_promise_set_value(p, 0);
	}
}

void sk__sock_fail(struct sk_sock *s, int err)
{
	if (!s->err)
		s->err = err;
	/* With a transmit in flight the stack drains later (calling this
	 * again when it completes): the segments are still being read. */
	if (!s->tx_busy)
		q_drain(&s->out);
	if (s->fl) {
		struct sk_promise *p = s->fl;
		s->fl = NULL;
		sk_promise_set_error(p, s->err);
	}
	s->eof = true;
	wake_reader(s);
}

void sk__sock_drain(struct sk_sock *s)
{
	q_drain(&s->in);
	q_drain(&s->out);
	s->in_segs = 0;
}

void sk__sock_closed(struct sk_sock *s)
{
	struct sk_promise *p = s->cl;
	s->cl = NULL;
	if (p)
		sk_promise_set_value(p, 0);
}

/* --- reading ------------------------------------------------------------ */

/*
 * Copy a small unconsumed fragment out of the stack's buffers: a client
 * that sent half a command and went quiet must not pin a 16 KiB receive
 * buffer (a thousand of them would starve the shard).
 */
static void compact_input(struct sk_sock *s)
{
	struct sk_seg *seg;
	uint8_t *buf;
	size_t n = s->in.bytes;

	/* Small fragments always; larger ones when their many segments are
	 * what stops the stack from reading (SK_SOCK_RX_SEGS) - otherwise a
	 * parser waiting for the rest of a command would wait for ever. */
	if (!n || (n > COMPACT_MAX && s->in_segs < SK_SOCK_RX_SEGS) || n >= s->rx_limit)
		return;
	if (!s->in.head->next && s->in.head->release == chunk_release)
		return;	/* already one heap fragment */
	buf = sk_alloc(n);
	seg = buf ? sk__seg_get() : NULL;
	if (!seg) {
		sk_free(buf);
		return;	/* keep the buffers: correct, just less thrifty */
	}
	size_t off = 0;
	for (struct sk_seg *x = s->in.head; x; x = x->next) {
		memcpy(buf + off, x->p, x->len);
		off += x->len;
	}
	q_drain(&s->in);
	seg->p = buf;
	seg->len = (uint32_t)n;
	seg->arg = buf;
	seg->release = chunk_release;
	q_push(&s->in, seg);
	s->in_segs = 1;
	s->ops->rx_resume(s);
}

sk_future sk_read(struct sk_sock *s)
{
	if (s->rd)
		return sk_make_error(-EBUSY);
	if (s->closing)
		return sk_make_error(-ECANCELED);
	if (s->in.bytes > s->seen) {
		s->seen = s->in.bytes;
		return sk_make_ready((int64_t)s->in.bytes);
	}
	if (s->err)
		return sk_make_error(s->err);
	if (s->eof)
		return sk_make_ready(0);
	compact_input(s);
	s->rd = sk_promise_new();
	if (!s->rd)
		return sk_make_error(-ENOMEM);
	return sk_promise_future(s->rd);
}

size_t sk_read_avail(const struct sk_sock *s)
{
	return s->in.bytes;
}

const uint8_t *sk_read_peek(struct sk_sock *s, size_t *len)
{
	struct sk_seg *seg = s->in.head;
	if (!seg) {
		*len = 0;
		return NULL;
	}
	*len = seg->len;
	return seg->p;
}

int sk_read_pullup(struct sk_sock *s, size_t n)
{
	struct sk_seg *seg;
	uint8_t *buf;

	if (n > s->in.bytes)
		n = s->in.bytes;
	if (!n || s->in.head->len >= n)
		return 0;
	buf = sk_alloc(n);
	seg = buf ? sk__seg_get() : NULL;
	if (!seg) {
		sk_free(buf);
		return -ENOMEM;
	}
	size_t off = 0;
	while (off < n) {
		struct sk_seg *x = s->in.head;
		size_t take = n - off < x->len ? n - off : x->len;
		memcpy(buf + off, x->p, take);
		off += take;
		if (take == x->len) {
			s->in.bytes -= take;
			q_pop(&s->in);
			seg_release(x);
			s->in_segs--;
		} else {
			x->p += take;
			x->len -= (uint32_t)take;
			s->in.bytes -= take;
		}
	}
	seg->p = buf;
	seg->len = (uint32_t)n;
	seg->arg = buf;
	seg->release = chunk_release;
	/* Put it back at the front. */
	seg->next = s->in.head;
	s->in.head = seg;
	if (!seg->next)
		s->in.tail = &seg->next;
	s->in.bytes += n;
	s->in_segs++;
	s->ops->rx_resume(s);
	return 0;
}

void sk_read_consume(struct sk_sock *s, size_t n)
{
	SK_ASSERT(n <= s->in.bytes);
	s->in.bytes -= n;
	s->seen = s->seen > n ? s->seen - n : 0;
	while (n) {
		struct sk_seg *seg = s->in.head;
		if (n < seg->len) {
			seg->p += n;
			seg->len -= (uint32_t)n;
			break;
		}
		n -= seg->len;
		seg_release(q_pop(&s->in));
		s->in_segs--;
	}
	if (s->rx_paused)
		s->ops->rx_resume(s);
}

void sk_shutdown_read(struct sk_sock *s)
{
	s->eof = true;
	sk_read_consume(s, s->in.bytes);
	s->seen = 0;
	s->in_segs = 0;
	wake_reader(s);
}

/* --- writing ------------------------------------------------------------ */

static void kick(struct sk_sock *s)
{
	s->ops->tx_kick(s);
}

int sk_write(struct sk_sock *s, const void *buf, size_t len)
{
	const uint8_t *src = buf;
	struct sk_seg *tail;

	if (s->err)
		return s->err;
	if (!len)
		return 0;
	tail = s->out.head ? (struct sk_seg *)((char *)s->out.tail -
					       offsetof(struct sk_seg, next)) : NULL;
	if (tail && tail->release == chunk_release && tail->room) {
		size_t n = len < tail->room ? len : tail->room;
		memcpy(tail->p + tail->len, src, n);
		tail->len += (uint32_t)n;
		tail->room -= (uint32_t)n;
		s->out.bytes += n;
		src += n;
		len -= n;
	}
	while (len) {
		size_t cap = len > CHUNK_SIZE ? len : CHUNK_SIZE;
		uint8_t *mem = sk_alloc(cap);
		struct sk_seg *seg = mem ? sk__seg_get() : NULL;
		if (!seg) {
			sk_free(mem);
			return -ENOMEM;
		}
		memcpy(mem, src, len);
		seg->p = mem;
		seg->len = (uint32_t)len;
		seg->room = (uint32_t)(cap - len);
		seg->arg = mem;
		seg->release = chunk_release;
		q_push(&s->out, seg);
		len = 0;
	}
	kick(s);
	return 0;
}

int sk_write_ref(struct sk_sock *s, const void *buf, size_t len,
		 void (*release)(void *arg), void *arg)
{
	struct sk_seg *seg;
	int r;

	if (s->err || len <= REF_COPY_MAX) {
		r = s->err ? s->err : sk_write(s, buf, len);
		release(arg);
		return r;
	}
	seg = sk__seg_get();
	if (!seg) {
		release(arg);
		return -ENOMEM;
	}
	seg->p = (uint8_t *)buf;
	seg->len = (uint32_t)len;
	seg->arg = arg;
	seg->app_release = release;
	seg->release = ref_release;
	q_push(&s->out, seg);
	kick(s);
	return 0;
}

size_t sk_write_queued(const struct sk_sock *s)
{
	return s->out.bytes;
}

sk_future sk_flush(struct sk_sock *s)
{
	if (s->err)
		return sk_make_error(s->err);
	if (!s->out.bytes)
		return sk_make_ready(0);
	if (s->fl)
		return sk_make_error(-EBUSY);
	s->fl = sk_promise_new();
	if (!s->fl)
		return sk_make_error(-ENOMEM);
	return sk_promise_future(s->fl);
}

sk_future sk_close(struct sk_sock *s)
{
	sk_future f;

	SK_ASSERT(!s->closing);
	s->closing = true;
	if (s->rd) {
		struct sk_promise *p = s->rd;
		s->rd = NULL;
		sk_promise_set_error(p, -ECANCELED);
	}
	s->cl = sk_promise_new();
	f = s->cl ? sk_promise_future(s->cl) : sk_make_ready(0);
	s->ops->close(s);
	return f;
}

void sk_abort(struct sk_sock *s)
{
	SK_ASSERT(!s->closing);
	s->closing = true;
	if (s->rd) {
		struct sk_promise *p = s->rd;
		s->rd = NULL;
		sk_promise_set_error(p, -ECANCELED);
	}
	sk__sock_fail(s, -ECONNABORTED);
	s->ops->abort(s);
}

void sk_sock_peer(const struct sk_sock *s, struct sk_sockaddr *out)
{
	s->ops->addrs((struct sk_sock *)s);
	*out = s->peer;
}

void sk_sock_local(const struct sk_sock *s, struct sk_sockaddr *out)
{
	s->ops->addrs((struct sk_sock *)s);
	*out = s->local;
}

/* --- addresses and stack selection -------------------------------------- */

int sk_net_stack_parse(const char *name, enum sk_stack_kind *out)
{
	if (!strcmp(name, "posix")) {
		*out = SK_STACK_POSIX;
		return 0;
	}
	if (!strcmp(name, "native")) {
		*out = SK_STACK_NATIVE;
		return 0;
	}
	return -EINVAL;
}

int sk_addr_parse(const char *host, uint16_t port, struct sk_sockaddr *out)
{
	unsigned a, b, c, d;
	char tail;

	if (!host || !*host) {
		out->ip = 0;
	} else if (!strcmp(host, "localhost")) {
		out->ip = 0x7f000001;
	} else if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 &&
		   a < 256 && b < 256 && c < 256 && d < 256) {
		out->ip = a << 24 | b << 16 | c << 8 | d;
	} else {
		return -EINVAL;
	}
	out->port = port;
	return 0;
}

void sk_addr_format(const struct sk_sockaddr *a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u:%u", a->ip >> 24, (a->ip >> 16) & 255,
		 (a->ip >> 8) & 255, a->ip & 255, a->port);
}

int sk_net_config_check(struct sk_net_config *cfg, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (cfg->stack_name && sk_net_stack_parse(cfg->stack_name, &cfg->stack)) {
		snprintf(err, errlen, "--stack is posix or native, not '%s'", cfg->stack_name);
		return -EINVAL;
	}
	if (cfg->stack == SK_STACK_NATIVE)
		return sk__native_check(cfg, err, errlen);
	if (cfg->netdev || cfg->ip || cfg->gw || cfg->mac || cfg->fault || cfg->eal ||
	    cfg->netdev_queues) {
		snprintf(err, errlen, "--netdev, --ip, --gw, --mac, --netdev-fault, --eal and "
			 "--netdev-queues need --stack=native");
		return -EINVAL;
	}
	return 0;
}

const char *sk_net_default_host(const struct sk_net_config *cfg)
{
	return cfg->stack == SK_STACK_NATIVE ? "0.0.0.0" : "127.0.0.1";
}

int sk_net_init(const struct sk_net_config *cfg)
{
	const struct sk_stack *st;
	int r;

	switch (cfg->stack) {
	case SK_STACK_POSIX:
		st = &sk__posix_stack;
		break;
	case SK_STACK_NATIVE:
		st = &sk__native_stack;
		break;
	default:
		return -ENOTSUP;
	}
	r = st->init(cfg);
	if (r == 0)
		net.stack = st;
	return r;
}

void sk_net_fini(void)
{
	if (!net.stack)
		return;
	net.stack->fini();
	net.stack = NULL;
	segs_trim();
}

#define NEED_STACK(err)                                                        \
	do {                                                                   \
		if (!net.stack)                                                \
			return err;                                            \
	} while (0)

int sk_listen(const struct sk_sockaddr *addr, const struct sk_listen_opts *o,
	      struct sk_listener **out)
{
	NEED_STACK(-ENOTCONN);
	return net.stack->listen(addr, o, out);
}

void sk_listener_addr(const struct sk_listener *l, struct sk_sockaddr *out)
{
	net.stack->listener_addr(l, out);
}

sk_future sk_accept(struct sk_listener *l)
{
	return net.stack->accept(l);
}

void sk_listener_close(struct sk_listener *l)
{
	net.stack->listener_close(l);
}

sk_future sk_connect(const struct sk_sockaddr *addr)
{
	NEED_STACK(sk_make_error(-ENOTCONN));
	return net.stack->connect(addr);
}

int sk_udp_bind(const struct sk_sockaddr *addr, bool reuseport, struct sk_udp **out)
{
	NEED_STACK(-ENOTCONN);
	return net.stack->udp_bind(addr, reuseport, out);
}

void sk_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out)
{
	net.stack->udp_addr(u, out);
}

sk_future sk_udp_recv(struct sk_udp *u, struct sk_dgram *d)
{
	return net.stack->udp_recv(u, d);
}

void sk_udp_release(struct sk_udp *u, struct sk_dgram *d)
{
	net.stack->udp_release(u, d);
}

int sk_udp_send(struct sk_udp *u, const struct sk_sockaddr *to, const void *buf,
		size_t len)
{
	return net.stack->udp_send(u, to, buf, len);
}

void sk_udp_close(struct sk_udp *u)
{
	net.stack->udp_close(u);
}
