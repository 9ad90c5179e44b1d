/*
 * bench_future - cost of sk_future_then on a ready future, and per link of
 * a chain of 10 continuations attached to a pending future and resolved
 * through the reactor.  Runs on one shard; 5 repetitions, medians.
 */
#include <errno.h>
#include <stdio.h>

#include "bench_common.h"
#include "skerry/future.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"

#define READY_ITERS 200000000ull
#define CHAINS 300000u

static __attribute__((noinline)) sk_future add_one(void *arg, int64_t v)
{
	(void)arg;
	return sk_make_ready(v + 1);
}

static double ready_ns[REPEATS], chain_ns[REPEATS];
static int rep;
static unsigned chains_done;
static uint64_t chain_t0;

static sk_future chain_body(void *arg)
{
	(void)arg;
	if (chains_done++ == CHAINS)
		return sk_make_ready(SK_STOP);
	struct sk_promise *p = sk_promise_new();
	sk_future f = sk_promise_future(p);
	for (int i = 0; i < 10; i++)
		f = sk_future_then(f, add_one, NULL);
	sk_promise_set_value(p, 0);
	return f;	/* value 10 != SK_STOP: continue */
}

static sk_future chain_finish(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	chain_ns[rep] = (double)(sk_now_ns() - chain_t0) / ((double)CHAINS * 10);
	return sk_make_ready(0);
}

static sk_future run_one(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	if (rep == REPEATS)
		return sk_make_ready(0);
	/* Ready futures: a dependent chain so nothing folds away. */
	uint64_t t0 = sk_now_ns();
	sk_future f = sk_make_ready(0);
	for (uint64_t i = 0; i < READY_ITERS; i++)
		f = sk_future_then(f, add_one, NULL);
	int err;
	int64_t r = sk_future_get(f, &err);
	ready_ns[rep] = (double)(sk_now_ns() - t0) / (double)READY_ITERS;
	if (r != (int64_t)READY_ITERS)
		return sk_make_error(-EINVAL);

	chains_done = 0;
	chain_t0 = sk_now_ns();
	sk_future c = sk_future_then(sk_repeat(chain_body, NULL), chain_finish, NULL);
	rep++;
	return sk_future_then(c, run_one, NULL);
}

static sk_future bench_main(void *arg)
{
	(void)arg;
	return sk_future_then(sk_make_ready(0), run_one, NULL);
}

int main(int argc, char **argv)
{
	static const struct sk_option none[] = { { 0 } };
	static const struct sk_program prog = { "bench_future",
		"ns per then on ready futures and on pending chains", none };
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (!o.smp)
		o.smp = 1;
	rc = sk_smp_run(&o, bench_main, NULL);
	if (rc)
		return 1;
	double r = median(ready_ns, REPEATS), c = median(chain_ns, REPEATS);
	printf("ready future then:        %6.2f ns  (median of %d x %llu)\n", r, REPEATS, READY_ITERS);
	printf("pending chain, per then:  %6.2f ns  (median of %d x %u chains of 10)\n", c, REPEATS, CHAINS);
	printf("RESULT bench=future case=ready_then ns=%.3f\n", r);
	printf("RESULT bench=future case=pending_chain10_per_then ns=%.3f\n", c);
	return 0;
}
