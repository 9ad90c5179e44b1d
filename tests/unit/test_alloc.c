/*
 * test_alloc.c - the per-shard memory API (include/skerry/alloc.h), run
 * against whichever backend this build has (sk_mem_backend()).
 *
 * Each case sets the allocator up itself and tears it down again, so the
 * cases also exercise sk_mem_init() -> sk_mem_fini() -> sk_mem_init().
 * Shard threads are plain pthreads here: tests may use the OS directly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skerry/alloc.h"

#include "sk_test.h"

#define MiB ((size_t)1 << 20)

static bool is_shard_backend(void)
{
	return strcmp(sk_mem_backend(), "shard") == 0;
}

static int mem_setup(unsigned nshards, size_t budget)
{
	struct sk_mem_config cfg = { .nshards = nshards, .bytes_per_shard = budget };
	return sk_mem_init(&cfg);
}

static struct sk_mem_stats stats_of(unsigned shard)
{
	struct sk_mem_stats st;
	memset(&st, 0xee, sizeof(st));
	int rc = sk_mem_stats(shard, &st);
	CHECK_EQ(rc, 0);
	return st;
}

/* xorshift64*: the same sequence on every run. */
static uint64_t rng_state;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void fill(void *p, size_t n, unsigned tag)
{
	unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(tag * 131u + i * 7u);
}

static bool intact(const void *p, size_t n, unsigned tag)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)(tag * 131u + i * 7u))
			return false;
	return true;
}

struct block {
	uintptr_t at;
	size_t len;
};

static int block_cmp(const void *a, const void *b)
{
	const struct block *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* True when no two of the @n blocks overlap. */
static bool disjoint(struct block *b, size_t n)
{
	qsort(b, n, sizeof(*b), block_cmp);
	for (size_t i = 1; i < n; i++)
		if (b[i - 1].at + b[i - 1].len > b[i].at)
			return false;
	return true;
}

/* ---- configuration -------------------------------------------------------- */

SK_TEST(test_init_rejects_bad_config)
{
	struct sk_mem_config zero = { .nshards = 0 };
	CHECK_EQ(sk_mem_init(&zero), -EINVAL);
	CHECK_EQ(sk_mem_init(NULL), -EINVAL);
	CHECK_EQ(mem_setup(1, 4096), -EINVAL);		/* budget too small */
	CHECK_EQ(mem_setup(2, 64 * MiB), 0);
	CHECK_EQ(mem_setup(2, 64 * MiB), -EBUSY);
	CHECK_EQ(sk_mem_thread_init(2), -EINVAL);	/* no such shard */
	struct sk_mem_stats st;
	CHECK_EQ(sk_mem_stats(2, &st), -EINVAL);
	CHECK_EQ(stats_of(1).bytes_limit, 64 * MiB);
	CHECK(sk_mem_source() != NULL && sk_mem_source()[0] != '\0');
	sk_mem_fini();
}

SK_TEST(test_init_fini_cycles)
{
	for (int run = 0; run < 5; run++) {
		CHECK_EQ(mem_setup(2, 64 * MiB), 0);
		CHECK_EQ(sk_mem_thread_init(run & 1), 0);
		void *small = sk_alloc(100), *large = sk_alloc(100000);
		CHECK(small && large);
		CHECK_EQ(sk_mem_owner(small), run & 1);
		CHECK_EQ(sk_mem_owner(large), run & 1);
		memset(small, run, 100);
		memset(large, run, 100000);
		CHECK_EQ(stats_of(run & 1).allocs, 2);
		sk_free(small);
		sk_free(large);
		CHECK_EQ(stats_of(run & 1).bytes_in_use, 0);
		sk_mem_thread_exit();
		sk_mem_fini();
	}
}

/* ---- small objects -------------------------------------------------------- */

SK_TEST(test_every_size_class)
{
	CHECK_EQ(mem_setup(1, 512 * MiB), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	struct sk_mem_stats before = stats_of(0);

	/* Every size 1..1024, then every 64 bytes to 16 KiB: all classes. */
	enum { PER_SIZE = 24 };
	size_t nsizes = 1024 + (16384 - 1024) / 64;
	size_t total = nsizes * PER_SIZE;
	struct block *blk = calloc(total, sizeof(*blk));
	void **ptr = calloc(total, sizeof(*ptr));
	size_t *len = calloc(total, sizeof(*len));
	size_t n = 0, bad_align = 0, bad_usable = 0, bad_owner = 0, nulls = 0;
	size_t over_14k = 0;	/* jemalloc's small classes end at 14 KiB */
	for (size_t k = 0; k < nsizes; k++) {
		size_t size = k < 1024 ? k + 1 : 1024 + (k - 1023) * 64;
		over_14k += size > 14336 ? PER_SIZE : 0;
		for (int j = 0; j < PER_SIZE; j++) {
			void *p = sk_alloc(size);
			if (!p) {
				nulls++;
				continue;
			}
			bad_align += ((uintptr_t)p & 15) != 0;
			bad_usable += sk_alloc_usable_size(p) < size;
			bad_owner += sk_mem_owner(p) != 0;
			fill(p, size, (unsigned)n);
			ptr[n] = p;
			len[n] = size;
			blk[n] = (struct block){ (uintptr_t)p, size };
			n++;
		}
	}
	CHECK_EQ(nulls, 0);
	CHECK_EQ(bad_align, 0);
	CHECK_EQ(bad_usable, 0);
	CHECK_EQ(bad_owner, 0);
	CHECK(disjoint(blk, n));
	size_t damaged = 0;
	for (size_t i = 0; i < n; i++)
		damaged += !intact(ptr[i], len[i], (unsigned)i);
	CHECK_EQ(damaged, 0);

	struct sk_mem_stats mid = stats_of(0);
	CHECK_EQ(mid.allocs - before.allocs, n);
	CHECK(mid.bytes_in_use - before.bytes_in_use >= n * 1);
	/* Up to 16 KiB is small for us; jemalloc serves 14..16 KiB as large. */
	CHECK_EQ(mid.large_allocs - before.large_allocs,
		 is_shard_backend() ? 0 : over_14k);

	/* Free in an interleaved order so spans empty out of order. */
	for (size_t i = 0; i < n; i += 2)
		sk_free(ptr[i]);
	for (size_t i = 1; i < n; i += 2)
		sk_free(ptr[i]);
	struct sk_mem_stats after = stats_of(0);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
	CHECK_EQ(after.frees - before.frees, n);
	CHECK_EQ(after.failed, 0);
	free(blk);
	free(ptr);
	free(len);
	sk_mem_thread_exit();
	sk_mem_fini();
}

SK_TEST(test_small_reuse_after_free)
{
	CHECK_EQ(mem_setup(1, 64 * MiB), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	/* Freed objects come back: 1e5 pairs may not commit anything new. */
	void *warm = sk_alloc(64);
	sk_free(warm);
	uint64_t committed = stats_of(0).bytes_committed;
	for (int i = 0; i < 100000; i++) {
		void *p = sk_alloc(64);
		CHECK(p != NULL);
		memset(p, i, 64);
		sk_free(p);
	}
	CHECK_EQ(stats_of(0).bytes_committed, committed);
	CHECK_EQ(stats_of(0).bytes_in_use, 0);
	sk_mem_thread_exit();
	sk_mem_fini();
}

/* ---- large objects -------------------------------------------------------- */

SK_TEST(test_large_spans)
{
	static const size_t sizes[] = {
		20 * 1024, 20 * 1024 + 1, 64 * 1024, 100 * 1000, 1 * MiB,
		3 * MiB + 17, 8 * MiB,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	CHECK_EQ(mem_setup(1, 256 * MiB), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	struct sk_mem_stats before = stats_of(0);
	uint64_t committed_round[3];

	for (int round = 0; round < 3; round++) {
		void *p[N];
		struct block blk[N];
		for (int i = 0; i < N; i++) {
			p[i] = sk_alloc(sizes[i]);
			CHECK(p[i] != NULL);
			if (!p[i])
				return;
			CHECK(((uintptr_t)p[i] & 15) == 0);
			if (is_shard_backend())	/* page spans */
				CHECK(((uintptr_t)p[i] & 4095) == 0);
			CHECK(sk_alloc_usable_size(p[i]) >= sizes[i]);
			CHECK_EQ(sk_mem_owner(p[i]), 0);
			fill(p[i], sizes[i], (unsigned)(i + round));
			blk[i] = (struct block){ (uintptr_t)p[i], sizes[i] };
		}
		CHECK(disjoint(blk, N));
		for (int i = 0; i < N; i++)
			CHECK(intact(p[i], sizes[i], (unsigned)(i + round)));
		CHECK_EQ(stats_of(0).large_allocs - before.large_allocs,
			 (uint64_t)N * (round + 1));
		/* Free out of order so neighbours coalesce from both sides. */
		for (int i = 1; i < N; i += 2)
			sk_free(p[i]);
		for (int i = 0; i < N; i += 2)
			sk_free(p[i]);
		CHECK_EQ(stats_of(0).bytes_in_use, before.bytes_in_use);
		committed_round[round] = stats_of(0).bytes_committed;
	}
	/* Freed pages were reused: later rounds committed nothing more. */
	CHECK_EQ(committed_round[1], committed_round[0]);
	CHECK_EQ(committed_round[2], committed_round[0]);

	/* A span bigger than the whole budget is refused, not a crash. */
	uint64_t failed = stats_of(0).failed;
	CHECK(sk_alloc(512 * MiB) == NULL);
	CHECK_EQ(stats_of(0).failed, failed + 1);
	sk_mem_thread_exit();
	sk_mem_fini();
}

/* ---- realloc, zalloc, aligned --------------------------------------------- */

SK_TEST(test_realloc_zalloc_aligned)
{
	CHECK_EQ(mem_setup(1, 256 * MiB), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	struct sk_mem_stats before = stats_of(0);

	/* zalloc must clear memory that was dirty before. */
	static const size_t zs[] = { 1, 16, 100, 1000, 5000, 16384, 40000, 300000 };
	for (size_t i = 0; i < sizeof(zs) / sizeof(zs[0]); i++) {
		void *d = sk_alloc(zs[i]);
		CHECK(d != NULL);
		memset(d, 0xff, zs[i]);
		sk_free(d);
		unsigned char *z = sk_zalloc(zs[i]);
		CHECK(z != NULL);
		size_t nonzero = 0;
		for (size_t k = 0; k < zs[i]; k++)
			nonzero += z[k] != 0;
		CHECK_EQ(nonzero, 0);
		sk_free(z);
	}

	/* realloc keeps the prefix while growing through small and large. */
	static const size_t steps[] = { 10, 100, 1000, 5000, 50000, 500000, 3000, 7 };
	size_t have = 0;
	unsigned char *p = sk_realloc(NULL, 1);
	CHECK(p != NULL);
	p[0] = 0;
	have = 1;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t keep = have < steps[i] ? have : steps[i];
		unsigned char *q = sk_realloc(p, steps[i]);
		CHECK(q != NULL);
		if (!q)
			break;
		size_t damaged = 0;
		for (size_t k = 0; k < keep; k++)
			damaged += q[k] != (unsigned char)(k * 7);
		CHECK_EQ(damaged, 0);
		CHECK(sk_alloc_usable_size(q) >= steps[i]);
		for (size_t k = 0; k < steps[i]; k++)
			q[k] = (unsigned char)(k * 7);
		p = q;
		have = steps[i];
	}
	sk_free(p);

	/* Aligned allocations at every power of two up to a page. */
	static const size_t as[] = { 1, 24, 100, 4096, 5000, 20000, 100000 };
	size_t misaligned = 0, short_usable = 0;
	void *keep[13 * 7];
	size_t nkeep = 0;
	for (size_t align = 1; align <= 4096; align <<= 1) {
		for (size_t i = 0; i < sizeof(as) / sizeof(as[0]); i++) {
			void *a = sk_alloc_aligned(align, as[i]);
			CHECK(a != NULL);
			if (!a)
				continue;
			misaligned += ((uintptr_t)a & (align - 1)) != 0;
			short_usable += sk_alloc_usable_size(a) < as[i];
			memset(a, 0x5a, as[i]);
			keep[nkeep++] = a;
		}
	}
	CHECK_EQ(misaligned, 0);
	CHECK_EQ(short_usable, 0);
	for (size_t i = 0; i < nkeep; i++)
		sk_free(keep[i]);
	CHECK(sk_alloc_aligned(3, 64) == NULL);
	CHECK(sk_alloc_aligned(8192, 64) == NULL);
	CHECK(sk_alloc_aligned(0, 64) == NULL);

	sk_free(NULL);
	CHECK_EQ(stats_of(0).bytes_in_use, before.bytes_in_use);
	sk_mem_thread_exit();
	sk_mem_fini();
}

/* ---- owners and non-shard threads ----------------------------------------- */

struct owner_arg {
	unsigned shard;
	void *small, *large;
	int init_rc;
};

static void *owner_thread(void *arg)
{
	struct owner_arg *a = arg;
	a->init_rc = sk_mem_thread_init(a->shard);
	a->small = sk_alloc(48);
	a->large = sk_alloc(200000);
	sk_mem_thread_exit();
	return NULL;
}

SK_TEST(test_owner)
{
	static int global;
	int local;
	void *heap = malloc(32);

	CHECK_EQ(mem_setup(3, 64 * MiB), 0);
	struct owner_arg a[3] = { { .shard = 0 }, { .shard = 1 }, { .shard = 2 } };
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, owner_thread, &a[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(a[i].init_rc, 0);
		CHECK_EQ(sk_mem_owner(a[i].small), i);
		CHECK_EQ(sk_mem_owner(a[i].large), i);
		/* Any byte of an object has the same owner. */
		CHECK_EQ(sk_mem_owner((char *)a[i].large + 199999), i);
	}
	CHECK_EQ(sk_mem_owner(NULL), -1);
	CHECK_EQ(sk_mem_owner(&global), -1);
	CHECK_EQ(sk_mem_owner(&local), -1);
	CHECK_EQ(sk_mem_owner(heap), -1);
	void *mine = sk_alloc(64);	/* this thread is no shard */
	CHECK_EQ(sk_mem_owner(mine), -1);
	sk_free(mine);

	/* A non-shard thread frees shard memory: it goes home. */
	for (int i = 0; i < 3; i++) {
		sk_free(a[i].small);
		sk_free(a[i].large);
	}
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(sk_mem_thread_init(i), 0);
		unsigned drained = sk_mem_drain_remote();
		CHECK_EQ(drained, is_shard_backend() ? 2 : 0);
		struct sk_mem_stats st = stats_of(i);
		CHECK_EQ(st.bytes_in_use, 0);
		CHECK_EQ(st.remote_frees_in, 2);
		CHECK_EQ(st.frees, 2);
		sk_mem_thread_exit();
	}
	sk_mem_fini();
	free(heap);
}

SK_TEST(test_non_shard_thread_fallback)
{
	for (int with_init = 0; with_init < 2; with_init++) {
		if (with_init)
			CHECK_EQ(mem_setup(1, 64 * MiB), 0);
		unsigned char *p = sk_alloc(100);
		CHECK(p != NULL);
		CHECK_EQ(sk_mem_owner(p), -1);
		CHECK(sk_alloc_usable_size(p) >= 100);
		fill(p, 100, 9);
		p = sk_realloc(p, 100000);
		CHECK(p != NULL);
		CHECK(intact(p, 100, 9));
		CHECK(sk_alloc_usable_size(p) >= 100000);
		sk_free(p);
		unsigned char *z = sk_zalloc(5000);
		size_t nonzero = 0;
		for (int i = 0; i < 5000; i++)
			nonzero += z[i] != 0;
		CHECK_EQ(nonzero, 0);
		sk_free(z);
		void *a = sk_alloc_aligned(4096, 10);
		CHECK(a != NULL && ((uintptr_t)a & 4095) == 0);
		CHECK(sk_alloc_usable_size(a) >= 10);
		sk_free(a);
		CHECK_EQ(sk_mem_drain_remote(), 0);
		CHECK(!sk_mem_remote_pending());
		if (with_init) {
			/* Nothing of it was charged to a shard. */
			CHECK_EQ(stats_of(0).allocs, 0);
			sk_mem_fini();
		}
	}
}

/* ---- cross-shard frees ---------------------------------------------------- */

enum { XN = 5000 };

struct xshard {
	pthread_barrier_t handed, freed, checked;
	void *objs[XN];
	size_t sizes[XN];
	struct sk_mem_stats base0, mid0, end0, out1;
	unsigned drained, drained_again;
	bool pending_before, pending_twice, pending_after;
	int rc0, rc1;
	bool exit_drains;	/* shard 0 leaves instead of draining */
};

static void *xshard_owner(void *arg)
{
	struct xshard *x = arg;
	x->rc0 = sk_mem_thread_init(0);
	x->base0 = stats_of(0);
	for (int i = 0; i < XN; i++) {
		/* Mostly small, every 100th a page span. */
		x->sizes[i] = i % 100 == 99 ? 20000 + (size_t)i : 1 + (size_t)(i * 37) % 2000;
		x->objs[i] = sk_alloc(x->sizes[i]);
		if (x->objs[i])
			fill(x->objs[i], x->sizes[i], (unsigned)i);
	}
	pthread_barrier_wait(&x->handed);
	pthread_barrier_wait(&x->freed);
	x->mid0 = stats_of(0);
	x->pending_before = sk_mem_remote_pending();
	x->pending_twice = sk_mem_remote_pending();	/* no side effect */
	if (x->exit_drains) {
		sk_mem_thread_exit();
		x->end0 = stats_of(0);
	} else {
		x->drained = sk_mem_drain_remote();
		x->pending_after = sk_mem_remote_pending();
		x->drained_again = sk_mem_drain_remote();
		x->end0 = stats_of(0);
		sk_mem_thread_exit();
	}
	pthread_barrier_wait(&x->checked);
	return NULL;
}

static void *xshard_freer(void *arg)
{
	struct xshard *x = arg;
	x->rc1 = sk_mem_thread_init(1);
	pthread_barrier_wait(&x->handed);
	size_t damaged = 0;
	for (int i = 0; i < XN; i++) {
		if (!x->objs[i])
			continue;
		damaged += !intact(x->objs[i], x->sizes[i], (unsigned)i);
		sk_free(x->objs[i]);
	}
	CHECK_EQ(damaged, 0);
	x->out1 = stats_of(1);
	pthread_barrier_wait(&x->freed);
	pthread_barrier_wait(&x->checked);
	sk_mem_thread_exit();
	return NULL;
}

static void run_xshard(struct xshard *x)
{
	pthread_barrier_init(&x->handed, NULL, 2);
	pthread_barrier_init(&x->freed, NULL, 2);
	pthread_barrier_init(&x->checked, NULL, 2);
	pthread_t t0, t1;
	CHECK_EQ(pthread_create(&t0, NULL, xshard_owner, x), 0);
	CHECK_EQ(pthread_create(&t1, NULL, xshard_freer, x), 0);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	pthread_barrier_destroy(&x->handed);
	pthread_barrier_destroy(&x->freed);
	pthread_barrier_destroy(&x->checked);
	CHECK_EQ(x->rc0, 0);
	CHECK_EQ(x->rc1, 0);
	size_t nulls = 0;
	for (int i = 0; i < XN; i++)
		nulls += x->objs[i] == NULL;
	CHECK_EQ(nulls, 0);
}

SK_TEST(test_cross_shard_free)
{
	CHECK_EQ(mem_setup(2, 128 * MiB), 0);
	struct xshard *x = calloc(1, sizeof(*x));
	run_xshard(x);

	/* Shard 1 sent every object home and counted each one. */
	CHECK_EQ(x->out1.remote_frees_out, XN);
	CHECK_EQ(x->out1.frees, 0);
	CHECK_EQ(x->out1.allocs, 0);
	CHECK_EQ(x->end0.allocs - x->base0.allocs, XN);
	if (is_shard_backend()) {
		/* Nothing reached shard 0 before it drained. */
		CHECK(x->pending_before);
		CHECK(x->pending_twice);
		CHECK_EQ(x->mid0.remote_frees_in, x->base0.remote_frees_in);
		CHECK(x->mid0.bytes_in_use > x->base0.bytes_in_use);
		CHECK_EQ(x->drained, XN);
		CHECK(!x->pending_after);
		CHECK_EQ(x->drained_again, 0);
	} else {
		/* jemalloc hands foreign frees to the arena at once. */
		CHECK(!x->pending_before);
		CHECK_EQ(x->drained, 0);
		CHECK_EQ(x->mid0.bytes_in_use, x->base0.bytes_in_use);
	}
	CHECK_EQ(x->end0.remote_frees_in - x->base0.remote_frees_in, XN);
	CHECK_EQ(x->end0.frees - x->base0.frees, XN);
	CHECK_EQ(x->end0.bytes_in_use, x->base0.bytes_in_use);
	CHECK_EQ(stats_of(1).bytes_in_use, 0);
	free(x);
	sk_mem_fini();
}

SK_TEST(test_thread_exit_drains_return_list)
{
	CHECK_EQ(mem_setup(2, 128 * MiB), 0);
	struct xshard *x = calloc(1, sizeof(*x));
	x->exit_drains = true;
	run_xshard(x);
	CHECK_EQ(x->end0.remote_frees_in - x->base0.remote_frees_in, XN);
	CHECK_EQ(x->end0.bytes_in_use, x->base0.bytes_in_use);
	free(x);

	/* The memory went back to shard 0's heap: a new thread reuses it. */
	CHECK_EQ(sk_mem_thread_init(0), 0);
	uint64_t committed = stats_of(0).bytes_committed;
	void *p[XN];
	size_t misplaced = 0;
	for (int i = 0; i < XN; i++) {
		p[i] = sk_alloc(1 + (size_t)(i * 37) % 2000);
		misplaced += sk_mem_owner(p[i]) != 0;
	}
	CHECK_EQ(misplaced, 0);
	if (is_shard_backend())	/* jemalloc's extent reuse is its own business */
		CHECK_EQ(stats_of(0).bytes_committed, committed);
	for (int i = 0; i < XN; i++)
		sk_free(p[i]);
	sk_mem_thread_exit();
	sk_mem_fini();
}

/* ---- exhaustion ----------------------------------------------------------- */

static size_t fill_until_null(void **slot, size_t max, size_t size)
{
	size_t n = 0;
	while (n < max) {
		void *p = sk_alloc(size);
		if (!p)
			break;
		memset(p, 0xab, size);
		slot[n++] = p;
	}
	return n;
}

SK_TEST(test_exhaustion)
{
	const size_t budget = 8 * MiB;
	enum { MAX = 100000 };
	void **slot = calloc(MAX, sizeof(*slot));

	CHECK_EQ(mem_setup(1, budget), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	size_t n1 = fill_until_null(slot, MAX, 1000);
	CHECK(n1 < MAX);			/* it did run out */
	CHECK(n1 * 1000 > budget / 2);		/* after using most of it */
	struct sk_mem_stats st = stats_of(0);
	CHECK_EQ(st.failed, 1);
	CHECK(st.bytes_in_use <= budget);
	CHECK(st.bytes_committed <= budget || !is_shard_backend());
	CHECK_EQ(st.bytes_limit, budget);
	/* Still refused (not a crash) for every kind of request. */
	CHECK(sk_alloc(1000) == NULL);
	CHECK(sk_alloc(3 * MiB) == NULL);
	CHECK(sk_zalloc(1000) == NULL);
	CHECK_EQ(stats_of(0).failed, 4);

	for (size_t i = 0; i < n1; i++)
		sk_free(slot[i]);
	CHECK_EQ(stats_of(0).bytes_in_use, 0);

	/* Everything is usable again, by another size too. */
	void *big = sk_alloc(2 * MiB);
	CHECK(big != NULL);
	sk_free(big);
	size_t n2 = fill_until_null(slot, MAX, 1000);
	CHECK_EQ(n2, n1);
	for (size_t i = 0; i < n2; i++)
		sk_free(slot[i]);
	CHECK_EQ(stats_of(0).bytes_in_use, 0);
	sk_mem_thread_exit();
	sk_mem_fini();
	free(slot);
}

/* ---- churn ---------------------------------------------------------------- */

static size_t churn_size(void)
{
	uint64_t r = rng();
	switch (r % 16) {
	case 0:
		return 1 + (r >> 8) % 300000;		/* page spans */
	case 1: case 2:
		return 1 + (r >> 8) % 16384;		/* all small classes */
	default:
		return 1 + (r >> 8) % 1024;		/* the fast path */
	}
}

/* One round: 2e5 operations on 4096 slots, then free all in random order. */
static size_t churn_round(uint64_t seed)
{
	enum { SLOTS = 4096, OPS = 200000 };
	static void *slot[SLOTS];
	static size_t len[SLOTS];
	size_t damaged = 0, nulls = 0;

	rng_state = seed;
	for (int op = 0; op < OPS; op++) {
		unsigned i = (unsigned)(rng() % SLOTS);
		if (slot[i]) {
			damaged += !intact(slot[i], len[i] < 64 ? len[i] : 64, i);
			sk_free(slot[i]);
			slot[i] = NULL;
		} else {
			len[i] = churn_size();
			slot[i] = sk_alloc(len[i]);
			if (!slot[i]) {
				nulls++;
				continue;
			}
			fill(slot[i], len[i] < 64 ? len[i] : 64, i);
		}
	}
	/* Random free order: walk the slots from a random start, random stride. */
	unsigned start = (unsigned)(rng() % SLOTS), stride = 2 * (unsigned)(rng() % 1000) + 1;
	for (unsigned k = 0; k < SLOTS; k++) {
		unsigned i = (start + k * stride) % SLOTS;
		if (slot[i]) {
			damaged += !intact(slot[i], len[i] < 64 ? len[i] : 64, i);
			sk_free(slot[i]);
			slot[i] = NULL;
		}
	}
	CHECK_EQ(damaged, 0);
	CHECK_EQ(nulls, 0);
	return OPS;
}

SK_TEST(test_churn_no_leak)
{
	enum { ROUNDS = 8 };
	CHECK_EQ(mem_setup(1, 1024 * MiB), 0);
	CHECK_EQ(sk_mem_thread_init(0), 0);
	struct sk_mem_stats base = stats_of(0);
	uint64_t committed[ROUNDS];
	for (int round = 0; round < ROUNDS; round++) {
		churn_round(0x5eed5eedull);
		struct sk_mem_stats st = stats_of(0);
		CHECK_EQ(st.bytes_in_use, base.bytes_in_use);
		CHECK_EQ(st.allocs - base.allocs, st.frees - base.frees);
		CHECK_EQ(st.failed, 0);
		committed[round] = st.bytes_committed;
	}
	/*
	 * The same churn again reuses what the first round committed: a
	 * different layout of free spans may cost a commit step or two once,
	 * but the later rounds commit nothing at all.
	 */
	for (int round = 1; round < ROUNDS; round++)
		CHECK(committed[round] <= committed[0] + 4 * MiB);
	CHECK_EQ(committed[ROUNDS - 1], committed[ROUNDS - 3]);
	sk_mem_thread_exit();
	sk_mem_fini();
}
