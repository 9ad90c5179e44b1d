/*
 * nx.h - the native stack's insides, shared by its files.
 *
 * One struct nx_stack is one IPv4 host on one device queue, driven by one
 * shard.  The shard's default instance serves the socket API (sk_listen,
 * sk_connect, ...) through struct sk_stack; tests may create more
 * instances on a shard (two hosts joined by a loop pair) and use the nx_*
 * calls directly.
 *
 * Receive:  device rx_burst / forwarded packet / local delivery
 *             -> nx_eth_input -> nx_arp_input | nx_ip_input
 *             -> (reassembly) -> nx_steer (owner shard?) -> nx_icmp_input |
 *                nx_udp_input | nx_tcp_input
 * Transmit: nx_tcp_* / nx_udp_send / nx_icmp -> nx_ip_output (route,
 *           fragments, local delivery) -> nx_arp_output (resolve or park)
 *           -> nx_eth_output -> nx_tx (batched; tx_burst at the end of the
 *           reactor round)
 *
 * Conventions: addresses and ports in host byte order in every struct and
 * argument; packet bytes in network order.  An input function owns the
 * packet it is given (frees or keeps it).  Every dropped packet bumps one
 * counter of struct nx_stats.  Nothing here takes locks: an instance is
 * only touched by its shard; other shards reach it through sk_smp_post.
 */
#ifndef SK_NET_NX_H
#define SK_NET_NX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../sock.h"
#include "skerry/netdev.h"
#include "skerry/pkt.h"
#include "skerry/reactor.h"

/* --- wire constants ----------------------------------------------------- */

#define NX_ETH_HLEN 14
#define NX_ETH_P_IP 0x0800
#define NX_ETH_P_ARP 0x0806
#define NX_IP_HLEN 20
#define NX_IPPROTO_ICMP 1
#define NX_IPPROTO_TCP 6
#define NX_IPPROTO_UDP 17
#define NX_TCP_HLEN 20
#define NX_UDP_HLEN 8

static inline uint16_t nx_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t nx_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void nx_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void nx_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* --- Internet checksum (RFC 1071) --------------------------------------- */

/* Add @len bytes at @p to the running 32-bit sum @sum (byte order handled:
 * the result folds to the network-order checksum).  @len may be odd only
 * for the last piece of a message. */
uint32_t nx_csum_add(uint32_t sum, const void *p, size_t len);
/* Sum over @len bytes of a packet chain from offset @off. */
uint32_t nx_csum_pkt(uint32_t sum, const struct sk_pkt *p, uint32_t off, uint32_t len);
/* Sum of the TCP/UDP pseudo-header. */
uint32_t nx_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);
/* Fold and complement: the value to store (0 means "all ones" for UDP).
 * Sums are of big-endian 16-bit words, so the result is stored with
 * nx_put16(); a message whose sum covers a correct checksum folds to 0. */
uint16_t nx_csum_fold(uint32_t sum);

/* --- counters ----------------------------------------------------------- */

/* Every drop has its own counter (X-macro: name, so tests and metrics can
 * list them). */
#define NX_STATS(X)                                                            \
	X(rx_frames) X(rx_bytes) X(tx_frames) X(tx_bytes) X(tx_dropped)        \
	X(fwd_out) X(fwd_in) X(fwd_dropped) X(local_delivered)                 \
	X(eth_short) X(eth_not_ours) X(eth_unknown_type)                       \
	X(arp_rx) X(arp_bad) X(arp_requests_sent) X(arp_replies_sent)          \
	X(arp_resolved) X(arp_pending_dropped) X(arp_unresolved)               \
	X(ip_rx) X(ip_short) X(ip_bad_version) X(ip_bad_hlen) X(ip_bad_len)    \
	X(ip_bad_csum) X(ip_not_ours) X(ip_bad_proto) X(ip_bad_src)            \
	X(ip_no_route) X(ip_frags) X(ip_reassembled) X(ip_frag_dropped)        \
	X(ip_frag_timeout) X(ip_frags_sent)                                    \
	X(icmp_rx) X(icmp_bad) X(icmp_echo_replies) X(icmp_unreach_sent)       \
	X(icmp_ignored)                                                        \
	X(udp_rx) X(udp_short) X(udp_bad_len) X(udp_bad_csum) X(udp_no_port)   \
	X(udp_queue_full) X(udp_tx)                                            \
	X(tcp_rx) X(tcp_short) X(tcp_bad_off) X(tcp_bad_csum) X(tcp_bad_opts)  \
	X(tcp_bad_flags) X(tcp_no_port) X(tcp_out_of_window) X(tcp_bad_ack)    \
	X(tcp_rst_rx) X(tcp_rst_sent) X(tcp_syn_dropped) X(tcp_backlog_full)   \
	X(tcp_accept_full) X(tcp_ooo_queued) X(tcp_ooo_dropped) X(tcp_dup_rx)  \
	X(tcp_rcv_full) X(tcp_segs_out) X(tcp_retransmits)                     \
	X(tcp_fast_retransmits) X(tcp_rto_timeouts) X(tcp_persist_probes)      \
	X(tcp_keepalive_probes) X(tcp_conn_timeouts) X(tcp_active_opens)       \
	X(tcp_passive_opens) X(tcp_time_wait) X(tcp_time_wait_overflow)        \
	X(tcp_sack_retransmits) X(tcp_sack_blocks_rx) X(tcp_sack_bad)

struct nx_stats {
#define NX_STAT_FIELD(n) uint64_t n;
	NX_STATS(NX_STAT_FIELD)
#undef NX_STAT_FIELD
};

#define NX_INC(st, name) ((st)->stats.name++)

/* --- the instance ------------------------------------------------------- */

struct nx_arp;		/* arp.c */
struct nx_frag;		/* ip.c */
struct nx_udp;		/* udp.c */
struct nx_tcp;		/* tcp.c */
struct nx_group;	/* stack.c: instances sharing one device */

#define NX_TX_BURST 64

/* An instance without a device queue of its own (the device has fewer
 * queues than there are shards): it receives what shard 0 forwards and
 * hands its frames to shard 0 for transmission. */
#define NX_NO_QUEUE (~0u)

struct nx_config {
	struct sk_netdev *dev;
	unsigned queue;		/* device queue this instance drives, or
				 * NX_NO_QUEUE */
	uint32_t ip;		/* our address */
	uint8_t prefix;		/* subnet prefix length (1..32) */
	uint32_t gw;		/* default gateway, 0: none */
	uint8_t mac[6];		/* our MAC (usually the device's) */
	size_t rx_limit;	/* per-socket buffered input (0: 256 KiB) */
};

struct nx_stack {
	struct sk_netdev *dev;
	unsigned queue;
	struct nx_group *group;	/* NULL: a lone instance (tests) */
	unsigned shard;		/* index of this instance in its group */
	uint32_t ip, mask, gw;
	uint8_t mac[6];
	uint16_t mtu;		/* IP MTU */
	size_t rx_limit;
	struct nx_arp *arp;
	struct nx_frag *frag;
	struct nx_udp *udp;
	struct nx_tcp *tcp;
	/* Frames waiting for tx_burst (flushed at the end of each poll). */
	struct sk_pkt *txq[NX_TX_BURST];
	unsigned ntx;
	/* Packets to ourselves, fed back in at the next poll (like lo). */
	struct sk_pkt *local_head, **local_tail;
	struct sk_poller poller;
	struct nx_stack *next;	/* the shard's instances */
	uint32_t rand;		/* xorshift state */
	struct nx_stats stats;
};

/* Create an instance on the calling shard (registers its poller).
 * 0, -EINVAL, -ENOMEM. */
int nx_stack_create(const struct nx_config *cfg, struct nx_stack **out);
/* Stop and free it: every socket must be closed (TIME_WAIT ones are
 * dropped), parked and queued packets are freed. */
void nx_stack_destroy(struct nx_stack *st);

/* Run one receive/transmit round by hand (tests); true if it did work. */
bool nx_stack_poll(struct nx_stack *st);

/* A pseudo-random 32-bit number (per-instance xorshift, seeded at create). */
uint32_t nx_random(struct nx_stack *st);

/* --- stack.c: frames in and out, steering -------------------------------- */

/* A received frame (data at the Ethernet header) into the stack. */
void nx_rx(struct nx_stack *st, struct sk_pkt *p);

/* Queue a complete frame for transmission on this instance's queue. */
void nx_tx(struct nx_stack *st, struct sk_pkt *p);

/* Can nx_tx take a frame now (hands waiting frames to the device first
 * if the queue is full)?  For senders that can report -EAGAIN. */
bool nx_tx_room(struct nx_stack *st);

/* Deliver an IP packet (data at the IP header) to ourselves at the next
 * poll. */
void nx_local_deliver(struct nx_stack *st, struct sk_pkt *p);

/*
 * Software RSS.  @hash is sk_rss_hash() of the received packet.  When the
 * flow belongs to another shard of the group, the packet (data at its IP
 * header) is handed to that shard, which resumes at nx_ip_input; returns
 * true and the caller forgets the packet.  False: it is ours, go on.
 */
bool nx_steer(struct nx_stack *st, struct sk_pkt *p, uint32_t hash);

/* Would a packet with @hash arriving from the device belong to us?  (For
 * choosing local ports of outgoing connections.) */
bool nx_flow_is_local(const struct nx_stack *st, uint32_t hash);

/* Tell the other shards of the group that @ip is at @mac. */
void nx_group_arp_learned(struct nx_stack *st, uint32_t ip, const uint8_t *mac);

/* --- eth.c / arp.c ------------------------------------------------------ */

/* The first @n bytes of @p contiguous in its head segment, or NULL. */
static inline uint8_t *nx_pull(struct sk_pkt *p, uint32_t n)
{
	return p->len >= n ? p->data : sk_pkt_pullup(p, n);
}

/* ff:ff:ff:ff:ff:ff */
extern const uint8_t nx_mac_bcast[6];

void nx_eth_input(struct nx_stack *st, struct sk_pkt *p);
/* Prepend an Ethernet header and nx_tx(). */
void nx_eth_output(struct nx_stack *st, struct sk_pkt *p, const uint8_t *dst_mac,
		   uint16_t type);

int nx_arp_init(struct nx_stack *st);
void nx_arp_fini(struct nx_stack *st);
void nx_arp_input(struct nx_stack *st, struct sk_pkt *p);
/* Send @p (data at the IP header) to next hop @ip: now if the MAC is known,
 * else parked (a few packets per address) while a request goes out. */
void nx_arp_output(struct nx_stack *st, struct sk_pkt *p, uint32_t next_hop);
/* Record @ip at @mac (from another shard, or a test). */
void nx_arp_learn(struct nx_stack *st, uint32_t ip, const uint8_t *mac);
/* Gratuitous ARP for our address (at start). */
void nx_arp_announce(struct nx_stack *st);

/* --- ip.c (IPv4, fragments, ICMP) --------------------------------------- */

/* Tunables of ARP, IP and ICMP (tests lower them). */
struct nx_ip_tunables {
	uint64_t arp_reachable_ns;	/* entry lifetime: 5 min */
	uint64_t arp_retry_ns;		/* between requests: 1 s */
	unsigned arp_tries;		/* requests before giving up: 3 */
	unsigned arp_pending;		/* parked packets per address: 64 */
	uint64_t frag_timeout_ns;	/* reassembly: 30 s */
	unsigned frag_max;		/* reassemblies in progress: 64 */
	size_t frag_mem;		/* buffer bytes they hold: 4 MiB */
	unsigned icmp_rate;		/* ICMP errors per second: 100 */
};
extern struct nx_ip_tunables nx_ip_tun;

/* ol_flags bit of packets we deliver to ourselves (never set by a device):
 * their source is our own address and their checksums are known good. */
#define NX_PKT_LOCAL (1u << 31)

int nx_ip_init(struct nx_stack *st);
void nx_ip_fini(struct nx_stack *st);
/* Data at the IPv4 header.  Before handing a packet to the transport,
 * sets p->l3_len to the IP header length and strips it (the bytes stay in
 * the headroom: sk_pkt_prepend(p, p->l3_len) gets the header back). */
void nx_ip_input(struct nx_stack *st, struct sk_pkt *p);
/*
 * Send a transport payload (data at the TCP/UDP/ICMP header, checksum
 * done or requested through ol_flags) from us to @dst: prepends the IP
 * header, routes (subnet, gateway, ourselves), fragments past the MTU
 * unless @df.  0, or -ENETUNREACH (no route), -EMSGSIZE (past the MTU
 * with @df, or past 65535 bytes), -ENOBUFS/-ENOMEM; the packet is consumed
 * either way.
 */
int nx_ip_output(struct nx_stack *st, struct sk_pkt *p, uint32_t dst,
		 uint8_t proto, bool df);
/* A fresh contiguous packet with room for @len bytes after SK_PKT_HEADROOM
 * of headroom (len 0): a pool buffer, or one heap buffer when @len is past
 * SK_PKT_DATAROOM.  NULL: out of memory. */
struct sk_pkt *nx_pkt_linear(uint32_t len);
void nx_icmp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst);
/* ICMP destination unreachable (@code) about the IP packet @orig (data at
 * its IP header; not consumed), rate-limited. */
void nx_icmp_unreach(struct nx_stack *st, const struct sk_pkt *orig, uint8_t code);

/* --- udp.c -------------------------------------------------------------- */

int nx_udp_init(struct nx_stack *st);
void nx_udp_fini(struct nx_stack *st);
/* Data at the UDP header, pkt_len = the IP payload length. */
void nx_udp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst);
int nx_udp_bind(struct nx_stack *st, const struct sk_sockaddr *a, bool reuseport,
		struct sk_udp **out);
void nx_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out);
sk_future nx_udp_recv(struct sk_udp *u, struct sk_dgram *d);
void nx_udp_release(struct sk_udp *u, struct sk_dgram *d);
int nx_udp_send(struct sk_udp *u, const struct sk_sockaddr *to, const void *buf,
		size_t len);
void nx_udp_close(struct sk_udp *u);

/* --- tcp.c -------------------------------------------------------------- */

int nx_tcp_init(struct nx_stack *st);
/* Frees every connection still there (TIME_WAIT, orphans). */
void nx_tcp_fini(struct nx_stack *st);
/* Data at the TCP header, pkt_len = the IP payload length. */
void nx_tcp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst);
/* Send what the round queued (data, ACKs, window updates); called by the
 * poller before the device burst. */
void nx_tcp_output(struct nx_stack *st);
/* Work in flight: connections the app has not closed, or closed and not
 * yet done sending. */
bool nx_tcp_busy(const struct nx_stack *st);
int nx_tcp_listen(struct nx_stack *st, const struct sk_sockaddr *a,
		  const struct sk_listen_opts *o, struct sk_listener **out);
void nx_tcp_listener_addr(const struct sk_listener *l, struct sk_sockaddr *out);
sk_future nx_tcp_accept(struct sk_listener *l);
void nx_tcp_listener_close(struct sk_listener *l);
sk_future nx_tcp_connect(struct nx_stack *st, const struct sk_sockaddr *a);

/* Tunables (tests lower them). */
struct nx_tcp_tunables {
	uint64_t rto_min_ns;		/* 200 ms */
	uint64_t rto_max_ns;		/* 60 s */
	uint64_t rto_initial_ns;	/* 1 s */
	uint64_t delack_ns;		/* 40 ms */
	uint64_t time_wait_ns;		/* 2 MSL = 60 s */
	uint64_t fin_wait2_ns;		/* 60 s */
	uint64_t keepalive_ns;		/* idle time before probing; 0: off */
	uint64_t keepalive_intvl_ns;	/* between unanswered probes: 75 s */
	unsigned keepalive_probes;	/* unanswered probes before reset: 9 */
	unsigned syn_retries;		/* 6 */
	unsigned data_retries;		/* 15 */
	unsigned syn_backlog;		/* half-open connections per listener: 256 */
	size_t ooo_max;			/* out-of-order buffer memory (true
					 * size) per connection: 512 KiB, about
					 * a full default window of segments */
	unsigned time_wait_max;		/* TIME_WAIT connections per instance
					 * (beyond: the oldest ends): 16384;
					 * 0: no limit */
};
extern struct nx_tcp_tunables nx_tcp_tun;

#endif /* SK_NET_NX_H */
