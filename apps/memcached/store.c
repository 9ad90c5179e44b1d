/*
 * store.c - one shard's part of the memcached store.
 *
 * Roadmap
 *
 *   struct store    per shard, reached through a _Thread_local pointer: the
 *                   hash table, the LRU, the byte budget, the cas counter,
 *                   the flush times and the background timer.  Only the
 *                   owner shard touches it, so there are no locks.
 *   hash table      chained, 2^power buckets indexed by the low bits of
 *                   mc_key_hash() (the owner shard came from the high bits).
 *                   When items exceed 1.5 x buckets it doubles
 *                   incrementally: while `old` is set, old buckets below
 *                   `migrate` have moved to `tab` and the rest are still in
 *                   `old`.  Every insert moves GROW_PER_OP old buckets and
 *                   each timer tick TICK_BUCKETS, so no operation rehashes
 *                   the whole table, and the move always ends before the
 *                   next doubling is due.
 *   LRU             doubly linked, head = newest.  An access moves an item
 *                   to the head at most once per LRU_BUMP_SECS (as stock);
 *                   in between it only sets MC_IF_ACTIVE, which buys the
 *                   item a second chance when it reaches the tail.
 *   dead items      expired, or flushed (stored before the flush time, or
 *                   in the flush's second with a cas below the flush cas).  They are
 *                   unlinked lazily by lookups, at the LRU tail when room is
 *                   needed, and by the timer's sweep (TICK_BUCKETS buckets
 *                   per tick), which counts them as reclaimed.
 *   link_item()     makes room under the budget (reclaim, second chance,
 *                   evict from the tail), then links: table, LRU, stats.
 *   op_*()          GET, STORE, DELETE, ARITH, TOUCH with stock 1.6
 *                   semantics, meta flags included.
 *
 * Bytes are counted as the allocator's usable size of each item, so the
 * budget bounds real memory, not just payload.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "store.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

#define HASH_POWER_INIT	16	/* 64 Ki buckets per shard, as stock */
#define HASH_POWER_MAX	32
#define GROW_PER_OP	2	/* >= 2: the move ends before 3 x old buckets */
#define TICK_NS		(10 * SK_NSEC_PER_MSEC)
#define TICK_BUCKETS	2048	/* per tick: ~100 us at worst */
#define LRU_BUMP_SECS	60	/* stock's ITEM_UPDATE_INTERVAL */
#define SECOND_CHANCES	64	/* active tail items spared per eviction */

enum { ALIVE, DEAD_EXPIRED, DEAD_FLUSHED };

struct store {
	struct mc_item **tab;		/* 2^power buckets */
	struct mc_item **old;		/* the previous table while growing */
	uint64_t mask, old_mask;
	uint64_t migrate;		/* next old bucket to move */
	uint64_t grow_retry;		/* items before retrying a failed grow */
	uint64_t sweep_pos;		/* next bucket the sweep looks at */
	struct mc_item *lru_head, *lru_tail;
	uint64_t budget;		/* bytes; 0 = no limit */
	uint64_t cas_seq;
	uint64_t dead_cas;		/* flushed: stored at or before dead_time, */
	uint32_t dead_time;		/* or in second dead_cas_time with a cas */
	uint32_t dead_cas_time;		/* below dead_cas */
	uint32_t pending_flush;		/* a delayed flush_all; 0 = none */
	unsigned power;
	unsigned shard;
	struct mc_stats *st;		/* this shard's counters */
	struct sk_timer tick;
};

static _Thread_local struct store *S;

/* ---- items, cas, liveness ------------------------------------------------ */

static inline size_t item_bytes(const struct mc_item *it)
{
	return sk_alloc_usable_size(it);
}

static inline void item_get_ref(struct mc_item *it)
{
	atomic_fetch_add_explicit(&it->refs, 1, memory_order_relaxed);
}

/* Unique over shards: the low 6 bits name the shard (SK_MAX_SHARDS = 64). */
static inline uint64_t next_cas(struct store *s, const struct mc_req *rq)
{
	if (!mc_settings.cas_enabled)
		return 0;
	if (rq && (rq->flags & MC_RF_NEWCAS))
		return rq->new_cas;
	return (++s->cas_seq << 6) | s->shard;
}

static inline void flush_promote(struct store *s, uint32_t now)
{
	if (SK_UNLIKELY(s->pending_flush) && s->pending_flush <= now) {
		if (s->pending_flush > s->dead_time)
			s->dead_time = s->pending_flush;
		s->pending_flush = 0;
	}
}

static inline int item_state(const struct store *s, const struct mc_item *it,
			     uint32_t now)
{
	if (it->exptime && it->exptime <= now)
		return DEAD_EXPIRED;
	if (SK_UNLIKELY(it->time <= s->dead_time) ||
	    SK_UNLIKELY(it->time == s->dead_cas_time && it->cas < s->dead_cas))
		return DEAD_FLUSHED;
	return ALIVE;
}

static inline int32_t ttl_of(const struct mc_item *it, uint32_t now)
{
	if (!it->exptime)
		return -1;
	uint32_t left = it->exptime > now ? it->exptime - now : 0;
	return left > INT32_MAX ? INT32_MAX : (int32_t)left;
}

/* ---- LRU ------------------------------------------------------------------ */

static inline void lru_del(struct store *s, struct mc_item *it)
{
	if (it->lru_prev)
		it->lru_prev->lru_next = it->lru_next;
	else
		s->lru_head = it->lru_next;
	if (it->lru_next)
		it->lru_next->lru_prev = it->lru_prev;
	else
		s->lru_tail = it->lru_prev;
}

static inline void lru_push(struct store *s, struct mc_item *it)
{
	it->lru_prev = NULL;
	it->lru_next = s->lru_head;
	if (s->lru_head)
		s->lru_head->lru_prev = it;
	else
		s->lru_tail = it;
	s->lru_head = it;
}

/* An access: cheap unless the item has not moved for LRU_BUMP_SECS. */
static inline void lru_bump(struct store *s, struct mc_item *it, uint32_t now,
			    bool fetched)
{
	if (fetched)
		it->iflags |= MC_IF_FETCHED;
	if (now - it->atime >= LRU_BUMP_SECS) {
		if (s->lru_head != it) {
			lru_del(s, it);
			lru_push(s, it);
		}
	} else {
		it->iflags |= MC_IF_ACTIVE;
	}
	it->atime = now;
}

/* ---- hash table ------------------------------------------------------------ */

static void stats_hash(struct store *s)
{
	uint64_t n = s->mask + 1 + (s->old ? s->old_mask + 1 : 0);
	s->st->hash_power_level = s->power;
	s->st->hash_bytes = n * sizeof(struct mc_item *);
	s->st->hash_is_expanding = s->old != NULL;
}

static inline struct mc_item **bucket(struct store *s, uint64_t hv)
{
	if (SK_UNLIKELY(s->old != NULL) && (hv & s->old_mask) >= s->migrate)
		return &s->old[hv & s->old_mask];
	return &s->tab[hv & s->mask];
}

/* The link that points at @key's item, or at the NULL ending its chain. */
static inline struct mc_item **find(struct store *s, const char *key,
				    unsigned nkey, uint64_t hv)
{
	struct mc_item **pp = bucket(s, hv), *it;

	while ((it = *pp) != NULL) {
		if (it->nkey == nkey && memcmp(it->data, key, nkey) == 0)
			break;
		pp = &it->h_next;
	}
	return pp;
}

/*
 * Start doubling.  The new table is not zeroed: bucket j is written when
 * old bucket j & old_mask moves, before anything can look at it, so a huge
 * table costs no memset pause.
 */
static void grow_start(struct store *s)
{
	struct mc_item **t;

	if (s->power >= HASH_POWER_MAX || s->st->curr_items < s->grow_retry)
		return;
	t = sk_alloc(sizeof(*t) << (s->power + 1));
	if (!t) {
		s->grow_retry = s->st->curr_items + ((s->mask + 1) >> 2);
		sk_log_warn("memcached: hash table cannot grow past 2^%u buckets",
			    s->power);
		return;
	}
	s->old = s->tab;
	s->old_mask = s->mask;
	s->migrate = 0;
	s->tab = t;
	s->power++;
	s->mask = (s->mask << 1) | 1;
	stats_hash(s);
}

/* Move up to @n old buckets; each splits into new buckets i and i + osize. */
static void grow_step(struct store *s, uint64_t n)
{
	uint64_t osize = s->old_mask + 1;

	while (n-- && s->migrate < osize) {
		uint64_t i = s->migrate;
		struct mc_item *it = s->old[i], *next;

		s->tab[i] = s->tab[i + osize] = NULL;
		for (; it; it = next) {
			struct mc_item **b;
			next = it->h_next;
			b = &s->tab[mc_key_hash(it->data, it->nkey) & s->mask];
			it->h_next = *b;
			*b = it;
		}
		s->migrate = i + 1;
	}
	if (s->migrate == osize) {
		sk_free(s->old);
		s->old = NULL;
		s->migrate = 0;
		stats_hash(s);
	}
}

/* ---- link / unlink ------------------------------------------------------- */

/* Unlink the item *pp == @it and drop the table's reference. */
static void unlink_at(struct store *s, struct mc_item **pp, struct mc_item *it)
{
	*pp = it->h_next;
	it->h_next = NULL;
	lru_del(s, it);
	it->iflags &= (uint8_t)~MC_IF_LINKED;
	s->st->bytes -= item_bytes(it);
	s->st->curr_items--;
	mc_item_put(it);
}

static void unlink_item(struct store *s, struct mc_item *it)
{
	struct mc_item **pp = bucket(s, mc_key_hash(it->data, it->nkey));

	while (*pp != it) {
		SK_ASSERT(*pp != NULL);
		pp = &(*pp)->h_next;
	}
	unlink_at(s, pp, it);
}

static void count_reclaim(struct store *s, const struct mc_item *it, int state)
{
	s->st->reclaimed++;
	if (state == DEAD_EXPIRED && !(it->iflags & MC_IF_FETCHED))
		s->st->expired_unfetched++;
}

/* Free room for @need more bytes from the LRU tail; false if impossible. */
static bool make_room(struct store *s, size_t need, uint32_t now)
{
	unsigned chances = SECOND_CHANCES;

	if (need > s->budget)
		return false;
	while (s->st->bytes + need > s->budget) {
		struct mc_item *t = s->lru_tail;
		int state;

		if (!t)
			return false;
		state = item_state(s, t, now);
		if (state != ALIVE) {
			count_reclaim(s, t, state);
		} else if ((t->iflags & MC_IF_ACTIVE) && chances) {
			chances--;
			t->iflags &= (uint8_t)~MC_IF_ACTIVE;
			lru_del(s, t);
			lru_push(s, t);
			continue;
		} else {
			s->st->evictions++;
			if (!(t->iflags & MC_IF_FETCHED))
				s->st->evicted_unfetched++;
		}
		unlink_item(s, t);
	}
	return true;
}

/*
 * Link @it (not in the table; its caller's reference becomes the table's).
 * False when the budget cannot make room: the reference stays the caller's.
 * Invalidates every chain pointer taken before it.
 */
static bool link_item(struct store *s, struct mc_item *it, uint64_t hv,
		      uint32_t now, uint64_t cas)
{
	size_t sz = item_bytes(it);
	struct mc_item **b;

	if (s->budget && s->st->bytes + sz > s->budget && !make_room(s, sz, now))
		return false;
	if (SK_UNLIKELY(s->old != NULL))
		grow_step(s, GROW_PER_OP);
	b = bucket(s, hv);
	it->h_next = *b;
	*b = it;
	lru_push(s, it);
	it->cas = cas;
	it->time = it->atime = now;
	it->iflags |= MC_IF_LINKED;
	s->st->bytes += sz;
	s->st->curr_items++;
	s->st->total_items++;
	if (SK_UNLIKELY(s->st->curr_items > ((s->mask + 1) * 3) >> 1) && !s->old)
		grow_start(s);
	return true;
}

/* The live item for @rq's key (dead ones are unlinked on the way), or NULL. */
static inline struct mc_item *lookup(struct store *s, const struct mc_req *rq,
				     uint64_t hv, uint32_t now,
				     struct mc_item ***ppp)
{
	struct mc_item **pp = find(s, rq->key, rq->nkey, hv), *it = *pp;

	if (it) {
		int state = item_state(s, it, now);
		if (SK_UNLIKELY(state != ALIVE)) {
			if (state == DEAD_EXPIRED)
				s->st->get_expired++;
			else
				s->st->get_flushed++;
			unlink_at(s, pp, it);
			it = NULL;
		}
	}
	*ppp = pp;
	return it;
}

/* ---- operations ------------------------------------------------------------ */

/* mg N: store an empty item so this caller can recache it. */
static struct mc_item *vivify(struct store *s, const struct mc_req *rq,
			      uint64_t hv, uint32_t now)
{
	int err;
	struct mc_item *it = mc_item_new(rq->key, rq->nkey, 0, rq->viv_exptime, 0,
					 &err);
	if (!it)
		return NULL;
	if (!link_item(s, it, hv, now, next_cas(s, NULL))) {
		mc_item_put(it);
		return NULL;
	}
	return it;
}

static void op_get(struct store *s, const struct mc_req *rq, struct mc_res *rs,
		   uint64_t hv, uint32_t now)
{
	struct mc_item **pp;
	struct mc_item *it = lookup(s, rq, hv, now, &pp);
	bool touch = rq->flags & MC_RF_TOUCH, won = false;
	uint8_t rf = 0;

	if (SK_UNLIKELY(!it)) {
		if (touch)
			s->st->touch_misses++;
		else
			s->st->get_misses++;
		if (!(rq->flags & MC_RF_VIVIFY) || !(it = vivify(s, rq, hv, now))) {
			rs->status = MC_MISS;
			return;
		}
		won = true;
	} else {
		if (touch) {
			it->exptime = rq->exptime;
			s->st->touch_hits++;
		} else {
			s->st->get_hits++;
		}
		if (SK_UNLIKELY(it->iflags & (MC_IF_WON | MC_IF_STALE)) ||
		    SK_UNLIKELY(rq->flags & MC_RF_RECACHE)) {
			/* Meta: one winner recaches; the others hear who won. */
			if (it->iflags & MC_IF_WON)
				rf |= MC_RES_WONBY;
			else if (it->iflags & MC_IF_STALE)
				won = true;
			else if ((rq->flags & MC_RF_RECACHE) && it->exptime &&
				 it->exptime - now < rq->recache)
				won = true;
			if (it->iflags & MC_IF_STALE)
				rf |= MC_RES_STALE;
		}
		if (it->iflags & MC_IF_FETCHED)
			rf |= MC_RES_HIT;
	}
	if (won) {
		rf |= MC_RES_WIN;
		it->iflags |= MC_IF_WON;
	}
	rs->ttl = ttl_of(it, now);
	rs->last_access = now - it->atime;
	if (!(rq->flags & MC_RF_NOBUMP))
		lru_bump(s, it, now, true);
	item_get_ref(it);
	rs->item = it;
	rs->cas = it->cas;
	rs->rflags = rf;
	rs->status = MC_OK;
}

/* append/prepend: a new item on this shard with @old's flags and exptime. */
static struct mc_item *concat(const struct mc_item *old, const struct mc_item *add,
			      bool prepend, int *status)
{
	uint64_t n = (uint64_t)old->nbytes + add->nbytes;
	struct mc_item *it;
	int err;

	if (n > UINT32_MAX) {
		*status = MC_TOO_LARGE;
		return NULL;
	}
	it = mc_item_new(old->data, old->nkey, old->client_flags, old->exptime,
			 (uint32_t)n, &err);
	if (!it) {
		*status = err == -E2BIG ? MC_TOO_LARGE : MC_NOMEM;
		return NULL;
	}
	const struct mc_item *first = prepend ? add : old;
	const struct mc_item *second = prepend ? old : add;
	char *v = mc_item_value(it);
	memcpy(v, first->data + first->nkey, first->nbytes);
	memcpy(v + first->nbytes, second->data + second->nkey, second->nbytes);
	return it;
}

static void op_store(struct store *s, const struct mc_req *rq, struct mc_res *rs,
		     uint64_t hv, uint32_t now)
{
	struct mc_item *nit = rq->item, **pp;
	struct mc_item *old = lookup(s, rq, hv, now, &pp);
	bool cas_op = rq->cas && (rq->mode == MC_SET || rq->mode == MC_REPLACE);
	int status = MC_OK;

	SK_ASSERT(nit != NULL && !(nit->iflags & MC_IF_LINKED));
	if (!old) {
		if (cas_op) {
			s->st->cas_misses++;
			status = MC_MISS;
			goto drop;
		}
		if (rq->mode != MC_SET && rq->mode != MC_ADD) {
			status = MC_NOT_STORED;
			goto drop;
		}
		goto link;
	}
	switch (rq->mode) {
	case MC_ADD:
		/* Not stored, but stock promotes the existing item anyway. */
		lru_bump(s, old, now, false);
		status = MC_NOT_STORED;
		goto drop;
	case MC_SET:
	case MC_REPLACE:
		if (!cas_op)
			break;
		if (rq->cas == old->cas) {
			s->st->cas_hits++;
			break;
		}
		if ((rq->flags & MC_RF_INVAL) && rq->cas < old->cas) {
			/* ms I with an older cas: store, but as stale. */
			nit->exptime = old->exptime;
			nit->iflags |= MC_IF_STALE | (old->iflags & MC_IF_WON);
			s->st->cas_hits++;
			break;
		}
		s->st->cas_badval++;
		status = MC_EXISTS;
		goto drop;
	case MC_APPEND:
	case MC_PREPEND: {
		struct mc_item *cat;
		if (rq->cas && rq->cas != old->cas) {
			status = MC_EXISTS;
			goto drop;
		}
		cat = concat(old, nit, rq->mode == MC_PREPEND, &status);
		if (!cat)
			goto drop;
		mc_item_put(nit);
		nit = cat;
		break;
	}
	default:
		SK_ASSERT(!"bad store mode");
	}
	unlink_at(s, pp, old);
link:
	if (!link_item(s, nit, hv, now, next_cas(s, rq))) {
		status = MC_NOMEM;
		goto drop;
	}
	rs->cas = nit->cas;
	rs->status = MC_OK;
	return;
drop:
	mc_item_put(nit);
	rs->status = (uint8_t)status;
}

static void op_delete(struct store *s, const struct mc_req *rq, struct mc_res *rs,
		      uint64_t hv, uint32_t now)
{
	struct mc_item **pp;
	struct mc_item *it = lookup(s, rq, hv, now, &pp);

	if (!it) {
		s->st->delete_misses++;
		rs->status = MC_MISS;
		return;
	}
	if (rq->cas && rq->cas != it->cas) {
		rs->status = MC_EXISTS;
		return;
	}
	if (rq->flags & MC_RF_INVAL) {
		/* md I: keep it as stale, with a new cas, and let a new winner in. */
		if (rq->flags & MC_RF_DELTTL)
			it->exptime = rq->exptime;
		it->iflags = (uint8_t)((it->iflags | MC_IF_STALE) & ~MC_IF_WON);
		it->cas = next_cas(s, rq);
		rs->cas = it->cas;
		rs->status = MC_OK;
		return;
	}
	s->st->delete_hits++;
	unlink_at(s, pp, it);
	rs->status = MC_OK;
}

static inline bool is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * The value as stock's safe_strtoull() reads it: optional blanks and sign,
 * decimal digits without overflow, then a blank, a NUL or the end; a
 * negative result is refused.
 */
static bool parse_u64(const char *p, uint32_t n, uint64_t *out)
{
	const char *end = p + n, *digits;
	bool neg = false;
	uint64_t v = 0;

	while (p < end && is_space(*p))
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	for (digits = p; p < end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;		/* ERANGE */
		v = v * 10 + d;
	}
	if (p == digits || (p < end && !is_space(*p) && *p != '\0'))
		return false;
	if (neg) {
		v = -v;
		if ((int64_t)v < 0)
			return false;
	}
	*out = v;
	return true;
}

/* A new item holding @v in decimal. */
static struct mc_item *number_item(const struct mc_req *rq, uint64_t v,
				   uint32_t client_flags, uint32_t exptime,
				   int *status)
{
	char buf[20], *p = buf + sizeof(buf);
	struct mc_item *it;
	int err;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	it = mc_item_new(rq->key, rq->nkey, client_flags, exptime,
			 (uint32_t)(buf + sizeof(buf) - p), &err);
	if (!it) {
		*status = err == -E2BIG ? MC_TOO_LARGE : MC_NOMEM;
		return NULL;
	}
	memcpy(mc_item_value(it), p, it->nbytes);
	return it;
}

static void op_arith(struct store *s, const struct mc_req *rq, struct mc_res *rs,
		     uint64_t hv, uint32_t now)
{
	struct mc_item **pp;
	struct mc_item *it = lookup(s, rq, hv, now, &pp), *nit;
	bool incr = rq->mode == MC_INCR;
	int status = MC_OK;
	uint64_t v;

	if (!it) {
		if (incr)
			s->st->incr_misses++;
		else
			s->st->decr_misses++;
		if (!(rq->flags & MC_RF_VIVIFY)) {
			rs->status = MC_MISS;
			return;
		}
		v = rq->initial;
		nit = number_item(rq, v, 0, rq->viv_exptime, &status);
	} else {
		if (rq->cas && rq->cas != it->cas) {
			rs->status = MC_EXISTS;
			return;
		}
		if (!parse_u64(mc_item_value(it), it->nbytes, &v)) {
			rs->status = MC_NON_NUMERIC;
			return;
		}
		if (incr)
			v += rq->delta;		/* wraps at 2^64, as stock */
		else
			v = rq->delta > v ? 0 : v - rq->delta;
		if (incr)
			s->st->incr_hits++;
		else
			s->st->decr_hits++;
		nit = number_item(rq, v, it->client_flags,
				  (rq->flags & MC_RF_ARITHTTL) ? rq->exptime :
								 it->exptime,
				  &status);
		if (nit)
			unlink_at(s, pp, it);
	}
	if (!nit) {
		rs->status = (uint8_t)status;
		return;
	}
	if (!link_item(s, nit, hv, now, next_cas(s, rq))) {
		mc_item_put(nit);
		rs->status = MC_NOMEM;
		return;
	}
	item_get_ref(nit);
	rs->item = nit;
	rs->value = v;
	rs->cas = nit->cas;
	rs->ttl = ttl_of(nit, now);
	rs->status = MC_OK;
}

static void op_touch(struct store *s, const struct mc_req *rq, struct mc_res *rs,
		     uint64_t hv, uint32_t now)
{
	struct mc_item **pp;
	struct mc_item *it = lookup(s, rq, hv, now, &pp);

	if (!it) {
		s->st->touch_misses++;
		rs->status = MC_MISS;
		return;
	}
	it->exptime = rq->exptime;
	s->st->touch_hits++;
	lru_bump(s, it, now, true);
	rs->cas = it->cas;
	rs->ttl = ttl_of(it, now);
	rs->status = MC_OK;
}

void mc_store_run_local(struct mc_req *rq, struct mc_res *rs, uint64_t hv,
			uint32_t now)
{
	struct store *s = S;

	*rs = (struct mc_res){ .status = MC_OK, .ttl = -1 };
	if (SK_UNLIKELY(s == NULL)) {
		/*
		 * No store (yet, or any more: shards finish one by one at
		 * shutdown while others still drain requests): answer, do not
		 * crash.
		 */
		if (rq->op == MC_OP_STORE && rq->item)
			mc_item_put(rq->item);
		rs->status = rq->op == MC_OP_STORE ? MC_NOMEM : MC_MISS;
		return;
	}
	flush_promote(s, now);
	switch (rq->op) {
	case MC_OP_GET:
		op_get(s, rq, rs, hv, now);
		break;
	case MC_OP_STORE:
		op_store(s, rq, rs, hv, now);
		break;
	case MC_OP_DELETE:
		op_delete(s, rq, rs, hv, now);
		break;
	case MC_OP_ARITH:
		op_arith(s, rq, rs, hv, now);
		break;
	case MC_OP_TOUCH:
		op_touch(s, rq, rs, hv, now);
		break;
	default:
		SK_ASSERT(!"bad mc_req op");
	}
}

/* ---- flush, sweep, lifecycle ---------------------------------------------- */

/*
 * Stock's rule: with cas, "dead" means stored at or before when - 1, or
 * (for a flush that is already due) with a cas handed out before the
 * flush, so items stored later in the same second live.  Unlike stock the
 * cas test covers only that second, so a small client cas (meta E) set
 * later is not taken for flushed.  Without cas: stored at or before
 * @when.  A new flush_all replaces a pending one.
 */
void mc_store_flush_local(uint32_t when)
{
	struct store *s = S;
	uint32_t now = mc_now();
	uint32_t oldest = when > now ? when : now;

	if (!s)
		return;
	if (mc_settings.cas_enabled)
		oldest--;
	s->pending_flush = 0;
	if (oldest > now) {
		s->pending_flush = oldest;
		return;
	}
	if (oldest > s->dead_time)
		s->dead_time = oldest;
	if (mc_settings.cas_enabled) {
		s->dead_cas = (s->cas_seq + 1) << 6;
		s->dead_cas_time = now;
	}
}

static uint64_t sweep(struct store *s, uint64_t n, uint32_t now)
{
	uint64_t got = 0;

	flush_promote(s, now);
	if (n > s->mask + 1)
		n = s->mask + 1;
	while (n-- && s->st->curr_items) {
		struct mc_item **pp = &s->tab[s->sweep_pos & s->mask], *it;
		s->sweep_pos = (s->sweep_pos + 1) & s->mask;
		while ((it = *pp) != NULL) {
			int state = item_state(s, it, now);
			if (state == ALIVE) {
				pp = &it->h_next;
				continue;
			}
			count_reclaim(s, it, state);
			unlink_at(s, pp, it);
			got++;
		}
	}
	return got;
}

uint64_t mc_store_sweep_local(uint64_t nbuckets)
{
	struct store *s = S;

	if (!s)
		return 0;
	if (s->old) {
		grow_step(s, nbuckets);
		return 0;
	}
	return sweep(s, nbuckets, mc_now());
}

/* Background work: finish a growth first, else look for dead items. */
static void tick_cb(struct sk_timer *t)
{
	struct store *s = t->arg;

	mc_clock_tick();
	if (s->old)
		grow_step(s, TICK_BUCKETS);
	else if (s->st->curr_items)
		sweep(s, TICK_BUCKETS, mc_now());
}

int mc_store_init(uint64_t budget_bytes)
{
	struct store *s = S;

	if (s) {
		s->budget = budget_bytes;
		s->st->limit_maxbytes = budget_bytes;
		return 0;
	}
	s = sk_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tab = sk_zalloc(sizeof(*s->tab) << HASH_POWER_INIT);
	if (!s->tab) {
		sk_free(s);
		return -ENOMEM;
	}
	s->power = HASH_POWER_INIT;
	s->mask = ((uint64_t)1 << HASH_POWER_INIT) - 1;
	s->budget = budget_bytes;
	s->shard = sk_shard_id();
	s->st = mc_stats_local();
	s->st->limit_maxbytes = budget_bytes;
	stats_hash(s);
	sk_timer_init(&s->tick, tick_cb, s);
	s->tick.flags = SK_TIMER_BACKGROUND;	/* never holds up shutdown */
	if (sk_timer_arm_periodic(&s->tick, TICK_NS)) {
		sk_free(s->tab);
		sk_free(s);
		return -ENOMEM;
	}
	mc_clock_tick();	/* also pins the clock base early */
	S = s;
	return 0;
}

void mc_store_fini(void)
{
	struct store *s = S;
	struct mc_item *it, *next;

	if (!s)
		return;
	sk_timer_cancel(&s->tick);
	mc_clock_stop();
	for (it = s->lru_head; it; it = next) {
		next = it->lru_next;
		it->h_next = it->lru_prev = it->lru_next = NULL;
		it->iflags &= (uint8_t)~MC_IF_LINKED;
		s->st->bytes -= item_bytes(it);
		s->st->curr_items--;
		mc_item_put(it);
	}
	sk_free(s->tab);
	sk_free(s->old);
	s->st->hash_bytes = s->st->hash_power_level = s->st->hash_is_expanding = 0;
	sk_free(s);
	S = NULL;
}
