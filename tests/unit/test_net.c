/*
 * test_net.c - the socket API on the posix stack, over the kernel's
 * loopback: echo of patterned data on many connections (1 and 2 shards),
 * input backpressure (a server that stops reading), output backpressure
 * with sk_flush, close after a large write, pullup across buffers, refused
 * connects, listener close, UDP echo, and cross-shard wake-ups of a shard
 * asleep in io_uring.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9));
}

/*
 * Built twice: test_net runs on the posix stack over the kernel's loopback,
 * test_net_native (-DSK_TEST_NATIVE) runs the same cases on the native
 * stack over a loop device that returns every frame to itself, one queue
 * per shard - so the native stack honours the same socket semantics;
 * test_net_native_1q with one queue for all shards (shard 0 receives and
 * forwards in software, the others transmit through it).
 */
#ifdef SK_TEST_NATIVE
#define TEST_HOST "10.0.0.1"
#ifndef SK_TEST_NETDEV
#define SK_TEST_NETDEV "loop"
#endif
#else
#define TEST_HOST "127.0.0.1"
#endif

static sk_future net_up(void *arg)
{
#ifdef SK_TEST_NATIVE
	struct sk_net_config cfg = { .stack = SK_STACK_NATIVE, .netdev = SK_TEST_NETDEV,
				     .ip = TEST_HOST "/24" };
#ifdef SK_TEST_EAL
	cfg.eal = SK_TEST_EAL;
#endif
#else
	struct sk_net_config cfg = { .stack = SK_STACK_POSIX };
#endif
	(void)arg;
	/* Small buffers so that a few KiB already span several of them. */
	cfg.rx_buffers = 64;
	cfg.rx_buffer_size = 2048;
	cfg.rx_limit = 32 * 1024;
	int r = sk_net_init(&cfg);
	return r ? sk_make_error(r) : sk_make_ready(0);
}

static sk_future net_down(void *arg)
{
	(void)arg;
	sk_net_fini();
	return sk_make_ready(0);
}

/* --- echo server -------------------------------------------------------- */

struct echo_srv {
	struct sk_listener *l;
	unsigned conns;		/* accepted */
	unsigned want;		/* stop accepting after this many */
	unsigned delay_ms;	/* stop reading this long after the first byte */
};

struct echo_conn {
	struct sk_sock *s;
	struct echo_srv *srv;
	bool delayed;
};

static sk_future echo_closed(void *arg, int64_t v)
{
	(void)v;
	sk_free(arg);
	return sk_make_ready(SK_STOP);
}

static sk_future echo_got(void *arg, int64_t n)
{
	struct echo_conn *c = arg;
	size_t len;
	const uint8_t *p;

	if (n == 0)
		return sk_future_then(sk_close(c->s), echo_closed, c);
	if (c->srv->delay_ms && !c->delayed) {
		/* Stop reading: the stack must stop too, at rx_limit. */
		c->delayed = true;
		return sk_future_then(sk_sleep(c->srv->delay_ms * SK_NSEC_PER_MSEC),
				      sk_test_zero_, NULL);
	}
	while ((p = sk_read_peek(c->s, &len)) != NULL) {
		if (sk_write(c->s, p, len))
			return sk_make_error(-EIO);
		sk_read_consume(c->s, len);
	}
	if (sk_write_queued(c->s) > 64 * 1024)
		return sk_future_then(sk_flush(c->s), sk_test_zero_, NULL);
	return sk_make_ready(0);
}

static sk_future echo_body(void *arg)
{
	struct echo_conn *c = arg;
	return sk_future_then(sk_read(c->s), echo_got, c);
}

static sk_future accept_loop(void *arg);

static sk_future accepted(void *arg, int64_t v)
{
	struct echo_srv *srv = arg;
	struct echo_conn *c = sk_zalloc(sizeof(*c));
	c->s = sk_future_ptr_value(v);
	c->srv = srv;
	sk_future_ignore(sk_repeat(echo_body, c));
	srv->conns++;
	return sk_make_ready(srv->conns >= srv->want ? SK_STOP : 0);
}

static sk_future accept_loop(void *arg)
{
	struct echo_srv *srv = arg;
	return sk_future_then(sk_accept(srv->l), accepted, srv);
}

/* --- client ------------------------------------------------------------- */

struct client {
	struct sk_sockaddr to;
	uint64_t total;		/* bytes to send and get back */
	uint64_t sent, got;
	bool bad;
	struct sk_sock *s;
	unsigned *done;
};

static sk_future client_read(void *arg);

static sk_future client_got(void *arg, int64_t n)
{
	struct client *c = arg;
	size_t len;
	const uint8_t *p;

	if (n == 0)
		return sk_make_error(-EPIPE);	/* early EOF */
	while ((p = sk_read_peek(c->s, &len)) != NULL) {
		for (size_t i = 0; i < len; i++)
			if (p[i] != pattern(c->got + i))
				c->bad = true;
		c->got += len;
		sk_read_consume(c->s, len);
	}
	/* Send more as the echo comes back: output stays bounded. */
	while (c->sent < c->total && c->sent - c->got < 256 * 1024) {
		uint8_t buf[4096];
		size_t k = c->total - c->sent < sizeof(buf) ? c->total - c->sent : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(c->sent + i);
		if (sk_write(c->s, buf, k))
			return sk_make_error(-EIO);
		c->sent += k;
	}
	return sk_make_ready(c->got >= c->total ? SK_STOP : 0);
}

static sk_future client_read(void *arg)
{
	struct client *c = arg;
	return sk_future_then(sk_read(c->s), client_got, c);
}

static sk_future client_finish(void *arg, int64_t v)
{
	struct client *c = arg;
	(void)v;
	(*c->done)++;
	return sk_close(c->s);
}

static sk_future client_connected(void *arg, int64_t v)
{
	struct client *c = arg;
	c->s = sk_future_ptr_value(v);
	/* Prime the pump: client_got sends the first window. */
	sk_future f = client_got(c, 1);
	sk_future_ignore(f);
	return sk_future_then(sk_repeat(client_read, c), client_finish, c);
}

static sk_future client_run(struct client *c)
{
	return sk_future_then(sk_connect(&c->to), client_connected, c);
}

/* --- echo test: N clients on every shard against listeners on every shard */

#define ECHO_CLIENTS 512
struct echo_test {
	unsigned nclients;
	uint64_t bytes;
	unsigned delay_ms;
	uint16_t port;
	struct echo_srv srv[SK_MAX_SHARDS];
	struct client cl[SK_MAX_SHARDS][ECHO_CLIENTS];
	unsigned done[SK_MAX_SHARDS];
	sk_future fs[SK_MAX_SHARDS][ECHO_CLIENTS];
};
static struct echo_test et;

static sk_future echo_listen(void *arg)
{
	struct echo_srv *srv = &et.srv[sk_shard_id()];
	struct sk_sockaddr a;
	struct sk_listen_opts o = { .reuseport = true };
	(void)arg;
	sk_addr_parse(TEST_HOST, et.port, &a);
	int r = sk_listen(&a, &o, &srv->l);
	if (r)
		return sk_make_error(r);
	if (!et.port) {
		sk_listener_addr(srv->l, &a);
		et.port = a.port;
	}
	srv->want = 1000000;
	srv->delay_ms = et.delay_ms;
	sk_future_ignore(sk_repeat(accept_loop, srv));
	return sk_make_ready(0);
}

static sk_future echo_clients(void *arg)
{
	unsigned me = sk_shard_id();
	(void)arg;
	for (unsigned i = 0; i < et.nclients; i++) {
		struct client *c = &et.cl[me][i];
		memset(c, 0, sizeof(*c));
		sk_addr_parse(TEST_HOST, et.port, &c->to);
		c->total = et.bytes;
		c->done = &et.done[me];
		et.fs[me][i] = client_run(c);
	}
	return sk_when_all(et.fs[me], et.nclients);
}

static sk_future echo_stop(void *arg)
{
	(void)arg;
	sk_listener_close(et.srv[sk_shard_id()].l);
	/* Let the server side of every connection see EOF and close. */
	return sk_sleep(50 * SK_NSEC_PER_MSEC);
}

typedef sk_future (*step_fn)(void *);

static sk_future then_invoke(void *arg, int64_t v)
{
	(void)v;
	return sk_invoke_on_all(*(step_fn *)arg, NULL);
}

/* Run @steps one after the other, each on every shard. */
static sk_future chain(step_fn *steps)
{
	sk_future f = sk_invoke_on_all(steps[0], NULL);
	for (unsigned i = 1; steps[i]; i++)
		f = sk_future_then(f, then_invoke, &steps[i]);
	return sk_test_status0(f);
}

/* Shard 0 binds port 0 first; the others then share the port it got. */
static sk_future echo_listen_first(void *arg)
{
	return sk_shard_id() == 0 ? echo_listen(arg) : sk_make_ready(0);
}

static sk_future echo_listen_rest(void *arg)
{
	return sk_shard_id() != 0 ? echo_listen(arg) : sk_make_ready(0);
}

static step_fn echo_steps[] = { net_up, echo_listen_first, echo_listen_rest,
				echo_clients, echo_stop, net_down, NULL };

static sk_future echo_main(void *arg)
{
	(void)arg;
	return chain(echo_steps);
}

static int run_echo(unsigned shards, unsigned clients, uint64_t bytes, unsigned delay_ms)
{
	memset(&et, 0, sizeof(et));
	et.nclients = clients;
	et.bytes = bytes;
	et.delay_ms = delay_ms;
	int r = sk_test_run(shards, echo_main, NULL);
	for (unsigned s = 0; s < shards; s++) {
		if (et.done[s] != clients)
			return -1000 - (int)s;
		for (unsigned i = 0; i < clients; i++)
			if (et.cl[s][i].got != bytes || et.cl[s][i].bad)
				return -2000 - (int)i;
	}
	return r;
}

SK_TEST(echo_one_shard_many_connections_bytes_exact)
{
	CHECK_EQ(run_echo(1, 8, 300 * 1000, 0), 0);
}

SK_TEST(echo_two_shards_reuseport_bytes_exact)
{
	CHECK_EQ(run_echo(2, 8, 200 * 1000, 0), 0);
}

SK_TEST(five_hundred_connections_at_once)
{
	/* 1000 descriptors: both ends live in this process. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
		rl.rlim_cur = 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* More than the accept queue's high mark arrive in one burst. */
	CHECK_EQ(run_echo(1, 500, 2000, 0), 0);
	CHECK_EQ(et.srv[0].conns, 500);
}

SK_TEST(echo_megabytes_through_small_buffers)
{
	/* 64 buffers of 2 KiB per shard carry 4 MB per connection. */
	CHECK_EQ(run_echo(1, 2, 4 * 1000 * 1000, 0), 0);
}

SK_TEST(server_that_stops_reading_pauses_the_stack_then_resumes)
{
	CHECK_EQ(run_echo(1, 2, 1000 * 1000, 200), 0);
}

static sk_future down_then(void *arg, int64_t v)
{
	(void)v;
	return net_down(arg);
}

static void noop_release(void *arg)
{
	(void)arg;
}

/* --- small cases, one shard --------------------------------------------- */

struct misc {
	struct sk_listener *l;
	struct sk_sockaddr addr;
	struct sk_sock *srv, *cli;
	int64_t result;
	int err;
	uint64_t got;
	bool bad;
};
static struct misc m;

static void keep(void *arg, int64_t v, int err)
{
	(void)arg;
	m.result = v;
	m.err = err;
}

static sk_future listen_any(void)
{
	struct sk_listen_opts o = { 0 };
	sk_addr_parse(TEST_HOST, 0, &m.addr);
	int r = sk_listen(&m.addr, &o, &m.l);
	if (r)
		return sk_make_error(r);
	sk_listener_addr(m.l, &m.addr);
	return sk_make_ready(0);
}

/* The stack on this shard and a listener on a free port. */
static sk_future up_and_listen(void)
{
	sk_future f = net_up(NULL);
	return sk_future_failed(f) ? f : listen_any();
}

/* connect refused: nobody listens on the port we just released. */
static sk_future refused_main(void *arg)
{
	(void)arg;
	sk_future f = up_and_listen();
	if (sk_future_failed(f))
		return f;
	sk_listener_close(m.l);
	sk_future_on_done(sk_connect(&m.addr), keep, NULL);
	return sk_future_then(sk_sleep(200 * SK_NSEC_PER_MSEC), down_then, NULL);
}

SK_TEST(connect_to_closed_port_is_refused)
{
	memset(&m, 0, sizeof(m));
	CHECK_EQ(sk_test_run(1, refused_main, NULL), 0);
	CHECK_EQ(m.err, -ECONNREFUSED);
}

static int accept_err;
static void keep_accept(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	accept_err = err;
}

static sk_future lclose_main(void *arg)
{
	(void)arg;
	sk_future f = up_and_listen();
	if (sk_future_failed(f))
		return f;
	sk_future_on_done(sk_accept(m.l), keep_accept, NULL);
	sk_listener_close(m.l);
	return sk_future_then(sk_sleep(20 * SK_NSEC_PER_MSEC), down_then, NULL);
}

SK_TEST(closing_a_listener_cancels_its_accept)
{
	memset(&m, 0, sizeof(m));
	accept_err = 0;
	CHECK_EQ(sk_test_run(1, lclose_main, NULL), 0);
	CHECK_EQ(accept_err, -ECANCELED);
}

/*
 * Big write then close: the server queues 2 MB and closes at once; the
 * client must still get every byte and then EOF.  The client reads in a
 * second step, after the close, to make the close wait for the output.
 */
static sk_future bw_read(void *arg);
static sk_future bw_got(void *arg, int64_t n)
{
	size_t len;
	const uint8_t *p;
	(void)arg;
	if (n == 0)
		return sk_make_ready(SK_STOP);
	while ((p = sk_read_peek(m.cli, &len)) != NULL) {
		for (size_t i = 0; i < len; i++)
			m.bad |= p[i] != pattern(m.got + i);
		m.got += len;
		sk_read_consume(m.cli, len);
	}
	return sk_make_ready(0);
}
static sk_future bw_read(void *arg)
{
	return sk_future_then(sk_read(m.cli), bw_got, arg);
}
static sk_future bw_accepted(void *arg, int64_t v)
{
	static uint8_t buf[2000000];
	(void)arg;
	m.srv = sk_future_ptr_value(v);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	/* Half copied, half by reference. */
	sk_write(m.srv, buf, 1000000);
	sk_write_ref(m.srv, buf + 1000000, 1000000, noop_release, NULL);
	sk_future_ignore(sk_close(m.srv));
	return sk_repeat(bw_read, NULL);
}
static sk_future bw_connected(void *arg, int64_t v)
{
	(void)arg;
	m.cli = sk_future_ptr_value(v);
	return sk_future_then(sk_accept(m.l), bw_accepted, NULL);
}
static sk_future bw_done(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_listener_close(m.l);
	return sk_future_then(sk_close(m.cli), down_then, NULL);
}
static sk_future bigwrite_main(void *arg)
{
	(void)arg;
	sk_future f = up_and_listen();
	if (sk_future_failed(f))
		return f;
	f = sk_future_then(sk_connect(&m.addr), bw_connected, NULL);
	return sk_future_then(f, bw_done, NULL);
}

SK_TEST(close_after_big_write_delivers_every_byte_then_eof)
{
	memset(&m, 0, sizeof(m));
	CHECK_EQ(sk_test_run(1, bigwrite_main, NULL), 0);
	CHECK_EQ(m.got, 2000000);
	CHECK(!m.bad);
}

/*
 * Pullup: 10 KiB arrive in 2 KiB buffers; pullup makes them contiguous.
 */
static sk_future pu_got(void *arg, int64_t n)
{
	size_t len;
	const uint8_t *p;
	(void)arg;
	if (n <= 0)
		return sk_make_error(-EPIPE);
	if (sk_read_avail(m.srv) < 10000)
		return sk_make_ready(0);	/* wait for the rest */
	if (sk_read_pullup(m.srv, 10000))
		return sk_make_error(-ENOMEM);
	p = sk_read_peek(m.srv, &len);
	m.result = (int64_t)len;
	for (size_t i = 0; i < 10000 && i < len; i++)
		m.bad |= p[i] != pattern(i);
	sk_read_consume(m.srv, 10000);
	m.got = sk_read_avail(m.srv);
	return sk_make_ready(SK_STOP);
}
static sk_future pu_read(void *arg)
{
	return sk_future_then(sk_read(m.srv), pu_got, arg);
}
static sk_future pu_accepted(void *arg, int64_t v)
{
	(void)arg;
	m.srv = sk_future_ptr_value(v);
	return sk_repeat(pu_read, NULL);
}
static sk_future pu_connected(void *arg, int64_t v)
{
	uint8_t buf[10000];
	(void)arg;
	m.cli = sk_future_ptr_value(v);
	/* Separate writes a little apart so they arrive as several buffers. */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	sk_write(m.cli, buf, sizeof(buf));
	return sk_future_then(sk_accept(m.l), pu_accepted, NULL);
}
static sk_future pu_done(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_listener_close(m.l);
	sk_abort(m.srv);
	return sk_future_then(sk_close(m.cli), down_then, NULL);
}
static sk_future pullup_main(void *arg)
{
	(void)arg;
	sk_future f = up_and_listen();
	if (sk_future_failed(f))
		return f;
	f = sk_future_then(sk_connect(&m.addr), pu_connected, NULL);
	return sk_future_then(f, pu_done, NULL);
}

SK_TEST(pullup_joins_buffers)
{
	memset(&m, 0, sizeof(m));
	CHECK_EQ(sk_test_run(1, pullup_main, NULL), 0);
	CHECK(m.result >= 10000);
	CHECK(!m.bad);
	CHECK_EQ(m.got, 0);
}

/* UDP: a datagram to ourselves and back. */
static struct sk_udp *u1, *u2;
static struct sk_dgram dg;
static sk_future udp_got(void *arg, int64_t n)
{
	(void)arg;
	m.result = n;
	m.bad = n != 5 || memcmp(dg.data, "hello", 5) != 0;
	sk_udp_release(u2, &dg);
	sk_udp_close(u1);
	sk_udp_close(u2);
	return net_down(NULL);
}
static sk_future udp_main(void *arg)
{
	struct sk_sockaddr a, b;
	(void)arg;
	sk_future f = net_up(NULL);
	if (sk_future_failed(f))
		return f;
	sk_addr_parse(TEST_HOST, 0, &a);
	if (sk_udp_bind(&a, false, &u1) || sk_udp_bind(&a, false, &u2))
		return sk_make_error(-EIO);
	sk_udp_addr(u2, &b);
	f = sk_udp_recv(u2, &dg);
	if (sk_udp_send(u1, &b, "hello", 5))
		return sk_make_error(-EIO);
	return sk_future_then(f, udp_got, NULL);
}

SK_TEST(udp_datagram_round_trip)
{
	memset(&m, 0, sizeof(m));
	CHECK_EQ(sk_test_run(1, udp_main, NULL), 0);
	CHECK_EQ(m.result, 5);
	CHECK(!m.bad);
}

/*
 * A shard asleep in io_uring_enter must wake for cross-shard work: 200
 * sequential round trips to an idle shard 1.
 */
static sk_future pong(void *arg)
{
	(void)arg;
	return sk_make_ready(sk_shard_id());
}
static unsigned pings;
static sk_future ping(void *arg);
static sk_future ping_then(void *arg, int64_t v)
{
	(void)v;
	return ping(arg);
}
static sk_future ping_back(void *arg, int64_t v)
{
	if (v != 1)
		return sk_make_error(-EIO);
	if (++pings == 200)
		return sk_make_ready(0);
	/* Give shard 1 time to fall asleep again. */
	if (pings % 20 == 0)
		return sk_future_then(sk_sleep(2 * SK_NSEC_PER_MSEC), ping_then, arg);
	return ping(arg);
}
static sk_future ping(void *arg)
{
	return sk_future_then(sk_submit_to(1, pong, NULL), ping_back, arg);
}
static step_fn wake_steps[] = { net_up, NULL };
static step_fn down_step = net_down;
static sk_future wake_main(void *arg)
{
	(void)arg;
	sk_future f = chain(wake_steps);
	f = sk_future_then(f, ping_then, NULL);
	return sk_test_status0(sk_future_then(f, then_invoke, &down_step));
}

SK_TEST(sleeping_shard_wakes_for_cross_shard_work)
{
	pings = 0;
	CHECK_EQ(sk_test_run(2, wake_main, NULL), 0);
	CHECK_EQ(pings, 200);
}


/*
 * sk_abort with a SENDMSG in flight: the kernel may still read the queued
 * segments until that send completes, so write_ref memory must not be
 * released (nor copy chunks freed) before then.  The client never reads,
 * so after a while the server's send waits in the kernel for room.
 */
static sk_future ab_second(void *arg, int64_t v);
static unsigned ab_released;
static sk_future ab_reconnect(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_future_then(sk_connect(&m.addr), ab_second, NULL);
}
static bool ab_released_in_abort;
static uint8_t *ab_buf;
static void ab_release(void *arg)
{
	(void)arg;
	ab_released++;
}
/* Then a fresh connection must still receive: the aborted client, starved
 * of buffers it held itself, must have given them back. */
static void ab_second_read(void *arg, int64_t v, int err)
{
	(void)arg;
	if (!err && v > 0)
		m.got = (uint64_t)v;
}
static sk_future ab_finish(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_listener_close(m.l);
	sk_abort(m.srv);
	sk_abort(m.cli);
	return sk_future_then(sk_sleep(20 * SK_NSEC_PER_MSEC), down_then, NULL);
}
static sk_future ab_second_accepted(void *arg, int64_t v)
{
	(void)arg;
	m.srv = sk_future_ptr_value(v);
	sk_write(m.cli, "hello", 5);
	sk_future_on_done(sk_read(m.srv), ab_second_read, NULL);
	return sk_future_then(sk_sleep(200 * SK_NSEC_PER_MSEC), ab_finish, NULL);
}
static sk_future ab_second(void *arg, int64_t v)
{
	(void)arg;
	m.cli = sk_future_ptr_value(v);
	return sk_future_then(sk_accept(m.l), ab_second_accepted, NULL);
}
static sk_future ab_after(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_abort(m.cli);
	return sk_future_then(sk_sleep(50 * SK_NSEC_PER_MSEC), ab_reconnect, NULL);
}
static sk_future ab_abort(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	sk_abort(m.srv);
	ab_released_in_abort = ab_released != 0;
	return sk_future_then(sk_sleep(50 * SK_NSEC_PER_MSEC), ab_after, NULL);
}
static sk_future ab_accepted(void *arg, int64_t v)
{
	(void)arg;
	m.srv = sk_future_ptr_value(v);
	sk_write_ref(m.srv, ab_buf, 16 << 20, ab_release, NULL);
	return sk_future_then(sk_sleep(100 * SK_NSEC_PER_MSEC), ab_abort, NULL);
}
static sk_future ab_connected(void *arg, int64_t v)
{
	(void)arg;
	m.cli = sk_future_ptr_value(v);
	return sk_future_then(sk_accept(m.l), ab_accepted, NULL);
}
static sk_future abort_main(void *arg)
{
	(void)arg;
	sk_future f = up_and_listen();
	if (sk_future_failed(f))
		return f;
	return sk_future_then(sk_connect(&m.addr), ab_connected, NULL);
}

SK_TEST(abort_waits_for_the_send_in_flight_before_releasing_output)
{
	static uint8_t buf[16 << 20];
	memset(&m, 0, sizeof(m));
	ab_buf = buf;
	ab_released = 0;
	ab_released_in_abort = false;
	CHECK_EQ(sk_test_run(1, abort_main, NULL), 0);
#ifndef SK_TEST_NATIVE
	/* The native stack copies into packets as it sends: nothing reads
	 * the memory after sk_abort, so it may be released at once. */
	CHECK(!ab_released_in_abort);
#endif
	CHECK_EQ(ab_released, 1);
	CHECK_EQ(m.got, 5);
}
