/*
 * store.h - the store's side of engine.c (internal to apps/memcached and
 * its unit test).  Everything named _local acts on the calling shard's
 * store and must run on the key's owner shard.
 */
#ifndef SK_MC_STORE_H
#define SK_MC_STORE_H

#include <stdint.h>

#include "mc.h"
#include "skerry/shard.h"

/* One hash for both key -> owner shard (high bits) and bucket (low bits). */
#define MC_HASH_SEED 0x6d656d6361636865ull	/* "memcache" */

static inline uint64_t mc_key_hash(const char *key, unsigned nkey)
{
	return sk_hash64(key, nkey, MC_HASH_SEED);
}

/*
 * Run one request on this shard's store.  @hv is mc_key_hash() of its key
 * (read before *res is written, so it may live in res->value), @now is
 * mc_now() for the whole batch.  Writes every field of *res.
 */
void mc_store_run_local(struct mc_req *req, struct mc_res *res, uint64_t hv,
			uint32_t now);

/* flush_all on this shard: see mc_flush_all(). */
void mc_store_flush_local(uint32_t when);

/*
 * Background work now (tests): move up to @nbuckets buckets of a growing
 * table, else sweep up to @nbuckets buckets for dead items.  Returns how
 * many items were reclaimed.
 */
uint64_t mc_store_sweep_local(uint64_t nbuckets);

/*
 * item.c's per-shard clock copy: mc_clock_tick() refreshes it (the store's
 * timer calls it every tick), mc_clock_stop() makes mc_now() read the clock
 * again (store fini).
 */
void mc_clock_tick(void);
void mc_clock_stop(void);

#endif /* SK_MC_STORE_H */
