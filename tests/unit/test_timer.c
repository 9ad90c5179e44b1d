/* test_timer.c - timer ordering, cancellation, re-arming, sleeps. */
#include <errno.h>
#include <stdlib.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/reactor.h"
#include "skerry/timer.h"

#define N 5000

static struct sk_timer *timers;
static uint64_t fired_deadline[N];
static unsigned fired_idx[N];
static unsigned nfired;
static uint64_t fire_time[N];

static void record(struct sk_timer *t)
{
	unsigned i = (unsigned)(uintptr_t)t->arg;
	fired_idx[nfired] = i;
	fired_deadline[nfired] = t->deadline;
	fire_time[nfired] = sk_now_ns();
	nfired++;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static sk_future t_order(void *arg)
{
	(void)arg;
	uint64_t now = sk_now_ns();
	nfired = 0;
	for (unsigned i = 0; i < N; i++) {
		sk_timer_init(&timers[i], record, (void *)(uintptr_t)i);
		CHECK_EQ(sk_timer_arm_at(&timers[i], now + 1000000 + next_rand() % 20000000), 0);
	}
	CHECK_EQ(sk_timer_count(), N);
	return sk_sleep(40 * SK_NSEC_PER_MSEC);
}

SK_TEST(timers_fire_in_deadline_order_and_not_early)
{
	timers = calloc(N, sizeof(*timers));
	CHECK_EQ(sk_test_run(1, t_order, NULL), 0);
	CHECK_EQ(nfired, N);
	unsigned bad = 0, early = 0;
	for (unsigned i = 0; i < nfired; i++) {
		if (i && fired_deadline[i] < fired_deadline[i - 1])
			bad++;
		if (fire_time[i] < fired_deadline[i])
			early++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(early, 0);
	free(timers);
}

static sk_future t_ties(void *arg)
{
	(void)arg;
	uint64_t when = sk_now_ns() + 2 * SK_NSEC_PER_MSEC;
	nfired = 0;
	for (unsigned i = 0; i < 100; i++) {
		sk_timer_init(&timers[i], record, (void *)(uintptr_t)i);
		sk_timer_arm_at(&timers[i], when);
	}
	return sk_sleep(5 * SK_NSEC_PER_MSEC);
}

SK_TEST(equal_deadlines_fire_in_arming_order)
{
	timers = calloc(N, sizeof(*timers));
	CHECK_EQ(sk_test_run(1, t_ties, NULL), 0);
	CHECK_EQ(nfired, 100);
	for (unsigned i = 0; i < nfired; i++)
		CHECK_EQ(fired_idx[i], i);
	free(timers);
}

static bool cancelled[N];
static sk_future t_cancel(void *arg)
{
	(void)arg;
	nfired = 0;
	for (unsigned i = 0; i < N; i++) {
		sk_timer_init(&timers[i], record, (void *)(uintptr_t)i);
		sk_timer_arm(&timers[i], 1000000 + next_rand() % 5000000);
	}
	unsigned ncancel = 0;
	for (unsigned i = 0; i < N; i++) {
		cancelled[i] = next_rand() & 1;
		if (cancelled[i]) {
			CHECK(sk_timer_cancel(&timers[i]));
			CHECK(!sk_timer_armed(&timers[i]));
			ncancel++;
		}
	}
	/* Cancelling twice is harmless. */
	for (unsigned i = 0; i < N; i++)
		if (cancelled[i])
			CHECK(!sk_timer_cancel(&timers[i]));
	CHECK_EQ(sk_timer_count(), N - ncancel);
	return sk_sleep(20 * SK_NSEC_PER_MSEC);
}

SK_TEST(cancelled_timers_never_fire)
{
	timers = calloc(N, sizeof(*timers));
	CHECK_EQ(sk_test_run(1, t_cancel, NULL), 0);
	unsigned expect = 0;
	for (unsigned i = 0; i < N; i++)
		expect += !cancelled[i];
	CHECK_EQ(nfired, expect);
	for (unsigned i = 0; i < nfired; i++)
		CHECK(!cancelled[fired_idx[i]]);
	free(timers);
}

static sk_future t_rearm(void *arg)
{
	(void)arg;
	nfired = 0;
	sk_timer_init(&timers[0], record, (void *)0);
	sk_timer_arm(&timers[0], 500 * SK_NSEC_PER_MSEC);
	sk_timer_arm(&timers[0], 2 * SK_NSEC_PER_MSEC);	/* earlier */
	sk_timer_init(&timers[1], record, (void *)1);
	sk_timer_arm(&timers[1], SK_NSEC_PER_MSEC);
	sk_timer_arm(&timers[1], 4 * SK_NSEC_PER_MSEC);	/* later */
	CHECK_EQ(sk_timer_count(), 2);
	return sk_sleep(10 * SK_NSEC_PER_MSEC);
}

SK_TEST(rearming_moves_the_deadline_and_fires_once)
{
	timers = calloc(N, sizeof(*timers));
	CHECK_EQ(sk_test_run(1, t_rearm, NULL), 0);
	CHECK_EQ(nfired, 2);
	CHECK_EQ(fired_idx[0], 0);
	CHECK_EQ(fired_idx[1], 1);
	free(timers);
}

static unsigned periodic_count;
static void periodic(struct sk_timer *t)
{
	if (++periodic_count == 5)
		sk_timer_cancel(t);
}

static sk_future t_periodic(void *arg)
{
	(void)arg;
	periodic_count = 0;
	sk_timer_init(&timers[0], periodic, NULL);
	CHECK_EQ(sk_timer_arm_periodic(&timers[0], SK_NSEC_PER_MSEC), 0);
	CHECK_EQ(sk_timer_arm_periodic(&timers[1], 0), -EINVAL);
	return sk_sleep(30 * SK_NSEC_PER_MSEC);
}

SK_TEST(periodic_timer_fires_until_cancelled_in_its_callback)
{
	timers = calloc(N, sizeof(*timers));
	CHECK_EQ(sk_test_run(1, t_periodic, NULL), 0);
	CHECK_EQ(periodic_count, 5);
	free(timers);
}

/* Many timers: arm 100k, cancel them in random order, heap stays sound. */
static sk_future t_many(void *arg)
{
	(void)arg;
	enum { M = 100000 };
	struct sk_timer *ts = sk_alloc(M * sizeof(*ts));
	unsigned *order = sk_alloc(M * sizeof(*order));
	CHECK(ts && order);
	if (!ts || !order)
		return sk_make_ready(1);
	for (unsigned i = 0; i < M; i++) {
		sk_timer_init(&ts[i], record, NULL);
		CHECK_EQ(sk_timer_arm(&ts[i], SK_NSEC_PER_SEC + next_rand() % SK_NSEC_PER_SEC), 0);
		order[i] = i;
	}
	CHECK_EQ(sk_timer_count(), M);
	for (unsigned i = M - 1; i > 0; i--) {
		unsigned j = (unsigned)(next_rand() % (i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	unsigned ok = 0;
	for (unsigned i = 0; i < M; i++)
		ok += sk_timer_cancel(&ts[order[i]]);
	CHECK_EQ(ok, M);
	CHECK_EQ(sk_timer_count(), 0);
	sk_free(ts);
	sk_free(order);
	return sk_make_ready(0);
}

SK_TEST(hundred_thousand_timers_arm_and_cancel)
{
	CHECK_EQ(sk_test_run(1, t_many, NULL), 0);
}

static uint64_t slept;
static sk_future after_sleep(void *arg, int64_t v)
{
	(void)v;
	slept = sk_now_ns() - *(uint64_t *)arg;
	return sk_make_ready(0);
}

static sk_future t_sleep(void *arg)
{
	*(uint64_t *)arg = sk_now_ns();
	return sk_future_then(sk_sleep(20 * SK_NSEC_PER_MSEC), after_sleep, arg);
}

SK_TEST(sleep_resolves_after_its_delay)
{
	uint64_t start;
	CHECK_EQ(sk_test_run(1, t_sleep, &start), 0);
	CHECK(slept >= 20 * SK_NSEC_PER_MSEC);
	CHECK(slept < 200 * SK_NSEC_PER_MSEC);
}
