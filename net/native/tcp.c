/*
 * tcp.c - TCP connections: table, listeners, connect, socket glue.
 *
 * Roadmap (lwIP-style, split like lwIP's tcp.c / tcp_in.c / tcp_out.c):
 *   tcp.c        instance table (4-tuple hash), listeners and the accept
 *                queue, nx_tcp_connect (port choice by RSS), the sk_sock
 *                ops (rx_resume, tx_kick, close, abort, addrs), lifetime
 *                (tcp_closed / tcp_fail / tcp_maybe_free), ISN (RFC 6528).
 *   tcp_in.c     nx_tcp_input -> validate -> lookup -> listen_input |
 *                syn_sent_input | tcp_process (RFC 9293 3.10.7.4 order:
 *                seq check, RST, SYN, ACK, text, FIN) -> receive (in-order
 *                to the socket, reassembly queue).
 *   tcp_out.c    nx_tcp_output -> tcp_output_conn per dirty connection:
 *                SYN, data from s->out within min(cwnd, snd_wnd), FIN,
 *                pure ACK / window update; RST replies.
 *   tcp_timer.c  RTO (RFC 6298), persist, delayed ACK, TIME_WAIT and
 *                FIN_WAIT_2.
 */
#include <errno.h>
#include <string.h>

#include "tcp.h"
#include "skerry/alloc.h"
#include "skerry/log.h"

struct nx_tcp_tunables nx_tcp_tun = {
	.rto_min_ns = 200 * SK_NSEC_PER_MSEC,
	.rto_max_ns = 60 * SK_NSEC_PER_SEC,
	.rto_initial_ns = SK_NSEC_PER_SEC,
	.delack_ns = 40 * SK_NSEC_PER_MSEC,
	.time_wait_ns = 60 * SK_NSEC_PER_SEC,
	.fin_wait2_ns = 60 * SK_NSEC_PER_SEC,
	.keepalive_ns = 0,
	.keepalive_intvl_ns = 75 * SK_NSEC_PER_SEC,
	.keepalive_probes = 9,
	.syn_retries = 6,
	.data_retries = 15,
	.syn_backlog = 256,
	.ooo_max = 512 * 1024,
	.time_wait_max = 16384,
};

#define EPHEMERAL_LO 32768
#define EPHEMERAL_HI 60999

static const struct sk_sock_ops tcp_sock_ops;

/* --- hashing ------------------------------------------------------------ */

static inline uint64_t rotl64(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);  \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                       \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                       \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);  \
	} while (0)

/* SipHash-2-4 of two 64-bit words: the keyed PRF RFC 6528 asks for. */
static uint64_t siphash2(const uint32_t key[4], uint64_t m0, uint64_t m1)
{
	uint64_t k0 = (uint64_t)key[0] | (uint64_t)key[1] << 32;
	uint64_t k1 = (uint64_t)key[2] | (uint64_t)key[3] << 32;
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	uint64_t m[3] = { m0, m1, (uint64_t)16 << 56 };

	for (int i = 0; i < 3; i++) {
		v3 ^= m[i];
		SIPROUND;
		SIPROUND;
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* RFC 6528: ISN = M + F(4-tuple, secret), M a 4 us clock. */
uint32_t tcp_isn(struct nx_stack *st, uint32_t lip, uint16_t lport, uint32_t rip,
		 uint16_t rport)
{
	uint64_t f = siphash2(st->tcp->secret, (uint64_t)lip << 32 | rip,
			      (uint64_t)lport << 16 | rport);
	return (uint32_t)(sk_now_ns() / 4000) + (uint32_t)f;
}

static unsigned tuple_hash(const struct nx_tcp *t, uint32_t lip, uint16_t lport,
			   uint32_t rip, uint16_t rport)
{
	uint32_t h = t->hseed ^ rip;
	h ^= (uint32_t)rport << 16 | lport;
	h *= 0x9e3779b1u;
	h ^= lip + (h >> 15);
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h & t->tab_mask;
}

struct tcp_conn *tcp_lookup(struct nx_stack *st, uint32_t lip, uint16_t lport,
			    uint32_t rip, uint16_t rport)
{
	struct nx_tcp *t = st->tcp;
	struct tcp_conn *c = t->tab[tuple_hash(t, lip, lport, rip, rport)];

	for (; c; c = c->hnext)
		if (c->rip == rip && c->rport == rport && c->lport == lport &&
		    c->lip == lip)
			return c;
	return NULL;
}

/* Double the table when it gets crowded (connection setup only). */
static void table_grow(struct nx_tcp *t)
{
	unsigned n = (t->tab_mask + 1) * 2;
	struct tcp_conn **tab = sk_zalloc(n * sizeof(*tab));
	struct tcp_conn **old = t->tab;
	unsigned oldn = t->tab_mask + 1;

	if (!tab)
		return;	/* longer chains, still correct */
	t->tab = tab;
	t->tab_mask = n - 1;
	for (unsigned i = 0; i < oldn; i++) {
		struct tcp_conn *c = old[i], *next;
		for (; c; c = next) {
			unsigned h = tuple_hash(t, c->lip, c->lport, c->rip, c->rport);
			next = c->hnext;
			c->hnext = tab[h];
			tab[h] = c;
		}
	}
	sk_free(old);
}

static void table_insert(struct tcp_conn *c)
{
	struct nx_tcp *t = c->st->tcp;
	unsigned h;

	if (t->nconns >= 2 * (t->tab_mask + 1))
		table_grow(t);
	h = tuple_hash(t, c->lip, c->lport, c->rip, c->rport);
	c->hnext = t->tab[h];
	t->tab[h] = c;
	t->nconns++;
	c->in_table = true;
}

static void table_remove(struct tcp_conn *c)
{
	struct nx_tcp *t = c->st->tcp;
	struct tcp_conn **pp;

	if (!c->in_table)
		return;
	pp = &t->tab[tuple_hash(t, c->lip, c->lport, c->rip, c->rport)];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	}
	c->in_table = false;
	t->nconns--;
}

/* --- connection lifetime ------------------------------------------------ */

struct tcp_conn *tcp_conn_new(struct nx_stack *st, uint32_t lip, uint16_t lport,
			      uint32_t rip, uint16_t rport)
{
	struct nx_tcp *t = st->tcp;
	struct tcp_conn *c = sk_zalloc(sizeof(*c));

	if (!c)
		return NULL;
	sk__sock_init(&c->s, &tcp_sock_ops, st->rx_limit);
	c->st = st;
	c->lip = lip;
	c->lport = lport;
	c->rip = rip;
	c->rport = rport;
	c->state = TCP_CLOSED;
	c->owner = OWN_NONE;
	c->mss = TCP_DEFAULT_MSS;
	c->rcv_mss = TCP_DEFAULT_MSS;
	c->rto = nx_tcp_tun.rto_initial_ns;
	c->ssthresh = 0x3fffffff;
	c->rcv_wscale = TCP_WSCALE;
	tcp_timers_init(c);
	c->anext = t->all;
	if (t->all)
		t->all->aprev = &c->anext;
	c->aprev = &t->all;
	t->all = c;
	table_insert(c);
	return c;
}

static void dirty_remove(struct tcp_conn *c)
{
	if (!c->dprev)
		return;
	*c->dprev = c->dnext;
	if (c->dnext)
		c->dnext->dprev = c->dprev;
	c->dprev = NULL;
	c->dnext = NULL;
}

void tcp_mark_dirty(struct tcp_conn *c)
{
	struct nx_tcp *t = c->st->tcp;

	if (c->dprev || c->state == TCP_CLOSED)
		return;
	c->dnext = t->dirty;
	if (t->dirty)
		t->dirty->dprev = &c->dnext;
	c->dprev = &t->dirty;
	t->dirty = c;
}

static void set_owner(struct tcp_conn *c, enum tcp_owner o)
{
	struct nx_tcp *t = c->st->tcp;
	bool was = c->owner == OWN_CONNECT || c->owner == OWN_APP ||
		   c->owner == OWN_CLOSING;
	bool is = o == OWN_CONNECT || o == OWN_APP || o == OWN_CLOSING;

	if (was && !is)
		t->busy--;
	else if (!was && is)
		t->busy++;
	c->owner = (uint8_t)o;
}

void tcp_maybe_free(struct tcp_conn *c)
{
	if (c->owner != OWN_NONE || c->state != TCP_CLOSED)
		return;
	*c->aprev = c->anext;
	if (c->anext)
		c->anext->aprev = c->aprev;
	sk__sock_drain(&c->s);
	sk_free(c);
}

void tcp_age_del(struct tcp_conn *c)
{
	struct tcp_age_list *l = c->age;

	if (!l)
		return;
	*c->ageprev = c->agenext;
	if (c->agenext)
		c->agenext->ageprev = c->ageprev;
	else
		l->tail = c->ageprev;
	c->agenext = NULL;
	c->ageprev = NULL;
	c->age = NULL;
	l->n--;
}

void tcp_age_add(struct tcp_age_list *l, struct tcp_conn *c)
{
	tcp_age_del(c);
	if (!l->tail)
		l->tail = &l->head;
	c->agenext = NULL;
	c->ageprev = l->tail;
	*l->tail = c;
	l->tail = &c->agenext;
	c->age = l;
	l->n++;
}

/*
 * @c enters TIME_WAIT: to the end of the instance's list.  Beyond
 * time_wait_max the oldest one ends early (Linux's tcp_max_tw_buckets):
 * a peer churning through connections must not make us keep each for
 * 2 MSL without bound.  Those are orphans (their FIN was ACKed, so the
 * app's close resolved): nobody else holds them.
 */
static void tw_link(struct tcp_conn *c)
{
	struct nx_tcp *t = c->st->tcp;

	if (c->age == &t->tw)
		return;
	if (nx_tcp_tun.time_wait_max && t->tw.n >= nx_tcp_tun.time_wait_max) {
		struct tcp_conn *old = t->tw.head;
		NX_INC(c->st, tcp_time_wait_overflow);
		tcp_closed(old);
		tcp_maybe_free(old);
	}
	tcp_age_add(&t->tw, c);
}

/* The protocol is done with @c: out of the table, timers off. */
void tcp_closed(struct tcp_conn *c)
{
	c->state = TCP_CLOSED;
	table_remove(c);
	tcp_age_del(c);
	tcp_timers_stop(c);
	dirty_remove(c);
	tcp_ooo_free(c);
}

static void acceptq_remove(struct tcp_conn *c)
{
	struct sk_listener *l = c->lst;
	struct tcp_conn **pp;

	for (pp = &l->qhead; *pp; pp = &(*pp)->qnext) {
		if (*pp == c) {
			*pp = c->qnext;
			if (!*pp)
				l->qtail = pp;
			l->qlen--;
			break;
		}
	}
	c->qnext = NULL;
	c->lst = NULL;
}

/* Let go of whoever holds @c because the connection died with @err. */
static void release_owner(struct tcp_conn *c, int err)
{
	switch (c->owner) {
	case OWN_HALF:
		tcp_age_del(c);
		c->lst = NULL;
		set_owner(c, OWN_NONE);
		break;
	case OWN_ACCEPTQ:
		acceptq_remove(c);
		set_owner(c, OWN_NONE);
		break;
	case OWN_CONNECT: {
		struct sk_promise *p = c->conn_p;
		c->conn_p = NULL;
		set_owner(c, OWN_NONE);
		sk_promise_set_error(p, err);
		break;
	}
	case OWN_APP:
		/* The app keeps the socket until sk_close/sk_abort; its
		 * reads and flushes fail from now on. */
		sk__sock_rx_end(&c->s, err);
		break;
	case OWN_CLOSING:
		sk__sock_fail(&c->s, err);
		set_owner(c, OWN_NONE);
		sk__sock_closed(&c->s);
		break;
	default:
		break;
	}
}

/* Reset, timeout, unreachable: the connection is gone. */
void tcp_fail(struct tcp_conn *c, int err)
{
	tcp_closed(c);
	release_owner(c, err);
	tcp_maybe_free(c);
}

void tcp_set_state(struct tcp_conn *c, enum tcp_state state)
{
	c->state = (uint8_t)state;
	if (state == TCP_TIME_WAIT) {
		NX_INC(c->st, tcp_time_wait);
		c->ack_now = true;
		tcp_time_wait_arm(c);
		tw_link(c);
	}
}

/* SYN_RECEIVED -> ESTABLISHED, or SYN_SENT -> ESTABLISHED. */
void tcp_established(struct tcp_conn *c)
{
	c->state = TCP_ESTABLISHED;
	tcp_keepalive_arm(c);
	if (c->owner == OWN_HALF) {
		struct sk_listener *l = c->lst;
		tcp_age_del(c);
		set_owner(c, OWN_ACCEPTQ);
		if (l->acc) {
			struct sk_promise *p = l->acc;
			l->acc = NULL;
			c->lst = NULL;
			set_owner(c, OWN_APP);
			sk_promise_set_value(p, (int64_t)(intptr_t)&c->s);
		} else {
			c->qnext = NULL;
			*l->qtail = c;
			l->qtail = &c->qnext;
			l->qlen++;
		}
		NX_INC(c->st, tcp_passive_opens);
	} else if (c->owner == OWN_CONNECT) {
		struct sk_promise *p = c->conn_p;
		c->conn_p = NULL;
		set_owner(c, OWN_APP);
		NX_INC(c->st, tcp_active_opens);
		sk_promise_set_value(p, (int64_t)(intptr_t)&c->s);
	}
}

/* Our FIN was acknowledged: everything the app wrote arrived, so its
 * sk_close resolves now; the connection may linger in FIN_WAIT_2 /
 * TIME_WAIT without it. */
void tcp_fin_acked(struct tcp_conn *c)
{
	c->fin_acked = true;
	if (c->owner == OWN_CLOSING) {
		set_owner(c, OWN_NONE);
		sk__sock_closed(&c->s);
	}
	if (c->state == TCP_FIN_WAIT_1) {
		c->state = TCP_FIN_WAIT_2;
		if (c->owner == OWN_NONE)
			tcp_fin_wait2_arm(c);
	} else if (c->state == TCP_CLOSING) {
		tcp_set_state(c, TCP_TIME_WAIT);
	} else if (c->state == TCP_LAST_ACK) {
		tcp_closed(c);
	}
}

/* --- sk_sock ops -------------------------------------------------------- */

static void tcp_rx_resume(struct sk_sock *s)
{
	struct tcp_conn *c = tcp_of(s);

	if (c->state == TCP_CLOSED)
		return;
	if (tcp_window_update_due(c)) {
		c->ack_now = true;
		tcp_mark_dirty(c);
	}
	/* Keep being told while the advertised window stays small. */
	s->rx_paused = (uint32_t)(c->rcv_adv - c->rcv_nxt) < s->rx_limit / 2 ||
		       c->ack_now;
}

static void tcp_tx_kick(struct sk_sock *s)
{
	tcp_mark_dirty(tcp_of(s));
}

static void tcp_sock_close(struct sk_sock *s)
{
	struct tcp_conn *c = tcp_of(s);

	set_owner(c, OWN_CLOSING);
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->state = TCP_FIN_WAIT_1;
		break;
	case TCP_CLOSE_WAIT:
		c->state = TCP_LAST_ACK;
		break;
	case TCP_CLOSED:
		/* Reset or timed out before: nothing left to send. */
		set_owner(c, OWN_NONE);
		sk__sock_closed(s);
		tcp_maybe_free(c);
		return;
	default:
		/* FIN_WAIT_x, CLOSING, LAST_ACK, TIME_WAIT cannot hold an
		 * app socket that was not closed; SYN states never reach
		 * the app. */
		break;
	}
	/* Input nobody will read: give its buffers back now. */
	sk_read_consume(s, s->in.bytes);
	c->fin_queued = true;
	tcp_mark_dirty(c);
}

static void tcp_sock_abort(struct sk_sock *s)
{
	struct tcp_conn *c = tcp_of(s);

	if (c->state != TCP_CLOSED && c->state != TCP_SYN_SENT &&
	    c->state != TCP_TIME_WAIT)
		tcp_send_rst(c);
	tcp_closed(c);
	set_owner(c, OWN_NONE);
	tcp_maybe_free(c);
}

static void tcp_sock_addrs(struct sk_sock *s)
{
	struct tcp_conn *c = tcp_of(s);

	s->peer.ip = c->rip;
	s->peer.port = c->rport;
	s->local.ip = c->lip;
	s->local.port = c->lport;
}

static const struct sk_sock_ops tcp_sock_ops = {
	.rx_resume = tcp_rx_resume,
	.tx_kick = tcp_tx_kick,
	.close = tcp_sock_close,
	.abort = tcp_sock_abort,
	.addrs = tcp_sock_addrs,
};

/* --- instance ----------------------------------------------------------- */

int nx_tcp_init(struct nx_stack *st)
{
	struct nx_tcp *t = sk_zalloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->tab = sk_zalloc(256 * sizeof(*t->tab));
	if (!t->tab) {
		sk_free(t);
		return -ENOMEM;
	}
	t->tab_mask = 255;
	st->tcp = t;
	t->hseed = nx_random(st);
	for (int i = 0; i < 4; i++)
		t->secret[i] = nx_random(st);
	t->next_port = (uint16_t)(EPHEMERAL_LO + nx_random(st) % (EPHEMERAL_HI - EPHEMERAL_LO + 1));
	return 0;
}

void nx_tcp_fini(struct nx_stack *st)
{
	struct nx_tcp *t = st->tcp;

	if (!t)
		return;
	while (t->listeners)
		nx_tcp_listener_close(t->listeners);
	while (t->all) {
		struct tcp_conn *c = t->all;
		tcp_closed(c);
		if (c->owner == OWN_CONNECT)
			release_owner(c, -ECANCELED);
		else if (c->owner == OWN_CLOSING)
			sk__sock_closed(&c->s);
		if (c->owner != OWN_NONE)
			set_owner(c, OWN_NONE);
		tcp_maybe_free(c);
	}
	sk_free(t->tab);
	sk_free(t);
	st->tcp = NULL;
}

bool nx_tcp_busy(const struct nx_stack *st)
{
	return st->tcp && st->tcp->busy > 0;
}

/* --- listeners ---------------------------------------------------------- */

struct sk_listener *tcp_listener_find(struct nx_stack *st, uint32_t ip, uint16_t port)
{
	for (struct sk_listener *l = st->tcp->listeners; l; l = l->next)
		if (l->addr.port == port && (!l->addr.ip || l->addr.ip == ip))
			return l;
	return NULL;
}

/* A listener of any address on @port. */
static bool port_in_use(struct nx_stack *st, uint16_t port)
{
	for (struct sk_listener *l = st->tcp->listeners; l; l = l->next)
		if (l->addr.port == port)
			return true;
	return false;
}

/*
 * An ephemeral port no listener has; 0 if none.  With @rip (a connect to
 * rip:rport) also one free for that 4-tuple whose flow the NIC hashes to
 * us, so that the replies arrive on this shard's queue.
 *
 * Without hardware RSS the queue a reply comes in on is the peer's choice:
 * a skerry peer across a memif or loop answers from the shard that owns the
 * flow in its own view, hash(us -> it), and on that shard's queue.  Ports
 * on which both views agree cross no shard on either side, so they are
 * tried first; then any port our own view accepts.
 */
static uint16_t ephemeral_port(struct nx_stack *st, uint32_t rip, uint16_t rport)
{
	struct nx_tcp *t = st->tcp;
	bool both = rip && !(st->dev->offloads & SK_NETDEV_RSS);

	for (int pass = both ? 0 : 1; pass < 2; pass++) {
		for (unsigned i = 0; i <= EPHEMERAL_HI - EPHEMERAL_LO; i++) {
			uint16_t p = t->next_port++;
			if (t->next_port > EPHEMERAL_HI)
				t->next_port = EPHEMERAL_LO;
			if (port_in_use(st, p))
				continue;
			if (rip && (tcp_lookup(st, st->ip, p, rip, rport) ||
				    !nx_flow_is_local(st, sk_rss_hash(rip, st->ip, rport, p, true))))
				continue;
			if (pass == 0 &&
			    !nx_flow_is_local(st, sk_rss_hash(st->ip, rip, p, rport, true)))
				continue;
			return p;
		}
	}
	return 0;
}

int nx_tcp_listen(struct nx_stack *st, const struct sk_sockaddr *a,
		  const struct sk_listen_opts *o, struct sk_listener **out)
{
	struct nx_tcp *t = st->tcp;
	struct sk_listener *l;
	uint16_t port = a->port;

	if (a->ip && a->ip != st->ip)
		return -EADDRNOTAVAIL;
	if (port && port_in_use(st, port))
		return -EADDRINUSE;
	if (!port) {
		port = ephemeral_port(st, 0, 0);
		if (!port)
			return -EADDRINUSE;
	}
	l = sk_zalloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->st = st;
	l->addr.ip = a->ip;
	l->addr.port = port;
	l->backlog = o && o->backlog > 0 ? (unsigned)o->backlog : 1024;
	l->qtail = &l->qhead;
	l->next = t->listeners;
	t->listeners = l;
	*out = l;
	return 0;
}

void nx_tcp_listener_addr(const struct sk_listener *l, struct sk_sockaddr *out)
{
	*out = l->addr;
	if (!out->ip)
		out->ip = l->st->ip;
}

sk_future nx_tcp_accept(struct sk_listener *l)
{
	struct tcp_conn *c;

	if (l->acc)
		return sk_make_error(-EBUSY);
	c = l->qhead;
	if (c) {
		acceptq_remove(c);
		set_owner(c, OWN_APP);
		return sk_make_ready_ptr(&c->s);
	}
	l->acc = sk_promise_new();
	if (!l->acc)
		return sk_make_error(-ENOMEM);
	return sk_promise_future(l->acc);
}

static void listener_free(struct sk_listener *l)
{
	sk_free(l);
}

void nx_tcp_listener_close(struct sk_listener *l)
{
	struct nx_tcp *t = l->st->tcp;
	struct sk_listener **pp;
	struct tcp_conn *c, *next;

	for (pp = &t->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	if (l->acc) {
		struct sk_promise *p = l->acc;
		l->acc = NULL;
		sk_promise_set_error(p, -ECANCELED);
	}
	/* Connections nobody will accept: reset them, as a kernel does. */
	for (c = t->all; c; c = next) {
		next = c->anext;
		if (c->lst != l)
			continue;
		tcp_send_rst(c);
		tcp_fail(c, -ECONNRESET);
	}
	listener_free(l);
}

/* --- connect ------------------------------------------------------------ */

sk_future nx_tcp_connect(struct nx_stack *st, const struct sk_sockaddr *a)
{
	struct tcp_conn *c;
	uint16_t lport;

	if (!a->ip || !a->port)
		return sk_make_error(-EINVAL);
	lport = ephemeral_port(st, a->ip, a->port);
	if (!lport)
		return sk_make_error(-EADDRNOTAVAIL);
	c = tcp_conn_new(st, st->ip, lport, a->ip, a->port);
	if (!c)
		return sk_make_error(-ENOMEM);
	c->conn_p = sk_promise_new();
	if (!c->conn_p) {
		tcp_closed(c);
		tcp_maybe_free(c);
		return sk_make_error(-ENOMEM);
	}
	set_owner(c, OWN_CONNECT);
	c->iss = tcp_isn(st, c->lip, c->lport, c->rip, c->rport);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->recover = c->iss;
	c->state = TCP_SYN_SENT;
	c->mss = tcp_our_mss(st);
	sk_future f = sk_promise_future(c->conn_p);
	c->synack_now = true;
	/* The SYN goes out now: an unreachable peer fails the connect at
	 * once (tcp_output_conn calls tcp_fail). */
	tcp_output_conn(c);
	return f;
}
