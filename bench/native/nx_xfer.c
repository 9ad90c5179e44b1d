/*
 * nx_xfer.c - bench-nx-xfer: TCP throughput of the native stack between two
 * shards joined by an in-memory loop pair (no kernel, no NIC).
 *
 * Roadmap:
 *   main     options; sk_smp_run on 2 shards; the RESULT line.
 *   wire     sk_netdev_loop_pair(1 queue): end A for shard 0, end B for
 *            shard 1.  Each shard creates its own nx_stack instance on its
 *            end (A 10.0.0.1/24, B 10.0.0.2/24) and learns the other's MAC.
 *   phases   (shard 0, each step on both shards through sk_invoke_on_all)
 *            up -> run -> down, then shard 0 closes the devices.
 *            run: B accepts -c connections and counts what arrives until
 *            EOF; A opens them and sends --mib MiB spread evenly over them,
 *            then closes.  The clock runs from A's first connect to B's
 *            last EOF, so it includes the handshakes and the final ACKs.
 *   sending  zero-copy (sk_write_ref of a static buffer), at most 1 MiB
 *            queued per connection; the receiver only counts (consumes
 *            without reading): what is measured is the stack.
 *   bound    --timeout seconds: past it every socket is aborted and the
 *            run fails (exit 1), so a stuck stack cannot hang the bench.
 *
 * Prints one line:
 *   RESULT conns=N bytes=B secs=S mbps=M retransmits=R tx_dropped=D cpu_s=C
 * where mbps is 10^6 bytes per second of payload and cpu_s the process's
 * CPU time (user + system, whole run) so that a caller can tell how much
 * of the CPUs' busy time was someone else's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "native/nx.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/netdev.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#define MAX_CONNS 64
#define IP_A 0x0a000001u
#define IP_B 0x0a000002u
#define PORT 5000
#define SRC_LEN (1024 * 1024)		/* the buffer every write refers to */
#define WRITE_LEN (256 * 1024)		/* bytes per sk_write_ref */
#define TX_QUEUED_MAX (1024 * 1024)

static unsigned long long opt_conns = 1, opt_mib = 512, opt_timeout = 60;

struct conn {
	struct sk_sock *s;
	uint64_t total, done;
	bool eof, closing;
	int err;
};

static struct {
	struct sk_netdev *dev[2];
	struct nx_stack *st[2];
	struct sk_listener *l;
	struct conn tx[MAX_CONNS], rx[MAX_CONNS];
	sk_future fs_tx[MAX_CONNS], fs_rx[MAX_CONNS];	/* shard 0's, shard 1's */
	unsigned accepted;
	uint64_t t_start, t_end;
	unsigned eofs;
	bool timed_out;
	int err;		/* shard 0: the run's; the connections' are theirs */
	struct nx_stats stats[2];
	struct sk_timer watchdog;
} g;

static uint8_t src[SRC_LEN];

static void conn_fail(struct conn *c, int err)
{
	if (!c->err)
		c->err = err;
}

/* --- sending (shard 0) -------------------------------------------------- */

static void no_release(void *arg)
{
	(void)arg;
}

static sk_future tx_more(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_make_ready(SK_CONTINUE);
}

static sk_future tx_body(void *arg)
{
	struct conn *c = arg;

	if (!c->s)
		return sk_make_error(-ECANCELED);
	while (c->done < c->total && sk_write_queued(c->s) < TX_QUEUED_MAX) {
		uint64_t k = c->total - c->done;
		size_t at = (size_t)(c->done % SRC_LEN);
		if (k > WRITE_LEN)
			k = WRITE_LEN;
		if (k > SRC_LEN - at)
			k = SRC_LEN - at;
		int r = sk_write_ref(c->s, src + at, (size_t)k, no_release, NULL);
		if (r)
			return sk_make_error(r);
		c->done += k;
	}
	if (c->done == c->total)
		return sk_make_ready(SK_STOP);
	return sk_future_then(sk_flush(c->s), tx_more, NULL);
}

static sk_future closed(void *arg, int64_t v, int err)
{
	struct conn *c = arg;
	(void)v;
	if (err)
		conn_fail(c, err);
	c->s = NULL;
	return sk_make_ready(0);
}

/* Close after the transfer; a failed or aborted one is already gone. */
static sk_future conn_end(void *arg, int64_t v, int err)
{
	struct conn *c = arg;
	(void)v;
	if (err)
		conn_fail(c, err);
	if (!c->s)
		return sk_make_ready(0);
	if (err) {
		sk_abort(c->s);
		c->s = NULL;
		return sk_make_ready(0);
	}
	c->closing = true;
	return sk_future_then_wrapped(sk_close(c->s), closed, c);
}

static sk_future tx_connected(void *arg, int64_t v)
{
	struct conn *c = arg;
	c->s = sk_future_ptr_value(v);
	return sk_repeat(tx_body, c);
}

static sk_future run_a(void)
{
	struct sk_sockaddr b = { IP_B, PORT };

	g.t_start = sk_now_ns();
	for (unsigned i = 0; i < opt_conns; i++) {
		struct conn *c = &g.tx[i];
		/* An even split; the first connections take the remainder. */
		c->total = opt_mib * 1024 * 1024 / opt_conns +
			   (i < opt_mib * 1024 * 1024 % opt_conns);
		sk_future f = sk_future_then(nx_tcp_connect(g.st[0], &b), tx_connected, c);
		g.fs_tx[i] = sk_future_then_wrapped(f, conn_end, c);
	}
	return sk_when_all(g.fs_tx, (unsigned)opt_conns);
}

/* --- receiving (shard 1) ------------------------------------------------ */

static sk_future rx_got(void *arg, int64_t n)
{
	struct conn *c = arg;
	size_t avail;

	if (!c->s)
		return sk_make_error(-ECANCELED);
	if (n == 0) {
		c->eof = true;
		if (++g.eofs == opt_conns)
			g.t_end = sk_now_ns();
		return sk_make_ready(SK_STOP);
	}
	avail = sk_read_avail(c->s);
	c->done += avail;
	sk_read_consume(c->s, avail);
	return sk_make_ready(SK_CONTINUE);
}

static sk_future rx_body(void *arg)
{
	struct conn *c = arg;
	if (!c->s)
		return sk_make_error(-ECANCELED);
	return sk_future_then(sk_read(c->s), rx_got, c);
}

static sk_future accept_next(void *arg);

static sk_future accepted(void *arg, int64_t v)
{
	struct conn *c = &g.rx[g.accepted];
	(void)arg;
	c->s = sk_future_ptr_value(v);
	sk_future f = sk_future_then_wrapped(sk_repeat(rx_body, c), conn_end, c);
	g.fs_rx[g.accepted++] = f;
	if (g.accepted == opt_conns) {
		nx_tcp_listener_close(g.l);
		g.l = NULL;
		return sk_when_all(g.fs_rx, (unsigned)opt_conns);
	}
	return accept_next(NULL);
}

static sk_future accept_next(void *arg)
{
	(void)arg;
	return sk_future_then(nx_tcp_accept(g.l), accepted, NULL);
}

/* --- phases on both shards ---------------------------------------------- */

static sk_future up(void *arg)
{
	unsigned me = sk_shard_id();
	struct nx_config cfg;
	int r;
	(void)arg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.dev = g.dev[me];
	cfg.ip = me ? IP_B : IP_A;
	cfg.prefix = 24;
	memcpy(cfg.mac, g.dev[me]->mac, 6);
	r = nx_stack_create(&cfg, &g.st[me]);
	if (r)
		return sk_make_error(r);
	nx_arp_learn(g.st[me], me ? IP_A : IP_B, g.dev[!me]->mac);
	if (me == 1) {
		struct sk_sockaddr a = { IP_B, PORT };
		struct sk_listen_opts o = { 0 };
		r = nx_tcp_listen(g.st[1], &a, &o, &g.l);
		if (r)
			return sk_make_error(r);
	}
	return sk_make_ready(0);
}

static sk_future run(void *arg)
{
	(void)arg;
	return sk_shard_id() ? accept_next(NULL) : run_a();
}

static sk_future abort_all(void *arg)
{
	struct conn *cs = sk_shard_id() ? g.rx : g.tx;
	(void)arg;
	for (unsigned i = 0; i < opt_conns; i++) {
		if (cs[i].s && !cs[i].closing) {
			conn_fail(&cs[i], -ETIMEDOUT);
			sk_abort(cs[i].s);
			cs[i].s = NULL;
		}
	}
	if (sk_shard_id() == 1 && g.l) {
		nx_tcp_listener_close(g.l);
		g.l = NULL;
	}
	return sk_make_ready(0);
}

static sk_future down(void *arg)
{
	unsigned me = sk_shard_id();
	(void)arg;
	if (me == 1 && g.l) {
		nx_tcp_listener_close(g.l);
		g.l = NULL;
	}
	if (g.st[me]) {
		g.stats[me] = g.st[me]->stats;
		nx_stack_destroy(g.st[me]);
		g.st[me] = NULL;
	}
	return sk_make_ready(0);
}

static void watchdog_fire(struct sk_timer *t)
{
	(void)t;
	g.timed_out = true;
	sk_log_error("no end after %llu s: aborting every connection", opt_timeout);
	sk_future_ignore(sk_invoke_on_all(abort_all, NULL));
}

static sk_future then_run(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_invoke_on_all(run, NULL);
}

static sk_future then_down(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err && !g.err)
		g.err = err;
	return sk_invoke_on_all(down, NULL);
}

static sk_future finished(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	(void)err;
	sk_timer_cancel(&g.watchdog);
	sk_netdev_close(g.dev[0]);
	sk_netdev_close(g.dev[1]);
	sk_pkt_pool_trim();
	return sk_make_ready(0);
}

static sk_future xfer_main(void *arg)
{
	sk_future f;
	int r;
	(void)arg;

	if (sk_shard_count() != 2) {
		sk_log_error("needs exactly 2 shards");
		return sk_make_error(-EINVAL);
	}
	r = sk_netdev_loop_pair(1, 0, NULL, NULL, &g.dev[0], &g.dev[1]);
	if (r) {
		sk_log_error("loop pair: %s", strerror(-r));
		return sk_make_error(r);
	}
	sk_timer_init(&g.watchdog, watchdog_fire, NULL);
	sk_timer_arm(&g.watchdog, opt_timeout * SK_NSEC_PER_SEC);
	f = sk_future_then(sk_invoke_on_all(up, NULL), then_run, NULL);
	f = sk_future_then_wrapped(f, then_down, NULL);
	return sk_future_then_wrapped(f, finished, NULL);
}

int main(int argc, char **argv)
{
	static const struct sk_option mine[] = {
		{ "connections", 'c', SK_OPT_UINT, &opt_conns, "N",
		  "connections from shard 0 to shard 1 (1..64)" },
		{ "mib", 0, SK_OPT_UINT, &opt_mib, "N", "MiB to move in all" },
		{ "timeout", 0, SK_OPT_UINT, &opt_timeout, "SEC",
		  "abort and fail past this (the transfer must end)" },
		{ 0 },
	};
	static const struct sk_program prog = { "bench-nx-xfer",
		"TCP throughput of the native stack, shard 0 -> shard 1 over a loop pair.",
		mine };
	struct sk_opts o;
	uint64_t bytes = 0, secs_ns;
	bool level_given = false;
	int rc = sk_options_parse(&prog, argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 2;
	for (int i = 1; i < argc; i++)
		level_given |= !strncmp(argv[i], "--log-level", 11);
	/* The runtime's start-up line would sit between the results. */
	if (!level_given)
		o.log_level = SK_LOG_WARN;
	if (opt_conns < 1 || opt_conns > MAX_CONNS || opt_mib < 1 || opt_mib > 1 << 20 ||
	    opt_timeout < 1) {
		fprintf(stderr, "bench-nx-xfer: -c is 1..%d, --mib and --timeout at least 1\n",
			MAX_CONNS);
		return 2;
	}
	o.smp = 2;
	for (size_t i = 0; i < SRC_LEN; i++)
		src[i] = (uint8_t)(i * 131 + (i >> 9));
	rc = sk_smp_run(&o, xfer_main, NULL);
	for (unsigned i = 0; i < opt_conns; i++) {
		bytes += g.rx[i].done;
		if (!g.err)
			g.err = g.tx[i].err ? g.tx[i].err : g.rx[i].err;
	}
	if (rc || g.err || g.timed_out || g.eofs != opt_conns ||
	    bytes != opt_mib * 1024 * 1024) {
		fprintf(stderr, "bench-nx-xfer: failed: status %d, error %d (%s), %s%u/%llu EOFs, "
			"%" PRIu64 " of %llu bytes\n", rc, g.err, strerror(g.err < 0 ? -g.err : 0),
			g.timed_out ? "timed out, " : "", g.eofs, opt_conns, bytes,
			opt_mib * 1024 * 1024);
		return 1;
	}
	secs_ns = g.t_end - g.t_start;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("RESULT conns=%llu bytes=%" PRIu64 " secs=%.3f mbps=%.1f retransmits=%" PRIu64
	       " tx_dropped=%" PRIu64 " cpu_s=%.3f\n", opt_conns, bytes, (double)secs_ns / 1e9,
	       (double)bytes * 1e3 / (double)secs_ns,
	       g.stats[0].tcp_retransmits + g.stats[1].tcp_retransmits,
	       g.stats[0].tx_dropped + g.stats[1].tx_dropped,
	       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return 0;
}
