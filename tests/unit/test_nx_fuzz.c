/*
 * test_nx_fuzz.c - malformed and hostile packets against live connections.
 *
 * Two native stack instances, A (10.0.0.1) and B (10.0.0.2), on shard 0,
 * each on its own loop pair; a man in the middle (a poller of this test)
 * forwards frames between the pairs.  While sixteen connections echo data,
 * the middle mutates IP/TCP/UDP headers and TCP options and then fixes the
 * checksums (so the damage reaches the deep parsing, not just the checksum
 * test), truncates frames, duplicates them, injects random garbage and a
 * flood of SYNs with random sources.  The stacks must count and drop what
 * is malformed, never crash (ASan/UBSan builds run this too) and never
 * leak; a guard connection whose own frames the middle leaves alone must
 * echo 2 MiB byte-exact through the storm (nothing done to the others
 * reaches its data); afterwards, with the middle honest again, a fresh
 * connection must carry 1 MiB byte-exact, and both instances must tear
 * down cleanly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "native/nx.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#define IP_A 0x0a000001u
#define IP_B 0x0a000002u
#define PORT 7
#define NCONN 16
#define CHUNK 16384
#define CLEAN_BYTES (1u << 20)
#define GUARD_BYTES (2u << 20)

static const uint8_t mac_a[6] = { 2, 0, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 2, 0, 0, 0, 0, 0xb };

#define MAX_SRV 4096

struct conn {
	struct sk_sock *s;
	bool killed;
	bool clean;		/* the clean check's server side */
	size_t want;		/* client: echo bytes still expected */
};

static struct {
	struct sk_netdev *a1, *b1, *a2, *b2;
	struct nx_stack *A, *B;
	struct sk_listener *l;
	struct sk_poller mid;
	bool fuzzing, stopping;
	uint64_t rng;
	uint8_t syn_tmpl[128];
	unsigned syn_len;
	struct conn cli[NCONN], srv[MAX_SRV], clean;
	unsigned nsrv;
	uint16_t clean_port;	/* the clean connection's client port */
	/* the guard: an honest connection echoing through the storm */
	struct sk_sock *gs;
	uint16_t guard_port;
	size_t g_got, g_sent;
	bool g_bad, g_done;
	struct sk_timer g_timer;
	uint64_t mutated, truncated, duplicated, garbage, syns, echo_rounds;
	/* the clean check */
	struct sk_sock *cc;
	size_t c_got;
	bool c_bad;
	int result;
	struct nx_stats sa, sb;	/* the instances' counters at the end */
} F;

static uint8_t clean_buf[CLEAN_BYTES];

static uint32_t rnd(void)
{
	F.rng ^= F.rng << 13;
	F.rng ^= F.rng >> 7;
	F.rng ^= F.rng << 17;
	return (uint32_t)(F.rng >> 16);
}

/* --- the man in the middle --------------------------------------------- */

/* Recompute the IPv4 header checksum and the TCP/UDP checksum of a frame
 * after the middle changed it, where its lengths still make sense. */
static void fix_checksums(uint8_t *f, uint32_t len)
{
	uint8_t *ip = f + NX_ETH_HLEN;
	uint32_t ihl, tot;

	if (len < NX_ETH_HLEN + NX_IP_HLEN || nx_get16(f + 12) != NX_ETH_P_IP)
		return;
	ihl = (uint32_t)(ip[0] & 15) * 4;
	tot = nx_get16(ip + 2);
	if (ihl < NX_IP_HLEN || NX_ETH_HLEN + ihl > len)
		return;
	nx_put16(ip + 10, 0);
	nx_put16(ip + 10, nx_csum_fold(nx_csum_add(0, ip, ihl)));
	if (tot < ihl || NX_ETH_HLEN + tot > len || (nx_get16(ip + 6) & 0x3fff))
		return;	/* bad length or a fragment: leave L4 alone */
	uint8_t *l4 = ip + ihl;
	uint32_t l4len = tot - ihl;
	uint32_t src = nx_get32(ip + 12), dst = nx_get32(ip + 16);
	if (ip[9] == NX_IPPROTO_TCP && l4len >= NX_TCP_HLEN) {
		nx_put16(l4 + 16, 0);
		uint32_t s = nx_csum_pseudo(src, dst, NX_IPPROTO_TCP, (uint16_t)l4len);
		nx_put16(l4 + 16, nx_csum_fold(nx_csum_add(s, l4, l4len)));
	} else if (ip[9] == NX_IPPROTO_UDP && l4len >= NX_UDP_HLEN) {
		nx_put16(l4 + 6, 0);
		uint32_t s = nx_csum_pseudo(src, dst, NX_IPPROTO_UDP, (uint16_t)l4len);
		uint16_t c = nx_csum_fold(nx_csum_add(s, l4, l4len));
		nx_put16(l4 + 6, c ? c : 0xffff);
	}
}

static struct sk_pkt *frame(const uint8_t *bytes, uint32_t len)
{
	struct sk_pkt *p = sk_pkt_alloc();
	uint8_t *d;
	if (!p)
		return NULL;
	if (len > SK_PKT_DATAROOM)
		len = SK_PKT_DATAROOM;
	d = sk_pkt_append(p, len);
	memcpy(d, bytes, len);
	return p;
}

/* A SYN to B's listener from a random source in the subnet. */
static struct sk_pkt *forged_syn(void)
{
	uint8_t f[128];
	memcpy(f, F.syn_tmpl, F.syn_len);
	uint8_t *ip = f + NX_ETH_HLEN;
	uint8_t *th = ip + (ip[0] & 15) * 4;
	nx_put32(ip + 12, 0x0a000000u | (10 + rnd() % 200));
	nx_put16(th, (uint16_t)(1024 + rnd() % 60000));
	nx_put32(th + 4, rnd());
	fix_checksums(f, F.syn_len);
	return frame(f, F.syn_len);
}

static struct sk_pkt *garbage(void)
{
	uint8_t f[256];
	uint32_t len = rnd() % sizeof(f);
	for (uint32_t i = 0; i < len; i++)
		f[i] = (uint8_t)rnd();
	if (len >= NX_ETH_HLEN) {
		memcpy(f, rnd() & 1 ? mac_a : mac_b, 6);
		unsigned k = rnd() % 3;
		nx_put16(f + 12, k == 0 ? NX_ETH_P_IP : k == 1 ? NX_ETH_P_ARP : (uint16_t)rnd());
		/* ARP garbage must not teach the stacks a wrong MAC for A or B
		 * (that would be a correct stack obeying the network). */
		if (k == 1 && len >= NX_ETH_HLEN + 18)
			nx_put32(f + NX_ETH_HLEN + 14, 0x0a000063u);
		if (k == 0 && len >= NX_ETH_HLEN + NX_IP_HLEN) {
			f[NX_ETH_HLEN] = (uint8_t)(0x40 | (f[NX_ETH_HLEN] & 15));
			fix_checksums(f, len);
		}
	}
	return frame(f, len);
}

/* Damage one frame in place (it is ours: loop hands over unshared
 * packets); may add extra frames to @extra. */
static void mutate(struct sk_pkt *p, struct sk_pkt **extra, unsigned *nextra)
{
	uint8_t *f = p->data;
	uint32_t len = p->len;
	uint32_t hdr = len < 94 ? len : 94;	/* Ethernet + IP + TCP with options */

	if (p->next || len <= NX_ETH_HLEN || nx_get16(f + 12) != NX_ETH_P_IP)
		return;
	switch (rnd() % 6) {
	case 0:
	case 1:	/* a few header bytes, checksums fixed */
		for (unsigned i = 0, n = 1 + rnd() % 3; i < n; i++)
			f[NX_ETH_HLEN + rnd() % (hdr - NX_ETH_HLEN)] = (uint8_t)rnd();
		fix_checksums(f, len);
		F.mutated++;
		break;
	case 2: {	/* TCP options and data offset */
		uint8_t *ip = f + NX_ETH_HLEN;
		uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
		if (ip[9] == NX_IPPROTO_TCP && NX_ETH_HLEN + ihl + 40 <= len) {
			uint8_t *th = ip + ihl;
			th[12] = (uint8_t)((5 + rnd() % 11) << 4 | (th[12] & 15));
			for (unsigned i = 20; i < 40; i++)
				th[i] = (uint8_t)(rnd() % 5 == 0 ? rnd() % 9 : rnd());
			fix_checksums(f, len);
			F.mutated++;
		}
		break;
	}
	case 3:	/* truncated, lengths left claiming more */
		sk_pkt_trim(p, NX_ETH_HLEN + rnd() % (len - NX_ETH_HLEN));
		F.truncated++;
		break;
	case 4:	/* sent twice, the copy damaged */
		if (*nextra < 4) {
			struct sk_pkt *c = sk_pkt_copy(p);
			if (c) {
				c->data[NX_ETH_HLEN + rnd() % (hdr - NX_ETH_HLEN)] ^=
					(uint8_t)(1 + rnd() % 255);
				fix_checksums(c->data, c->len);
				extra[(*nextra)++] = c;
				F.duplicated++;
			}
		}
		break;
	default:	/* a bit flipped, checksums NOT fixed */
		f[NX_ETH_HLEN + rnd() % (len - NX_ETH_HLEN)] ^= (uint8_t)(1u << (rnd() % 8));
		F.mutated++;
		break;
	}
}

/*
 * Is @p a TCP segment of the guard connection (10.0.0.1:guard_port <->
 * 10.0.0.2:PORT)?  Its frames pass untouched, and no damaged frame may
 * turn into one: a forged in-window segment with a valid checksum is
 * accepted by any TCP, so only an honest flow can show that the storm on
 * the others leaves it alone.
 */
static bool guard_flow(const struct sk_pkt *p)
{
	const uint8_t *f = p->data, *ip = f + NX_ETH_HLEN, *th;
	uint32_t ihl;

	if (!F.guard_port || p->len < NX_ETH_HLEN + NX_IP_HLEN + 4 ||
	    nx_get16(f + 12) != NX_ETH_P_IP || ip[9] != NX_IPPROTO_TCP)
		return false;
	ihl = (uint32_t)(ip[0] & 15) * 4;
	if (NX_ETH_HLEN + ihl + 4 > p->len)
		return false;
	th = ip + ihl;
	return (nx_get16(th) == F.guard_port && nx_get16(th + 2) == PORT) ||
	       (nx_get16(th) == PORT && nx_get16(th + 2) == F.guard_port);
}

static bool relay(struct sk_netdev *from, struct sk_netdev *to, bool to_b)
{
	struct sk_pkt *in[32], *out[48];
	unsigned n = from->rx_burst(from, 0, in, 32), m = 0;

	for (unsigned i = 0; i < n; i++) {
		struct sk_pkt *p = in[i];
		struct sk_pkt *extra[4] = { NULL };
		unsigned ne = 0;
		const uint8_t *ip = p->data + NX_ETH_HLEN;
		/* Remember a real SYN towards B as the flood's template. */
		if (to_b && !F.syn_len && p->len <= sizeof(F.syn_tmpl) &&
		    p->len >= NX_ETH_HLEN + 40 && ip[9] == NX_IPPROTO_TCP &&
		    (ip[(ip[0] & 15) * 4 + 13] & 0x12) == 0x02) {
			memcpy(F.syn_tmpl, p->data, p->len);
			F.syn_len = p->len;
		}
		if (F.fuzzing && !guard_flow(p) && rnd() % 5 == 0) {
			mutate(p, extra, &ne);
			if (guard_flow(p)) {	/* damage made it look like the guard */
				sk_pkt_free(p);
				p = NULL;
			}
		}
		if (p)
			out[m++] = p;
		for (unsigned k = 0; k < ne; k++) {
			if (guard_flow(extra[k]))
				sk_pkt_free(extra[k]);
			else
				out[m++] = extra[k];
		}
	}
	/* Injections ride on real traffic only, so that the storm scales
	 * with the echo load instead of with how fast the reactor spins. */
	if (F.fuzzing && n) {
		if (rnd() % 4 == 0 && m < 48) {
			struct sk_pkt *g = garbage();
			if (g && guard_flow(g)) {
				sk_pkt_free(g);
				g = NULL;
			}
			if (g) {
				out[m++] = g;
				F.garbage++;
			}
		}
		if (to_b && F.syn_len && rnd() % 3 == 0 && m < 48) {
			struct sk_pkt *s = forged_syn();
			if (s) {
				out[m++] = s;
				F.syns++;
			}
		}
	}
	unsigned sent = m ? to->tx_burst(to, 0, out, m) : 0;
	for (unsigned i = sent; i < m; i++)
		sk_pkt_free(out[i]);
	return n != 0;
}

static bool mid_poll(void *arg)
{
	(void)arg;
	bool w = relay(F.b1, F.a2, true);
	return relay(F.a2, F.b1, false) || w;
}

/* --- echo traffic ------------------------------------------------------- */

static void kill_conn(struct conn *c)
{
	if (c->s && !c->killed) {
		c->killed = true;
		sk_abort(c->s);
	}
}

static void srv_read_done(void *arg, int64_t v, int err);

static void srv_read(struct conn *c)
{
	sk_future_on_done(sk_read(c->s), srv_read_done, c);
}

/* Echo everything back; storm connections die when the storm ends, the
 * clean check's connection (c->clean) lives on. */
static void srv_read_done(void *arg, int64_t v, int err)
{
	struct conn *c = arg;
	size_t len;
	const uint8_t *d;

	if (c->killed)
		return;
	if (err || v == 0 || (F.stopping && !c->clean)) {
		kill_conn(c);
		return;
	}
	while ((d = sk_read_peek(c->s, &len)) != NULL) {
		if (sk_write(c->s, d, len)) {
			kill_conn(c);
			return;
		}
		sk_read_consume(c->s, len);
	}
	srv_read(c);
}

static void accepted(void *arg, int64_t v, int err);

static void accept_next(void)
{
	sk_future_on_done(nx_tcp_accept(F.l), accepted, NULL);
}

static void accepted(void *arg, int64_t v, int err)
{
	struct sk_sock *s;
	struct sk_sockaddr peer;
	(void)arg;

	if (err)
		return;	/* listener closed */
	s = sk_future_ptr_value(v);
	sk_sock_peer(s, &peer);
	if (F.stopping) {
		/* After the storm only the clean check's port is welcome
		 * (stragglers of the storm may still complete handshakes). */
		if (peer.port != F.clean_port || F.clean.s) {
			sk_abort(s);
		} else {
			F.clean.s = s;
			F.clean.clean = true;
			srv_read(&F.clean);
		}
	} else if (F.nsrv == MAX_SRV) {
		sk_abort(s);
	} else {
		struct conn *c = &F.srv[F.nsrv++];
		memset(c, 0, sizeof(*c));
		c->s = s;
		c->clean = F.guard_port && peer.port == F.guard_port;
		srv_read(c);
	}
	accept_next();
}

static uint8_t chunk[CHUNK];

static void cli_start(struct conn *c);

static void cli_read_done(void *arg, int64_t v, int err)
{
	struct conn *c = arg;

	if (c->killed)
		return;
	if (err || v == 0 || !F.fuzzing) {
		kill_conn(c);
		if (F.fuzzing)
			cli_start(c);	/* reconnect while the storm lasts */
		return;
	}
	size_t have = sk_read_avail(c->s);
	size_t take = have < c->want ? have : c->want;
	sk_read_consume(c->s, take);
	c->want -= take;
	if (!c->want) {
		F.echo_rounds++;
		if (sk_write(c->s, chunk, CHUNK)) {
			kill_conn(c);
			cli_start(c);
			return;
		}
		c->want = CHUNK;
	}
	sk_future_on_done(sk_read(c->s), cli_read_done, c);
}

static void cli_connected(void *arg, int64_t v, int err)
{
	struct conn *c = arg;

	if (err) {
		if (F.fuzzing)
			cli_start(c);
		return;
	}
	c->s = sk_future_ptr_value(v);
	c->killed = false;
	if (!F.fuzzing || sk_write(c->s, chunk, CHUNK)) {
		kill_conn(c);
		return;
	}
	c->want = CHUNK;
	sk_future_on_done(sk_read(c->s), cli_read_done, c);
}

static void cli_start(struct conn *c)
{
	struct sk_sockaddr to = { IP_B, PORT };
	c->s = NULL;
	c->killed = false;
	sk_future_on_done(nx_tcp_connect(F.A, &to), cli_connected, c);
}

/* --- the guard: byte-exact echo while the storm rages -------------------- */

static uint8_t guard_buf[GUARD_BYTES];
static void guard_send(struct sk_timer *t);

static void guard_read_done(void *arg, int64_t v, int err)
{
	const uint8_t *d;
	size_t len;
	(void)arg;

	if (err || v == 0) {
		F.g_bad = true;
		F.g_done = true;
		return;
	}
	while ((d = sk_read_peek(F.gs, &len)) != NULL) {
		if (F.g_got + len > GUARD_BYTES || memcmp(d, guard_buf + F.g_got, len))
			F.g_bad = true;
		F.g_got += len;
		sk_read_consume(F.gs, len);
	}
	if (F.g_got >= GUARD_BYTES || F.g_bad) {
		F.g_done = true;
		return;
	}
	sk_future_on_done(sk_read(F.gs), guard_read_done, NULL);
}

static void guard_connected(void *arg, int64_t v, int err)
{
	struct sk_sockaddr me;
	(void)arg;

	if (err) {
		F.g_bad = true;
		F.g_done = true;
		return;
	}
	F.gs = sk_future_ptr_value(v);
	sk_sock_local(F.gs, &me);
	F.guard_port = me.port;
	sk_timer_init(&F.g_timer, guard_send, NULL);
	sk_timer_arm(&F.g_timer, 0);
	sk_future_on_done(sk_read(F.gs), guard_read_done, NULL);
}

static bool guard_finished(void *arg)
{
	(void)arg;
	return F.g_done;
}

/* Paced: 32 KiB every 20 ms, so the guard's traffic spans the storm. */
static void guard_send(struct sk_timer *t)
{
	size_t n = GUARD_BYTES - F.g_sent < 32768 ? GUARD_BYTES - F.g_sent : 32768;

	if (!F.gs || F.g_done || !n)
		return;
	if (sk_write(F.gs, guard_buf + F.g_sent, n)) {
		F.g_bad = true;
		F.g_done = true;
		return;
	}
	F.g_sent += n;
	sk_timer_arm(t, 20 * SK_NSEC_PER_MSEC);
}

static sk_future guard_poll(void *arg)
{
	(void)arg;
	return sk_sleep(20 * SK_NSEC_PER_MSEC);
}

/* --- the clean check after the storm ------------------------------------ */

static sk_future clean_cli_read(void *arg, int64_t v)
{
	const uint8_t *d;
	size_t len;
	(void)arg;
	(void)v;
	while ((d = sk_read_peek(F.cc, &len)) != NULL) {
		if (F.c_got + len > CLEAN_BYTES || memcmp(d, clean_buf + F.c_got, len))
			F.c_bad = true;
		F.c_got += len;
		sk_read_consume(F.cc, len);
	}
	return sk_make_ready(0);
}

static bool clean_cli_stop(void *arg)
{
	(void)arg;
	return F.c_got >= CLEAN_BYTES || F.c_bad;
}

static sk_future clean_cli_body(void *arg)
{
	(void)arg;
	return sk_future_then(sk_read(F.cc), clean_cli_read, NULL);
}

static sk_future clean_finish(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err)
		F.result = err;
	if (F.cc)
		sk_abort(F.cc);
	if (F.gs) {
		sk_timer_cancel(&F.g_timer);
		sk_abort(F.gs);
	}
	kill_conn(&F.clean);
	for (unsigned i = 0; i < F.nsrv; i++)
		kill_conn(&F.srv[i]);	/* the guard's server side */
	nx_tcp_listener_close(F.l);
	return sk_sleep(20 * SK_NSEC_PER_MSEC);
}

static sk_future clean_connected(void *arg, int64_t v)
{
	struct sk_sockaddr me;
	(void)arg;
	F.cc = sk_future_ptr_value(v);
	if (sk_write(F.cc, clean_buf, CLEAN_BYTES))
		return sk_make_error(-EIO);
	/* Known before the server accepts: our ACK of its SYN-ACK leaves
	 * after this continuation has run. */
	sk_sock_local(F.cc, &me);
	F.clean_port = me.port;
	return sk_with_timeout(sk_do_until(clean_cli_stop, clean_cli_body, NULL),
			       20 * SK_NSEC_PER_SEC);
}

static sk_future clean_start(void *arg, int64_t v)
{
	struct sk_sockaddr to = { IP_B, PORT };
	(void)arg;
	(void)v;
	sk_future f = nx_tcp_connect(F.A, &to);
	return sk_future_then_wrapped(sk_future_then(f, clean_connected, NULL),
				      clean_finish, NULL);
}

static sk_future storm_over(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	(void)err;	/* the guard's wait timed out: checked at the end */
	F.fuzzing = false;
	F.stopping = true;
	for (unsigned i = 0; i < NCONN; i++)
		kill_conn(&F.cli[i]);
	for (unsigned i = 0; i < F.nsrv; i++)
		kill_conn(&F.srv[i]);
	/* Let the aborts' RSTs and the stragglers drain, then go clean. */
	return sk_future_then(sk_sleep(300 * SK_NSEC_PER_MSEC), clean_start, NULL);
}

static sk_future guard_wait(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_with_timeout(sk_do_until(guard_finished, guard_poll, NULL),
			       30 * SK_NSEC_PER_SEC);
}

static sk_future fuzz_main(void *arg)
{
	struct nx_config ca = { 0 }, cb = { 0 };
	struct sk_sockaddr la = { 0, PORT };
	(void)arg;

	if (sk_netdev_loop_pair(1, 0, mac_a, NULL, &F.a1, &F.b1) ||
	    sk_netdev_loop_pair(1, 0, NULL, mac_b, &F.a2, &F.b2))
		return sk_make_error(-ENOMEM);
	ca.dev = F.a1;
	ca.ip = IP_A;
	ca.prefix = 24;
	memcpy(ca.mac, mac_a, 6);
	cb.dev = F.b2;
	cb.ip = IP_B;
	cb.prefix = 24;
	memcpy(cb.mac, mac_b, 6);
	if (nx_stack_create(&ca, &F.A) || nx_stack_create(&cb, &F.B))
		return sk_make_error(-ENOMEM);
	nx_arp_learn(F.A, IP_B, mac_b);
	nx_arp_learn(F.B, IP_A, mac_a);
	sk_netdev_attach(F.b1, 0);
	sk_netdev_attach(F.a2, 0);
	F.mid = (struct sk_poller){ .poll = mid_poll, .arg = NULL };
	sk_reactor_add_poller(&F.mid);
	if (nx_tcp_listen(F.B, &la, NULL, &F.l))
		return sk_make_error(-EADDRINUSE);
	accept_next();
	F.fuzzing = true;
	for (unsigned i = 0; i < NCONN; i++)
		cli_start(&F.cli[i]);
	sk_future_on_done(nx_tcp_connect(F.A, &(struct sk_sockaddr){ IP_B, PORT }),
			  guard_connected, NULL);
	/* Three seconds of storm at least, and until the guard is through
	 * (30 s at most). */
	sk_future f = sk_future_then(sk_sleep(3 * SK_NSEC_PER_SEC), guard_wait, NULL);
	return sk_future_then_wrapped(f, storm_over, NULL);
}

static sk_future fuzz_down(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err && !F.result)
		F.result = err;
	sk_reactor_remove_poller(&F.mid);
	F.sa = F.A->stats;
	F.sb = F.B->stats;
	nx_stack_destroy(F.A);
	nx_stack_destroy(F.B);
	sk_netdev_close(F.a1);
	sk_netdev_close(F.b1);
	sk_netdev_close(F.a2);
	sk_netdev_close(F.b2);
	return sk_make_ready(0);
}

static sk_future fuzz_run(void *arg)
{
	return sk_future_then_wrapped(fuzz_main(arg), fuzz_down, NULL);
}

static uint64_t drops(const struct nx_stats *s)
{
	return s->eth_short + s->ip_short + s->ip_bad_version + s->ip_bad_hlen +
	       s->ip_bad_len + s->ip_bad_csum + s->ip_not_ours + s->ip_bad_proto +
	       s->tcp_short + s->tcp_bad_off + s->tcp_bad_csum + s->tcp_bad_opts +
	       s->tcp_bad_flags + s->tcp_no_port + s->tcp_out_of_window +
	       s->udp_short + s->udp_bad_len + s->udp_bad_csum + s->arp_bad +
	       s->eth_unknown_type;
}

SK_TEST(hostile_frames_during_echo_then_clean_transfer)
{
	memset(&F, 0, sizeof(F));
	/* A fixed storm by default; SK_FUZZ_SEED=N replays another. */
	F.rng = getenv("SK_FUZZ_SEED") ? strtoull(getenv("SK_FUZZ_SEED"), NULL, 0) * 2 + 1 :
					  0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < CLEAN_BYTES; i++)
		clean_buf[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t i = 0; i < GUARD_BYTES; i++)
		guard_buf[i] = (uint8_t)(i * 40503u >> 7);
	/* Short timers so that the storm's stuck connections move on. */
	nx_tcp_tun.rto_min_ns = 5 * SK_NSEC_PER_MSEC;
	nx_tcp_tun.rto_initial_ns = 20 * SK_NSEC_PER_MSEC;
	nx_tcp_tun.time_wait_ns = 50 * SK_NSEC_PER_MSEC;

	/* The stats are read from inside the run, before the instances go. */
	int rc = sk_test_run(1, fuzz_run, NULL);
	CHECK_EQ(rc, 0);
	CHECK_EQ(F.result, 0);
	fprintf(stderr, "  drops counted: A %llu, B %llu; B SYNs dropped %llu, backlog full %llu\n",
		(unsigned long long)drops(&F.sa), (unsigned long long)drops(&F.sb),
		(unsigned long long)F.sb.tcp_syn_dropped,
		(unsigned long long)F.sb.tcp_backlog_full);
	CHECK(drops(&F.sa) > 50);
	CHECK(drops(&F.sb) > 50);
	fprintf(stderr, "  storm: %llu mutated, %llu truncated, %llu duplicated, "
		"%llu garbage, %llu forged SYNs, %llu echo rounds\n",
		(unsigned long long)F.mutated, (unsigned long long)F.truncated,
		(unsigned long long)F.duplicated, (unsigned long long)F.garbage,
		(unsigned long long)F.syns, (unsigned long long)F.echo_rounds);
	CHECK(F.mutated > 100);
	CHECK(F.truncated > 20);
	CHECK(F.syns > 50);
	CHECK(F.echo_rounds > 10);
	CHECK_EQ(F.c_got, CLEAN_BYTES);
	CHECK(!F.c_bad);
	/* The honest connection went through the storm untouched. */
	fprintf(stderr, "  guard: %zu of %u bytes echoed byte-exact through the storm\n",
		F.g_got, GUARD_BYTES);
	CHECK_EQ(F.g_got, GUARD_BYTES);
	CHECK(!F.g_bad);
}
