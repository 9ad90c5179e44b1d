/*
 * test_mc_store.c - the memcached store and engine without sockets: every
 * operation on 1 and 2 shards (keys spread over both), expiry on a fake
 * clock (mc_time_advance), cas uniqueness across shards, incremental hash
 * growth past 200k items, eviction under a small budget, flush_all now and
 * delayed, append/prepend, incr/decr edge cases, the meta win/stale flags,
 * and a concurrent cross-shard incr stress with exact sums.
 *
 * Each scenario is a protothread (PT_BEGIN/AWAIT/PT_END over a switch)
 * that sk_repeat runs on shard 0, so it reads top to bottom although any
 * mc_exec may wait for another shard.  State that lives across an AWAIT is
 * kept in struct t, never in locals.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/shard.h"
#include "skerry/timer.h"
#include "store.h"

#define MAXREQ 1024

struct t {
	int pc;			/* protothread resume point */
	unsigned n, last;	/* queued requests; requests of the last run */
	struct mc_req *req;
	struct mc_res *res;
	sk_future (*body)(void *arg);
	uint64_t budget;
	unsigned nshards;
	unsigned i, j, k;	/* loop counters kept across AWAIT */
	uint64_t u[8];		/* scratch kept across AWAIT */
	uint64_t *cas;		/* scratch array (cas uniqueness) */
	struct mc_stats st;
	int err;
};

static sk_future to_zero(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_make_ready(SK_CONTINUE);
}

#define PT_BEGIN(t) switch ((t)->pc) { case 0:
#define AWAIT(t, f)                                                            \
	do {                                                                   \
		(t)->pc = __LINE__;                                            \
		return sk_future_then((f), to_zero, NULL);                     \
	case __LINE__:;                                                        \
	} while (0)
#define PT_END(t)                                                              \
	}                                                                      \
	(t)->pc = -1;                                                          \
	return sk_make_ready(SK_STOP)

/* ---- request helpers ---------------------------------------------------- */

static const char *kf(const char *fmt, unsigned i)
{
	static _Thread_local char buf[8][64];
	static _Thread_local unsigned next;
	char *b = buf[next++ % 8];
	snprintf(b, 64, fmt, i);
	return b;
}

static struct mc_req *q(struct t *t, uint8_t op, const char *key)
{
	struct mc_req *r = &t->req[t->n++];
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->nkey = (uint8_t)strlen(key);
	memcpy(r->key, key, r->nkey);
	return r;
}

static struct mc_item *mkitem(const char *key, const char *val, uint32_t flags,
			      uint32_t exptime)
{
	int err;
	size_t n = strlen(val);
	struct mc_item *it = mc_item_new(key, (unsigned)strlen(key), flags, exptime,
					 (uint32_t)n, &err);
	if (!it) {
		fprintf(stderr, "mc_item_new: %d\n", err);
		abort();
	}
	memcpy(mc_item_value(it), val, n);
	return it;
}

static struct mc_req *q_store(struct t *t, uint8_t mode, const char *key,
			      const char *val, uint32_t flags, uint32_t exptime)
{
	struct mc_req *r = q(t, MC_OP_STORE, key);
	r->mode = mode;
	r->item = mkitem(key, val, flags, exptime);
	return r;
}

static struct mc_req *q_set(struct t *t, const char *key, const char *val)
{
	return q_store(t, MC_SET, key, val, 0, 0);
}

static struct mc_req *q_get(struct t *t, const char *key)
{
	return q(t, MC_OP_GET, key);
}

static struct mc_req *q_arith(struct t *t, const char *key, uint8_t mode,
			      uint64_t delta)
{
	struct mc_req *r = q(t, MC_OP_ARITH, key);
	r->mode = mode;
	r->delta = delta;
	return r;
}

static void release_res(struct t *t)
{
	for (unsigned i = 0; i < t->last; i++)
		if (t->res[i].item) {
			mc_item_put(t->res[i].item);
			t->res[i].item = NULL;
		}
	t->last = 0;
}

static sk_future run(struct t *t)
{
	release_res(t);
	t->last = t->n;
	t->n = 0;
	return mc_exec(t->req, t->res, t->last);
}

static sk_future gather(struct t *t)
{
	release_res(t);
	return mc_stats_gather(&t->st);
}

static bool is_val(const struct mc_res *r, const char *v)
{
	size_t n = strlen(v);
	return r->status == MC_OK && r->item && r->item->nbytes == n &&
	       memcmp(mc_item_value(r->item), v, n) == 0 &&
	       memcmp(mc_item_value(r->item) + n, "\r\n", 2) == 0;
}

static unsigned owner_of(const char *key)
{
	return sk_shard_of_hash(mc_key_hash(key, (unsigned)strlen(key)),
				sk_shard_count());
}

/* ---- running a scenario ---------------------------------------------------- */

static sk_future init_one(void *arg)
{
	memset(mc_stats_local(), 0, sizeof(struct mc_stats));
	return sk_make_ready(mc_store_init(*(uint64_t *)arg));
}

static sk_future fini_one(void *arg)
{
	(void)arg;
	mc_store_fini();
	/* Everything the store held was dropped with it. */
	return sk_make_ready(mc_stats_local()->curr_items == 0 &&
			     mc_stats_local()->bytes == 0 ? 0 : -EBADMSG);
}

static sk_future start_body(void *arg, int64_t v)
{
	struct t *t = arg;
	(void)v;
	return sk_repeat(t->body, t);
}

static sk_future status_of(void *arg, int64_t v, int err)
{
	struct t *t = arg;
	(void)v;
	if (err)
		fprintf(stderr, "  store fini: %d\n", err);
	return sk_make_ready(t->err || err ? 1 : 0);
}

static sk_future body_done(void *arg, int64_t v, int err)
{
	struct t *t = arg;
	(void)v;
	release_res(t);
	for (unsigned i = 0; i < t->n; i++)	/* queued, never run */
		if (t->req[i].item)
			mc_item_put(t->req[i].item);
	t->n = 0;
	if (err)
		fprintf(stderr, "  scenario failed: %d\n", err);
	t->err = err;
	return sk_future_then_wrapped(sk_invoke_on_all(fini_one, NULL), status_of, t);
}

static sk_future tmain(void *arg)
{
	struct t *t = arg;
	sk_future f = sk_future_then(sk_invoke_on_all(init_one, &t->budget),
				     start_body, t);
	return sk_future_then_wrapped(f, body_done, t);
}

static int scenario(unsigned nshards, uint64_t budget, sk_future (*body)(void *))
{
	struct t *t = calloc(1, sizeof(*t));
	t->req = calloc(MAXREQ, sizeof(*t->req));
	t->res = calloc(MAXREQ, sizeof(*t->res));
	t->body = body;
	t->budget = budget;
	t->nshards = nshards;
	mc_settings = (struct mc_settings){ .cas_enabled = true,
					    .item_size_max = 1024 * 1024 };
	int rc = sk_test_run(nshards, tmain, t);
	if (t->pc != -1) {
		fprintf(stderr, "  scenario stopped at line %d\n", t->pc);
		rc = rc ? rc : 1;
	}
	free(t->cas);
	free(t->req);
	free(t->res);
	free(t);
	return rc;
}

#define BOTH(name, budget, body)                                               \
	SK_TEST(name)                                                          \
	{                                                                      \
		CHECK_EQ(scenario(1, budget, body), 0);                        \
		CHECK_EQ(scenario(2, budget, body), 0);                        \
	}

/* ---- basic operations --------------------------------------------------- */

static sk_future body_basic(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	/* 64 keys: on 2 shards both own some, and one batch crosses shards. */
	for (t->i = 0; t->i < 64; t->i++)
		q_store(t, MC_SET, kf("key%u", t->i), kf("val%u", t->i), t->i, 0);
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 64; t->i++) {
		CHECK_EQ(t->res[t->i].status, MC_OK);
		CHECK(t->res[t->i].cas != 0);
		CHECK(t->res[t->i].item == NULL);
	}
	t->u[0] = 0;
	for (t->i = 0; t->i < 64; t->i++)
		t->u[0] |= 1u << owner_of(kf("key%u", t->i));
	CHECK_EQ(t->u[0], t->nshards == 2 ? 3 : 1);

	for (t->i = 0; t->i < 64; t->i++)
		q_get(t, kf("key%u", t->i));
	q_get(t, "nokey");
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 64; t->i++) {
		CHECK(is_val(&t->res[t->i], kf("val%u", t->i)));
		CHECK_EQ(t->res[t->i].item->client_flags, t->i);
		CHECK_EQ(t->res[t->i].ttl, -1);
	}
	CHECK_EQ(t->res[64].status, MC_MISS);
	CHECK(t->res[64].item == NULL);

	/* add / replace */
	q_store(t, MC_ADD, "key1", "x", 0, 0);
	q_store(t, MC_ADD, "new1", "n1", 0, 0);
	q_store(t, MC_REPLACE, "none", "x", 0, 0);
	q_store(t, MC_REPLACE, "key2", "r2", 9, 0);
	q_get(t, "key1");
	q_get(t, "new1");
	q_get(t, "none");
	q_get(t, "key2");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_NOT_STORED);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK_EQ(t->res[2].status, MC_NOT_STORED);
	CHECK_EQ(t->res[3].status, MC_OK);
	CHECK(is_val(&t->res[4], "val1"));
	CHECK(is_val(&t->res[5], "n1"));
	CHECK_EQ(t->res[6].status, MC_MISS);
	CHECK(is_val(&t->res[7], "r2"));
	CHECK_EQ(t->res[7].item->client_flags, 9);
	t->u[1] = t->res[7].cas;

	/* cas: mismatch, match, missing */
	q_store(t, MC_SET, "key2", "bad", 0, 0)->cas = t->u[1] + 64;
	q_store(t, MC_SET, "key2", "good", 0, 0)->cas = t->u[1];
	q_store(t, MC_SET, "gone", "x", 0, 0)->cas = 77;
	q_store(t, MC_REPLACE, "key2", "again", 0, 0)->cas = t->u[1];
	q_get(t, "key2");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_EXISTS);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK(t->res[1].cas != t->u[1]);
	CHECK_EQ(t->res[2].status, MC_MISS);
	CHECK_EQ(t->res[3].status, MC_EXISTS);	/* cas changed by the set */
	CHECK(is_val(&t->res[4], "good"));
	CHECK_EQ(t->res[4].cas, t->res[1].cas);

	/* delete, touch */
	q(t, MC_OP_DELETE, "key3");
	q(t, MC_OP_DELETE, "key3");
	q_get(t, "key3");
	q(t, MC_OP_TOUCH, "key4")->exptime = mc_exptime(100);
	q(t, MC_OP_TOUCH, "key3")->exptime = mc_exptime(100);
	q_get(t, "key4");
	q(t, MC_OP_DELETE, "key5")->cas = 1;	/* md with a wrong cas */
	q_get(t, "key5");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[1].status, MC_MISS);
	CHECK_EQ(t->res[2].status, MC_MISS);
	CHECK_EQ(t->res[3].status, MC_OK);
	CHECK_EQ(t->res[4].status, MC_MISS);
	CHECK(t->res[5].ttl >= 99 && t->res[5].ttl <= 100);
	CHECK_EQ(t->res[6].status, MC_EXISTS);
	CHECK(is_val(&t->res[7], "val5"));

	AWAIT(t, gather(t));
	CHECK_EQ(t->st.curr_items, 64 + 1 - 1);
	CHECK_EQ(t->st.total_items, 64 + 1 + 1 + 1);
	CHECK_EQ(t->st.get_hits, 64 + 3 + 1 + 1 + 1);
	CHECK_EQ(t->st.get_misses, 1 + 1 + 1);
	CHECK_EQ(t->st.cas_hits, 1);
	CHECK_EQ(t->st.cas_badval, 2);
	CHECK_EQ(t->st.cas_misses, 1);
	CHECK_EQ(t->st.delete_hits, 1);
	CHECK_EQ(t->st.delete_misses, 1);
	CHECK_EQ(t->st.touch_hits, 1);
	CHECK_EQ(t->st.touch_misses, 1);
	CHECK(t->st.bytes > 63 * 64);
	CHECK_EQ(t->st.hash_power_level, 16);
	CHECK_EQ(t->st.hash_bytes, t->nshards * 65536 * sizeof(void *));
	CHECK_EQ(t->st.hash_is_expanding, 0);

	/* stats reset keeps the gauges */
	AWAIT(t, mc_stats_reset());
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.get_hits, 0);
	CHECK_EQ(t->st.total_items, 0);
	CHECK_EQ(t->st.curr_items, 64);
	CHECK(t->st.bytes > 0);
	PT_END(t);
}
BOTH(basic_operations, 0, body_basic)

/* ---- cas -------------------------------------------------------------- */

static sk_future body_cas_unique(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	t->cas = calloc(4000, sizeof(uint64_t));
	for (t->j = 0; t->j < 4; t->j++) {
		for (t->i = 0; t->i < 1000; t->i++)
			q_set(t, kf("c%u", t->j * 1000 + t->i), "v");
		AWAIT(t, run(t));
		for (t->i = 0; t->i < 1000; t->i++) {
			CHECK_EQ(t->res[t->i].status, MC_OK);
			t->cas[t->j * 1000 + t->i] = t->res[t->i].cas;
			CHECK_EQ(t->res[t->i].cas & 63,
				 owner_of(kf("c%u", t->j * 1000 + t->i)));
		}
	}
	/* all distinct */
	for (t->i = 0; t->i < 4000; t->i++)
		for (t->j = t->i + 1; t->j < 4000; t->j++)
			if (t->cas[t->i] == t->cas[t->j]) {
				CHECK(t->cas[t->i] != t->cas[t->j]);
				t->j = t->i = 4000;
			}
	/* E: the client's cas */
	q_set(t, "e1", "v")->flags = MC_RF_NEWCAS;
	t->req[0].new_cas = 123456789;
	q_get(t, "e1");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].cas, 123456789);
	CHECK_EQ(t->res[1].cas, 123456789);
	PT_END(t);
}
BOTH(cas_unique_across_shards, 0, body_cas_unique)

static sk_future body_cas_off(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	mc_settings.cas_enabled = false;
	q_set(t, "a", "1");
	q_get(t, "a");
	q_arith(t, "a", MC_INCR, 1);
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[0].cas, 0);
	CHECK_EQ(t->res[1].cas, 0);
	CHECK_EQ(t->res[2].cas, 0);
	CHECK_EQ(t->res[2].value, 2);
	/* flush without cas still kills what was stored before */
	AWAIT(t, mc_flush_all(0));
	q_get(t, "a");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_MISS);
	mc_settings.cas_enabled = true;
	PT_END(t);
}
BOTH(cas_disabled_gives_zero, 0, body_cas_off)

/* ---- expiry ------------------------------------------------------------- */

static sk_future sweep_one(void *arg)
{
	(void)arg;
	mc_store_sweep_local(UINT64_MAX);
	return sk_make_ready(0);
}

static sk_future body_expiry(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	CHECK_EQ(mc_exptime(0), 0);
	CHECK_EQ(mc_exptime(-1), 1);
	CHECK_EQ(mc_exptime(10), mc_now() + 10);
	CHECK_EQ(mc_exptime(60 * 60 * 24 * 30 + 1), 1);	/* 1970: the past */
	q_store(t, MC_SET, "short", "s", 0, mc_exptime(2));
	q_store(t, MC_SET, "never", "n", 0, 0);
	q_store(t, MC_SET, "neg", "x", 0, mc_exptime(-1));
	q_store(t, MC_SET, "tch", "t", 0, mc_exptime(2));
	q_store(t, MC_SET, "gat", "g", 0, mc_exptime(2));
	AWAIT(t, run(t));
	q_get(t, "short");
	q_get(t, "neg");
	q(t, MC_OP_TOUCH, "tch")->exptime = mc_exptime(100);
	q_get(t, "gat")->flags = MC_RF_TOUCH;
	t->req[3].exptime = 0;
	AWAIT(t, run(t));
	CHECK(is_val(&t->res[0], "s"));
	CHECK(t->res[0].ttl >= 1 && t->res[0].ttl <= 2);
	CHECK_EQ(t->res[1].status, MC_MISS);
	CHECK_EQ(t->res[2].status, MC_OK);
	CHECK(is_val(&t->res[3], "g"));
	CHECK_EQ(t->res[3].ttl, -1);
	mc_time_advance(3);
	q_get(t, "short");
	q_get(t, "never");
	q_get(t, "tch");
	q_get(t, "gat");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_MISS);
	CHECK(is_val(&t->res[1], "n"));
	CHECK(is_val(&t->res[2], "t"));
	CHECK(is_val(&t->res[3], "g"));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.get_expired, 2);
	CHECK_EQ(t->st.touch_hits, 2);
	CHECK_EQ(t->st.curr_items, 3);

	/* the background sweep, run now: 300 never-fetched items expire */
	for (t->i = 0; t->i < 300; t->i++)
		q_store(t, MC_SET, kf("sw%u", t->i), "v", 0, mc_exptime(2));
	AWAIT(t, run(t));
	mc_time_advance(3);
	AWAIT(t, sk_invoke_on_all(sweep_one, NULL));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.reclaimed, 300);
	CHECK_EQ(t->st.expired_unfetched, 300);
	CHECK_EQ(t->st.curr_items, 3);

	/* ...and by the timer alone (a full pass is ~330 ms per shard) */
	for (t->i = 0; t->i < 300; t->i++)
		q_store(t, MC_SET, kf("tm%u", t->i), "v", 0, mc_exptime(2));
	q_get(t, "tm0");
	AWAIT(t, run(t));
	mc_time_advance(3);
	AWAIT(t, sk_sleep(700 * SK_NSEC_PER_MSEC));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.reclaimed, 600);
	CHECK_EQ(t->st.expired_unfetched, 599);
	CHECK_EQ(t->st.curr_items, 3);
	PT_END(t);
}
BOTH(expiry_lazy_and_background, 0, body_expiry)

/* ---- growth ----------------------------------------------------------- */

#define GROW_N 210000u

static sk_future body_growth(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	t->u[0] = 0;	/* batches that ended with a table growing */
	t->u[1] = 0;	/* full checks done while growing */
	for (t->j = 0; t->j < GROW_N; t->j += 1000) {
		for (t->i = 0; t->i < 1000; t->i++)
			q_set(t, kf("g%07u", t->j + t->i), kf("%u", t->j + t->i));
		AWAIT(t, run(t));
		for (t->i = 0; t->i < 1000; t->i++)
			CHECK_EQ(t->res[t->i].status, MC_OK);
		AWAIT(t, gather(t));
		if (!t->st.hash_is_expanding)
			continue;
		t->u[0]++;
		if (t->u[0] > 1 && t->u[2] == t->st.hash_power_level)
			continue;
		/* Growth just began: every key so far must be found. */
		t->u[2] = t->st.hash_power_level;
		t->u[1]++;
		for (t->k = 0; t->k < t->j + 1000; t->k += 1000) {
			for (t->i = 0; t->i < 1000; t->i++)
				q_get(t, kf("g%07u", t->k + t->i));
			AWAIT(t, run(t));
			for (t->i = 0; t->i < 1000; t->i++)
				CHECK(is_val(&t->res[t->i], kf("%u", t->k + t->i)));
		}
	}
	CHECK(t->u[0] >= 1);
	CHECK(t->u[1] >= 1);
	/* let the timer finish any growth, then check everything again */
	AWAIT(t, sk_invoke_on_all(sweep_one, NULL));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.hash_is_expanding, 0);
	CHECK_EQ(t->st.curr_items, GROW_N);
	CHECK_EQ(t->st.hash_power_level, t->nshards == 1 ? 18 : 17);
	for (t->k = 0; t->k < GROW_N; t->k += 1000) {
		for (t->i = 0; t->i < 1000; t->i++)
			q_get(t, kf("g%07u", t->k + t->i));
		AWAIT(t, run(t));
		for (t->i = 0; t->i < 1000; t->i++)
			CHECK(is_val(&t->res[t->i], kf("%u", t->k + t->i)));
	}
	PT_END(t);
}
BOTH(incremental_growth_keeps_every_key, 0, body_growth)

/* ---- eviction ----------------------------------------------------------- */

#define EV_BUDGET (256u * 1024)
static char bigval[300 * 1024 + 1];	/* more than EV_BUDGET */

static sk_future body_evict(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	for (t->j = 0; t->j < 8000; t->j += 1000) {
		for (t->i = 0; t->i < 1000; t->i++)
			q_set(t, kf("ev%u", t->j + t->i),
			      "0123456789012345678901234567890123456789"
			      "0123456789012345678901234567890123456789"
			      "0123456789012345678901234567890123456789");
		AWAIT(t, run(t));
		for (t->i = 0; t->i < 1000; t->i++)
			CHECK_EQ(t->res[t->i].status, MC_OK);
	}
	AWAIT(t, gather(t));
	CHECK(t->st.evictions > 0);
	CHECK(t->st.bytes <= (uint64_t)EV_BUDGET * t->nshards);
	CHECK(t->st.bytes > (uint64_t)EV_BUDGET * t->nshards * 9 / 10);
	CHECK_EQ(t->st.curr_items, 8000 - t->st.evictions);
	CHECK_EQ(t->st.evicted_unfetched, t->st.evictions);
	CHECK_EQ(t->st.limit_maxbytes, (uint64_t)EV_BUDGET * t->nshards);
	t->u[0] = t->st.curr_items;
	t->u[1] = 0;
	/* exactly the survivors are found, and the newest survived */
	for (t->j = 0; t->j < 8000; t->j += 1000) {
		for (t->i = 0; t->i < 1000; t->i++)
			q_get(t, kf("ev%u", t->j + t->i));
		AWAIT(t, run(t));
		for (t->i = 0; t->i < 1000; t->i++) {
			t->u[1] += t->res[t->i].status == MC_OK;
			if (t->j == 7000 && t->i >= 900)
				CHECK_EQ(t->res[t->i].status, MC_OK);
		}
	}
	CHECK_EQ(t->u[1], t->u[0]);
	/* larger than the whole budget: out of memory, nothing evicted */
	q_set(t, "huge", bigval);
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_NOMEM);
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.curr_items, t->u[0]);
	PT_END(t);
}

SK_TEST(eviction_under_budget)
{
	memset(bigval, 'b', sizeof(bigval) - 1);
	CHECK_EQ(scenario(1, EV_BUDGET, body_evict), 0);
	CHECK_EQ(scenario(2, EV_BUDGET, body_evict), 0);
}

/* An item read since it last moved gets a second chance at the tail. */
static sk_future body_lru(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	for (t->i = 0; t->i < 50; t->i++)
		q_set(t, kf("lru%u", t->i), "0123456789012345678901234567890123456789");
	AWAIT(t, run(t));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.evictions, 0);
	t->u[0] = t->st.bytes / 50;	/* bytes per item */
	q_get(t, "lru0");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	/* room for (budget - bytes) / per more; push 30 items past that */
	t->k = (unsigned)((4096 * 2 - t->st.bytes) / t->u[0]) + 30;
	for (t->i = 0; t->i < t->k; t->i++)
		q_set(t, kf("more%u", t->i), "0123456789012345678901234567890123456789");
	AWAIT(t, run(t));
	q_get(t, "lru0");
	q_get(t, "lru1");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[1].status, MC_MISS);
	AWAIT(t, gather(t));
	CHECK(t->st.evictions >= 30);
	CHECK_EQ(t->st.evicted_unfetched, t->st.evictions);
	PT_END(t);
}

SK_TEST(lru_second_chance_for_read_items)
{
	CHECK_EQ(scenario(1, 4096 * 2, body_lru), 0);
}

/* ---- flush_all -------------------------------------------------------- */

static sk_future body_flush(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	for (t->i = 0; t->i < 20; t->i++)
		q_set(t, kf("f%u", t->i), "v");
	AWAIT(t, run(t));
	AWAIT(t, mc_flush_all(0));
	/* stored after the flush, in the same second: alive (cas rule) */
	q_set(t, "after", "a");
	AWAIT(t, run(t));
	/* a later second with a small client cas (meta E): alive too (stock
	 * would take it for flushed) */
	mc_time_advance(1);
	q_set(t, "small", "e")->flags = MC_RF_NEWCAS;
	t->req[0].new_cas = 1;
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 20; t->i++)
		q_get(t, kf("f%u", t->i));
	q_get(t, "after");
	q_get(t, "small");
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 20; t->i++)
		CHECK_EQ(t->res[t->i].status, MC_MISS);
	CHECK(is_val(&t->res[20], "a"));
	CHECK(is_val(&t->res[21], "e"));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.get_flushed, 20);
	CHECK_EQ(t->st.curr_items, 2);

	/* delayed: alive until the time comes */
	for (t->i = 0; t->i < 20; t->i++)
		q_set(t, kf("d%u", t->i), "v");
	AWAIT(t, run(t));
	AWAIT(t, mc_flush_all(mc_now() + 3));
	for (t->i = 0; t->i < 20; t->i++)
		q_get(t, kf("d%u", t->i));
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 20; t->i++)
		CHECK(is_val(&t->res[t->i], "v"));
	mc_time_advance(4);
	q_set(t, "later", "l");
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 20; t->i++)
		q_get(t, kf("d%u", t->i));
	q_get(t, "after");
	q_get(t, "later");
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 20; t->i++)
		CHECK_EQ(t->res[t->i].status, MC_MISS);
	CHECK_EQ(t->res[20].status, MC_MISS);
	CHECK(is_val(&t->res[21], "l"));

	/* the sweep reclaims flushed items too */
	for (t->i = 0; t->i < 50; t->i++)
		q_set(t, kf("s%u", t->i), "v");
	AWAIT(t, run(t));
	AWAIT(t, mc_flush_all(0));
	AWAIT(t, sk_invoke_on_all(sweep_one, NULL));
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.curr_items, 0);
	CHECK_EQ(t->st.bytes, 0);
	PT_END(t);
}
BOTH(flush_all_now_and_delayed, 0, body_flush)

/* ---- append / prepend ----------------------------------------------------- */

static sk_future body_append(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	q_store(t, MC_SET, "a", "mid", 7, mc_exptime(100));
	q_store(t, MC_APPEND, "a", "_end", 1, 0);
	q_store(t, MC_PREPEND, "a", "start_", 2, 0);
	q_store(t, MC_APPEND, "none", "x", 0, 0);
	q_store(t, MC_PREPEND, "none", "x", 0, 0);
	q_get(t, "a");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK_EQ(t->res[2].status, MC_OK);
	CHECK_EQ(t->res[3].status, MC_NOT_STORED);
	CHECK_EQ(t->res[4].status, MC_NOT_STORED);
	CHECK(is_val(&t->res[5], "start_mid_end"));
	CHECK_EQ(t->res[5].item->client_flags, 7);
	CHECK(t->res[5].ttl >= 99 && t->res[5].ttl <= 100);
	t->u[0] = t->res[5].cas;
	q_store(t, MC_APPEND, "a", "!", 0, 0)->cas = t->u[0] + 64;
	q_store(t, MC_APPEND, "a", "?", 0, 0)->cas = t->u[0];
	q_get(t, "a");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_EXISTS);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK(is_val(&t->res[2], "start_mid_end?"));

	/* past -I: too large, the old value stays */
	mc_settings.item_size_max = 1024;
	q_set(t, "big", bigval + sizeof(bigval) - 1 - 600);
	q_store(t, MC_APPEND, "big", bigval + sizeof(bigval) - 1 - 600, 0, 0);
	q_get(t, "big");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[1].status, MC_TOO_LARGE);
	CHECK(t->res[2].status == MC_OK && t->res[2].item->nbytes == 600);
	{
		int err = 0;
		CHECK(mc_item_new("k", 1, 0, 0, 1024, &err) == NULL);
		CHECK_EQ(err, -E2BIG);
		struct mc_item *it = mc_item_new("k", 1, 0, 0,
						 1024 - MC_ITEM_OVERHEAD - 1 - 2, &err);
		CHECK(it != NULL);
		if (it)
			mc_item_put(it);
	}
	mc_settings.item_size_max = 1024 * 1024;
	PT_END(t);
}

SK_TEST(append_prepend)
{
	memset(bigval, 'b', sizeof(bigval) - 1);
	CHECK_EQ(scenario(1, 0, body_append), 0);
	CHECK_EQ(scenario(2, 0, body_append), 0);
}

/* ---- incr / decr --------------------------------------------------------- */

static sk_future body_arith(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	q_store(t, MC_SET, "n", "1", 5, 0);
	q_arith(t, "n", MC_INCR, 1);
	q_arith(t, "n", MC_INCR, 8);
	q_get(t, "n");
	q_arith(t, "n", MC_DECR, 1);
	q_get(t, "n");
	q_arith(t, "n", MC_DECR, 100);
	q_get(t, "n");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[1].value, 2);
	CHECK(is_val(&t->res[1], "2"));		/* res.item is the new value */
	CHECK_EQ(t->res[2].value, 10);
	CHECK(is_val(&t->res[3], "10"));
	CHECK_EQ(t->res[3].item->client_flags, 5);
	CHECK_EQ(t->res[4].value, 9);
	CHECK(is_val(&t->res[5], "9"));		/* shorter: a new item */
	CHECK_EQ(t->res[6].value, 0);		/* decr floors at 0 */
	CHECK(is_val(&t->res[7], "0"));
	CHECK_EQ(t->res[6].cas, t->res[7].cas);

	q_set(t, "w", "18446744073709551615");
	q_arith(t, "w", MC_INCR, 1);
	q_arith(t, "w", MC_INCR, 5);
	q_set(t, "over", "18446744073709551616");
	q_arith(t, "over", MC_INCR, 1);
	q_set(t, "twenty", "09999999999999999999");
	q_arith(t, "twenty", MC_INCR, 1);
	q_set(t, "abc", "abc");
	q_arith(t, "abc", MC_INCR, 1);
	q_set(t, "empty", "");
	q_arith(t, "empty", MC_INCR, 1);
	q_set(t, "neg", "-1");
	q_arith(t, "neg", MC_DECR, 1);
	q_set(t, "sp", " 12 ");
	q_arith(t, "sp", MC_INCR, 1);
	q_set(t, "tail", "12abc");
	q_arith(t, "tail", MC_INCR, 1);
	q_arith(t, "missing", MC_INCR, 1);
	q_arith(t, "missing", MC_DECR, 1);
	AWAIT(t, run(t));
	CHECK_EQ(t->res[1].value, 0);		/* wraps at 2^64 */
	CHECK_EQ(t->res[2].value, 5);
	CHECK(is_val(&t->res[2], "5"));
	CHECK_EQ(t->res[4].status, MC_NON_NUMERIC);
	CHECK(is_val(&t->res[6], "10000000000000000000"));
	CHECK_EQ(t->res[8].status, MC_NON_NUMERIC);
	CHECK_EQ(t->res[10].status, MC_NON_NUMERIC);
	CHECK_EQ(t->res[12].status, MC_NON_NUMERIC);
	CHECK_EQ(t->res[14].value, 13);
	CHECK_EQ(t->res[16].status, MC_NON_NUMERIC);
	CHECK_EQ(t->res[17].status, MC_MISS);
	CHECK_EQ(t->res[18].status, MC_MISS);
	CHECK(t->res[17].item == NULL);

	/* ma N (vivify with initial), ma T, cas */
	q_arith(t, "viv", MC_INCR, 1)->flags = MC_RF_VIVIFY;
	t->req[0].initial = 42;
	t->req[0].viv_exptime = mc_exptime(50);
	q_arith(t, "viv", MC_INCR, 1);
	q_arith(t, "viv", MC_INCR, 1)->flags = MC_RF_ARITHTTL;
	t->req[2].exptime = mc_exptime(500);
	q_get(t, "viv");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[0].value, 42);
	CHECK(is_val(&t->res[0], "42"));
	CHECK(t->res[0].ttl >= 49 && t->res[0].ttl <= 50);
	CHECK_EQ(t->res[1].value, 43);
	CHECK(t->res[1].ttl >= 49 && t->res[1].ttl <= 50);
	CHECK_EQ(t->res[2].value, 44);
	CHECK(t->res[3].ttl >= 499 && t->res[3].ttl <= 500);
	t->u[0] = t->res[3].cas;
	q_arith(t, "viv", MC_INCR, 1)->cas = t->u[0] + 64;
	q_arith(t, "viv", MC_INCR, 1)->cas = t->u[0];
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_EXISTS);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK_EQ(t->res[1].value, 45);
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.incr_hits, 2 + 2 + 1 + 1 + 3);
	CHECK_EQ(t->st.decr_hits, 2);
	CHECK_EQ(t->st.incr_misses, 2);
	CHECK_EQ(t->st.decr_misses, 1);
	PT_END(t);
}
BOTH(incr_decr_edges, 0, body_arith)

/* ---- meta: vivify, recache, stale, win ------------------------------------ */

static sk_future body_meta(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	/* mg N: the first miss wins and gets an empty item */
	q_get(t, "v")->flags = MC_RF_VIVIFY;
	t->req[0].viv_exptime = mc_exptime(30);
	q_get(t, "v")->flags = MC_RF_VIVIFY;
	t->req[1].viv_exptime = mc_exptime(30);
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK_EQ(t->res[0].rflags, MC_RES_WIN);
	CHECK(is_val(&t->res[0], ""));
	CHECK(t->res[0].ttl >= 29 && t->res[0].ttl <= 30);
	CHECK_EQ(t->res[1].status, MC_OK);
	CHECK_EQ(t->res[1].rflags, MC_RES_WONBY | MC_RES_HIT);

	/* mg R: win when less TTL is left than asked, once */
	q_store(t, MC_SET, "r", "val", 0, mc_exptime(10));
	q_get(t, "r")->flags = MC_RF_RECACHE;
	t->req[1].recache = 5;
	q_get(t, "r")->flags = MC_RF_RECACHE;
	t->req[2].recache = 30;
	q_get(t, "r")->flags = MC_RF_RECACHE;
	t->req[3].recache = 30;
	AWAIT(t, run(t));
	CHECK_EQ(t->res[1].rflags, 0);
	CHECK_EQ(t->res[2].rflags, MC_RES_WIN | MC_RES_HIT);
	CHECK_EQ(t->res[3].rflags, MC_RES_WONBY | MC_RES_HIT);

	/* md I: kept as stale with a new cas; the first reader wins */
	q_set(t, "s", "old");
	q_get(t, "s");
	AWAIT(t, run(t));
	t->u[0] = t->res[1].cas;
	q(t, MC_OP_DELETE, "s")->flags = MC_RF_INVAL | MC_RF_DELTTL;
	t->req[0].exptime = mc_exptime(30);
	q_get(t, "s");
	q_get(t, "s");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK(t->res[0].cas != t->u[0]);
	t->u[1] = t->res[0].cas;
	CHECK(is_val(&t->res[1], "old"));
	CHECK_EQ(t->res[1].rflags, MC_RES_STALE | MC_RES_WIN | MC_RES_HIT);
	CHECK(t->res[1].ttl >= 29 && t->res[1].ttl <= 30);
	CHECK_EQ(t->res[2].rflags, MC_RES_STALE | MC_RES_WONBY | MC_RES_HIT);
	CHECK_EQ(t->res[1].cas, t->u[1]);

	/* ms I with the older cas: stored, still stale, keeps the win */
	q_set(t, "s", "new")->flags = MC_RF_INVAL;
	t->req[0].cas = t->u[0];
	q_get(t, "s");
	/* a plain mismatch without I is refused */
	q_set(t, "s", "bad")->cas = t->u[0];
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK(is_val(&t->res[1], "new"));
	CHECK_EQ(t->res[1].rflags, MC_RES_STALE | MC_RES_WONBY);
	CHECK(t->res[1].ttl >= 29 && t->res[1].ttl <= 30);
	CHECK_EQ(t->res[2].status, MC_EXISTS);
	t->u[2] = t->res[1].cas;
	/* the winner's set with the current cas makes it fresh */
	q_set(t, "s", "fresh")->cas = t->u[2];
	q_get(t, "s");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].status, MC_OK);
	CHECK(is_val(&t->res[1], "fresh"));
	CHECK_EQ(t->res[1].rflags, 0);
	CHECK_EQ(t->res[1].ttl, -1);

	/* h and l: fetched before, seconds since the last access */
	q_set(t, "h", "x");
	q_get(t, "h");
	AWAIT(t, run(t));
	CHECK_EQ(t->res[1].rflags, 0);
	CHECK_EQ(t->res[1].last_access, 0);
	mc_time_advance(5);
	q_get(t, "h");
	q_get(t, "h")->flags = MC_RF_NOBUMP;
	AWAIT(t, run(t));
	CHECK_EQ(t->res[0].rflags, MC_RES_HIT);
	CHECK_EQ(t->res[0].last_access, 5);
	CHECK_EQ(t->res[1].last_access, 0);
	PT_END(t);
}
BOTH(meta_vivify_recache_stale_win, 0, body_meta)

/* ---- concurrent cross-shard traffic ------------------------------------- */

#define ST_SHARDS 3
#define ST_ROUNDS 400
#define ST_BATCH 16
#define ST_KEYS 24

struct stress {
	_Alignas(64) struct mc_req req[ST_BATCH];
	struct mc_res res[ST_BATCH];
	unsigned round;
	uint64_t rng;
	int bad;
};
static struct stress sts[ST_SHARDS];

static sk_future stress_check(void *arg, int64_t v)
{
	struct stress *s = arg;
	(void)v;
	for (unsigned i = 0; i < ST_BATCH; i++) {
		s->bad += s->res[i].status != MC_OK;
		if (s->res[i].item)
			mc_item_put(s->res[i].item);
	}
	return sk_make_ready(++s->round >= ST_ROUNDS ? SK_STOP : SK_CONTINUE);
}

static sk_future stress_round(void *arg)
{
	struct stress *s = arg;
	for (unsigned i = 0; i < ST_BATCH; i++) {
		struct mc_req *r = &s->req[i];
		s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
		memset(r, 0, offsetof(struct mc_req, key));
		snprintf(r->key, sizeof(r->key), "ctr%u",
			 (unsigned)(s->rng >> 33) % ST_KEYS);
		r->nkey = (uint8_t)strlen(r->key);
		r->op = MC_OP_ARITH;
		r->mode = MC_INCR;
		r->delta = 1;
		r->flags = MC_RF_VIVIFY;
		r->initial = 1;
	}
	return sk_future_then(mc_exec(s->req, s->res, ST_BATCH), stress_check, s);
}

static sk_future stress_shard(void *arg)
{
	struct stress *s = &sts[sk_shard_id()];
	(void)arg;
	s->rng = sk_shard_id() + 1;
	return sk_repeat(stress_round, s);
}

static sk_future body_stress(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	AWAIT(t, sk_invoke_on_all(stress_shard, NULL));
	for (t->i = 0; t->i < ST_KEYS; t->i++)
		q_get(t, kf("ctr%u", t->i));
	AWAIT(t, run(t));
	t->u[0] = 0;
	for (t->i = 0; t->i < ST_KEYS; t->i++)
		if (t->res[t->i].status == MC_OK)
			t->u[0] += strtoull(mc_item_value(t->res[t->i].item), NULL, 10);
	CHECK_EQ(t->u[0], (uint64_t)ST_SHARDS * ST_ROUNDS * ST_BATCH);
	for (t->i = 0; t->i < ST_SHARDS; t->i++)
		CHECK_EQ(sts[t->i].bad, 0);
	AWAIT(t, gather(t));
	CHECK_EQ(t->st.incr_hits + t->st.incr_misses,
		 (uint64_t)ST_SHARDS * ST_ROUNDS * ST_BATCH);
	CHECK_EQ(t->st.incr_misses, ST_KEYS);
	PT_END(t);
}

SK_TEST(concurrent_cross_shard_incr_exact)
{
	memset(sts, 0, sizeof(sts));
	CHECK_EQ(scenario(ST_SHARDS, 0, body_stress), 0);
}

/* ---- a shard whose store is gone (shutdown order) --------------------------- */

static sk_future fini_here(void *arg)
{
	(void)arg;
	mc_store_fini();
	return sk_make_ready(0);
}

static sk_future body_gone(void *arg)
{
	struct t *t = arg;
	PT_BEGIN(t);
	AWAIT(t, sk_submit_to(1, fini_here, NULL));
	for (t->i = 0; t->i < 64; t->i++)
		q_set(t, kf("gone%u", t->i), "v");
	for (t->i = 0; t->i < 64; t->i++)
		q_get(t, kf("gone%u", t->i));
	AWAIT(t, run(t));
	for (t->i = 0; t->i < 64; t->i++) {
		t->k = owner_of(kf("gone%u", t->i)) == 1;
		CHECK_EQ(t->res[t->i].status, t->k ? MC_NOMEM : MC_OK);
		CHECK_EQ(t->res[64 + t->i].status, t->k ? MC_MISS : MC_OK);
	}
	PT_END(t);
}

SK_TEST(requests_to_a_finished_store_are_answered)
{
	CHECK_EQ(scenario(2, 0, body_gone), 0);
}
