/*
 * fault.c - a decorator that mistreats packets, reproducibly from a seed.
 *
 * Roadmap: every packet crossing the decorator in a faulted direction goes
 * through fault_judge(), which asks the queue's own PRNG, in a fixed order,
 * whether to drop it, corrupt one bit after the Ethernet header, duplicate
 * it, delay it or hold it back for reordering.  What survives goes to the
 * direction's out list: for rx the packets rx_burst returns next, for tx
 * those waiting for the inner device's tx_burst.  Held packets sit in a
 * fixed per-direction array with their due time; fault_release_due() moves
 * them out when due, and a reordered one also leaves right after the next
 * packet of its queue has passed.
 *
 * Each (queue, direction) has its own PRNG seeded from the seed, the queue
 * and the direction, so the same seed and the same packet order give the
 * same faults whatever other queues do.  A queue is driven by one shard,
 * so nothing here is shared and nothing takes a lock.  rx_burst also
 * pushes the queue's due tx packets: the stack polls rx, and next_event
 * brings it back when a held packet comes due.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skerry/alloc.h"
#include "skerry/netdev.h"
#include "skerry/reactor.h"

#define FAULT_HOLD_MAX	256u	/* held per queue and direction; beyond: pass */
#define FAULT_BURST	64u	/* packets handed to the inner device at once */
#define FAULT_DELAY_NS	1000000u

struct fault_held {
	struct sk_pkt *p;
	uint64_t due;
	bool reorder;		/* also leaves after the next passing packet */
};

struct fault_dir {
	uint64_t rng;
	struct sk_pkt *out, *out_tail;	/* ready, linked by nextpkt */
	unsigned nout, nheld;
	struct fault_held held[FAULT_HOLD_MAX];
};

struct fault_queue {
	struct fault_dir rx, tx;
};

struct fault_dev {
	struct sk_netdev dev;
	struct sk_netdev *inner;
	struct sk_fault_config cfg;
	struct fault_queue *q;
};

static inline struct fault_dev *fault_of(struct sk_netdev *d)
{
	return d->priv;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* xorshift64*: small, fast, and plenty for fault injection. */
static inline uint64_t fault_rand(struct fault_dir *fd)
{
	uint64_t x = fd->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fd->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* True with probability @p; draws nothing when @p is 0 so that enabling
 * one fault does not shift the others' sequences needlessly. */
static inline bool fault_chance(struct fault_dir *fd, double p)
{
	return p > 0 && (double)(fault_rand(fd) >> 11) * 0x1.0p-53 < p;
}

static void fault_emit(struct fault_dir *fd, struct sk_pkt *p)
{
	p->nextpkt = NULL;
	if (fd->out_tail)
		fd->out_tail->nextpkt = p;
	else
		fd->out = p;
	fd->out_tail = p;
	fd->nout++;
}

static struct sk_pkt *fault_pop(struct fault_dir *fd)
{
	struct sk_pkt *p = fd->out;
	if (p) {
		fd->out = p->nextpkt;
		if (!fd->out)
			fd->out_tail = NULL;
		p->nextpkt = NULL;
		fd->nout--;
	}
	return p;
}

/* Move the held packets that qualify to the out list, keeping their order. */
static void fault_release(struct fault_dir *fd, uint64_t now, bool reordered)
{
	unsigned k = 0;
	for (unsigned i = 0; i < fd->nheld; i++) {
		struct fault_held *h = &fd->held[i];
		if (h->due <= now || (reordered && h->reorder))
			fault_emit(fd, h->p);
		else
			fd->held[k++] = *h;
	}
	fd->nheld = k;
}

static bool fault_writable(const struct sk_pkt *p)
{
	for (; p; p = p->next)
		if (p->refcnt > 1 || p->ext_free)
			return false;
	return true;
}

/*
 * Flip one bit past the Ethernet header, so that the frame still reaches
 * the stack and its checksums must catch it.  A shared or foreign segment
 * is not ours to scribble on (TCP may retransmit from it): corrupt a copy.
 */
static struct sk_pkt *fault_corrupt(struct fault_dir *fd, struct sk_pkt *p, bool *done)
{
	uint64_t r = fault_rand(fd);
	struct sk_pkt *s;
	uint32_t off;

	*done = false;
	if (p->pkt_len <= 14)
		return p;
	if (!fault_writable(p)) {
		struct sk_pkt *c = sk_pkt_copy(p);
		if (!c)
			return p;
		sk_pkt_free(p);
		p = c;
	}
	off = 14 + (uint32_t)((r >> 3) % (p->pkt_len - 14));
	for (s = p; s && off >= s->len; s = s->next)
		off -= s->len;
	if (!s)
		return p;
	s->data[off] ^= (uint8_t)(1u << (r & 7));
	*done = true;
	return p;
}

static void fault_hold(struct fault_dir *fd, struct sk_pkt *p, uint64_t due, bool reorder)
{
	fd->held[fd->nheld++] = (struct fault_held){ p, due, reorder };
}

/* Decide the fate of one packet crossing in direction @fd of queue @q. */
static void fault_judge(struct fault_dev *f, unsigned q, struct fault_dir *fd,
			struct sk_pkt *p, uint64_t now)
{
	const struct sk_fault_config *c = &f->cfg;
	struct sk_netdev_stats *st = &f->dev.stats[q];
	struct sk_pkt *dup = NULL;
	bool done;

	if (fault_chance(fd, c->drop)) {
		sk_pkt_free(p);
		st->f_dropped++;
		return;
	}
	if (fault_chance(fd, c->corrupt)) {
		p = fault_corrupt(fd, p, &done);
		st->f_corrupted += done;
	}
	if (fault_chance(fd, c->dup)) {
		dup = sk_pkt_copy(p);
		st->f_duplicated += dup != NULL;
	}
	if (fault_chance(fd, c->delay) && fd->nheld < FAULT_HOLD_MAX) {
		fault_hold(fd, p, now + c->delay_ns, false);
		st->f_delayed++;
	} else if (fault_chance(fd, c->reorder) && fd->nheld < FAULT_HOLD_MAX) {
		fault_hold(fd, p, now + c->delay_ns, true);
		st->f_reordered++;
	} else {
		fault_emit(fd, p);
		fault_release(fd, now, true);
	}
	if (dup) {
		fault_emit(fd, dup);
		fault_release(fd, now, true);
	}
}

/* Hand the queue's waiting tx packets to the inner device, in order, until
 * it is full. */
static void fault_tx_push(struct fault_dev *f, unsigned q)
{
	struct fault_dir *fd = &f->q[q].tx;
	struct sk_pkt *v[FAULT_BURST];

	while (fd->nout) {
		unsigned k = 0, sent;
		while (k < FAULT_BURST && fd->out)
			v[k++] = fault_pop(fd);
		sent = f->inner->tx_burst(f->inner, q, v, k);
		if (sent < k) {
			/* Put the refused ones back in front, in order. */
			for (unsigned i = k; i-- > sent;) {
				v[i]->nextpkt = fd->out;
				fd->out = v[i];
				if (!fd->out_tail)
					fd->out_tail = v[i];
				fd->nout++;
			}
			return;
		}
	}
}

static unsigned fault_rx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
			 unsigned n)
{
	struct fault_dev *f = fault_of(d);
	struct fault_dir *fd = &f->q[q].rx;
	struct sk_netdev_stats *st = &d->stats[q];
	struct sk_pkt *v[FAULT_BURST];
	uint64_t now = sk_now_ns();
	unsigned got = 0;

	if (f->cfg.tx) {
		fault_release(&f->q[q].tx, now, false);
		fault_tx_push(f, q);
	}
	if (!f->cfg.rx) {
		got = f->inner->rx_burst(f->inner, q, pkts, n);
		for (unsigned i = 0; i < got; i++) {
			st->rx_packets++;
			st->rx_bytes += pkts[i]->pkt_len;
		}
		return got;
	}
	fault_release(fd, now, false);
	if (fd->nout < n) {
		unsigned want = n - fd->nout < FAULT_BURST ? n - fd->nout : FAULT_BURST;
		unsigned k = f->inner->rx_burst(f->inner, q, v, want);
		for (unsigned i = 0; i < k; i++)
			fault_judge(f, q, fd, v[i], now);
	}
	while (got < n && fd->out) {
		struct sk_pkt *p = fault_pop(fd);
		st->rx_packets++;
		st->rx_bytes += p->pkt_len;
		pkts[got++] = p;
	}
	return got;
}

static unsigned fault_tx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
			 unsigned n)
{
	struct fault_dev *f = fault_of(d);
	struct fault_dir *fd = &f->q[q].tx;
	struct sk_netdev_stats *st = &d->stats[q];
	uint64_t now;
	unsigned i;

	if (!f->cfg.tx) {
		n = f->inner->tx_burst(f->inner, q, pkts, n);
		for (i = 0; i < n; i++) {
			st->tx_packets++;
			st->tx_bytes += pkts[i]->pkt_len;
		}
		return n;
	}
	now = sk_now_ns();
	fault_release(fd, now, false);
	fault_tx_push(f, q);
	if (fd->nout)
		return 0;	/* the inner device is full: push back */
	for (i = 0; i < n; i++) {
		st->tx_packets++;
		st->tx_bytes += pkts[i]->pkt_len;
		fault_judge(f, q, fd, pkts[i], now);
	}
	fault_tx_push(f, q);
	return n;
}

static int fault_attach(struct sk_netdev *d, unsigned q)
{
	return sk_netdev_attach(fault_of(d)->inner, q);
}

static int fault_wait_fd(struct sk_netdev *d, unsigned q)
{
	struct sk_netdev *in = fault_of(d)->inner;
	return in->ops->wait_fd ? in->ops->wait_fd(in, q) : -1;
}

static uint64_t fault_dir_due(const struct fault_dir *fd)
{
	uint64_t due = UINT64_MAX;
	if (fd->nout)
		return 0;	/* work waiting now */
	for (unsigned i = 0; i < fd->nheld; i++)
		if (fd->held[i].due < due)
			due = fd->held[i].due;
	return due;
}

static uint64_t fault_next_event(struct sk_netdev *d, unsigned q)
{
	struct fault_dev *f = fault_of(d);
	struct sk_netdev *in = f->inner;
	uint64_t due = in->ops->next_event ? in->ops->next_event(in, q) : UINT64_MAX;
	uint64_t rx = fault_dir_due(&f->q[q].rx), tx = fault_dir_due(&f->q[q].tx);

	if (rx < due)
		due = rx;
	return tx < due ? tx : due;
}

static bool fault_rx_pending(struct sk_netdev *d, unsigned q)
{
	struct fault_dev *f = fault_of(d);
	struct sk_netdev *in = f->inner;

	if (fault_next_event(d, q) <= sk_now_ns())
		return true;
	return in->ops->rx_pending && in->ops->rx_pending(in, q);
}

static void fault_dir_drain(struct fault_dir *fd)
{
	struct sk_pkt *p;
	while ((p = fault_pop(fd)) != NULL)
		sk_pkt_free(p);
	for (unsigned i = 0; i < fd->nheld; i++)
		sk_pkt_free(fd->held[i].p);
	fd->nheld = 0;
}

static void fault_close(struct sk_netdev *d)
{
	struct fault_dev *f = fault_of(d);
	for (unsigned q = 0; q < d->nqueues; q++) {
		fault_dir_drain(&f->q[q].rx);
		fault_dir_drain(&f->q[q].tx);
	}
	sk_netdev_close(f->inner);
	sk_free(f->q);
	sk_free(f);
}

static const struct sk_netdev_ops fault_ops = {
	.attach = fault_attach,
	.wait_fd = fault_wait_fd,
	.next_event = fault_next_event,
	.rx_pending = fault_rx_pending,
	.close = fault_close,
};

int sk_netdev_fault(struct sk_netdev *inner, const struct sk_fault_config *cfg,
		    struct sk_netdev **out)
{
	struct fault_dev *f;

	if (!inner || !cfg || !inner->nqueues || inner->nqueues > SK_NETDEV_MAX_QUEUES)
		return -EINVAL;
	f = sk_zalloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->q = sk_zalloc(inner->nqueues * sizeof(*f->q));
	if (!f->q) {
		sk_free(f);
		return -ENOMEM;
	}
	f->inner = inner;
	f->cfg = *cfg;
	if (!f->cfg.rx && !f->cfg.tx)
		f->cfg.rx = f->cfg.tx = true;
	if (!f->cfg.delay_ns)
		f->cfg.delay_ns = FAULT_DELAY_NS;
	for (unsigned q = 0; q < inner->nqueues; q++) {
		/* Never zero: xorshift would stay at zero. */
		f->q[q].rx.rng = splitmix64(cfg->seed ^ ((uint64_t)q << 1)) | 1;
		f->q[q].tx.rng = splitmix64(cfg->seed ^ ((uint64_t)q << 1 | 1)) | 1;
	}
	f->dev.rx_burst = fault_rx;
	f->dev.tx_burst = fault_tx;
	f->dev.ops = &fault_ops;
	snprintf(f->dev.name, sizeof(f->dev.name), "fault-%.24s", inner->name);
	f->dev.nqueues = inner->nqueues;
	memcpy(f->dev.mac, inner->mac, 6);
	f->dev.mtu = inner->mtu;
	f->dev.offloads = 0;	/* the stack must check every checksum itself */
	f->dev.link_up = inner->link_up;
	f->dev.priv = f;
	*out = &f->dev;
	return 0;
}

/* --- the spec string ------------------------------------------------------ */

static int fault_prob(const char *v, double *out)
{
	char *end;
	double x;

	if (!*v)
		return -EINVAL;
	x = strtod(v, &end);
	/* !(x >= 0 && x <= 1) also refuses NaN */
	if (*end || !(x >= 0 && x <= 1))
		return -EINVAL;
	*out = x;
	return 0;
}

static int fault_u64(const char *v, uint64_t *out)
{
	char *end;

	/* strtoull would take "-1" and " 1". */
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 0);
	return *end || errno ? -EINVAL : 0;
}

int sk_fault_parse(const char *spec, struct sk_fault_config *out)
{
	struct sk_fault_config c = { 0 };
	const char *s = spec;

	if (!spec)
		return -EINVAL;
	while (*s) {
		char tok[64], *v;
		size_t len = strcspn(s, ",");
		uint64_t u = 0;
		int rc;

		if (len == 0 || len >= sizeof(tok))
			return -EINVAL;
		memcpy(tok, s, len);
		tok[len] = '\0';
		s += len;
		if (*s == ',' && !*++s)
			return -EINVAL;	/* trailing comma */
		v = strchr(tok, '=');
		if (!v)
			return -EINVAL;
		*v++ = '\0';
		if (!strcmp(tok, "drop"))
			rc = fault_prob(v, &c.drop);
		else if (!strcmp(tok, "dup"))
			rc = fault_prob(v, &c.dup);
		else if (!strcmp(tok, "reorder"))
			rc = fault_prob(v, &c.reorder);
		else if (!strcmp(tok, "corrupt"))
			rc = fault_prob(v, &c.corrupt);
		else if (!strcmp(tok, "delay"))
			rc = fault_prob(v, &c.delay);
		else if (!strcmp(tok, "delay-us")) {
			rc = fault_u64(v, &u);
			if (!rc && u > UINT64_MAX / 1000)
				rc = -EINVAL;
			c.delay_ns = u * 1000;
		} else if (!strcmp(tok, "seed"))
			rc = fault_u64(v, &c.seed);
		else if (!strcmp(tok, "dir")) {
			rc = 0;
			if (!strcmp(v, "rx"))
				c.rx = true, c.tx = false;
			else if (!strcmp(v, "tx"))
				c.rx = false, c.tx = true;
			else if (!strcmp(v, "both"))
				c.rx = c.tx = true;
			else
				rc = -EINVAL;
		} else
			rc = -EINVAL;
		if (rc)
			return rc;
	}
	*out = c;
	return 0;
}
