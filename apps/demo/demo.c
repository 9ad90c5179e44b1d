/*
 * skerry-demo - the main job until the memcached appliance arrives.
 *
 * Starts every shard, has each one send --messages requests to the other
 * shards (in windows of 256, round-robin), and checks the result exactly:
 * each request carries a distinct number that its target adds to its own
 * total and echoes back doubled, so the sum of all totals and the sum of
 * all echoes are known in advance.  Prints a summary and exits 0 when both
 * sums match, 1 when they do not.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/shard.h"

#define WINDOW 256

struct per_shard {
	_Alignas(64) uint64_t received_sum;	/* touched by its own shard only */
	uint64_t echo_sum;
	uint64_t sent;
	uint64_t next;
	sk_future fs[WINDOW];
	uint64_t vals[WINDOW];
	unsigned inflight;
};

static struct per_shard state[SK_MAX_SHARDS];
static unsigned long long messages = 100000;

static sk_future add_here(void *arg)
{
	uint64_t v = (uint64_t)(uintptr_t)arg;
	state[sk_shard_id()].received_sum += v;
	return sk_make_ready((int64_t)(v * 2));
}

/* Done when every request is sent, or early when the program is stopping. */
static bool all_sent(void *arg)
{
	(void)arg;
	return state[sk_shard_id()].sent >= messages || sk_reactor_stopping();
}

static sk_future window_done(void *arg, int64_t v, int err)
{
	struct per_shard *s = arg;
	(void)v;
	if (err)
		return sk_make_error(err);
	for (unsigned i = 0; i < s->inflight; i++) {
		int e;
		int64_t echo = sk_future_get(s->fs[i], &e);
		if (e)
			return sk_make_error(e);
		s->echo_sum += (uint64_t)echo;
	}
	return sk_make_ready(0);
}

static sk_future send_window(void *arg)
{
	(void)arg;
	unsigned me = sk_shard_id(), n = sk_shard_count();
	struct per_shard *s = &state[me];
	unsigned k = 0;

	while (k < WINDOW && s->sent < messages) {
		/* A distinct value per (shard, message): me + n * index + 1. */
		uint64_t v = me + (uint64_t)n * s->sent + 1;
		unsigned target = n == 1 ? 0 : (unsigned)((me + 1 + s->sent % (n - 1)) % n);
		s->fs[k] = sk_submit_to(target, add_here, (void *)(uintptr_t)v);
		s->sent++;
		k++;
	}
	s->inflight = k;
	return sk_future_then_wrapped(sk_when_all(s->fs, k), window_done, s);
}

static sk_future run_shard(void *arg)
{
	(void)arg;
	return sk_do_until(all_sent, send_window, NULL);
}

static sk_future report(void *arg, int64_t v, int err)
{
	uint64_t *start = arg;
	unsigned n = sk_shard_count();
	uint64_t total = 0, recv = 0, echo = 0, expect = 0;
	double secs = (double)(sk_now_ns() - *start) / 1e9;
	(void)v;

	if (err) {
		sk_log_error("demo: a shard failed: %d", err);
		return sk_make_ready(1);
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t k = state[i].sent;
		recv += state[i].received_sum;
		echo += state[i].echo_sum;
		total += k;
		/* Shard i sent the values i + 1 + n*j for j = 0..k-1. */
		expect += k * (i + 1) + (uint64_t)n * (k * (k ? k - 1 : 0) / 2);
	}
	bool ok = recv == expect && echo == 2 * expect;
	if (total < (uint64_t)n * messages)
		printf("skerry-demo: stopped early, as asked\n");
	printf("skerry-demo: %u shard%s, %" PRIu64 " cross-shard requests in %.3f s "
	       "(%.0f requests/s), sum %" PRIu64 " expected %" PRIu64 ", echo sum %" PRIu64
	       " expected %" PRIu64 ": %s\n",
	       n, n == 1 ? "" : "s", total, secs, (double)total / secs, recv, expect,
	       echo, 2 * expect, ok ? "OK" : "MISMATCH");
	fflush(stdout);
	return sk_make_ready(ok ? 0 : 1);
}

static uint64_t t0;

static sk_future demo_main(void *arg)
{
	(void)arg;
	t0 = sk_now_ns();
	return sk_future_then_wrapped(sk_invoke_on_all(run_shard, NULL), report, &t0);
}

int main(int argc, char **argv)
{
	static const struct sk_option options[] = {
		{ "messages", 'n', SK_OPT_UINT, &messages, "N",
		  "requests each shard sends to the others" },
		{ 0 },
	};
	static const struct sk_program prog = {
		"skerry-demo",
		"Start every shard, exchange cross-shard requests, check the sums, exit.",
		options,
	};
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	rc = sk_smp_run(&o, demo_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "skerry-demo: cannot start shards (%d)\n", rc);
		return 1;
	}
	return rc;
}
