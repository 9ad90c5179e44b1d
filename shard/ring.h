/*
 * ring.h - the single-producer/single-consumer ring between two shards.
 *
 * Indices are free-running u32s masked on access.  The producer's and the
 * consumer's indices sit on their own cache lines; the producer keeps its
 * unpublished position and a cached copy of the consumer's index in its own
 * shard state (struct sk_ring_prod), so the shared lines move only when a
 * batch is published or the cached index runs out.
 */
#ifndef SK_RING_H
#define SK_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_RING_SIZE 1024u		/* entries, power of two */
#define SK_RING_MASK (SK_RING_SIZE - 1)
#define SK_RING_BATCH 16u		/* publish at least this often */

struct sk_ring_msg {
	void (*fn)(void *arg);
	void *arg;
};

struct sk_ring {
	_Alignas(64) _Atomic uint32_t head;	/* published by the producer */
	_Alignas(64) _Atomic uint32_t tail;	/* released by the consumer */
	_Alignas(64) struct sk_ring_msg slots[SK_RING_SIZE];
};

_Static_assert(sizeof(struct sk_ring_msg) == 16, "four entries per cache line");
_Static_assert(offsetof(struct sk_ring, tail) - offsetof(struct sk_ring, head) >= 64 &&
	       offsetof(struct sk_ring, slots) - offsetof(struct sk_ring, tail) >= 64,
	       "producer and consumer indices must not share a cache line");

/* Producer-private view of one ring. */
struct sk_ring_prod {
	uint32_t head;		/* next slot to write */
	uint32_t published;	/* last head made visible */
	uint32_t tail_cache;	/* consumer's tail as last read */
};

static inline void sk_ring_init(struct sk_ring *r)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
}

/* Write one entry (not yet visible).  False when the ring is full. */
static inline bool sk_ring_push(struct sk_ring *r, struct sk_ring_prod *p,
				void (*fn)(void *), void *arg)
{
	if (p->head - p->tail_cache == SK_RING_SIZE) {
		p->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (p->head - p->tail_cache == SK_RING_SIZE)
			return false;
	}
	r->slots[p->head & SK_RING_MASK] = (struct sk_ring_msg){ fn, arg };
	p->head++;
	return true;
}

/* Make every written entry visible to the consumer. */
static inline void sk_ring_publish(struct sk_ring *r, struct sk_ring_prod *p)
{
	atomic_store_explicit(&r->head, p->head, memory_order_release);
	p->published = p->head;
}

/* Consumer: nothing waiting?  (No side effects.) */
static inline bool sk_ring_empty(struct sk_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) ==
	       atomic_load_explicit(&r->tail, memory_order_relaxed);
}

#endif /* SK_RING_H */
