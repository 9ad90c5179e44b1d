/*
 * test_reactor.c - the loop itself: fairness between task chains, the task
 * budget, sleeping shards woken by messages, per-shard metrics, log lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/metrics.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

/* Two chains of yields interleave: neither runs to completion first. */
static unsigned a_steps, b_steps, b_when_a_done;
static sk_future step_a(void *arg)
{
	(void)arg;
	if (++a_steps == 1000) {
		b_when_a_done = b_steps;
		return sk_make_ready(SK_STOP);
	}
	return sk_yield();
}
static sk_future step_b(void *arg)
{
	(void)arg;
	if (++b_steps == 1000)
		return sk_make_ready(SK_STOP);
	return sk_yield();
}
static sk_future t_fair(void *arg)
{
	(void)arg;
	a_steps = b_steps = 0;
	static sk_future fs[2];	/* sk_when_all keeps it until done */
	fs[0] = sk_repeat(step_a, NULL);
	fs[1] = sk_repeat(step_b, NULL);
	return sk_test_status0(sk_when_all(fs, 2));
}

SK_TEST(task_chains_interleave_fifo)
{
	CHECK_EQ(sk_test_run(1, t_fair, NULL), 0);
	CHECK_EQ(a_steps, 1000);
	CHECK_EQ(b_steps, 1000);
	/* FIFO scheduling: B is within one step of A all along. */
	CHECK(b_when_a_done >= 998);
}

/*
 * Budget: a chain of 20 us busy tasks runs for 100 ms on shard 0 while
 * shard 1 keeps asking it to run a tiny request.  With a 0.5 ms budget the
 * pollers run between task batches, so no request may wait longer than a
 * few ms (a starving loop would hold them for the whole 100 ms).
 */
static uint64_t busy_until, worst_wait;
static unsigned answered;
static sk_future busy_step(void *arg)
{
	(void)arg;
	uint64_t t = sk_now_ns();
	while (sk_now_ns() - t < 20 * SK_NSEC_PER_USEC)
		;
	if (sk_now_ns() >= busy_until)
		return sk_make_ready(SK_STOP);
	return sk_yield();
}
static sk_future tiny(void *arg)
{
	(void)arg;
	return sk_make_ready(0);
}
static uint64_t asked_at;
static sk_future one_ask(void *arg)
{
	(void)arg;
	asked_at = sk_now_ns();
	return sk_submit_to(0, tiny, NULL);
}
static sk_future record_ask(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	uint64_t w = sk_now_ns() - asked_at;
	if (w > worst_wait)
		worst_wait = w;
	answered++;
	return sk_make_ready(sk_now_ns() >= busy_until ? SK_STOP : SK_CONTINUE);
}
static sk_future ask_body(void *arg)
{
	(void)arg;
	return sk_future_then(one_ask(NULL), record_ask, NULL);
}
static sk_future asker(void *arg)
{
	(void)arg;
	return sk_repeat(ask_body, NULL);
}
static sk_future t_budget(void *arg)
{
	(void)arg;
	busy_until = sk_now_ns() + 100 * SK_NSEC_PER_MSEC;
	worst_wait = 0;
	answered = 0;
	static sk_future fs[2];	/* sk_when_all keeps it until done */
	fs[0] = sk_repeat(busy_step, NULL);
	fs[1] = sk_submit_to(1, asker, NULL);
	return sk_test_status0(sk_when_all(fs, 2));
}

SK_TEST(task_budget_lets_pollers_run_during_long_task_chains)
{
	CHECK_EQ(sk_test_run(2, t_budget, NULL), 0);
	CHECK(answered > 20);
	printf("# worst wait %.2f ms over %u requests\n", worst_wait / 1e6, answered);
	/* Without the budget a request would wait for the whole 100 ms
	 * chain; with it, about one budget (0.5 ms) plus scheduling noise. */
	CHECK(worst_wait < 50 * SK_NSEC_PER_MSEC);
}

/*
 * Sleeping shards are woken by messages: shard 1 has no timers, so once
 * asleep only a wake from shard 0 can get it to answer.  Each request is
 * bounded by with_timeout so a lost wake-up fails instead of hanging.
 */
static unsigned woke_ok, woke_timeout;
static uint64_t lat[50];
static unsigned nlat;
static int sleeps_metric;
static uint64_t sleeps_before;
static sk_future rec_wake(void *arg, int64_t v, int err)
{
	(void)v;
	if (err == -ETIMEDOUT)
		woke_timeout++;
	else if (!err) {
		woke_ok++;
		lat[nlat++] = sk_now_ns() - *(uint64_t *)arg;
	}
	return sk_make_ready(nlat + woke_timeout >= 50 ? SK_STOP : SK_CONTINUE);
}
static uint64_t sent_at;
static sk_future send_after_idle(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sent_at = sk_now_ns();
	return sk_future_then_wrapped(
		sk_with_timeout(sk_submit_to(1, tiny, NULL), SK_NSEC_PER_SEC), rec_wake, &sent_at);
}
static sk_future wake_body(void *arg)
{
	(void)arg;
	/* 2 ms idle: far beyond the 20 us spin, so shard 1 goes to sleep. */
	return sk_future_then(sk_sleep(2 * SK_NSEC_PER_MSEC), send_after_idle, NULL);
}
static sk_future t_wake(void *arg)
{
	(void)arg;
	sleeps_metric = sk_metric_find("reactor_sleeps");
	sleeps_before = sk_metric_shard(sleeps_metric, 1);
	woke_ok = woke_timeout = nlat = 0;
	return sk_test_status0(sk_repeat(wake_body, NULL));
}
static uint64_t sleeps_after;
static sk_future read_sleeps(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sleeps_after = sk_metric_shard(sleeps_metric, 1);
	return sk_make_ready(0);
}
static sk_future t_wake_all(void *arg)
{
	return sk_future_then(t_wake(arg), read_sleeps, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

SK_TEST(sleeping_shard_is_woken_by_cross_shard_messages)
{
	CHECK_EQ(sk_test_run(2, t_wake_all, NULL), 0);
	CHECK_EQ(woke_timeout, 0);
	CHECK_EQ(woke_ok, 50);
	/* Shard 1 really slept between requests. */
	CHECK(sleeps_after - sleeps_before >= 40);
	qsort(lat, nlat, sizeof(lat[0]), cmp_u64);
	printf("# wake round trip: median %.1f us, max %.1f us\n",
	       nlat ? lat[nlat / 2] / 1e3 : 0.0, nlat ? lat[nlat - 1] / 1e3 : 0.0);
	CHECK(nlat && lat[nlat / 2] < 2 * SK_NSEC_PER_MSEC);
}

/* Metrics: per-shard copies, summed on demand. */
static int m_id;
static sk_future add_mine(void *arg)
{
	(void)arg;
	sk_metric_add(m_id, 10 + sk_shard_id());
	sk_metric_add(m_id, 1);
	return sk_make_ready(0);
}
static uint64_t per[3], total;
static uint64_t polls_total;
static sk_future read_metrics(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	for (unsigned i = 0; i < 3; i++)
		per[i] = sk_metric_shard(m_id, i);
	total = sk_metric_total(m_id);
	polls_total = sk_metric_total(sk_metric_find("reactor_polls"));
	return sk_make_ready(0);
}
static sk_future t_metrics(void *arg)
{
	(void)arg;
	m_id = sk_metric_register("test_counter", "a test counter");
	return sk_future_then(sk_future_then(sk_invoke_on_all(add_mine, NULL),
					     read_metrics, NULL),
			      read_metrics, NULL);
}

SK_TEST(metrics_are_per_shard_and_sum)
{
	CHECK_EQ(sk_test_run(3, t_metrics, NULL), 0);
	CHECK(m_id >= 0);
	CHECK_EQ(per[0], 11);
	CHECK_EQ(per[1], 12);
	CHECK_EQ(per[2], 13);
	CHECK_EQ(total, 36);
	CHECK(polls_total > 0);
	CHECK_EQ(sk_metric_register("test_counter", "again"), m_id);
	CHECK_EQ(sk_metric_find("no_such_counter"), -ENOENT);
	CHECK(strcmp(sk_metric_name(m_id), "test_counter") == 0);
}

/* Log lines: time, shard, level, one write per line, level filter. */
static sk_future log_from_shard(void *arg)
{
	(void)arg;
	sk_log_info("hello from %u", sk_shard_id());
	sk_log_debug("hidden");
	return sk_make_ready(0);
}
static sk_future t_log(void *arg)
{
	(void)arg;
	sk_log_set_level(SK_LOG_INFO);
	return sk_test_status0(sk_invoke_on_all(log_from_shard, NULL));
}

SK_TEST(log_lines_carry_time_shard_and_level)
{
	char path[] = "/tmp/sk-test-log-XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(2);
	fflush(stderr);
	dup2(fd, 2);
	int rc = sk_test_run(2, t_log, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK_EQ(rc, 0);
	char buf[4096] = { 0 };
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	CHECK(n > 0);
	CHECK(strstr(buf, "[shard 0] info: hello from 0\n") != NULL);
	CHECK(strstr(buf, "[shard 1] info: hello from 1\n") != NULL);
	CHECK(strstr(buf, "hidden") == NULL);
	/* 2026-11-25T01:50:23.123456Z */
	const char *l = strstr(buf, "[shard 1]");
	CHECK(l && l - buf >= 28 && l[-2] == 'Z' && l[-18] == 'T');
}
