/*
 * bench_smp - cross-shard queues between 2 shards (one per core):
 *  - one-way throughput: shard 0 posts N messages (sk_smp_post, batched
 *    publish) that shard 1 runs; messages/s from first post to last run;
 *  - submit_to throughput with 256 requests in flight (request + reply);
 *  - round-trip latency: one submit_to at a time.
 * 5 repetitions each, medians.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include "bench_common.h"
#include "platform.h"
#include "skerry/future.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

#define ONEWAY_N 20000000u
#define RT_WINDOW 256
#define RT_N 4000000u
#define PINGS 200000u

static double oneway[REPEATS], rt_tput[REPEATS], rt_lat[REPEATS];
static int rep;
static uint64_t received;		/* shard 1 only */
static _Atomic uint64_t oneway_end;

static void sink(void *arg)
{
	(void)arg;
	if (++received == ONEWAY_N)
		atomic_store(&oneway_end, sk_plat_now_ns());
}

static sk_future reset_sink(void *arg)
{
	(void)arg;
	received = 0;
	return sk_make_ready(0);
}

static bool oneway_done(void *arg)
{
	(void)arg;
	return atomic_load(&oneway_end) != 0;
}

static sk_future wait_a_bit(void *arg)
{
	(void)arg;
	return sk_yield();
}

static uint64_t t0;
static sk_future oneway_record(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	oneway[rep] = (double)ONEWAY_N / ((double)(atomic_load(&oneway_end) - t0) / 1e9);
	return sk_make_ready(0);
}

static sk_future oneway_run(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	atomic_store(&oneway_end, 0);
	t0 = sk_plat_now_ns();
	for (uint32_t i = 0; i < ONEWAY_N; i++) {
		while (sk_smp_post(1, sink, NULL) == -ENOBUFS) {
			sk_smp_flush();
			sk_plat_cpu_relax();
		}
	}
	sk_smp_flush();
	return sk_future_then(sk_do_until(oneway_done, wait_a_bit, NULL), oneway_record, NULL);
}

/* Round trips. */
static sk_future echo(void *arg)
{
	return sk_make_ready((int64_t)(uintptr_t)arg);
}

static sk_future fs[RT_WINDOW];
static uint32_t rt_sent;
static bool rt_done(void *arg)
{
	(void)arg;
	return rt_sent >= RT_N;
}
static sk_future rt_collect(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	for (int i = 0; i < RT_WINDOW; i++)
		sk_future_get(fs[i], NULL);
	return sk_make_ready(0);
}
static sk_future rt_window(void *arg)
{
	(void)arg;
	for (int i = 0; i < RT_WINDOW; i++)
		fs[i] = sk_submit_to(1, echo, (void *)(uintptr_t)i);
	rt_sent += RT_WINDOW;
	return sk_future_then(sk_when_all(fs, RT_WINDOW), rt_collect, NULL);
}
static sk_future rt_record(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	rt_tput[rep] = (double)RT_N / ((double)(sk_plat_now_ns() - t0) / 1e9);
	rt_sent = 0;
	t0 = sk_plat_now_ns();
	return sk_make_ready(0);
}

static uint32_t pings;
static sk_future ping(void *arg)
{
	(void)arg;
	if (pings++ == PINGS)
		return sk_make_ready(SK_STOP);
	return sk_submit_to(1, echo, NULL);	/* value 0: continue */
}
static sk_future lat_record(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	rt_lat[rep] = (double)(sk_plat_now_ns() - t0) / PINGS;
	pings = 0;
	return sk_make_ready(0);
}

static sk_future one_rep(void *arg, int64_t v);

static sk_future next_rep(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	rep++;
	return one_rep(NULL, 0);
}

static sk_future latency_phase(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	pings = 0;
	t0 = sk_plat_now_ns();
	return sk_future_then(sk_repeat(ping, NULL), lat_record, NULL);
}

static sk_future roundtrip_phase(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	rt_sent = 0;
	t0 = sk_plat_now_ns();
	sk_future f = sk_do_until(rt_done, rt_window, NULL);
	f = sk_future_then(f, rt_record, NULL);
	return sk_future_then(f, latency_phase, NULL);
}

static sk_future one_rep(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	if (rep == REPEATS)
		return sk_make_ready(0);
	sk_future f = sk_submit_to(1, reset_sink, NULL);
	f = sk_future_then(f, oneway_run, NULL);
	f = sk_future_then(f, roundtrip_phase, NULL);
	return sk_future_then(f, next_rep, NULL);
}

static sk_future bench_main(void *arg)
{
	(void)arg;
	if (sk_shard_count() < 2)
		return sk_make_error(-EINVAL);
	return one_rep(NULL, 0);
}

int main(int argc, char **argv)
{
	static const struct sk_option none[] = { { 0 } };
	static const struct sk_program prog = { "bench_smp",
		"cross-shard message throughput and round-trip latency (2 shards)", none };
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (!o.smp)
		o.smp = 2;
	rc = sk_smp_run(&o, bench_main, NULL);
	if (rc) {
		fprintf(stderr, "bench_smp: run failed (%d); needs at least 2 shards\n", rc);
		return 1;
	}
	double ow = median(oneway, REPEATS), rt = median(rt_tput, REPEATS),
	       lat = median(rt_lat, REPEATS);
	printf("one-way messages (sk_smp_post):     %8.2f M msgs/s  (median of %d x %u)\n",
	       ow / 1e6, REPEATS, ONEWAY_N);
	printf("submit_to, %d in flight:           %8.2f M round trips/s (median of %d x %u)\n",
	       RT_WINDOW, rt / 1e6, REPEATS, RT_N);
	printf("submit_to round-trip latency:       %8.0f ns  (median of %d x %u)\n",
	       lat, REPEATS, PINGS);
	printf("RESULT bench=smp case=oneway_post mmsgs=%.3f\n", ow / 1e6);
	printf("RESULT bench=smp case=submit_to_window256 mops=%.3f\n", rt / 1e6);
	printf("RESULT bench=smp case=roundtrip_latency ns=%.0f\n", lat);
	return 0;
}
