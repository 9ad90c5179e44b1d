/*
 * test_netdev.c - packet buffers, the RSS hash and the drivers under the
 * native stack: the pool (reuse without allocating, frees on another
 * shard), chains (pullup, copy_out, trim, copy), wrapped buffers and
 * reference counts; Toeplitz against Microsoft's verification suite; the
 * loop pair (steering by hash, two shards with a sleeping receiver woken
 * by the sender, full rings, loop_self); the fault decorator (rates over
 * many packets, determinism, delays through next_event, parsing); and the
 * tap driver in a private network namespace (ARP and ICMP echo with the
 * kernel), skipped when the process may not create one.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sk_frames.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/netdev.h"
#include "skerry/pkt.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

/* --- frame helpers ------------------------------------------------------ */

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	return (uint32_t)a << 24 | b << 16 | c << 8 | d;
}

static const uint8_t mac_a[6] = { 0x02, 0, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x02, 0, 0, 0, 0, 0xb };

/*
 * An Ethernet + IPv4 frame with @proto and @plen payload bytes after the
 * ports (for TCP/UDP: an 8-byte pseudo-UDP header); the payload carries
 * @tag so that frames can be told apart.
 */
static struct sk_pkt *mk_ip(uint8_t proto, uint32_t src, uint32_t dst,
			    uint16_t sport, uint16_t dport, uint32_t plen,
			    uint32_t tag, uint16_t frag)
{
	struct sk_pkt *p = sk_pkt_alloc();
	if (!p)
		return NULL;
	uint32_t total = 20 + 8 + plen;
	uint8_t *f = sk_pkt_append(p, 14 + total);
	memcpy(f, mac_b, 6);
	memcpy(f + 6, mac_a, 6);
	fr_put16(f + 12, 0x0800);
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	fr_put16(ip + 2, total);
	fr_put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = proto;
	fr_put32(ip + 12, src);
	fr_put32(ip + 16, dst);
	fr_put16(ip + 10, fr_fold(fr_sum(0, ip, 20)));
	uint8_t *l4 = ip + 20;
	fr_put16(l4, sport);
	fr_put16(l4 + 2, dport);
	fr_put16(l4 + 4, 8 + plen);
	fr_put16(l4 + 6, 0);
	for (uint32_t i = 0; i < plen; i++)
		l4[8 + i] = (uint8_t)(tag * 7 + i);
	if (plen >= 4)
		fr_put32(l4 + 8, tag);
	return p;
}

static struct sk_pkt *mk_udp(uint32_t src, uint32_t dst, uint16_t sport,
			     uint16_t dport, uint32_t plen, uint32_t tag)
{
	return mk_ip(17, src, dst, sport, dport, plen, tag, 0);
}

/* The tag of a frame made by mk_ip (payload of at least 4 bytes). */
static uint32_t tag_of(const struct sk_pkt *p)
{
	uint8_t b[4];
	if (sk_pkt_copy_out(p, 14 + 28, 4, b))
		return UINT32_MAX;
	return fr_get32(b);
}

/* True when the payload bytes after the tag are what mk_ip wrote. */
static bool payload_ok(const struct sk_pkt *p)
{
	uint8_t buf[2048];
	uint32_t plen = p->pkt_len - 42, tag = tag_of(p);
	if (p->pkt_len > sizeof(buf) || sk_pkt_copy_out(p, 0, p->pkt_len, buf))
		return false;
	for (uint32_t i = 4; i < plen; i++)
		if (buf[42 + i] != (uint8_t)(tag * 7 + i))
			return false;
	return true;
}

/* --- pkt ---------------------------------------------------------------- */

static struct sk_mem_stats mem_before, mem_after;
static bool pool_same_block;
static struct sk_pkt_stats pool_stats;

static sk_future pool_main(void *arg)
{
	struct sk_pkt *v[256];
	(void)arg;
	/* Warm the free list. */
	for (unsigned i = 0; i < 256; i++)
		v[i] = sk_pkt_alloc();
	for (unsigned i = 0; i < 256; i++)
		sk_pkt_free(v[i]);
	sk_mem_stats(0, &mem_before);
	for (unsigned round = 0; round < 100; round++) {
		for (unsigned i = 0; i < 256; i++) {
			v[i] = sk_pkt_alloc();
			if (!v[i])
				return sk_make_error(-ENOMEM);
			sk_pkt_append(v[i], 100)[0] = (uint8_t)i;
		}
		for (unsigned i = 0; i < 256; i++)
			sk_pkt_free(v[i]);
	}
	sk_mem_stats(0, &mem_after);
	struct sk_pkt *p = sk_pkt_alloc();
	sk_pkt_free(p);
	struct sk_pkt *q = sk_pkt_alloc();
	pool_same_block = p == q;
	sk_pkt_free(q);
	sk_pkt_stats(&pool_stats);
	return sk_make_ready(0);
}

SK_TEST(pkt_pool_reuses_buffers_without_allocating_once_warm)
{
	CHECK_EQ(sk_test_run(1, pool_main, NULL), 0);
	CHECK_EQ(mem_after.allocs - mem_before.allocs, 0);
	CHECK(pool_same_block);
	CHECK(pool_stats.allocs >= 256 * 101);
	CHECK_EQ(pool_stats.allocs, pool_stats.frees);
	CHECK(pool_stats.cached >= 256);
}

SK_TEST(pkt_fresh_buffer_layout_and_prepend_append_adj)
{
	struct sk_pkt *p = sk_pkt_alloc();
	CHECK(p != NULL);
	CHECK_EQ(sk_pkt_headroom(p), SK_PKT_HEADROOM);
	CHECK_EQ(sk_pkt_tailroom(p), SK_PKT_DATAROOM);
	CHECK_EQ(p->len, 0);
	CHECK_EQ(p->refcnt, 1);
	CHECK_EQ(p->nsegs, 1);
	CHECK(sk_pkt_append(p, SK_PKT_DATAROOM + 1) == NULL);
	CHECK_EQ(p->len, 0);	/* a refusal changes nothing */
	memset(sk_pkt_append(p, 100), 0x5a, 100);
	CHECK(sk_pkt_prepend(p, SK_PKT_HEADROOM + 1) == NULL);
	uint8_t *h = sk_pkt_prepend(p, 14);
	CHECK(h != NULL);
	CHECK_EQ(p->pkt_len, 114);
	CHECK_EQ(sk_pkt_adj(p, 14)[0], 0x5a);
	CHECK_EQ(p->pkt_len, 100);
	sk_pkt_free(p);
}

/* A segment wrapping a static buffer, counted when released. */
static unsigned ext_calls[8];
static void ext_count(struct sk_pkt *p, void *arg)
{
	(void)p;
	ext_calls[(uintptr_t)arg]++;
}

static uint8_t segbuf[4][6000];

/* head (pool, @a bytes) -> wrapped segments of @b and @c bytes; byte i
 * of the packet is (uint8_t)(i * 3). */
static struct sk_pkt *mk_chain(uint32_t a, uint32_t b, uint32_t c)
{
	struct sk_pkt *h = sk_pkt_alloc();
	uint8_t *d = sk_pkt_append(h, a);
	for (uint32_t i = 0; i < a; i++)
		d[i] = (uint8_t)(i * 3);
	for (uint32_t i = 0; i < b; i++)
		segbuf[1][i] = (uint8_t)((a + i) * 3);
	for (uint32_t i = 0; i < c; i++)
		segbuf[2][i] = (uint8_t)((a + b + i) * 3);
	h->next = sk_pkt_wrap(segbuf[1], sizeof(segbuf[1]), segbuf[1], b, ext_count,
			      (void *)1);
	h->next->next = sk_pkt_wrap(segbuf[2], sizeof(segbuf[2]), segbuf[2], c,
				    ext_count, (void *)2);
	h->pkt_len = a + b + c;
	h->nsegs = 3;
	return h;
}

static bool bytes_ok(const uint8_t *d, uint32_t off, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (d[i] != (uint8_t)((off + i) * 3))
			return false;
	return true;
}

SK_TEST(pkt_chain_copy_out_pullup_trim_and_copy)
{
	uint8_t out[200];
	memset(ext_calls, 0, sizeof(ext_calls));
	struct sk_pkt *p = mk_chain(10, 100, 50);

	CHECK_EQ(sk_pkt_copy_out(p, 0, 160, out), 0);
	CHECK(bytes_ok(out, 0, 160));
	CHECK_EQ(sk_pkt_copy_out(p, 105, 30, out), 0);	/* across a boundary */
	CHECK(bytes_ok(out, 105, 30));
	CHECK_EQ(sk_pkt_copy_out(p, 150, 11, out), -EINVAL);
	CHECK_EQ(sk_pkt_copy_out(p, 161, 0, out), -EINVAL);
	CHECK_EQ(sk_pkt_copy_out(p, 160, 0, out), 0);

	/* Pullup within the second segment, then across all of it. */
	CHECK(sk_pkt_pullup(p, 161) == NULL);
	uint8_t *d = sk_pkt_pullup(p, 40);
	CHECK(d == p->data);
	CHECK_EQ(p->len, 40);
	CHECK(bytes_ok(d, 0, 40));
	CHECK_EQ(p->nsegs, 3);
	CHECK_EQ(p->pkt_len, 160);
	d = sk_pkt_pullup(p, 120);
	CHECK(d != NULL);
	CHECK(bytes_ok(d, 0, 120));
	CHECK_EQ(p->nsegs, 2);		/* the second segment was used up */
	CHECK_EQ(ext_calls[1], 1);
	CHECK_EQ(p->next->len, 40);
	CHECK_EQ(sk_pkt_copy_out(p, 0, 160, out), 0);
	CHECK(bytes_ok(out, 0, 160));

	/* Trim into the head: the tail segment goes. */
	sk_pkt_trim(p, 100);
	CHECK_EQ(p->pkt_len, 100);
	CHECK_EQ(p->nsegs, 1);
	CHECK(p->next == NULL);
	CHECK_EQ(ext_calls[2], 1);
	sk_pkt_trim(p, 500);		/* longer: no change */
	CHECK_EQ(p->pkt_len, 100);
	sk_pkt_free(p);

	/* Trim in the middle segment keeps it, cut. */
	memset(ext_calls, 0, sizeof(ext_calls));
	p = mk_chain(10, 100, 50);
	sk_pkt_trim(p, 60);
	CHECK_EQ(p->nsegs, 2);
	CHECK_EQ(p->next->len, 50);
	CHECK_EQ(ext_calls[2], 1);
	CHECK_EQ(ext_calls[1], 0);
	sk_pkt_trim(p, 0);
	CHECK_EQ(p->pkt_len, 0);
	CHECK_EQ(p->len, 0);
	CHECK_EQ(ext_calls[1], 1);
	sk_pkt_free(p);

	/* Copy: flat when it fits, chained beyond the data room. */
	p = mk_chain(10, 100, 50);
	struct sk_pkt *c = sk_pkt_copy(p);
	CHECK(c != NULL);
	CHECK_EQ(c->nsegs, 1);
	CHECK_EQ(c->pkt_len, 160);
	CHECK(bytes_ok(c->data, 0, 160));
	sk_pkt_free(c);
	sk_pkt_free(p);
	p = mk_chain(1000, 3000, 1500);
	c = sk_pkt_copy(p);
	CHECK(c != NULL);
	CHECK_EQ(c->pkt_len, 5500);
	CHECK_EQ(c->nsegs, 3);
	static uint8_t big[5500];
	CHECK_EQ(sk_pkt_copy_out(c, 0, 5500, big), 0);
	CHECK(bytes_ok(big, 0, 5500));
	sk_pkt_free(c);
	sk_pkt_free(p);
}

SK_TEST(pkt_wrap_ext_free_runs_once_and_refcounts_hold_segments)
{
	static uint8_t buf[256];
	memset(ext_calls, 0, sizeof(ext_calls));
	CHECK(sk_pkt_wrap(buf, 100, buf + 50, 60, ext_count, (void *)3) == NULL);
	struct sk_pkt *w = sk_pkt_wrap(buf, sizeof(buf), buf + 16, 64, ext_count,
				       (void *)3);
	CHECK(w != NULL);
	CHECK_EQ(sk_pkt_headroom(w), 16);
	CHECK_EQ(sk_pkt_tailroom(w), 256 - 16 - 64);
	CHECK_EQ(w->pkt_len, 64);
	sk_pkt_ref(w);
	sk_pkt_free(w);
	CHECK_EQ(ext_calls[3], 0);
	sk_pkt_free(w);
	CHECK_EQ(ext_calls[3], 1);

	/* A shared segment in a chain survives the chain's free. */
	struct sk_pkt *p = mk_chain(10, 100, 50);
	struct sk_pkt *mid = p->next;
	sk_pkt_ref(mid);
	sk_pkt_free(p);
	CHECK_EQ(ext_calls[1], 0);
	CHECK_EQ(ext_calls[2], 1);
	CHECK_EQ(mid->refcnt, 1);
	CHECK_EQ(mid->data[0], (uint8_t)(10 * 3));
	/* Ours alone now; its next still names the freed tail. */
	mid->next = NULL;
	sk_pkt_free(mid);
	CHECK_EQ(ext_calls[1], 1);

	/* Pullup must not cut a shared segment (and changes nothing then),
	 * but may use one up whole. */
	memset(ext_calls, 0, sizeof(ext_calls));
	p = mk_chain(10, 100, 50);
	sk_pkt_ref(p->next);
	CHECK(sk_pkt_pullup(p, 50) == NULL);
	CHECK_EQ(p->len, 10);
	CHECK_EQ(p->next->len, 100);
	mid = p->next;
	CHECK(sk_pkt_pullup(p, 110) != NULL);
	CHECK_EQ(mid->refcnt, 1);
	CHECK_EQ(mid->len, 100);
	CHECK_EQ(ext_calls[1], 0);
	sk_pkt_free(mid);
	sk_pkt_free(p);
	CHECK_EQ(ext_calls[1], 1);
	CHECK_EQ(ext_calls[2], 1);

	/* A NULL ext_free is allowed: only the header is recycled. */
	w = sk_pkt_wrap(buf, sizeof(buf), buf, 10, NULL, NULL);
	CHECK(w != NULL);
	sk_pkt_free(w);

	/* free_list walks nextpkt. */
	memset(ext_calls, 0, sizeof(ext_calls));
	struct sk_pkt *a = sk_pkt_wrap(buf, 10, buf, 10, ext_count, (void *)4);
	struct sk_pkt *b = sk_pkt_wrap(buf, 10, buf, 10, ext_count, (void *)4);
	a->nextpkt = b;
	sk_pkt_free_list(a);
	CHECK_EQ(ext_calls[4], 2);
}

/* Shard 0 allocates, shard 1 frees: the memory finds its way home. */
static struct sk_pkt *xs_pkts[64];
static struct sk_pkt_stats xs_stats1;
static sk_future xs_free(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 64; i++)
		sk_pkt_free(xs_pkts[i]);
	sk_pkt_stats(&xs_stats1);
	return sk_make_ready(sk_shard_id());
}
static sk_future xs_check(void *arg, int64_t v)
{
	(void)arg;
	CHECK_EQ(v, 1);
	return sk_make_ready(0);
}
static sk_future xs_main(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 64; i++) {
		xs_pkts[i] = sk_pkt_alloc();
		if (!xs_pkts[i])
			return sk_make_error(-ENOMEM);
		CHECK_EQ(sk_mem_owner(xs_pkts[i]), 0);
		memset(sk_pkt_append(xs_pkts[i], 1500), (int)i, 1500);
	}
	return sk_future_then(sk_submit_to(1, xs_free, NULL), xs_check, NULL);
}

SK_TEST(pkt_allocated_on_shard0_freed_on_shard1)
{
	CHECK_EQ(sk_test_run(2, xs_main, NULL), 0);
	CHECK_EQ(xs_stats1.frees, 64);
	CHECK_EQ(xs_stats1.allocs, 0);
	CHECK(xs_stats1.cached >= 64);
}

/* --- rss ---------------------------------------------------------------- */

SK_TEST(rss_matches_microsoft_verification_suite)
{
	const struct {
		uint32_t src, dst;
		uint16_t sport, dport;
		uint32_t h2, h4;
	} v[] = {
		{ ip4(66, 9, 149, 187), ip4(161, 142, 100, 80), 2794, 1766,
		  0x323e8fc2, 0x51ccc178 },
		{ ip4(199, 92, 111, 2), ip4(65, 69, 140, 83), 14230, 4739,
		  0xd718262a, 0xc626b0ea },
		{ ip4(24, 19, 198, 95), ip4(12, 22, 207, 184), 12898, 38024,
		  0xd2d0a5de, 0x5c2b394a },
		{ ip4(38, 27, 205, 30), ip4(209, 142, 163, 6), 48228, 2217,
		  0x82989176, 0xafc7327f },
		{ ip4(153, 39, 163, 191), ip4(202, 188, 127, 2), 44251, 1303,
		  0x5d1809c5, 0x10e828a2 },
	};
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_EQ(sk_rss_hash(v[i].src, v[i].dst, v[i].sport, v[i].dport, true),
			 v[i].h4);
		CHECK_EQ(sk_rss_hash(v[i].src, v[i].dst, 0, 0, false), v[i].h2);
		/* Ports are ignored for the 2-tuple. */
		CHECK_EQ(sk_rss_hash(v[i].src, v[i].dst, v[i].sport, v[i].dport, false),
			 v[i].h2);
	}
	CHECK_EQ(sk_rss_key[0], 0x6d);
	CHECK_EQ(sk_rss_key[39], 0xfa);
	CHECK_EQ(sk_rss_queue(0x51ccc178, 4), (0x51ccc178 & 127) % 4);
}

/* --- loop --------------------------------------------------------------- */

SK_TEST(loop_pair_delivers_frames_intact_with_the_hash)
{
	struct sk_netdev *a, *b;
	struct sk_pkt *tx[16], *rx[16];
	struct sk_netdev_stats s;

	CHECK_EQ(sk_netdev_loop_pair(1, 0, mac_a, mac_b, &a, &b), 0);
	CHECK_EQ(memcmp(a->mac, mac_a, 6), 0);
	CHECK_EQ(a->mtu, 1500);
	CHECK(a->link_up);
	CHECK_EQ(a->offloads, SK_NETDEV_RSS);
	CHECK_EQ(a->ops->wait_fd(a, 0), -1);
	CHECK_EQ(sk_netdev_attach(b, 0), 0);
	for (unsigned i = 0; i < 10; i++)
		tx[i] = mk_udp(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), (uint16_t)(1000 + i),
			       80, 10 + i * 100, i);
	CHECK(!b->ops->rx_pending(b, 0));
	CHECK_EQ(b->rx_burst(b, 0, rx, 16), 0);
	CHECK_EQ(a->tx_burst(a, 0, tx, 10), 10);
	CHECK(b->ops->rx_pending(b, 0));
	CHECK_EQ(a->rx_burst(a, 0, rx, 16), 0);	/* not back to the sender */
	CHECK_EQ(b->rx_burst(b, 0, rx, 4), 4);
	CHECK_EQ(b->rx_burst(b, 0, rx + 4, 16), 6);
	for (unsigned i = 0; i < 10; i++) {
		CHECK_EQ(tag_of(rx[i]), i);
		CHECK(payload_ok(rx[i]));
		CHECK_EQ(rx[i]->pkt_len, 42 + 10 + i * 100);
		CHECK(rx[i]->ol_flags & SK_PKT_RSS_HASH);
		CHECK_EQ(rx[i]->hash, sk_rss_hash(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2),
						  (uint16_t)(1000 + i), 80, true));
		sk_pkt_free(rx[i]);
	}
	sk_netdev_stats_sum(a, &s);
	CHECK_EQ(s.tx_packets, 10);
	CHECK_EQ(s.rx_packets, 0);
	sk_netdev_stats_sum(b, &s);
	CHECK_EQ(s.rx_packets, 10);
	CHECK_EQ(s.rx_bytes, 10 * 42 + 10 * 10 + 100 * 45);

	/* The other way, with an ARP frame: queue 0, no hash. */
	struct sk_pkt *arp = sk_pkt_alloc();
	uint8_t *f = sk_pkt_append(arp, 42);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac_b, 6);
	fr_put16(f + 12, 0x0806);
	memset(f + 14, 0, 28);
	CHECK_EQ(b->tx_burst(b, 0, &arp, 1), 1);
	CHECK_EQ(a->rx_burst(a, 0, rx, 16), 1);
	CHECK(!(rx[0]->ol_flags & SK_PKT_RSS_HASH));
	CHECK_EQ(fr_get16(rx[0]->data + 12), 0x0806);
	sk_pkt_free(rx[0]);

	/* Unreceived frames are freed by close. */
	tx[0] = mk_udp(1, 2, 3, 4, 10, 0);
	CHECK_EQ(a->tx_burst(a, 0, tx, 1), 1);
	sk_netdev_close(a);
	sk_netdev_close(b);
}

SK_TEST(loop_steers_each_flow_to_its_rss_queue)
{
	struct sk_netdev *a, *b;
	struct sk_pkt *tx[64], *rx[64];
	unsigned want[64], per_queue[4] = { 0 }, got = 0;

	CHECK_EQ(sk_netdev_loop_pair(4, 0, NULL, NULL, &a, &b), 0);
	CHECK_EQ(a->mac[5], 1);
	CHECK_EQ(b->mac[5], 2);
	for (unsigned i = 0; i < 64; i++) {
		uint32_t src = ip4(192, 168, 1, i), dst = ip4(192, 168, 2, 1);
		uint16_t sp = (uint16_t)(40000 + i * 13), dp = 443;
		uint8_t proto = i % 4 == 3 ? 1 : (i % 2 ? 6 : 17);
		uint16_t frag = i % 8 == 4 ? 0x2000 : 0;	/* MF: a fragment */
		bool l4 = proto != 1 && !frag;
		tx[i] = mk_ip(proto, src, dst, sp, dp, 20, i, frag);
		want[i] = sk_rss_queue(sk_rss_hash(src, dst, l4 ? sp : 0, l4 ? dp : 0, l4), 4);
	}
	/* Send from two different queues. */
	CHECK_EQ(a->tx_burst(a, 1, tx, 32), 32);
	CHECK_EQ(a->tx_burst(a, 3, tx + 32, 32), 32);
	for (unsigned q = 0; q < 4; q++) {
		unsigned n = b->rx_burst(b, q, rx, 64);
		for (unsigned k = 0; k < n; k++) {
			uint32_t t = tag_of(rx[k]);
			CHECK(t < 64);
			if (t < 64)
				CHECK_EQ(want[t], q);
			sk_pkt_free(rx[k]);
		}
		per_queue[q] = n;
		got += n;
	}
	CHECK_EQ(got, 64);
	/* The hash spreads 64 flows over all four queues. */
	for (unsigned q = 0; q < 4; q++)
		CHECK(per_queue[q] > 0);
	CHECK_EQ(b->stats[0].rx_packets + b->stats[1].rx_packets +
		 b->stats[2].rx_packets + b->stats[3].rx_packets, 64);
	CHECK_EQ(a->stats[1].tx_packets, 32);
	CHECK_EQ(a->stats[3].tx_packets, 32);
	sk_netdev_close(b);
	sk_netdev_close(a);
}

SK_TEST(loop_full_ring_refuses_and_counts_then_recovers)
{
	struct sk_netdev *a, *b;
	struct sk_pkt *tx[20], *rx[20];

	CHECK_EQ(sk_netdev_loop_pair(1, 8, NULL, NULL, &a, &b), 0);
	for (unsigned i = 0; i < 20; i++)
		tx[i] = mk_udp(1, 2, 3, 4, 10, i);
	CHECK_EQ(a->tx_burst(a, 0, tx, 20), 8);
	CHECK_EQ(a->stats[0].tx_dropped, 12);
	CHECK_EQ(a->stats[0].tx_packets, 8);
	CHECK_EQ(a->tx_burst(a, 0, tx + 8, 12), 0);
	CHECK_EQ(b->rx_burst(b, 0, rx, 20), 8);
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(tag_of(rx[i]), i);
		sk_pkt_free(rx[i]);
	}
	CHECK_EQ(a->tx_burst(a, 0, tx + 8, 12), 8);
	CHECK_EQ(b->rx_burst(b, 0, rx, 20), 8);
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(tag_of(rx[i]), 8 + i);
		sk_pkt_free(rx[i]);
	}
	for (unsigned i = 16; i < 20; i++)
		sk_pkt_free(tx[i]);
	sk_netdev_close(a);
	sk_netdev_close(b);
}

SK_TEST(loop_self_and_shared_segments_are_copied)
{
	struct sk_netdev *d;
	struct sk_pkt *p, *rx[4];

	CHECK_EQ(sk_netdev_loop_self(2, 0, mac_a, &d), 0);
	p = mk_udp(ip4(127, 0, 0, 1), ip4(127, 0, 0, 1), 5000, 6000, 100, 77);
	unsigned q = sk_rss_queue(sk_rss_hash(ip4(127, 0, 0, 1), ip4(127, 0, 0, 1),
					      5000, 6000, true), 2);
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	CHECK_EQ(d->rx_burst(d, 1 - q, rx, 4), 0);
	CHECK_EQ(d->rx_burst(d, q, rx, 4), 1);
	CHECK(rx[0] == p);		/* handed over, not copied */
	CHECK_EQ(tag_of(rx[0]), 77);
	sk_pkt_free(rx[0]);

	/* The sender keeps a reference (a retransmit queue): the receiver
	 * gets its own copy, the sender's segment is left alone. */
	p = mk_udp(ip4(127, 0, 0, 1), ip4(127, 0, 0, 1), 5000, 6000, 100, 78);
	sk_pkt_ref(p);
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	CHECK_EQ(p->refcnt, 1);
	CHECK_EQ(d->rx_burst(d, q, rx, 4), 1);
	CHECK(rx[0] != p);
	CHECK_EQ(tag_of(rx[0]), 78);
	CHECK(payload_ok(rx[0]));
	sk_pkt_free(rx[0]);
	sk_pkt_free(p);
	sk_netdev_close(d);
}

/*
 * Two shards: shard 1 drives queue 1 of end b and sleeps; shard 0 sends on
 * a's queue 0 and must wake it for the frames the hash sends to queue 1.
 */
#define X_FRAMES 64
static struct {
	struct sk_netdev *a, *b;
	struct sk_poller poller;
	_Atomic unsigned got1;
	_Atomic uint64_t first_rx_ns;
	unsigned got0, want1, want0, bad;
	uint64_t sent_ns;
} xl;

static bool xl_poll(void *arg)
{
	struct sk_pkt *rx[32];
	unsigned n = xl.b->rx_burst(xl.b, 1, rx, 32);
	(void)arg;
	if (n && !atomic_load(&xl.first_rx_ns))
		atomic_store(&xl.first_rx_ns, sk_now_ns());
	for (unsigned i = 0; i < n; i++) {
		uint8_t *f = rx[i]->data;
		if (sk_rss_queue(rx[i]->hash, 2) != 1 || fr_get16(f + 12) != 0x0800 ||
		    !payload_ok(rx[i]))
			xl.bad++;
		sk_pkt_free(rx[i]);	/* allocated by shard 0 */
	}
	atomic_fetch_add(&xl.got1, n);
	return n > 0;
}

static bool xl_pure(void *arg)
{
	(void)arg;
	return xl.b->ops->rx_pending(xl.b, 1);
}

static sk_future xl_setup1(void *arg)
{
	(void)arg;
	xl.poller = (struct sk_poller){ .poll = xl_poll, .pure_poll = xl_pure };
	sk_reactor_add_poller(&xl.poller);
	return sk_make_ready(sk_netdev_attach(xl.b, 1));
}

static sk_future xl_teardown1(void *arg)
{
	(void)arg;
	xl_poll(NULL);
	sk_reactor_remove_poller(&xl.poller);
	return sk_make_ready(0);
}

static sk_future xl_close(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_netdev_close(xl.a);
	sk_netdev_close(xl.b);
	return sk_make_ready(0);
}

static sk_future xl_done(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_future_then(sk_submit_to(1, xl_teardown1, NULL), xl_close, NULL);
}

static sk_future xl_send(void *arg, int64_t v)
{
	struct sk_pkt *tx[X_FRAMES], *rx[X_FRAMES];
	(void)arg;
	(void)v;
	for (unsigned i = 0; i < X_FRAMES; i++) {
		uint16_t sp = (uint16_t)(2000 + i);
		uint32_t h = sk_rss_hash(ip4(10, 1, 0, 1), ip4(10, 1, 0, 2), sp, 80, true);
		if (sk_rss_queue(h, 2) == 1)
			xl.want1++;
		else
			xl.want0++;
		tx[i] = mk_udp(ip4(10, 1, 0, 1), ip4(10, 1, 0, 2), sp, 80, 200, i);
	}
	xl.sent_ns = sk_now_ns();
	CHECK_EQ(xl.a->tx_burst(xl.a, 0, tx, X_FRAMES), X_FRAMES);
	/* Queue 0 of b is ours: those frames are here at once. */
	xl.got0 = xl.b->rx_burst(xl.b, 0, rx, X_FRAMES);
	for (unsigned i = 0; i < xl.got0; i++)
		sk_pkt_free(rx[i]);
	/* Long enough that, were shard 1 not woken, nothing would come. */
	return sk_future_then(sk_sleep(100 * SK_NSEC_PER_MSEC), xl_done, NULL);
}

static sk_future xl_attached(void *arg, int64_t v)
{
	(void)arg;
	CHECK_EQ(v, 0);
	/* Let shard 1 fall asleep (it spins 20 us, then sleeps). */
	return sk_future_then(sk_sleep(30 * SK_NSEC_PER_MSEC), xl_send, NULL);
}

static sk_future xl_main(void *arg)
{
	(void)arg;
	if (sk_netdev_loop_pair(2, 0, mac_a, mac_b, &xl.a, &xl.b))
		return sk_make_error(-ENOMEM);
	sk_netdev_attach(xl.a, 0);
	sk_netdev_attach(xl.b, 0);
	return sk_future_then(sk_submit_to(1, xl_setup1, NULL), xl_attached, NULL);
}

SK_TEST(loop_two_shards_sender_wakes_the_sleeping_receiver_queue)
{
	memset(&xl, 0, sizeof(xl));
	CHECK_EQ(sk_test_run(2, xl_main, NULL), 0);
	CHECK(xl.want1 > 0 && xl.want0 > 0);
	CHECK_EQ(atomic_load(&xl.got1), xl.want1);
	CHECK_EQ(xl.got0, xl.want0);
	CHECK_EQ(xl.bad, 0);
	uint64_t first = atomic_load(&xl.first_rx_ns);
	CHECK(first >= xl.sent_ns);
	/* Woken, not found by chance 100 ms later. */
	CHECK(first - xl.sent_ns < 20 * SK_NSEC_PER_MSEC);
}

/* --- fault -------------------------------------------------------------- */

SK_TEST(fault_parse_accepts_the_spec_and_refuses_nonsense)
{
	struct sk_fault_config c;

	CHECK_EQ(sk_fault_parse("drop=0.05,dup=0.01,reorder=0.02,corrupt=0.001,"
				"delay=0.01,delay-us=500,seed=7,dir=rx", &c), 0);
	CHECK(c.drop == 0.05 && c.dup == 0.01 && c.reorder == 0.02);
	CHECK(c.corrupt == 0.001 && c.delay == 0.01);
	CHECK_EQ(c.delay_ns, 500000);
	CHECK_EQ(c.seed, 7);
	CHECK(c.rx && !c.tx);
	CHECK_EQ(sk_fault_parse("dir=tx", &c), 0);
	CHECK(!c.rx && c.tx);
	CHECK_EQ(c.drop, 0);
	CHECK_EQ(sk_fault_parse("dir=both,drop=1", &c), 0);
	CHECK(c.rx && c.tx && c.drop == 1);
	CHECK_EQ(sk_fault_parse("", &c), 0);
	CHECK(!c.rx && !c.tx && c.seed == 0);

	const char *bad[] = { "drop", "drop=", "drop=1.5", "drop=-0.1", "drop=nan",
			      "drop=0.1x", "loss=0.1", "seed=-1", "seed=abc",
			      "delay-us=1e3", "dir=up", "drop=0.1,", ",drop=0.1",
			      "drop=0.1,,dup=0.1", NULL };
	for (unsigned i = 0; bad[i]; i++) {
		c.seed = 12345;
		int rc = sk_fault_parse(bad[i], &c);
		if (rc != -EINVAL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK_EQ(rc, -EINVAL);
		CHECK_EQ(c.seed, 12345);	/* untouched on error */
	}
	CHECK_EQ(sk_fault_parse(NULL, &c), -EINVAL);
}

/* Loop pair a <-> b, with the fault decorator over a. */
struct fx {
	struct sk_netdev *fa, *a, *b;
};

static void fx_open(struct fx *x, unsigned nq, const struct sk_fault_config *c)
{
	CHECK_EQ(sk_netdev_loop_pair(nq, 4096, mac_a, mac_b, &x->a, &x->b), 0);
	CHECK_EQ(sk_netdev_fault(x->a, c, &x->fa), 0);
}

static void fx_close(struct fx *x)
{
	sk_netdev_close(x->fa);		/* closes a */
	sk_netdev_close(x->b);
}

/* Send @n frames b -> fa (rx faults), tags first..first+n-1, and collect
 * what fa delivers into @tags (at most @max); returns the count. */
static unsigned fx_rx_run(struct fx *x, uint32_t first, unsigned n, uint32_t *tags,
			  unsigned max)
{
	struct sk_pkt *v[64];
	unsigned got = 0;

	for (unsigned done = 0; done < n;) {
		unsigned k = n - done < 64 ? n - done : 64;
		for (unsigned i = 0; i < k; i++)
			v[i] = mk_udp(ip4(10, 9, 0, 1), ip4(10, 9, 0, 2), 7, 9, 16,
				      first + done + i);
		CHECK_EQ(x->b->tx_burst(x->b, 0, v, k), k);
		done += k;
		unsigned r;
		while ((r = x->fa->rx_burst(x->fa, 0, v, 64)) > 0) {
			for (unsigned i = 0; i < r; i++) {
				if (got < max)
					tags[got] = tag_of(v[i]);
				got++;
				sk_pkt_free(v[i]);
			}
		}
	}
	return got;
}

SK_TEST(fault_drop_rate_matches_the_configuration)
{
	struct sk_fault_config c = { .drop = 0.1, .seed = 42 };
	struct sk_netdev_stats s;
	struct fx x;
	static uint32_t tags[20000];

	fx_open(&x, 1, &c);
	CHECK_EQ(x.fa->offloads, 0);
	CHECK_EQ(memcmp(x.fa->mac, mac_a, 6), 0);
	CHECK_EQ(x.fa->nqueues, 1);
	unsigned got = fx_rx_run(&x, 0, 20000, tags, 20000);
	sk_netdev_stats_sum(x.fa, &s);
	CHECK_EQ(got + s.f_dropped, 20000);
	/* 2000 expected; the standard deviation is 42. */
	CHECK(s.f_dropped > 1800 && s.f_dropped < 2200);
	CHECK_EQ(s.rx_packets, got);
	/* Survivors keep their order. */
	for (unsigned i = 1; i < got; i++)
		if (tags[i] <= tags[i - 1]) {
			CHECK(tags[i] > tags[i - 1]);
			break;
		}
	fx_close(&x);

	/* The tx direction, with dir=tx: the rx side passes everything. */
	struct sk_fault_config ct = { .drop = 0.25, .seed = 1, .tx = true };
	struct sk_pkt *v[64];
	unsigned arrived = 0;
	fx_open(&x, 1, &ct);
	for (unsigned i = 0; i < 4000; i += 40) {
		for (unsigned k = 0; k < 40; k++)
			v[k] = mk_udp(1, 2, 3, 4, 10, i + k);
		CHECK_EQ(x.fa->tx_burst(x.fa, 0, v, 40), 40);
		unsigned r = x.b->rx_burst(x.b, 0, v, 64);
		arrived += r;
		for (unsigned k = 0; k < r; k++)
			sk_pkt_free(v[k]);
	}
	sk_netdev_stats_sum(x.fa, &s);
	CHECK_EQ(arrived + s.f_dropped, 4000);
	CHECK(s.f_dropped > 850 && s.f_dropped < 1150);
	/* b -> fa is not faulted. */
	got = fx_rx_run(&x, 0, 1000, tags, 20000);
	CHECK_EQ(got, 1000);
	fx_close(&x);
}

/* One run of 3000 frames with dup + reorder (no drops, no corruption). */
static void fx_dup_reorder(uint64_t seed, uint32_t *tags, unsigned *got,
			   struct sk_netdev_stats *s)
{
	struct sk_fault_config c = { .dup = 0.03, .reorder = 0.05, .seed = seed,
				     .delay_ns = 10ull * 1000 * 1000 * 1000 };
	struct fx x;
	fx_open(&x, 1, &c);
	*got = fx_rx_run(&x, 0, 3000, tags, 4000);
	sk_netdev_stats_sum(x.fa, s);
	fx_close(&x);
}

SK_TEST(fault_dup_and_reorder_are_counted_and_deterministic)
{
	static uint32_t t1[4000], t2[4000], t3[4000];
	static unsigned seen[3000];
	struct sk_netdev_stats s1, s2, s3;
	unsigned g1, g2, g3, dups = 0, inversions = 0;

	fx_dup_reorder(7, t1, &g1, &s1);
	fx_dup_reorder(7, t2, &g2, &s2);
	fx_dup_reorder(8, t3, &g3, &s3);
	/* 90 duplicates and 150 reorders expected. */
	CHECK(s1.f_duplicated > 40 && s1.f_duplicated < 150);
	CHECK(s1.f_reordered > 90 && s1.f_reordered < 220);
	CHECK_EQ(s1.f_dropped + s1.f_corrupted + s1.f_delayed, 0);
	/* A reordered frame still held at the end (nothing passed after it)
	 * is the only one that may be missing. */
	CHECK(g1 == 3000 + s1.f_duplicated || g1 + 1 == 3000 + s1.f_duplicated);
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < g1; i++) {
		CHECK(t1[i] < 3000);
		if (t1[i] < 3000 && seen[t1[i]]++)
			dups++;
		if (i && t1[i] < t1[i - 1])
			inversions++;
	}
	CHECK_EQ(dups, s1.f_duplicated);
	CHECK(inversions > 50);
	/* Same seed, same story; another seed, another one. */
	CHECK_EQ(g1, g2);
	CHECK_EQ(memcmp(t1, t2, g1 * sizeof(t1[0])), 0);
	CHECK_EQ(s1.f_duplicated, s2.f_duplicated);
	CHECK_EQ(s1.f_reordered, s2.f_reordered);
	CHECK(g1 != g3 || memcmp(t1, t3, g1 * sizeof(t1[0])) != 0);
}

SK_TEST(fault_corrupt_flips_exactly_one_bit_after_the_ethernet_header)
{
	struct sk_fault_config c = { .corrupt = 0.2, .seed = 3 };
	struct sk_netdev_stats s;
	struct sk_pkt *v[64], *rx[64];
	static uint8_t sent[64][100];
	unsigned bad = 0, changed = 0, sent_n = 0;
	struct fx x;

	fx_open(&x, 1, &c);
	for (unsigned round = 0; round < 40; round++) {
		for (unsigned i = 0; i < 50; i++) {
			v[i] = mk_udp(ip4(10, 9, 0, 1), ip4(10, 9, 0, 2), 7, 9, 40,
				      round * 50 + i);
			memcpy(sent[i], v[i]->data, v[i]->len);
		}
		/* tx faults: the sender's frames may be shared with it. */
		sk_pkt_ref(v[0]);
		struct sk_pkt *keep = v[0];
		CHECK_EQ(x.fa->tx_burst(x.fa, 0, v, 50), 50);
		CHECK_EQ(memcmp(keep->data, sent[0], keep->len), 0);
		sk_pkt_free(keep);
		unsigned r = x.b->rx_burst(x.b, 0, rx, 64);
		CHECK_EQ(r, 50);
		for (unsigned i = 0; i < r && i < 50; i++) {
			unsigned bits = 0, first = 0;
			CHECK_EQ(rx[i]->pkt_len, 82);
			for (unsigned k = 0; k < 82; k++) {
				unsigned d = (unsigned)__builtin_popcount(rx[i]->data[k] ^ sent[i][k]);
				if (d && !bits)
					first = k;
				bits += d;
			}
			if (bits) {
				changed++;
				if (bits != 1 || first < 14)
					bad++;
			}
			sk_pkt_free(rx[i]);
		}
		sent_n += 50;
	}
	sk_netdev_stats_sum(x.fa, &s);
	CHECK_EQ(changed, s.f_corrupted);
	CHECK_EQ(bad, 0);
	CHECK(s.f_corrupted > 300 && s.f_corrupted < 500);	/* 400 expected */
	CHECK_EQ(sent_n, 2000);
	fx_close(&x);
}

SK_TEST(fault_delayed_packets_come_out_after_delay_ns_via_next_event)
{
	const uint64_t delay = 30 * SK_NSEC_PER_MSEC;
	struct sk_fault_config c = { .delay = 1.0, .seed = 5, .delay_ns = delay };
	struct sk_netdev_stats s;
	struct sk_pkt *v[16];
	struct fx x;

	fx_open(&x, 1, &c);
	CHECK_EQ(x.fa->ops->next_event(x.fa, 0), UINT64_MAX);
	/* rx: frames from b are held by fa. */
	for (unsigned i = 0; i < 10; i++)
		v[i] = mk_udp(1, 2, 3, 4, 10, i);
	uint64_t t0 = sk_now_ns();
	CHECK_EQ(x.b->tx_burst(x.b, 0, v, 10), 10);
	CHECK_EQ(x.fa->rx_burst(x.fa, 0, v, 16), 0);
	uint64_t due = x.fa->ops->next_event(x.fa, 0);
	CHECK(due >= t0 + delay && due <= sk_now_ns() + delay);
	CHECK(!x.fa->ops->rx_pending(x.fa, 0));
	usleep(10 * 1000);
	CHECK_EQ(x.fa->rx_burst(x.fa, 0, v, 16), 0);	/* not yet */
	while (sk_now_ns() < due)
		usleep(1000);
	CHECK(x.fa->ops->rx_pending(x.fa, 0));
	CHECK_EQ(x.fa->rx_burst(x.fa, 0, v, 16), 10);
	for (unsigned i = 0; i < 10; i++) {
		CHECK_EQ(tag_of(v[i]), i);
		sk_pkt_free(v[i]);
	}
	CHECK_EQ(x.fa->ops->next_event(x.fa, 0), UINT64_MAX);

	/* tx: held by fa, pushed to a by a later rx_burst poll. */
	for (unsigned i = 0; i < 5; i++)
		v[i] = mk_udp(1, 2, 3, 4, 10, 100 + i);
	t0 = sk_now_ns();
	CHECK_EQ(x.fa->tx_burst(x.fa, 0, v, 5), 5);
	CHECK_EQ(x.b->rx_burst(x.b, 0, v, 16), 0);
	due = x.fa->ops->next_event(x.fa, 0);
	CHECK(due >= t0 + delay && due != UINT64_MAX);
	while (sk_now_ns() < due)
		usleep(1000);
	CHECK_EQ(x.fa->rx_burst(x.fa, 0, v, 16), 0);
	CHECK_EQ(x.b->rx_burst(x.b, 0, v, 16), 5);
	for (unsigned i = 0; i < 5; i++) {
		CHECK_EQ(tag_of(v[i]), 100 + i);
		sk_pkt_free(v[i]);
	}
	sk_netdev_stats_sum(x.fa, &s);
	CHECK_EQ(s.f_delayed, 15);
	/* Held packets are freed by close (ASan would see a leak). */
	for (unsigned i = 0; i < 3; i++)
		v[i] = mk_udp(1, 2, 3, 4, 10, i);
	CHECK_EQ(x.fa->tx_burst(x.fa, 0, v, 3), 3);
	fx_close(&x);
}

/* --- tap ---------------------------------------------------------------- */

/*
 * The whole test process moves into a network namespace of its own before
 * main() and before any shard exists, so the tap device, its address and
 * every frame stay private and vanish with the process.
 */
static int netns_err = ENOSYS;

__attribute__((constructor)) static void netns_enter(void)
{
	if (geteuid() != 0) {
		netns_err = EPERM;
		return;
	}
	netns_err = unshare(CLONE_NEWNET) ? errno : 0;
}

static const uint8_t tap_mac[6] = { 0x02, 0x5a, 0x00, 0x00, 0x02, 0x02 };
#define TAP_KERNEL_IP 0x0ad30001u	/* 10.211.0.1 */
#define TAP_OUR_IP    0x0ad30002u	/* 10.211.0.2 */

static int if_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		return -errno;
	int rc = ioctl(s, req, ifr) ? -errno : 0;
	close(s);
	return rc;
}

static void if_set_addr(struct ifreq *ifr, unsigned long req, uint32_t a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(a) };
	memcpy(&ifr->ifr_addr, &sin, sizeof(sin));
	CHECK_EQ(if_ioctl(req, ifr), 0);
}

/* Kernel side: 10.211.0.1/24, up; its MAC into @kmac. */
static void tap_kernel_up(const char *name, uint8_t *kmac)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if_set_addr(&ifr, SIOCSIFADDR, TAP_KERNEL_IP);
	if_set_addr(&ifr, SIOCSIFNETMASK, 0xffffff00u);
	CHECK_EQ(if_ioctl(SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	CHECK_EQ(if_ioctl(SIOCSIFFLAGS, &ifr), 0);
	CHECK_EQ(if_ioctl(SIOCGIFHWADDR, &ifr), 0);
	memcpy(kmac, ifr.ifr_hwaddr.sa_data, 6);
}

static struct sk_pkt *mk_arp(uint16_t op, const uint8_t *eth_dst, const uint8_t *sha,
			     uint32_t spa, const uint8_t *tha, uint32_t tpa)
{
	struct sk_pkt *p = sk_pkt_alloc();
	uint8_t *f = p ? sk_pkt_append(p, 42) : NULL;
	if (f)
		fr_arp(f, eth_dst, sha, op, sha, spa, tha, tpa);
	return p;
}

static struct sk_pkt *mk_echo(const uint8_t *kmac, uint16_t id, uint16_t seq)
{
	struct sk_pkt *p = sk_pkt_alloc();
	uint8_t *f = sk_pkt_append(p, 14 + 20 + 8 + 32);
	memcpy(f, kmac, 6);
	memcpy(f + 6, tap_mac, 6);
	fr_put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *ic = ip + 20;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	fr_put16(ip + 2, 20 + 8 + 32);
	fr_put16(ip + 4, 0x4242);
	ip[8] = 64;
	ip[9] = 1;
	fr_put32(ip + 12, TAP_OUR_IP);
	fr_put32(ip + 16, TAP_KERNEL_IP);
	fr_put16(ip + 10, fr_fold(fr_sum(0, ip, 20)));
	ic[0] = 8;
	ic[1] = 0;
	fr_put16(ic + 2, 0);
	fr_put16(ic + 4, id);
	fr_put16(ic + 6, seq);
	for (unsigned i = 0; i < 32; i++)
		ic[8 + i] = (uint8_t)(0xa0 + i);
	fr_put16(ic + 2, fr_fold(fr_sum(0, ic, 40)));
	return p;
}

/* What the kernel said back. */
struct tap_seen {
	bool arp_reply, arp_reply_ok, echo_reply, echo_reply_ok;
	unsigned arp_requests_answered;
};

/* Take one frame from the kernel: note replies, answer its ARP requests. */
static void tap_frame(struct sk_netdev *d, unsigned q, struct sk_pkt *p,
		      const uint8_t *kmac, struct tap_seen *s)
{
	const uint8_t *f = p->data;
	if (p->len >= 42 && fr_get16(f + 12) == 0x0806 && fr_get16(f + 20) == 2 &&
	    fr_get32(f + 28) == TAP_KERNEL_IP) {
		s->arp_reply = true;
		s->arp_reply_ok = !memcmp(f, tap_mac, 6) && !memcmp(f + 6, kmac, 6) &&
				  fr_get16(f + 14) == 1 && fr_get16(f + 16) == 0x0800 &&
				  !memcmp(f + 22, kmac, 6) && !memcmp(f + 32, tap_mac, 6) &&
				  fr_get32(f + 38) == TAP_OUR_IP;
	} else if (p->len >= 42 && fr_get16(f + 12) == 0x0806 && fr_get16(f + 20) == 1 &&
		   fr_get32(f + 38) == TAP_OUR_IP) {
		struct sk_pkt *r = mk_arp(2, f + 6, tap_mac, TAP_OUR_IP, f + 22,
					  fr_get32(f + 28));
		CHECK_EQ(d->tx_burst(d, q, &r, 1), 1);
		s->arp_requests_answered++;
	} else if (p->len >= 14 + 20 + 8 + 32 && fr_get16(f + 12) == 0x0800 && f[23] == 1 &&
		   f[34] == 0) {
		const uint8_t *ip = f + 14, *ic = ip + (ip[0] & 15) * 4;
		s->echo_reply = true;
		s->echo_reply_ok = !memcmp(f, tap_mac, 6) && fr_fold(fr_sum(0, ip, 20)) == 0 &&
				   fr_get32(ip + 12) == TAP_KERNEL_IP &&
				   fr_get32(ip + 16) == TAP_OUR_IP && fr_get16(ip + 2) == 60 &&
				   fr_fold(fr_sum(0, ic, 40)) == 0 && fr_get16(ic + 4) == 0x1234 &&
				   fr_get16(ic + 6) == 7;
		for (unsigned i = 0; i < 32; i++)
			s->echo_reply_ok &= ic[8 + i] == (uint8_t)(0xa0 + i);
	}
	sk_pkt_free(p);
}

/* Poll every queue for up to 2 s until @done(s) says so. */
static void tap_poll(struct sk_netdev *d, const uint8_t *kmac, struct tap_seen *s,
		     bool (*done)(const struct tap_seen *))
{
	uint64_t end = sk_now_ns() + 2000 * SK_NSEC_PER_MSEC;
	struct sk_pkt *v[16];
	while (!done(s) && sk_now_ns() < end) {
		unsigned total = 0;
		for (unsigned q = 0; q < d->nqueues; q++) {
			unsigned n = d->rx_burst(d, q, v, 16);
			for (unsigned i = 0; i < n; i++)
				tap_frame(d, q, v[i], kmac, s);
			total += n;
		}
		if (!total)
			usleep(1000);
	}
}

static bool got_arp(const struct tap_seen *s)
{
	return s->arp_reply;
}

static bool got_echo(const struct tap_seen *s)
{
	return s->echo_reply;
}

SK_TEST(tap_arp_and_icmp_echo_with_the_kernel_in_a_private_netns)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6];
	struct tap_seen s = { 0 };
	struct sk_netdev *d, *d2;
	uint8_t kmac[6];

	if (netns_err)
		SK_SKIP(netns_err == EPERM ? "not root" : "cannot unshare(CLONE_NEWNET)");
	if (access("/dev/net/tun", R_OK | W_OK))
		SK_SKIP("no /dev/net/tun");
	int rc = sk_netdev_tap("sktap0", 2, tap_mac, &d);
	CHECK_EQ(rc, 0);
	if (rc)
		return;
	CHECK_EQ(d->nqueues, 2);
	CHECK_EQ(d->mtu, 1500);
	CHECK_EQ(memcmp(d->mac, tap_mac, 6), 0);
	CHECK_EQ(strcmp(d->name, "sktap0"), 0);
	CHECK(d->ops->wait_fd(d, 0) >= 0);
	CHECK(d->ops->wait_fd(d, 1) >= 0);
	CHECK(d->ops->wait_fd(d, 0) != d->ops->wait_fd(d, 1));
	CHECK(if_nametoindex("sktap0") != 0);
	tap_kernel_up("sktap0", kmac);

	/* Who has 10.211.0.1?  Tell 10.211.0.2. */
	struct sk_pkt *p = mk_arp(1, bcast, tap_mac, TAP_OUR_IP, zero, TAP_KERNEL_IP);
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	tap_poll(d, kmac, &s, got_arp);
	CHECK(s.arp_reply);
	CHECK(s.arp_reply_ok);

	/* Ping the kernel; answer its ARP for us if it asks. */
	p = mk_echo(kmac, 0x1234, 7);
	CHECK_EQ(d->tx_burst(d, 1, &p, 1), 1);
	tap_poll(d, kmac, &s, got_echo);
	CHECK(s.echo_reply);
	CHECK(s.echo_reply_ok);

	struct sk_netdev_stats st;
	sk_netdev_stats_sum(d, &st);
	CHECK(st.tx_packets >= 2);
	CHECK(st.rx_packets >= 2);
	CHECK_EQ(st.tx_dropped, 0);

	/* Another handle on the same multi-queue device reads its MTU. */
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "sktap0");
	ifr.ifr_mtu = 1400;
	CHECK_EQ(if_ioctl(SIOCSIFMTU, &ifr), 0);
	CHECK_EQ(sk_netdev_tap("sktap0", 1, NULL, &d2), 0);
	CHECK_EQ(d2->mtu, 1400);
	CHECK_EQ(d2->mac[0], 0x02);	/* random, locally administered */
	sk_netdev_close(d2);

	sk_netdev_close(d);
	/* Not persistent: the interface went with its last descriptor. */
	CHECK_EQ(if_nametoindex("sktap0"), 0);
}

SK_TEST(tap_bad_names_and_single_queue_devices_are_refused)
{
	struct sk_netdev *d = NULL;

	CHECK_EQ(sk_netdev_tap("", 1, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap(NULL, 1, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap("a/b", 1, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap("with space", 1, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap("sixteen-chars-xx", 1, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap("sktap9", 0, NULL, &d), -EINVAL);
	CHECK_EQ(sk_netdev_tap("sktap9", SK_NETDEV_MAX_QUEUES + 1, NULL, &d), -EINVAL);
	if (netns_err)
		SK_SKIP(netns_err == EPERM ? "not root" : "cannot unshare(CLONE_NEWNET)");
	if (access("/dev/net/tun", R_OK | W_OK))
		SK_SKIP("no /dev/net/tun");

	/* A tap made without IFF_MULTI_QUEUE cannot take our queues. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "sktap1");
	CHECK_EQ(ioctl(fd, TUNSETIFF, &ifr), 0);
	CHECK_EQ(sk_netdev_tap("sktap1", 2, NULL, &d), -EINVAL);
	close(fd);
	CHECK_EQ(if_nametoindex("sktap1"), 0);
}
