/*
 * ip.c - IPv4 (RFC 791/1122) and ICMP (RFC 792) for one instance.
 *
 * Input:  nx_ip_input: header checks -> fragment? steer by the 2-tuple,
 *         frag_input (reassembly) -> ip_deliver: steer TCP/UDP by the
 *         flow hash -> strip the header -> ICMP | UDP | TCP.
 * Output: nx_ip_output: route (ourselves, subnet, gateway, broadcast) ->
 *         header -> ip_fragment past the MTU -> ip_send -> ARP / Ethernet.
 *
 * Reassembly keeps at most nx_ip_tun.frag_max datagrams in progress from
 * a table made at init, each with up to FRAG_PIECES fragments sorted by
 * offset, and holds at most nx_ip_tun.frag_mem bytes of buffers (counted
 * by buffer size, so a flood of tiny fragments is bounded too); past
 * either limit the oldest datagram goes.  Overlaps are not merged: an
 * exact duplicate of a fragment we have is dropped alone, any other
 * overlap (or disagreement about the end) drops the whole datagram, as
 * RFC 5722 does for IPv6, so no byte can be rewritten by a later
 * fragment.  A complete datagram is copied into one fresh buffer (heap
 * when past a pool buffer) with a new 20-byte header and goes on as if it
 * had arrived whole.  A one-shot background timer at the oldest datagram's
 * deadline expires them (ip_frag_timeout).
 */
#include <errno.h>
#include <string.h>

#include "nx.h"
#include "skerry/alloc.h"
#include "skerry/timer.h"

struct nx_ip_tunables nx_ip_tun = {
	.arp_reachable_ns = 300 * SK_NSEC_PER_SEC,
	.arp_retry_ns = SK_NSEC_PER_SEC,
	.arp_tries = 3,
	.arp_pending = 64,
	.frag_timeout_ns = 30 * SK_NSEC_PER_SEC,
	.frag_max = 64,
	.frag_mem = 4u << 20,
	.icmp_rate = 100,
};

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff
#define IP_TTL 64
#define IP_MAXPAYLOAD (65535 - NX_IP_HLEN)

#define ICMP_ECHOREPLY 0
#define ICMP_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_UNREACH_PROTO 2

#define FRAG_PIECES 64		/* fragments per datagram */

struct frag_piece {
	uint16_t off, len;	/* payload bytes [off, off + len) */
	struct sk_pkt *p;	/* data at the payload */
};

struct frag_q {
	struct frag_q *next;	/* in progress: oldest first; or free list */
	uint32_t src, dst;
	uint16_t id;
	uint8_t proto;
	bool have_last;
	uint32_t total;		/* payload length, once the last is in */
	uint32_t got;		/* payload bytes held */
	size_t mem;		/* buffer bytes held */
	uint64_t deadline;
	uint8_t hdr[NX_IP_HLEN];	/* the first fragment's header */
	unsigned n;
	struct frag_piece pc[FRAG_PIECES];
};

/* ip.c's per-instance state: reassembly, the IP id, the ICMP error
 * budget. */
struct nx_frag {
	struct nx_stack *st;
	struct sk_timer timer;
	uint16_t ip_id;
	unsigned nq, max;
	size_t mem;
	struct frag_q *head, **tail;	/* in progress, by age */
	struct frag_q *free;
	uint64_t icmp_last;	/* token bucket of ICMP errors */
	uint64_t icmp_tokens;	/* tokens * 1e9 */
	struct frag_q q[];
};


/* --- helpers ------------------------------------------------------------- */

static void heap_free(struct sk_pkt *p, void *arg)
{
	(void)p;
	sk_free(arg);
}

struct sk_pkt *nx_pkt_linear(uint32_t len)
{
	struct sk_pkt *p;

	if (len <= SK_PKT_DATAROOM) {
		p = sk_pkt_alloc();
		if (!p || sk_pkt_tailroom(p) >= len)
			return p;
		sk_pkt_free(p);
	}
	uint32_t size = SK_PKT_HEADROOM + len;
	uint8_t *b = sk_alloc(size);
	if (!b)
		return NULL;
	p = sk_pkt_wrap(b, size, b + SK_PKT_HEADROOM, 0, heap_free, b);
	if (!p)
		sk_free(b);
	return p;
}

static bool is_bcast(const struct nx_stack *st, uint32_t a)
{
	if (a == 0xffffffffu)
		return true;
	/* The subnet's broadcast; /31 and /32 have none (RFC 3021). */
	return st->mask < 0xfffffffeu && ((a ^ st->ip) & st->mask) == 0 &&
	       (a & ~st->mask) == ~st->mask;
}

/* Could @a be the source of a packet from the wire?  Not 0/8, loopback,
 * multicast, class E, broadcasts, nor ourselves. */
static bool src_ok(const struct nx_stack *st, uint32_t a)
{
	uint8_t top = (uint8_t)(a >> 24);

	return top != 0 && top != 127 && top < 224 && a != st->ip && !is_bcast(st, a);
}

static uint32_t ip_mtu(const struct nx_stack *st)
{
	return st->mtu >= 68 ? st->mtu : 1500;
}

static void ip_hdr_csum(uint8_t *h)
{
	nx_put16(h + 10, 0);
	nx_put16(h + 10, nx_csum_fold(nx_csum_add(0, h, NX_IP_HLEN)));
}

static size_t pkt_truesize(const struct sk_pkt *p)
{
	size_t n = 0;

	for (; p; p = p->next)
		n += p->buf_size;
	return n;
}

/* --- reassembly ---------------------------------------------------------- */

static void frag_unlink(struct nx_frag *f, struct frag_q *q)
{
	struct frag_q **pp = &f->head;

	while (*pp != q)
		pp = &(*pp)->next;
	*pp = q->next;
	if (f->tail == &q->next)
		f->tail = pp;
	f->nq--;
	f->mem -= q->mem;
	q->next = f->free;
	f->free = q;
}

/* Drop datagram @q, each fragment counted as dropped or timed out. */
static void frag_kill(struct nx_stack *st, struct frag_q *q, bool timeout)
{
	for (unsigned i = 0; i < q->n; i++) {
		if (timeout)
			NX_INC(st, ip_frag_timeout);
		else
			NX_INC(st, ip_frag_dropped);
		sk_pkt_free(q->pc[i].p);
	}
	q->n = 0;
	frag_unlink(st->frag, q);
}

static void frag_arm(struct nx_frag *f)
{
	if (f->head)
		sk_timer_arm_at(&f->timer, f->head->deadline);
	else
		sk_timer_cancel(&f->timer);
}

static void frag_timer(struct sk_timer *t)
{
	struct nx_stack *st = t->arg;
	struct nx_frag *f = st->frag;
	uint64_t now = sk_now_ns();

	while (f->head && f->head->deadline <= now)
		frag_kill(st, f->head, true);
	frag_arm(f);
}

/* The complete datagram @q as one fresh packet with a 20-byte header. */
static struct sk_pkt *frag_build(struct nx_stack *st, struct frag_q *q)
{
	uint32_t tot = NX_IP_HLEN + q->total;
	struct sk_pkt *p = nx_pkt_linear(tot);
	uint8_t *b = p ? sk_pkt_append(p, tot) : NULL;

	if (!b && p) {
		sk_pkt_free(p);
		p = NULL;
	}
	if (p) {
		memcpy(b, q->hdr, NX_IP_HLEN);
		b[0] = 0x45;
		nx_put16(b + 2, (uint16_t)tot);
		nx_put16(b + 6, 0);
		ip_hdr_csum(b);
		for (unsigned i = 0; i < q->n; i++)
			sk_pkt_copy_out(q->pc[i].p, 0, q->pc[i].len, b + NX_IP_HLEN + q->pc[i].off);
		NX_INC(st, ip_reassembled);
	}
	for (unsigned i = 0; i < q->n; i++) {
		if (!p)
			NX_INC(st, ip_frag_dropped);
		sk_pkt_free(q->pc[i].p);
	}
	q->n = 0;
	frag_unlink(st->frag, q);
	frag_arm(st->frag);
	return p;
}

/*
 * Fragment @p (data at its IP header @h of @ihl bytes, trimmed) into its
 * datagram.  Returns the reassembled datagram when this completed it,
 * else NULL (kept or dropped).
 */
static struct sk_pkt *frag_input(struct nx_stack *st, struct sk_pkt *p,
				 const uint8_t *h, uint32_t ihl)
{
	struct nx_frag *f = st->frag;
	uint16_t fl = nx_get16(h + 6);
	uint32_t off = (uint32_t)(fl & IP_OFFMASK) * 8;
	uint32_t len = p->pkt_len - ihl;
	bool mf = fl & IP_MF;
	uint32_t src = nx_get32(h + 12), dst = nx_get32(h + 16);
	uint16_t id = nx_get16(h + 4);
	uint8_t proto = h[9];
	uint8_t hdr[NX_IP_HLEN];
	size_t ts = pkt_truesize(p);
	struct frag_q *q;
	unsigned i;

	/* Empty, past 64 KiB ("ping of death"), or a middle piece that is
	 * not a multiple of 8 bytes: malformed. */
	if (len == 0 || off + len > IP_MAXPAYLOAD || (mf && (len & 7)) || ts > nx_ip_tun.frag_mem)
		goto drop;
	memcpy(hdr, h, NX_IP_HLEN);
	sk_pkt_adj(p, ihl);	/* h is stale from here */

	for (q = f->head; q; q = q->next)
		if (q->src == src && q->dst == dst && q->id == id && q->proto == proto)
			break;
	/* Make room: the oldest datagrams go first (possibly this one). */
	while (f->head && f->mem + ts > nx_ip_tun.frag_mem) {
		if (f->head == q)
			q = NULL;
		frag_kill(st, f->head, false);
	}
	if (!q) {
		if (f->nq >= f->max)
			frag_kill(st, f->head, false);
		q = f->free;
		f->free = q->next;
		memset(q, 0, offsetof(struct frag_q, pc));
		q->src = src;
		q->dst = dst;
		q->id = id;
		q->proto = proto;
		q->deadline = sk_now_ns() + nx_ip_tun.frag_timeout_ns;
		*f->tail = q;
		f->tail = &q->next;
		f->nq++;
		frag_arm(f);
	}

	if (!mf) {
		if (q->have_last && q->total != off + len)
			goto kill;
		if (q->n && q->pc[q->n - 1].off + q->pc[q->n - 1].len > off + len)
			goto kill;
		q->have_last = true;
		q->total = off + len;
	} else if (q->have_last && off + len > q->total) {
		goto kill;
	}
	for (i = 0; i < q->n && q->pc[i].off < off; i++)
		;
	if (i < q->n && q->pc[i].off == off && q->pc[i].len == len) {
		/* A duplicate (retransmitted, or duplicated on the way):
		 * the first copy stands. */
		NX_INC(st, ip_frag_dropped);
		sk_pkt_free(p);
		return NULL;
	}
	if ((i > 0 && q->pc[i - 1].off + q->pc[i - 1].len > off) ||
	    (i < q->n && q->pc[i].off < off + len) || q->n == FRAG_PIECES)
		goto kill;
	memmove(&q->pc[i + 1], &q->pc[i], (q->n - i) * sizeof(q->pc[0]));
	q->pc[i] = (struct frag_piece){ (uint16_t)off, (uint16_t)len, p };
	q->n++;
	q->got += len;
	q->mem += ts;
	f->mem += ts;
	if (off == 0)
		memcpy(q->hdr, hdr, NX_IP_HLEN);
	/* No overlaps, so holding every byte up to the end means done. */
	if (q->have_last && q->got == q->total)
		return frag_build(st, q);
	return NULL;
kill:
	frag_kill(st, q, false);
	frag_arm(f);
drop:
	NX_INC(st, ip_frag_dropped);
	sk_pkt_free(p);
	return NULL;
}

/* --- input --------------------------------------------------------------- */

/* @p: data at a valid IP header of @ihl bytes, trimmed, not a fragment. */
static void ip_deliver(struct nx_stack *st, struct sk_pkt *p, uint32_t ihl)
{
	const uint8_t *h = p->data;
	uint32_t src = nx_get32(h + 12), dst = nx_get32(h + 16);
	uint8_t proto = h[9];

	if (proto == NX_IPPROTO_TCP && dst != st->ip) {
		/* TCP to a broadcast address is silently dropped (RFC 1122
		 * 4.2.3.10): no connection, no RST. */
		NX_INC(st, ip_not_ours);
		sk_pkt_free(p);
		return;
	}
	if (proto == NX_IPPROTO_TCP || proto == NX_IPPROTO_UDP) {
		/* The owner shard of the flow; too short for ports: the
		 * transport counts it, wherever it is. */
		const uint8_t *l4 = p->pkt_len >= ihl + 4 ? nx_pull(p, ihl + 4) : NULL;
		if (l4) {
			l4 += ihl;
			uint32_t hash = sk_rss_hash(src, dst, nx_get16(l4),
						    nx_get16(l4 + 2), true);
			if (nx_steer(st, p, hash))
				return;
		}
	} else if (proto != NX_IPPROTO_ICMP) {
		NX_INC(st, ip_bad_proto);
		if (dst == st->ip)
			nx_icmp_unreach(st, p, ICMP_UNREACH_PROTO);
		sk_pkt_free(p);
		return;
	}
	p->l3_len = (uint16_t)ihl;
	sk_pkt_adj(p, ihl);
	switch (proto) {
	case NX_IPPROTO_UDP:
		nx_udp_input(st, p, src, dst);
		break;
	case NX_IPPROTO_TCP:
		nx_tcp_input(st, p, src, dst);
		break;
	default:
		nx_icmp_input(st, p, src, dst);
		break;
	}
}

void nx_ip_input(struct nx_stack *st, struct sk_pkt *p)
{
	const uint8_t *h;
	uint32_t ihl, tot, src, dst;
	bool local = p->ol_flags & NX_PKT_LOCAL;

	NX_INC(st, ip_rx);
	h = p->pkt_len >= NX_IP_HLEN ? nx_pull(p, NX_IP_HLEN) : NULL;
	if (!h) {
		NX_INC(st, ip_short);
		goto drop;
	}
	if (h[0] >> 4 != 4) {
		NX_INC(st, ip_bad_version);
		goto drop;
	}
	ihl = (h[0] & 15u) * 4;
	tot = nx_get16(h + 2);
	if (ihl < NX_IP_HLEN || ihl > tot) {
		NX_INC(st, ip_bad_hlen);
		goto drop;
	}
	if (tot > p->pkt_len) {
		NX_INC(st, ip_bad_len);
		goto drop;
	}
	h = nx_pull(p, ihl);
	if (!h) {
		NX_INC(st, ip_short);
		goto drop;
	}
	if (!(p->ol_flags & (SK_PKT_RX_IP_CSUM_GOOD | NX_PKT_LOCAL)) &&
	    nx_csum_fold(nx_csum_add(0, h, ihl)) != 0) {
		NX_INC(st, ip_bad_csum);
		goto drop;
	}
	/* Link-layer padding (Ethernet's 60-byte minimum). */
	if (p->pkt_len > tot)
		sk_pkt_trim(p, tot);
	src = nx_get32(h + 12);
	dst = nx_get32(h + 16);
	if (!local && !src_ok(st, src)) {
		NX_INC(st, ip_bad_src);
		goto drop;
	}
	if (dst != st->ip && !is_bcast(st, dst)) {
		NX_INC(st, ip_not_ours);
		goto drop;
	}
	if (nx_get16(h + 6) & (IP_MF | IP_OFFMASK)) {
		/* All fragments of a datagram meet on one shard: the
		 * 2-tuple's owner (only the first carries the ports). */
		if (nx_steer(st, p, sk_rss_hash(src, dst, 0, 0, false)))
			return;
		NX_INC(st, ip_frags);
		p = frag_input(st, p, h, ihl);
		if (!p)
			return;
		ihl = NX_IP_HLEN;
	}
	ip_deliver(st, p, ihl);
	return;
drop:
	sk_pkt_free(p);
}

/* --- output -------------------------------------------------------------- */

/* The transport asked for a checksum offload the packet cannot get (no
 * such device, or fragmented): finish the checksum here.  @p: data at the
 * IP header; the field holds the pseudo-header sum. */
static void l4_csum_soft(struct sk_pkt *p, uint8_t proto)
{
	uint32_t at = proto == NX_IPPROTO_TCP ? 16 : proto == NX_IPPROTO_UDP ? 6 : 0;
	uint32_t l4len = p->pkt_len - NX_IP_HLEN;
	uint8_t *c;

	p->ol_flags &= ~SK_PKT_TX_L4_CSUM;
	if (!at || l4len < at + 2 || !(c = nx_pull(p, NX_IP_HLEN + at + 2)))
		return;
	c += NX_IP_HLEN + at;
	uint32_t pseudo = nx_get16(c);
	nx_put16(c, 0);
	uint16_t v = nx_csum_fold(nx_csum_pkt(pseudo, p, NX_IP_HLEN, l4len));
	if (v == 0 && proto == NX_IPPROTO_UDP)
		v = 0xffff;
	nx_put16(c, v);
}

/* Finish the header's checksum and hand the packet to the link. */
static void ip_send(struct nx_stack *st, struct sk_pkt *p, uint32_t hop, bool bcast)
{
	if (st->dev->offloads & SK_NETDEV_TX_IP_CSUM)
		p->ol_flags |= SK_PKT_TX_IP_CSUM;
	else
		ip_hdr_csum(p->data);
	if (p->ol_flags & (SK_PKT_TX_IP_CSUM | SK_PKT_TX_L4_CSUM)) {
		/* Where the device finds the headers it completes. */
		p->l2_len = NX_ETH_HLEN;
		p->l3_len = NX_IP_HLEN;
	}
	if (bcast)
		nx_eth_output(st, p, nx_mac_bcast, NX_ETH_P_IP);
	else
		nx_arp_output(st, p, hop);
}

/* @p: a datagram with its header past the MTU; sends it in pieces. */
static int ip_fragment(struct nx_stack *st, struct sk_pkt *p, uint32_t hop, bool bcast,
		       uint8_t proto)
{
	uint32_t plen = p->pkt_len - NX_IP_HLEN;
	uint32_t step = (ip_mtu(st) - NX_IP_HLEN) & ~7u;

	if (p->ol_flags & SK_PKT_TX_L4_CSUM)
		l4_csum_soft(p, proto);
	if (step < 8) {
		NX_INC(st, tx_dropped);
		sk_pkt_free(p);
		return -EMSGSIZE;
	}
	for (uint32_t off = 0, n; off < plen; off += n) {
		n = plen - off < step ? plen - off : step;
		struct sk_pkt *f = nx_pkt_linear(NX_IP_HLEN + n);
		uint8_t *b = f ? sk_pkt_append(f, NX_IP_HLEN + n) : NULL;
		if (!b) {
			if (f)
				sk_pkt_free(f);
			NX_INC(st, tx_dropped);
			sk_pkt_free(p);
			return -ENOMEM;
		}
		memcpy(b, p->data, NX_IP_HLEN);
		nx_put16(b + 2, (uint16_t)(NX_IP_HLEN + n));
		nx_put16(b + 6, (uint16_t)(off >> 3 | (off + n < plen ? IP_MF : 0)));
		sk_pkt_copy_out(p, NX_IP_HLEN + off, n, b + NX_IP_HLEN);
		f->l3_len = NX_IP_HLEN;
		NX_INC(st, ip_frags_sent);
		ip_send(st, f, hop, bcast);
	}
	sk_pkt_free(p);
	return 0;
}

int nx_ip_output(struct nx_stack *st, struct sk_pkt *p, uint32_t dst,
		 uint8_t proto, bool df)
{
	uint32_t tot = p->pkt_len + NX_IP_HLEN, hop = dst;
	bool local = dst == st->ip || dst >> 24 == 127;
	bool bcast = !local && is_bcast(st, dst);
	uint8_t *h;

	if (tot > 65535) {
		NX_INC(st, tx_dropped);
		sk_pkt_free(p);
		return -EMSGSIZE;
	}
	if (!local && !bcast && ((dst ^ st->ip) & st->mask) != 0) {
		if (!st->gw) {
			NX_INC(st, ip_no_route);
			sk_pkt_free(p);
			return -ENETUNREACH;
		}
		hop = st->gw;
	}
	h = sk_pkt_prepend(p, NX_IP_HLEN);
	if (!h) {
		NX_INC(st, tx_dropped);
		sk_pkt_free(p);
		return -ENOBUFS;
	}
	h[0] = 0x45;
	h[1] = 0;
	nx_put16(h + 2, (uint16_t)tot);
	nx_put16(h + 4, st->frag->ip_id++);
	nx_put16(h + 6, df ? IP_DF : 0);
	h[8] = IP_TTL;
	h[9] = proto;
	nx_put16(h + 10, 0);
	nx_put32(h + 12, st->ip);
	nx_put32(h + 16, local ? st->ip : dst);
	p->l3_len = NX_IP_HLEN;

	if (local) {
		/* Like lo: no MTU, no wire, so checksums are known good
		 * (an offloaded L4 one was never filled in). */
		ip_hdr_csum(h);
		p->ol_flags = (p->ol_flags & ~(SK_PKT_TX_IP_CSUM | SK_PKT_TX_L4_CSUM)) |
			      NX_PKT_LOCAL | SK_PKT_RX_IP_CSUM_GOOD | SK_PKT_RX_L4_CSUM_GOOD;
		nx_local_deliver(st, p);
		return 0;
	}
	if (tot > ip_mtu(st)) {
		if (df) {
			NX_INC(st, tx_dropped);
			sk_pkt_free(p);
			return -EMSGSIZE;
		}
		return ip_fragment(st, p, hop, bcast, proto);
	}
	if ((p->ol_flags & SK_PKT_TX_L4_CSUM) && !(st->dev->offloads & SK_NETDEV_TX_L4_CSUM))
		l4_csum_soft(p, proto);
	ip_send(st, p, hop, bcast);
	return 0;
}

/* --- ICMP ---------------------------------------------------------------- */

void nx_icmp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst)
{
	uint32_t len = p->pkt_len;
	uint8_t *h = len >= 8 ? nx_pull(p, 8) : NULL;

	NX_INC(st, icmp_rx);
	if (!h || (!(p->ol_flags & NX_PKT_LOCAL) &&
		   nx_csum_fold(nx_csum_pkt(0, p, 0, len)) != 0)) {
		NX_INC(st, icmp_bad);
		goto drop;
	}
	/* Only echo, and not to a broadcast address (smurf amplifier). */
	if (h[0] != ICMP_ECHO || dst != st->ip) {
		NX_INC(st, icmp_ignored);
		goto drop;
	}
	if (p->refcnt != 1) {
		/* Shared: answer from a copy. */
		struct sk_pkt *c = sk_pkt_copy(p);
		sk_pkt_free(p);
		if (!c) {
			NX_INC(st, tx_dropped);
			return;
		}
		p = c;
		h = p->data;
	}
	/* Same id, sequence and payload; only the type changes. */
	h[0] = ICMP_ECHOREPLY;
	nx_put16(h + 2, 0);
	nx_put16(h + 2, nx_csum_fold(nx_csum_pkt(0, p, 0, len)));
	p->ol_flags = 0;
	NX_INC(st, icmp_echo_replies);
	nx_ip_output(st, p, src, NX_IPPROTO_ICMP, false);
	return;
drop:
	sk_pkt_free(p);
}

/* One more ICMP error within the rate? */
static bool icmp_rate_ok(struct nx_frag *f)
{
	uint64_t now = sk_now_ns(), cap = (uint64_t)nx_ip_tun.icmp_rate * SK_NSEC_PER_SEC;

	f->icmp_tokens += (now - f->icmp_last) * nx_ip_tun.icmp_rate;
	if (f->icmp_tokens > cap)
		f->icmp_tokens = cap;
	f->icmp_last = now;
	if (f->icmp_tokens < SK_NSEC_PER_SEC)
		return false;
	f->icmp_tokens -= SK_NSEC_PER_SEC;
	return true;
}

void nx_icmp_unreach(struct nx_stack *st, const struct sk_pkt *orig, uint8_t code)
{
	uint8_t ih[NX_IP_HLEN];

	if (sk_pkt_copy_out(orig, 0, NX_IP_HLEN, ih) != 0)
		return;
	uint32_t ihl = (ih[0] & 15u) * 4, src = nx_get32(ih + 12), dst = nx_get32(ih + 16);
	/* RFC 1122 3.2.2: never about a broadcast, a non-initial fragment,
	 * an ICMP message, or a source that is no single host. */
	if (dst != st->ip || (nx_get16(ih + 6) & IP_OFFMASK) || ih[9] == NX_IPPROTO_ICMP ||
	    ihl < NX_IP_HLEN || (src != st->ip && !src_ok(st, src)))
		return;
	if (!icmp_rate_ok(st->frag))
		return;
	uint32_t n = ihl + 8 < orig->pkt_len ? ihl + 8 : orig->pkt_len;
	struct sk_pkt *q = sk_pkt_alloc();
	uint8_t *b = q ? sk_pkt_append(q, 8 + n) : NULL;
	if (!b) {
		if (q)
			sk_pkt_free(q);
		return;
	}
	b[0] = ICMP_UNREACH;
	b[1] = code;
	memset(b + 2, 0, 6);
	sk_pkt_copy_out(orig, 0, n, b + 8);
	nx_put16(b + 2, nx_csum_fold(nx_csum_add(0, b, 8 + n)));
	NX_INC(st, icmp_unreach_sent);
	nx_ip_output(st, q, src, NX_IPPROTO_ICMP, false);
}

/* --- set-up -------------------------------------------------------------- */

int nx_ip_init(struct nx_stack *st)
{
	unsigned max = nx_ip_tun.frag_max ? nx_ip_tun.frag_max : 1;
	struct nx_frag *f = sk_zalloc(sizeof(*f) + max * sizeof(f->q[0]));

	if (!f)
		return -ENOMEM;
	f->st = st;
	f->max = max;
	f->tail = &f->head;
	for (unsigned i = 0; i < max; i++) {
		f->q[i].next = f->free;
		f->free = &f->q[i];
	}
	f->ip_id = (uint16_t)nx_random(st);
	f->icmp_last = sk_now_ns();
	f->icmp_tokens = (uint64_t)nx_ip_tun.icmp_rate * SK_NSEC_PER_SEC;
	sk_timer_init(&f->timer, frag_timer, st);
	f->timer.flags = SK_TIMER_BACKGROUND;
	st->frag = f;
	return 0;
}

void nx_ip_fini(struct nx_stack *st)
{
	struct nx_frag *f = st->frag;

	if (!f)
		return;
	sk_timer_cancel(&f->timer);
	while (f->head) {
		struct frag_q *q = f->head;
		for (unsigned i = 0; i < q->n; i++)
			sk_pkt_free(q->pc[i].p);
		q->n = 0;
		frag_unlink(f, q);
	}
	sk_free(f);
	st->frag = NULL;
}
