/*
 * test_nx_tcp.c - the native stack's TCP.
 *
 * Two styles.  (a) Crafted segments: one instance on one end of a loop
 * pair (10.0.0.1), the test plays the peer (10.0.0.2) on the other end -
 * it sends frames it built itself, runs nx_stack_poll, and parses what the
 * stack sent.  Timed steps (retransmission, delayed ACK, persist,
 * TIME_WAIT) run as phases with sk_sleep between them, so the reactor
 * fires the stack's timers meanwhile.  (b) Two instances joined by a loop
 * pair talking through the socket calls (nx_tcp_listen/accept/connect,
 * sk_read/sk_write/sk_close) with the reactor running their pollers.
 */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "native/nx.h"
#include "native/tcp.h"
#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/netdev.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#define ST_IP 0x0a000001u	/* the stack */
#define PEER_IP 0x0a000002u	/* the test */
#define MS SK_NSEC_PER_MSEC

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static const struct nx_tcp_tunables defaults_tun = {
	.rto_min_ns = 200 * MS, .rto_max_ns = 60000 * MS, .rto_initial_ns = 1000 * MS,
	.delack_ns = 40 * MS, .time_wait_ns = 60000 * MS, .fin_wait2_ns = 60000 * MS,
	.syn_retries = 6, .data_retries = 15, .syn_backlog = 256, .ooo_max = 256 * 1024,
	.time_wait_max = 16384,
};

/* --- the crafted-segment peer ------------------------------------------- */

struct tseg {
	uint8_t flags;
	uint32_t seq, ack;
	uint16_t wnd, sport, dport, mss;
	int ws;
	uint32_t len;
	bool csum_ok;
	bool sackp;		/* SACK-permitted option */
	unsigned nsack;		/* SACK blocks, as sent */
	uint32_t sack[4][2];
	uint8_t data[2048];
};

static struct env {
	struct sk_netdev *a, *b;
	struct nx_stack *st;
	size_t rx_limit;
	uint16_t ip_id;
	struct tseg r[128];	/* what the stack sent since the last clear */
	unsigned nr;
	struct sk_listener *l;
	struct sk_sock *s;
	/* the peer's side of the connection under test */
	uint32_t pseq, sseq;	/* next seq: ours (peer), the stack's */
	uint16_t pport;
	int phase;
	int (*fn)(int phase);
	int64_t v;
	int err;
	bool done;
} E;

static struct nx_stats *stats(void)
{
	return &E.st->stats;
}

static void send_frame(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		       uint8_t flags, uint16_t wnd, const uint8_t *opts, unsigned olen,
		       const void *data, unsigned len, unsigned doff_override, bool bad_csum)
{
	struct sk_pkt *p = sk_pkt_alloc();
	unsigned tl = NX_TCP_HLEN + olen + len;
	uint8_t *f, *ip, *th;

	if (!p)
		return;
	f = sk_pkt_append(p, NX_ETH_HLEN + NX_IP_HLEN + tl);
	if (!f) {
		sk_pkt_free(p);
		return;
	}
	memcpy(f, E.a->mac, 6);
	memcpy(f + 6, E.b->mac, 6);
	nx_put16(f + 12, NX_ETH_P_IP);
	ip = f + NX_ETH_HLEN;
	memset(ip, 0, NX_IP_HLEN);
	ip[0] = 0x45;
	nx_put16(ip + 2, (uint16_t)(NX_IP_HLEN + tl));
	nx_put16(ip + 4, E.ip_id++);
	nx_put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = NX_IPPROTO_TCP;
	nx_put32(ip + 12, PEER_IP);
	nx_put32(ip + 16, ST_IP);
	nx_put16(ip + 10, nx_csum_fold(nx_csum_add(0, ip, NX_IP_HLEN)));
	th = ip + NX_IP_HLEN;
	memset(th, 0, NX_TCP_HLEN);
	nx_put16(th, sport);
	nx_put16(th + 2, dport);
	nx_put32(th + 4, seq);
	nx_put32(th + 8, ack);
	th[12] = (uint8_t)((doff_override ? doff_override : (NX_TCP_HLEN + olen) / 4) << 4);
	th[13] = flags;
	nx_put16(th + 14, wnd);
	if (olen)
		memcpy(th + NX_TCP_HLEN, opts, olen);
	if (len)
		memcpy(th + NX_TCP_HLEN + olen, data, len);
	uint16_t c = nx_csum_fold(nx_csum_add(nx_csum_pseudo(PEER_IP, ST_IP, NX_IPPROTO_TCP,
							     (uint16_t)tl), th, tl));
	nx_put16(th + 16, bad_csum ? (uint16_t)(c ^ 0x5a5a) : c);
	if (E.b->tx_burst(E.b, 0, &p, 1) != 1)
		sk_pkt_free(p);
}

/* A segment from the peer on the connection under test. */
static void psend(uint8_t flags, const void *data, unsigned len, uint16_t wnd)
{
	send_frame(E.pport, 80, E.pseq, E.sseq, flags, wnd, NULL, 0, data, len, 0, false);
}

static const uint8_t syn_opts[8] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7 };

/* Frames the stack sent -> E.r (TCP only; ARP and others skipped). */
static void collect(void)
{
	struct sk_pkt *ps[64];
	unsigned n;

	while ((n = E.b->rx_burst(E.b, 0, ps, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct sk_pkt *p = ps[i];
			uint8_t buf[2100];
			uint32_t len = p->pkt_len;
			if (len > sizeof(buf) || len < 54 ||
			    sk_pkt_copy_out(p, 0, len, buf) || nx_get16(buf + 12) != NX_ETH_P_IP ||
			    buf[14 + 9] != NX_IPPROTO_TCP || E.nr >= 128) {
				sk_pkt_free(p);
				continue;
			}
			uint8_t *ip = buf + 14, *th = ip + 20;
			uint32_t tl = nx_get16(ip + 2) - 20u;
			unsigned hl = (th[12] >> 4) * 4u;
			struct tseg *t = &E.r[E.nr++];
			memset(t, 0, sizeof(*t));
			t->sport = nx_get16(th);
			t->dport = nx_get16(th + 2);
			t->seq = nx_get32(th + 4);
			t->ack = nx_get32(th + 8);
			t->flags = th[13];
			t->wnd = nx_get16(th + 14);
			t->ws = -1;
			t->len = tl - hl;
			t->csum_ok = nx_csum_fold(nx_csum_add(nx_csum_pseudo(nx_get32(ip + 12),
						  nx_get32(ip + 16), NX_IPPROTO_TCP, (uint16_t)tl),
						  th, tl)) == 0;
			for (unsigned o = 20; o < hl;) {
				if (th[o] == 0)
					break;
				if (th[o] == 1) {
					o++;
					continue;
				}
				if (th[o] == 2)
					t->mss = nx_get16(th + o + 2);
				if (th[o] == 3)
					t->ws = th[o + 2];
				if (th[o] == 4)
					t->sackp = true;
				for (unsigned k = o + 2; th[o] == 5 && k + 8 <= o + th[o + 1] &&
							 t->nsack < 4; k += 8) {
					t->sack[t->nsack][0] = nx_get32(th + k);
					t->sack[t->nsack][1] = nx_get32(th + k + 4);
					t->nsack++;
				}
				if (th[o + 1] < 2)
					break;
				o += th[o + 1];
			}
			memcpy(t->data, th + hl, t->len < sizeof(t->data) ? t->len : sizeof(t->data));
			sk_pkt_free(p);
		}
	}
}

/* Let the stack process what we sent and send what it has. */
static void pump(void)
{
	for (int i = 0; i < 3; i++)
		nx_stack_poll(E.st);
	collect();
}

static void clear(void)
{
	E.nr = 0;
}

/* The first collected segment with all of @flags, or NULL. */
static struct tseg *find(uint8_t flags)
{
	for (unsigned i = 0; i < E.nr; i++)
		if ((E.r[i].flags & flags) == flags)
			return &E.r[i];
	return NULL;
}

static unsigned count_data(void)
{
	unsigned n = 0;
	for (unsigned i = 0; i < E.nr; i++)
		n += E.r[i].len > 0;
	return n;
}

static void env_up(void)
{
	struct nx_config cfg = { 0 };
	int r = sk_netdev_loop_pair(1, 0, NULL, NULL, &E.a, &E.b);
	CHECK_EQ(r, 0);
	cfg.dev = E.a;
	cfg.queue = 0;
	cfg.ip = ST_IP;
	cfg.prefix = 24;
	memcpy(cfg.mac, E.a->mac, 6);
	cfg.rx_limit = E.rx_limit;
	r = nx_stack_create(&cfg, &E.st);
	CHECK_EQ(r, 0);
	nx_arp_learn(E.st, PEER_IP, E.b->mac);
	pump();
	clear();
	E.pport = 40000;
}

static void env_down(void)
{
	struct sk_pkt *ps[64];
	unsigned n;

	if (E.l)
		nx_tcp_listener_close(E.l);
	E.l = NULL;
	nx_stack_destroy(E.st);
	while ((n = E.b->rx_burst(E.b, 0, ps, 64)) > 0)
		for (unsigned i = 0; i < n; i++)
			sk_pkt_free(ps[i]);
	sk_netdev_close(E.a);
	sk_netdev_close(E.b);
}

/*
 * Each case runs in a child process: the socket layer keeps per-shard
 * free lists (segments) that only sk_net_fini releases, and these tests
 * drive instances without sk_net_init - a second run on the same thread
 * would reuse a dead allocator's memory.
 */
static void isolated(void (*body)(void))
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		int before = sk_test_failed_checks;
		body();
		exit(sk_test_failed_checks != before ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		sk_test_failed_checks++;
		if (WIFSIGNALED(status))
			fprintf(stderr, "  child killed by signal %d\n", WTERMSIG(status));
	}
}

static sk_future drive(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	int d = E.fn(E.phase++);
	if (d < 0) {
		env_down();
		E.done = true;
		return sk_make_ready(0);
	}
	return sk_future_then(sk_sleep((uint64_t)d * MS), drive, NULL);
}

static sk_future phases_main(void *arg)
{
	(void)arg;
	env_up();
	return drive(NULL, 0);
}

/* Run @fn(phase) for phase 0, 1, ... sleeping the returned ms in between,
 * until it returns < 0. */
static void phases_body(void)
{
	CHECK_EQ(sk_test_run(1, phases_main, NULL), 0);
	CHECK(E.done);
}

static void run_phases(int (*fn)(int phase), size_t rx_limit)
{
	memset(&E, 0, sizeof(E));
	E.fn = fn;
	E.rx_limit = rx_limit;
	isolated(phases_body);
	nx_tcp_tun = defaults_tun;
}

static void listen80(void)
{
	struct sk_sockaddr a = { ST_IP, 80 };
	struct sk_listen_opts o = { .backlog = 16 };
	CHECK_EQ(nx_tcp_listen(E.st, &a, &o, &E.l), 0);
}

/* The first collected segment to the peer's port with all of @flags. */
static struct tseg *find_to(uint16_t port, uint8_t flags)
{
	for (unsigned i = 0; i < E.nr; i++)
		if ((E.r[i].flags & flags) == flags && E.r[i].dport == port)
			return &E.r[i];
	return NULL;
}

/* Peer-initiated handshake on port 80; E.s = the accepted socket (unless
 * an accept is already pending: @accept false). */
static bool handshake_with(const uint8_t *opts, unsigned olen, bool accept)
{
	struct tseg *t;
	sk_future f;
	int err;

	E.pseq = 1000;
	send_frame(E.pport, 80, E.pseq, 0, F_SYN, 65535, opts, olen, NULL, 0, 0, false);
	pump();
	t = find_to(E.pport, F_SYN | F_ACK);
	CHECK(t != NULL);
	if (!t)
		return false;
	CHECK_EQ(t->ack, E.pseq + 1);
	CHECK_EQ(t->mss, 1460);
	CHECK_EQ(t->ws, 7);
	CHECK(t->csum_ok);
	/* SACK-permitted only in answer to the peer's (RFC 2018 2). */
	CHECK_EQ(t->sackp, olen > 8);
	E.pseq++;
	E.sseq = t->seq + 1;
	clear();
	psend(F_ACK, NULL, 0, 65535);
	pump();
	if (!accept)
		return true;
	f = nx_tcp_accept(E.l);
	CHECK(sk_future_available(f));
	if (!sk_future_available(f))
		return false;
	E.s = sk_future_ptr_value(sk_future_get(f, &err));
	CHECK_EQ(err, 0);
	return err == 0;
}

static bool handshake_opt(bool accept)
{
	return handshake_with(syn_opts, 8, accept);
}

static bool handshake(void)
{
	return handshake_opt(true);
}

/* MSS, window scale and SACK-permitted. */
static const uint8_t syn_opts_sack[12] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2 };

static bool handshake_sack(void)
{
	return handshake_with(syn_opts_sack, 12, true);
}

/* A pure ACK of E.sseq from the peer with @n SACK blocks. */
static void psend_sack(const uint32_t (*blk)[2], unsigned n)
{
	uint8_t o[40];
	unsigned olen = 4 + 8 * n;

	o[0] = 1;
	o[1] = 1;
	o[2] = 5;
	o[3] = (uint8_t)(2 + 8 * n);
	for (unsigned i = 0; i < n; i++) {
		nx_put32(o + 4 + 8 * i, blk[i][0]);
		nx_put32(o + 8 + 8 * i, blk[i][1]);
	}
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, o, olen, NULL, 0, 0, false);
}

/* Read everything buffered into @buf; returns the count. */
static size_t drain(struct sk_sock *s, uint8_t *buf, size_t max)
{
	size_t got = 0, len;
	const uint8_t *p;
	while ((p = sk_read_peek(s, &len)) != NULL) {
		size_t k = len < max - got ? len : max - got;
		memcpy(buf + got, p, k);
		got += k;
		sk_read_consume(s, len);
	}
	return got;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed);
}

/* --- (a) cases ---------------------------------------------------------- */

static int p_passive(int ph)
{
	struct sk_sockaddr peer;
	(void)ph;
	listen80();
	if (handshake()) {
		sk_sock_peer(E.s, &peer);
		CHECK_EQ(peer.ip, PEER_IP);
		CHECK_EQ(peer.port, E.pport);
		CHECK_EQ(stats()->tcp_passive_opens, 1);
		CHECK(nx_tcp_busy(E.st));
		sk_abort(E.s);
		pump();
		CHECK(find(F_RST) != NULL);
		CHECK(!nx_tcp_busy(E.st));
	}
	return -1;
}

SK_TEST(passive_handshake_and_abort_sends_rst)
{
	run_phases(p_passive, 0);
}

static sk_future conn_f;

static int p_active(int ph)
{
	struct sk_sockaddr a = { PEER_IP, 7777 };
	struct tseg *t;
	int err;
	(void)ph;

	conn_f = nx_tcp_connect(E.st, &a);
	pump();
	t = find(F_SYN);
	CHECK(t != NULL);
	if (!t)
		return -1;
	CHECK(!(t->flags & F_ACK));
	CHECK_EQ(t->dport, 7777);
	CHECK(t->sport >= 32768 && t->sport <= 60999);
	CHECK_EQ(t->mss, 1460);
	CHECK_EQ(t->ws, 7);
	CHECK(t->csum_ok);
	CHECK(!sk_future_available(conn_f));
	uint16_t sport = t->sport;
	uint32_t iss = t->seq;
	clear();
	send_frame(7777, sport, 5000, iss + 1, F_SYN | F_ACK, 65535, syn_opts, 8, NULL, 0, 0,
		   false);
	pump();
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, iss + 1);
		CHECK_EQ(t->ack, 5001);
	}
	CHECK(sk_future_available(conn_f));
	struct sk_sock *s = sk_future_ptr_value(sk_future_get(conn_f, &err));
	CHECK_EQ(err, 0);
	CHECK_EQ(stats()->tcp_active_opens, 1);
	/* Data from the app goes to the peer with the right numbers. */
	clear();
	CHECK_EQ(sk_write(s, "ping", 4), 0);
	pump();
	t = find(F_ACK | F_PSH);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->len, 4);
		CHECK(!memcmp(t->data, "ping", 4));
		CHECK_EQ(t->seq, iss + 1);
	}
	sk_abort(s);
	return -1;
}

SK_TEST(active_handshake_and_first_data)
{
	run_phases(p_active, 0);
}

static int p_refused(int ph)
{
	struct sk_sockaddr a = { PEER_IP, 7777 };
	struct tseg *t;
	int err;

	if (ph == 0) {
		conn_f = nx_tcp_connect(E.st, &a);
		pump();
		t = find(F_SYN);
		CHECK(t != NULL);
		if (!t)
			return -1;
		/* A reset without an acceptable ACK is ignored ... */
		send_frame(7777, t->sport, 0, t->seq + 5, F_RST | F_ACK, 0, NULL, 0, NULL, 0, 0,
			   false);
		pump();
		CHECK(!sk_future_available(conn_f));
		/* ... one acknowledging our SYN refuses the connection. */
		send_frame(7777, t->sport, 0, t->seq + 1, F_RST | F_ACK, 0, NULL, 0, NULL, 0, 0,
			   false);
		pump();
		CHECK(sk_future_available(conn_f));
		sk_future_get(conn_f, &err);
		CHECK_EQ(err, -ECONNREFUSED);
		CHECK(!nx_tcp_busy(E.st));
		/* Next: a connect nobody answers times out. */
		nx_tcp_tun.rto_initial_ns = 5 * MS;
		nx_tcp_tun.rto_min_ns = 5 * MS;
		nx_tcp_tun.syn_retries = 2;
		conn_f = nx_tcp_connect(E.st, &a);
		return 150;
	}
	CHECK(sk_future_available(conn_f));
	if (sk_future_available(conn_f)) {
		sk_future_get(conn_f, &err);
		CHECK_EQ(err, -ETIMEDOUT);
	}
	collect();
	unsigned syns = 0;
	for (unsigned i = 0; i < E.nr; i++)
		syns += E.r[i].flags == F_SYN;
	CHECK_EQ(syns, 1 + 2 + 1);	/* 2 from phase 0, then 1 + 2 retries */
	CHECK_EQ(stats()->tcp_conn_timeouts, 1);
	return -1;
}

SK_TEST(rst_in_syn_sent_refuses_and_unanswered_syn_times_out)
{
	run_phases(p_refused, 0);
}

static int p_data(int ph)
{
	uint8_t buf[8000], got[8000];
	struct tseg *t;

	switch (ph) {
	case 0:
		nx_tcp_tun.delack_ns = 30 * MS;
		listen80();
		if (!handshake())
			return -1;
		clear();
		/* One small segment: delivered, ACK delayed. */
		psend(F_ACK | F_PSH, "hello", 5, 65535);
		E.pseq += 5;
		pump();
		CHECK_EQ(sk_read_avail(E.s), 5);
		CHECK(find(F_ACK) == NULL);
		return 60;
	case 1:
		collect();
		t = find(F_ACK);
		CHECK(t != NULL);
		if (t)
			CHECK_EQ(t->ack, E.pseq);
		CHECK_EQ(drain(E.s, got, sizeof(got)), 5);
		CHECK(!memcmp(got, "hello", 5));
		/* Two full-sized segments: ACKed at once. */
		clear();
		fill(buf, 2920, 1);
		psend(F_ACK, buf, 1460, 65535);
		E.pseq += 1460;
		psend(F_ACK, buf + 1460, 1460, 65535);
		E.pseq += 1460;
		pump();
		t = find(F_ACK);
		CHECK(t != NULL);
		if (t)
			CHECK_EQ(t->ack, E.pseq);
		CHECK_EQ(drain(E.s, got, sizeof(got)), 2920);
		CHECK(!memcmp(got, buf, 2920));
		/* A request and the app's reply: the ACK rides on it. */
		clear();
		psend(F_ACK | F_PSH, "GET", 3, 65535);
		E.pseq += 3;
		nx_stack_poll(E.st);
		CHECK_EQ(sk_read_avail(E.s), 3);
		sk_read_consume(E.s, 3);
		fill(buf, 3000, 9);
		CHECK_EQ(sk_write(E.s, buf, 3000), 0);
		pump();
		CHECK_EQ(E.nr, 3);	/* 1460 + 1460 + 80, no pure ACK */
		CHECK_EQ(count_data(), 3);
		for (unsigned i = 0; i < E.nr; i++) {
			CHECK_EQ(E.r[i].ack, E.pseq);
			CHECK(!memcmp(E.r[i].data, buf + (E.r[i].seq - E.sseq), E.r[i].len));
		}
		if (E.nr == 3) {
			CHECK_EQ(E.r[0].len, 1460);
			CHECK_EQ(E.r[1].seq, E.sseq + 1460);
			CHECK_EQ(E.r[2].len, 80);
			CHECK(!memcmp(E.r[1].data, buf + 1460, 1460));
			CHECK(E.r[2].flags & F_PSH);
		}
		CHECK_EQ(sk_write_queued(E.s), 3000);
		/* The peer's ACK releases the send buffer. */
		E.sseq += 3000;
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(sk_write_queued(E.s), 0);
		sk_abort(E.s);
		return -1;
	}
	return -1;
}

SK_TEST(data_both_ways_delayed_ack_and_piggyback)
{
	run_phases(p_data, 0);
}

static int p_rtx(int ph)
{
	struct tseg *t;
	uint8_t buf[500];

	switch (ph) {
	case 0:
		nx_tcp_tun.rto_min_ns = 10 * MS;
		nx_tcp_tun.rto_initial_ns = 10 * MS;
		listen80();
		if (!handshake())
			return -1;
		clear();
		fill(buf, 500, 3);
		CHECK_EQ(sk_write(E.s, buf, 500), 0);
		pump();
		CHECK_EQ(count_data(), 1);
		clear();
		return 30;	/* lost: no ACK from us */
	case 1:
		collect();
		CHECK(count_data() >= 1);
		t = find(F_ACK | F_PSH);
		CHECK(t != NULL);
		if (t) {
			CHECK_EQ(t->seq, E.sseq);
			CHECK_EQ(t->len, 500);
		}
		CHECK(stats()->tcp_retransmits >= 1);
		CHECK(stats()->tcp_rto_timeouts >= 1);
		E.sseq += 500;
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(sk_write_queued(E.s), 0);
		clear();
		return 60;
	case 2:
		collect();
		CHECK_EQ(count_data(), 0);	/* acknowledged: no more resends */
		sk_abort(E.s);
		return -1;
	}
	return -1;
}

SK_TEST(retransmit_after_loss_then_stops_when_acked)
{
	run_phases(p_rtx, 0);
}

static int p_ooo(int ph)
{
	uint8_t buf[3000], got[3000];
	struct tseg *t;
	(void)ph;

	listen80();
	if (!handshake())
		return -1;
	fill(buf, 3000, 5);
	clear();
	/* Second and third parts first: a hole, immediate duplicate ACKs. */
	send_frame(E.pport, 80, E.pseq + 1000, E.sseq, F_ACK, 65535, NULL, 0, buf + 1000, 1000, 0,
		   false);
	send_frame(E.pport, 80, E.pseq + 2000, E.sseq, F_ACK, 65535, NULL, 0, buf + 2000, 1000, 0,
		   false);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 0);
	CHECK_EQ(E.nr, 2);
	for (unsigned i = 0; i < E.nr; i++)
		CHECK_EQ(E.r[i].ack, E.pseq);
	CHECK_EQ(stats()->tcp_ooo_queued, 2);
	/* Overlapping duplicate of the queued data. */
	send_frame(E.pport, 80, E.pseq + 1500, E.sseq, F_ACK, 65535, NULL, 0, buf + 1500, 1000, 0,
		   false);
	pump();
	clear();
	/* The gap filler: everything in order, ACKed at once. */
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, NULL, 0, buf, 1000, 0, false);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 3000);
	CHECK_EQ(drain(E.s, got, sizeof(got)), 3000);
	CHECK(!memcmp(got, buf, 3000));
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq + 3000);
	E.pseq += 3000;
	/* An old duplicate: dropped, counted, ACKed. */
	uint64_t dup = stats()->tcp_dup_rx;
	clear();
	send_frame(E.pport, 80, E.pseq - 1000, E.sseq, F_ACK, 65535, NULL, 0, buf + 2000, 1000, 0,
		   false);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 0);
	CHECK_EQ(stats()->tcp_dup_rx, dup + 1);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq);
	/* Partly old, partly new: the new part is kept. */
	send_frame(E.pport, 80, E.pseq - 500, E.sseq, F_ACK, 65535, NULL, 0, buf, 1000, 0, false);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 500);
	CHECK_EQ(drain(E.s, got, sizeof(got)), 500);
	CHECK(!memcmp(got, buf + 500, 500));
	sk_abort(E.s);
	return -1;
}

SK_TEST(out_of_order_reassembly_and_duplicates)
{
	run_phases(p_ooo, 0);
}

static int p_zero_window(int ph)
{
	uint8_t buf[9000];
	struct tseg *t;

	switch (ph) {
	case 0:
		nx_tcp_tun.rto_min_ns = 10 * MS;
		nx_tcp_tun.rto_initial_ns = 10 * MS;
		listen80();
		if (!handshake())
			return -1;
		/* Receive side: 8 KiB of rx_limit fill up, the window closes. */
		fill(buf, 8192, 2);
		clear();
		for (unsigned off = 0; off < 8192; off += 1024) {
			psend(F_ACK, buf + off, 1024, 65535);
			E.pseq += 1024;
		}
		pump();
		CHECK_EQ(sk_read_avail(E.s), 8192);
		t = E.nr ? &E.r[E.nr - 1] : NULL;
		CHECK(t != NULL);
		if (t) {
			CHECK_EQ(t->ack, E.pseq);
			CHECK_EQ(t->wnd, 0);
		}
		/* Beyond the window: dropped and answered. */
		clear();
		psend(F_ACK, buf, 100, 65535);
		pump();
		CHECK_EQ(sk_read_avail(E.s), 8192);
		CHECK(find(F_ACK) != NULL);
		/* The app reads: a window update goes out by itself. */
		clear();
		sk_read_consume(E.s, 8192);
		pump();
		t = find(F_ACK);
		CHECK(t != NULL);
		if (t)
			CHECK(t->wnd > 0);
		/* Send side: the peer closes its window, we have data. */
		psend(F_ACK, NULL, 0, 0);
		pump();
		clear();
		CHECK_EQ(sk_write(E.s, buf, 3000), 0);
		pump();
		CHECK_EQ(count_data(), 0);
		return 50;
	case 1:
		collect();
		CHECK(stats()->tcp_persist_probes >= 1);
		CHECK(E.nr >= 1);
		CHECK_EQ(count_data(), 0);
		if (E.nr)
			CHECK_EQ(E.r[0].seq, E.sseq - 1);
		/* Reopen: the data flows. */
		clear();
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(count_data(), 3);
		E.sseq += 3000;
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(sk_write_queued(E.s), 0);
		sk_abort(E.s);
		return -1;
	}
	return -1;
}

SK_TEST(zero_window_persist_probe_and_reopen)
{
	run_phases(p_zero_window, 8192);
}

/* Keepalive: probes after the idle time; an answer keeps the connection,
 * silence through every probe resets it and fails the app's read. */
static int p_keepalive(int ph)
{
	struct tseg *t;
	sk_future f;
	int err;

	switch (ph) {
	case 0:
		nx_tcp_tun.keepalive_ns = 30 * MS;
		nx_tcp_tun.keepalive_intvl_ns = 10 * MS;
		nx_tcp_tun.keepalive_probes = 3;
		listen80();
		if (!handshake())
			return -1;
		clear();
		return 45;
	case 1:
		collect();
		t = find(F_ACK);
		CHECK(t != NULL);
		if (t) {
			CHECK_EQ(t->seq, E.sseq - 1);
			CHECK_EQ(t->len, 0);
		}
		CHECK(stats()->tcp_keepalive_probes >= 1);
		CHECK_EQ(stats()->tcp_conn_timeouts, 0);
		/* Answered: alive, the count of unanswered probes restarts. */
		psend(F_ACK, NULL, 0, 65535);
		pump();
		clear();
		return 20;
	case 2:
		collect();
		CHECK(find(F_RST) == NULL);
		CHECK_EQ(stats()->tcp_conn_timeouts, 0);
		return 120;	/* silence: 30 ms idle + 3 probes 10 ms apart */
	case 3:
		collect();
		CHECK(find(F_RST) != NULL);
		CHECK_EQ(stats()->tcp_conn_timeouts, 1);
		f = sk_read(E.s);
		CHECK(sk_future_failed(f));
		sk_future_get(f, &err);
		CHECK_EQ(err, -ETIMEDOUT);
		sk_abort(E.s);
		return -1;
	}
	return -1;
}

SK_TEST(keepalive_probes_then_reset_when_unanswered)
{
	run_phases(p_keepalive, 0);
}

static int p_rst(int ph)
{
	struct tseg *t;
	sk_future f;
	int err;
	(void)ph;

	/* SYN to a closed port: RST|ACK acknowledging the SYN. */
	send_frame(5555, 81, 777, 0, F_SYN, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	t = find(F_RST);
	CHECK(t != NULL);
	if (t) {
		CHECK(t->flags & F_ACK);
		CHECK_EQ(t->seq, 0);
		CHECK_EQ(t->ack, 778);
	}
	/* An ACK to nothing: RST with its ACK number as sequence. */
	clear();
	send_frame(5555, 81, 777, 4242, F_ACK, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	t = find(F_RST);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->seq, 4242);
	/* A RST is never answered. */
	clear();
	send_frame(5555, 81, 777, 0, F_RST, 0, NULL, 0, NULL, 0, 0, false);
	pump();
	CHECK_EQ(E.nr, 0);
	CHECK(stats()->tcp_no_port >= 3);

	listen80();
	if (!handshake())
		return -1;
	f = sk_read(E.s);
	CHECK(!sk_future_available(f));
	/* In-window but not exact: challenge ACK, connection stays. */
	clear();
	send_frame(E.pport, 80, E.pseq + 100, 0, F_RST, 0, NULL, 0, NULL, 0, 0, false);
	pump();
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq);
	CHECK(!sk_future_available(f));
	/* Outside the window: ignored. */
	clear();
	send_frame(E.pport, 80, E.pseq + 10000000, 0, F_RST, 0, NULL, 0, NULL, 0, 0, false);
	pump();
	CHECK_EQ(E.nr, 0);
	/* SYN on an established connection: challenge ACK too. */
	send_frame(E.pport, 80, E.pseq + 5, 0, F_SYN, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	CHECK(find(F_ACK) != NULL);
	CHECK(!sk_future_available(f));
	/* Exact: reset, the pending read fails. */
	send_frame(E.pport, 80, E.pseq, 0, F_RST, 0, NULL, 0, NULL, 0, 0, false);
	pump();
	CHECK(sk_future_available(f));
	sk_future_get(f, &err);
	CHECK_EQ(err, -ECONNRESET);
	CHECK_EQ(sk_write(E.s, "x", 1), -ECONNRESET);
	f = sk_close(E.s);
	CHECK(sk_future_available(f));
	sk_future_get(f, &err);
	CHECK_EQ(err, 0);
	CHECK(!nx_tcp_busy(E.st));
	return -1;
}

SK_TEST(rst_rules_closed_port_challenge_ack_exact_reset)
{
	run_phases(p_rst, 0);
}

static sk_future close_f;

static int p_time_wait(int ph)
{
	struct tseg *t;
	int err;

	switch (ph) {
	case 0:
		nx_tcp_tun.time_wait_ns = 40 * MS;
		listen80();
		if (!handshake())
			return -1;
		clear();
		CHECK_EQ(sk_write(E.s, "bye", 3), 0);
		close_f = sk_close(E.s);
		pump();
		/* Data, then FIN. */
		t = find(F_FIN);
		CHECK(t != NULL);
		CHECK_EQ(count_data(), 1);
		if (!t)
			return -1;
		CHECK_EQ(t->seq, E.sseq + 3);
		CHECK(!sk_future_available(close_f));
		/* The peer acknowledges everything: close resolves. */
		E.sseq += 4;
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK(sk_future_available(close_f));
		sk_future_get(close_f, &err);
		CHECK_EQ(err, 0);
		CHECK(!nx_tcp_busy(E.st));
		/* FIN_WAIT_2 -> TIME_WAIT on the peer's FIN. */
		clear();
		psend(F_ACK | F_FIN, NULL, 0, 65535);
		E.pseq++;
		pump();
		t = find(F_ACK);
		CHECK(t != NULL);
		if (t)
			CHECK_EQ(t->ack, E.pseq);
		CHECK_EQ(stats()->tcp_time_wait, 1);
		/* A retransmitted FIN is ACKed again. */
		clear();
		E.pseq--;
		psend(F_ACK | F_FIN, NULL, 0, 65535);
		E.pseq++;
		pump();
		t = find(F_ACK);
		CHECK(t != NULL);
		CHECK(find(F_RST) == NULL);
		return 100;
	case 1:
		/* TIME_WAIT is over: the tuple is unknown now. */
		clear();
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK(find(F_RST) != NULL);
		return -1;
	}
	return -1;
}

SK_TEST(close_fin_wait_time_wait_and_expiry)
{
	run_phases(p_time_wait, 0);
}

static int p_simul_close(int ph)
{
	struct tseg *t;
	int err;
	sk_future f;
	(void)ph;

	listen80();
	if (!handshake())
		return -1;
	clear();
	close_f = sk_close(E.s);
	pump();
	t = find(F_FIN);
	CHECK(t != NULL);
	if (!t)
		return -1;
	/* Our FIN crosses theirs: they have not seen ours. */
	clear();
	psend(F_ACK | F_FIN, NULL, 0, 65535);
	E.pseq++;
	pump();
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq);
	CHECK(!sk_future_available(close_f));
	/* CLOSING -> TIME_WAIT when ours is acknowledged. */
	E.sseq++;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK(sk_future_available(close_f));
	sk_future_get(close_f, &err);
	CHECK_EQ(err, 0);
	CHECK_EQ(stats()->tcp_time_wait, 1);

	/* Passive close: FIN from the peer, read gives 0, close -> LAST_ACK. */
	E.pport++;
	if (!handshake())
		return -1;
	f = sk_read(E.s);
	clear();
	psend(F_ACK | F_PSH | F_FIN, "last", 4, 65535);
	E.pseq += 5;
	pump();
	CHECK(sk_future_available(f));
	CHECK_EQ(sk_future_get(f, &err), 4);
	sk_read_consume(E.s, 4);
	f = sk_read(E.s);
	CHECK(sk_future_available(f));
	CHECK_EQ(sk_future_get(f, &err), 0);
	CHECK_EQ(err, 0);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq);
	clear();
	close_f = sk_close(E.s);
	pump();
	t = find(F_FIN);
	CHECK(t != NULL);
	E.sseq++;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK(sk_future_available(close_f));
	sk_future_get(close_f, &err);
	CHECK(!nx_tcp_busy(E.st));
	CHECK_EQ(stats()->tcp_time_wait, 1);
	return -1;
}

SK_TEST(simultaneous_close_and_passive_close)
{
	run_phases(p_simul_close, 0);
}

static int p_malformed(int ph)
{
	uint8_t bad1[4] = { 2, 0, 0, 0 };		/* length 0 */
	uint8_t bad2[4] = { 1, 1, 3, 9 };		/* runs past the header */
	uint8_t bad3[4] = { 2, 3, 5, 0 };		/* MSS of length 3 */
	(void)ph;

	listen80();
	send_frame(4001, 80, 1, 0, F_SYN, 65535, NULL, 0, NULL, 0, 0, true);
	send_frame(4002, 80, 1, 0, F_SYN, 65535, bad1, 4, NULL, 0, 0, false);
	send_frame(4003, 80, 1, 0, F_SYN, 65535, bad2, 4, NULL, 0, 0, false);
	send_frame(4004, 80, 1, 0, F_SYN, 65535, bad3, 4, NULL, 0, 0, false);
	send_frame(4005, 80, 1, 0, F_SYN, 65535, NULL, 0, NULL, 0, 4, false);
	send_frame(4006, 80, 1, 0, F_SYN | F_FIN, 65535, NULL, 0, NULL, 0, 0, false);
	send_frame(4007, 80, 1, 0, F_SYN | F_RST, 65535, NULL, 0, NULL, 0, 0, false);
	send_frame(4008, 80, 1, 0, F_SYN, 65535, NULL, 0, NULL, 0, 15, false);
	pump();
	CHECK_EQ(E.nr, 0);
	CHECK_EQ(stats()->tcp_bad_csum, 1);
	CHECK_EQ(stats()->tcp_bad_opts, 3);
	CHECK_EQ(stats()->tcp_bad_off, 2);
	CHECK_EQ(stats()->tcp_bad_flags, 2);
	/* A corrupted data segment on a live connection is not delivered. */
	if (!handshake())
		return -1;
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, NULL, 0, "abc", 3, 0, true);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 0);
	CHECK_EQ(stats()->tcp_bad_csum, 2);
	/* Without an MSS option the peer gets 536-byte segments. */
	uint8_t big[2000];
	fill(big, sizeof(big), 4);
	clear();
	send_frame(4100, 80, 9, 0, F_SYN, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	struct tseg *t = find(F_SYN | F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->ws, -1);	/* no scaling offered: none in reply */
		uint32_t s2 = t->seq + 1;
		send_frame(4100, 80, 10, s2, F_ACK, 65535, NULL, 0, NULL, 0, 0, false);
		pump();
		int err;
		sk_future f = nx_tcp_accept(E.l);
		CHECK(sk_future_available(f));
		struct sk_sock *s = sk_future_ptr_value(sk_future_get(f, &err));
		clear();
		sk_write(s, big, sizeof(big));
		pump();
		CHECK(E.nr >= 3);
		if (E.nr)
			CHECK_EQ(E.r[0].len, 536);
		sk_abort(s);
	}
	sk_abort(E.s);
	return -1;
}

SK_TEST(checksum_offset_flags_and_option_errors_dropped)
{
	run_phases(p_malformed, 0);
}

static int p_flood(int ph)
{
	switch (ph) {
	case 0:
		nx_tcp_tun.syn_backlog = 8;
		nx_tcp_tun.rto_initial_ns = 5 * MS;
		nx_tcp_tun.rto_min_ns = 5 * MS;
		nx_tcp_tun.syn_retries = 1;
		listen80();
		for (unsigned i = 0; i < 40; i++)
			send_frame((uint16_t)(10000 + i), 80, i * 1000, 0, F_SYN, 65535, NULL, 0,
				   NULL, 0, 0, false);
		pump();
		unsigned synacks = 0;
		for (unsigned i = 0; i < E.nr; i++)
			synacks += (E.r[i].flags & (F_SYN | F_ACK)) == (F_SYN | F_ACK);
		CHECK_EQ(synacks, 8);
		CHECK_EQ(stats()->tcp_backlog_full, 32);
		return 100;	/* the half-open ones time out */
	case 1:
		CHECK(!nx_tcp_busy(E.st));
		clear();
		E.pport = 20000;
		if (handshake()) {
			psend(F_ACK | F_PSH, "ok", 2, 65535);
			pump();
			CHECK_EQ(sk_read_avail(E.s), 2);
			sk_abort(E.s);
		}
		return -1;
	}
	return -1;
}

SK_TEST(syn_flood_beyond_backlog_then_legit_connection)
{
	run_phases(p_flood, 0);
}

static int p_fast_rtx(int ph)
{
	uint8_t buf[14600];
	(void)ph;

	nx_tcp_tun.rto_min_ns = 2000 * MS;
	listen80();
	if (!handshake())
		return -1;
	fill(buf, sizeof(buf), 8);
	clear();
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	CHECK_EQ(count_data(), 10);	/* the initial window */
	uint32_t base = E.sseq;
	/* Segment 2 lost: ACK of 1, then three duplicates. */
	clear();
	E.sseq = base + 1460;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	clear();
	for (int i = 0; i < 3; i++)
		psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(stats()->tcp_fast_retransmits, 1);
	struct tseg *t = find(F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, base + 1460);
		CHECK_EQ(t->len, 1460);
		CHECK(!memcmp(t->data, buf + 1460, 1460));
	}
	/* Everything acknowledged: recovery ends, the queue is empty. */
	E.sseq = base + sizeof(buf);
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(sk_write_queued(E.s), 0);
	sk_abort(E.s);
	return -1;
}

SK_TEST(fast_retransmit_on_three_duplicate_acks)
{
	run_phases(p_fast_rtx, 0);
}

static int p_listener_close(int ph)
{
	sk_future f;
	int err;
	(void)ph;

	listen80();
	f = nx_tcp_accept(E.l);
	CHECK(!sk_future_available(f));
	CHECK(sk_future_failed(nx_tcp_accept(E.l)));	/* one at a time */
	if (!handshake_opt(false))
		return -1;
	CHECK(sk_future_available(f));
	E.s = sk_future_ptr_value(sk_future_get(f, &err));
	/* One more connection that nobody accepts, then close: it is reset. */
	E.pport++;
	E.pseq = 1000;
	clear();
	send_frame(E.pport, 80, E.pseq, 0, F_SYN, 65535, syn_opts, 8, NULL, 0, 0, false);
	pump();
	struct tseg *t = find(F_SYN | F_ACK);
	CHECK(t != NULL);
	if (t) {
		E.pseq++;
		E.sseq = t->seq + 1;
		psend(F_ACK, NULL, 0, 65535);
		pump();
	}
	f = nx_tcp_accept(E.l);
	CHECK(sk_future_available(f));	/* queued already */
	struct sk_sock *s2 = sk_future_ptr_value(sk_future_get(f, &err));
	sk_abort(s2);
	f = nx_tcp_accept(E.l);
	clear();
	nx_tcp_listener_close(E.l);
	E.l = NULL;
	CHECK(sk_future_available(f));
	sk_future_get(f, &err);
	CHECK_EQ(err, -ECANCELED);
	sk_abort(E.s);
	return -1;
}

SK_TEST(accept_busy_and_listener_close_cancels)
{
	run_phases(p_listener_close, 0);
}

/* The reassembly queue is charged by buffer, not payload, and bounded in
 * entries: 1-byte segments with holes between them cannot pin a pool
 * buffer each without limit, and bare FINs past a hole hold no packet.
 * Small segments that continue one another share a buffer, and what was
 * queued - the FIN past the hole included - is delivered once the hole
 * fills. */
static unsigned ooo_entries(struct tcp_conn *c)
{
	unsigned n = 0;
	for (struct sk_pkt *q = c->ooo; q; q = q->nextpkt)
		n++;
	return n;
}

static int p_ooo_bounds(int ph)
{
	uint8_t buf[700], got[700];
	struct tcp_conn *c;
	struct tseg *t;
	sk_future f;
	int err;
	(void)ph;

	listen80();
	if (!handshake())
		return -1;
	c = tcp_of(E.s);
	/* Every other byte past a hole at pseq: nothing to merge. */
	for (unsigned i = 0; i < 1000; i++) {
		send_frame(E.pport, 80, E.pseq + 2 + 2 * i, E.sseq, F_ACK, 65535, NULL, 0, "x", 1,
			   0, false);
		if (i % 32 == 31) {
			pump();
			clear();
		}
	}
	pump();
	unsigned n = ooo_entries(c);
	CHECK(n > 0);
	CHECK(n <= TCP_OOO_MAX_SEGS);
	CHECK(n * (SK_PKT_HEADROOM + SK_PKT_DATAROOM) <= nx_tcp_tun.ooo_max);
	CHECK(stats()->tcp_ooo_dropped > 0);
	/* Bare FINs past the hole: no entries. */
	for (unsigned i = 0; i < 200; i++) {
		send_frame(E.pport, 80, E.pseq + 5000 + i, E.sseq, F_ACK | F_FIN, 65535, NULL, 0,
			   NULL, 0, 0, false);
		if (i % 32 == 31) {
			pump();
			clear();
		}
	}
	pump();
	CHECK_EQ(ooo_entries(c), n);
	sk_abort(E.s);

	/* A second connection: 600 contiguous 1-byte segments past a
	 * 1-byte hole, then a bare FIN after them. */
	E.pport++;
	if (!handshake())
		return -1;
	c = tcp_of(E.s);
	fill(buf, 601, 6);
	for (unsigned i = 1; i < 601; i++) {
		send_frame(E.pport, 80, E.pseq + i, E.sseq, F_ACK, 65535, NULL, 0, buf + i, 1, 0,
			   false);
		if (i % 32 == 31) {
			pump();
			clear();
		}
	}
	pump();
	CHECK(ooo_entries(c) <= 2);
	send_frame(E.pport, 80, E.pseq + 601, E.sseq, F_ACK | F_FIN, 65535, NULL, 0, NULL, 0, 0,
		   false);
	pump();
	CHECK(ooo_entries(c) <= 2);
	CHECK_EQ(sk_read_avail(E.s), 0);
	/* The hole fills: all of it in order, then the end of the stream. */
	clear();
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, NULL, 0, buf, 1, 0, false);
	pump();
	CHECK_EQ(sk_read_avail(E.s), 601);
	CHECK_EQ(drain(E.s, got, sizeof(got)), 601);
	CHECK(!memcmp(got, buf, 601));
	CHECK(c->ooo == NULL);
	t = E.nr ? &E.r[E.nr - 1] : NULL;
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq + 602);
	f = sk_read(E.s);
	CHECK(sk_future_available(f));
	CHECK_EQ(sk_future_get(f, &err), 0);
	CHECK_EQ(err, 0);
	sk_abort(E.s);
	return -1;
}

SK_TEST(out_of_order_queue_bounded_by_buffers_and_entries)
{
	run_phases(p_ooo_bounds, 0);
}

/* Persist: a peer that keeps answering with a closed window is waited
 * for as long as the app holds the socket, but an orphan gives up after
 * a few probes (its sk_close resolves); a peer that goes silent is gone
 * after data_retries unanswered probes. */
static int persist_stage;

/* The peer's end: all acknowledged, window closed, more data queued. */
static void persist_setup(void)
{
	uint8_t buf[3000];

	fill(buf, sizeof(buf), 1);
	CHECK_EQ(sk_write(E.s, buf, 1000), 0);
	pump();
	E.sseq += 1000;
	psend(F_ACK, NULL, 0, 0);
	pump();
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	clear();
}

static int p_persist_limits(int ph)
{
	sk_future f;
	int err;

	if (ph == 0) {
		nx_tcp_tun.rto_min_ns = 5 * MS;
		nx_tcp_tun.rto_max_ns = 5 * MS;
		nx_tcp_tun.rto_initial_ns = 5 * MS;
		nx_tcp_tun.data_retries = 3;
		persist_stage = 0;
		listen80();
		if (!handshake())
			return -1;
		persist_setup();
		return 2;
	}
	switch (persist_stage) {
	case 0:
		/* Alive, not reading: answer whatever comes, for much longer
		 * than data_retries probes. */
		collect();
		psend(F_ACK, NULL, 0, 0);
		pump();
		if (ph < 40)
			return 2;
		CHECK(stats()->tcp_persist_probes > nx_tcp_tun.data_retries + 2);
		CHECK_EQ(stats()->tcp_conn_timeouts, 0);
		CHECK(find(F_RST) == NULL);
		CHECK_EQ(count_data(), 0);
		CHECK(nx_tcp_busy(E.st));
		/* The app gives up on it: an orphan now. */
		close_f = sk_close(E.s);
		pump();
		clear();
		persist_stage = 1;
		return 2;
	case 1:
		collect();
		if (!sk_future_available(close_f) && ph < 120) {
			psend(F_ACK, NULL, 0, 0);
			pump();
			return 2;
		}
		/* Answered to the end, yet it ended. */
		CHECK(sk_future_available(close_f));
		CHECK(!nx_tcp_busy(E.st));
		CHECK(find(F_RST) != NULL);
		CHECK_EQ(stats()->tcp_conn_timeouts, 1);
		/* Next: a peer that closes its window, then is silent. */
		E.pport++;
		if (!handshake())
			return -1;
		persist_setup();
		persist_stage = 2;
		return 100;	/* 3 probes 5 ms apart, then the end */
	default:
		collect();
		CHECK(find(F_RST) != NULL);
		CHECK_EQ(stats()->tcp_conn_timeouts, 2);
		f = sk_read(E.s);
		CHECK(sk_future_failed(f));
		if (sk_future_failed(f)) {
			sk_future_get(f, &err);
			CHECK_EQ(err, -ETIMEDOUT);
		}
		sk_abort(E.s);
		return -1;
	}
}

SK_TEST(persist_gives_up_on_silent_peer_and_for_orphans)
{
	run_phases(p_persist_limits, 0);
}

/* Fast retransmit on an active open, whatever half of the sequence space
 * its ISS is in, and on a connection whose last loss lies more than 2 GB
 * of sequence space back. */
static int p_frtx_recover(int ph)
{
	struct sk_sockaddr a = { PEER_IP, 7777 };
	uint8_t buf[14600];
	struct tseg *t = NULL;
	struct sk_sock *s;
	int err;
	(void)ph;

	nx_tcp_tun.rto_min_ns = 2000 * MS;
	/* An ISS in the upper half (half of all connects). */
	for (int tries = 0; tries < 64; tries++) {
		clear();
		conn_f = nx_tcp_connect(E.st, &a);
		pump();
		t = find(F_SYN);
		if (t && (int32_t)(t->seq + 1) < 0)
			break;
		if (t)
			send_frame(7777, t->sport, 0, t->seq + 1, F_RST | F_ACK, 0, NULL, 0, NULL,
				   0, 0, false);
		pump();
		if (sk_future_available(conn_f))
			sk_future_get(conn_f, &err);
		t = NULL;
	}
	CHECK(t != NULL);
	if (!t)
		return -1;
	uint16_t sport = t->sport;
	uint32_t base = t->seq + 1;
	send_frame(7777, sport, 5000, base, F_SYN | F_ACK, 65535, syn_opts, 8, NULL, 0, 0, false);
	pump();
	s = sk_future_ptr_value(sk_future_get(conn_f, &err));
	CHECK_EQ(err, 0);
	if (err)
		return -1;
	fill(buf, sizeof(buf), 8);
	CHECK_EQ(sk_write(s, buf, sizeof(buf)), 0);
	pump();
	send_frame(7777, sport, 5001, base + 1460, F_ACK, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	clear();
	for (int i = 0; i < 3; i++)
		send_frame(7777, sport, 5001, base + 1460, F_ACK, 65535, NULL, 0, NULL, 0, 0, false);
	pump();
	CHECK_EQ(stats()->tcp_fast_retransmits, 1);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, base + 1460);
		CHECK_EQ(t->len, 1460);
	}
	sk_abort(s);

	/* Passive, recovered long ago: recover is 2^31 + 10 behind. */
	listen80();
	if (!handshake())
		return -1;
	tcp_of(E.s)->recover = E.sseq - 0x80000000u - 10;
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	base = E.sseq;
	E.sseq = base + 1460;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	clear();
	for (int i = 0; i < 3; i++)
		psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(stats()->tcp_fast_retransmits, 2);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->seq, base + 1460);
	sk_abort(E.s);
	return -1;
}

SK_TEST(fast_retransmit_active_open_and_old_recover)
{
	run_phases(p_frtx_recover, 0);
}

/* One MSS everywhere: with an MTU larger than a receive buffer holds, the
 * SYN, the SYN-ACK and what an active open sends all stay within one
 * buffer's worth. */
static int p_mss_clamp(int ph)
{
	static const uint8_t jumbo_opts[8] = { 2, 4, 0x23, 0x00, 1, 3, 3, 7 };	/* 8960 */
	const uint16_t room = SK_PKT_DATAROOM - NX_TCP_HLEN - 40;
	struct sk_sockaddr a = { PEER_IP, 7777 };
	uint8_t buf[6000];
	struct tseg *t;
	int err;
	(void)ph;

	E.st->mtu = 9000;
	listen80();
	send_frame(E.pport, 80, 1000, 0, F_SYN, 65535, jumbo_opts, 8, NULL, 0, 0, false);
	pump();
	t = find(F_SYN | F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->mss, room);
	clear();
	conn_f = nx_tcp_connect(E.st, &a);
	pump();
	t = find(F_SYN);
	CHECK(t != NULL);
	if (!t)
		return -1;
	CHECK_EQ(t->mss, room);
	uint16_t sport = t->sport;
	uint32_t base = t->seq + 1;
	send_frame(7777, sport, 5000, base, F_SYN | F_ACK, 65535, jumbo_opts, 8, NULL, 0, 0,
		   false);
	pump();
	struct sk_sock *s = sk_future_ptr_value(sk_future_get(conn_f, &err));
	CHECK_EQ(err, 0);
	if (err)
		return -1;
	fill(buf, sizeof(buf), 3);
	clear();
	CHECK_EQ(sk_write(s, buf, sizeof(buf)), 0);
	pump();
	uint32_t sent = 0;
	for (unsigned i = 0; i < E.nr; i++) {
		if (!E.r[i].len)
			continue;
		CHECK(E.r[i].len <= room);
		CHECK(!memcmp(E.r[i].data, buf + (E.r[i].seq - base), E.r[i].len));
		sent += E.r[i].len;
	}
	CHECK_EQ(sent, sizeof(buf));
	sk_abort(s);
	return -1;
}

SK_TEST(mss_clamped_to_a_receive_buffer_everywhere)
{
	run_phases(p_mss_clamp, 0);
}

/* The peer acknowledges part of the flight and closes its window: probe
 * (never time out while it answers), then resend from the acknowledged
 * point once it opens. */
static int p_zw_flight(int ph)
{
	static uint8_t buf[3000];
	uint32_t sent;

	switch (ph) {
	case 0:
		nx_tcp_tun.rto_min_ns = 10 * MS;
		nx_tcp_tun.rto_max_ns = 10 * MS;
		nx_tcp_tun.rto_initial_ns = 10 * MS;
		nx_tcp_tun.data_retries = 3;
		listen80();
		if (!handshake())
			return -1;
		fill(buf, sizeof(buf), 4);
		clear();
		CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
		pump();
		CHECK_EQ(count_data(), 3);
		E.sseq += 1460;
		psend(F_ACK, NULL, 0, 0);	/* part of it; window closed */
		pump();
		clear();
		return 4;
	default:
		collect();
		if (ph < 30) {
			/* Alive: answer the probes, window still closed. */
			psend(F_ACK, NULL, 0, 0);
			pump();
			return 4;
		}
		CHECK(stats()->tcp_persist_probes > nx_tcp_tun.data_retries);
		CHECK_EQ(stats()->tcp_conn_timeouts, 0);
		CHECK(find(F_RST) == NULL);
		sent = 0;
		for (unsigned i = 0; i < E.nr; i++)
			sent += E.r[i].len || E.r[i].seq != E.sseq - 1;
		CHECK_EQ(sent, 0);	/* probes only */
		/* Opened: the rest again, from the acknowledged byte. */
		clear();
		psend(F_ACK, NULL, 0, 65535);
		pump();
		sent = 0;
		for (unsigned i = 0; i < E.nr; i++) {
			if (!E.r[i].len)
				continue;
			CHECK_EQ(E.r[i].seq, E.sseq + sent);
			CHECK(!memcmp(E.r[i].data, buf + 1460 + sent, E.r[i].len));
			sent += E.r[i].len;
		}
		CHECK_EQ(sent, 1540);
		E.sseq += 1540;
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(sk_write_queued(E.s), 0);
		sk_abort(E.s);
		return -1;
	}
}

SK_TEST(zero_window_with_data_in_flight_probes_then_resends)
{
	run_phases(p_zw_flight, 0);
}

/* Simultaneous open (RFC 9293 figure 8): our SYN crosses the peer's. */
static int p_simul_open(int ph)
{
	struct sk_sockaddr a = { PEER_IP, 7777 };
	struct tseg *t;
	int err;
	(void)ph;

	conn_f = nx_tcp_connect(E.st, &a);
	pump();
	t = find(F_SYN);
	CHECK(t != NULL);
	if (!t)
		return -1;
	uint16_t sport = t->sport;
	uint32_t iss = t->seq;
	/* The peer's own SYN: SYN_RECEIVED, our SYN-ACK. */
	clear();
	send_frame(7777, sport, 5000, 0, F_SYN, 65535, syn_opts, 8, NULL, 0, 0, false);
	pump();
	t = find(F_SYN | F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, iss);
		CHECK_EQ(t->ack, 5001);
	}
	/* Its SYN again: the SYN-ACK again. */
	clear();
	send_frame(7777, sport, 5000, 0, F_SYN, 65535, syn_opts, 8, NULL, 0, 0, false);
	pump();
	CHECK(find(F_SYN | F_ACK) != NULL);
	CHECK(!sk_future_available(conn_f));
	/* Its SYN-ACK answers our SYN: ESTABLISHED, ACKed. */
	clear();
	send_frame(7777, sport, 5000, iss + 1, F_SYN | F_ACK, 65535, syn_opts, 8, NULL, 0, 0,
		   false);
	pump();
	CHECK(find(F_SYN) == NULL);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, iss + 1);
		CHECK_EQ(t->ack, 5001);
	}
	CHECK(sk_future_available(conn_f));
	if (!sk_future_available(conn_f))
		return -1;
	struct sk_sock *s = sk_future_ptr_value(sk_future_get(conn_f, &err));
	CHECK_EQ(err, 0);
	if (err)
		return -1;
	CHECK_EQ(stats()->tcp_active_opens, 1);
	/* Data both ways. */
	send_frame(7777, sport, 5001, iss + 1, F_ACK | F_PSH, 65535, NULL, 0, "hi", 2, 0, false);
	pump();
	CHECK_EQ(sk_read_avail(s), 2);
	clear();
	CHECK_EQ(sk_write(s, "yo", 2), 0);
	pump();
	t = find(F_ACK | F_PSH);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->seq, iss + 1);
		CHECK_EQ(t->ack, 5003);
		CHECK(!memcmp(t->data, "yo", 2));
	}
	sk_abort(s);
	return -1;
}

SK_TEST(simultaneous_open)
{
	run_phases(p_simul_open, 0);
}

/* The connection under test (E) closes first and ends in TIME_WAIT. */
static bool to_time_wait(void)
{
	struct tseg *t;

	clear();
	close_f = sk_close(E.s);
	pump();
	t = find(F_FIN);
	CHECK(t != NULL);
	if (!t)
		return false;
	E.sseq++;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK(sk_future_available(close_f));
	psend(F_ACK | F_FIN, NULL, 0, 65535);
	E.pseq++;
	pump();
	struct tcp_conn *c = tcp_lookup(E.st, ST_IP, 80, PEER_IP, E.pport);
	CHECK(c != NULL);
	return c && c->state == TCP_TIME_WAIT;
}

/* TIME_WAIT is bounded per instance: beyond time_wait_max the oldest one
 * ends early. */
static int p_tw_cap(int ph)
{
	(void)ph;

	nx_tcp_tun.time_wait_max = 4;
	listen80();
	for (unsigned i = 0; i < 6; i++) {
		E.pport = (uint16_t)(41000 + i);
		if (!handshake() || !to_time_wait())
			return -1;
	}
	CHECK_EQ(stats()->tcp_time_wait, 6);
	CHECK_EQ(stats()->tcp_time_wait_overflow, 2);
	for (unsigned i = 0; i < 6; i++) {
		struct tcp_conn *c = tcp_lookup(E.st, ST_IP, 80, PEER_IP, (uint16_t)(41000 + i));
		if (i < 2)
			CHECK(c == NULL);
		else
			CHECK(c != NULL && c->state == TCP_TIME_WAIT);
	}
	return -1;
}

SK_TEST(time_wait_bounded_oldest_ends_early)
{
	run_phases(p_tw_cap, 0);
}

/* RFC 1337: a reset does not end TIME_WAIT - its FIN is still ACKed. */
static int p_tw_rst(int ph)
{
	struct tseg *t;
	(void)ph;

	listen80();
	if (!handshake() || !to_time_wait())
		return -1;
	clear();
	psend(F_RST, NULL, 0, 0);	/* exact */
	pump();
	CHECK_EQ(E.nr, 0);
	struct tcp_conn *c = tcp_lookup(E.st, ST_IP, 80, PEER_IP, E.pport);
	CHECK(c != NULL && c->state == TCP_TIME_WAIT);
	/* A retransmitted FIN: ACKed, not reset. */
	E.pseq--;
	psend(F_ACK | F_FIN, NULL, 0, 65535);
	E.pseq++;
	pump();
	CHECK(find(F_RST) == NULL);
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t)
		CHECK_EQ(t->ack, E.pseq);
	return -1;
}

SK_TEST(rst_in_time_wait_ignored)
{
	run_phases(p_tw_rst, 0);
}

/* A stale ACK (below snd_una) does not move the send window, even in a
 * segment with a newer sequence number. */
static int p_stale_ack(int ph)
{
	uint8_t buf[1000];
	(void)ph;

	listen80();
	if (!handshake())
		return -1;
	fill(buf, sizeof(buf), 5);
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	uint32_t old = E.sseq;
	E.sseq += 1000;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(sk_write_queued(E.s), 0);
	/* Data past a hole with an old ACK and a closed window. */
	send_frame(E.pport, 80, E.pseq + 10, old, F_ACK, 0, NULL, 0, "late", 4, 0, false);
	pump();
	/* The window is still open: new data goes at once. */
	clear();
	CHECK_EQ(sk_write(E.s, buf, 500), 0);
	pump();
	CHECK_EQ(count_data(), 1);
	CHECK_EQ(stats()->tcp_persist_probes, 0);
	sk_abort(E.s);
	return -1;
}

SK_TEST(stale_ack_does_not_update_the_window)
{
	run_phases(p_stale_ack, 0);
}

/* --- SACK (RFC 2018, RFC 6675) ------------------------------------------ */

/* SACK-permitted: in our SYN always, in a SYN-ACK only in answer. */
static int p_sack_syn(int ph)
{
	struct sk_sockaddr a = { PEER_IP, 7777 };
	uint8_t buf[1000];
	struct tseg *t;
	int err;
	(void)ph;

	listen80();
	/* Not offered: not answered (handshake_with checks the SYN-ACK),
	 * and out-of-order data earns ACKs without blocks. */
	if (!handshake())
		return -1;
	CHECK(!tcp_of(E.s)->sack_ok);
	fill(buf, sizeof(buf), 1);
	clear();
	send_frame(E.pport, 80, E.pseq + 1000, E.sseq, F_ACK, 65535, NULL, 0, buf, 1000, 0,
		   false);
	pump();
	t = find(F_ACK);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->ack, E.pseq);
		CHECK_EQ(t->nsack, 0);
	}
	sk_abort(E.s);
	/* Offered: answered. */
	E.pport++;
	clear();
	if (!handshake_sack())
		return -1;
	CHECK(tcp_of(E.s)->sack_ok);
	sk_abort(E.s);
	/* Active open: offered; the peer's SYN-ACK without it means none. */
	clear();
	conn_f = nx_tcp_connect(E.st, &a);
	pump();
	t = find(F_SYN);
	CHECK(t != NULL);
	if (!t)
		return -1;
	CHECK(t->sackp);
	send_frame(7777, t->sport, 5000, t->seq + 1, F_SYN | F_ACK, 65535, syn_opts, 8, NULL, 0,
		   0, false);
	pump();
	struct sk_sock *s = sk_future_ptr_value(sk_future_get(conn_f, &err));
	CHECK_EQ(err, 0);
	if (s) {
		CHECK(!tcp_of(s)->sack_ok);
		sk_abort(s);
	}
	return -1;
}

SK_TEST(sack_permitted_offered_and_answered_only_when_offered)
{
	run_phases(p_sack_syn, 0);
}

/* Send peer bytes [off, off + 1000) of @buf, relative to @base. */
static void pdata_at(uint32_t base, const uint8_t *buf, uint32_t off)
{
	send_frame(E.pport, 80, base + off, E.sseq, F_ACK, 65535, NULL, 0, buf + off, 1000, 0,
		   false);
}

/* The ACK the stack just sent carries exactly these blocks (relative). */
static void check_blocks(uint32_t base, uint32_t ack, const uint32_t (*want)[2], unsigned n)
{
	struct tseg *t = find(F_ACK);

	CHECK(t != NULL);
	if (!t)
		return;
	CHECK_EQ(t->ack, base + ack);
	CHECK_EQ(t->nsack, n);
	for (unsigned i = 0; i < n && i < t->nsack; i++) {
		CHECK_EQ(t->sack[i][0] - base, want[i][0]);
		CHECK_EQ(t->sack[i][1] - base, want[i][1]);
	}
}

static int p_sack_rx(int ph)
{
	uint8_t buf[12000], got[12000];
	(void)ph;

	listen80();
	if (!handshake_sack())
		return -1;
	fill(buf, sizeof(buf), 6);
	uint32_t b = E.pseq;
#define STEP(off) do { clear(); pdata_at(b, buf, (off)); pump(); } while (0)
	STEP(1000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 1000, 2000 } }, 1);
	STEP(3000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 3000, 4000 }, { 1000, 2000 } }, 2);
	/* Filling between two blocks: one block. */
	STEP(2000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 1000, 4000 } }, 1);
	STEP(5000);
	STEP(7000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 7000, 8000 }, { 1000, 4000 },
						{ 5000, 6000 } }, 3);
	STEP(9000);
	/* Five ranges: the latest first, then the lowest others, 4 in all
	 * (NOP NOP + 4 blocks = 36 bytes of options). */
	STEP(11000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 11000, 12000 }, { 1000, 4000 },
						{ 5000, 6000 }, { 7000, 8000 } }, 4);
	/* A duplicate inside a block: that block first. */
	STEP(5000);
	check_blocks(b, 0, (const uint32_t[][2]){ { 5000, 6000 }, { 1000, 4000 },
						{ 7000, 8000 }, { 9000, 10000 } }, 4);
	CHECK_EQ(sk_read_avail(E.s), 0);
	/* The front hole filled: the ACK moves, the rest is still reported. */
	STEP(0);
	check_blocks(b, 4000, (const uint32_t[][2]){ { 5000, 6000 }, { 7000, 8000 },
						   { 9000, 10000 }, { 11000, 12000 } }, 4);
	STEP(4000);
	STEP(6000);
	STEP(8000);
	check_blocks(b, 10000, (const uint32_t[][2]){ { 11000, 12000 } }, 1);
	STEP(10000);
	check_blocks(b, 12000, NULL, 0);
#undef STEP
	CHECK_EQ(drain(E.s, got, sizeof(got)), 12000);
	CHECK(!memcmp(got, buf, 12000));
	sk_abort(E.s);
	return -1;
}

SK_TEST(sack_blocks_describe_the_reassembly_queue)
{
	run_phases(p_sack_rx, 0);
}

/* Data segments collected, as offsets from @base (at most 16). */
static unsigned data_offs(uint32_t base, uint32_t *offs)
{
	unsigned n = 0;
	for (unsigned i = 0; i < E.nr && n < 16; i++)
		if (E.r[i].len)
			offs[n++] = E.r[i].seq - base;
	return n;
}

static int p_sack_rtx(int ph)
{
	uint8_t buf[7300];
	uint32_t offs[16];
	unsigned n;
	(void)ph;

	nx_tcp_tun.rto_min_ns = 2000 * MS;
	listen80();
	if (!handshake_sack())
		return -1;
	fill(buf, sizeof(buf), 9);
	clear();
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	CHECK_EQ(count_data(), 5);
	uint32_t b = E.sseq;
	/* Segments 2 and 4 arrive, 1, 3 and 5 do not: three duplicate ACKs
	 * with SACK blocks. */
	clear();
	psend_sack((const uint32_t[][2]){ { b + 1460, b + 2920 } }, 1);
	pump();
	CHECK_EQ(count_data(), 0);
	psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 }, { b + 1460, b + 2920 } }, 2);
	psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 }, { b + 1460, b + 2920 } }, 2);
	pump();
	CHECK_EQ(stats()->tcp_sack_blocks_rx, 5);
	CHECK_EQ(stats()->tcp_fast_retransmits, 1);
	n = data_offs(b, offs);
	CHECK_EQ(n, 1);
	if (n == 1)
		CHECK_EQ(offs[0], 0);
	struct tseg *t = find(F_ACK);
	if (t && t->len)
		CHECK(!memcmp(t->data, buf, 1460));
	/* Segment 1 arrives: the ACK stops at the hole of segment 3, which
	 * goes - and nothing the peer holds. */
	clear();
	E.sseq = b + 2920;
	psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 } }, 1);
	pump();
	n = data_offs(b, offs);
	CHECK_EQ(n, 1);
	if (n == 1)
		CHECK_EQ(offs[0], 2920);
	t = find(F_ACK);
	if (t && t->len)
		CHECK(!memcmp(t->data, buf + 2920, 1460));
	CHECK_EQ(stats()->tcp_retransmits, 2);
	/* A duplicate of that ACK resends nothing (once per episode). */
	clear();
	psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 } }, 1);
	pump();
	CHECK_EQ(count_data(), 0);
	/* Everything acknowledged: recovery over, the queue empty. */
	E.sseq = b + sizeof(buf);
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(sk_write_queued(E.s), 0);
	CHECK(!tcp_of(E.s)->in_recovery);
	CHECK_EQ(tcp_of(E.s)->nsacked, 0);
	sk_abort(E.s);
	return -1;
}

SK_TEST(sack_recovery_resends_only_the_holes)
{
	run_phases(p_sack_rtx, 0);
}

static uint32_t rto_base;

static int p_sack_rto(int ph)
{
	static uint8_t buf[7300];
	uint32_t offs[16], b = rto_base;
	unsigned n;

	switch (ph) {
	case 0:
		nx_tcp_tun.rto_min_ns = 20 * MS;
		nx_tcp_tun.rto_initial_ns = 20 * MS;
		listen80();
		if (!handshake_sack())
			return -1;
		fill(buf, sizeof(buf), 10);
		CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
		pump();
		rto_base = E.sseq;
		b = rto_base;
		/* One ACK: segments 2 and 4 arrived - too little to call
		 * segment 1 lost, the timer will. */
		psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 },
						  { b + 1460, b + 2920 } }, 2);
		pump();
		clear();
		return 30;
	case 1:
		collect();
		CHECK_EQ(stats()->tcp_rto_timeouts, 1);
		/* Loss window: one segment, the first. */
		n = data_offs(b, offs);
		CHECK_EQ(n, 1);
		if (n == 1)
			CHECK_EQ(offs[0], 0);
		/* It arrives; going back N now skips segment 4 (RFC 6675 5.1):
		 * 3 and 5 go, in the two segments slow start allows. */
		clear();
		E.sseq = b + 2920;
		psend_sack((const uint32_t[][2]){ { b + 4380, b + 5840 } }, 1);
		pump();
		n = data_offs(b, offs);
		CHECK_EQ(n, 2);
		if (n == 2) {
			CHECK_EQ(offs[0], 2920);
			CHECK_EQ(offs[1], 5840);
		}
		for (unsigned i = 0; i < E.nr; i++)
			if (E.r[i].len)
				CHECK(!memcmp(E.r[i].data, buf + (E.r[i].seq - b), E.r[i].len));
		E.sseq = b + sizeof(buf);
		psend(F_ACK, NULL, 0, 65535);
		pump();
		CHECK_EQ(sk_write_queued(E.s), 0);
		sk_abort(E.s);
		return -1;
	}
	return -1;
}

SK_TEST(sack_timeout_goes_back_n_around_sacked_data)
{
	run_phases(p_sack_rto, 0);
}

static int p_sack_bad(int ph)
{
	uint8_t buf[7300];
	(void)ph;

	nx_tcp_tun.rto_min_ns = 2000 * MS;
	listen80();
	if (!handshake_sack())
		return -1;
	fill(buf, sizeof(buf), 11);
	CHECK_EQ(sk_write(E.s, buf, sizeof(buf)), 0);
	pump();
	uint32_t b = E.sseq;
	struct tcp_conn *c = tcp_of(E.s);

	/* A SACK option of a length no list of blocks has: that option is
	 * ignored, the ACK still counts. */
	uint8_t o1[12] = { 5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1 };
	E.sseq = b + 1460;
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, o1, 12, NULL, 0, 0, false);
	pump();
	CHECK_EQ(stats()->tcp_sack_bad, 1);
	CHECK_EQ(stats()->tcp_bad_opts, 0);
	CHECK_EQ(sk_write_queued(E.s), 7300 - 1460);
	/* Blocks outside (snd_una, snd_max], or empty, or inverted. */
	psend_sack((const uint32_t[][2]){ { b + 2920, b + 0x10000000 }, { b - 100, b + 500 },
					  { b + 4380, b + 2920 }, { b + 3000, b + 3000 } }, 4);
	pump();
	CHECK_EQ(stats()->tcp_sack_bad, 5);
	psend_sack((const uint32_t[][2]){ { b + 0x80000000u, b + 0x80000100u } }, 1);
	pump();
	CHECK_EQ(stats()->tcp_sack_bad, 6);
	CHECK_EQ(c->nsacked, 0);
	/* A D-SACK (below the ACK) is no error, and no scoreboard entry. */
	psend_sack((const uint32_t[][2]){ { b, b + 1460 } }, 1);
	pump();
	CHECK_EQ(stats()->tcp_sack_bad, 6);
	CHECK_EQ(c->nsacked, 0);
	CHECK_EQ(stats()->tcp_sack_blocks_rx, 0);
	/* An option running past the header: the segment is malformed. */
	uint8_t o2[12] = { 1, 1, 5, 34, 0, 0, 0, 0, 0, 0, 0, 0 };
	send_frame(E.pport, 80, E.pseq, E.sseq, F_ACK, 65535, o2, 12, NULL, 0, 0, false);
	pump();
	CHECK_EQ(stats()->tcp_bad_opts, 1);
	/* Twenty ranges: the scoreboard keeps the lowest TCP_SACK_MAX. */
	for (unsigned k = 0; k < 5; k++) {
		uint32_t blk[4][2];
		for (unsigned i = 0; i < 4; i++) {
			uint32_t r = 19 - (k * 4 + i);	/* highest first */
			blk[i][0] = b + 1500 + 200 * r;
			blk[i][1] = blk[i][0] + 100;
		}
		psend_sack((const uint32_t(*)[2])blk, 4);
		pump();
	}
	CHECK_EQ(stats()->tcp_sack_blocks_rx, 20);
	CHECK_EQ(c->nsacked, TCP_SACK_MAX);
	for (unsigned i = 0; i < c->nsacked; i++) {
		CHECK_EQ(c->sacked[i].start, b + 1500 + 200 * i);
		CHECK_EQ(c->sacked[i].end, b + 1600 + 200 * i);
	}
	/* Overlapping and adjacent blocks merge. */
	psend_sack((const uint32_t[][2]){ { b + 1550, b + 1800 } }, 1);
	pump();
	CHECK_EQ(c->nsacked, TCP_SACK_MAX - 1);
	CHECK_EQ(c->sacked[0].start, b + 1500);
	CHECK_EQ(c->sacked[0].end, b + 1800);
	/* SACK on a connection that did not negotiate it: ignored. */
	E.pport++;
	uint32_t rx = (uint32_t)stats()->tcp_sack_blocks_rx;
	struct sk_sock *s1 = E.s;
	if (handshake()) {
		CHECK_EQ(sk_write(E.s, buf, 2920), 0);
		pump();
		psend_sack((const uint32_t[][2]){ { E.sseq + 1460, E.sseq + 2920 } }, 1);
		pump();
		CHECK_EQ(stats()->tcp_sack_blocks_rx, rx);
		CHECK_EQ(tcp_of(E.s)->nsacked, 0);
		sk_abort(E.s);
	}
	/* Everything acknowledged: the scoreboard empties. */
	E.pport--;
	E.s = s1;
	E.sseq = b + sizeof(buf);
	E.pseq = 1001;
	psend(F_ACK, NULL, 0, 65535);
	pump();
	CHECK_EQ(sk_write_queued(E.s), 0);
	CHECK_EQ(c->nsacked, 0);
	sk_abort(E.s);
	return -1;
}

SK_TEST(sack_malformed_and_out_of_window_blocks_ignored)
{
	run_phases(p_sack_bad, 0);
}

/* --- (b) two instances -------------------------------------------------- */

static struct pair {
	struct sk_netdev *a, *b;
	struct nx_stack *s1, *s2;	/* client 10.0.0.1, server 10.0.0.2 */
	struct sk_listener *l;
	uint64_t total;
	unsigned nconns, accepted, finished;
	bool bad;
	const char *fault;	/* on the client's device, both directions */
} P;

struct xfer {
	struct sk_sock *s;
	uint64_t sent, got, total;
	unsigned seed;
	bool server, bad, eof, primed;
};

static uint8_t pat(uint64_t i, unsigned seed)
{
	return (uint8_t)(i * 131 + (i >> 11) + seed);
}

static sk_future xfer_closed(void *arg, int64_t v)
{
	struct xfer *x = arg;
	(void)v;
	P.finished++;
	if (x->bad || x->got != x->total) {
		fprintf(stderr, "  transfer: got %llu of %llu, bad %d\n",
			(unsigned long long)x->got, (unsigned long long)x->total, x->bad);
		P.bad = true;
	}
	sk_free(x);
	return sk_make_ready(SK_STOP);
}

/* Read what came, write more while the output is small; both directions
 * at once.  Done when all was received and sent: then close. */
static sk_future xfer_got(void *arg, int64_t n)
{
	struct xfer *x = arg;
	const uint8_t *p;
	size_t len;

	while ((p = sk_read_peek(x->s, &len)) != NULL) {
		for (size_t i = 0; i < len; i++)
			if (p[i] != pat(x->got + i, x->seed ^ (x->server ? 0 : 0x55)))
				x->bad = true;
		x->got += len;
		sk_read_consume(x->s, len);
	}
	if (n == 0)
		x->eof = true;
	while (x->sent < x->total && sk_write_queued(x->s) < 128 * 1024) {
		uint8_t buf[8192];
		size_t k = x->total - x->sent < sizeof(buf) ? x->total - x->sent : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(x->sent + i, x->seed ^ (x->server ? 0x55 : 0));
		if (sk_write(x->s, buf, k))
			return sk_make_error(-EIO);
		x->sent += k;
	}
	if (x->got >= x->total && x->sent >= x->total)
		return sk_future_then(sk_close(x->s), xfer_closed, x);
	if (x->eof)
		return sk_make_error(-EPIPE);
	return sk_make_ready(0);
}

static sk_future xfer_flushed(void *arg, int64_t v)
{
	(void)v;
	return xfer_got(arg, 1);	/* not an end of stream */
}

static sk_future xfer_step(void *arg)
{
	struct xfer *x = arg;
	/* First round: write before anything was read. */
	if (!x->primed) {
		x->primed = true;
		return xfer_got(x, 1);
	}
	/* Writers blocked on output wait for the flush, readers for data. */
	if (x->sent < x->total && sk_write_queued(x->s) >= 128 * 1024)
		return sk_future_then(sk_flush(x->s), xfer_flushed, x);
	return sk_future_then(sk_read(x->s), xfer_got, x);
}

static void xfer_err(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err) {
		fprintf(stderr, "  transfer failed: %d (%s)\n", err, arg ? "connect" : "xfer");
		P.bad = true;
		P.finished++;
	}
}

static void xfer_start(struct sk_sock *s, bool server, unsigned seed)
{
	struct xfer *x = sk_zalloc(sizeof(*x));
	x->s = s;
	x->server = server;
	x->total = P.total;
	x->seed = seed;
	sk_future_on_done(sk_repeat(xfer_step, x), xfer_err, NULL);
}

static sk_future srv_accepted(void *arg, int64_t v)
{
	(void)arg;
	struct sk_sock *s = sk_future_ptr_value(v);
	struct sk_sockaddr peer;
	sk_sock_peer(s, &peer);
	xfer_start(s, true, peer.port);
	P.accepted++;
	return sk_make_ready(P.accepted >= P.nconns ? SK_STOP : 0);
}

static sk_future srv_loop(void *arg)
{
	(void)arg;
	return sk_future_then(nx_tcp_accept(P.l), srv_accepted, NULL);
}

static sk_future cli_connected(void *arg, int64_t v)
{
	(void)arg;
	struct sk_sock *s = sk_future_ptr_value(v);
	struct sk_sockaddr local;
	sk_sock_local(s, &local);
	xfer_start(s, false, local.port);
	return sk_make_ready(0);
}

static bool pair_done(void *arg)
{
	(void)arg;
	return P.finished >= 2 * P.nconns;
}

static sk_future pair_wait(void *arg)
{
	(void)arg;
	return sk_sleep(2 * MS);
}

static uint64_t pair_deadline;

static bool pair_done_or_late(void *arg)
{
	return pair_done(arg) || sk_now_ns() > pair_deadline;
}

static sk_future pair_end(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	nx_tcp_listener_close(P.l);
	if (getenv("NX_TCP_VERBOSE"))
		fprintf(stderr, "  s1: segs_out %llu rtx %llu; s2: segs_out %llu rtx %llu\n",
			(unsigned long long)P.s1->stats.tcp_segs_out,
			(unsigned long long)P.s1->stats.tcp_retransmits,
			(unsigned long long)P.s2->stats.tcp_segs_out,
			(unsigned long long)P.s2->stats.tcp_retransmits);
	if (!pair_done(NULL)) {
		struct nx_stack *sts[2] = { P.s1, P.s2 };
		for (int i = 0; i < 2; i++)
			for (struct tcp_conn *c = sts[i]->tcp->all; c; c = c->anext)
				fprintf(stderr, "  s%d %u->%u st %d own %d una %u nxt %u max %u out %zu "
					"wnd %u cwnd %u rec %d rcv_nxt %u adv %u in %zu ooo %zu "
					"rtx %d persist %d err %d\n", i + 1, c->lport, c->rport,
					c->state, c->owner, c->snd_una - c->iss, c->snd_nxt - c->iss,
					c->snd_max - c->iss, c->s.out.bytes, c->snd_wnd, c->cwnd,
					c->in_recovery, c->rcv_nxt - c->irs, c->rcv_adv - c->irs,
					c->s.in.bytes, c->ooo_mem, sk_timer_armed(&c->rtx),
					c->persist, c->s.err);
	}
	CHECK(pair_done(NULL));
	CHECK(!nx_tcp_busy(P.s1));
	CHECK(!nx_tcp_busy(P.s2));
	nx_stack_destroy(P.s1);
	nx_stack_destroy(P.s2);
	sk_netdev_close(P.a);
	sk_netdev_close(P.b);
	return sk_make_ready(0);
}

static sk_future pair_main(void *arg)
{
	struct nx_config c1 = { 0 }, c2 = { 0 };
	struct sk_sockaddr la = { 0x0a000002, 0 }, ca;
	struct sk_listen_opts o = { .backlog = 128 };
	(void)arg;

	if (sk_netdev_loop_pair(1, 4096, NULL, NULL, &P.a, &P.b))
		return sk_make_error(-ENOMEM);
	if (P.fault) {
		struct sk_fault_config fc;
		struct sk_netdev *fd;
		if (sk_fault_parse(P.fault, &fc))
			return sk_make_error(-EINVAL);
		if (getenv("NX_TCP_SEED"))
			fc.seed = strtoull(getenv("NX_TCP_SEED"), NULL, 0);
		if (sk_netdev_fault(P.a, &fc, &fd))
			return sk_make_error(-EINVAL);
		P.a = fd;
	}
	c1.dev = P.a;
	c1.ip = 0x0a000001;
	c1.prefix = 24;
	memcpy(c1.mac, P.a->mac, 6);
	c2.dev = P.b;
	c2.ip = 0x0a000002;
	c2.prefix = 24;
	memcpy(c2.mac, P.b->mac, 6);
	if (nx_stack_create(&c1, &P.s1) || nx_stack_create(&c2, &P.s2))
		return sk_make_error(-EIO);
	if (nx_tcp_listen(P.s2, &la, &o, &P.l))
		return sk_make_error(-EIO);
	nx_tcp_listener_addr(P.l, &ca);
	CHECK_EQ(ca.ip, 0x0a000002);
	CHECK(ca.port != 0);
	sk_future_ignore(sk_repeat(srv_loop, NULL));
	for (unsigned i = 0; i < P.nconns; i++)
		sk_future_on_done(sk_future_then(nx_tcp_connect(P.s1, &ca), cli_connected, NULL),
				  xfer_err, &P);
	pair_deadline = sk_now_ns() + 20 * SK_NSEC_PER_SEC;
	return sk_future_then(sk_do_until(pair_done_or_late, pair_wait, NULL), pair_end, NULL);
}

static void pair_body(void)
{
	CHECK_EQ(sk_test_run(1, pair_main, NULL), 0);
	CHECK_EQ(P.accepted, P.nconns);
	CHECK_EQ(P.finished, 2 * P.nconns);
	CHECK(!P.bad);
}

static void run_pair_fault(unsigned nconns, uint64_t total, const char *fault)
{
	memset(&P, 0, sizeof(P));
	P.fault = fault;
	P.nconns = nconns;
	P.total = total;
	isolated(pair_body);
	nx_tcp_tun = defaults_tun;
}

static void run_pair(unsigned nconns, uint64_t total)
{
	memset(&P, 0, sizeof(P));
	P.nconns = nconns;
	P.total = total;
	isolated(pair_body);
	nx_tcp_tun = defaults_tun;
}

SK_TEST(two_instances_4mb_each_way_byte_exact)
{
	run_pair(1, 4 * 1000 * 1000);
}

SK_TEST(two_instances_many_connections)
{
	run_pair(64, 20000);
}

SK_TEST(two_instances_lossy_link_drop_reorder_dup_corrupt)
{
	/* Loss everywhere (SYNs, data, ACKs, FINs): retransmission, fast
	 * recovery, reassembly and checksums carry the bytes through. */
	nx_tcp_tun.rto_min_ns = 5 * MS;
	nx_tcp_tun.rto_initial_ns = 20 * MS;
	nx_tcp_tun.delack_ns = 5 * MS;
	nx_tcp_tun.time_wait_ns = 50 * MS;
	run_pair_fault(4, 1000 * 1000,
		       "drop=0.02,reorder=0.02,dup=0.01,corrupt=0.005,seed=11");
}
