/*
 * engine.c - requests to the shards that own their keys, and the store's
 * whole-server operations (flush_all, stats).
 *
 * Roadmap:  mc_exec() hashes each key once.  One shard, or every key
 * local: the requests run in place and the future is ready (no
 * allocation: the hot path).  Otherwise one block holds a batch per owner
 * shard (the indexes of its requests) plus a promise; each remote batch is
 * one sk_submit_to() message, the local batch runs in place, and the
 * promise resolves when the last batch is back (a counter, no when_all, so
 * nothing can be left running against freed arrays).  While the requests
 * are in flight, res[i].value carries the key hash and res[i].status the
 * owner shard, so the owner does not hash again and no side array is
 * needed.
 *
 * mc_flush_all/mc_stats_* run on every shard with sk_invoke_on_all().
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "store.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/options.h"
#include "skerry/shard.h"

static _Thread_local struct mc_stats stats_tls;

struct mc_stats *mc_stats_local(void)
{
	return &stats_tls;
}

/* ---- mc_exec ------------------------------------------------------------- */

struct exec_ctx;

struct exec_batch {
	struct exec_ctx *ctx;
	uint32_t *idx;		/* indexes into req[]/res[] */
	uint32_t n;
	uint32_t shard;
};

struct exec_ctx {
	struct mc_req *req;
	struct mc_res *res;
	unsigned n;		/* requests */
	unsigned remaining;	/* batches still out, + 1 while sending */
	int err;
	struct sk_promise *p;
	unsigned nb;		/* batches, the local one (if any) last */
	struct exec_batch b[];	/* then the index array */
};

/* Run @n requests of one batch on the calling (owner) shard. */
static void run_batch(struct mc_req *req, struct mc_res *res,
		      const uint32_t *idx, uint32_t n)
{
	uint32_t now = mc_now();

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = idx[k];
		mc_store_run_local(&req[i], &res[i], res[i].value, now);
	}
}

/* Runs on the owner shard. */
static sk_future remote_batch(void *arg)
{
	struct exec_batch *b = arg;

	run_batch(b->ctx->req, b->ctx->res, b->idx, b->n);
	return sk_make_ready(0);
}

/* Requests that never ran: consume their items, leave a clean answer. */
static void unrun(struct mc_req *req, struct mc_res *res, const uint32_t *idx,
		  uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = idx ? idx[k] : k;
		if (req[i].op == MC_OP_STORE && req[i].item)
			mc_item_put(req[i].item);
		res[i] = (struct mc_res){ .status = MC_NOMEM, .ttl = -1 };
	}
}

static void exec_put(struct exec_ctx *c)
{
	if (--c->remaining)
		return;
	if (c->err) {
		/* The caller sees only the error: hold no references for it. */
		for (unsigned i = 0; i < c->n; i++)
			if (c->res[i].item) {
				mc_item_put(c->res[i].item);
				c->res[i].item = NULL;
			}
		sk_promise_set_error(c->p, c->err);
	} else {
		sk_promise_set_value(c->p, 0);
	}
	sk_free(c);
}

/* A remote batch is back (on the calling shard). */
static void batch_done(void *arg, int64_t v, int err)
{
	struct exec_batch *b = arg;
	struct exec_ctx *c = b->ctx;

	(void)v;
	if (err) {
		/* The message never ran (-ENOMEM, -ESHUTDOWN). */
		unrun(c->req, c->res, b->idx, b->n);
		if (!c->err)
			c->err = err;
	}
	exec_put(c);
}

static __attribute__((noinline)) sk_future exec_sharded(struct mc_req *req,
							 struct mc_res *res,
							 unsigned n, unsigned nsh)
{
	unsigned me = sk_shard_id(), nb = 0, nremote = 0;
	uint32_t count[SK_MAX_SHARDS] = { 0 };
	uint8_t slot[SK_MAX_SHARDS];
	struct exec_ctx *c;
	uint32_t *idx;
	sk_future out;

	for (unsigned i = 0; i < n; i++) {
		uint64_t hv = mc_key_hash(req[i].key, req[i].nkey);
		unsigned o = sk_shard_of_hash(hv, nsh);
		res[i].value = hv;
		res[i].status = (uint8_t)o;
		count[o]++;
		nremote += o != me;
	}
	if (!nremote) {
		uint32_t now = mc_now();
		for (unsigned i = 0; i < n; i++)
			mc_store_run_local(&req[i], &res[i], res[i].value, now);
		return sk_make_ready(0);
	}

	for (unsigned o = 0; o < nsh; o++)
		nb += count[o] != 0;
	c = sk_alloc(sizeof(*c) + nb * sizeof(c->b[0]) + n * sizeof(uint32_t));
	struct sk_promise *p = c ? sk_promise_new() : NULL;
	if (!p) {
		sk_free(c);
		unrun(req, res, NULL, n);
		return sk_make_error(-ENOMEM);
	}
	/* One count per remote batch, plus one held while sending. */
	*c = (struct exec_ctx){ .req = req, .res = res, .n = n, .p = p, .nb = nb,
				.remaining = 1 + nb - (count[me] != 0) };
	idx = (uint32_t *)&c->b[nb];
	/* Remote batches first, the local one last. */
	unsigned k = 0;
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned o = 0; o < nsh; o++) {
			if (!count[o] || (o == me) != (pass == 1))
				continue;
			c->b[k] = (struct exec_batch){ .ctx = c, .idx = idx,
						       .shard = o };
			slot[o] = (uint8_t)k++;
			idx += count[o];
		}
	for (unsigned i = 0; i < n; i++) {
		struct exec_batch *b = &c->b[slot[res[i].status]];
		b->idx[b->n++] = i;
	}

	out = sk_promise_future(p);
	for (k = 0; k < nb; k++) {
		struct exec_batch *b = &c->b[k];
		if (b->shard == me)
			run_batch(req, res, b->idx, b->n);
		else
			sk_future_on_done(sk_submit_to(b->shard, remote_batch, b),
					  batch_done, b);
	}
	exec_put(c);
	return out;
}

sk_future mc_exec(struct mc_req *req, struct mc_res *res, unsigned n)
{
	unsigned nsh = sk_shard_count();

	if (SK_LIKELY(nsh <= 1)) {
		uint32_t now = mc_now();
		for (unsigned i = 0; i < n; i++)
			mc_store_run_local(&req[i], &res[i],
					   mc_key_hash(req[i].key, req[i].nkey),
					   now);
		return sk_make_ready(0);
	}
	return exec_sharded(req, res, n, nsh);
}

/* ---- every shard ----------------------------------------------------------- */

static sk_future zero(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_make_ready(0);
}

static sk_future flush_one(void *arg)
{
	mc_store_flush_local((uint32_t)(uintptr_t)arg);
	return sk_make_ready(0);
}

sk_future mc_flush_all(uint32_t when)
{
	return sk_future_then(sk_invoke_on_all(flush_one, (void *)(uintptr_t)when),
			      zero, NULL);
}

struct gather {
	struct mc_stats *out;
	unsigned n;
	struct mc_stats per[];	/* one slot per shard, each written by its own */
};

static sk_future gather_one(void *arg)
{
	struct gather *g = arg;

	g->per[sk_shard_id()] = stats_tls;
	return sk_make_ready(0);
}

static sk_future gather_sum(void *arg, int64_t v, int err)
{
	struct gather *g = arg;
	struct mc_stats *o = g->out;

	(void)v;
	if (!err) {
		enum { N = sizeof(struct mc_stats) / sizeof(uint64_t) };
		_Static_assert(sizeof(struct mc_stats) == N * sizeof(uint64_t),
			       "struct mc_stats must be all uint64_t");
		uint64_t sum[N] = { 0 }, one[N];
		for (unsigned s = 0; s < g->n; s++) {
			memcpy(one, &g->per[s], sizeof(one));
			for (unsigned f = 0; f < N; f++)
				sum[f] += one[f];
		}
		memcpy(o, sum, sizeof(sum));
		/* Not additive: the level is shard 0's, expanding is an OR. */
		o->hash_power_level = g->per[0].hash_power_level;
		o->hash_is_expanding = o->hash_is_expanding != 0;
	}
	sk_free(g);
	return err ? sk_make_error(err) : sk_make_ready(0);
}

sk_future mc_stats_gather(struct mc_stats *out)
{
	unsigned n = sk_shard_count();
	struct gather *g = sk_alloc(sizeof(*g) + n * sizeof(g->per[0]));

	if (!g)
		return sk_make_error(-ENOMEM);
	g->out = out;
	g->n = n;
	return sk_future_then_wrapped(sk_invoke_on_all(gather_one, g), gather_sum, g);
}

/* "stats reset" keeps the gauges (what exists now), zeroes the counters. */
static sk_future reset_one(void *arg)
{
	struct mc_stats *st = &stats_tls, keep = *st;

	(void)arg;
	memset(st, 0, sizeof(*st));
	st->curr_connections = keep.curr_connections;
	st->curr_items = keep.curr_items;
	st->bytes = keep.bytes;
	st->hash_bytes = keep.hash_bytes;
	st->hash_power_level = keep.hash_power_level;
	st->hash_is_expanding = keep.hash_is_expanding;
	st->limit_maxbytes = keep.limit_maxbytes;
	return sk_make_ready(0);
}

sk_future mc_stats_reset(void)
{
	return sk_future_then(sk_invoke_on_all(reset_one, NULL), zero, NULL);
}
