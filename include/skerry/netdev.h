/*
 * skerry/netdev.h - network devices under the native stack.
 *
 * A device is its burst functions, a control ops table and its facts (queues, MAC, MTU, offloads,
 * link).  Queue q is used by one shard only - the shard that called
 * sk_netdev_attach(d, q) - so rx_burst/tx_burst take no locks.  Where the
 * device has a queue per shard each shard drives its own; otherwise the
 * stack uses queue 0 on shard 0 and forwards packets to their owner shard
 * in software.
 *
 * Drivers:
 *   loop   an in-memory pair of devices (or one device looped to itself),
 *          any number of queues; what one end sends the other receives
 *          on the queue chosen by the Toeplitz hash, as a NIC would.
 *   fault  a decorator over any device: drops, duplicates, reorders,
 *          delays and corrupts packets in both directions, from a seed.
 *   tap    Linux /dev/net/tun (IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE),
 *          one queue (file descriptor) per shard.
 *   dpdk   a DPDK ethdev on a virtual device (net_memif, net_tap,
 *          net_af_packet, net_ring, net_null), a queue pair per shard;
 *          present only when built with DPDK.
 */
#ifndef SKERRY_NETDEV_H
#define SKERRY_NETDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "skerry/pkt.h"

/* Offload capabilities (sk_netdev.offloads). */
#define SK_NETDEV_RX_CSUM	(1u << 0)	/* sets SK_PKT_RX_*_CSUM_* */
#define SK_NETDEV_TX_IP_CSUM	(1u << 1)
#define SK_NETDEV_TX_L4_CSUM	(1u << 2)
#define SK_NETDEV_RSS		(1u << 3)	/* spreads rx over queues by the
						 * Toeplitz hash of sk_rss_key */

#define SK_NETDEV_MAX_QUEUES 64

struct sk_netdev;

typedef unsigned (*sk_netdev_burst_fn)(struct sk_netdev *d, unsigned q,
					struct sk_pkt **pkts, unsigned n);

/* Control operations; members marked optional may be NULL. */
struct sk_netdev_ops {
	/*
	 * The calling shard drives queue @q from now on (records whom to wake
	 * when packets arrive).  Optional.
	 */
	int (*attach)(struct sk_netdev *d, unsigned q);
	/*
	 * A file descriptor that turns readable when queue @q has input, for
	 * the shard to sleep on; -1 when the device wakes the shard itself
	 * (sk_reactor_wake) or must be polled.  Optional.
	 */
	int (*wait_fd)(struct sk_netdev *d, unsigned q);
	/*
	 * Monotonic time at which queue @q has something to do even without
	 * new input (a delayed packet comes due); UINT64_MAX if none.  The
	 * shard sleeps no longer than that.  Optional.
	 */
	uint64_t (*next_event)(struct sk_netdev *d, unsigned q);
	/*
	 * Would rx_burst on queue @q return something now?  No side effects:
	 * it is what a poller's pure_poll asks just before the shard sleeps,
	 * so that a packet published by a device that wakes the shard itself
	 * (wait_fd -1) in the moment before it slept is not left waiting.
	 * Optional (NULL: assume nothing is pending).
	 */
	bool (*rx_pending)(struct sk_netdev *d, unsigned q);
	/* Free the device (after every queue stopped being used). */
	void (*close)(struct sk_netdev *d);
};

struct sk_netdev_stats {
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	uint64_t rx_dropped, tx_dropped;	/* device queue full, bad frames */
	/* fault decorator only */
	uint64_t f_dropped, f_duplicated, f_reordered, f_delayed, f_corrupted;
};

struct sk_netdev {
	/* The data path sits in the device, not behind ops (one indirection
	 * per burst).  rx_burst: up to @n received packets of queue @q into
	 * @pkts; returns the count.  tx_burst: send up to @n packets on queue
	 * @q; the device owns (and frees) those it took and returns how many,
	 * the caller keeps the rest (queue full).  Checksums are complete
	 * unless a packet asks for an offload the device has. */
	sk_netdev_burst_fn rx_burst;
	sk_netdev_burst_fn tx_burst;
	const struct sk_netdev_ops *ops;
	char name[32];
	unsigned nqueues;
	uint8_t mac[6];
	uint16_t mtu;			/* IP MTU (1500) */
	uint32_t offloads;		/* SK_NETDEV_* */
	bool link_up;
	void *priv;
	/* Per-queue counters; each written by its queue's shard only. */
	struct sk_netdev_stats stats[SK_NETDEV_MAX_QUEUES];
};

/* Sum of the per-queue counters. */
void sk_netdev_stats_sum(const struct sk_netdev *d, struct sk_netdev_stats *out);

static inline int sk_netdev_attach(struct sk_netdev *d, unsigned q)
{
	return d->ops->attach ? d->ops->attach(d, q) : 0;
}

static inline void sk_netdev_close(struct sk_netdev *d)
{
	if (d)
		d->ops->close(d);
}

/* --- drivers ------------------------------------------------------------ */

/*
 * A pair of connected in-memory devices with @nqueues queues each and the
 * given MACs (NULL: locally administered 02:00:00:00:00:01 / :02).  Frames
 * sent on a queue of one end arrive at the other end's queue
 * sk_rss_queue(hash) for IPv4 TCP/UDP (queue 0 for anything else).  Each
 * queue holds at most @depth packets (0: 1024); beyond that tx_burst stops.
 * 0 or -ENOMEM.
 */
int sk_netdev_loop_pair(unsigned nqueues, unsigned depth, const uint8_t *mac_a,
			const uint8_t *mac_b, struct sk_netdev **a, struct sk_netdev **b);

/* One device whose frames come back to itself (like the kernel's lo). */
int sk_netdev_loop_self(unsigned nqueues, unsigned depth, const uint8_t *mac,
			struct sk_netdev **out);

struct sk_fault_config {
	double drop, dup, reorder, corrupt, delay;	/* probabilities 0..1 */
	uint64_t delay_ns;	/* how long a delayed packet waits (default 1 ms) */
	uint64_t seed;
	bool rx, tx;		/* directions to fault (both when both false) */
};

/*
 * "drop=0.05,dup=0.01,reorder=0.02,corrupt=0.001,delay=0.01,delay-us=500,
 *  seed=7,dir=rx|tx|both" -> @out (unset fields 0).  0 or -EINVAL.
 */
int sk_fault_parse(const char *spec, struct sk_fault_config *out);

/*
 * Wrap @inner: same queues, MAC, MTU (offloads: none, so that corrupted
 * packets are caught by the stack's own checksums).  The decorator owns
 * @inner from now on and closes it.  A reordered packet is held back until
 * the next one of its queue has passed (or delay_ns at most).  0 or -ENOMEM.
 */
int sk_netdev_fault(struct sk_netdev *inner, const struct sk_fault_config *cfg,
		    struct sk_netdev **out);

/*
 * Open Linux tap device @ifname (created if missing, which needs
 * CAP_NET_ADMIN) with @nqueues queues.  The stack's MAC is @mac or, if
 * NULL, a random locally administered one (the kernel side keeps its own).
 * Returns 0, -ENOENT (no /dev/net/tun), -EPERM (no privilege), -EINVAL (bad
 * name, or the device exists without multi-queue), -EBUSY, other -errno.
 */
int sk_netdev_tap(const char *ifname, unsigned nqueues, const uint8_t *mac,
		  struct sk_netdev **out);

/* Does network interface @ifname exist (in this network namespace)?  Apps
 * refuse to run on a tap they would have to create: nobody would have
 * given its kernel side an address. */
bool sk_netdev_tap_exists(const char *ifname);

/*
 * A DPDK port on the virtual device @vdev, given as to EAL's --vdev, e.g.
 * "net_memif0,role=server,socket=/run/skerry.sock" or "net_tap0,iface=dp0",
 * with @nqueues rx/tx queue pairs (fewer when the PMD has fewer: see
 * nqueues).  The first call initialises EAL for the process: always
 * --no-pci (and refuses to go on if PCI is enabled all the same), its own
 * --file-prefix, --in-memory, main lcore on the calling thread's CPUs,
 * then @eal_args (space-separated extra EAL arguments, NULL for none, e.g.
 * "--no-huge -m 512"; later calls ignore it).  Only virtual devices of the
 * drivers above are plugged.  Each shard that attaches a queue registers
 * as an lcore of its own.  Received mbufs are wrapped as sk_pkt without
 * copying (the header lives in the mbuf's private area); RSS is programmed
 * with sk_rss_key and checksum offloads are used where the PMD offers them.
 * @mac NULL keeps the port's own MAC (net_tap, net_af_packet: a random one,
 * the port's being the kernel side's).  On failure the reason is logged and
 * a negative errno returned: -ENOTSUP built without DPDK, -EINVAL bad EAL
 * arguments, -ENOMEM no free hugepages and no --no-huge (or no memory for
 * the mbufs), -EPERM not an allowed device, -ENODEV the device could not be
 * created, -EBUSY already open in this process.
 */
int sk_netdev_dpdk(const char *vdev, const char *eal_args, unsigned nqueues,
		   const uint8_t *mac, struct sk_netdev **out);

/* Was skerry built with the DPDK driver? */
bool sk_netdev_dpdk_built(void);

/* --- RSS ---------------------------------------------------------------- */

/* The 40-byte Toeplitz key skerry programs into devices (and uses itself). */
extern const uint8_t sk_rss_key[40];

/*
 * Toeplitz hash of an IPv4 flow as a NIC computes it for a received
 * packet: src/dst are the packet's source and destination (host order).
 * With ports 0 and @l4 false, the 2-tuple hash (fragments, other protocols).
 */
uint32_t sk_rss_hash(uint32_t src_ip, uint32_t dst_ip, uint16_t src_port,
		     uint16_t dst_port, bool l4);

/* The queue a NIC with @nqueues queues picks for @hash: a 128-entry
 * redirection table filled round-robin, indexed by the hash's low bits. */
static inline unsigned sk_rss_queue(uint32_t hash, unsigned nqueues)
{
	return (hash & 127) % nqueues;
}

#endif /* SKERRY_NETDEV_H */
