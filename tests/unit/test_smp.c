/*
 * test_smp.c - cross-shard requests, invoke_on_all, a multi-shard stress
 * with exact sums, and shutdown (main result, request, signal, work in
 * flight, hooks, sleeps cancelled).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

static sk_future whoami(void *arg)
{
	(void)arg;
	return sk_make_ready(100 + sk_shard_id());
}

static sk_future fail_on_odd(void *arg)
{
	(void)arg;
	return sk_shard_id() % 2 ? sk_make_error(-EXDEV) : sk_make_ready(0);
}

static int64_t got[4];
static int errs[4];
static void keep(void *arg, int64_t v, int err)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	got[i] = v;
	errs[i] = err;
}

static sk_future t_submit(void *arg)
{
	(void)arg;
	sk_future_on_done(sk_submit_to(1, whoami, NULL), keep, (void *)0);
	sk_future_on_done(sk_submit_to(1, fail_on_odd, NULL), keep, (void *)1);
	sk_future_on_done(sk_submit_to(0, whoami, NULL), keep, (void *)2);
	sk_future_on_done(sk_submit_to(7, whoami, NULL), keep, (void *)3);
	return sk_sleep(5 * SK_NSEC_PER_MSEC);
}

SK_TEST(submit_to_carries_values_and_errors_back)
{
	CHECK_EQ(sk_test_run(2, t_submit, NULL), 0);
	CHECK_EQ(got[0], 101);
	CHECK_EQ(errs[0], 0);
	CHECK_EQ(errs[1], -EXDEV);
	CHECK_EQ(got[2], 100);
	CHECK_EQ(errs[3], -EINVAL);
}

static unsigned ran_on[4];
static sk_future mark(void *arg)
{
	(void)arg;
	ran_on[sk_shard_id()]++;
	return sk_make_ready(0);
}

static sk_future t_on_all(void *arg)
{
	(void)arg;
	sk_future_on_done(sk_invoke_on_all(mark, NULL), keep, (void *)0);
	sk_future_on_done(sk_invoke_on_all(fail_on_odd, NULL), keep, (void *)1);
	return sk_sleep(5 * SK_NSEC_PER_MSEC);
}

SK_TEST(invoke_on_all_runs_everywhere_and_reports_errors)
{
	memset(ran_on, 0, sizeof(ran_on));
	CHECK_EQ(sk_test_run(3, t_on_all, NULL), 0);
	CHECK_EQ(got[0], 3);
	CHECK_EQ(errs[0], 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(ran_on[i], 1);
	CHECK_EQ(errs[1], -EXDEV);
}

/*
 * Stress: 4 shards each send 100k requests to pseudo-random shards (in
 * windows), each adding a distinct value to its target's total.  The sum of
 * totals and the count per shard are checked exactly.
 */
#define SH 4
#define PER_SHARD 100000u
#define WIN 128
struct st {
	_Alignas(64) uint64_t total, hits, sent, rng, replies;
	sk_future fs[WIN];
	unsigned k;
};
static struct st sts[SH];

static sk_future add(void *arg)
{
	struct st *s = &sts[sk_shard_id()];
	s->total += (uint64_t)(uintptr_t)arg;
	s->hits++;
	return sk_make_ready((int64_t)(uintptr_t)arg);
}

static bool stress_done(void *arg)
{
	(void)arg;
	return sts[sk_shard_id()].sent >= PER_SHARD;
}

static sk_future stress_collect(void *arg, int64_t v)
{
	struct st *s = arg;
	(void)v;
	for (unsigned i = 0; i < s->k; i++) {
		int err;
		sk_future_get(s->fs[i], &err);
		if (!err)
			s->replies++;
	}
	return sk_make_ready(0);
}

static sk_future stress_window(void *arg)
{
	(void)arg;
	unsigned me = sk_shard_id();
	struct st *s = &sts[me];
	s->k = 0;
	while (s->k < WIN && s->sent < PER_SHARD) {
		s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
		unsigned target = (unsigned)(s->rng >> 33) % SH;
		uint64_t v = (uint64_t)me * PER_SHARD + s->sent + 1;
		s->fs[s->k++] = sk_submit_to(target, add, (void *)(uintptr_t)v);
		s->sent++;
	}
	return sk_future_then(sk_when_all(s->fs, s->k), stress_collect, s);
}

static sk_future stress_shard(void *arg)
{
	(void)arg;
	sts[sk_shard_id()].rng = sk_shard_id() + 1;
	return sk_do_until(stress_done, stress_window, NULL);
}

static sk_future t_stress(void *arg)
{
	(void)arg;
	return sk_test_status0(sk_invoke_on_all(stress_shard, NULL));
}

SK_TEST(multi_shard_stress_exact_sums)
{
	memset(sts, 0, sizeof(sts));
	CHECK_EQ(sk_test_run(SH, t_stress, NULL), 0);
	uint64_t total = 0, hits = 0, replies = 0, n = (uint64_t)SH * PER_SHARD;
	for (unsigned i = 0; i < SH; i++) {
		total += sts[i].total;
		hits += sts[i].hits;
		replies += sts[i].replies;
		CHECK(sts[i].hits > 0);
	}
	CHECK_EQ(hits, n);
	CHECK_EQ(replies, n);
	CHECK_EQ(total, n * (n + 1) / 2);
}

/* The main future's value is the exit status. */
static sk_future seven(void *arg)
{
	(void)arg;
	return sk_make_ready(7);
}
static sk_future failing_main(void *arg)
{
	(void)arg;
	return sk_make_error(-EIO);
}

SK_TEST(exit_status_comes_from_main)
{
	CHECK_EQ(sk_test_run(2, seven, NULL), 7);
	CHECK_EQ(sk_test_run(2, failing_main, NULL), 1);
}

/*
 * Shutdown with work in flight: shard 1 runs a long chain of requests to
 * shard 0 and shard 0 sleeps for 60 s; a stop is requested.  The chain must
 * be completed (not dropped), the sleep cancelled, the stop hooks run on
 * every shard, and the run must end promptly with status 0.
 */
static unsigned chain_steps, hooks_ran[2], sleep_cancelled;
static uint64_t stop_t0;

static sk_future bump(void *arg)
{
	(void)arg;
	return sk_yield();
}
static sk_future chain_step(void *arg, int64_t v)
{
	(void)arg; (void)v;
	chain_steps++;
	return sk_make_ready(chain_steps >= 2000 ? SK_STOP : SK_CONTINUE);
}
static sk_future chain_body(void *arg)
{
	(void)arg;
	return sk_future_then(sk_submit_to(0, bump, NULL), chain_step, NULL);
}

static void hook(void *arg)
{
	(void)arg;
	hooks_ran[sk_shard_id()]++;
}
static struct sk_stop_hook hk[2];

static sk_future start_chain(void *arg)
{
	(void)arg;
	hk[1] = (struct sk_stop_hook){ hook, NULL, NULL };
	sk_reactor_at_stop(&hk[1]);
	sk_future_ignore(sk_repeat(chain_body, NULL));
	return sk_make_ready(0);
}

static void sleep_result(void *arg, int64_t v, int err)
{
	(void)arg; (void)v;
	sleep_cancelled += err == -ECANCELED;
}

static sk_future stop_now(void *arg, int64_t v)
{
	(void)arg; (void)v;
	stop_t0 = sk_now_ns();
	if (arg)
		raise(SIGTERM);
	else
		sk_smp_request_stop(0);
	/* Main never finishes on its own: stopping must end the run. */
	struct sk_promise *p = sk_promise_new();
	return sk_promise_future(p);
}

static sk_future t_shutdown(void *arg)
{
	hk[0] = (struct sk_stop_hook){ hook, NULL, NULL };
	sk_reactor_at_stop(&hk[0]);
	sk_future_on_done(sk_sleep(60 * SK_NSEC_PER_SEC), sleep_result, NULL);
	return sk_future_then(sk_submit_to(1, start_chain, NULL), stop_now, arg);
}

static void shutdown_case(void *how)
{
	chain_steps = 0;
	sleep_cancelled = 0;
	memset(hooks_ran, 0, sizeof(hooks_ran));
	CHECK_EQ(sk_test_run(2, t_shutdown, how), 0);
	uint64_t took = sk_now_ns() - stop_t0;
	CHECK_EQ(chain_steps, 2000);	/* work in flight was completed */
	CHECK_EQ(sleep_cancelled, 1);
	CHECK_EQ(hooks_ran[0], 1);
	CHECK_EQ(hooks_ran[1], 1);
	CHECK(took < 2 * SK_NSEC_PER_SEC);
}

SK_TEST(stop_request_finishes_work_in_flight_and_exits_zero)
{
	shutdown_case(NULL);
}

SK_TEST(sigterm_finishes_work_in_flight_and_exits_zero)
{
	shutdown_case((void *)1);
}

SK_TEST(bad_cpuset_is_refused)
{
	struct sk_opts o;
	sk_opts_init(&o);
	o.log_level = -1;
	o.ncpus = 1;
	o.cpus[0] = 4000;
	CHECK_EQ(sk_smp_run(&o, seven, NULL), -EINVAL);
}

SK_TEST(hash_spreads_keys_evenly_over_shards)
{
	unsigned count[4] = { 0 };
	char key[32];
	for (unsigned i = 0; i < 400000; i++) {
		int n = snprintf(key, sizeof(key), "key:%u", i);
		count[sk_shard_of_hash(sk_hash64(key, (size_t)n, 0), 4)]++;
	}
	for (int s = 0; s < 4; s++) {
		CHECK(count[s] > 98000);
		CHECK(count[s] < 102000);
	}
	CHECK(sk_hash64("a", 1, 0) != sk_hash64("b", 1, 0));
	CHECK(sk_hash64("abcdefgh1", 9, 0) != sk_hash64("abcdefgh2", 9, 0));
}

/*
 * Work that never finishes: the grace period ends the wait, every shard
 * leaves together and nothing is touched after it is freed (ASan build).
 */
static unsigned stuck_steps;
static sk_future stuck_step(void *arg)
{
	(void)arg;
	stuck_steps++;
	return sk_yield();	/* ignores sk_reactor_stopping() on purpose */
}
static sk_future start_stuck(void *arg)
{
	(void)arg;
	sk_future_ignore(sk_repeat(stuck_step, NULL));
	return sk_make_ready(0);
}
static sk_future t_stuck(void *arg)
{
	(void)arg;
	return sk_future_then(sk_submit_to(1, start_stuck, NULL), stop_now, NULL);
}

SK_TEST(grace_period_bounds_shutdown_of_stuck_work)
{
	struct sk_opts o;
	sk_opts_init(&o);
	o.smp = 2;
	o.log_level = 0;
	o.stop_grace_ns = 100 * SK_NSEC_PER_MSEC;
	stuck_steps = 0;
	CHECK_EQ(sk_smp_run(&o, t_stuck, NULL), 0);
	uint64_t took = sk_now_ns() - stop_t0;
	CHECK(stuck_steps > 0);
	CHECK(took >= 100 * SK_NSEC_PER_MSEC);
	CHECK(took < 2 * SK_NSEC_PER_SEC);
}

/*
 * Backlog: 5000 requests issued at once overflow the 1024-entry ring; the
 * rest wait in the sender's backlog.  They must run in issue order.
 */
#define BURST 5000u
static uint32_t seen_next, seen_bad;
static sk_future record_seq(void *arg)
{
	uint32_t seq = (uint32_t)(uintptr_t)arg;
	if (seq != seen_next)
		seen_bad++;
	seen_next = seq + 1;
	return sk_make_ready(seq);
}
static sk_future burst_fs[BURST];
static sk_future check_burst(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	for (uint32_t i = 0; i < BURST; i++) {
		int err;
		if (sk_future_get(burst_fs[i], &err) != (int64_t)i || err)
			seen_bad++;
	}
	return sk_make_ready(0);
}
static sk_future t_burst(void *arg)
{
	(void)arg;
	seen_next = seen_bad = 0;
	for (uint32_t i = 0; i < BURST; i++)
		burst_fs[i] = sk_submit_to(1, record_seq, (void *)(uintptr_t)i);
	return sk_future_then(sk_when_all(burst_fs, BURST), check_burst, NULL);
}

SK_TEST(backlogged_requests_keep_their_order)
{
	CHECK_EQ(sk_test_run(2, t_burst, NULL), 0);
	CHECK_EQ(seen_next, BURST);
	CHECK_EQ(seen_bad, 0);
	struct sk_smp_stats st;
	sk_smp_stats(0, &st);	/* gone after the run: zeros, no crash */
	CHECK_EQ(st.sent, 0);
}

/*
 * A backlogged shard must not sleep on its own backlog.  Shard 1 gets 3000
 * requests that all complete 5 ms later at once (more replies than the ring
 * holds) while shard 0 is busy for 20 ms; then nobody wakes shard 1.  All
 * replies must still arrive, well before the 2 s bound.
 */
static sk_future sleep_5ms(void *arg)
{
	(void)arg;
	return sk_sleep(5 * SK_NSEC_PER_MSEC);
}
static sk_future busy_20ms(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	uint64_t t = sk_now_ns();
	while (sk_now_ns() - t < 20 * SK_NSEC_PER_MSEC)
		;
	return sk_make_ready(0);
}
static uint64_t burst_t0, burst_took;
static int burst_err;
static sk_future burst_done(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	burst_err = err;
	burst_took = sk_now_ns() - burst_t0;
	return sk_make_ready(0);
}
static sk_future t_backlog_sleep(void *arg)
{
	(void)arg;
	burst_t0 = sk_now_ns();
	for (uint32_t i = 0; i < 3000; i++)
		burst_fs[i] = sk_submit_to(1, sleep_5ms, NULL);
	sk_future all = sk_with_timeout(sk_when_all(burst_fs, 3000), 2 * SK_NSEC_PER_SEC);
	/* Busy from 3 ms on: the 5 ms replies arrive while shard 0 works. */
	sk_future_ignore(sk_future_then(sk_sleep(3 * SK_NSEC_PER_MSEC), busy_20ms, NULL));
	return sk_future_then_wrapped(all, burst_done, NULL);
}

SK_TEST(backlogged_replies_are_delivered_without_a_wake_up)
{
	CHECK_EQ(sk_test_run(2, t_backlog_sleep, NULL), 0);
	CHECK_EQ(burst_err, 0);
	CHECK(burst_took < SK_NSEC_PER_SEC);
}

/* sk_smp_post to the calling shard runs at its next poll. */
static unsigned self_ran;
static void self_msg(void *arg)
{
	(void)arg;
	self_ran++;
}
static sk_future t_self_post(void *arg)
{
	(void)arg;
	self_ran = 0;
	unsigned ok = 0;
	for (int i = 0; i < 100; i++)
		ok += sk_smp_post(0, self_msg, NULL) == 0;
	CHECK_EQ(ok, 100);
	CHECK_EQ(self_ran, 0);	/* not in place */
	stop_t0 = sk_now_ns();
	return sk_make_ready(0);
}

SK_TEST(post_to_self_runs_and_does_not_hold_shutdown)
{
	CHECK_EQ(sk_test_run(2, t_self_post, NULL), 0);
	CHECK_EQ(self_ran, 100);
	CHECK(sk_now_ns() - stop_t0 < SK_NSEC_PER_SEC);
}

/*
 * Timers at shutdown: a BACKGROUND periodic timer does not hold the stop;
 * an ordinary one-shot timer is work in flight and fires before exit.
 */
static struct sk_timer bg_timer, fg_timer;
static unsigned bg_fired, fg_fired;
static void bg_tick(struct sk_timer *t)
{
	(void)t;
	bg_fired++;
}
static void fg_tick(struct sk_timer *t)
{
	(void)t;
	fg_fired++;
}
static sk_future t_timers_at_stop(void *arg)
{
	(void)arg;
	bg_fired = fg_fired = 0;
	sk_timer_init(&bg_timer, bg_tick, NULL);
	bg_timer.flags = SK_TIMER_BACKGROUND;
	sk_timer_arm_periodic(&bg_timer, 10 * SK_NSEC_PER_SEC);
	sk_timer_init(&fg_timer, fg_tick, NULL);
	sk_timer_arm(&fg_timer, 30 * SK_NSEC_PER_MSEC);
	CHECK_EQ(sk_timer_count(), 2);
	CHECK_EQ(sk_timer_count_foreground(), 1);
	stop_t0 = sk_now_ns();
	return sk_make_ready(0);
}

SK_TEST(background_timers_do_not_hold_shutdown_but_others_fire)
{
	CHECK_EQ(sk_test_run(2, t_timers_at_stop, NULL), 0);
	uint64_t took = sk_now_ns() - stop_t0;
	CHECK_EQ(fg_fired, 1);
	CHECK(took >= 30 * SK_NSEC_PER_MSEC);
	CHECK(took < 5 * SK_NSEC_PER_SEC);	/* did not wait for the 10 s tick */
	CHECK_EQ(bg_fired, 0);
}
