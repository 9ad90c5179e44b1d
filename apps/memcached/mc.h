/*
 * mc.h - what the memcached protocol front ends (text, meta, binary) and the
 * sharded store share.
 *
 * Roadmap:  conn.c reads a connection and picks a protocol (proto_text.c,
 * proto_meta.c, proto_bin.c).  A protocol turns wire commands into
 * struct mc_req, runs them with mc_exec() and turns struct mc_res into wire
 * answers.  mc_exec() (engine.c) sends each request to the shard that owns
 * its key (batched: one message per owner shard) where store.c runs it on
 * that shard's hash table + LRU.  Protocols never touch the store directly.
 *
 * Items are immutable once stored (except their TTL/access time and flags,
 * which only the owner shard changes).  A reader gets a reference in
 * mc_res.item and sends the value straight from item memory
 * (sk_write_ref with mc_item_release); mc_item_put() works on any shard.
 */
#ifndef SK_MC_H
#define SK_MC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "skerry/future.h"

#define MC_KEY_MAX 250		/* longest key, as stock */
#define MC_ITEM_OVERHEAD 48	/* counted against -I like stock's header */

/* Settings: written once at start-up (main.c), read-only afterwards. */
struct mc_settings {
	unsigned port, udp_port;
	const char *listen_addr;
	uint64_t maxbytes;		/* -m, bytes, all shards together */
	unsigned maxconns;		/* -c */
	unsigned nshards;
	uint64_t item_size_max;		/* -I */
	int verbose;			/* -v count */
	bool enable_shutdown;		/* -A */
	bool cas_enabled;		/* -C turns it off */
	int64_t process_started;	/* unix time of start, seconds */
};
extern struct mc_settings mc_settings;

/*
 * Time.  mc_now() is seconds since start-up plus 2, so 1 means "already in
 * the past" and 0 means "never" for expiry times.
 */
uint32_t mc_now(void);
/*
 * A client exptime -> mc time, as stock: 0 = never; negative = expired at
 * once; up to 30 days = relative seconds; above = absolute unix time.
 */
uint32_t mc_exptime(int64_t exptime);
/* Tests only: move mc time forward by @seconds on every shard. */
void mc_time_advance(uint32_t seconds);

struct mc_item {
	struct mc_item *h_next;			/* owner only: hash chain */
	struct mc_item *lru_prev, *lru_next;	/* owner only */
	uint64_t cas;
	uint32_t exptime;	/* mc time; 0 = never (owner changes it) */
	uint32_t atime;		/* last access, mc time (owner) */
	uint32_t time;		/* when stored, mc time (for flush_all) */
	uint32_t client_flags;
	uint32_t nbytes;	/* value length without the trailing "\r\n" */
	atomic_uint refs;	/* one for the hash table + one per reader */
	uint16_t home;		/* shard whose memory holds it */
	uint8_t nkey;
	uint8_t iflags;		/* MC_IF_* (owner) */
	char data[];		/* key, value, "\r\n" */
};

#define MC_IF_LINKED	0x01	/* in a hash table */
#define MC_IF_FETCHED	0x02	/* read at least once */
#define MC_IF_STALE	0x04	/* invalidated by md/ms I: served as stale */
#define MC_IF_WON	0x08	/* a win token was handed out (meta) */
#define MC_IF_ACTIVE	0x10	/* store-private: accessed since its last LRU
				 * move; gets a second chance at the tail */

static inline char *mc_item_key(struct mc_item *it) { return it->data; }
static inline char *mc_item_value(struct mc_item *it) { return it->data + it->nkey; }

/*
 * A new, unlinked item with room for @nbytes of value (plus "\r\n", which
 * this writes), one reference held by the caller.  Returns NULL with
 * *err = -E2BIG (over -I, answer "object too large for cache"), -ENOMEM,
 * or -EINVAL (@nkey not in 1..MC_KEY_MAX).
 * Allocated on the calling shard; it may be stored on any shard.
 */
struct mc_item *mc_item_new(const char *key, unsigned nkey, uint32_t client_flags,
			    uint32_t exptime, uint32_t nbytes, int *err);
/* Drop a reference (any shard); the last one frees. */
void mc_item_put(struct mc_item *it);
/* mc_item_put with the signature sk_write_ref() wants. */
void mc_item_release(void *it);

enum mc_op {
	MC_OP_GET,	/* get/gets/gat/gats/mg/bin get,gat,touch */
	MC_OP_STORE,	/* set/add/replace/append/prepend/cas/ms */
	MC_OP_DELETE,	/* delete/md */
	MC_OP_ARITH,	/* incr/decr/ma */
	MC_OP_TOUCH,	/* touch: new exptime, no value back */
};

enum mc_store_mode {
	MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND,
	/* "cas" is MC_SET with req.cas != 0 */
};

enum mc_arith_mode { MC_INCR, MC_DECR };

/* mc_req.flags */
#define MC_RF_TOUCH	0x0001	/* GET: also set exptime (gat, mg T) */
#define MC_RF_VIVIFY	0x0002	/* GET: miss -> store an empty item with
				 * viv_exptime and win (mg N);
				 * ARITH: miss -> create with initial (ma N, bin) */
#define MC_RF_RECACHE	0x0004	/* GET: win if TTL left < recache (mg R) */
#define MC_RF_INVAL	0x0008	/* DELETE: mark stale, keep (md I);
				 * STORE: cas older than item's -> store stale (ms I) */
#define MC_RF_NEWCAS	0x0010	/* STORE/ARITH/DELETE-I: use new_cas as the cas (E) */
#define MC_RF_NOBUMP	0x0020	/* GET: do not count as an access (mg without
				 * v/... never needs it; reserved) */
#define MC_RF_DELTTL	0x0040	/* DELETE with I: also set exptime (md T) */
#define MC_RF_ARITHTTL	0x0080	/* ARITH: on hit also set exptime (ma T) */

struct mc_req {
	uint8_t op;		/* enum mc_op */
	uint8_t mode;		/* enum mc_store_mode / enum mc_arith_mode */
	uint8_t nkey;
	uint16_t flags;		/* MC_RF_* */
	uint32_t exptime;	/* mc time: touch/gat/ma T/md T */
	uint32_t viv_exptime;	/* mc time: MC_RF_VIVIFY */
	uint32_t recache;	/* seconds: MC_RF_RECACHE */
	uint64_t cas;		/* compare-and-swap value; 0 = none */
	uint64_t new_cas;	/* MC_RF_NEWCAS */
	uint64_t delta, initial;	/* ARITH */
	struct mc_item *item;	/* STORE: the new item; mc_exec takes the
				 * caller's reference */
	char key[MC_KEY_MAX + 1];	/* copied: it outlives the input buffer */
};

enum mc_status {
	MC_OK,		/* STORED / DELETED / TOUCHED / hit / arith done */
	MC_MISS,	/* NOT_FOUND (get: miss) */
	MC_NOT_STORED,	/* add on existing, replace/append/prepend on missing */
	MC_EXISTS,	/* cas mismatch */
	MC_NON_NUMERIC,	/* incr/decr on a non-number */
	MC_NOMEM,	/* SERVER_ERROR out of memory storing object */
	MC_TOO_LARGE,	/* append/prepend result over -I */
};

/* mc_res.rflags */
#define MC_RES_WIN	0x01	/* meta W: caller should recache */
#define MC_RES_STALE	0x02	/* meta X */
#define MC_RES_WONBY	0x04	/* meta Z: someone else already won */
#define MC_RES_HIT	0x08	/* meta h: item had been fetched before */

struct mc_res {
	uint8_t status;		/* enum mc_status */
	uint8_t rflags;		/* MC_RES_* */
	struct mc_item *item;	/* GET (and ARITH): a reference for the caller
				 * to send and mc_item_put() */
	uint64_t cas;		/* the item's cas after the operation */
	uint64_t value;		/* ARITH: the new value */
	int32_t ttl;		/* seconds left; -1 = never (meta t) */
	uint32_t last_access;	/* seconds since the previous access (meta l) */
};

/*
 * Run @n requests; res[i] answers req[i].  Each goes to the shard that owns
 * its key, one message per owner shard.  Ready at once when every key is
 * local.  Both arrays must stay valid until the future resolves; it fails
 * only with -ENOMEM (then no request ran... or some did: callers answer
 * SERVER_ERROR out of memory).
 *
 * Ownership: every req[i].item reference (STORE) belongs to mc_exec from
 * the call on, whatever happens; never put or reuse it.  On success each
 * res[i].item that is not NULL (GET hit, ARITH done) is one reference for
 * the caller to mc_item_put()/mc_item_release().  On failure (-ENOMEM,
 * -ESHUTDOWN) every res[i].item is NULL.  While holding a reference read
 * only the immutable parts of the item (key, value, nbytes, client_flags):
 * the owner shard may change exptime/atime/iflags/cas meanwhile, so cas,
 * TTL and meta flags come from struct mc_res.
 * A STORE with mode MC_SET or MC_REPLACE and cas != 0 is a "cas" (meta
 * semantics); MC_ADD ignores cas (binary add-with-cas wants MC_SET + cas).
 */
sk_future mc_exec(struct mc_req *req, struct mc_res *res, unsigned n);

/* flush_all: items stored before mc time @when (<= now: at once) are dead
 * on every shard.  Resolves when every shard has it. */
sk_future mc_flush_all(uint32_t when);

/* Counters kept per shard; "stats" sums them over shards. */
struct mc_stats {
	uint64_t curr_connections, total_connections, rejected_connections;
	uint64_t cmd_get, cmd_set, cmd_flush, cmd_touch, cmd_meta;
	uint64_t get_hits, get_misses, get_expired, get_flushed;
	uint64_t delete_misses, delete_hits;
	uint64_t incr_misses, incr_hits, decr_misses, decr_hits;
	uint64_t cas_misses, cas_hits, cas_badval;
	uint64_t touch_hits, touch_misses;
	uint64_t bytes_read, bytes_written;
	uint64_t curr_items, total_items, bytes;	/* store */
	uint64_t evictions, expired_unfetched, evicted_unfetched, reclaimed;
	uint64_t hash_bytes, hash_power_level, hash_is_expanding;
	uint64_t limit_maxbytes;
	uint64_t conn_yields;
};

/* The calling shard's counters (protocols and the store add to them). */
struct mc_stats *mc_stats_local(void);
/* Sum of every shard's counters into *out (hash_power_level is shard 0's,
 * hash_is_expanding is OR-ed, hash_bytes and limit_maxbytes are totals).
 * Resolves when done (-ENOMEM); *out must outlive it. */
sk_future mc_stats_gather(struct mc_stats *out);
/* "stats reset": zero the resettable counters on every shard. */
sk_future mc_stats_reset(void);

/* Store lifecycle, per shard (main.c calls them on every shard).
 * @budget_bytes: item memory of this shard (allocated sizes); 0 = no limit.
 * mc_store_init returns 0 or -ENOMEM. */
int mc_store_init(uint64_t budget_bytes);
void mc_store_fini(void);

#endif /* SK_MC_H */
