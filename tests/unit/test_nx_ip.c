/*
 * test_nx_ip.c - the native stack below TCP: checksums, Ethernet, ARP,
 * IPv4 (checks, reassembly, output fragmentation, routing), ICMP and UDP.
 *
 * One instance (10.0.0.1/24, gateway 10.0.0.254) sits on one end of a
 * loop pair; the test is the peer on the other end: it crafts frames,
 * tx_bursts them in, runs nx_stack_poll() by hand and rx_bursts what the
 * stack sent.  Checksums of crafted and received frames are computed with
 * a naive reference, independent of csum.c.  Every case ends by checking
 * that no packet buffer is left over (allocs == frees on the shard).
 */
#include <errno.h>
#include <string.h>

#include "native/nx.h"
#include "sk_frames.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/log.h"
#include "skerry/netdev.h"
#include "skerry/pkt.h"
#include "skerry/timer.h"

#define US    0x0a000001u	/* 10.0.0.1 */
#define PEER  0x0a000002u	/* 10.0.0.2, learned at set-up */
#define PEER3 0x0a000003u	/* 10.0.0.3, resolved by ARP */
#define GW    0x0a0000feu	/* 10.0.0.254 */
#define FAR   0xc0a80101u	/* 192.168.1.1, via the gateway */

static const uint8_t mac_us[6] = { 2, 0, 0, 0, 0, 1 };
static const uint8_t mac_peer[6] = { 2, 0, 0, 0, 0, 2 };
static const uint8_t mac_p3[6] = { 2, 0, 0, 0, 0, 3 };
static const uint8_t mac_gw[6] = { 2, 0, 0, 0, 0, 0xfe };
static const uint8_t mac_bc[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mac_zero[6];

/* --- frame crafting (reference checksum and ARP: sk_frames.h) ----------- */

/* Ethernet + IPv4 header (+ @l4) from the peer to us. */
static size_t mk_ip(uint8_t *f, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id,
		    uint16_t frag, const void *l4, size_t n)
{
	uint8_t *h = f + fr_eth(f, mac_us, mac_peer, NX_ETH_P_IP);

	h[0] = 0x45;
	h[1] = 0;
	nx_put16(h + 2, (uint16_t)(20 + n));
	nx_put16(h + 4, id);
	nx_put16(h + 6, frag);
	h[8] = 64;
	h[9] = proto;
	nx_put16(h + 10, 0);
	nx_put32(h + 12, src);
	nx_put32(h + 16, dst);
	nx_put16(h + 10, fr_fold(fr_sum(0, h, 20)));
	memcpy(h + 20, l4, n);
	return 34 + n;
}

/* Recompute the IP header checksum of frame @f after an edit. */
static void fix_ip_csum(uint8_t *f)
{
	uint8_t *h = f + 14;
	nx_put16(h + 10, 0);
	nx_put16(h + 10, fr_fold(fr_sum(0, h, (h[0] & 15u) * 4)));
}

static size_t mk_udp(uint8_t *u, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp,
		     const void *pl, size_t n)
{
	nx_put16(u, sp);
	nx_put16(u + 2, dp);
	nx_put16(u + 4, (uint16_t)(8 + n));
	nx_put16(u + 6, 0);
	memcpy(u + 8, pl, n);
	uint16_t c = fr_fold(fr_sum(fr_pseudo(src, dst, 17, 8 + n), u, 8 + n));
	nx_put16(u + 6, c ? c : 0xffff);
	return 8 + n;
}

static size_t mk_echo(uint8_t *m, uint16_t id, uint16_t seq, const void *pl, size_t n)
{
	m[0] = 8;
	m[1] = 0;
	nx_put16(m + 2, 0);
	nx_put16(m + 4, id);
	nx_put16(m + 6, seq);
	memcpy(m + 8, pl, n);
	nx_put16(m + 2, fr_fold(fr_sum(0, m, 8 + n)));
	return 8 + n;
}

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* --- the environment ----------------------------------------------------- */

struct env {
	struct sk_netdev *dev, *peer;
	struct nx_stack *st;
	uint64_t pkts0;
	/* A receive left pending by recv_now(). */
	sk_future pend;
	bool pending;
	struct sk_dgram d;
};

static uint64_t pkts_outstanding(void)
{
	struct sk_pkt_stats s;
	sk_pkt_stats(&s);
	return s.allocs - s.frees;
}

static void peer_tx(struct env *e, const uint8_t *f, size_t n)
{
	struct sk_pkt *p = sk_pkt_alloc();
	SK_ASSERT(p && n <= SK_PKT_DATAROOM);
	memcpy(p->data, f, n);
	sk_pkt_append(p, (uint32_t)n);
	if (e->peer->tx_burst(e->peer, 0, &p, 1) != 1)
		sk_pkt_free(p);
}

/* Send one frame and let the stack process it. */
static void peer_send(struct env *e, const uint8_t *f, size_t n)
{
	peer_tx(e, f, n);
	nx_stack_poll(e->st);
}

/* The next frame the stack sent (its length), or -1. */
static int peer_rx(struct env *e, uint8_t *buf, size_t cap)
{
	struct sk_pkt *p;

	if (e->peer->rx_burst(e->peer, 0, &p, 1) != 1)
		return -1;
	int n = (int)p->pkt_len;
	if ((size_t)n > cap)
		n = (int)cap;
	sk_pkt_copy_out(p, 0, (uint32_t)n, buf);
	sk_pkt_free(p);
	return n;
}

static unsigned peer_drain(struct env *e)
{
	uint8_t buf[2048];
	unsigned n = 0;

	while (peer_rx(e, buf, sizeof(buf)) >= 0)
		n++;
	return n;
}

static bool env_up(struct env *e, bool learn_peer)
{
	struct nx_config c = { .queue = 0, .ip = US, .prefix = 24, .gw = GW };

	memset(e, 0, sizeof(*e));
	e->pkts0 = pkts_outstanding();
	if (sk_netdev_loop_pair(1, 0, mac_us, mac_peer, &e->dev, &e->peer))
		return false;
	c.dev = e->dev;
	memcpy(c.mac, mac_us, 6);
	if (nx_stack_create(&c, &e->st)) {
		sk_netdev_close(e->dev);
		sk_netdev_close(e->peer);
		return false;
	}
	nx_stack_poll(e->st);	/* the announcement goes out */
	if (learn_peer) {
		peer_drain(e);
		nx_arp_learn(e->st, PEER, mac_peer);
	}
	return true;
}

static void env_down(struct env *e)
{
	nx_stack_destroy(e->st);
	peer_drain(e);
	sk_netdev_close(e->dev);
	sk_netdev_close(e->peer);
	/* Every buffer came back. */
	CHECK_EQ(pkts_outstanding(), e->pkts0);
}

/* A datagram now: its length, -EAGAIN (a receive is left pending and
 * completes later), or the error. */
static long recv_now(struct env *e, struct sk_udp *u)
{
	sk_future f;
	int err;

	if (e->pending) {
		if (!sk_future_available(e->pend))
			return -EAGAIN;
		f = e->pend;
		e->pending = false;
	} else {
		f = nx_udp_recv(u, &e->d);
		if (!sk_future_available(f)) {
			e->pend = f;
			e->pending = true;
			return -EAGAIN;
		}
	}
	int64_t v = sk_future_get(f, &err);
	return err ? err : (long)v;
}

static void udp_close(struct env *e, struct sk_udp *u)
{
	int err;

	/* A receive that completed meanwhile: give its datagram back. */
	if (e->pending && sk_future_available(e->pend)) {
		e->pending = false;
		if (sk_future_get(e->pend, &err) >= 0 && !err)
			nx_udp_release(u, &e->d);
	}
	nx_udp_close(u);
	if (e->pending) {
		CHECK(sk_future_available(e->pend));
		sk_future_get(e->pend, &err);
		CHECK_EQ(err, -ECANCELED);
		e->pending = false;
	}
}

static sk_future run_sync(void *arg)
{
	void (*fn)(void) = (void (*)(void))arg;
	fn();
	return sk_make_ready(0);
}

#define STAT(e, name) ((e)->st->stats.name)

/* Run a synchronous body on a one-shard runtime. */
#define RUN1(body) CHECK_EQ(sk_test_run(1, run_sync, (void *)(body)), 0)

static struct nx_ip_tunables tun_saved;

static void tun_save(void)
{
	tun_saved = nx_ip_tun;
}
static void tun_restore(void)
{
	nx_ip_tun = tun_saved;
}

/* --- checksums ----------------------------------------------------------- */

SK_TEST(csum_vectors)
{
	/* RFC 1071's example: sum 0xddf2. */
	static const uint8_t v[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	CHECK_EQ(nx_csum_fold(nx_csum_add(0, v, 8)), (uint16_t)~0xddf2);

	uint8_t buf[1500];
	uint32_t r = 12345;
	for (unsigned t = 0; t < 500; t++) {
		size_t n = t < 100 ? t : 1 + (r % 1499);
		for (size_t i = 0; i < n; i++) {
			r ^= r << 13;
			r ^= r >> 17;
			r ^= r << 5;
			buf[i] = (uint8_t)r;
		}
		if (t % 7 == 0)
			memset(buf, 0xff, n);
		uint16_t want = fr_fold(fr_sum(0, buf, n));
		CHECK_EQ(nx_csum_fold(nx_csum_add(0, buf, n)), want);
		/* In two pieces, the first even. */
		size_t cut = n ? (r % n) & ~(size_t)1 : 0;
		CHECK_EQ(nx_csum_fold(nx_csum_add(nx_csum_add(0, buf, cut), buf + cut, n - cut)),
			 want);
		/* As a chain with odd-sized segments. */
		struct sk_pkt *h = sk_pkt_alloc(), *last = h;
		size_t off = 0;
		unsigned k = 0;
		while (off < n) {
			struct sk_pkt *s = off ? sk_pkt_alloc() : h;
			size_t m = 1 + (r >> (k % 20)) % 97;
			if (m > n - off)
				m = n - off;
			memcpy(s->data, buf + off, m);
			sk_pkt_append(s, (uint32_t)m);
			if (s != h) {
				last->next = s;
				last = s;
				h->pkt_len += (uint32_t)m;
				h->nsegs++;
			}
			off += m;
			k++;
		}
		CHECK_EQ(nx_csum_fold(nx_csum_pkt(0, h, 0, (uint32_t)n)), want);
		if (n > 3) {
			uint16_t w2 = fr_fold(fr_sum(0, buf + 3, n - 3));
			CHECK_EQ(nx_csum_fold(nx_csum_pkt(0, h, 3, (uint32_t)n - 3)), w2);
		}
		sk_pkt_free(h);
	}
	CHECK_EQ(nx_csum_fold(nx_csum_pseudo(0x0a000001, 0x0a000002, 17, 10)),
		 fr_fold(fr_pseudo(0x0a000001, 0x0a000002, 17, 10)));
}

/* --- ARP ----------------------------------------------------------------- */

static void arp_reply_body(void)
{
	struct env e;
	uint8_t f[2048];
	int n;

	CHECK(env_up(&e, false));
	/* Gratuitous ARP at create: a request for our own address. */
	n = peer_rx(&e, f, sizeof(f));
	CHECK(n >= 42);
	CHECK(!memcmp(f, mac_bc, 6) && !memcmp(f + 6, mac_us, 6));
	CHECK_EQ(nx_get16(f + 12), NX_ETH_P_ARP);
	CHECK_EQ(nx_get16(f + 20), 1);
	CHECK_EQ(nx_get32(f + 28), US);
	CHECK_EQ(nx_get32(f + 38), US);
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);

	/* Who has 10.0.0.1?  Tell 10.0.0.2. */
	peer_send(&e, f, fr_arp(f, mac_bc, mac_peer, 1, mac_peer, PEER, mac_zero, US));
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 42);
	CHECK(!memcmp(f, mac_peer, 6) && !memcmp(f + 6, mac_us, 6));
	CHECK_EQ(nx_get16(f + 14), 1);
	CHECK_EQ(nx_get16(f + 16), 0x0800);
	CHECK_EQ(f[18], 6);
	CHECK_EQ(f[19], 4);
	CHECK_EQ(nx_get16(f + 20), 2);
	CHECK(!memcmp(f + 22, mac_us, 6));
	CHECK_EQ(nx_get32(f + 28), US);
	CHECK(!memcmp(f + 32, mac_peer, 6));
	CHECK_EQ(nx_get32(f + 38), PEER);
	CHECK_EQ(e.st->stats.arp_replies_sent, 1);

	/* The request taught us the peer: an echo reply goes straight out. */
	uint8_t m[64];
	peer_send(&e, f, mk_ip(f, PEER, US, 1, 1, 0, m, mk_echo(m, 1, 1, "x", 1)));
	n = peer_rx(&e, f, sizeof(f));
	CHECK(n > 34);
	CHECK(!memcmp(f, mac_peer, 6));
	CHECK_EQ(nx_get16(f + 12), NX_ETH_P_IP);

	/* A request for someone else: no reply, not learned. */
	peer_send(&e, f, fr_arp(f, mac_bc, mac_p3, 1, mac_p3, PEER3, mac_zero, 0x0a000009));
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);
	CHECK_EQ(e.st->stats.arp_bad, 0);

	/* Broken ones: each counted in arp_bad, none answered. */
	static const int bad_at[] = { 14, 16, 18, 19, 20, 22, 22, 28, 0 };
	for (unsigned i = 0; i < sizeof(bad_at) / sizeof(bad_at[0]); i++) {
		size_t len = fr_arp(f, mac_bc, mac_p3, 1, mac_p3, PEER3, mac_zero, US);
		switch (i) {
		case 0: nx_put16(f + 14, 6); break;		/* htype */
		case 1: nx_put16(f + 16, 0x86dd); break;	/* ptype */
		case 2: f[18] = 8; break;			/* hlen */
		case 3: f[19] = 16; break;			/* plen */
		case 4: nx_put16(f + 20, 3); break;		/* op */
		case 5: memset(f + 22, 0xff, 6); break;		/* sender bcast */
		case 6: memset(f + 22, 0, 6); break;		/* sender zero */
		case 7: nx_put32(f + 28, US); break;		/* sender = us */
		case 8: len = 14 + 20; break;			/* short */
		}
		peer_send(&e, f, len);
		CHECK_EQ(e.st->stats.arp_bad, i + 1);
		CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);
	}
	env_down(&e);
}

SK_TEST(arp_request_reply)
{
	RUN1(arp_reply_body);
}

static void arp_resolve_body(void)
{
	struct env e;
	struct sk_udp *u;
	uint8_t f[2048];
	int n;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 5000 }, false, &u), 0);
	/* Three datagrams to an unknown neighbour: one request, all parked. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER3, 6000 }, "abc", 3), 0);
	nx_stack_poll(e.st);
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 42);
	CHECK(!memcmp(f, mac_bc, 6));
	CHECK_EQ(nx_get16(f + 20), 1);
	CHECK_EQ(nx_get32(f + 38), PEER3);
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);

	/* The answer releases them, in order. */
	peer_send(&e, f, fr_arp(f, mac_us, mac_p3, 2, mac_p3, PEER3, mac_us, US));
	for (int i = 0; i < 3; i++) {
		n = peer_rx(&e, f, sizeof(f));
		CHECK_EQ(n, 14 + 20 + 8 + 3);
		CHECK(!memcmp(f, mac_p3, 6));
		CHECK_EQ(nx_get32(f + 30), PEER3);
	}
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);
	CHECK_EQ(e.st->stats.arp_resolved, 1);

	/* Then no more ARP: straight out. */
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER3, 6000 }, "d", 1), 0);
	nx_stack_poll(e.st);
	n = peer_rx(&e, f, sizeof(f));
	CHECK(n > 0 && !memcmp(f, mac_p3, 6) && nx_get16(f + 12) == NX_ETH_P_IP);

	/* Six parked for another one, four allowed: the two oldest go. */
	tun_save();
	nx_ip_tun.arp_pending = 4;
	for (int i = 0; i < 6; i++)
		CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0x0a000004, 6000 }, &i, 1), 0);
	CHECK_EQ(e.st->stats.arp_pending_dropped, 2);
	nx_stack_poll(e.st);
	CHECK_EQ(peer_drain(&e), 1);	/* one request */
	peer_send(&e, f, fr_arp(f, mac_us, mac_p3, 2, mac_p3, 0x0a000004, mac_us, US));
	for (int i = 2; i < 6; i++) {
		n = peer_rx(&e, f, sizeof(f));
		CHECK_EQ(n, 14 + 20 + 8 + 1);
		CHECK_EQ(f[42], i);
	}
	tun_restore();

	/* A 64 KiB datagram (45 fragments) waits whole for its neighbour. */
	static uint8_t big[65507];
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0x0a000005, 6000 }, big, 65507), 0);
	nx_stack_poll(e.st);
	CHECK_EQ(peer_drain(&e), 1);
	peer_send(&e, f, fr_arp(f, mac_us, mac_p3, 2, mac_p3, 0x0a000005, mac_us, US));
	CHECK_EQ(peer_drain(&e), 45);

	/* Parked packets are bounded over all addresses too (256). */
	uint64_t d0 = STAT(&e, arp_pending_dropped), p0 = pkts_outstanding();
	for (uint32_t a = 0; a < 6; a++)
		for (int i = 0; i < 64; i++)
			CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0x0a000010 + a, 6000 },
					     "z", 1), 0);
	CHECK_EQ(pkts_outstanding() - p0, 256 + 6);	/* + the requests */
	CHECK_EQ(STAT(&e, arp_pending_dropped) - d0, 6 * 64 - 256);
	udp_close(&e, u);
	env_down(&e);
}

SK_TEST(arp_resolve_parked)
{
	RUN1(arp_resolve_body);
}

/* Timed: unanswered requests are retried, then the parked packet goes. */
static struct env unres_env;
static unsigned unres_requests;

static unsigned count_requests(struct env *e, uint32_t tpa)
{
	uint8_t f[2048];
	unsigned k = 0;
	int n;

	while ((n = peer_rx(e, f, sizeof(f))) >= 0)
		if (n >= 42 && nx_get16(f + 12) == NX_ETH_P_ARP && nx_get16(f + 20) == 1 &&
		    nx_get32(f + 38) == tpa)
			k++;
	return k;
}

static sk_future unres_done(void *arg, int64_t v)
{
	struct env *e = arg;
	(void)v;
	nx_stack_poll(e->st);
	unres_requests += count_requests(e, PEER3);
	CHECK_EQ(unres_requests, 3);
	CHECK_EQ(e->st->stats.arp_requests_sent, 1 + 3);	/* + the announcement */
	CHECK_EQ(e->st->stats.arp_unresolved, 1);
	env_down(e);
	tun_restore();
	return sk_make_ready(0);
}

static sk_future unres_main(void *arg)
{
	struct env *e = &unres_env;
	struct sk_pkt *p;
	(void)arg;

	tun_save();
	nx_ip_tun.arp_retry_ns = 20 * SK_NSEC_PER_MSEC;
	CHECK(env_up(e, true));
	p = sk_pkt_alloc();
	memset(sk_pkt_append(p, 8), 0, 8);
	CHECK_EQ(nx_ip_output(e->st, p, PEER3, 253, false), 0);
	nx_stack_poll(e->st);
	unres_requests = count_requests(e, PEER3);
	CHECK_EQ(unres_requests, 1);
	return sk_future_then(sk_sleep(250 * SK_NSEC_PER_MSEC), unres_done, e);
}

SK_TEST(arp_unresolved_retries)
{
	CHECK_EQ(sk_test_run(1, unres_main, NULL), 0);
}

/* Timed: an expired entry is still used while it is asked again; the
 * answer makes it fresh. */
static struct env stale_env;

static sk_future stale_step(void *arg, int64_t v)
{
	struct env *e = arg;
	struct sk_udp *u;
	uint8_t f[2048];
	int n;
	(void)v;

	CHECK_EQ(nx_udp_bind(e->st, &(struct sk_sockaddr){ 0, 1 }, false, &u), 0);
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 2 }, "s", 1), 0);
	nx_stack_poll(e->st);
	n = peer_rx(e, f, sizeof(f));
	CHECK_EQ(n, 42);			/* the re-confirmation request */
	CHECK_EQ(nx_get32(f + 38), PEER);
	n = peer_rx(e, f, sizeof(f));
	CHECK_EQ(n, 43);			/* and the datagram, not parked */
	CHECK(!memcmp(f, mac_peer, 6));
	peer_send(e, f, fr_arp(f, mac_us, mac_peer, 2, mac_peer, PEER, mac_us, US));
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 2 }, "t", 1), 0);
	nx_stack_poll(e->st);
	CHECK_EQ(peer_drain(e), 1);		/* no request this time */
	nx_udp_close(u);
	env_down(e);
	tun_restore();
	return sk_make_ready(0);
}

static sk_future stale_main(void *arg)
{
	(void)arg;
	tun_save();
	nx_ip_tun.arp_reachable_ns = 30 * SK_NSEC_PER_MSEC;
	CHECK(env_up(&stale_env, true));
	return sk_future_then(sk_sleep(60 * SK_NSEC_PER_MSEC), stale_step, &stale_env);
}

SK_TEST(arp_stale_reconfirm)
{
	CHECK_EQ(sk_test_run(1, stale_main, NULL), 0);
}

/* --- IPv4 and ICMP ------------------------------------------------------- */

static void echo_body(void)
{
	struct env e;
	uint8_t f[2048], m[1600], pl[1500];
	int n;

	CHECK(env_up(&e, true));
	pattern(pl, sizeof(pl), 3);
	size_t sizes[] = { 0, 1, 37, 1001, 1472 };
	for (unsigned i = 0; i < 5; i++) {
		size_t ml = mk_echo(m, 0x1234, (uint16_t)i, pl, sizes[i]);
		peer_send(&e, f, mk_ip(f, PEER, US, 1, 77, 0, m, ml));
		n = peer_rx(&e, f, sizeof(f));
		CHECK_EQ(n, (int)(34 + ml));
		if (n != (int)(34 + ml))
			continue;
		CHECK(!memcmp(f, mac_peer, 6) && !memcmp(f + 6, mac_us, 6));
		const uint8_t *h = f + 14, *r = f + 34;
		CHECK_EQ(h[0], 0x45);
		CHECK_EQ(fr_fold(fr_sum(0, h, 20)), 0);
		CHECK_EQ(nx_get32(h + 12), US);
		CHECK_EQ(nx_get32(h + 16), PEER);
		CHECK_EQ(h[9], 1);
		CHECK_EQ(r[0], 0);
		CHECK_EQ(fr_fold(fr_sum(0, r, ml)), 0);
		CHECK_EQ(nx_get16(r + 4), 0x1234);
		CHECK_EQ(nx_get16(r + 6), i);
		if (memcmp(r + 8, pl, sizes[i]))
			for (size_t k = 0; k < sizes[i]; k++)
				if (r[8 + k] != pl[k]) {
					fprintf(stderr, "size %zu differs at %zu\n", sizes[i], k);
					break;
				}
		CHECK(!memcmp(r + 8, pl, sizes[i]));
	}
	CHECK_EQ(e.st->stats.icmp_echo_replies, 5);

	/* Ethernet padding past the IP total length is trimmed. */
	size_t ml = mk_echo(m, 9, 9, "ab", 2);
	size_t fl = mk_ip(f, PEER, US, 1, 78, 0, m, ml);
	memset(f + fl, 0xee, 60 - fl);
	peer_send(&e, f, 60);
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, (int)(34 + ml));
	CHECK_EQ(fr_fold(fr_sum(0, f + 34, ml)), 0);

	/* An echo to the subnet broadcast: ignored (no smurf amplifier). */
	peer_send(&e, f, mk_ip(f, PEER, 0x0a0000ff, 1, 79, 0, m, ml));
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);
	CHECK_EQ(e.st->stats.icmp_ignored, 1);
	env_down(&e);
}

SK_TEST(icmp_echo)
{
	RUN1(echo_body);
}

/* A 3000-byte ping in fragments: reassembled (past one pool buffer),
 * answered, and the answer fragmented on the way out. */
static void bigping_body(void)
{
	struct env e;
	static uint8_t m[3100], pl[3000], back[3100];
	uint8_t f[2048];
	size_t got = 0;
	int n;

	CHECK(env_up(&e, true));
	pattern(pl, sizeof(pl), 8);
	size_t ml = mk_echo(m, 0x77, 5, pl, 3000);
	for (size_t off = 0; off < ml; off += 1480) {
		size_t k = ml - off < 1480 ? ml - off : 1480;
		uint16_t fl = (uint16_t)(off / 8 | (off + k < ml ? 0x2000 : 0));
		peer_send(&e, f, mk_ip(f, PEER, US, 1, 4242, fl, m + off, k));
	}
	CHECK_EQ(STAT(&e, ip_reassembled), 1);
	CHECK_EQ(STAT(&e, icmp_echo_replies), 1);
	while ((n = peer_rx(&e, f, sizeof(f))) > 0) {
		const uint8_t *h = f + 14;
		uint32_t off = (nx_get16(h + 6) & 0x1fffu) * 8, k = nx_get16(h + 2) - 20u;
		CHECK_EQ(fr_fold(fr_sum(0, h, 20)), 0);
		CHECK_EQ(off, got);
		if (off + k <= sizeof(back))
			memcpy(back + off, h + 20, k);
		got += k;
	}
	CHECK_EQ(got, ml);
	CHECK_EQ(back[0], 0);
	CHECK_EQ(fr_fold(fr_sum(0, back, ml)), 0);
	CHECK(!memcmp(back + 4, m + 4, ml - 4));
	env_down(&e);
}

SK_TEST(icmp_echo_fragmented)
{
	RUN1(bigping_body);
}


/* Send frame @f (@n bytes): counter @c must move by one, nothing sent back. */
#define DROPPED(e, f, n, c)                                                    \
	do {                                                                   \
		uint64_t before_ = STAT(e, c);                                 \
		peer_send(e, f, n);                                            \
		CHECK_EQ(STAT(e, c), before_ + 1);                             \
		CHECK_EQ(peer_rx(e, f, sizeof(f)), -1);                        \
	} while (0)

static void drops_body(void)
{
	struct env e;
	uint8_t f[2048], m[64];
	size_t ml, n;

	CHECK(env_up(&e, true));
	ml = mk_echo(m, 1, 1, "hello", 5);

	/* Ethernet. */
	mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, 10, eth_short);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	memcpy(f, mac_p3, 6);
	DROPPED(&e, f, n, eth_not_ours);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	memcpy(f, (uint8_t[6]){ 0x01, 0x00, 0x5e, 0, 0, 1 }, 6);
	DROPPED(&e, f, n, eth_not_ours);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	nx_put16(f + 12, 0x86dd);
	DROPPED(&e, f, n, eth_unknown_type);

	/* IPv4 header. */
	mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, 14 + 12, ip_short);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	f[24] ^= 0x40;			/* TTL: checksum no longer matches */
	DROPPED(&e, f, n, ip_bad_csum);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	f[14] = 0x65;
	fix_ip_csum(f);
	DROPPED(&e, f, n, ip_bad_version);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	f[14] = 0x44;
	fix_ip_csum(f);
	DROPPED(&e, f, n, ip_bad_hlen);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	nx_put16(f + 16, 19);		/* total length shorter than the header */
	fix_ip_csum(f);
	DROPPED(&e, f, n, ip_bad_hlen);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	nx_put16(f + 16, (uint16_t)(20 + ml + 1));	/* past the frame */
	fix_ip_csum(f);
	DROPPED(&e, f, n, ip_bad_len);
	/* Truncated: IHL says 24 bytes of header, the frame has 20. */
	n = mk_ip(f, PEER, US, 1, 1, 0, m, 0);
	f[14] = 0x46;
	nx_put16(f + 16, 24);
	fix_ip_csum(f);
	DROPPED(&e, f, n, ip_bad_len);
	n = mk_ip(f, PEER, 0x0a000077, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_not_ours);
	n = mk_ip(f, PEER, 0xe0000001, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_not_ours);
	n = mk_ip(f, 0xe0000001, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_bad_src);
	n = mk_ip(f, 0x0a0000ff, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_bad_src);
	n = mk_ip(f, US, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_bad_src);
	n = mk_ip(f, 0x7f000001, US, 1, 1, 0, m, ml);
	DROPPED(&e, f, n, ip_bad_src);

	/* ICMP. */
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	f[34 + 9] ^= 1;			/* payload byte: checksum wrong */
	DROPPED(&e, f, n, icmp_bad);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, 4);	/* truncated header */
	DROPPED(&e, f, n, icmp_bad);
	n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
	f[34] = 13;			/* timestamp: not served */
	nx_put16(f + 36, 0);
	nx_put16(f + 36, fr_fold(fr_sum(0, f + 34, ml)));
	DROPPED(&e, f, n, icmp_ignored);

	/* Options are skipped: IHL 6 with a NOP option, echo answered. */
	{
		uint8_t g[128];
		memcpy(g, f, 14);
		n = mk_ip(f, PEER, US, 1, 1, 0, m, ml);
		memcpy(g, f, 34);
		g[14] = 0x46;
		nx_put16(g + 16, (uint16_t)(24 + ml));
		memset(g + 34, 1, 4);
		memcpy(g + 38, m, ml);
		fix_ip_csum(g);
		peer_send(&e, g, 38 + ml);
		int r = peer_rx(&e, f, sizeof(f));
		CHECK_EQ(r, (int)(34 + ml));
		CHECK_EQ(f[34], 0);
	}

	/* Unknown protocol: counted, and a protocol unreachable goes back. */
	n = mk_ip(f, PEER, US, 47, 99, 0, m, ml);
	peer_send(&e, f, n);
	CHECK_EQ(STAT(&e, ip_bad_proto), 1);
	int r = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(r, 34 + 8 + 20 + 8);
	CHECK_EQ(f[23], 1);
	CHECK_EQ(f[34], 3);
	CHECK_EQ(f[35], 2);
	CHECK_EQ(fr_fold(fr_sum(0, f + 34, 8 + 28)), 0);
	CHECK_EQ(nx_get16(f + 34 + 8 + 4), 99);	/* the original's id */

	/* Nothing here was counted twice: the drop counters add up. */
	uint64_t drops = 0;
#define ADD(x) drops += STAT(&e, x);
	ADD(eth_short) ADD(eth_not_ours) ADD(eth_unknown_type) ADD(ip_short)
	ADD(ip_bad_version) ADD(ip_bad_hlen) ADD(ip_bad_len) ADD(ip_bad_csum)
	ADD(ip_not_ours) ADD(ip_bad_src) ADD(icmp_bad) ADD(icmp_ignored) ADD(ip_bad_proto)
#undef ADD
	CHECK_EQ(drops, 21);
	env_down(&e);
}

SK_TEST(ip_icmp_drops)
{
	RUN1(drops_body);
}

/* --- fragments ----------------------------------------------------------- */

/* UDP datagram of @len payload bytes from the peer, cut into fragments of
 * @step IP payload bytes; frame i into fr[i], returns the count. */
static unsigned mk_frags(uint8_t fr[][1600], size_t *fl, uint16_t id, uint16_t dport,
			 const uint8_t *pl, size_t len, size_t step)
{
	static uint8_t dg[70000];
	size_t dl = mk_udp(dg, PEER, US, 4000, dport, pl, len);
	unsigned k = 0;

	for (size_t off = 0; off < dl; off += step, k++) {
		size_t n = dl - off < step ? dl - off : step;
		uint16_t fl16 = (uint16_t)(off / 8 | (off + n < dl ? 0x2000 : 0));
		fl[k] = mk_ip(fr[k], PEER, US, 17, id, fl16, dg + off, n);
	}
	return k;
}

static uint8_t frames[64][1600];
static size_t flens[64];

static void frag_body(void)
{
	struct env e;
	struct sk_udp *u;
	static uint8_t pl[6000];
	long r;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 7000 }, false, &u), 0);
	pattern(pl, sizeof(pl), 11);

	/* In order, out of order, reversed; small (one pool buffer) and
	 * larger than a buffer. */
	static const unsigned orders[3][5] = {
		{ 0, 1, 2, 3, 4 }, { 2, 0, 4, 1, 3 }, { 4, 3, 2, 1, 0 },
	};
	static const size_t lens[] = { 3000, 1000, 5000 };
	static const size_t steps[] = { 1480, 400, 1480 };
	for (unsigned t = 0; t < 3; t++) {
		unsigned k = mk_frags(frames, flens, (uint16_t)(100 + t), 7000, pl, lens[t],
				      steps[t]);
		CHECK(k >= 3 && k <= 5);
		unsigned sent = 0;
		for (unsigned i = 0; i < 5; i++) {
			if (orders[t][i] >= k)
				continue;
			CHECK_EQ(recv_now(&e, u), -EAGAIN);
			peer_send(&e, frames[orders[t][i]], flens[orders[t][i]]);
			sent++;
		}
		r = recv_now(&e, u);
		CHECK_EQ(r, (long)lens[t]);
		if (r == (long)lens[t]) {
			CHECK(!memcmp(e.d.data, pl, lens[t]));
			CHECK_EQ(e.d.from.ip, PEER);
			CHECK_EQ(e.d.from.port, 4000);
			nx_udp_release(u, &e.d);
		}
		CHECK_EQ(sent, k);
	}
	CHECK_EQ(STAT(&e, ip_reassembled), 3);
	CHECK_EQ(STAT(&e, ip_frag_dropped), 0);

	/* A duplicate fragment is dropped alone; the datagram completes. */
	unsigned k = mk_frags(frames, flens, 200, 7000, pl, 3000, 1480);
	peer_send(&e, frames[0], flens[0]);
	peer_send(&e, frames[0], flens[0]);
	peer_send(&e, frames[2], flens[2]);
	peer_send(&e, frames[2], flens[2]);
	peer_send(&e, frames[1], flens[1]);
	CHECK_EQ(k, 3);
	CHECK_EQ(STAT(&e, ip_frag_dropped), 2);
	r = recv_now(&e, u);
	CHECK_EQ(r, 3000);
	if (r == 3000) {
		CHECK(!memcmp(e.d.data, pl, 3000));
		nx_udp_release(u, &e.d);
	}

	/* An overlap that is not a duplicate drops the whole datagram. */
	k = mk_frags(frames, flens, 201, 7000, pl, 3000, 1480);
	peer_send(&e, frames[0], flens[0]);
	{
		/* Bytes 1472.. of the datagram at offset 1472: overlaps the
		 * first fragment's last 8 bytes. */
		static uint8_t dg[4000];
		size_t dl = mk_udp(dg, PEER, US, 4000, 7000, pl, 3000);
		uint8_t f[1600];
		size_t n = mk_ip(f, PEER, US, 17, 201, 0x2000 | (1472 / 8), dg + 1472, 800);
		(void)dl;
		peer_send(&e, f, n);
	}
	CHECK_EQ(STAT(&e, ip_frag_dropped), 2 + 2);
	peer_send(&e, frames[1], flens[1]);
	peer_send(&e, frames[2], flens[2]);
	CHECK_EQ(recv_now(&e, u), -EAGAIN);	/* never completes */

	/* Last fragments that disagree on the end: dropped. */
	k = mk_frags(frames, flens, 202, 7000, pl, 3000, 1480);
	peer_send(&e, frames[2], flens[2]);
	{
		uint8_t f[1600];
		memcpy(f, frames[2], flens[2]);
		nx_put16(f + 20, (uint16_t)((nx_get16(f + 20) & 0x1fff) + 1));
		fix_ip_csum(f);
		peer_send(&e, f, flens[2]);
	}
	CHECK_EQ(STAT(&e, ip_frag_dropped), 4 + 2);

	/* Past 64 KiB ("ping of death"), a middle piece not a multiple of
	 * 8, an empty fragment: each dropped. */
	{
		uint8_t f[1600], z[1500] = { 0 };
		uint64_t d0 = STAT(&e, ip_frag_dropped);
		peer_send(&e, f, mk_ip(f, PEER, US, 17, 300, 8189, z, 100));
		peer_send(&e, f, mk_ip(f, PEER, US, 17, 301, 0x2000, z, 100));
		peer_send(&e, f, mk_ip(f, PEER, US, 17, 302, 0x2001, z, 0));
		CHECK_EQ(STAT(&e, ip_frag_dropped), d0 + 3);
	}
	CHECK_EQ(recv_now(&e, u), -EAGAIN);
	udp_close(&e, u);
	env_down(&e);
}

SK_TEST(ip_reassembly)
{
	RUN1(frag_body);
}

static void flood_body(void)
{
	struct env e;
	struct sk_udp *u;
	static uint8_t pl[3000];
	uint8_t f[1600], z[1480];
	long r;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 7000 }, false, &u), 0);
	memset(z, 0x5a, sizeof(z));
	/* 10,000 first fragments that never complete. */
	uint64_t peak = 0;
	for (unsigned i = 0; i < 10000; i++) {
		peer_tx(&e, f, mk_ip(f, PEER, US, 17, (uint16_t)i, 0x2000, z,
				     8 * (1 + i % 185)));
		if (i % 32 == 31) {
			nx_stack_poll(e.st);
			uint64_t o = pkts_outstanding() - e.pkts0;
			if (o > peak)
				peak = o;
		}
	}
	nx_stack_poll(e.st);
	CHECK_EQ(STAT(&e, ip_frags), 10000);
	CHECK(STAT(&e, ip_frag_dropped) >= 10000 - 64);
	/* At most 64 datagrams of one fragment each are held. */
	CHECK(peak <= 64 + 40);

	/* One datagram of many tiny fragments: past the per-datagram
	 * limit, it is dropped whole. */
	uint64_t d0 = STAT(&e, ip_frag_dropped);
	for (unsigned i = 0; i < 100; i++)
		peer_send(&e, f, mk_ip(f, PEER, US, 17, 5000, (uint16_t)(0x2000 | i), z, 8));
	CHECK(STAT(&e, ip_frag_dropped) - d0 >= 64);

	/* Still working afterwards. */
	pattern(pl, sizeof(pl), 5);
	unsigned k = mk_frags(frames, flens, 60000, 7000, pl, 3000, 1480);
	for (unsigned i = 0; i < k; i++)
		peer_send(&e, frames[i], flens[i]);
	r = recv_now(&e, u);
	CHECK_EQ(r, 3000);
	if (r == 3000)
		nx_udp_release(u, &e.d);
	udp_close(&e, u);
	env_down(&e);
}

SK_TEST(ip_fragment_flood)
{
	RUN1(flood_body);
}

/* The byte bound, with a small budget so that it is reached first. */
static void fragmem_body(void)
{
	struct env e;
	uint8_t f[1600], z[1480] = { 0 };

	tun_save();
	nx_ip_tun.frag_mem = 16 * (SK_PKT_HEADROOM + SK_PKT_DATAROOM);
	CHECK(env_up(&e, true));
	for (unsigned i = 0; i < 40; i++) {
		peer_send(&e, f, mk_ip(f, PEER, US, 17, (uint16_t)(900 + i), 0x2000, z, 1480));
		CHECK(pkts_outstanding() - e.pkts0 <= 16);
	}
	CHECK_EQ(STAT(&e, ip_frag_dropped), 40 - 16);
	env_down(&e);
	tun_restore();
}

SK_TEST(ip_fragment_memory_bound)
{
	RUN1(fragmem_body);
}

/* Timed: fragments of a datagram that never completes expire. */
static struct env fto_env;
static struct sk_udp *fto_udp;

static sk_future fto_done(void *arg, int64_t v)
{
	struct env *e = arg;
	(void)v;
	CHECK_EQ(e->st->stats.ip_frag_timeout, 2);
	CHECK_EQ(pkts_outstanding(), e->pkts0 + 0);
	/* The missing piece now starts a new datagram: nothing delivered. */
	peer_send(e, frames[1], flens[1]);
	CHECK_EQ(recv_now(e, fto_udp), -EAGAIN);
	udp_close(e, fto_udp);
	env_down(e);
	tun_restore();
	return sk_make_ready(0);
}

static sk_future fto_main(void *arg)
{
	struct env *e = &fto_env;
	static uint8_t pl[3000];
	(void)arg;

	tun_save();
	nx_ip_tun.frag_timeout_ns = 50 * SK_NSEC_PER_MSEC;
	CHECK(env_up(e, true));
	CHECK_EQ(nx_udp_bind(e->st, &(struct sk_sockaddr){ 0, 7000 }, false, &fto_udp), 0);
	pattern(pl, sizeof(pl), 1);
	mk_frags(frames, flens, 77, 7000, pl, 3000, 1480);
	peer_send(e, frames[0], flens[0]);
	peer_send(e, frames[2], flens[2]);
	CHECK_EQ(recv_now(e, fto_udp), -EAGAIN);
	return sk_future_then(sk_sleep(150 * SK_NSEC_PER_MSEC), fto_done, e);
}

SK_TEST(ip_fragment_timeout)
{
	CHECK_EQ(sk_test_run(1, fto_main, NULL), 0);
}

/* --- UDP ----------------------------------------------------------------- */

static void udp_body(void)
{
	struct env e;
	struct sk_udp *u, *u2, *u3;
	struct sk_sockaddr a;
	uint8_t f[2048], d[1600], pl[1000];
	long r;
	int n;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 53 }, false, &u), 0);
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 53 }, true, &u2), -EADDRINUSE);
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0x0a000063, 54 }, false, &u2),
		 -EADDRNOTAVAIL);
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ US, 0 }, false, &u2), 0);
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 0 }, false, &u3), 0);
	nx_udp_addr(u2, &a);
	CHECK_EQ(a.ip, US);
	CHECK(a.port >= 49152);
	nx_udp_addr(u3, &a);
	CHECK(a.port >= 49152);
	nx_udp_addr(u2, &a);
	struct sk_sockaddr a3;
	nx_udp_addr(u3, &a3);
	CHECK(a.port != a3.port);
	nx_udp_close(u3);

	/* Echo: receive pending first, then the datagram. */
	pattern(pl, sizeof(pl), 9);
	CHECK_EQ(recv_now(&e, u), -EAGAIN);
	peer_send(&e, f, mk_ip(f, PEER, US, 17, 1, 0, d, mk_udp(d, PEER, US, 3333, 53, pl, 100)));
	r = recv_now(&e, u);
	CHECK_EQ(r, 100);
	CHECK(!memcmp(e.d.data, pl, 100));
	CHECK_EQ(e.d.from.ip, PEER);
	CHECK_EQ(e.d.from.port, 3333);
	CHECK_EQ(nx_udp_send(u, &e.d.from, e.d.data, e.d.len), 0);
	nx_udp_release(u, &e.d);
	nx_stack_poll(e.st);
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 14 + 20 + 8 + 100);
	CHECK(!memcmp(f, mac_peer, 6));
	CHECK_EQ(fr_fold(fr_sum(0, f + 14, 20)), 0);
	CHECK_EQ(f[23], 17);
	CHECK_EQ(nx_get32(f + 26), US);
	CHECK_EQ(nx_get32(f + 30), PEER);
	CHECK_EQ(nx_get16(f + 34), 53);
	CHECK_EQ(nx_get16(f + 36), 3333);
	CHECK_EQ(nx_get16(f + 38), 108);
	CHECK_EQ(fr_fold(fr_sum(fr_pseudo(US, PEER, 17, 108), f + 34, 108)), 0);
	CHECK(!memcmp(f + 42, pl, 100));
	CHECK_EQ(STAT(&e, udp_tx), 1);

	/* Queued before the receive; odd length; zero checksum accepted. */
	size_t ul = mk_udp(d, PEER, US, 3334, 53, pl, 7);
	peer_send(&e, f, mk_ip(f, PEER, US, 17, 2, 0, d, ul));
	ul = mk_udp(d, PEER, US, 3335, 53, pl, 0);
	nx_put16(d + 6, 0);
	peer_send(&e, f, mk_ip(f, PEER, US, 17, 3, 0, d, ul));
	r = recv_now(&e, u);
	CHECK_EQ(r, 7);
	CHECK_EQ(e.d.from.port, 3334);
	nx_udp_release(u, &e.d);
	r = recv_now(&e, u);
	CHECK_EQ(r, 0);
	CHECK_EQ(e.d.from.port, 3335);
	nx_udp_release(u, &e.d);

	/* Bad checksum, bad lengths, truncated header. */
	ul = mk_udp(d, PEER, US, 3336, 53, pl, 10);
	d[12] ^= 0x80;
	n = (int)mk_ip(f, PEER, US, 17, 4, 0, d, ul);
	DROPPED(&e, f, (size_t)n, udp_bad_csum);
	ul = mk_udp(d, PEER, US, 3336, 53, pl, 10);
	nx_put16(d + 4, (uint16_t)(ul + 1));
	n = (int)mk_ip(f, PEER, US, 17, 5, 0, d, ul);
	DROPPED(&e, f, (size_t)n, udp_bad_len);
	ul = mk_udp(d, PEER, US, 3336, 53, pl, 10);
	nx_put16(d + 4, 7);
	n = (int)mk_ip(f, PEER, US, 17, 6, 0, d, ul);
	DROPPED(&e, f, (size_t)n, udp_bad_len);
	n = (int)mk_ip(f, PEER, US, 17, 7, 0, d, 6);
	DROPPED(&e, f, (size_t)n, udp_short);
	CHECK_EQ(recv_now(&e, u), -EAGAIN);

	/* A UDP length shorter than the IP payload: trimmed to it. */
	ul = mk_udp(d, PEER, US, 3337, 53, pl, 10);
	n = (int)mk_ip(f, PEER, US, 17, 8, 0, d, ul + 6);
	peer_send(&e, f, (size_t)n);
	r = recv_now(&e, u);
	CHECK_EQ(r, 10);
	if (r == 10)
		nx_udp_release(u, &e.d);

	/* Closed port: ICMP port unreachable with the original header. */
	ul = mk_udp(d, PEER, US, 3338, 999, pl, 20);
	peer_send(&e, f, mk_ip(f, PEER, US, 17, 0x4242, 0, d, ul));
	CHECK_EQ(STAT(&e, udp_no_port), 1);
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 34 + 8 + 28);
	CHECK_EQ(f[23], 1);
	CHECK_EQ(f[34], 3);
	CHECK_EQ(f[35], 3);
	CHECK_EQ(fr_fold(fr_sum(0, f + 34, 36)), 0);
	CHECK_EQ(nx_get16(f + 42 + 4), 0x4242);
	CHECK_EQ(nx_get16(f + 42 + 20 + 2), 999);
	/* ... but not about a broadcast. */
	ul = mk_udp(d, PEER, 0xffffffff, 3338, 999, pl, 20);
	peer_send(&e, f, mk_ip(f, PEER, 0xffffffff, 17, 0x4243, 0, d, ul));
	CHECK_EQ(STAT(&e, udp_no_port), 2);
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);

	/* The receive queue is bounded. */
	for (unsigned i = 0; i < 300; i++) {
		peer_tx(&e, f, mk_ip(f, PEER, US, 17, (uint16_t)i, 0, d,
				     mk_udp(d, PEER, US, 3339, 53, &i, sizeof(i))));
		if (i % 32 == 31)
			nx_stack_poll(e.st);
	}
	nx_stack_poll(e.st);
	CHECK_EQ(STAT(&e, udp_queue_full), 300 - 256);
	for (unsigned i = 0; i < 10; i++) {
		r = recv_now(&e, u);
		CHECK_EQ(r, (long)sizeof(i));
		if (r == (long)sizeof(i)) {
			unsigned v;
			memcpy(&v, e.d.data, sizeof(v));
			CHECK_EQ(v, i);
			nx_udp_release(u, &e.d);
		}
	}

	/* Send limits. */
	static uint8_t big[65508];
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 1 }, big, 65508), -EMSGSIZE);
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0, 1 }, big, 1), -EINVAL);

	/* To ourselves: delivered like lo, large ones too. */
	CHECK_EQ(nx_udp_send(u2, &(struct sk_sockaddr){ US, 53 }, pl, 5), 0);
	nx_stack_poll(e.st);
	CHECK_EQ(STAT(&e, local_delivered), 1);
	udp_close(&e, u);	/* 246 queued ones are freed */
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 53 }, false, &u), 0);
	CHECK_EQ(nx_udp_send(u2, &(struct sk_sockaddr){ US, 53 }, big, 30000), 0);
	pattern(big, 20000, 4);
	CHECK_EQ(nx_udp_send(u2, &(struct sk_sockaddr){ US, 53 }, big, 20000), 0);
	nx_stack_poll(e.st);
	r = recv_now(&e, u);
	CHECK_EQ(r, 30000);
	if (r > 0)
		nx_udp_release(u, &e.d);
	r = recv_now(&e, u);
	CHECK_EQ(r, 20000);
	if (r == 20000) {
		CHECK(!memcmp(e.d.data, big, 20000));
		nx_udp_addr(u2, &a);
		CHECK_EQ(e.d.from.port, a.port);
		CHECK_EQ(e.d.from.ip, US);
		nx_udp_release(u, &e.d);
	}
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);	/* nothing on the wire */

	/* Close with a receive pending: -ECANCELED (checked in udp_close). */
	CHECK_EQ(recv_now(&e, u), -EAGAIN);
	udp_close(&e, u);
	nx_udp_close(u2);
	env_down(&e);
}

SK_TEST(udp_sockets)
{
	RUN1(udp_body);
}

/* A device that takes no more: sends say -EAGAIN (socket.h), and every
 * send that said 0 reaches the wire - none is dropped unseen. */
static void udp_full_body(void)
{
	struct env e;
	struct sk_udp *u;
	unsigned ok = 0, again = 0, seen;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 1234 }, false, &u), 0);
	for (int i = 0; i < 3000; i++) {
		int r = nx_udp_send(u, &(struct sk_sockaddr){ PEER, 4321 }, "x", 1);
		if (r == 0)
			ok++;
		else if (r == -EAGAIN)
			again++;
		else
			CHECK_EQ(r, 0);
	}
	CHECK(again > 0);
	CHECK(ok >= 1024);	/* the loop ring's depth at least */
	seen = peer_drain(&e);
	nx_stack_poll(e.st);	/* what waited in the stack goes out now */
	seen += peer_drain(&e);
	CHECK_EQ(seen, ok);
	CHECK_EQ(e.st->stats.tx_dropped, 0);
	/* Room again once the peer read: sending works. */
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 4321 }, "y", 1), 0);
	nx_udp_close(u);
	env_down(&e);
}

SK_TEST(udp_send_says_eagain_when_the_device_is_full)
{
	RUN1(udp_full_body);
}

static void fragout_body(void)
{
	struct env e;
	struct sk_udp *u;
	static uint8_t pl[4000], dg[4100];
	uint8_t f[2048];
	int n;
	size_t got = 0;
	unsigned nf = 0;
	uint16_t id = 0;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 1234 }, false, &u), 0);
	pattern(pl, sizeof(pl), 21);
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 4321 }, pl, 4000), 0);
	nx_stack_poll(e.st);
	while ((n = peer_rx(&e, f, sizeof(f))) >= 0) {
		const uint8_t *h = f + 14;
		CHECK(n <= 14 + 1500);
		CHECK_EQ(fr_fold(fr_sum(0, h, 20)), 0);
		CHECK_EQ(h[9], 17);
		uint16_t fl = nx_get16(h + 6), tl = nx_get16(h + 2);
		if (nf == 0)
			id = nx_get16(h + 4);
		CHECK_EQ(nx_get16(h + 4), id);
		uint32_t off = (fl & 0x1fffu) * 8;
		CHECK_EQ(off, got);
		CHECK_EQ(!!(fl & 0x2000), nf < 2);
		CHECK(!(fl & 0x4000));
		if (off + tl - 20 <= sizeof(dg))
			memcpy(dg + off, h + 20, tl - 20u);
		got += tl - 20u;
		nf++;
	}
	CHECK_EQ(nf, 3);
	CHECK_EQ(got, 4008);
	CHECK_EQ(STAT(&e, ip_frags_sent), 3);
	CHECK_EQ(nx_get16(dg + 4), 4008);
	CHECK_EQ(fr_fold(fr_sum(fr_pseudo(US, PEER, 17, 4008), dg, 4008)), 0);
	CHECK(!memcmp(dg + 8, pl, 4000));

	/* With DF, past the MTU: refused. */
	struct sk_pkt *p = nx_pkt_linear(3000);
	memset(sk_pkt_append(p, 3000), 0, 3000);
	CHECK_EQ(nx_ip_output(e.st, p, PEER, 17, true), -EMSGSIZE);
	/* The largest datagram goes out in 45 fragments (ARP is known). */
	static uint8_t big[65507];
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ PEER, 4321 }, big, 65507), 0);
	nx_stack_poll(e.st);
	CHECK_EQ(peer_drain(&e), 45);
	udp_close(&e, u);
	env_down(&e);
}

SK_TEST(ip_output_fragments)
{
	RUN1(fragout_body);
}

static void gw_body(void)
{
	struct env e;
	struct sk_udp *u;
	uint8_t f[2048];
	int n;

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 1234 }, false, &u), 0);
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ FAR, 53 }, "q", 1), 0);
	nx_stack_poll(e.st);
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 42);
	CHECK_EQ(nx_get16(f + 12), NX_ETH_P_ARP);
	CHECK_EQ(nx_get32(f + 38), GW);
	peer_send(&e, f, fr_arp(f, mac_us, mac_gw, 2, mac_gw, GW, mac_us, US));
	n = peer_rx(&e, f, sizeof(f));
	CHECK_EQ(n, 14 + 20 + 8 + 1);
	CHECK(!memcmp(f, mac_gw, 6));
	CHECK_EQ(nx_get32(f + 30), FAR);

	/* Subnet broadcast and limited broadcast: Ethernet broadcast. */
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0x0a0000ff, 53 }, "b", 1), 0);
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ 0xffffffff, 53 }, "b", 1), 0);
	nx_stack_poll(e.st);
	for (int i = 0; i < 2; i++) {
		n = peer_rx(&e, f, sizeof(f));
		CHECK_EQ(n, 43);
		CHECK(!memcmp(f, mac_bc, 6));
	}

	/* Without a gateway: no route. */
	e.st->gw = 0;
	CHECK_EQ(nx_udp_send(u, &(struct sk_sockaddr){ FAR, 53 }, "q", 1), -ENETUNREACH);
	CHECK_EQ(STAT(&e, ip_no_route), 1);
	nx_stack_poll(e.st);
	CHECK_EQ(peer_rx(&e, f, sizeof(f)), -1);
	udp_close(&e, u);
	env_down(&e);
}

SK_TEST(ip_route_gateway)
{
	RUN1(gw_body);
}

/* --- fuzz ---------------------------------------------------------------- */

static uint32_t fz;
static uint32_t fuzz_rand(void)
{
	fz ^= fz << 13;
	fz ^= fz >> 17;
	fz ^= fz << 5;
	return fz;
}

/* 10,000 frames from a seed: ARP, echo, UDP, fragments of a few
 * datagrams, other protocols and raw bytes, each maybe bit-flipped, cut or
 * extended.  Nothing may crash or leak, and the counters must add up. */
static void fuzz_one(uint32_t seed)
{
	struct env e;
	struct sk_udp *u;
	uint8_t f[1600], d[1600], pl[1500];

	CHECK(env_up(&e, true));
	CHECK_EQ(nx_udp_bind(e.st, &(struct sk_sockaddr){ 0, 7000 }, false, &u), 0);
	fz = seed;
	pattern(pl, sizeof(pl), 0);
	struct nx_stats s0 = e.st->stats;
	for (unsigned i = 0; i < 10000; i++) {
		size_t n;
		uint32_t r = fuzz_rand();
		size_t plen = fuzz_rand() % 1400;
		switch (r % 6) {
		case 0:
			n = fr_arp(f, mac_bc, mac_peer, 1 + (r >> 8) % 2, mac_peer, PEER,
				   mac_zero, US);
			break;
		case 1:
			n = mk_ip(f, PEER, US, 1, (uint16_t)i, 0, d,
				  mk_echo(d, 1, (uint16_t)i, pl, plen));
			break;
		case 2:
			n = mk_ip(f, PEER, US, 17, (uint16_t)i, 0, d,
				  mk_udp(d, PEER, US, 1, 7000, pl, plen));
			break;
		case 3:
			/* A fragment of a few datagrams: some complete. */
			n = mk_ip(f, PEER, US, 17, (uint16_t)(r >> 24 & 7),
				  (uint16_t)(((r >> 8) & 1 ? 0x2000 : 0) | ((r >> 9) & 3) * 185),
				  pl, 1480);
			break;
		case 4:
			n = mk_ip(f, PEER, US, (uint8_t)(r >> 8), (uint16_t)i, 0, pl, plen);
			break;
		default:
			n = 14 + plen;
			for (size_t k = 0; k < n; k++)
				f[k] = (uint8_t)fuzz_rand();
			if (r & 0x100)
				memcpy(f, mac_us, 6);
			if (r & 0x200)
				nx_put16(f + 12, (r & 0x400) ? NX_ETH_P_IP : NX_ETH_P_ARP);
			break;
		}
		/* Mutate: flip a few bytes, cut or extend. */
		unsigned flips = fuzz_rand() % 4;
		for (unsigned k = 0; k < flips; k++)
			f[fuzz_rand() % n] ^= (uint8_t)(1u << (fuzz_rand() % 8));
		uint32_t cut = fuzz_rand();
		if (cut % 8 == 0)
			n = cut / 8 % (n + 1);
		else if (cut % 8 == 1 && n + 40 <= sizeof(f))
			n += 40;
		if (n == 0)
			n = 1;
		peer_tx(&e, f, n);
		if (i % 32 == 31) {
			nx_stack_poll(e.st);
			peer_drain(&e);
		}
		if (i % 500 == 499) {
			long got;
			while ((got = recv_now(&e, u)) >= 0)
				nx_udp_release(u, &e.d);
			CHECK_EQ(got, -EAGAIN);
		}
	}
	nx_stack_poll(e.st);
	peer_drain(&e);
	struct nx_stats *s = &e.st->stats;
	CHECK_EQ(s->rx_frames - s0.rx_frames, 10000);
	CHECK(s->arp_rx > s0.arp_rx);
	CHECK(s->icmp_echo_replies > 0);
	CHECK(s->udp_rx > 0);
	CHECK(s->ip_bad_csum > 0);
	CHECK(s->eth_not_ours + s->eth_unknown_type + s->eth_short > 0);
	CHECK(s->ip_frags > 0);
	CHECK(s->ip_reassembled > 0);
	/* Every frame met exactly one fate at each layer. */
	CHECK_EQ(s->rx_frames, s->eth_short + s->eth_not_ours + s->eth_unknown_type +
				       s->arp_rx + s->ip_rx);
	CHECK_EQ(s->ip_rx, s->ip_short + s->ip_bad_version + s->ip_bad_hlen + s->ip_bad_len +
				   s->ip_bad_csum + s->ip_not_ours + s->ip_bad_src +
				   s->ip_bad_proto + s->ip_frags + s->icmp_rx + s->udp_rx +
				   s->tcp_rx - s->ip_reassembled);
	CHECK_EQ(s->icmp_rx, s->icmp_bad + s->icmp_ignored + s->icmp_echo_replies);
	CHECK(s->udp_rx >= s->udp_short + s->udp_bad_len + s->udp_bad_csum + s->udp_no_port +
				   s->udp_queue_full);
	udp_close(&e, u);
	env_down(&e);
}

static void fuzz_body(void)
{
	static const uint32_t seeds[] = { 0x9e3779b9, 1, 0xdeadbeef, 12345 };
	for (unsigned i = 0; i < 4; i++)
		fuzz_one(seeds[i]);
}

SK_TEST(fuzz_frames)
{
	RUN1(fuzz_body);
}
