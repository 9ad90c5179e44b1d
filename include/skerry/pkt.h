/*
 * skerry/pkt.h - packets for the native stack and its drivers.
 *
 * An sk_pkt is one buffer segment: headroom, then @len bytes of data at
 * @data, then tailroom.  Segments chain through @next into one packet
 * (scatter/gather); the head segment's @pkt_len is the whole packet's
 * length.  @nextpkt links whole packets in queues and bursts.
 *
 * Buffers come from a per-shard pool (a free list in front of the shard
 * allocator), so the receive and transmit paths allocate nothing once warm.
 * A packet may be freed on any shard: the memory goes back to the shard
 * that allocated it.  Foreign buffers (an rte_mbuf, a virtio descriptor, an
 * app's memory) are wrapped without copying and handed back through their
 * own free callback.
 *
 * A segment may be shared (sk_pkt_ref): the TCP receive queue keeps a
 * reference to the payload while the headers are long gone.  Shared
 * segments must not be written.
 */
#ifndef SKERRY_PKT_H
#define SKERRY_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room reserved in front of the data for headers to be prepended. */
#define SK_PKT_HEADROOM 128
/* Data room of a pool buffer: a 1500-byte MTU frame with VLAN tag, and
 * room to grow; packets larger than this are chains. */
#define SK_PKT_DATAROOM 2048

/* Offload flags (sk_pkt.ol_flags). */
#define SK_PKT_RX_IP_CSUM_GOOD	(1u << 0)	/* device verified the IPv4 header */
#define SK_PKT_RX_L4_CSUM_GOOD	(1u << 1)	/* device verified TCP/UDP */
#define SK_PKT_RX_CSUM_BAD	(1u << 2)	/* device saw a bad checksum */
#define SK_PKT_TX_IP_CSUM	(1u << 8)	/* device fills the IPv4 checksum */
#define SK_PKT_TX_L4_CSUM	(1u << 9)	/* device fills TCP/UDP from the
						 * pseudo-header sum in the field */
#define SK_PKT_RSS_HASH		(1u << 16)	/* @hash holds the device's hash */

/* Ownership flags (sk_pkt.flags). */
#define SK_PKT_F_EMBEDDED	(1u << 0)	/* the header lives inside the foreign
						 * buffer: ext_free releases both */

struct sk_pkt {
	uint8_t *data;		/* first byte of this segment's data */
	uint32_t len;		/* data bytes in this segment */
	uint32_t pkt_len;	/* head only: bytes over the whole chain */
	struct sk_pkt *next;	/* next segment of the same packet */
	struct sk_pkt *nextpkt;	/* next packet in a queue */
	uint8_t *buf;		/* start of the buffer (headroom begins here) */
	uint32_t buf_size;	/* bytes at buf */
	uint32_t refcnt;
	uint32_t ol_flags;	/* SK_PKT_* */
	uint32_t hash;		/* RSS hash when SK_PKT_RSS_HASH */
	uint16_t l2_len, l3_len, l4_len;	/* header sizes for offloads */
	uint16_t nsegs;		/* head only: segments in the chain */
	uint16_t flags;		/* SK_PKT_F_* */
	/* Foreign buffer: called instead of returning to the pool. */
	void (*ext_free)(struct sk_pkt *p, void *arg);
	void *ext_arg;
	uint64_t meta[2];	/* owner's scratch (a driver's timestamp,
				 * the stack's forwarding target) */
};

/*
 * A buffer with SK_PKT_HEADROOM headroom and SK_PKT_DATAROOM room for data,
 * len 0; NULL when out of memory.  Allocation-free once the shard's free
 * list is warm.
 */
struct sk_pkt *sk_pkt_alloc(void);

/*
 * Wrap @len bytes at @data (inside a buffer of @buf_size at @buf) without
 * copying; ext_free(pkt, arg) runs when the last reference goes.
 */
struct sk_pkt *sk_pkt_wrap(uint8_t *buf, uint32_t buf_size, uint8_t *data,
			   uint32_t len,
			   void (*ext_free)(struct sk_pkt *p, void *arg), void *arg);

/*
 * Set up a header that a foreign buffer carries itself (a DPDK mbuf's
 * private area): no pool header is taken, and when the last reference goes
 * ext_free(p, arg) releases header and buffer together.  The receive fast
 * path of such drivers: nothing is allocated or copied.
 */
static inline void sk_pkt_init_embedded(struct sk_pkt *p, uint8_t *buf, uint32_t buf_size,
					uint8_t *data, uint32_t len,
					void (*ext_free)(struct sk_pkt *p, void *arg),
					void *arg)
{
	p->data = data;
	p->len = p->pkt_len = len;
	p->next = p->nextpkt = NULL;
	p->buf = buf;
	p->buf_size = buf_size;
	p->refcnt = 1;
	p->flags = SK_PKT_F_EMBEDDED;
	p->ol_flags = 0;
	p->hash = 0;
	p->l2_len = p->l3_len = p->l4_len = 0;
	p->nsegs = 1;
	p->ext_free = ext_free;
	p->ext_arg = arg;
	p->meta[0] = p->meta[1] = 0;
}

/*
 * Take another reference to one segment (not the chain).  Freeing the
 * chain drops one reference from every segment but leaves the survivor's
 * @next as it was: clear it before freeing the segment on its own.
 */
static inline void sk_pkt_ref(struct sk_pkt *p)
{
	p->refcnt++;
}

/* Drop a reference to every segment of the chain; free those at zero. */
void sk_pkt_free(struct sk_pkt *p);

/* Free a list of whole packets linked by nextpkt. */
void sk_pkt_free_list(struct sk_pkt *p);

static inline uint32_t sk_pkt_headroom(const struct sk_pkt *p)
{
	return (uint32_t)(p->data - p->buf);
}

static inline uint32_t sk_pkt_tailroom(const struct sk_pkt *p)
{
	return p->buf_size - sk_pkt_headroom(p) - p->len;
}

/* Grow the head segment by @n bytes in front; NULL if no headroom. */
static inline uint8_t *sk_pkt_prepend(struct sk_pkt *p, uint32_t n)
{
	if (sk_pkt_headroom(p) < n)
		return NULL;
	p->data -= n;
	p->len += n;
	p->pkt_len += n;
	return p->data;
}

/* Drop @n bytes from the front of the head segment (n <= len). */
static inline uint8_t *sk_pkt_adj(struct sk_pkt *p, uint32_t n)
{
	p->data += n;
	p->len -= n;
	p->pkt_len -= n;
	return p->data;
}

/* Append @n bytes at the end of a single-segment packet; NULL if no room. */
static inline uint8_t *sk_pkt_append(struct sk_pkt *p, uint32_t n)
{
	uint8_t *t = p->data + p->len;
	if (sk_pkt_tailroom(p) < n)
		return NULL;
	p->len += n;
	p->pkt_len += n;
	return t;
}

/* Cut the packet to @len bytes (freeing segments past it). */
void sk_pkt_trim(struct sk_pkt *p, uint32_t len);

/*
 * Make the first @n bytes contiguous in the head segment (copying from
 * the following segments); pointer to them, or NULL if the packet is
 * shorter than @n or the head has no room.
 */
uint8_t *sk_pkt_pullup(struct sk_pkt *p, uint32_t n);

/* Copy @len bytes from offset @off of the chain to @dst; 0 or -EINVAL. */
int sk_pkt_copy_out(const struct sk_pkt *p, uint32_t off, uint32_t len, void *dst);

/* A full copy of the chain in fresh pool buffers (NULL: out of memory). */
struct sk_pkt *sk_pkt_copy(const struct sk_pkt *p);

/* Per-shard pool counters. */
struct sk_pkt_stats {
	uint64_t allocs, frees, alloc_failures;
	uint32_t cached;	/* buffers in the calling shard's free list */
};
void sk_pkt_stats(struct sk_pkt_stats *out);

/* Release the calling shard's cached buffers (at stack shutdown). */
void sk_pkt_pool_trim(void);

#endif /* SKERRY_PKT_H */
