/*
 * arp.c - ARP (RFC 826) for one instance: the neighbour cache, the packets
 * parked while an address resolves, requests, replies, announcements.
 *
 * The cache is a fixed table of ARP_MAX entries hashed by IPv4 address
 * (chains through indices; no allocation after init).  An entry is either
 * INCOMPLETE (a request is out, up to nx_ip_tun.arp_pending packets wait
 * on it, ARP_PARKED_MAX over all entries, oldest dropped first) or
 * REACHABLE until it expires.  An expired
 * entry keeps being used while it is re-confirmed (a request per retry
 * interval); unanswered nx_ip_tun.arp_tries times it is forgotten.  One
 * background timer, armed at the earliest due retry, drives requests for
 * incomplete entries; expiry of reachable ones is checked on use.
 *
 * Learning: a request or reply addressed to us creates or refreshes the
 * sender's entry (and tells the other shards of the group); any other
 * valid ARP packet only updates an entry we already have (RFC 826 "merge").
 * Senders claiming our own address, broadcast/multicast/zero MACs or
 * unusable IPs are dropped (arp_bad).
 *
 *   nx_arp_input -> arp_update -> arp_flush (parked packets out)
 *   nx_arp_output -> lookup -> nx_eth_output | park + arp_request
 *   arp_timer -> arp_request (retry) | arp_drop_entry (unresolved)
 */
#include <errno.h>
#include <string.h>

#include "nx.h"
#include "skerry/alloc.h"
#include "skerry/timer.h"

#define ARP_MAX 256		/* cache entries */
#define ARP_PARKED_MAX 256	/* parked packets over all entries */
#define ARP_BUCKETS 128
#define ARP_NONE 0xffff

#define ARP_HTYPE_ETH 1
#define ARP_OP_REQUEST 1
#define ARP_OP_REPLY 2
#define ARP_LEN 28

enum arp_state { ARP_FREE, ARP_INCOMPLETE, ARP_REACHABLE };

struct arp_entry {
	uint32_t ip;
	uint16_t next;		/* hash chain (index), or ARP_NONE */
	uint8_t state;
	uint8_t tries;		/* requests sent since it was last confirmed */
	uint8_t mac[6];
	uint16_t npending;
	uint64_t expires;	/* REACHABLE: until then no re-confirmation */
	uint64_t retry_at;	/* next request due (INCOMPLETE, or expired) */
	uint64_t used;		/* last lookup or update, for eviction */
	uint64_t told;		/* last nx_group_arp_learned() about it */
	struct sk_pkt *pending, *pending_tail;	/* linked by nextpkt */
};

struct nx_arp {
	struct nx_stack *st;
	struct sk_timer timer;
	unsigned count;
	unsigned parked;	/* packets waiting, all entries */
	uint16_t buckets[ARP_BUCKETS];
	uint16_t free;		/* free list through next */
	struct arp_entry e[ARP_MAX];
};

static const uint8_t mac_zero[6];

static unsigned arp_hash(uint32_t ip)
{
	return (ip * 2654435761u) >> (32 - 7);
}

static struct arp_entry *arp_find(struct nx_arp *a, uint32_t ip)
{
	for (uint16_t i = a->buckets[arp_hash(ip)]; i != ARP_NONE; i = a->e[i].next)
		if (a->e[i].ip == ip)
			return &a->e[i];
	return NULL;
}

/* Unlink @e from its chain and free it; parked packets are dropped into
 * counter @unresolved (true: arp_unresolved, false: arp_pending_dropped). */
static void arp_drop_entry(struct nx_stack *st, struct arp_entry *e, bool unresolved)
{
	struct nx_arp *a = st->arp;
	uint16_t idx = (uint16_t)(e - a->e);
	uint16_t *pp = &a->buckets[arp_hash(e->ip)];

	while (*pp != idx)
		pp = &a->e[*pp].next;
	*pp = e->next;
	a->parked -= e->npending;
	for (struct sk_pkt *p = e->pending, *n; p; p = n) {
		n = p->nextpkt;
		p->nextpkt = NULL;
		if (unresolved)
			NX_INC(st, arp_unresolved);
		else
			NX_INC(st, arp_pending_dropped);
		sk_pkt_free(p);
	}
	memset(e, 0, sizeof(*e));
	e->state = ARP_FREE;
	e->next = a->free;
	a->free = idx;
	a->count--;
}

/* A free entry for @ip (not in the table yet), evicting when full: an
 * expired reachable entry if there is one, else the least recently used. */
static struct arp_entry *arp_new(struct nx_stack *st, uint32_t ip, uint64_t now)
{
	struct nx_arp *a = st->arp;

	if (a->free == ARP_NONE) {
		struct arp_entry *victim = NULL;
		for (unsigned i = 0; i < ARP_MAX; i++) {
			struct arp_entry *e = &a->e[i];
			if (e->state == ARP_REACHABLE && now >= e->expires) {
				victim = e;
				break;
			}
			if (!victim || e->used < victim->used)
				victim = e;
		}
		arp_drop_entry(st, victim, false);
	}
	uint16_t idx = a->free;
	struct arp_entry *e = &a->e[idx];
	a->free = e->next;
	memset(e, 0, sizeof(*e));
	e->ip = ip;
	e->used = now;
	unsigned b = arp_hash(ip);
	e->next = a->buckets[b];
	a->buckets[b] = idx;
	a->count++;
	return e;
}

/* Arm the timer for @at unless it already fires sooner. */
static void arp_timer_at(struct nx_arp *a, uint64_t at)
{
	if (sk_timer_armed(&a->timer) && a->timer.deadline <= at)
		return;
	sk_timer_arm_at(&a->timer, at);
}

/* Build and queue one ARP packet. */
static void arp_send(struct nx_stack *st, uint16_t op, const uint8_t *dst_mac,
		     const uint8_t *tha, uint32_t tpa)
{
	struct sk_pkt *p = sk_pkt_alloc();
	uint8_t *h;

	h = p ? sk_pkt_append(p, ARP_LEN) : NULL;
	if (!h) {
		if (p)
			sk_pkt_free(p);
		NX_INC(st, tx_dropped);
		return;
	}
	nx_put16(h, ARP_HTYPE_ETH);
	nx_put16(h + 2, NX_ETH_P_IP);
	h[4] = 6;
	h[5] = 4;
	nx_put16(h + 6, op);
	memcpy(h + 8, st->mac, 6);
	nx_put32(h + 14, st->ip);
	memcpy(h + 18, tha, 6);
	nx_put32(h + 24, tpa);
	if (op == ARP_OP_REQUEST)
		NX_INC(st, arp_requests_sent);
	else
		NX_INC(st, arp_replies_sent);
	nx_eth_output(st, p, dst_mac, NX_ETH_P_ARP);
}

static void arp_request(struct nx_stack *st, struct arp_entry *e, uint64_t now)
{
	e->tries++;
	e->retry_at = now + nx_ip_tun.arp_retry_ns;
	arp_timer_at(st->arp, e->retry_at);
	arp_send(st, ARP_OP_REQUEST, nx_mac_bcast, mac_zero, e->ip);
}

static void arp_flush(struct nx_stack *st, struct arp_entry *e)
{
	struct sk_pkt *p = e->pending;

	st->arp->parked -= e->npending;
	e->pending = e->pending_tail = NULL;
	e->npending = 0;
	while (p) {
		struct sk_pkt *n = p->nextpkt;
		p->nextpkt = NULL;
		nx_eth_output(st, p, e->mac, NX_ETH_P_IP);
		p = n;
	}
}

/*
 * @ip is at @mac.  @create: make an entry if there is none (the packet
 * was addressed to us, or another shard learned it).  @tell: pass it on
 * to the other shards.
 */
static void arp_update(struct nx_stack *st, uint32_t ip, const uint8_t *mac,
		       bool create, bool tell)
{
	struct nx_arp *a = st->arp;
	uint64_t now = sk_now_ns();
	struct arp_entry *e = arp_find(a, ip);

	if (!e) {
		if (!create)
			return;
		e = arp_new(st, ip, now);
	}
	/* Replies all reach the shard of queue 0 (no ports to hash), maybe
	 * for a request another shard sent: pass on news, and refreshes
	 * too (at most once per retry interval per address). */
	bool tell_now = e->state != ARP_REACHABLE || memcmp(e->mac, mac, 6) != 0 ||
			now - e->told >= nx_ip_tun.arp_retry_ns;
	if (e->state == ARP_INCOMPLETE)
		NX_INC(st, arp_resolved);
	memcpy(e->mac, mac, 6);
	e->state = ARP_REACHABLE;
	e->tries = 0;
	e->expires = now + nx_ip_tun.arp_reachable_ns;
	e->used = now;
	arp_flush(st, e);
	if (tell && tell_now) {
		e->told = now;
		nx_group_arp_learned(st, ip, mac);
	}
}

/* Usable as a host's address on the wire: not 0/8, loopback, multicast,
 * class E or broadcast. */
static bool arp_ip_ok(const struct nx_stack *st, uint32_t ip)
{
	uint8_t top = (uint8_t)(ip >> 24);

	if (top == 0 || top == 127 || top >= 224)
		return false;
	/* Our subnet's broadcast address (prefixes up to /30). */
	if (st->mask != 0xffffffffu && st->mask != 0xfffffffeu &&
	    (ip & ~st->mask) == ~st->mask)
		return false;
	return true;
}

void nx_arp_input(struct nx_stack *st, struct sk_pkt *p)
{
	const uint8_t *h = p->pkt_len >= ARP_LEN ? nx_pull(p, ARP_LEN) : NULL;

	NX_INC(st, arp_rx);
	if (!h)
		goto bad;
	uint16_t op = nx_get16(h + 6);
	const uint8_t *sha = h + 8, *tha = h + 18;
	uint32_t spa = nx_get32(h + 14), tpa = nx_get32(h + 24);
	(void)tha;
	if (nx_get16(h) != ARP_HTYPE_ETH || nx_get16(h + 2) != NX_ETH_P_IP ||
	    h[4] != 6 || h[5] != 4 || (op != ARP_OP_REQUEST && op != ARP_OP_REPLY))
		goto bad;
	/* A sender must be one real host: no group or null MAC, not us. */
	if ((sha[0] & 1) || memcmp(sha, mac_zero, 6) == 0 ||
	    memcmp(sha, st->mac, 6) == 0)
		goto bad;
	/* spa 0 is an RFC 5227 probe: answered, never learned.  A sender
	 * with our address is a conflict: never learned either. */
	if (spa == st->ip || (spa != 0 && !arp_ip_ok(st, spa)))
		goto bad;
	bool for_us = tpa == st->ip;
	if (spa != 0)
		arp_update(st, spa, sha, for_us, true);
	if (for_us && op == ARP_OP_REQUEST)
		arp_send(st, ARP_OP_REPLY, sha, sha, spa);
	sk_pkt_free(p);
	return;
bad:
	NX_INC(st, arp_bad);
	sk_pkt_free(p);
}

void nx_arp_output(struct nx_stack *st, struct sk_pkt *p, uint32_t next_hop)
{
	struct nx_arp *a = st->arp;
	uint64_t now = sk_now_ns();
	struct arp_entry *e = arp_find(a, next_hop);

	if (e && e->state == ARP_REACHABLE) {
		e->used = now;
		if (now >= e->expires && now >= e->retry_at) {
			/* Stale: keep sending to the MAC we know while we
			 * ask again; forget it after arp_tries silences. */
			if (e->tries >= nx_ip_tun.arp_tries) {
				arp_drop_entry(st, e, true);
				e = NULL;
			} else {
				arp_request(st, e, now);
			}
		}
		if (e) {
			nx_eth_output(st, p, e->mac, NX_ETH_P_IP);
			return;
		}
	}
	if (!e) {
		e = arp_new(st, next_hop, now);
		e->state = ARP_INCOMPLETE;
		arp_request(st, e, now);
	}
	/* Park it.  The oldest of its address goes when that queue (or
	 * all of them together) is full; with nothing of its own to give
	 * up, the newcomer is dropped. */
	if (e->npending >= nx_ip_tun.arp_pending || a->parked >= ARP_PARKED_MAX) {
		struct sk_pkt *old = e->pending;
		if (!old) {
			NX_INC(st, arp_pending_dropped);
			sk_pkt_free(p);
			return;
		}
		e->pending = old->nextpkt;
		if (!e->pending)
			e->pending_tail = NULL;
		old->nextpkt = NULL;
		e->npending--;
		a->parked--;
		NX_INC(st, arp_pending_dropped);
		sk_pkt_free(old);
	}
	p->nextpkt = NULL;
	if (e->pending_tail)
		e->pending_tail->nextpkt = p;
	else
		e->pending = p;
	e->pending_tail = p;
	e->npending++;
	a->parked++;
}

void nx_arp_learn(struct nx_stack *st, uint32_t ip, const uint8_t *mac)
{
	arp_update(st, ip, mac, true, false);
}

void nx_arp_announce(struct nx_stack *st)
{
	/* RFC 5227 announcement: a request for our own address. */
	arp_send(st, ARP_OP_REQUEST, nx_mac_bcast, mac_zero, st->ip);
}

/* Retry due requests; give up on those asked arp_tries times. */
static void arp_timer(struct sk_timer *t)
{
	struct nx_stack *st = t->arg;
	struct nx_arp *a = st->arp;
	uint64_t now = sk_now_ns(), next = UINT64_MAX;

	for (unsigned i = 0; i < ARP_MAX; i++) {
		struct arp_entry *e = &a->e[i];
		if (e->state != ARP_INCOMPLETE)
			continue;
		if (now >= e->retry_at) {
			if (e->tries >= nx_ip_tun.arp_tries) {
				arp_drop_entry(st, e, true);
				continue;
			}
			e->tries++;
			e->retry_at = now + nx_ip_tun.arp_retry_ns;
			arp_send(st, ARP_OP_REQUEST, nx_mac_bcast, mac_zero, e->ip);
		}
		if (e->retry_at < next)
			next = e->retry_at;
	}
	if (next != UINT64_MAX)
		sk_timer_arm_at(&a->timer, next);
}

int nx_arp_init(struct nx_stack *st)
{
	struct nx_arp *a = sk_zalloc(sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->st = st;
	for (unsigned i = 0; i < ARP_BUCKETS; i++)
		a->buckets[i] = ARP_NONE;
	for (unsigned i = 0; i < ARP_MAX; i++)
		a->e[i].next = i + 1 < ARP_MAX ? (uint16_t)(i + 1) : ARP_NONE;
	a->free = 0;
	sk_timer_init(&a->timer, arp_timer, st);
	a->timer.flags = SK_TIMER_BACKGROUND;
	st->arp = a;
	return 0;
}

void nx_arp_fini(struct nx_stack *st)
{
	struct nx_arp *a = st->arp;

	if (!a)
		return;
	sk_timer_cancel(&a->timer);
	for (unsigned i = 0; i < ARP_MAX; i++) {
		for (struct sk_pkt *p = a->e[i].pending, *n; p; p = n) {
			n = p->nextpkt;
			p->nextpkt = NULL;
			sk_pkt_free(p);
		}
	}
	sk_free(a);
	st->arp = NULL;
}
