/*
 * bench_alloc.c - malloc/free pairs per second: skerry's memory API (whichever
 * backend this build has) against the C library's malloc.
 *
 * Patterns, each at 16, 64, 256, 1024 and 16384 bytes:
 *   same    one thread: p = alloc(n); free(p)
 *   batch   one thread: allocate 256, then free those 256
 *   cross   thread A (shard 0, CPU 0) allocates batches of 256 and hands them
 *           through an SPSC ring to thread B (shard 1, CPU 1), which frees
 *           them; A drains its return list as it goes (skerry) - with malloc,
 *           B's free() does the cross-thread work itself.
 * Each measurement runs 5 times; the table shows the median, and one
 * "RESULT backend=... pattern=... size=... mops=..." line per result is for
 * scripts.  In a jemalloc build libjemalloc replaces malloc, so the second
 * allocator is reported as "jemalloc-malloc", not glibc.
 *
 * This is a benchmark, not a test: it checks nothing but that it ran.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "skerry/alloc.h"

#define REPS		5
#define BATCH		256
#define SAME_PAIRS	(4u << 20)
#define CROSS_PAIRS	(2u << 20)
#define MAX_SECONDS	0.15	/* per run: slow cases stop early */
#define CHUNK		4096u	/* pairs between clock reads */

static const size_t sizes[] = { 16, 64, 256, 1024, 16384 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* What the compiler must assume is read: no allocation can be elided. */
static void *volatile sink;

struct allocator {
	const char *name;
	void *(*alloc)(size_t);
	void (*free)(void *);
	bool shard;		/* drain the return list on the owner side */
};

static void *libc_alloc(size_t n) { return malloc(n); }
static void libc_free(void *p) { free(p); }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		fprintf(stderr, "bench_alloc: could not pin to CPU %d\n", cpu);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* ---- same-thread patterns ------------------------------------------------- */

static double run_same(const struct allocator *a, size_t size)
{
	unsigned pairs = 0;
	double t0 = now_s(), t;
	do {
		for (unsigned i = 0; i < CHUNK; i++) {
			void *p = a->alloc(size);
			sink = p;
			a->free(p);
		}
		pairs += CHUNK;
		t = now_s() - t0;
	} while (pairs < SAME_PAIRS && t < MAX_SECONDS);
	return pairs / t / 1e6;
}

static double run_batch(const struct allocator *a, size_t size)
{
	void *p[BATCH];
	unsigned pairs = 0;
	double t0 = now_s(), t;
	do {
		for (unsigned r = 0; r < CHUNK / BATCH; r++) {
			for (int i = 0; i < BATCH; i++) {
				p[i] = a->alloc(size);
				sink = p[i];
			}
			for (int i = 0; i < BATCH; i++)
				a->free(p[i]);
		}
		pairs += CHUNK;
		t = now_s() - t0;
	} while (pairs < SAME_PAIRS && t < MAX_SECONDS);
	return pairs / t / 1e6;
}

/* ---- cross-thread pattern ------------------------------------------------- */

/* Single producer, single consumer ring of batch pointers. */
#define RING 64u
struct spsc {
	_Alignas(64) _Atomic unsigned head;	/* producer writes */
	_Alignas(64) _Atomic unsigned tail;	/* consumer writes */
	_Alignas(64) void **slot[RING];
};

static bool spsc_push(struct spsc *q, void **b)
{
	unsigned h = atomic_load_explicit(&q->head, memory_order_relaxed);
	if (h - atomic_load_explicit(&q->tail, memory_order_acquire) == RING)
		return false;
	q->slot[h % RING] = b;
	atomic_store_explicit(&q->head, h + 1, memory_order_release);
	return true;
}

static void **spsc_pop(struct spsc *q)
{
	unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (t == atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL;
	void **b = q->slot[t % RING];
	atomic_store_explicit(&q->tail, t + 1, memory_order_release);
	return b;
}

struct cross {
	const struct allocator *a;
	size_t size;
	struct spsc full, empty;	/* A -> B batches, B -> A buffers */
	void **bufs;
	atomic_bool go;
};

/* Tells the freer that no more batches come. */
static void *stop_mark[1];
#define STOP stop_mark

static void *cross_freer(void *arg)
{
	struct cross *c = arg;
	pin(1);
	if (c->a->shard && sk_mem_thread_init(1) != 0)
		fprintf(stderr, "bench_alloc: shard 1 init failed\n");
	while (!atomic_load(&c->go))
		;
	for (;;) {
		void **b = spsc_pop(&c->full);
		if (!b) {
			sched_yield();
			continue;
		}
		if (b == STOP)
			break;
		for (int i = 0; i < BATCH; i++)
			c->a->free(b[i]);
		while (!spsc_push(&c->empty, b))
			;
	}
	if (c->a->shard)
		sk_mem_thread_exit();
	return NULL;
}

/* Runs on the thread of shard 0 (CPU 0). */
static double run_cross(const struct allocator *a, size_t size)
{
	struct cross *c = calloc(1, sizeof(*c));
	c->a = a;
	c->size = size;
	c->bufs = calloc(RING * BATCH, sizeof(void *));
	for (unsigned i = 0; i < RING; i++)
		spsc_push(&c->empty, c->bufs + i * BATCH);
	pthread_t t;
	pthread_create(&t, NULL, cross_freer, c);

	double t0 = now_s();
	unsigned pairs = 0;
	atomic_store(&c->go, true);
	for (unsigned n = 0; n < CROSS_PAIRS / BATCH; n++) {
		if (n % 16 == 0 && now_s() - t0 > MAX_SECONDS)
			break;
		void **b;
		while (!(b = spsc_pop(&c->empty))) {
			if (a->shard)
				sk_mem_drain_remote();
			sched_yield();
		}
		for (int i = 0; i < BATCH; i++) {
			b[i] = a->alloc(size);
			sink = b[i];
		}
		while (!spsc_push(&c->full, b))
			;
		pairs += BATCH;
		if (a->shard && sk_mem_remote_pending())
			sk_mem_drain_remote();
	}
	while (!spsc_push(&c->full, STOP))
		;
	pthread_join(t, NULL);
	if (a->shard)
		sk_mem_drain_remote();
	double mops = pairs / (now_s() - t0) / 1e6;
	free(c->bufs);
	free(c);
	return mops;
}

/* ---- driver --------------------------------------------------------------- */

enum { P_SAME, P_BATCH, P_CROSS, NPAT };
static const char *pat_name[NPAT] = { "same", "batch", "cross" };

static double measure(const struct allocator *a, int pat, size_t size)
{
	double v[REPS];
	for (int r = 0; r < REPS; r++) {
		switch (pat) {
		case P_SAME: v[r] = run_same(a, size); break;
		case P_BATCH: v[r] = run_batch(a, size); break;
		default: v[r] = run_cross(a, size); break;
		}
	}
	return median(v, REPS);
}

int main(void)
{
	struct sk_mem_config cfg = { .nshards = 2, .bytes_per_shard = (size_t)1 << 30 };
	int rc = sk_mem_init(&cfg);
	if (rc != 0) {
		fprintf(stderr, "bench_alloc: sk_mem_init: %d\n", rc);
		return 1;
	}
	pin(0);
	if (sk_mem_thread_init(0) != 0) {
		fprintf(stderr, "bench_alloc: shard 0 init failed\n");
		return 1;
	}

	bool je = strcmp(sk_mem_backend(), "jemalloc") == 0;
	struct allocator alloc[2] = {
		{ sk_mem_backend(), sk_alloc, sk_free, true },
		{ je ? "jemalloc-malloc" : "glibc", libc_alloc, libc_free, false },
	};
	printf("bench_alloc: sk backend %s, page source: %s\n",
	       sk_mem_backend(), sk_mem_source());
	if (je)
		printf("bench_alloc: jemalloc build - malloc() is jemalloc here, "
		       "so there is no glibc row\n");
	printf("million malloc/free pairs per second, median of %d runs\n\n", REPS);

	double res[2][NPAT][NSIZES];
	for (int a = 0; a < 2; a++)
		for (int p = 0; p < NPAT; p++)
			for (size_t s = 0; s < NSIZES; s++)
				res[a][p][s] = measure(&alloc[a], p, sizes[s]);

	printf("%-16s %-6s", "allocator", "pattern");
	for (size_t s = 0; s < NSIZES; s++)
		printf(" %9zu", sizes[s]);
	printf("\n");
	for (int a = 0; a < 2; a++)
		for (int p = 0; p < NPAT; p++) {
			printf("%-16s %-6s", alloc[a].name, pat_name[p]);
			for (size_t s = 0; s < NSIZES; s++)
				printf(" %9.1f", res[a][p][s]);
			printf("\n");
		}
	printf("\n");
	for (int a = 0; a < 2; a++)
		for (int p = 0; p < NPAT; p++)
			for (size_t s = 0; s < NSIZES; s++)
				printf("RESULT backend=%s pattern=%s size=%zu mops=%.1f\n",
				       alloc[a].name, pat_name[p], sizes[s], res[a][p][s]);

	struct sk_mem_stats st;
	sk_mem_stats(0, &st);
	sk_mem_thread_exit();
	sk_mem_fini();
	if (st.bytes_in_use != 0) {
		fprintf(stderr, "bench_alloc: shard 0 still has %llu bytes in use\n",
			(unsigned long long)st.bytes_in_use);
		return 1;
	}
	return 0;
}
