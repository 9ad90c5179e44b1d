/*
 * dpdk.c - a DPDK ethdev as a netdev, on virtual devices only.
 *
 * Roadmap:
 *   eal_start   once per process.  skerry's rules come first on EAL's
 *               command line - --no-pci, --in-memory, a per-process
 *               --file-prefix, the main lcore on the calling thread's CPUs,
 *               quiet logging - then the user's --eal arguments.  PCI still
 *               enabled afterwards is refused; the caller's CPU affinity
 *               (which EAL changes) is put back.  The vdev is plugged
 *               afterwards (rte_dev_probe), so a bad one fails alone.
 *   port_open   the vdev's name is checked before it is plugged, its
 *               port's bus and driver after.  An mbuf pool whose private
 *               area holds an sk_pkt header; the queue pairs asked for (one
 *               per shard), or as many as the PMD has; RSS with sk_rss_key,
 *               rx interrupts and checksum offloads wherever the PMD takes
 *               them (configure falls back step by step when it does not).
 *   rx          rte_eth_rx_burst; every mbuf segment becomes the sk_pkt in
 *               its own private area - no copy, no allocation; freeing the
 *               sk_pkt frees the mbuf.  While the pool runs low (sockets
 *               holding unread payloads) packets are copied instead.
 *   tx          an sk_pkt that is a whole mbuf of ours goes as it is;
 *               anything else (the stack's own buffers, chains) is copied
 *               into one fresh mbuf.
 *   sleeping    rx_pending (asked just before the shard sleeps) peeks a
 *               burst into the queue's stash.  net_tap's rx interrupt
 *               descriptor is its queue's, readable while frames wait:
 *               wait_fd, nothing to arm.  A PMD whose interrupt is an
 *               eventfd is armed by rx_pending before it peeks and disarmed
 *               by the next rx_burst, so a busy shard costs the peer no
 *               notifications.  A PMD without rx interrupts (memif, ring,
 *               af_packet, null in 22.11) is polled: next_event asks to be
 *               woken again soon.
 *
 * Queues are driven by one shard each (sk_netdev_attach registers that
 * thread as an lcore, giving it a mempool cache).  An mbuf may be freed on
 * any shard: the mempool is thread-safe, only its cache is per lcore.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/netdev.h"
#include "skerry/reactor.h"

#define DP_BURST	64		/* mbufs per rte_eth_*_burst call */
#define DP_RX_DESC	1024
#define DP_TX_DESC	1024
/* Per queue: both rings full, plus what sockets hold while the app reads
 * (TCP keeps received payloads zero-copy) and the mempool caches. */
#define DP_MBUFS_PER_QUEUE 8192
#define DP_MBUF_CACHE	256
#define DP_POOL_CHECK_BURSTS 16	/* how often rx looks at the pool's level */
#define DP_EAL_USER_MAX	48	/* --eal arguments */
/* A PMD without rx interrupts is polled without pause while packets came
 * in the last DP_HOT_NS - a request/response peer answers within that, and
 * a shard asleep for DP_POLL_NS would add that to every round trip - then
 * looked at every DP_POLL_NS, and every DP_IDLE_POLL_NS once quiet for
 * DP_QUIET_NS (each look costs the reactor's idle spin: about 5% of a
 * core at 1 ms). */
#define DP_HOT_NS	(2 * 1000 * 1000)
#define DP_POLL_NS	(200 * 1000)
#define DP_QUIET_NS	(100 * 1000 * 1000)
#define DP_IDLE_POLL_NS	(1000 * 1000)
/* memif client: how long to wait at start for the server to answer. */
#define DP_LINK_WAIT_MS 2000

/* The virtual devices skerry may drive.  Never a PCI device: the machine's
 * real NICs are not ours to take. */
static const char *const dp_allowed[] = {
	"net_memif", "net_tap", "net_af_packet", "net_ring", "net_null",
};

struct dp_queue {
	struct rte_mbuf *stash[DP_BURST];	/* peeked by rx_pending */
	unsigned nstash, stash_pos;
	bool copy_rx;		/* the pool runs low: copy, free the mbuf */
	unsigned bursts;	/* since the pool was last looked at */
	bool rx_seen;		/* packets came since next_event last looked */
	uint64_t last_rx_ns;	/* when they last came, to that precision */
	int intr_fd;		/* rx interrupt descriptor, -1: poll */
	bool intr_level;	/* readable exactly while frames wait (net_tap's
				 * queue descriptor): nothing to arm */
	bool armed;		/* an eventfd interrupt enabled (asleep) */
} __rte_cache_aligned;

struct dp_dev {
	struct sk_netdev dev;
	uint16_t port;
	bool started;
	bool intr;		/* configured with rx interrupts */
	struct rte_mempool *pool;
	struct dp_queue q[SK_NETDEV_MAX_QUEUES];
};

static inline struct dp_dev *dp_of(struct sk_netdev *d)
{
	return d->priv;
}

/* Ports this process has open: a second open of one is refused. */
static bool ports_open[RTE_MAX_ETHPORTS];

/* --- EAL ---------------------------------------------------------------- */

static struct {
	bool tried;
	int err;		/* 0 up, else why it failed (for good) */
} eal;

/* EAL options that name PCI devices (short ones also attached: -a0000:..). */
static bool names_pci(const char *t)
{
	static const char *const longs[] = { "--allow", "--pci-whitelist", "--block",
					     "--pci-blacklist", "--vfio-intr",
					     "--vfio-vf-token" };
	if (t[0] == '-' && (t[1] == 'a' || t[1] == 'w' || t[1] == 'b'))
		return true;
	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
		size_t n = strlen(longs[i]);
		if (!strncmp(t, longs[i], n) && (t[n] == 0 || t[n] == '='))
			return true;
	}
	return false;
}

/* Free hugepages of every size (what EAL can use), from sysfs. */
static long free_hugepages(void)
{
	static const char *const sizes[] = { "hugepages-2048kB", "hugepages-1048576kB" };
	long total = 0;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char path[128];
		long n = 0;
		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/%s/free_hugepages",
			 sizes[i]);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%ld", &n) == 1 && n > 0)
			total += n;
		fclose(f);
	}
	return total;
}

/* "0-3,6" from a CPU set, for --lcores; -1 if it does not fit in @len. */
static int cpu_list(const cpu_set_t *set, char *out, size_t len)
{
	size_t n = 0;

	out[0] = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		int w = e > c ? snprintf(out + n, len - n, "%s%d-%d", n ? "," : "", c, e)
			      : snprintf(out + n, len - n, "%s%d", n ? "," : "", c);
		if (w < 0 || (size_t)w >= len - n)
			return -1;
		n += (size_t)w;
		c = e;
	}
	return n ? 0 : -1;
}

static int eal_start(const char *user_args)
{
	static char argbuf[4096];
	static char prefix[64], lcores[600];
	char *argv[DP_EAL_USER_MAX + 16], *user[DP_EAL_USER_MAX];
	int argc = 0, nuser = 0;
	bool no_huge = false, have_cpus;
	cpu_set_t cpus;

	if (eal.tried)
		return eal.err ? eal.err : -EALREADY;
	eal.tried = true;
	eal.err = -EINVAL;

	/* The user's arguments first, to look at them. */
	if (user_args && strlen(user_args) >= sizeof(argbuf)) {
		sk_log_error("dpdk: --eal is longer than %zu bytes", sizeof(argbuf) - 1);
		return eal.err;
	}
	snprintf(argbuf, sizeof(argbuf), "%s", user_args ? user_args : "");
	for (char *save = NULL, *t = strtok_r(argbuf, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (nuser == DP_EAL_USER_MAX) {
			sk_log_error("dpdk: too many --eal arguments (%d at most)",
				     DP_EAL_USER_MAX);
			return eal.err;
		}
		if (names_pci(t)) {
			sk_log_error("dpdk: --eal '%s' names PCI devices (%s); skerry runs "
				     "DPDK with --no-pci, on virtual devices only", user_args, t);
			return eal.err;
		}
		no_huge |= !strcmp(t, "--no-huge");
		user[nuser++] = t;
	}
	if (!no_huge && free_hugepages() <= 0) {
		sk_log_error("dpdk: no free hugepages; set some up as root (scripts/hugepages "
			     "setup 512) or run without them: --eal '--no-huge -m 512'");
		return eal.err = -ENOMEM;
	}
	have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	snprintf(prefix, sizeof(prefix), "--file-prefix=skerry-%d", (int)getpid());
	argv[argc++] = "skerry";
	argv[argc++] = "--no-pci";
	/* Nothing shared with other processes, nothing left in /dev/hugepages
	 * or /var/run/dpdk: --in-memory, or without hugepages (which it does
	 * not combine with) --no-shconf. */
	argv[argc++] = no_huge ? "--no-shconf" : "--in-memory";
	argv[argc++] = prefix;
	argv[argc++] = "--no-telemetry";
	/* DPDK's own notices and warnings (no 1 GB pages, no multi-process
	 * channel under --in-memory) are noise here; --eal '--log-level=...'
	 * brings them back. */
	argv[argc++] = "--log-level=error";
	if (have_cpus) {
		/* lcore 0 is this thread, on the CPUs it may already use; the
		 * other shards register lcores of their own when they attach. */
		char list[512];
		if (cpu_list(&cpus, list, sizeof(list)) == 0) {
			snprintf(lcores, sizeof(lcores), "--lcores=0@(%s)", list);
			argv[argc++] = lcores;
		}
	}
	for (int i = 0; i < nuser; i++)
		argv[argc++] = user[i];
	argv[argc] = NULL;

	if (rte_eal_init(argc, argv) < 0) {
		int e = rte_errno;
		sk_log_error("dpdk: EAL initialisation failed: %s%s", rte_strerror(e),
			     e == ENOMEM || e == EACCES ?
				     " (hugepages missing or unreadable? scripts/hugepages setup "
				     "512, or --eal '--no-huge -m 512')" : "");
		if (have_cpus)
			sched_setaffinity(0, sizeof(cpus), &cpus);
		return eal.err = -(e ? e : EINVAL);
	}
	/* EAL pinned this thread to its lcore's CPUs; the shard's own
	 * placement (--cpuset) stands. */
	if (have_cpus)
		sched_setaffinity(0, sizeof(cpus), &cpus);
	if (rte_eal_has_pci()) {
		sk_log_error("dpdk: PCI is enabled in EAL; skerry refuses to run without --no-pci");
		rte_eal_cleanup();
		return eal.err = -EPERM;
	}
	return eal.err = 0;
}

/* --- receive ------------------------------------------------------------ */

static void dp_mbuf_free(struct sk_pkt *p, void *arg)
{
	(void)p;
	rte_pktmbuf_free_seg(arg);
}

static inline struct sk_pkt *pkt_of(struct rte_mbuf *m)
{
	return rte_mbuf_to_priv(m);
}

static inline uint32_t rx_flags(const struct rte_mbuf *m)
{
	uint32_t f = 0;
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		f |= SK_PKT_RX_IP_CSUM_GOOD;
	else if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		f |= SK_PKT_RX_CSUM_BAD;
	if (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		f |= SK_PKT_RX_L4_CSUM_GOOD;
	else if (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		f |= SK_PKT_RX_CSUM_BAD;
	if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH)
		f |= SK_PKT_RSS_HASH;
	return f;
}

/* The mbuf chain @m as an sk_pkt chain, in place. */
static inline struct sk_pkt *mbuf_to_pkt(struct rte_mbuf *m)
{
	struct sk_pkt *head = NULL, **tail = &head;

	for (struct rte_mbuf *s = m; s; s = s->next) {
		struct sk_pkt *p = pkt_of(s);
		sk_pkt_init_embedded(p, s->buf_addr, s->buf_len, rte_pktmbuf_mtod(s, uint8_t *),
				     s->data_len, dp_mbuf_free, s);
		*tail = p;
		tail = &p->next;
	}
	head->pkt_len = m->pkt_len;
	head->nsegs = m->nb_segs;
	head->ol_flags = rx_flags(m);
	head->hash = m->hash.rss;
	return head;
}

static unsigned dp_rx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts, unsigned n)
{
	struct dp_dev *x = dp_of(d);
	struct dp_queue *dq = &x->q[q];
	struct sk_netdev_stats *st = &d->stats[q];
	struct rte_mbuf *m[DP_BURST];
	unsigned got = 0;

	if (unlikely(dq->armed)) {
		/* Awake again: polling, the peer need not notify us. */
		rte_eth_dev_rx_intr_disable(x->port, (uint16_t)q);
		dq->armed = false;
	}
	if (n > DP_BURST)
		n = DP_BURST;
	while (dq->stash_pos < dq->nstash && got < n)
		m[got++] = dq->stash[dq->stash_pos++];
	if (got < n)
		got += rte_eth_rx_burst(x->port, (uint16_t)q, m + got, (uint16_t)(n - got));
	if (!got)
		return 0;
	if (unlikely(++dq->bursts == DP_POOL_CHECK_BURSTS)) {
		/* Received payloads stay in their mbufs while sockets hold
		 * them unread; should that drain the pool, the PMD could not
		 * refill its ring and every connection of the queue would
		 * stall.  Below a quarter free, packets are copied into the
		 * stack's own buffers and the mbufs go straight back. */
		dq->bursts = 0;
		dq->copy_rx = rte_mempool_avail_count(x->pool) < x->pool->size / 4;
	}
	for (unsigned i = 0; i < got; i++) {
		st->rx_bytes += m[i]->pkt_len;
		pkts[i] = mbuf_to_pkt(m[i]);
		if (unlikely(dq->copy_rx)) {
			struct sk_pkt *c = sk_pkt_copy(pkts[i]);
			if (c) {
				sk_pkt_free(pkts[i]);
				pkts[i] = c;
			}
		}
	}
	st->rx_packets += got;
	dq->rx_seen = true;	/* (no clock read on the fast path) */
	return got;
}

/* --- transmit ----------------------------------------------------------- */

/* The stack asks for an offload only when the device has it. */
static inline void tx_offloads(const struct sk_pkt *p, struct rte_mbuf *m)
{
	m->ol_flags = 0;
	m->tx_offload = 0;	/* a received mbuf going back out carries its own */
	if (!(p->ol_flags & (SK_PKT_TX_IP_CSUM | SK_PKT_TX_L4_CSUM)))
		return;
	m->l2_len = p->l2_len;
	m->l3_len = p->l3_len;
	m->l4_len = p->l4_len;
	m->ol_flags = RTE_MBUF_F_TX_IPV4;
	if (p->ol_flags & SK_PKT_TX_IP_CSUM)
		m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
	if (p->ol_flags & SK_PKT_TX_L4_CSUM) {
		const struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, m->l2_len);
		m->ol_flags |= ip->next_proto_id == IPPROTO_TCP ? RTE_MBUF_F_TX_TCP_CKSUM :
								  RTE_MBUF_F_TX_UDP_CKSUM;
	}
}

static bool link_up(struct dp_dev *x)
{
	struct rte_eth_link link;
	return rte_eth_link_get_nowait(x->port, &link) == 0 && link.link_status;
}

/* An mbuf carrying @p: its own when it is a whole, unshared mbuf segment of
 * ours (zero copy, *own set), otherwise a copy.  NULL: the pool is empty
 * or the packet is larger than an mbuf (the MTU is clamped to the buffer,
 * so this does not happen). */
static inline struct rte_mbuf *pkt_to_mbuf(struct dp_dev *x, struct sk_pkt *p, bool *own)
{
	struct rte_mbuf *m;

	if ((p->flags & SK_PKT_F_EMBEDDED) && p->ext_free == dp_mbuf_free && p->refcnt == 1 &&
	    !p->next && rte_mbuf_refcnt_read(p->ext_arg) == 1) {
		m = p->ext_arg;
		m->data_off = (uint16_t)(p->data - (uint8_t *)m->buf_addr);
		m->data_len = (uint16_t)p->len;
		m->pkt_len = p->len;
		m->nb_segs = 1;
		m->next = NULL;
		*own = true;
	} else {
		m = rte_pktmbuf_alloc(x->pool);
		if (unlikely(!m))
			return NULL;
		uint8_t *dst = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)p->pkt_len);
		if (unlikely(!dst || p->pkt_len > UINT16_MAX)) {
			rte_pktmbuf_free(m);
			return NULL;
		}
		for (const struct sk_pkt *s = p; s; s = s->next) {
			memcpy(dst, s->data, s->len);
			dst += s->len;
		}
		*own = false;
	}
	tx_offloads(p, m);
	return m;
}

static unsigned dp_tx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts, unsigned n)
{
	struct dp_dev *x = dp_of(d);
	struct sk_netdev_stats *st = &d->stats[q];
	struct rte_mbuf *m[DP_BURST];
	bool own[DP_BURST];
	uint32_t len[DP_BURST];	/* an own pkt may be gone after the burst */
	unsigned k, sent;

	if (n > DP_BURST)
		n = DP_BURST;
	for (k = 0; k < n; k++) {
		len[k] = pkts[k]->pkt_len;
		m[k] = pkt_to_mbuf(x, pkts[k], &own[k]);
		if (unlikely(!m[k]))
			break;
	}
	if (unlikely(k == 0 && n > 0)) {
		/* Out of mbufs: drop the head so the queue moves (as a NIC
		 * dropping on a full ring would); TCP retransmits. */
		st->tx_dropped++;
		sk_pkt_free(pkts[0]);
		return 1;
	}
	sent = rte_eth_tx_burst(x->port, (uint16_t)q, m, (uint16_t)k);
	/* No peer (a memif whose other end went away): drop, as a NIC with
	 * its link down does, rather than hold the stack's queue full. */
	bool drop = unlikely(sent < k) && !link_up(x);
	for (unsigned i = 0; i < k; i++) {
		if (i < sent) {
			/* The mbuf has the data: an sk_pkt that is the mbuf
			 * itself went with it (and may be gone already: the
			 * PMD frees what it copied), a copied one is done. */
			st->tx_bytes += len[i];
			if (!own[i])
				sk_pkt_free(pkts[i]);
		} else if (drop) {
			rte_pktmbuf_free(m[i]);	/* with pkts[i] when own */
			if (!own[i])
				sk_pkt_free(pkts[i]);
			st->tx_dropped++;
		} else if (!own[i]) {
			rte_pktmbuf_free(m[i]);	/* the caller keeps pkts[i] */
		}
	}
	st->tx_packets += sent;
	return drop ? k : sent;
}

/* --- control ------------------------------------------------------------ */

/* Stop and close the port, and take its device off the bus so that the
 * same vdev can be opened again later in this process. */
static void port_release(struct dp_dev *x)
{
	struct rte_eth_dev_info di;
	struct rte_device *dev = NULL;

	if (rte_eth_dev_info_get(x->port, &di) == 0)
		dev = di.device;
	if (x->started)
		rte_eth_dev_stop(x->port);
	rte_eth_dev_close(x->port);
	if (dev)
		rte_dev_remove(dev);
	ports_open[x->port] = false;
	/* Every shard's stack is gone, but a packet forwarded between shards
	 * may still sit in a cross-shard ring, to be freed when it arrives:
	 * then the pool stays (until the process ends) rather than have that
	 * mbuf land in freed memory. */
	if (x->pool && rte_mempool_in_use_count(x->pool) == 0)
		rte_mempool_free(x->pool);
	else if (x->pool)
		sk_log_debug("dpdk: %u mbufs still out at close; the pool stays",
			     rte_mempool_in_use_count(x->pool));
}

static int dp_attach(struct sk_netdev *d, unsigned q)
{
	struct dp_dev *x = dp_of(d);
	struct dp_queue *dq = &x->q[q];

	/* An lcore id of its own gives the shard a mempool cache. */
	if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() < 0)
		sk_log_warn("dpdk: shard on queue %u runs without an lcore (%s): "
			    "slower mbuf allocation", q, rte_strerror(rte_errno));
	else
		sk_log_debug("dpdk: queue %u is driven by lcore %u", q, rte_lcore_id());
	dq->intr_fd = -1;
	int fd = x->intr ? rte_eth_dev_rx_intr_ctl_q_get_fd(x->port, (uint16_t)q) : -1;
	if (fd >= 0) {
		char path[64], link[64] = "";
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t l = readlink(path, link, sizeof(link) - 1);
		link[l > 0 ? l : 0] = 0;
		/* An eventfd says "notified" until read, and only while the
		 * PMD's interrupt is enabled; anything else (a tap queue's
		 * descriptor) is readable exactly while frames wait. */
		dq->intr_level = strstr(link, "eventfd") == NULL;
		if (!dq->intr_level)
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		dq->intr_fd = fd;
	}
	return 0;
}

static bool dp_rx_pending(struct sk_netdev *d, unsigned q)
{
	struct dp_dev *x = dp_of(d);
	struct dp_queue *dq = &x->q[q];

	if (dq->stash_pos < dq->nstash)
		return true;
	/* About to sleep: ask for a notification first, then look, so that a
	 * packet arriving in between is either seen here or notified. */
	if (dq->intr_fd >= 0 && !dq->intr_level && !dq->armed) {
		if (rte_eth_dev_rx_intr_enable(x->port, (uint16_t)q) == 0) {
			uint64_t v;
			dq->armed = true;
			while (read(dq->intr_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
				;
		} else {
			dq->intr_fd = -1;	/* cannot be notified: polled */
		}
	}
	dq->stash_pos = 0;
	dq->nstash = rte_eth_rx_burst(x->port, (uint16_t)q, dq->stash, DP_BURST);
	return dq->nstash > 0;
}

static int dp_wait_fd(struct sk_netdev *d, unsigned q)
{
	struct dp_queue *dq = &dp_of(d)->q[q];
	return dq->intr_level || dq->armed ? dq->intr_fd : -1;
}

static uint64_t dp_next_event(struct sk_netdev *d, unsigned q)
{
	struct dp_queue *dq = &dp_of(d)->q[q];
	uint64_t now;

	if (dq->intr_level || dq->armed)
		return UINT64_MAX;
	now = sk_now_ns();
	if (dq->rx_seen || dq->nstash) {
		dq->rx_seen = false;
		dq->last_rx_ns = now;
	}
	/* 0: due already (not "now", which is a little later than the
	 * sleeper's clock: a timeout of some ns, rounded up by timer slack). */
	uint64_t idle = now - dq->last_rx_ns;
	return idle < DP_HOT_NS ? 0 :
	       now + (idle < DP_QUIET_NS ? DP_POLL_NS : DP_IDLE_POLL_NS);
}

static void dp_close(struct sk_netdev *d)
{
	struct dp_dev *x = dp_of(d);

	for (unsigned q = 0; q < d->nqueues; q++) {
		struct dp_queue *dq = &x->q[q];
		struct rte_mbuf *m[DP_BURST];
		unsigned n, rounds = 0;
		while (dq->stash_pos < dq->nstash)
			rte_pktmbuf_free(dq->stash[dq->stash_pos++]);
		/* Empty the receive side too: net_ring's rings outlive the
		 * port, and mbufs left in them would point into the pool
		 * freed below. */
		while (rounds++ < 1024 &&
		       (n = rte_eth_rx_burst(x->port, (uint16_t)q, m, DP_BURST)) > 0)
			rte_pktmbuf_free_bulk(m, n);
	}
	port_release(x);
	sk_free(x);
}

static const struct sk_netdev_ops dp_ops = {
	.attach = dp_attach,
	.wait_fd = dp_wait_fd,
	.next_event = dp_next_event,
	.rx_pending = dp_rx_pending,
	.close = dp_close,
};

/* --- opening a port ----------------------------------------------------- */

enum { TRY_RSS = 1, TRY_INTR = 2 };

/* Configure and set up the queues with the features in @try; 0 or the
 * PMD's error. */
static int port_configure(struct dp_dev *x, const struct rte_eth_dev_info *di,
			  unsigned nq, unsigned try, uint64_t rx_ol, uint64_t tx_ol)
{
	static uint8_t key[40];
	struct rte_eth_conf conf;
	uint16_t nrx = DP_RX_DESC, ntx = DP_TX_DESC;
	int r;

	memset(&conf, 0, sizeof(conf));
	conf.rxmode.offloads = rx_ol;
	conf.txmode.offloads = tx_ol;
	if (try & TRY_RSS) {
		memcpy(key, sk_rss_key, sizeof(key));
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = key;
		conf.rx_adv_conf.rss_conf.rss_key_len = sizeof(key);
		conf.rx_adv_conf.rss_conf.rss_hf = di->flow_type_rss_offloads &
			(RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP);
	}
	if (try & TRY_INTR)
		conf.intr_conf.rxq = 1;
	r = rte_eth_dev_configure(x->port, (uint16_t)nq, (uint16_t)nq, &conf);
	if (r)
		return r;
	r = rte_eth_dev_adjust_nb_rx_tx_desc(x->port, &nrx, &ntx);
	if (r)
		return r;
	for (unsigned q = 0; q < nq && !r; q++) {
		struct rte_eth_rxconf rxc = di->default_rxconf;
		struct rte_eth_txconf txc = di->default_txconf;
		rxc.offloads = rx_ol;
		txc.offloads = tx_ol;
		r = rte_eth_rx_queue_setup(x->port, (uint16_t)q, nrx, (unsigned)rte_socket_id(),
					   &rxc, x->pool);
		if (!r)
			r = rte_eth_tx_queue_setup(x->port, (uint16_t)q, ntx,
						   (unsigned)rte_socket_id(), &txc);
	}
	if (!r)
		r = rte_eth_dev_start(x->port);
	return r;
}

/* Before anything is probed: the vdev bus picks the driver whose name
 * begins the device's name, so the name alone says which PMD would run. */
static bool name_allowed(const char *name)
{
	for (size_t i = 0; i < sizeof(dp_allowed) / sizeof(dp_allowed[0]); i++)
		if (!strncmp(name, dp_allowed[i], strlen(dp_allowed[i])))
			return true;
	return false;
}

static bool driver_allowed(const struct rte_eth_dev_info *di)
{
	const struct rte_bus *bus = di->device ? rte_dev_bus(di->device) : NULL;

	if (!bus || strcmp(rte_bus_name(bus), "vdev"))
		return false;
	for (size_t i = 0; i < sizeof(dp_allowed) / sizeof(dp_allowed[0]); i++)
		if (!strcmp(di->driver_name, dp_allowed[i]))
			return true;
	return false;
}

/* Set up x->port, plugged for @vdev (named @name). */
static int port_open(const char *vdev, const char *name, unsigned nq, const uint8_t *mac,
		     struct dp_dev *x, char *why, size_t whylen)
{
	struct rte_eth_dev_info di;
	char pool_name[RTE_MEMPOOL_NAMESIZE];
	struct rte_ether_addr ea;
	uint64_t rx_ol = 0, tx_ol = 0;
	static const unsigned tries[] = { TRY_RSS | TRY_INTR, TRY_INTR, TRY_RSS, 0 };
	int r = -ENODEV;

	if ((r = rte_eth_dev_info_get(x->port, &di))) {
		snprintf(why, whylen, "cannot read port %s: %s", name, rte_strerror(-r));
		return r;
	}
	if (!driver_allowed(&di)) {
		snprintf(why, whylen, "port %s (driver %s) is not an allowed virtual device; "
			 "skerry drives only net_memif, net_tap, net_af_packet, net_ring and "
			 "net_null", name, di.driver_name);
		return -EPERM;
	}
	if (nq > di.max_rx_queues || nq > di.max_tx_queues) {
		/* Fewer queues than asked: the stack forwards for the shards
		 * without one. */
		unsigned max = RTE_MIN(di.max_rx_queues, di.max_tx_queues);
		sk_log_info("dpdk: %s has %u queue pairs; %u shards share them", name, max, nq);
		nq = max;
		x->dev.nqueues = nq;
	}
	/* A pool of an earlier open may still exist (see port_release). */
	static unsigned pools;
	snprintf(pool_name, sizeof(pool_name), "sk_mbuf_%u_%u", x->port, pools++);
	x->pool = rte_pktmbuf_pool_create(pool_name, nq * DP_MBUFS_PER_QUEUE - 1, DP_MBUF_CACHE,
					  (uint16_t)RTE_ALIGN_CEIL(sizeof(struct sk_pkt),
								   RTE_MBUF_PRIV_ALIGN),
					  RTE_PKTMBUF_HEADROOM + SK_PKT_DATAROOM, SOCKET_ID_ANY);
	if (!x->pool) {
		snprintf(why, whylen, "cannot create the mbuf pool (%u mbufs): %s%s",
			 nq * DP_MBUFS_PER_QUEUE - 1, rte_strerror(rte_errno),
			 rte_errno == ENOMEM ? " - more hugepages, or a larger -m with --no-huge" : "");
		return -ENOMEM;
	}

	/* Checksums: all three or none, per direction, as the stack asks for
	 * IPv4 and TCP/UDP together. */
	const uint64_t ck = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
			    RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	const uint64_t tck = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
			     RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	if ((di.rx_offload_capa & ck) == ck)
		rx_ol = ck;
	if ((di.tx_offload_capa & tck) == tck)
		tx_ol = tck;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		unsigned t = tries[i];
		if ((t & TRY_RSS) && (nq < 2 || !(di.flow_type_rss_offloads &
						  RTE_ETH_RSS_NONFRAG_IPV4_TCP)))
			continue;
		/* ethdev has no flag for rx interrupts and of our PMDs only
		 * net_tap has them (memif 22.11 masks its rings' notifications
		 * for good); asking the others fills the log with refusals. */
		if ((t & TRY_INTR) && strcmp(di.driver_name, "net_tap"))
			continue;
		r = port_configure(x, &di, nq, t, rx_ol, tx_ol);
		if (r == 0) {
			x->intr = t & TRY_INTR;
			/* The kernel, not a Toeplitz table, picks a tap
			 * queue: the stack's software RSS does the rest. */
			if ((t & TRY_RSS) && strcmp(di.driver_name, "net_tap"))
				x->dev.offloads |= SK_NETDEV_RSS;
			break;
		}
		rte_eth_dev_stop(x->port);
	}
	if (r) {
		snprintf(why, whylen, "cannot start %s with %u queue pair%s: %s", name, nq,
			 nq == 1 ? "" : "s", rte_strerror(r < 0 ? -r : r));
		return r < 0 ? r : -r;
	}
	x->started = true;
	if (rx_ol)
		x->dev.offloads |= SK_NETDEV_RX_CSUM;
	if (tx_ol)
		x->dev.offloads |= SK_NETDEV_TX_IP_CSUM | SK_NETDEV_TX_L4_CSUM;

	/* net_tap and net_af_packet ports carry the kernel interface's own
	 * MAC (setting the port's changes the kernel's as well): sharing it,
	 * the kernel would take our ARP for its own and answer our TCP with
	 * resets.  There the stack has a MAC of its own - @mac or a random
	 * locally administered one - and the port receives promiscuously. */
	bool kernel_side = !strcmp(di.driver_name, "net_tap") ||
			   !strcmp(di.driver_name, "net_af_packet");
	if (kernel_side) {
		if (mac)
			memcpy(x->dev.mac, mac, 6);
		else
			rte_eth_random_addr(x->dev.mac);
		rte_eth_promiscuous_enable(x->port);
	} else if (mac) {
		/* A PMD that cannot change it (memif) does not filter either:
		 * the stack simply uses @mac. */
		memcpy(ea.addr_bytes, mac, 6);
		rte_eth_dev_default_mac_addr_set(x->port, &ea);
		memcpy(x->dev.mac, mac, 6);
	} else if (rte_eth_macaddr_get(x->port, &ea) == 0) {
		memcpy(x->dev.mac, ea.addr_bytes, 6);
	}
	uint16_t mtu = 1500;
	rte_eth_dev_get_mtu(x->port, &mtu);
	x->dev.mtu = mtu;

	/* A memif client connects in the background; give it a moment so the
	 * first packets are not lost to a link that is not up yet. */
	struct rte_eth_link link = { 0 };
	bool waits = !strcmp(di.driver_name, "net_memif") && strstr(vdev, "role=client");
	for (int ms = 0; ms <= (waits ? DP_LINK_WAIT_MS : 0); ms += 10) {
		if (rte_eth_link_get_nowait(x->port, &link) == 0 && link.link_status)
			break;
		if (waits)
			usleep(10 * 1000);
	}
	x->dev.link_up = true;	/* the stack sends regardless; lost packets are
				 * retried */
	snprintf(x->dev.name, sizeof(x->dev.name), "%.31s", name);
	return 0;
}

int sk_netdev_dpdk(const char *vdev, const char *eal_args, unsigned nqueues,
		   const uint8_t *mac, struct sk_netdev **out)
{
	struct dp_dev *x;
	char why[300], name[RTE_DEV_NAME_MAX_LEN];
	uint16_t port;
	int r;

	if (!vdev || !*vdev || nqueues == 0 || nqueues > SK_NETDEV_MAX_QUEUES)
		return -EINVAL;
	r = eal_start(eal_args);
	if (r && r != -EALREADY)
		return r;
	/* The device is plugged after EAL started (not given to EAL as
	 * --vdev), so that a bad one fails alone and a later open in the
	 * same process (a test) plugs it again. */
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(vdev, ","), vdev);
	if (!name_allowed(name)) {
		sk_log_error("dpdk: '%s' is not a virtual device skerry drives (net_memifN, "
			     "net_tapN, net_af_packetN, net_ringN, net_nullN)", name);
		return -EPERM;
	}
	if (rte_eth_dev_get_port_by_name(name, &port) == 0) {
		if (ports_open[port]) {
			sk_log_error("dpdk: %s is already open in this process", name);
			return -EBUSY;
		}
	} else if (rte_dev_probe(vdev) != 0 || rte_eth_dev_get_port_by_name(name, &port) != 0) {
		sk_log_error("dpdk: cannot create virtual device '%s' (unknown driver or bad "
			     "arguments: see EAL's message above)", vdev);
		return -ENODEV;
	}
	x = sk_alloc_aligned(RTE_CACHE_LINE_SIZE, sizeof(*x));
	if (!x)
		return -ENOMEM;
	memset(x, 0, sizeof(*x));
	for (unsigned q = 0; q < SK_NETDEV_MAX_QUEUES; q++)
		x->q[q].intr_fd = -1;
	x->dev.priv = x;
	x->dev.nqueues = nqueues;
	x->port = port;
	r = port_open(vdev, name, nqueues, mac, x, why, sizeof(why));
	if (r) {
		sk_log_error("dpdk: %s", why);
		port_release(x);
		sk_free(x);
		return r;
	}
	ports_open[x->port] = true;
	x->dev.rx_burst = dp_rx;
	x->dev.tx_burst = dp_tx;
	x->dev.ops = &dp_ops;
	*out = &x->dev;
	return 0;
}

bool sk_netdev_dpdk_built(void)
{
	return true;
}
