/*
 * udp.c - UDP (RFC 768) sockets of one instance.
 *
 * Sockets sit in a small hash table by local port; one socket per port and
 * instance (a second bind is -EADDRINUSE).  Reuseport needs nothing here:
 * every shard has its own instance, so each shard binds the port in its
 * own table and the device's RSS (or nx_steer) picks the shard per flow.
 *
 * Receive is zero-copy: a datagram is the received packet itself, trimmed
 * to the payload, queued on its socket (at most UDP_QMAX) and handed to
 * the app as sk_dgram.data until nx_udp_release() frees it.  A datagram
 * that arrives as a chain (a driver's scatter list, a large local send)
 * is copied into one buffer first, since sk_dgram is one run of bytes.
 * Send copies the payload into pool buffers (a chain past one buffer) and
 * leaves fragmentation to nx_ip_output.
 *
 *   nx_udp_input -> udp_find -> pending recv | queue
 *   nx_udp_send  -> udp_payload -> checksum -> nx_ip_output
 */
#include <errno.h>
#include <string.h>

#include "nx.h"
#include "skerry/alloc.h"

#define UDP_BUCKETS 256
#define UDP_QMAX 256		/* datagrams queued per socket */
#define UDP_EPHEMERAL 49152	/* IANA dynamic ports: 49152..65535 */
#define UDP_MAX_PAYLOAD (65535 - NX_IP_HLEN - NX_UDP_HLEN)
#define ICMP_UNREACH_PORT 3

struct sk_udp {
	struct nx_stack *st;
	struct sk_udp *hnext;		/* hash chain */
	uint32_t ip;			/* bound address; 0: any */
	uint16_t port;
	unsigned qlen;
	struct sk_pkt *qhead, *qtail;	/* received, by nextpkt */
	struct sk_promise *rp;		/* pending nx_udp_recv */
	struct sk_dgram *d;		/* ... and where it wants the datagram */
};

struct nx_udp {
	unsigned count;
	uint16_t ephemeral;		/* where the next search starts */
	struct sk_udp *b[UDP_BUCKETS];
};

static unsigned udp_hash(uint16_t port)
{
	return (port * 40503u >> 8) & (UDP_BUCKETS - 1);
}

static struct sk_udp *udp_find(const struct nx_udp *t, uint16_t port)
{
	for (struct sk_udp *u = t->b[udp_hash(port)]; u; u = u->hnext)
		if (u->port == port)
			return u;
	return NULL;
}

/* The queued packet @p (data at the payload) into @d. */
static void udp_fill(struct sk_dgram *d, struct sk_pkt *p)
{
	d->data = p->data;
	d->len = p->pkt_len;
	d->from.ip = (uint32_t)p->meta[0];
	d->from.port = (uint16_t)p->meta[1];
	d->priv = p;
}

/* @p as one contiguous run of bytes (the chain is freed); NULL: no memory. */
static struct sk_pkt *udp_linear(struct sk_pkt *p)
{
	struct sk_pkt *c = nx_pkt_linear(p->pkt_len);
	uint8_t *b = c ? sk_pkt_append(c, p->pkt_len) : NULL;

	if (b) {
		sk_pkt_copy_out(p, 0, p->pkt_len, b);
	} else if (c) {
		sk_pkt_free(c);
		c = NULL;
	}
	sk_pkt_free(p);
	return c;
}

void nx_udp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst)
{
	const uint8_t *h = p->pkt_len >= NX_UDP_HLEN ? nx_pull(p, NX_UDP_HLEN) : NULL;
	struct sk_udp *u;

	NX_INC(st, udp_rx);
	if (!h) {
		NX_INC(st, udp_short);
		goto drop;
	}
	uint16_t sport = nx_get16(h), dport = nx_get16(h + 2);
	uint16_t ulen = nx_get16(h + 4), csum = nx_get16(h + 6);
	if (ulen < NX_UDP_HLEN || ulen > p->pkt_len) {
		NX_INC(st, udp_bad_len);
		goto drop;
	}
	if (ulen < p->pkt_len)
		sk_pkt_trim(p, ulen);
	/* 0: the sender did not compute one (allowed over IPv4). */
	if (csum && !(p->ol_flags & (SK_PKT_RX_L4_CSUM_GOOD | NX_PKT_LOCAL)) &&
	    nx_csum_fold(nx_csum_pkt(nx_csum_pseudo(src, dst, NX_IPPROTO_UDP, ulen),
				     p, 0, ulen)) != 0) {
		NX_INC(st, udp_bad_csum);
		goto drop;
	}
	u = udp_find(st->udp, dport);
	if (!u || (u->ip && u->ip != dst)) {
		NX_INC(st, udp_no_port);
		/* The IP header is still in front of the data. */
		if (dst == st->ip && sk_pkt_prepend(p, p->l3_len))
			nx_icmp_unreach(st, p, ICMP_UNREACH_PORT);
		goto drop;
	}
	if (u->qlen >= UDP_QMAX) {
		NX_INC(st, udp_queue_full);
		goto drop;
	}
	sk_pkt_adj(p, NX_UDP_HLEN);
	if (p->next) {
		p = udp_linear(p);
		if (!p) {
			/* Out of buffers: as good as a full queue. */
			NX_INC(st, udp_queue_full);
			return;
		}
	}
	p->meta[0] = src;
	p->meta[1] = sport;
	p->nextpkt = NULL;
	if (u->rp) {
		struct sk_promise *rp = u->rp;
		u->rp = NULL;
		udp_fill(u->d, p);
		sk_promise_set_value(rp, (int64_t)p->pkt_len);
		return;
	}
	if (u->qtail)
		u->qtail->nextpkt = p;
	else
		u->qhead = p;
	u->qtail = p;
	u->qlen++;
	return;
drop:
	sk_pkt_free(p);
}

int nx_udp_bind(struct nx_stack *st, const struct sk_sockaddr *a, bool reuseport,
		struct sk_udp **out)
{
	struct nx_udp *t = st->udp;
	uint16_t port = a->port;
	struct sk_udp *u;

	/* Each shard's instance has its own table: reuseport is implied. */
	(void)reuseport;
	if (a->ip && a->ip != st->ip)
		return -EADDRNOTAVAIL;
	if (port) {
		if (udp_find(t, port))
			return -EADDRINUSE;
	} else {
		unsigned span = 65536 - UDP_EPHEMERAL, i;
		for (i = 0; i < span; i++) {
			port = (uint16_t)(UDP_EPHEMERAL + (t->ephemeral + i) % span);
			if (!udp_find(t, port))
				break;
		}
		if (i == span)
			return -EADDRINUSE;
		t->ephemeral = (uint16_t)((t->ephemeral + i + 1) % span);
	}
	u = sk_zalloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->st = st;
	u->ip = a->ip;
	u->port = port;
	unsigned b = udp_hash(port);
	u->hnext = t->b[b];
	t->b[b] = u;
	t->count++;
	*out = u;
	return 0;
}

void nx_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out)
{
	out->ip = u->ip ? u->ip : u->st->ip;
	out->port = u->port;
}

sk_future nx_udp_recv(struct sk_udp *u, struct sk_dgram *d)
{
	struct sk_pkt *p = u->qhead;

	if (u->rp)
		return sk_make_error(-EBUSY);
	if (p) {
		u->qhead = p->nextpkt;
		if (!u->qhead)
			u->qtail = NULL;
		u->qlen--;
		p->nextpkt = NULL;
		udp_fill(d, p);
		return sk_make_ready((int64_t)p->pkt_len);
	}
	u->rp = sk_promise_new();
	if (!u->rp)
		return sk_make_error(-ENOMEM);
	u->d = d;
	return sk_promise_future(u->rp);
}

void nx_udp_release(struct sk_udp *u, struct sk_dgram *d)
{
	/* The datagram is its own packet: no need for @u, which may even
	 * be closed already. */
	(void)u;
	if (d->priv)
		sk_pkt_free(d->priv);
	d->priv = NULL;
	d->data = NULL;
	d->len = 0;
}

/* @len bytes at @buf after room for the UDP header: one pool buffer, or a
 * chain of them.  NULL: out of buffers. */
static struct sk_pkt *udp_payload(const void *buf, size_t len)
{
	const uint8_t *s = buf;
	struct sk_pkt *head = sk_pkt_alloc(), *last;
	uint32_t n;

	if (!head)
		return NULL;
	n = sk_pkt_tailroom(head) - NX_UDP_HLEN;
	n = len < n ? (uint32_t)len : n;
	sk_pkt_append(head, NX_UDP_HLEN + n);
	memcpy(head->data + NX_UDP_HLEN, s, n);
	s += n;
	len -= n;
	last = head;
	while (len) {
		struct sk_pkt *seg = sk_pkt_alloc();
		if (!seg) {
			sk_pkt_free(head);
			return NULL;
		}
		n = sk_pkt_tailroom(seg);
		n = len < n ? (uint32_t)len : n;
		memcpy(seg->data, s, n);
		sk_pkt_append(seg, n);
		s += n;
		len -= n;
		last->next = seg;
		last = seg;
		head->pkt_len += n;
		head->nsegs++;
	}
	return head;
}

int nx_udp_send(struct sk_udp *u, const struct sk_sockaddr *to, const void *buf,
		size_t len)
{
	struct nx_stack *st = u->st;
	struct sk_pkt *p;
	uint8_t *h;
	int r;

	if (len > UDP_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!to->ip || !to->port)
		return -EINVAL;
	/* The device takes no more this round: say so, as socket.h
	 * promises, rather than let the frame be dropped unseen. */
	if (!nx_tx_room(st))
		return -EAGAIN;
	p = udp_payload(buf, len);
	if (!p)
		return -ENOMEM;
	uint16_t ulen = (uint16_t)(NX_UDP_HLEN + len);
	h = p->data;
	nx_put16(h, u->port);
	nx_put16(h + 2, to->port);
	nx_put16(h + 4, ulen);
	nx_put16(h + 6, 0);
	uint16_t c = nx_csum_fold(nx_csum_pkt(nx_csum_pseudo(st->ip, to->ip, NX_IPPROTO_UDP,
							     ulen), p, 0, ulen));
	/* 0 on the wire means "no checksum". */
	nx_put16(h + 6, c ? c : 0xffff);
	p->l4_len = NX_UDP_HLEN;
	r = nx_ip_output(st, p, to->ip, NX_IPPROTO_UDP, false);
	if (r == 0)
		NX_INC(st, udp_tx);
	return r;
}

void nx_udp_close(struct sk_udp *u)
{
	struct nx_udp *t = u->st->udp;
	struct sk_udp **pp = &t->b[udp_hash(u->port)];

	while (*pp != u)
		pp = &(*pp)->hnext;
	*pp = u->hnext;
	t->count--;
	if (u->rp) {
		struct sk_promise *rp = u->rp;
		u->rp = NULL;
		sk_promise_set_error(rp, -ECANCELED);
	}
	sk_pkt_free_list(u->qhead);
	sk_free(u);
}

int nx_udp_init(struct nx_stack *st)
{
	struct nx_udp *t = sk_zalloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->ephemeral = (uint16_t)(nx_random(st) % (65536 - UDP_EPHEMERAL));
	st->udp = t;
	return 0;
}

void nx_udp_fini(struct nx_stack *st)
{
	struct nx_udp *t = st->udp;

	if (!t)
		return;
	/* Sockets the app left open: fail their receives, free them. */
	for (unsigned i = 0; i < UDP_BUCKETS; i++)
		while (t->b[i])
			nx_udp_close(t->b[i]);
	sk_free(t);
	st->udp = NULL;
}
