/* test_future.c - futures, promises, continuations and combinators. */
#include <errno.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/reactor.h"
#include "skerry/timer.h"

static __attribute__((noinline)) sk_future add_one(void *arg, int64_t v)
{
	(void)arg;
	return sk_make_ready(v + 1);
}

static int calls;
static sk_future count_then(void *arg, int64_t v)
{
	(void)arg;
	calls++;
	return sk_make_ready(v);
}

static sk_future catch_to_42(void *arg, int err)
{
	*(int *)arg = err;
	return sk_make_ready(42);
}

static sk_future t_ready_no_alloc(void *arg)
{
	(void)arg;
	struct sk_mem_stats before, after;
	sk_mem_stats(0, &before);
	sk_future f = sk_make_ready(0);
	for (int i = 0; i < 1000; i++)
		f = sk_future_then(f, add_one, NULL);
	int err;
	CHECK_EQ(sk_future_get(f, &err), 1000);
	CHECK_EQ(err, 0);
	/* A ready error skips value continuations and allocates nothing too. */
	calls = 0;
	f = sk_make_error(-EIO);
	for (int i = 0; i < 10; i++)
		f = sk_future_then(f, count_then, NULL);
	CHECK_EQ(calls, 0);
	CHECK(sk_future_failed(f));
	sk_mem_stats(0, &after);
	CHECK_EQ(after.allocs, before.allocs);
	return sk_make_ready(0);
}

SK_TEST(ready_future_then_runs_inline_without_allocating)
{
	CHECK_EQ(sk_test_run(1, t_ready_no_alloc, NULL), 0);
}

/* A chain of 10 continuations on a pending future, resolved later. */
static int64_t chain_result;
static int chain_err;
static void chain_done(void *arg, int64_t v, int err)
{
	(void)arg;
	chain_result = v;
	chain_err = err;
}

/* Not commutative: the result shows the order the links ran in. */
static sk_future times3_plus_link(void *arg, int64_t v)
{
	return sk_make_ready(v * 3 + (int64_t)(intptr_t)arg);
}

static sk_future resolve_later(void *arg, int64_t v)
{
	(void)v;
	sk_promise_set_value(arg, 5);
	return sk_make_ready(0);
}

static sk_future t_pending_chain(void *arg)
{
	(void)arg;
	struct sk_promise *p = sk_promise_new();
	sk_future f = sk_promise_future(p);
	CHECK(!sk_future_available(f));
	for (int i = 0; i < 10; i++)
		f = sk_future_then(f, times3_plus_link, (void *)(intptr_t)i);
	CHECK(!sk_future_available(f));
	chain_result = -1;
	sk_future_on_done(f, chain_done, NULL);
	/* Resolve from a later task so the chain really waits. */
	return sk_future_then(sk_yield(), resolve_later, p);
}

static uint64_t chain_in_use_after;
static sk_future chain_measure(void *arg, int64_t v)
{
	(void)arg; (void)v;
	struct sk_mem_stats st;
	sk_mem_stats(0, &st);
	chain_in_use_after = st.bytes_in_use;
	return sk_make_ready(0);
}

static sk_future t_pending_chain_check(void *arg, int64_t v)
{
	(void)arg; (void)v;
	return sk_future_then(sk_sleep(2 * SK_NSEC_PER_MSEC), chain_measure, NULL);
}

static sk_future t_pending_chain_all(void *arg)
{
	struct sk_mem_stats before;
	/* Grow the timer heap first: it stays allocated, by design. */
	struct sk_timer warm;
	sk_timer_init(&warm, NULL, NULL);
	sk_timer_arm(&warm, SK_NSEC_PER_SEC);
	sk_timer_cancel(&warm);
	sk_mem_stats(0, &before);
	*(uint64_t *)arg = before.bytes_in_use;
	return sk_future_then(t_pending_chain(NULL), t_pending_chain_check, NULL);
}

SK_TEST(pending_chain_of_ten_resolves_in_order)
{
	uint64_t in_use = 0;
	CHECK_EQ(sk_test_run(1, t_pending_chain_all, &in_use), 0);
	/* ((5*3+0)*3+1)*3+2 ... link i applied i-th: */
	int64_t expect = 5;
	for (int i = 0; i < 10; i++)
		expect = expect * 3 + i;
	CHECK_EQ(chain_result, expect);
	CHECK_EQ(chain_err, 0);
	/* The chain's ten state blocks were freed; all that is left at the
	 * measurement is the main future's own pending tail: two blocks of
	 * at most 64 bytes (a leak of the chain would show 640 bytes). */
	CHECK(chain_in_use_after >= in_use);
	CHECK(chain_in_use_after - in_use <= 2 * 64);
}

/* Errors skip value continuations until a handler. */
static int caught;
static sk_future t_error_skip(void *arg)
{
	(void)arg;
	struct sk_promise *p = sk_promise_new();
	sk_future f = sk_promise_future(p);
	calls = 0;
	caught = 0;
	f = sk_future_then(f, count_then, NULL);
	f = sk_future_then(f, count_then, NULL);
	f = sk_future_catch(f, catch_to_42, &caught);
	f = sk_future_then(f, add_one, NULL);
	sk_promise_set_error(p, -ECONNRESET);
	sk_future_on_done(f, chain_done, NULL);
	return sk_sleep(SK_NSEC_PER_MSEC);
}

SK_TEST(error_skips_then_until_catch)
{
	CHECK_EQ(sk_test_run(1, t_error_skip, NULL), 0);
	CHECK_EQ(calls, 0);
	CHECK_EQ(caught, -ECONNRESET);
	CHECK_EQ(chain_result, 43);
	CHECK_EQ(chain_err, 0);
}

/* finally runs on both outcomes and passes the result through. */
static int finals;
static void fin(void *arg)
{
	(void)arg;
	finals++;
}
static int64_t r1, r2;
static int e1, e2;
static void got1(void *a, int64_t v, int e) { (void)a; r1 = v; e1 = e; }
static void got2(void *a, int64_t v, int e) { (void)a; r2 = v; e2 = e; }

static sk_future t_finally(void *arg)
{
	(void)arg;
	struct sk_promise *a = sk_promise_new(), *b = sk_promise_new();
	finals = 0;
	sk_future_on_done(sk_future_finally(sk_promise_future(a), fin, NULL), got1, NULL);
	sk_future_on_done(sk_future_finally(sk_promise_future(b), fin, NULL), got2, NULL);
	sk_promise_set_value(a, 7);
	sk_promise_set_error(b, -EPIPE);
	/* Ready futures too. */
	sk_future_ignore(sk_future_finally(sk_make_ready(1), fin, NULL));
	sk_future_ignore(sk_future_finally(sk_make_error(-EIO), fin, NULL));
	return sk_sleep(SK_NSEC_PER_MSEC);
}

SK_TEST(finally_runs_on_value_and_error)
{
	CHECK_EQ(sk_test_run(1, t_finally, NULL), 0);
	CHECK_EQ(finals, 4);
	CHECK_EQ(r1, 7);
	CHECK_EQ(e1, 0);
	CHECK_EQ(e2, -EPIPE);
}

/* when_all: one failure among pending and ready futures. */
static sk_future fs[4];
static struct sk_promise *wp[3];
static sk_future t_when_all(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		wp[i] = sk_promise_new();
		fs[i] = sk_promise_future(wp[i]);
	}
	fs[3] = sk_make_ready(33);
	sk_future all = sk_when_all(fs, 4);
	CHECK(!sk_future_available(all));
	sk_promise_set_value(wp[2], 22);
	sk_promise_set_error(wp[1], -ENOENT);
	CHECK(!sk_future_available(all));
	sk_promise_set_value(wp[0], 11);
	sk_future_on_done(all, chain_done, NULL);
	return sk_sleep(SK_NSEC_PER_MSEC);
}

SK_TEST(when_all_waits_for_all_and_reports_first_failure)
{
	chain_result = -1;
	CHECK_EQ(sk_test_run(1, t_when_all, NULL), 0);
	CHECK_EQ(chain_err, -ENOENT);
	int err;
	CHECK_EQ(sk_future_get(fs[0], &err), 11);
	CHECK_EQ(err, 0);
	sk_future_get(fs[1], &err);
	CHECK_EQ(err, -ENOENT);
	CHECK_EQ(sk_future_get(fs[2], &err), 22);
	CHECK_EQ(sk_future_get(fs[3], &err), 33);
}

static sk_future t_when_all_ready(void *arg)
{
	(void)arg;
	sk_future a[3] = { sk_make_ready(1), sk_make_ready(2), sk_make_ready(3) };
	struct sk_mem_stats before, after;
	sk_mem_stats(0, &before);
	sk_future all = sk_when_all(a, 3);
	sk_mem_stats(0, &after);
	CHECK(sk_future_available(all));
	int err;
	CHECK_EQ(sk_future_get(all, &err), 3);
	CHECK_EQ(after.allocs, before.allocs);
	return sk_make_ready(0);
}

SK_TEST(when_all_of_ready_futures_is_ready)
{
	CHECK_EQ(sk_test_run(1, t_when_all_ready, NULL), 0);
}

/* with_timeout: fires, and does not fire. */
static uint64_t t_start, t_end;
static struct sk_promise *never;
static void stamp(void *a, int64_t v, int e)
{
	(void)a;
	t_end = sk_now_ns();
	chain_result = v;
	chain_err = e;
}
static sk_future finish_never(void *arg, int64_t v, int err)
{
	(void)arg; (void)v; (void)err;
	sk_promise_set_value(never, 1);	/* late: must be discarded */
	return sk_sleep(SK_NSEC_PER_MSEC);
}

static sk_future t_timeout_fires(void *arg)
{
	(void)arg;
	never = sk_promise_new();
	t_start = sk_now_ns();
	sk_future_on_done(sk_with_timeout(sk_promise_future(never), 10 * SK_NSEC_PER_MSEC), stamp, NULL);
	return sk_future_then_wrapped(sk_sleep(30 * SK_NSEC_PER_MSEC), finish_never, NULL);
}

SK_TEST(with_timeout_fires)
{
	CHECK_EQ(sk_test_run(1, t_timeout_fires, NULL), 0);
	CHECK_EQ(chain_err, -ETIMEDOUT);
	CHECK(t_end - t_start >= 10 * SK_NSEC_PER_MSEC);
	/* Fired by its own timer, well before the 30 ms sleep that ends the
	 * run (generous bound: the machine may be busy). */
	CHECK(t_end - t_start < 30 * SK_NSEC_PER_MSEC);
}

static unsigned timers_left;
static sk_future check_timers(void *arg, int64_t v)
{
	(void)arg; (void)v;
	timers_left = sk_timer_count();
	return sk_make_ready(0);
}

static sk_future t_timeout_not(void *arg)
{
	(void)arg;
	sk_future f = sk_with_timeout(sk_sleep(2 * SK_NSEC_PER_MSEC), 5 * SK_NSEC_PER_SEC);
	f = sk_future_then(f, add_one, NULL);
	sk_future_on_done(f, chain_done, NULL);
	return sk_future_then(sk_sleep(10 * SK_NSEC_PER_MSEC), check_timers, NULL);
}

SK_TEST(with_timeout_does_not_fire_when_future_wins)
{
	chain_result = -1;
	CHECK_EQ(sk_test_run(1, t_timeout_not, NULL), 0);
	CHECK_EQ(chain_err, 0);
	CHECK_EQ(chain_result, 1);
	CHECK_EQ(timers_left, 0);	/* the timeout timer was disarmed */
}

/* Cancellation. */
static struct sk_cancel cancel;
static sk_future do_cancel(void *arg, int64_t v)
{
	(void)arg; (void)v;
	sk_cancel_request(&cancel);
	return sk_sleep(SK_NSEC_PER_MSEC);
}

static sk_future t_cancel(void *arg)
{
	(void)arg;
	sk_cancel_init(&cancel);
	never = sk_promise_new();
	sk_future_on_done(sk_with_cancel(sk_promise_future(never), &cancel), chain_done, NULL);
	return sk_future_then_wrapped(
		sk_future_then(sk_sleep(SK_NSEC_PER_MSEC), do_cancel, NULL), finish_never, NULL);
}

SK_TEST(with_cancel_fails_with_ecanceled)
{
	chain_err = 0;
	CHECK_EQ(sk_test_run(1, t_cancel, NULL), 0);
	CHECK_EQ(chain_err, -ECANCELED);
	CHECK(cancel.requested);
}

/* Loops. */
static uint64_t iters;
static bool stop_at_million(void *arg)
{
	(void)arg;
	return iters >= 1000000;
}
static sk_future body_ready(void *arg)
{
	(void)arg;
	iters++;
	return sk_make_ready(0);
}
static uint64_t ticks_during_loop;
static struct sk_timer tick;
static void on_tick(struct sk_timer *t)
{
	(void)t;
	if (iters < 1000000)
		ticks_during_loop++;
}
static sk_future loop_done_cancel(void *arg, int64_t v, int err)
{
	(void)arg;
	sk_timer_cancel(&tick);
	chain_result = v;
	chain_err = err;
	return sk_make_ready(0);
}

static sk_future t_do_until_ready(void *arg)
{
	(void)arg;
	iters = 0;
	ticks_during_loop = 0;
	sk_timer_init(&tick, on_tick, NULL);
	sk_timer_arm_periodic(&tick, 100 * SK_NSEC_PER_USEC);
	return sk_future_then_wrapped(sk_do_until(stop_at_million, body_ready, NULL),
				      loop_done_cancel, NULL);
}

SK_TEST(do_until_runs_ready_iterations_and_yields_to_timers)
{
	CHECK_EQ(sk_test_run(1, t_do_until_ready, NULL), 0);
	CHECK_EQ(iters, 1000000);
	CHECK_EQ(chain_err, 0);
	/* The loop took several budgets; the timer ran while it was going. */
	CHECK(ticks_during_loop > 0);
}

static sk_future count_after_yield(void *arg, int64_t v)
{
	(void)arg; (void)v;
	iters++;
	return sk_make_ready(iters >= 1000 ? SK_STOP : SK_CONTINUE);
}

static sk_future body_yield(void *arg)
{
	(void)arg;
	return sk_future_then(sk_yield(), count_after_yield, NULL);
}

static sk_future t_repeat_pending(void *arg)
{
	(void)arg;
	iters = 0;
	sk_future f = sk_repeat(body_yield, NULL);
	CHECK(!sk_future_available(f));
	return f;
}

SK_TEST(repeat_with_pending_bodies_stops_on_sk_stop)
{
	CHECK_EQ(sk_test_run(1, t_repeat_pending, NULL), 0);
	CHECK_EQ(iters, 1000);
}

static sk_future fail_at_five(void *arg)
{
	(void)arg;
	if (++iters == 5)
		return sk_make_error(-EBADMSG);
	return sk_yield();
}

static sk_future t_loop_error(void *arg)
{
	(void)arg;
	iters = 0;
	sk_future_on_done(sk_do_until(stop_at_million, fail_at_five, NULL), chain_done, NULL);
	return sk_sleep(5 * SK_NSEC_PER_MSEC);
}

SK_TEST(loop_stops_at_first_error)
{
	CHECK_EQ(sk_test_run(1, t_loop_error, NULL), 0);
	CHECK_EQ(iters, 5);
	CHECK_EQ(chain_err, -EBADMSG);
}

/* Forwarding: a continuation returning a pending future. */
static struct sk_promise *inner;
static sk_future give_inner(void *arg, int64_t v)
{
	(void)arg; (void)v;
	inner = sk_promise_new();
	return sk_promise_future(inner);
}
static sk_future resolve_inner(void *arg, int64_t v)
{
	(void)arg; (void)v;
	sk_promise_set_value(inner, 99);
	return sk_sleep(SK_NSEC_PER_MSEC);
}

static sk_future t_forward(void *arg)
{
	(void)arg;
	sk_future f = sk_future_then(sk_yield(), give_inner, NULL);
	f = sk_future_then(f, add_one, NULL);
	sk_future_on_done(f, chain_done, NULL);
	return sk_future_then(sk_sleep(SK_NSEC_PER_MSEC), resolve_inner, NULL);
}

SK_TEST(continuation_returning_pending_future_is_forwarded)
{
	chain_result = -1;
	CHECK_EQ(sk_test_run(1, t_forward, NULL), 0);
	CHECK_EQ(chain_result, 100);
}

/* No state block leaks: pending chains, timeouts and loops return memory. */
static uint64_t in_use_before, in_use_after;
static void measure_after(void *arg, int64_t v, int err)
{
	(void)arg; (void)v; (void)err;
	struct sk_mem_stats st;
	sk_mem_stats(0, &st);
	in_use_after = st.bytes_in_use;
}
static sk_future churn_body(void *arg)
{
	(void)arg;
	struct sk_promise *p = sk_promise_new();
	sk_future f = sk_promise_future(p);
	for (int i = 0; i < 5; i++)
		f = sk_future_then(f, add_one, NULL);
	f = sk_with_timeout(f, SK_NSEC_PER_SEC);
	sk_promise_set_value(p, 1);
	iters++;
	return sk_future_then(f, count_after_yield, NULL);
}

static sk_future t_no_leak(void *arg)
{
	(void)arg;
	struct sk_mem_stats st;
	/* The main future (a sleep) exists before and after the measurement;
	 * the timer heap is grown first, as it stays allocated by design. */
	sk_future main_f = sk_sleep(300 * SK_NSEC_PER_MSEC);
	sk_mem_stats(0, &st);
	in_use_before = st.bytes_in_use;
	iters = 0;
	in_use_after = 0;
	sk_future_on_done(sk_repeat(churn_body, NULL), measure_after, NULL);
	return main_f;
}

SK_TEST(pending_futures_free_their_state)
{
	CHECK_EQ(sk_test_run(1, t_no_leak, NULL), 0);
	CHECK(iters >= 1000);
	CHECK_EQ(in_use_after, in_use_before);
}
