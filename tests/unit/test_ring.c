/*
 * test_ring.c - the SPSC ring by itself (two plain threads) and the rings
 * between shards under many concurrent producers: exact counts and order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

#define COUNT 5000000u

static struct sk_ring *r;
static uint64_t consumed, order_errors;

static void *producer(void *arg)
{
	(void)arg;
	struct sk_ring_prod p = { 0 };
	for (uintptr_t i = 1; i <= COUNT; i++) {
		while (!sk_ring_push(r, &p, NULL, (void *)i))
			sk_ring_publish(r, &p);
		if (p.head - p.published >= SK_RING_BATCH)
			sk_ring_publish(r, &p);
	}
	sk_ring_publish(r, &p);
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	uintptr_t expect = 1;
	uint32_t tail = 0;
	while (expect <= COUNT) {
		uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		while (tail != head) {
			uintptr_t v = (uintptr_t)r->slots[tail & SK_RING_MASK].arg;
			if (v != expect)
				order_errors++;
			expect = v + 1;
			consumed++;
			tail++;
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	return NULL;
}

SK_TEST(spsc_ring_two_threads_exact_count_and_order)
{
	r = aligned_alloc(64, sizeof(*r));
	sk_ring_init(r);
	consumed = order_errors = 0;
	pthread_t a, b;
	pthread_create(&b, NULL, consumer, NULL);
	pthread_create(&a, NULL, producer, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK_EQ(consumed, COUNT);
	CHECK_EQ(order_errors, 0);
	free(r);
}

SK_TEST(spsc_ring_full_and_wraparound)
{
	r = aligned_alloc(64, sizeof(*r));
	sk_ring_init(r);
	struct sk_ring_prod p = { 0 };
	/* Start near the u32 wrap so the masked indices cross it. */
	p.head = p.published = p.tail_cache = UINT32_MAX - 10;
	atomic_store(&r->head, p.head);
	atomic_store(&r->tail, p.head);
	unsigned n = 0;
	while (sk_ring_push(r, &p, NULL, (void *)(uintptr_t)n))
		n++;
	CHECK_EQ(n, SK_RING_SIZE);
	sk_ring_publish(r, &p);
	CHECK(!sk_ring_empty(r));
	/* Consume 3, then exactly 3 more fit. */
	uint32_t tail = atomic_load(&r->tail);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ((uintptr_t)r->slots[(tail + i) & SK_RING_MASK].arg, i);
	atomic_store(&r->tail, tail + 3);
	unsigned more = 0;
	while (sk_ring_push(r, &p, NULL, NULL))
		more++;
	CHECK_EQ(more, 3);
	free(r);
}

/*
 * Every shard posts a numbered stream to every other shard, as fast as the
 * rings take it (retrying after -ENOBUFS); each receiver checks that each
 * stream arrives complete and in order.
 */
#define SHARDS 4
#define PER_STREAM 200000u

struct rx {
	_Alignas(64) uint64_t next[SHARDS];	/* next expected seq per source */
	uint64_t got, bad;
};
static struct rx rxs[SHARDS];
static uint64_t full_retries[SHARDS];

static void deliver(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	unsigned src = (unsigned)(v >> 48);
	uint64_t seq = v & 0xffffffffffffull;
	struct rx *x = &rxs[sk_shard_id()];
	if (seq != x->next[src])
		x->bad++;
	x->next[src] = seq + 1;
	x->got++;
}

struct tx {
	uint64_t sent[SHARDS];
};
static struct tx txs[SHARDS];

static bool all_posted(void *arg)
{
	(void)arg;
	unsigned me = sk_shard_id();
	for (unsigned d = 0; d < SHARDS; d++)
		if (d != me && txs[me].sent[d] < PER_STREAM)
			return false;
	return true;
}

static sk_future post_some(void *arg)
{
	(void)arg;
	unsigned me = sk_shard_id();
	for (unsigned d = 0; d < SHARDS; d++) {
		if (d == me)
			continue;
		for (unsigned k = 0; k < 512 && txs[me].sent[d] < PER_STREAM; k++) {
			uintptr_t v = ((uintptr_t)me << 48) | txs[me].sent[d];
			int rc = sk_smp_post(d, deliver, (void *)v);
			if (rc == -ENOBUFS) {
				full_retries[me]++;
				break;
			}
			CHECK_EQ(rc, 0);
			txs[me].sent[d]++;
		}
	}
	/* Let the reactor flush and consume before the next burst. */
	return sk_yield();
}

static sk_future stream_all(void *arg)
{
	(void)arg;
	return sk_do_until(all_posted, post_some, NULL);
}

static sk_future t_streams(void *arg)
{
	(void)arg;
	return sk_test_status0(sk_invoke_on_all(stream_all, NULL));
}

SK_TEST(shard_rings_many_producers_exact_counts_and_order)
{
	memset(rxs, 0, sizeof(rxs));
	memset(txs, 0, sizeof(txs));
	CHECK_EQ(sk_test_run(SHARDS, t_streams, NULL), 0);
	for (unsigned s = 0; s < SHARDS; s++) {
		CHECK_EQ(rxs[s].got, (uint64_t)PER_STREAM * (SHARDS - 1));
		CHECK_EQ(rxs[s].bad, 0);
		for (unsigned src = 0; src < SHARDS; src++)
			if (src != s)
				CHECK_EQ(rxs[s].next[src], PER_STREAM);
	}
	uint64_t retries = 0;
	for (unsigned s = 0; s < SHARDS; s++)
		retries += full_retries[s];
	printf("# ring-full retries: %llu\n", (unsigned long long)retries);
}
