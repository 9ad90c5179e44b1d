/*
 * alloc_jemalloc.c - the skerry memory API on jemalloc (meson -Dallocator=jemalloc).
 *
 * Roadmap
 *
 *   sk_mem_init()        reserves the same range of nshards 2^shift slices as
 *                        the shard backend, and creates one jemalloc arena per
 *                        shard ("arenas.create") whose extent hooks carve that
 *                        arena's memory out of its shard's slice.  So the
 *                        owner of a pointer is again (p - base) >> shift: no
 *                        "arenas.lookup" (which takes a global mutex) per free.
 *                        Each shard also gets its own explicit tcache
 *                        ("tcache.create"), and sk_alloc() passes
 *                        MALLOCX_ARENA|MALLOCX_TCACHE.  We do not bind the
 *                        thread ("thread.arena"): then every plain malloc() of
 *                        a shard thread (stdio buffers, libraries) would land
 *                        in the arena too, break the accounting, and die with
 *                        it in sk_mem_fini()'s "arena.<i>.destroy".  The cost
 *                        is jemalloc's flags path instead of its malloc() fast
 *                        path (about 20% on a malloc/free pair).
 *   sk_free()            own memory: sdallocx() through the shard's tcache.  Another
 *                        shard's memory: dallocx(MALLOCX_TCACHE_NONE), straight
 *                        back to the owner's arena (jemalloc does cross-thread
 *                        frees itself, so there is no return list to drain);
 *                        the tcache is bypassed so a shard never hands out
 *                        another shard's memory.
 *   budget               counted in usable sizes (nallocx/sallocx); frees by
 *                        other threads are counted into the owner's atomics
 *                        and only consulted when the owner's own count says
 *                        the budget is spent.
 *   non-shard threads    plain malloc/free (which is jemalloc in this build).
 *
 * Only standard C, jemalloc and kernel-glue/platform.h are used here.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "platform.h"
#include "mem_common.h"
#include "skerry/alloc.h"



struct je_shard {
	extent_hooks_t hooks;		/* first: the hook finds its shard by it */
	int flags;			/* MALLOCX_ARENA | MALLOCX_TCACHE */
	unsigned arena;
	unsigned tcache;
	unsigned idx;
	uintptr_t base;
	size_t slice_size;
	size_t limit;

	/* Owner-only counters, published for readers. */
	_Atomic uint64_t nalloc, nfree, large_nalloc;
	_Atomic uint64_t alloc_bytes, free_bytes;
	_Atomic uint64_t remote_out, failed;

	/* Slice carving for the extent hooks (rare, any thread: a spin lock). */
	atomic_flag lock;
	size_t frontier;		/* bytes of the slice handed to jemalloc */
	size_t commit_end;		/* bytes of the slice committed */
	_Atomic uint64_t committed;

	atomic_bool bound;

	/* Frees of our memory by other threads (they add, we read). */
	alignas(64) _Atomic uint64_t rfree_count;
	_Atomic uint64_t rfree_bytes;
	char pad[64 - 2 * sizeof(uint64_t)];
};

static struct je_shard *sk_shards;
static unsigned sk_nshards;
static uintptr_t sk_base;
static size_t sk_range_len;
static unsigned sk_slice_shift;
static size_t sk_large_min;	/* smallest large size class of jemalloc */

static _Thread_local struct je_shard *sk_self
	__attribute__((tls_model("initial-exec")));

/* ---- extent hooks: each arena lives in its shard's slice ------------------ */

static void *hook_alloc(extent_hooks_t *h, void *new_addr, size_t size,
			size_t alignment, bool *zero, bool *commit,
			unsigned arena_ind)
{
	struct je_shard *sh = (struct je_shard *)h;
	(void)arena_ind;
	if (new_addr)		/* growing in place: we only bump forward */
		return NULL;
	if (alignment < SK_PLAT_PAGE)
		alignment = SK_PLAT_PAGE;
	void *ret = NULL;
	while (atomic_flag_test_and_set_explicit(&sh->lock, memory_order_acquire))
		sk_plat_cpu_relax();
	size_t start = (sh->frontier + alignment - 1) & ~(alignment - 1);
	if (start <= sh->slice_size && size <= sh->slice_size - start) {
		size_t end = start + size;
		size_t cend = (end + SK_CHUNK - 1) & ~(SK_CHUNK - 1);
		if (cend > sh->slice_size)
			cend = sh->slice_size;
		if (cend <= sh->commit_end ||
		    sk_plat_mem_commit((char *)sh->base + sh->commit_end,
				       cend - sh->commit_end) == 0) {
			if (cend > sh->commit_end) {
				stat_add(&sh->committed, cend - sh->commit_end);
				sh->commit_end = cend;
			}
			sh->frontier = end;
			ret = (char *)sh->base + start;
		}
	}
	atomic_flag_clear_explicit(&sh->lock, memory_order_release);
	if (ret) {
		*zero = true;	/* never handed out before: fresh zero pages */
		*commit = true;
	}
	return ret;
}

/* Opt out of unmapping: jemalloc keeps the extent and reuses it. */
static bool hook_dalloc(extent_hooks_t *h, void *addr, size_t size,
			bool committed, unsigned arena_ind)
{
	(void)h, (void)addr, (void)size, (void)committed, (void)arena_ind;
	return true;
}

/* The whole slice goes away in sk_mem_fini(). */
static void hook_destroy(extent_hooks_t *h, void *addr, size_t size,
			 bool committed, unsigned arena_ind)
{
	(void)h, (void)addr, (void)size, (void)committed, (void)arena_ind;
}

/* Everything we hand out is committed already. */
static bool hook_commit(extent_hooks_t *h, void *addr, size_t size,
			size_t offset, size_t length, unsigned arena_ind)
{
	(void)h, (void)addr, (void)size, (void)offset, (void)length, (void)arena_ind;
	return false;
}

/* One contiguous slice: any split or merge of it is fine. */
static bool hook_split(extent_hooks_t *h, void *addr, size_t size,
		       size_t size_a, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	(void)h, (void)addr, (void)size, (void)size_a, (void)size_b;
	(void)committed, (void)arena_ind;
	return false;
}

static bool hook_merge(extent_hooks_t *h, void *addr_a, size_t size_a,
		       void *addr_b, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	(void)h, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b;
	(void)committed, (void)arena_ind;
	return false;
}

static const extent_hooks_t sk_hooks = {
	.alloc = hook_alloc,
	.dalloc = hook_dalloc,
	.destroy = hook_destroy,
	.commit = hook_commit,
	.decommit = NULL,	/* unsupported: pages stay committed */
	.purge_lazy = NULL,
	.purge_forced = NULL,
	.split = hook_split,
	.merge = hook_merge,
};

/* ---- accounting ----------------------------------------------------------- */

static inline struct je_shard *owner_of(const void *p)
{
	uintptr_t off = (uintptr_t)p - sk_base;
	return off < sk_range_len ? &sk_shards[off >> sk_slice_shift] : NULL;
}

/* Would @usize more bytes exceed the budget?  Cheap check first. */
static bool over_budget(struct je_shard *sh, size_t usize)
{
	uint64_t in_use = stat_get(&sh->alloc_bytes) - stat_get(&sh->free_bytes);
	if (likely(in_use + usize <= sh->limit))
		return false;
	in_use -= atomic_load_explicit(&sh->rfree_bytes, memory_order_acquire);
	return in_use + usize > sh->limit;
}

static inline void count_alloc(struct je_shard *sh, size_t usize)
{
	stat_add(&sh->nalloc, 1);
	stat_add(&sh->alloc_bytes, usize);
	if (usize >= sk_large_min)
		stat_add(&sh->large_nalloc, 1);
}

static void *shard_alloc(struct je_shard *sh, size_t size, int flags)
{
	if (size < 16)
		size = 16;	/* mallocx(0) is undefined; 8 would be 8-aligned */
	size_t usize = nallocx(size, sh->flags | flags);
	if (unlikely(usize == 0 || over_budget(sh, usize))) {
		stat_add(&sh->failed, 1);
		return NULL;
	}
	void *p = mallocx(size, sh->flags | flags);
	if (unlikely(!p)) {
		stat_add(&sh->failed, 1);
		return NULL;
	}
	count_alloc(sh, usize);
	return p;
}

/* ---- public: allocation --------------------------------------------------- */

void *sk_alloc(size_t size)
{
	struct je_shard *sh = sk_self;
	if (!sh)
		return malloc(size < 16 ? 16 : size);
	return shard_alloc(sh, size, 0);
}

void *sk_zalloc(size_t size)
{
	struct je_shard *sh = sk_self;
	if (!sh)
		return calloc(1, size < 16 ? 16 : size);
	return shard_alloc(sh, size, MALLOCX_ZERO);
}

void *sk_alloc_aligned(size_t align, size_t size)
{
	if (align == 0 || (align & (align - 1)) || align > SK_PLAT_PAGE)
		return NULL;
	struct je_shard *sh = sk_self;
	if (!sh)
		return aligned_alloc(align, (size + align - 1) & ~(align - 1));
	return shard_alloc(sh, size, MALLOCX_ALIGN(align));
}

void sk_free(void *p)
{
	if (!p)
		return;
	struct je_shard *sh = sk_self;
	struct je_shard *owner = owner_of(p);
	if (likely(owner && owner == sh)) {
		size_t usize = sallocx(p, 0);
		stat_add(&sh->nfree, 1);
		stat_add(&sh->free_bytes, usize);
		sdallocx(p, usize, sh->flags);
		return;
	}
	if (!owner) {
		free(p);
		return;
	}
	size_t usize = sallocx(p, 0);
	atomic_fetch_add_explicit(&owner->rfree_bytes, usize, memory_order_release);
	atomic_fetch_add_explicit(&owner->rfree_count, 1, memory_order_release);
	if (sh)
		stat_add(&sh->remote_out, 1);
	dallocx(p, MALLOCX_TCACHE_NONE);
}

size_t sk_alloc_usable_size(const void *p)
{
	return p ? sallocx((void *)p, 0) : 0;
}

void *sk_realloc(void *p, size_t size)
{
	if (!p)
		return sk_alloc(size);
	struct je_shard *sh = sk_self;
	struct je_shard *owner = owner_of(p);
	if (!sh && !owner)
		return realloc(p, size < 16 ? 16 : size);
	if (sh && owner == sh) {
		if (size < 16)
			size = 16;
		size_t old = sallocx(p, 0);
		size_t usize = nallocx(size, sh->flags);
		if (usize == 0 || (usize > old && over_budget(sh, usize - old))) {
			stat_add(&sh->failed, 1);
			return NULL;
		}
		void *q = rallocx(p, size, sh->flags);
		if (!q) {
			stat_add(&sh->failed, 1);
			return NULL;
		}
		usize = sallocx(q, 0);
		/* One free of the old block and one allocation of the new. */
		stat_add(&sh->nfree, 1);
		stat_add(&sh->free_bytes, old);
		count_alloc(sh, usize);
		return q;
	}
	/* Memory that moves between owners: copy. */
	size_t have = sallocx(p, 0);
	void *q = sk_alloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, size < have ? size : have);
	sk_free(p);
	return q;
}

int sk_mem_owner(const void *p)
{
	struct je_shard *o = owner_of(p);
	return o ? (int)o->idx : -1;
}

unsigned sk_mem_drain_remote(void)
{
	return 0;	/* jemalloc returns foreign frees to their arena itself */
}

bool sk_mem_remote_pending(void)
{
	return false;
}

/* ---- set-up --------------------------------------------------------------- */

int sk_mem_init(const struct sk_mem_config *cfg)
{
	size_t budget;
	int rc = sk__mem_budget(cfg, &budget);
	if (rc < 0)
		return rc;
	if (sk_shards)
		return -EBUSY;

	/* Room for jemalloc's own metadata and retained growth: 2x budget. */
	unsigned shift = 30;
	while (((size_t)1 << shift) < 2 * budget)
		if (++shift > 46)
			return -ENOMEM;
	size_t slice = (size_t)1 << shift;
	if (slice > (((size_t)1 << 47) / cfg->nshards))
		return -ENOMEM;

	size_t sz = sizeof(size_t);
	if (mallctl("arenas.lextent.0.size", &sk_large_min, &sz, NULL, 0) != 0)
		sk_large_min = 16384;

	struct je_shard *shards = aligned_alloc(alignof(struct je_shard),
						cfg->nshards * sizeof(*shards));
	if (!shards)
		return -ENOMEM;
	memset(shards, 0, cfg->nshards * sizeof(*shards));
	void *base = sk_plat_mem_reserve(cfg->nshards * slice, SK_CHUNK);
	if (!base) {
		free(shards);
		return -ENOMEM;
	}
	sk_slice_shift = shift;
	sk_range_len = cfg->nshards * slice;
	sk_base = (uintptr_t)base;
	sk_shards = shards;
	sk_nshards = cfg->nshards;

	for (unsigned i = 0; i < cfg->nshards; i++) {
		struct je_shard *sh = &shards[i];
		sh->hooks = sk_hooks;
		sh->idx = i;
		sh->base = (uintptr_t)base + (size_t)i * slice;
		sh->slice_size = slice;
		sh->limit = budget;
		atomic_flag_clear(&sh->lock);
		extent_hooks_t *hp = &sh->hooks;
		size_t usz = sizeof(unsigned);
		if (mallctl("arenas.create", &sh->arena, &usz, &hp, sizeof(hp)) != 0) {
			sk_nshards = i;	/* fini destroys what was made so far */
			sk_mem_fini();
			return -ENOMEM;
		}
		usz = sizeof(unsigned);
		if (mallctl("tcache.create", &sh->tcache, &usz, NULL, 0) != 0) {
			char name[64];
			snprintf(name, sizeof(name), "arena.%u.destroy", sh->arena);
			mallctl(name, NULL, NULL, NULL, 0);
			sk_nshards = i;
			sk_mem_fini();
			return -ENOMEM;
		}
		sh->flags = MALLOCX_ARENA(sh->arena) | MALLOCX_TCACHE(sh->tcache);
	}
	return 0;
}

void sk_mem_fini(void)
{
	if (!sk_shards)
		return;
	bool all_gone = true;
	for (unsigned i = 0; i < sk_nshards; i++) {
		char name[64];
		mallctl("tcache.destroy", NULL, NULL, &sk_shards[i].tcache,
			sizeof(unsigned));
		snprintf(name, sizeof(name), "arena.%u.destroy", sk_shards[i].arena);
		if (mallctl(name, NULL, NULL, NULL, 0) != 0)
			all_gone = false;
	}
	/* An arena jemalloc would not destroy still points into the range. */
	if (all_gone)
		sk_plat_mem_release((void *)sk_base, sk_range_len);
	free(sk_shards);
	sk_shards = NULL;
	sk_nshards = 0;
	sk_base = 0;
	sk_range_len = 0;
}

int sk_mem_thread_init(unsigned shard)
{
	if (!sk_shards || shard >= sk_nshards || sk_self)
		return -EINVAL;
	struct je_shard *sh = &sk_shards[shard];
	bool expect = false;
	if (!atomic_compare_exchange_strong(&sh->bound, &expect, true))
		return -EBUSY;
	sk_self = sh;
	return 0;
}

void sk_mem_thread_exit(void)
{
	struct je_shard *sh = sk_self;
	if (!sh)
		return;
	/* Cached objects go back to the arena; the next thread starts clean. */
	mallctl("tcache.flush", NULL, NULL, &sh->tcache, sizeof(unsigned));
	sk_self = NULL;
	atomic_store(&sh->bound, false);
}

/* ---- statistics ----------------------------------------------------------- */

int sk_mem_stats(unsigned shard, struct sk_mem_stats *out)
{
	if (!sk_shards || shard >= sk_nshards || !out)
		return -EINVAL;
	struct je_shard *sh = &sk_shards[shard];
	memset(out, 0, sizeof(*out));
	/* Frees first, so in-use never reads negative while the owner runs. */
	uint64_t rbytes = atomic_load_explicit(&sh->rfree_bytes, memory_order_acquire);
	uint64_t rcount = atomic_load_explicit(&sh->rfree_count, memory_order_acquire);
	uint64_t fbytes = stat_get(&sh->free_bytes);
	uint64_t nfree = stat_get(&sh->nfree);
	out->allocs = stat_get(&sh->nalloc);
	out->frees = nfree + rcount;
	out->remote_frees_out = stat_get(&sh->remote_out);
	out->remote_frees_in = rcount;
	out->failed = stat_get(&sh->failed);
	out->large_allocs = stat_get(&sh->large_nalloc);
	out->bytes_in_use = stat_get(&sh->alloc_bytes) - fbytes - rbytes;
	out->bytes_committed = stat_get(&sh->committed);
	out->bytes_limit = sh->limit;
	return 0;
}

const char *sk_mem_backend(void)
{
	return "jemalloc";
}

const char *sk_mem_source(void)
{
	return sk_plat_mem_source();
}
