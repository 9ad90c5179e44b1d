/*
 * loop.c - an in-memory pair of devices (or one device looped to itself).
 *
 * Roadmap: loop_tx() picks each frame's receiving queue as a NIC would
 * (loop_steer: Toeplitz hash of IPv4 TCP/UDP 4-tuples, 2-tuple for other
 * IPv4, queue 0 for the rest), puts it on the ring from its own tx queue to
 * that rx queue, publishes the touched rings once per burst and wakes the
 * shards that attached the receiving queues.  loop_rx() drains the rings
 * into its queue, starting from a different one each call so that no
 * sender starves the others.
 *
 * Every (tx queue, rx queue) pair of a direction has its own
 * single-producer/single-consumer ring: any sending shard may target any
 * receiving queue, and one producer per ring keeps the path lock-free.
 * The rings and both ends live in one block freed by the second close,
 * since a sender may still touch its peer's rings until then.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/netdev.h"
#include "skerry/reactor.h"

struct loop_ring {
	/* Producer side: the published index and the producer's own view. */
	_Alignas(64) _Atomic uint32_t head;
	uint32_t prod_head;		/* next slot to fill (unpublished) */
	uint32_t tail_cache;		/* consumer's tail as last read */
	/* Consumer side. */
	_Alignas(64) _Atomic uint32_t tail;
	_Alignas(64) struct sk_pkt *slots[];
};

_Static_assert(offsetof(struct loop_ring, tail) - offsetof(struct loop_ring, head) >= 64,
	       "producer and consumer indices must not share a cache line");

struct loop_rxq {
	_Alignas(64) struct sk_reactor *_Atomic waker;	/* set by attach */
	unsigned rr;			/* ring to drain first next time */
};

struct loop_end {
	struct sk_netdev dev;
	struct loop_end *peer;		/* receives what this end sends */
	struct loop_pair *pair;
	struct loop_ring **in;		/* into this end: in[txq * nq + rxq] */
	struct loop_rxq rxq[SK_NETDEV_MAX_QUEUES];
};

struct loop_pair {
	_Atomic unsigned refs;		/* ends not yet closed */
	unsigned nends;
	uint32_t depth, mask;
	struct loop_end end[2];
};

static inline struct loop_end *loop_of(struct sk_netdev *d)
{
	return d->priv;
}

static inline uint32_t rd16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The receiving queue a NIC with RSS picks for frame @p; records the hash
 * in the packet as the NIC's descriptor would.
 */
static unsigned loop_steer(struct sk_pkt *p, unsigned nq)
{
	/* Ethernet + optional VLAN tag + IPv4 without options + ports. */
	uint8_t tmp[18 + 60 + 4];
	const uint8_t *f = p->data;
	uint32_t avail = p->len, l2 = 14, ihl;
	bool l4;

	p->ol_flags &= ~SK_PKT_RSS_HASH;
	if (avail < sizeof(tmp) && p->next) {
		avail = p->pkt_len < sizeof(tmp) ? p->pkt_len : sizeof(tmp);
		if (sk_pkt_copy_out(p, 0, avail, tmp))
			return 0;
		f = tmp;
	}
	if (avail < 14 + 20)
		return 0;
	if (rd16(f + 12) == 0x8100) {
		l2 = 18;
		if (avail < 18 + 20)
			return 0;
	}
	if (rd16(f + l2 - 2) != 0x0800 || f[l2] >> 4 != 4)
		return 0;
	ihl = (f[l2] & 0xfu) * 4;
	if (ihl < 20)
		return 0;
	/* Fragments (MF or an offset) have no ports to hash: 2-tuple. */
	l4 = (f[l2 + 9] == 6 || f[l2 + 9] == 17) && !(rd16(f + l2 + 6) & 0x3fff) &&
	     avail >= l2 + ihl + 4;
	p->hash = sk_rss_hash(rd32(f + l2 + 12), rd32(f + l2 + 16),
			      l4 ? (uint16_t)rd16(f + l2 + ihl) : 0,
			      l4 ? (uint16_t)rd16(f + l2 + ihl + 2) : 0, l4);
	p->ol_flags |= SK_PKT_RSS_HASH;
	return sk_rss_queue(p->hash, nq);
}

/*
 * A NIC reads the frame out of memory; we hand over the segments
 * themselves.  That is only safe when the sender gives up every one of
 * them: a segment still referenced elsewhere (TCP's retransmit queue) or a
 * foreign buffer is copied into fresh pool buffers instead.
 */
static bool loop_must_copy(const struct sk_pkt *p)
{
	for (; p; p = p->next)
		if (p->refcnt > 1 || p->ext_free)
			return true;
	return false;
}

static unsigned loop_tx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
			unsigned n)
{
	struct loop_end *e = loop_of(d), *dst = e->peer;
	struct loop_pair *pr = e->pair;
	struct sk_netdev_stats *st = &d->stats[q];
	unsigned nq = d->nqueues, i;
	uint64_t touched = 0;

	for (i = 0; i < n; i++) {
		struct sk_pkt *p = pkts[i];
		unsigned rq = loop_steer(p, nq);
		struct loop_ring *r = dst->in[q * nq + rq];

		if (r->prod_head - r->tail_cache >= pr->depth) {
			r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (r->prod_head - r->tail_cache >= pr->depth)
				break;	/* the caller keeps the rest */
		}
		if (loop_must_copy(p)) {
			struct sk_pkt *c = sk_pkt_copy(p);
			sk_pkt_free(p);
			if (!c) {
				st->tx_dropped++;
				continue;
			}
			p = c;
		}
		p->nextpkt = NULL;
		st->tx_packets++;
		st->tx_bytes += p->pkt_len;
		r->slots[r->prod_head++ & pr->mask] = p;
		touched |= 1ull << rq;
	}
	st->tx_dropped += n - i;
	/* Publish each touched ring once, then wake its reader once. */
	for (uint64_t m = touched; m; m &= m - 1) {
		unsigned rq = (unsigned)__builtin_ctzll(m);
		struct loop_ring *r = dst->in[q * nq + rq];
		atomic_store_explicit(&r->head, r->prod_head, memory_order_release);
	}
	for (uint64_t m = touched; m; m &= m - 1) {
		unsigned rq = (unsigned)__builtin_ctzll(m);
		struct sk_reactor *w = atomic_load_explicit(&dst->rxq[rq].waker,
							    memory_order_acquire);
		if (w)
			sk_reactor_wake(w);
	}
	return i;
}

static unsigned loop_rx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
			unsigned n)
{
	struct loop_end *e = loop_of(d);
	struct loop_pair *pr = e->pair;
	struct sk_netdev_stats *st = &d->stats[q];
	unsigned nq = d->nqueues, start = e->rxq[q].rr, got = 0;

	for (unsigned k = 0; k < nq && got < n; k++) {
		unsigned t = start + k < nq ? start + k : start + k - nq;
		struct loop_ring *r = e->in[t * nq + q];
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);

		if (tail == head)
			continue;
		while (tail != head && got < n) {
			struct sk_pkt *p = r->slots[tail++ & pr->mask];
			st->rx_packets++;
			st->rx_bytes += p->pkt_len;
			pkts[got++] = p;
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	e->rxq[q].rr = start + 1 < nq ? start + 1 : 0;
	return got;
}

static bool loop_rx_pending(struct sk_netdev *d, unsigned q)
{
	struct loop_end *e = loop_of(d);
	unsigned nq = d->nqueues;

	for (unsigned t = 0; t < nq; t++) {
		struct loop_ring *r = e->in[t * nq + q];
		if (atomic_load_explicit(&r->head, memory_order_acquire) !=
		    atomic_load_explicit(&r->tail, memory_order_relaxed))
			return true;
	}
	return false;
}

static int loop_attach(struct sk_netdev *d, unsigned q)
{
	if (q >= d->nqueues)
		return -EINVAL;
	atomic_store_explicit(&loop_of(d)->rxq[q].waker, sk_reactor_local(),
			      memory_order_release);
	return 0;
}

static int loop_wait_fd(struct sk_netdev *d, unsigned q)
{
	(void)d;
	(void)q;
	return -1;	/* senders wake us with sk_reactor_wake */
}

static void loop_free_pair(struct loop_pair *pr)
{
	for (unsigned i = 0; i < pr->nends; i++) {
		struct loop_end *e = &pr->end[i];
		unsigned nq = e->dev.nqueues;
		if (!e->in)
			continue;
		for (unsigned r = 0; r < nq * nq; r++) {
			struct loop_ring *rg = e->in[r];
			if (!rg)
				continue;
			uint32_t head = atomic_load(&rg->head);
			for (uint32_t t = atomic_load(&rg->tail); t != head; t++)
				sk_pkt_free(rg->slots[t & pr->mask]);
			sk_free(rg);
		}
		sk_free(e->in);
	}
	sk_free(pr);
}

static void loop_close(struct sk_netdev *d)
{
	struct loop_pair *pr = loop_of(d)->pair;
	if (atomic_fetch_sub(&pr->refs, 1) == 1)
		loop_free_pair(pr);
}

static const struct sk_netdev_ops loop_ops = {
	.attach = loop_attach,
	.wait_fd = loop_wait_fd,
	.rx_pending = loop_rx_pending,
	.close = loop_close,
};

static int loop_end_init(struct loop_pair *pr, struct loop_end *e, unsigned nq,
			 const uint8_t *mac, uint8_t dflt_last)
{
	size_t ring_size = sizeof(struct loop_ring) + (pr->mask + 1) * sizeof(struct sk_pkt *);

	e->pair = pr;
	e->dev.rx_burst = loop_rx;
	e->dev.tx_burst = loop_tx;
	e->dev.ops = &loop_ops;
	e->dev.nqueues = nq;
	e->dev.mtu = 1500;
	e->dev.offloads = SK_NETDEV_RSS;
	e->dev.link_up = true;
	e->dev.priv = e;
	if (mac)
		memcpy(e->dev.mac, mac, 6);
	else
		memcpy(e->dev.mac, (uint8_t[6]){ 0x02, 0, 0, 0, 0, dflt_last }, 6);
	e->in = sk_zalloc((size_t)nq * nq * sizeof(*e->in));
	if (!e->in)
		return -ENOMEM;
	for (unsigned r = 0; r < nq * nq; r++) {
		struct loop_ring *rg = sk_alloc_aligned(64, ring_size);
		if (!rg)
			return -ENOMEM;
		memset(rg, 0, sizeof(*rg));
		atomic_init(&rg->head, 0);
		atomic_init(&rg->tail, 0);
		e->in[r] = rg;
	}
	for (unsigned q = 0; q < nq; q++)
		atomic_init(&e->rxq[q].waker, NULL);
	return 0;
}

static int loop_create(unsigned nq, unsigned depth, unsigned nends,
		       const uint8_t *mac_a, const uint8_t *mac_b,
		       struct loop_pair **out)
{
	struct loop_pair *pr;
	uint32_t size = 1;
	int rc;

	if (nq == 0 || nq > SK_NETDEV_MAX_QUEUES || depth > (1u << 24))
		return -EINVAL;
	if (depth == 0)
		depth = 1024;
	while (size < depth)
		size <<= 1;
	pr = sk_alloc_aligned(64, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	memset(pr, 0, sizeof(*pr));
	atomic_init(&pr->refs, nends);
	pr->nends = nends;
	pr->depth = depth;
	pr->mask = size - 1;
	rc = loop_end_init(pr, &pr->end[0], nq, mac_a, 1);
	if (!rc && nends == 2)
		rc = loop_end_init(pr, &pr->end[1], nq, mac_b, 2);
	if (rc) {
		loop_free_pair(pr);
		return rc;
	}
	*out = pr;
	return 0;
}

int sk_netdev_loop_pair(unsigned nqueues, unsigned depth, const uint8_t *mac_a,
			const uint8_t *mac_b, struct sk_netdev **a, struct sk_netdev **b)
{
	struct loop_pair *pr;
	int rc = loop_create(nqueues, depth, 2, mac_a, mac_b, &pr);

	if (rc)
		return rc;
	pr->end[0].peer = &pr->end[1];
	pr->end[1].peer = &pr->end[0];
	strcpy(pr->end[0].dev.name, "loop0a");
	strcpy(pr->end[1].dev.name, "loop0b");
	*a = &pr->end[0].dev;
	*b = &pr->end[1].dev;
	return 0;
}

int sk_netdev_loop_self(unsigned nqueues, unsigned depth, const uint8_t *mac,
			struct sk_netdev **out)
{
	struct loop_pair *pr;
	int rc = loop_create(nqueues, depth, 1, mac, NULL, &pr);

	if (rc)
		return rc;
	pr->end[0].peer = &pr->end[0];
	strcpy(pr->end[0].dev.name, "lo");
	*out = &pr->end[0].dev;
	return 0;
}

void sk_netdev_stats_sum(const struct sk_netdev *d, struct sk_netdev_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned q = 0; q < d->nqueues && q < SK_NETDEV_MAX_QUEUES; q++) {
		const struct sk_netdev_stats *s = &d->stats[q];
		out->rx_packets += s->rx_packets;
		out->rx_bytes += s->rx_bytes;
		out->tx_packets += s->tx_packets;
		out->tx_bytes += s->tx_bytes;
		out->rx_dropped += s->rx_dropped;
		out->tx_dropped += s->tx_dropped;
		out->f_dropped += s->f_dropped;
		out->f_duplicated += s->f_duplicated;
		out->f_reordered += s->f_reordered;
		out->f_delayed += s->f_delayed;
		out->f_corrupted += s->f_corrupted;
	}
}
