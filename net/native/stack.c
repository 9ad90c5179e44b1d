/*
 * stack.c - native stack instances, their poller, and the sk_stack glue.
 *
 * Roadmap:
 *   sk_net_init(native) -> native_init(): the first shard opens the device
 *     (tap or loop, maybe wrapped by fault) for the whole group, then each
 *     shard creates its instance on its own queue (nx_stack_create).
 *   poller (nx_stack_poll): TCP output queued by the round's tasks ->
 *     rx_burst -> nx_rx per frame -> local deliveries -> tx_burst.
 *   sleeper: when every poller is idle the shard sleeps on its event plus
 *     the device's descriptors (tap), no longer than the device's next
 *     event (fault delays); other shards and the loop driver signal it.
 *   nx_steer: a packet whose flow hashes to another shard goes there over
 *     the cross-shard rings and resumes at nx_ip_input.
 *
 * The group (instances sharing the app's device, one per shard) is a
 * static: forwarded packets may still be in a ring while a shard stops, so
 * the receiver looks its instance up on arrival and drops the packet if it
 * is gone.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nx.h"
#include "platform.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/shard.h"

#define RX_BURST 32
#define RX_BURSTS_PER_POLL 8	/* bound a round's receive work */
#define WAIT_FDS_MAX 8

/* The native options, parsed (native_parse). */
struct parsed {
	uint32_t ip, gw;
	int prefix;
	uint8_t mac[6];
	bool has_mac;
	struct sk_fault_config fault;
	bool has_fault;
};

struct nx_group {
	struct sk_netdev *dev;
	unsigned n;			/* shards, one instance each */
	struct parsed cfg;		/* set by the shard that opened dev */
	struct nx_stack *_Atomic inst[SK_MAX_SHARDS];
	_Atomic int state;		/* 0 closed, 1 opening, 2 open, <0 error */
	_Atomic unsigned users;		/* shards with an instance */
};
static struct nx_group grp;

/* Per shard; static so that other threads can still signal the event of
 * a shard that is stopping. */
struct nx_shard {
	struct nx_stack *list;		/* this shard's instances */
	struct sk_sleeper sleeper;
	bool sleeper_on;
	_Atomic int ev1;		/* event handle + 1: 0 until opened (the
					 * zero of static storage); kept open */
};
static struct nx_shard shards[SK_MAX_SHARDS];

static struct nx_shard *my_shard(void)
{
	return &shards[sk_reactor_id() % SK_MAX_SHARDS];
}

/* The shard's instance serving the socket API. */
static _Thread_local struct nx_stack *nx_default;

/* --- sleeping ----------------------------------------------------------- */

static void shard_sleep(void *arg, uint64_t timeout_ns)
{
	struct nx_shard *sh = arg;
	int fds[WAIT_FDS_MAX];
	unsigned n = 0;
	uint64_t now = sk_now_ns();

	for (struct nx_stack *st = sh->list; st; st = st->next) {
		const struct sk_netdev_ops *ops = st->dev->ops;
		if (st->queue == NX_NO_QUEUE)
			continue;
		if (ops->wait_fd && n < WAIT_FDS_MAX) {
			int fd = ops->wait_fd(st->dev, st->queue);
			if (fd >= 0)
				fds[n++] = fd;
		}
		if (ops->next_event) {
			uint64_t due = ops->next_event(st->dev, st->queue);
			if (due != UINT64_MAX) {
				uint64_t d = due > now ? due - now : 0;
				if (d < timeout_ns)
					timeout_ns = d;
			}
		}
	}
	if (timeout_ns == 0)
		return;
	sk_plat_event_wait(atomic_load(&sh->ev1) - 1, fds, n, timeout_ns);
}

static void shard_wake(void *arg)
{
	struct nx_shard *sh = arg;
	int ev1 = atomic_load(&sh->ev1);
	if (ev1)
		sk_plat_event_signal(ev1 - 1);
}

static int sleeper_start(struct nx_shard *sh)
{
	if (sh->sleeper_on)
		return 0;
	if (!atomic_load(&sh->ev1)) {
		int ev = sk_plat_event_open();
		if (ev < 0)
			return ev;
		atomic_store(&sh->ev1, ev + 1);
	}
	sh->sleeper = (struct sk_sleeper){ shard_sleep, shard_wake, sh };
	sk_reactor_set_sleeper(&sh->sleeper);
	sh->sleeper_on = true;
	return 0;
}

/* --- frames in and out -------------------------------------------------- */

uint32_t nx_random(struct nx_stack *st)
{
	uint32_t x = st->rand;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	st->rand = x;
	return x;
}

void nx_rx(struct nx_stack *st, struct sk_pkt *p)
{
	NX_INC(st, rx_frames);
	st->stats.rx_bytes += p->pkt_len;
	nx_eth_input(st, p);
}

static void tx_flush(struct nx_stack *st)
{
	unsigned sent;

	if (!st->ntx)
		return;
	sent = st->dev->tx_burst(st->dev, st->queue, st->txq, st->ntx);
	if (sent < st->ntx)
		memmove(st->txq, st->txq + sent, (st->ntx - sent) * sizeof(st->txq[0]));
	st->ntx -= sent;
}

bool nx_tx_room(struct nx_stack *st)
{
	if (st->queue == NX_NO_QUEUE)
		return true;	/* shard 0 transmits; its ring is the bound */
	if (st->ntx == NX_TX_BURST)
		tx_flush(st);
	return st->ntx < NX_TX_BURST;
}

static void tx_arrive(void *arg)
{
	struct sk_pkt *p = arg;
	struct nx_stack *st = atomic_load(&grp.inst[sk_reactor_id()]);

	if (!st) {
		sk_pkt_free(p);
		return;
	}
	NX_INC(st, fwd_in);
	nx_tx(st, p);
}

void nx_tx(struct nx_stack *st, struct sk_pkt *p)
{
	if (st->queue == NX_NO_QUEUE) {
		/* Shard 0 drives queue 0 for the shards without a queue. */
		if (!st->group || sk_smp_post(0, tx_arrive, p) < 0) {
			NX_INC(st, fwd_dropped);
			sk_pkt_free(p);
		} else {
			NX_INC(st, fwd_out);
		}
		return;
	}
	if (st->ntx == NX_TX_BURST)
		tx_flush(st);
	if (st->ntx == NX_TX_BURST) {
		/* The device is full: drop as a NIC would; TCP retransmits. */
		NX_INC(st, tx_dropped);
		sk_pkt_free(p);
		return;
	}
	NX_INC(st, tx_frames);
	st->stats.tx_bytes += p->pkt_len;
	st->txq[st->ntx++] = p;
}

void nx_local_deliver(struct nx_stack *st, struct sk_pkt *p)
{
	p->nextpkt = NULL;
	*st->local_tail = p;
	st->local_tail = &p->nextpkt;
}

static bool local_run(struct nx_stack *st)
{
	struct sk_pkt *p = st->local_head;

	if (!p)
		return false;
	/* Only what was queued before this round: replies come next round. */
	st->local_head = NULL;
	st->local_tail = &st->local_head;
	while (p) {
		struct sk_pkt *next = p->nextpkt;
		p->nextpkt = NULL;
		NX_INC(st, local_delivered);
		nx_ip_input(st, p);
		p = next;
	}
	return true;
}

/* --- steering (software RSS) -------------------------------------------- */

static void fwd_arrive(void *arg)
{
	struct sk_pkt *p = arg;
	struct nx_stack *st = atomic_load(&grp.inst[sk_reactor_id()]);

	if (!st) {
		sk_pkt_free(p);	/* the shard's stack stopped meanwhile */
		return;
	}
	NX_INC(st, fwd_in);
	nx_ip_input(st, p);
}

static unsigned flow_owner(const struct nx_stack *st, uint32_t hash)
{
	return sk_rss_queue(hash, st->group->n);
}

bool nx_steer(struct nx_stack *st, struct sk_pkt *p, uint32_t hash)
{
	unsigned owner;

	if (!st->group || st->group->n < 2)
		return false;
	owner = flow_owner(st, hash);
	if (owner == st->shard)
		return false;
	/* The IP header was checked here; the owner need not again. */
	p->ol_flags |= SK_PKT_RX_IP_CSUM_GOOD;
	if (sk_smp_post(owner, fwd_arrive, p) < 0) {
		NX_INC(st, fwd_dropped);
		sk_pkt_free(p);
	} else {
		NX_INC(st, fwd_out);
	}
	return true;
}

bool nx_flow_is_local(const struct nx_stack *st, uint32_t hash)
{
	return !st->group || st->group->n < 2 || flow_owner(st, hash) == st->shard;
}

struct arp_note {
	uint32_t ip;
	uint8_t mac[6];
};

static void arp_note_arrive(void *arg)
{
	struct arp_note *m = arg;
	struct nx_stack *st = atomic_load(&grp.inst[sk_reactor_id()]);

	if (st)
		nx_arp_learn(st, m->ip, m->mac);
	sk_free(m);
}

void nx_group_arp_learned(struct nx_stack *st, uint32_t ip, const uint8_t *mac)
{
	if (!st->group)
		return;
	for (unsigned i = 0; i < st->group->n; i++) {
		struct arp_note *m;
		if (i == st->shard || !atomic_load(&grp.inst[i]))
			continue;
		m = sk_alloc(sizeof(*m));
		if (!m)
			return;
		m->ip = ip;
		memcpy(m->mac, mac, 6);
		if (sk_smp_post(i, arp_note_arrive, m) < 0)
			sk_free(m);	/* that shard will ask for itself */
	}
}

/* --- the poller ---------------------------------------------------------- */

bool nx_stack_poll(struct nx_stack *st)
{
	struct sk_pkt *burst[RX_BURST];
	bool work = st->ntx != 0;

	/* What the tasks of this round queued (replies, ACKs riding on them). */
	nx_tcp_output(st);
	for (unsigned b = 0; st->queue != NX_NO_QUEUE && b < RX_BURSTS_PER_POLL; b++) {
		unsigned n = st->dev->rx_burst(st->dev, st->queue, burst, RX_BURST);
		for (unsigned i = 0; i < n; i++) {
			burst[i]->nextpkt = NULL;
			nx_rx(st, burst[i]);
		}
		if (n)
			work = true;
		if (n < RX_BURST)
			break;
	}
	if (local_run(st))
		work = true;
	/* What the input asked to go out now (ACKs of every second segment,
	 * out-of-order and window updates, data the ACKs let go); delayed
	 * ACKs wait for a reply to ride on, from the next round's tasks. */
	nx_tcp_output(st);
	if (st->ntx)
		work = true;
	tx_flush(st);
	return work;
}

static bool poll_fn(void *arg)
{
	return nx_stack_poll(arg);
}

static bool pure_poll_fn(void *arg)
{
	struct nx_stack *st = arg;
	const struct sk_netdev_ops *ops = st->dev->ops;

	/* Asked after the reactor marked itself asleep: a frame published
	 * just before (whose sender saw us awake) is found here. */
	return st->ntx || st->local_head ||
	       (st->queue != NX_NO_QUEUE && ops->rx_pending &&
		ops->rx_pending(st->dev, st->queue));
}

static bool busy_fn(void *arg)
{
	struct nx_stack *st = arg;
	return nx_tcp_busy(st) || st->ntx;
}

/* --- create / destroy ---------------------------------------------------- */

int nx_stack_create(const struct nx_config *cfg, struct nx_stack **out)
{
	struct nx_shard *sh = my_shard();
	struct nx_stack *st;
	int r;

	if (!cfg->dev || (cfg->queue >= cfg->dev->nqueues && cfg->queue != NX_NO_QUEUE) ||
	    !cfg->ip ||
	    cfg->prefix < 1 || cfg->prefix > 32)
		return -EINVAL;
	st = sk_alloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	memset(st, 0, sizeof(*st));
	st->dev = cfg->dev;
	st->queue = cfg->queue;
	st->ip = cfg->ip;
	st->mask = cfg->prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> cfg->prefix);
	st->gw = cfg->gw;
	memcpy(st->mac, cfg->mac, 6);
	/* No bigger than a receive buffer holds: the MSS we announce
	 * follows from it, and a frame past the buffer is dropped. */
	st->mtu = cfg->dev->mtu ? cfg->dev->mtu : 1500;
	if (st->mtu > SK_PKT_DATAROOM - NX_ETH_HLEN - 4)
		st->mtu = SK_PKT_DATAROOM - NX_ETH_HLEN - 4;
	st->rx_limit = cfg->rx_limit ? cfg->rx_limit : 256 * 1024;
	st->local_tail = &st->local_head;
	st->rand = (uint32_t)(sk_now_ns() ^ (uintptr_t)st ^ cfg->ip) | 1;
	for (int i = 0; i < 8; i++)
		nx_random(st);

	r = sleeper_start(sh);
	if (r == 0 && st->queue != NX_NO_QUEUE)
		r = sk_netdev_attach(st->dev, st->queue);
	if (r == 0)
		r = nx_arp_init(st);
	if (r == 0 && (r = nx_ip_init(st)) != 0)
		nx_arp_fini(st);
	if (r == 0 && (r = nx_udp_init(st)) != 0) {
		nx_ip_fini(st);
		nx_arp_fini(st);
	}
	if (r == 0 && (r = nx_tcp_init(st)) != 0) {
		nx_udp_fini(st);
		nx_ip_fini(st);
		nx_arp_fini(st);
	}
	if (r) {
		sk_free(st);
		return r;
	}
	st->poller = (struct sk_poller){ .poll = poll_fn, .pure_poll = pure_poll_fn,
					 .arg = st, .busy = busy_fn };
	sk_reactor_add_poller(&st->poller);
	st->next = sh->list;
	sh->list = st;
	nx_arp_announce(st);
	*out = st;
	return 0;
}

void nx_stack_destroy(struct nx_stack *st)
{
	struct nx_shard *sh = my_shard();

	sk_reactor_remove_poller(&st->poller);
	for (struct nx_stack **pp = &sh->list; *pp; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	if (!sh->list && sh->sleeper_on) {
		sk_reactor_set_sleeper(NULL);
		sh->sleeper_on = false;
	}
	/* Last words (RSTs, FINs, also those the teardown itself sends) go
	 * out before the queue is abandoned. */
	nx_tcp_output(st);
	nx_tcp_fini(st);
	nx_udp_fini(st);
	nx_ip_fini(st);
	nx_arp_fini(st);
	tx_flush(st);
	sk_pkt_free_list(st->local_head);
	for (unsigned i = 0; i < st->ntx; i++)
		sk_pkt_free(st->txq[i]);
	sk_free(st);
}

/* --- configuration ------------------------------------------------------- */

static int parse_ip(const char *s, uint32_t *ip, int *prefix)
{
	unsigned a, b, c, d, p = 32;
	int n = 0;

	if (sscanf(s, "%u.%u.%u.%u%n", &a, &b, &c, &d, &n) != 4 || a > 255 ||
	    b > 255 || c > 255 || d > 255)
		return -EINVAL;
	s += n;
	if (*s == '/') {
		if (!prefix || sscanf(s + 1, "%u%n", &p, &n) != 1 || p < 1 || p > 32 ||
		    s[1 + n])
			return -EINVAL;
	} else if (*s || prefix) {
		return -EINVAL;
	}
	*ip = a << 24 | b << 16 | c << 8 | d;
	if (prefix)
		*prefix = (int)p;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int n = 0;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &n) != 6 || s[n])
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	if (mac[0] & 1)
		return -EINVAL;	/* multicast */
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) ? 0 : -EINVAL;
}

static int native_parse(const struct sk_net_config *cfg, struct parsed *p, char *err,
			size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (!cfg->netdev || !*cfg->netdev) {
		snprintf(err, errlen, "--stack=native needs --netdev=tap:NAME, dpdk:VDEV or loop");
		return -EINVAL;
	}
	if (!strncmp(cfg->netdev, "loop", 4)) {
		const char *q = cfg->netdev + 4;
		if (*q && (*q != ':' || strspn(q + 1, "0123456789") != strlen(q + 1) ||
			   atoi(q + 1) < 1 || atoi(q + 1) > SK_NETDEV_MAX_QUEUES)) {
			snprintf(err, errlen, "--netdev: '%s' is not loop or loop:QUEUES (1..%d)",
				 cfg->netdev, SK_NETDEV_MAX_QUEUES);
			return -EINVAL;
		}
	} else if (!strncmp(cfg->netdev, "dpdk:", 5)) {
		if (!sk_netdev_dpdk_built()) {
			snprintf(err, errlen, "--netdev=%s: this skerry was built without DPDK "
				 "(install libdpdk-dev and rebuild)", cfg->netdev);
			return -EINVAL;
		}
		if (!cfg->netdev[5] || cfg->netdev[5] == ',') {
			snprintf(err, errlen, "--netdev: '%s' names no virtual device, e.g. "
				 "dpdk:net_memif0,role=server,socket=/run/skerry.sock", cfg->netdev);
			return -EINVAL;
		}
	} else if (strncmp(cfg->netdev, "tap:", 4) || !cfg->netdev[4] ||
		   strlen(cfg->netdev + 4) > 15) {
		snprintf(err, errlen,
			 "--netdev: '%s' is not tap:NAME (NAME up to 15 characters), "
			 "dpdk:VDEV or loop", cfg->netdev);
		return -EINVAL;
	}
	if (cfg->eal && strncmp(cfg->netdev, "dpdk:", 5)) {
		snprintf(err, errlen, "--eal needs --netdev=dpdk:VDEV");
		return -EINVAL;
	}
	if (cfg->netdev_queues > SK_NETDEV_MAX_QUEUES) {
		snprintf(err, errlen, "--netdev-queues: %llu is more than %d", cfg->netdev_queues,
			 SK_NETDEV_MAX_QUEUES);
		return -EINVAL;
	}
	if (cfg->netdev_queues && !strncmp(cfg->netdev, "loop", 4)) {
		snprintf(err, errlen, "--netdev-queues: loop takes its queues as loop:QUEUES");
		return -EINVAL;
	}
	if (!cfg->ip || parse_ip(cfg->ip, &p->ip, &p->prefix) || !p->ip ||
	    (p->ip >> 24) == 127 || (p->ip >> 28) >= 14) {
		snprintf(err, errlen, "--ip: '%s' is not a unicast ADDR/PREFIX, e.g. 10.0.0.2/24",
			 cfg->ip ? cfg->ip : "");
		return -EINVAL;
	}
	if (cfg->gw) {
		uint32_t mask = p->prefix == 32 ? ~0u : ~(~0u >> p->prefix);
		if (parse_ip(cfg->gw, &p->gw, NULL) || !p->gw || p->gw == p->ip) {
			snprintf(err, errlen, "--gw: '%s' is not an IPv4 address", cfg->gw);
			return -EINVAL;
		}
		if ((p->gw & mask) != (p->ip & mask)) {
			snprintf(err, errlen, "--gw: %s is not inside --ip %s", cfg->gw, cfg->ip);
			return -EINVAL;
		}
	}
	if (cfg->mac) {
		if (parse_mac(cfg->mac, p->mac)) {
			snprintf(err, errlen,
				 "--mac: '%s' is not a unicast MAC like 02:00:00:00:00:01",
				 cfg->mac);
			return -EINVAL;
		}
		p->has_mac = true;
	}
	if (cfg->fault) {
		if (sk_fault_parse(cfg->fault, &p->fault)) {
			snprintf(err, errlen,
				 "--netdev-fault: cannot parse '%s' (e.g. drop=0.05,reorder=0.02,"
				 "dup=0.01,corrupt=0.001,delay=0.01,delay-us=500,seed=1)",
				 cfg->fault);
			return -EINVAL;
		}
		p->has_fault = true;
	}
	return 0;
}

int sk__native_check(const struct sk_net_config *cfg, char *err, size_t errlen)
{
	struct parsed p;
	return native_parse(cfg, &p, err, errlen);
}

static int group_open(const struct sk_net_config *cfg)
{
	struct parsed *p = &grp.cfg;
	struct sk_netdev *dev = NULL;
	char err[200];
	unsigned n = sk_shard_count();
	/* Device queues: one per shard unless told fewer (a memif peer with
	 * fewer queues); shards past them go through software forwarding. */
	unsigned nq = cfg->netdev_queues && cfg->netdev_queues < n ? (unsigned)cfg->netdev_queues : n;
	int r;

	r = native_parse(cfg, p, err, sizeof(err));
	if (r) {
		sk_log_error("%s", err);
		return r;
	}
	if (!strncmp(cfg->netdev, "loop", 4)) {
		/* loop:Q gives Q queues (fewer than shards: software RSS). */
		unsigned q = cfg->netdev[4] ? (unsigned)atoi(cfg->netdev + 5) : n;
		r = sk_netdev_loop_self(q, 0, p->has_mac ? p->mac : NULL, &dev);
	} else if (!strncmp(cfg->netdev, "dpdk:", 5)) {
		/* The driver logs why it failed (EAL, hugepages, the PMD). */
		r = sk_netdev_dpdk(cfg->netdev + 5, cfg->eal, nq, p->has_mac ? p->mac : NULL,
				   &dev);
		if (r)
			return r;
	} else {
		const char *name = cfg->netdev + 4;
		if (!sk_netdev_tap_exists(name)) {
			sk_log_error("tap device %s does not exist; create it first, e.g. "
				     "ip tuntap add dev %s mode tap multi_queue && "
				     "ip addr add 10.0.0.1/24 dev %s && ip link set %s up",
				     name, name, name, name);
			return -ENODEV;
		}
		r = sk_netdev_tap(name, nq, p->has_mac ? p->mac : NULL, &dev);
		if (r) {
			const char *why = r == -EPERM ? " (needs root or CAP_NET_ADMIN)" :
					  r == -ENOENT ? " (/dev/net/tun is missing: modprobe tun)" :
					  r == -EINVAL ? " (bad name, or the device exists without "
							 "multi_queue: ip tuntap add NAME mode tap multi_queue)" :
					  r == -EBUSY ? " (in use by another process)" : "";
			sk_log_error("cannot open tap device %s: %s%s", name, strerror(-r), why);
			return r;
		}
	}
	if (r) {
		sk_log_error("cannot create device %s: %s", cfg->netdev, strerror(-r));
		return r;
	}
	if (p->has_fault) {
		struct sk_netdev *f;
		r = sk_netdev_fault(dev, &p->fault, &f);
		if (r) {
			sk_netdev_close(dev);
			sk_log_error("cannot add fault injection: %s", strerror(-r));
			return r;
		}
		dev = f;
	}
	grp.dev = dev;
	grp.n = n;
	return 0;
}

static int native_init(const struct sk_net_config *cfg)
{
	const struct parsed *p = &grp.cfg;
	struct nx_config nc;
	unsigned me = sk_reactor_id();
	int exp = 0, r;

	/* The first shard opens the device; the others wait for it. */
	if (atomic_compare_exchange_strong(&grp.state, &exp, 1)) {
		r = group_open(cfg);
		atomic_store(&grp.state, r ? r : 2);
	} else {
		while (atomic_load(&grp.state) == 1)
			sk_plat_cpu_relax();
	}
	/* A failed open stays failed for the process: the app exits. */
	if ((r = atomic_load(&grp.state)) < 0)
		return r;
	memset(&nc, 0, sizeof(nc));
	nc.dev = grp.dev;
	nc.queue = me < grp.dev->nqueues ? me : NX_NO_QUEUE;
	nc.ip = p->ip;
	nc.prefix = (uint8_t)p->prefix;
	nc.gw = p->gw;
	memcpy(nc.mac, grp.dev->mac, 6);
	nc.rx_limit = cfg->rx_limit;
	atomic_fetch_add(&grp.users, 1);
	r = nx_stack_create(&nc, &nx_default);
	if (r) {
		sk_log_error("native stack on shard %u: %s", me, strerror(-r));
		if (atomic_fetch_sub(&grp.users, 1) == 1) {
			sk_netdev_close(grp.dev);
			grp.dev = NULL;
			atomic_store(&grp.state, 0);
		}
		return r;
	}
	nx_default->group = &grp;
	nx_default->shard = me;
	atomic_store(&grp.inst[me], nx_default);
	if (me == 0) {
		char ip[24];
		struct sk_sockaddr a = { p->ip, 0 };
		sk_addr_format(&a, ip, sizeof(ip));
		ip[strlen(ip) - 2] = 0;	/* drop ":0" */
		sk_log_info("native stack on %s (%u queue%s), %s/%d, mac "
			    "%02x:%02x:%02x:%02x:%02x:%02x",
			    grp.dev->name, grp.dev->nqueues, grp.dev->nqueues == 1 ? "" : "s",
			    ip, p->prefix, nc.mac[0], nc.mac[1], nc.mac[2], nc.mac[3],
			    nc.mac[4], nc.mac[5]);
	}
	return 0;
}

/* The counters that moved, on one line (debug level: -vv, --log-level). */
static void log_stats(const struct nx_stack *st)
{
	char line[2048];
	size_t n = 0;

#define NX_STAT_PRINT(f)                                                       \
	if (st->stats.f && n < sizeof(line))                                   \
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", #f, \
				      (unsigned long long)st->stats.f);
	NX_STATS(NX_STAT_PRINT)
#undef NX_STAT_PRINT
	sk_log_debug("native stack counters of shard %u:%s", st->shard, n ? line : " none");
	if (st->queue != NX_NO_QUEUE) {
		const struct sk_netdev_stats *q = &st->dev->stats[st->queue];
		sk_log_debug("device %s queue %u (shard %u): rx_packets=%llu rx_bytes=%llu "
			     "tx_packets=%llu tx_bytes=%llu rx_dropped=%llu tx_dropped=%llu",
			     st->dev->name, st->queue, st->shard,
			     (unsigned long long)q->rx_packets, (unsigned long long)q->rx_bytes,
			     (unsigned long long)q->tx_packets, (unsigned long long)q->tx_bytes,
			     (unsigned long long)q->rx_dropped, (unsigned long long)q->tx_dropped);
	}
}

static void native_fini(void)
{
	unsigned me = sk_reactor_id();

	if (!nx_default)
		return;
	log_stats(nx_default);
	atomic_store(&grp.inst[me], NULL);
	nx_stack_destroy(nx_default);
	nx_default = NULL;
	if (atomic_fetch_sub(&grp.users, 1) == 1) {
		sk_netdev_close(grp.dev);
		grp.dev = NULL;
		atomic_store(&grp.state, 0);
	}
	sk_pkt_pool_trim();
}

/* --- the socket API on the shard's instance ------------------------------ */

static int native_listen(const struct sk_sockaddr *a, const struct sk_listen_opts *o,
			 struct sk_listener **out)
{
	return nx_tcp_listen(nx_default, a, o, out);
}

static sk_future native_connect(const struct sk_sockaddr *a)
{
	return nx_tcp_connect(nx_default, a);
}

static int native_udp_bind(const struct sk_sockaddr *a, bool reuseport, struct sk_udp **out)
{
	return nx_udp_bind(nx_default, a, reuseport, out);
}

const struct sk_stack sk__native_stack = {
	.init = native_init,
	.fini = native_fini,
	.listen = native_listen,
	.listener_addr = nx_tcp_listener_addr,
	.accept = nx_tcp_accept,
	.listener_close = nx_tcp_listener_close,
	.connect = native_connect,
	.udp_bind = native_udp_bind,
	.udp_addr = nx_udp_addr,
	.udp_recv = nx_udp_recv,
	.udp_release = nx_udp_release,
	.udp_send = nx_udp_send,
	.udp_close = nx_udp_close,
};
