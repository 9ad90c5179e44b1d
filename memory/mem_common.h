/*
 * mem_common.h - pieces both allocator backends share (only one of them is
 * compiled into a build; see memory/meson.build).
 */
#ifndef SK_MEM_COMMON_H
#define SK_MEM_COMMON_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "platform.h"
#include "skerry/alloc.h"

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define SK_CHUNK		((size_t)SK_PLAT_HUGE_PAGE)	/* commit step */
#define SK_MEM_MAX_SHARDS	4096u

/* Statistics: only the owner writes, so load+store is enough (no lock
 * prefix); release/acquire so readers on other threads see whole updates. */
static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_release);
}

static inline void stat_sub(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - v,
			      memory_order_release);
}

static inline uint64_t stat_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_acquire);
}

/*
 * Check @cfg and work out each shard's budget (0 means RAM / nshards).
 * One 2 MiB step of metadata plus one of heap is the least a shard can run
 * with.  Returns 0 with the budget in *budget, or -EINVAL.
 */
static inline int sk__mem_budget(const struct sk_mem_config *cfg, size_t *budget)
{
	if (!cfg || cfg->nshards == 0 || cfg->nshards > SK_MEM_MAX_SHARDS)
		return -EINVAL;
	size_t b = cfg->bytes_per_shard;
	if (b == 0)
		b = (size_t)(sk_plat_mem_total() / cfg->nshards);
	if (b < 2 * SK_CHUNK)
		return -EINVAL;
	*budget = b;
	return 0;
}

#endif /* SK_MEM_COMMON_H */
