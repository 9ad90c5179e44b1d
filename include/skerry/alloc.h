/*
 * skerry/alloc.h - per-shard memory.
 *
 * Two backends behind one API, chosen at build time (meson -Dallocator=):
 *
 *  shard     (default) skerry's own allocator.  Each shard owns one aligned
 *            slice of one large reserved address range, so the owner of any
 *            pointer is (p - base) >> slice_shift.  Small objects come from
 *            size-class slabs, large ones from page spans.  Freeing memory
 *            that another shard owns pushes it onto the owner's lock-free
 *            return list; the owner drains it from its reactor.
 *  jemalloc  one jemalloc arena per shard (the comparison baseline).
 *
 * Exhaustion (the per-shard byte budget or the machine) is a NULL return,
 * never an abort.  Threads that are not shards (set-up code, tests) get the
 * C library's malloc through the same calls, and sk_free() tells the two
 * apart by address.
 */
#ifndef SKERRY_ALLOC_H
#define SKERRY_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sk_mem_config {
	unsigned nshards;	/* shards that will call sk_mem_thread_init() */
	size_t bytes_per_shard;	/* budget of each shard; 0 = machine RAM / nshards */
};

/*
 * Set the allocator up for @cfg->nshards shards, before any shard thread
 * starts.  Returns 0, -EINVAL (bad config), -EBUSY (already initialised) or
 * -ENOMEM (address space could not be reserved).
 */
int sk_mem_init(const struct sk_mem_config *cfg);
/* Undo sk_mem_init() after every shard thread has called sk_mem_thread_exit(). */
void sk_mem_fini(void);
/*
 * Make the calling thread shard @shard's allocating thread.  0, -EINVAL (no
 * such shard, not initialised, or this thread is a shard already) or -EBUSY
 * (another thread is shard @shard).
 */
int sk_mem_thread_init(unsigned shard);
/* The calling thread stops being a shard; drains its return list first. */
void sk_mem_thread_exit(void);

/* Allocate @size bytes (16-byte aligned); NULL when the budget is spent. */
void *sk_alloc(size_t size);
/* sk_alloc() and zero the memory. */
void *sk_zalloc(size_t size);
/* @align is a power of two up to 4096; NULL on exhaustion or bad @align. */
void *sk_alloc_aligned(size_t align, size_t size);
/* Like realloc(3); on failure returns NULL and leaves @p untouched. */
void *sk_realloc(void *p, size_t size);
/* Free memory from any of the calls above, on any thread.  NULL is a no-op. */
void sk_free(void *p);
/* Bytes usable at @p (>= the size asked for). */
size_t sk_alloc_usable_size(const void *p);

/* Shard that owns @p, or -1 when it is not shard memory. */
int sk_mem_owner(const void *p);

/*
 * Owner side of cross-shard frees: free everything other shards handed back
 * to the calling shard.  Returns how many objects were freed.
 */
unsigned sk_mem_drain_remote(void);
/* True when sk_mem_drain_remote() has work (no side effects). */
bool sk_mem_remote_pending(void);

struct sk_mem_stats {
	uint64_t allocs;		/* successful allocations */
	uint64_t frees;			/* frees of own memory, local + drained */
	uint64_t remote_frees_out;	/* frees this shard sent to other owners */
	uint64_t remote_frees_in;	/* frees other shards sent here, drained */
	uint64_t failed;		/* allocations refused (budget/ENOMEM) */
	uint64_t large_allocs;		/* allocations served by page spans */
	uint64_t bytes_in_use;		/* bytes handed out, by usable size */
	uint64_t bytes_committed;	/* memory backed by pages */
	uint64_t bytes_limit;		/* the shard's budget */
};

/*
 * Statistics of shard @shard, readable from any thread (values are each
 * exact, but not a snapshot of one instant).  0 or -EINVAL.
 */
int sk_mem_stats(unsigned shard, struct sk_mem_stats *out);

/* "shard" or "jemalloc". */
const char *sk_mem_backend(void);
/* Description of the page source, for the start-up log. */
const char *sk_mem_source(void);

#endif /* SKERRY_ALLOC_H */
