/*
 * item.c - items and the memcached clock.
 *
 * Roadmap:  mc_settings lives here (zero until main.c fills it in).
 * mc_now() is a process-wide clock in seconds: its base is taken once, by
 * whichever shard asks first, with a compare-and-swap so every shard agrees
 * on it, and shards with a store read a per-shard copy that their store's
 * timer refreshes (no clock read per request).  mc_exptime() turns client
 * exptimes into that clock as stock does.
 * mc_item_new() allocates one block (header, key, value, "\r\n") from the
 * calling shard; references are atomic because readers on other shards
 * drop theirs while the owner keeps the table's, and the last put frees
 * (sk_free sends the memory home whichever shard it runs on).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "mc.h"
#include "store.h"
#include "skerry/alloc.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"

struct mc_settings mc_settings;

#define MC_ITEM_SIZE_MAX_DEFAULT (1024u * 1024)	/* -I when main.c set none */
#define MC_REALTIME_MAXDELTA (60 * 60 * 24 * 30)	/* 30 days, as stock */

/* The clock base: monotonic ns and unix seconds at mc time 2; 0 = unset. */
static _Atomic uint64_t clock_base_ns;
static _Atomic int64_t clock_base_unix;
/* Seconds added by mc_time_advance() (tests only). */
static _Atomic uint32_t clock_skew;

static __attribute__((noinline)) uint64_t clock_init(void)
{
	int64_t unix_now = mc_settings.process_started ?
			   mc_settings.process_started : (int64_t)time(NULL);
	int64_t zero = 0;
	uint64_t zero_ns = 0, ns = sk_now_ns();

	/* First caller wins both; losers use the winner's values. */
	atomic_compare_exchange_strong(&clock_base_unix, &zero, unix_now);
	if (ns == 0)
		ns = 1;
	if (!atomic_compare_exchange_strong_explicit(&clock_base_ns, &zero_ns, ns,
						     memory_order_acq_rel,
						     memory_order_acquire))
		return zero_ns;
	return ns;
}

static inline uint64_t clock_base(void)
{
	uint64_t b = atomic_load_explicit(&clock_base_ns, memory_order_acquire);
	return SK_LIKELY(b) ? b : clock_init();
}

/*
 * A shard with a store keeps its reading of the clock here, refreshed by
 * the store's 10 ms timer (mc_clock_tick), so the request path reads no
 * clock at all; 0 = not kept (read the clock).  Stock memcached does the
 * same with a one-second timer.
 */
static _Thread_local uint32_t clock_cached;

static inline uint32_t clock_read(void)
{
	uint64_t base = clock_base();
	return (uint32_t)((sk_now_ns() - base) / 1000000000u) + 2;
}

uint32_t mc_now(void)
{
	uint32_t t = clock_cached;

	if (SK_UNLIKELY(t == 0))
		t = clock_read();
	return t + atomic_load_explicit(&clock_skew, memory_order_relaxed);
}

void mc_clock_tick(void)
{
	clock_cached = clock_read();
}

void mc_clock_stop(void)
{
	clock_cached = 0;
}

void mc_time_advance(uint32_t seconds)
{
	atomic_fetch_add_explicit(&clock_skew, seconds, memory_order_relaxed);
}

uint32_t mc_exptime(int64_t exptime)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return 1;	/* in the past: expired at once */
	if (exptime <= MC_REALTIME_MAXDELTA)
		return mc_now() + (uint32_t)exptime;
	/* Absolute unix time.  mc time 2 is the clock base. */
	(void)clock_base();
	int64_t base = atomic_load_explicit(&clock_base_unix, memory_order_relaxed);
	if (exptime <= base)
		return 1;
	int64_t t = exptime - base + 2;
	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

struct mc_item *mc_item_new(const char *key, unsigned nkey, uint32_t client_flags,
			    uint32_t exptime, uint32_t nbytes, int *err)
{
	uint64_t max = mc_settings.item_size_max ? mc_settings.item_size_max :
						     MC_ITEM_SIZE_MAX_DEFAULT;
	struct mc_item *it;

	if (nkey == 0 || nkey > MC_KEY_MAX ||
	    (uint64_t)MC_ITEM_OVERHEAD + nkey + nbytes + 2 > max) {
		*err = nkey > 0 && nkey <= MC_KEY_MAX ? -E2BIG : -EINVAL;
		return NULL;
	}
	it = sk_alloc(offsetof(struct mc_item, data) + nkey + (size_t)nbytes + 2);
	if (!it) {
		*err = -ENOMEM;
		return NULL;
	}
	it->h_next = NULL;
	it->lru_prev = it->lru_next = NULL;
	it->cas = 0;
	it->exptime = exptime;
	it->atime = it->time = 0;
	it->client_flags = client_flags;
	it->nbytes = nbytes;
	atomic_init(&it->refs, 1);
	it->home = (uint16_t)sk_shard_id();
	it->nkey = (uint8_t)nkey;
	it->iflags = 0;
	memcpy(it->data, key, nkey);
	memcpy(it->data + nkey + nbytes, "\r\n", 2);
	*err = 0;
	return it;
}

void mc_item_put(struct mc_item *it)
{
	/*
	 * A holder that sees refs == 1 is the last one: nobody can take a new
	 * reference to an item they do not hold, so the RMW can be skipped.
	 */
	if (atomic_load_explicit(&it->refs, memory_order_acquire) == 1 ||
	    atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1)
		sk_free(it);
}

void mc_item_release(void *it)
{
	mc_item_put(it);
}
