/*
 * test_dpdk.c - the DPDK driver by itself, on virtual devices and without
 * hugepages: net_ring (its queues loop back), net_null (a PMD with RSS),
 * net_bond (a virtual device skerry does not drive).
 *
 * What it pins down: arguments naming PCI devices are refused before EAL
 * starts; unknown and disallowed devices fail cleanly; a received mbuf is
 * the sk_pkt itself and is sent back out without a copy, while the stack's
 * own buffers and chains are copied into one mbuf; per-queue counters; RSS
 * claimed where the PMD has it; one user per port; copying instead of
 * holding mbufs once the pool runs low; the sleep protocol (rx_pending keeps what it
 * peeked, next_event polls at once while traffic flows); a port closed
 * with packets in flight opens again empty.
 *
 * EAL starts once per process, with the first case's arguments; the case
 * that must see it refused runs in a child.
 */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sk_run.h"
#include "sk_test.h"
#include "skerry/alloc.h"
#include "skerry/netdev.h"
#include "skerry/pkt.h"
#include "skerry/reactor.h"
#include "skerry/timer.h"

#define EAL "--no-huge -m 1024"

/* An Ethernet frame of @len bytes whose payload bytes follow @seed. */
static struct sk_pkt *frame(uint32_t len, uint8_t seed)
{
	struct sk_pkt *p = sk_pkt_alloc();
	if (!p)
		return NULL;
	uint8_t *d = sk_pkt_append(p, len);
	if (!d) {
		sk_pkt_free(p);
		return NULL;
	}
	memset(d, 0xff, 6);			/* broadcast */
	memcpy(d + 6, "\x02\x00\x00\x00\x00\x07", 6);
	d[12] = 0x88;				/* local experimental type */
	d[13] = 0xb5;
	for (uint32_t i = 14; i < len; i++)
		d[i] = (uint8_t)(seed + i * 7);
	return p;
}

static bool same_bytes(const struct sk_pkt *p, uint32_t len, uint8_t seed)
{
	uint8_t buf[2048];
	if (p->pkt_len != len || len > sizeof(buf) || sk_pkt_copy_out(p, 0, len, buf))
		return false;
	for (uint32_t i = 14; i < len; i++)
		if (buf[i] != (uint8_t)(seed + i * 7))
			return false;
	return true;
}

/* rx_burst until @n packets came or a bounded number of tries passed. */
static unsigned rx_wait(struct sk_netdev *d, struct sk_pkt **pkts, unsigned n)
{
	unsigned got = 0;
	for (int i = 0; i < 1000 && got < n; i++)
		got += d->rx_burst(d, 0, pkts + got, n - got);
	return got;
}

/* --- refusals ----------------------------------------------------------- */

SK_TEST(arguments_naming_pci_devices_are_refused_before_eal_starts)
{
	const char *bad[] = { "-a 0000:00:01.0", "--allow=0000:00:01.0", "-w 0000:00:01.0",
			      "--no-huge --pci-whitelist 0000:00:01.0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct sk_netdev *d = NULL;
			int r = sk_netdev_dpdk("net_null0", bad[i], 1, NULL, &d);
			_exit(r == -EINVAL && !d ? 0 : 1);
		}
		int st = -1;
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

static sk_future refuse_main(void *arg)
{
	struct sk_netdev *d = NULL;
	(void)arg;
	CHECK_EQ(sk_netdev_dpdk("net_bogus0", EAL, 1, NULL, &d), -EPERM);
	CHECK(d == NULL);
	/* An allowed driver that refuses its arguments. */
	CHECK_EQ(sk_netdev_dpdk("net_null0,nonsense=1", EAL, 1, NULL, &d), -ENODEV);
	CHECK(d == NULL);
	/* A virtual device of a driver outside the list: refused before it
	 * is probed (a PMD like net_pcap would open an interface at once). */
	CHECK_EQ(sk_netdev_dpdk("net_bonding0,mode=1", EAL, 1, NULL, &d), -EPERM);
	CHECK(d == NULL);
	/* More queues than the PMD has (16): as many as it has; the stack
	 * forwards for the shards without one. */
	CHECK_EQ(sk_netdev_dpdk("net_ring0", EAL, 64, NULL, &d), 0);
	if (d) {
		CHECK_EQ(d->nqueues, 16);
		sk_netdev_close(d);
	}
	return sk_make_ready(0);
}

SK_TEST(unknown_and_disallowed_devices_fail_cleanly_and_queues_are_capped)
{
	CHECK_EQ(sk_test_run(1, refuse_main, NULL), 0);
}

/* --- the data path ------------------------------------------------------ */

/* net_ring0 with one queue, attached; NULL (and a failed check) when it
 * cannot be opened. */
static struct sk_netdev *ring_open(void)
{
	struct sk_netdev *d = NULL;
	CHECK_EQ(sk_netdev_dpdk("net_ring0", EAL, 1, NULL, &d), 0);
	if (d)
		CHECK_EQ(sk_netdev_attach(d, 0), 0);
	return d;
}

static sk_future zero_copy_main(void *arg)
{
	struct sk_netdev *d = ring_open();
	struct sk_pkt *p, *q;
	(void)arg;

	if (!d)
		return sk_make_ready(0);
	CHECK_EQ(d->nqueues, 1);
	CHECK(!(d->offloads & (SK_NETDEV_TX_IP_CSUM | SK_NETDEV_TX_L4_CSUM)));
	/* One user per port. */
	struct sk_netdev *again = NULL;
	CHECK_EQ(sk_netdev_dpdk("net_ring0", EAL, 1, NULL, &again), -EBUSY);
	CHECK(again == NULL);

	/* The stack's own buffer goes out as a copy... */
	p = frame(200, 1);
	uint8_t *ours = p->buf;
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	CHECK_EQ(rx_wait(d, &q, 1), 1);
	/* ...and comes back as the mbuf itself, header in its private area. */
	CHECK(q->flags & SK_PKT_F_EMBEDDED);
	CHECK(q->buf != ours);
	CHECK((uint8_t *)q > q->buf - 512 && (uint8_t *)q < q->buf);
	CHECK(same_bytes(q, 200, 1));

	/* Sent back, a received packet is not copied: the same buffer
	 * returns. */
	uint8_t *mb = q->buf;
	CHECK_EQ(d->tx_burst(d, 0, &q, 1), 1);
	CHECK_EQ(rx_wait(d, &p, 1), 1);
	CHECK(p->buf == mb);
	CHECK(same_bytes(p, 200, 1));

	/* A shared one is copied: the holder of the other reference still
	 * owns the buffer. */
	sk_pkt_ref(p);
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	CHECK_EQ(rx_wait(d, &q, 1), 1);
	CHECK(q->buf != mb);
	CHECK(same_bytes(q, 200, 1));
	CHECK(same_bytes(p, 200, 1));
	sk_pkt_free(p);
	sk_pkt_free(q);

	struct sk_netdev_stats s;
	sk_netdev_stats_sum(d, &s);
	CHECK_EQ(s.tx_packets, 3);
	CHECK_EQ(s.rx_packets, 3);
	CHECK_EQ(s.tx_bytes, 600);
	CHECK_EQ(s.rx_bytes, 600);
	sk_netdev_close(d);
	return sk_make_ready(0);
}

SK_TEST(a_received_mbuf_is_the_packet_and_goes_back_out_without_a_copy)
{
	CHECK_EQ(sk_test_run(1, zero_copy_main, NULL), 0);
}

static sk_future chain_main(void *arg)
{
	struct sk_netdev *d = ring_open();
	struct sk_pkt *pkts[40], *got[40];
	(void)arg;

	if (!d)
		return sk_make_ready(0);
	/* Chains of three segments, 1414 bytes in all, in one burst. */
	for (unsigned i = 0; i < 40; i++) {
		struct sk_pkt *h = frame(1414, (uint8_t)i);
		struct sk_pkt *b = sk_pkt_alloc(), *c = sk_pkt_alloc();
		memcpy(sk_pkt_append(b, 500), h->data + 414, 500);
		memcpy(sk_pkt_append(c, 500), h->data + 914, 500);
		sk_pkt_trim(h, 414);
		h->next = b;
		b->next = c;
		h->pkt_len = 1414;
		h->nsegs = 3;
		pkts[i] = h;
	}
	CHECK_EQ(d->tx_burst(d, 0, pkts, 40), 40);
	CHECK_EQ(rx_wait(d, got, 40), 40);
	for (unsigned i = 0; i < 40; i++) {
		CHECK(got[i]->next == NULL);
		CHECK(same_bytes(got[i], 1414, (uint8_t)i));
		sk_pkt_free(got[i]);
	}
	sk_netdev_close(d);
	return sk_make_ready(0);
}

SK_TEST(chains_of_the_stack_s_buffers_are_copied_into_one_mbuf_each)
{
	CHECK_EQ(sk_test_run(1, chain_main, NULL), 0);
}

static sk_future sleep_after(void *arg, int64_t v)
{
	struct sk_netdev *d = arg;
	(void)v;
	/* ...but after a quiet moment, a little later. */
	uint64_t now = sk_now_ns(), due = d->ops->next_event(d, 0);
	CHECK(due > now && due <= now + 2 * SK_NSEC_PER_MSEC);
	sk_netdev_close(d);
	return sk_make_ready(0);
}

static sk_future sleep_main(void *arg)
{
	struct sk_netdev *d = ring_open();
	struct sk_pkt *p;
	(void)arg;

	if (!d)
		return sk_make_ready(0);
	const struct sk_netdev_ops *ops = d->ops;
	CHECK(!ops->rx_pending(d, 0));
	/* net_ring has no interrupts: nothing to sleep on, so it is polled. */
	CHECK_EQ(ops->wait_fd(d, 0), -1);

	p = frame(100, 9);
	CHECK_EQ(d->tx_burst(d, 0, &p, 1), 1);
	/* rx_pending peeks - and keeps what it peeked for rx_burst. */
	CHECK(ops->rx_pending(d, 0));
	CHECK(ops->rx_pending(d, 0));
	CHECK_EQ(d->rx_burst(d, 0, &p, 1), 1);
	CHECK(same_bytes(p, 100, 9));
	sk_pkt_free(p);
	CHECK(!ops->rx_pending(d, 0));
	/* Traffic just flowed: poll again at once... */
	CHECK_EQ(ops->next_event(d, 0), 0);
	return sk_future_then(sk_sleep(3 * SK_NSEC_PER_MSEC), sleep_after, d);
}

SK_TEST(rx_pending_keeps_what_it_peeked_and_polling_follows_traffic)
{
	CHECK_EQ(sk_test_run(1, sleep_main, NULL), 0);
}

static sk_future reopen_main(void *arg)
{
	struct sk_netdev *d = ring_open();
	struct sk_pkt *pkts[8];
	(void)arg;

	if (!d)
		return sk_make_ready(0);
	for (unsigned i = 0; i < 8; i++)
		pkts[i] = frame(64, (uint8_t)i);
	CHECK_EQ(d->tx_burst(d, 0, pkts, 8), 8);
	sk_netdev_close(d);	/* with eight frames still in the ring */

	d = ring_open();
	if (!d)
		return sk_make_ready(0);
	CHECK_EQ(rx_wait(d, pkts, 8), 0);
	pkts[0] = frame(64, 42);
	CHECK_EQ(d->tx_burst(d, 0, pkts, 1), 1);
	CHECK_EQ(rx_wait(d, pkts, 1), 1);
	CHECK(same_bytes(pkts[0], 64, 42));
	sk_pkt_free(pkts[0]);
	sk_netdev_close(d);
	return sk_make_ready(0);
}

SK_TEST(a_port_closed_with_packets_in_flight_opens_again_empty)
{
	CHECK_EQ(sk_test_run(1, reopen_main, NULL), 0);
}

static sk_future rss_main(void *arg)
{
	struct sk_netdev *d = NULL;
	(void)arg;

	/* net_null has RSS and a redirection table: programmed with our key,
	 * claimed; with one queue there is nothing to spread. */
	CHECK_EQ(sk_netdev_dpdk("net_null0", EAL, 2, NULL, &d), 0);
	if (!d)
		return sk_make_ready(0);
	CHECK(d->offloads & SK_NETDEV_RSS);
	CHECK_EQ(d->nqueues, 2);
	sk_netdev_close(d);
	CHECK_EQ(sk_netdev_dpdk("net_null0", EAL, 1, NULL, &d), 0);
	if (d) {
		CHECK(!(d->offloads & SK_NETDEV_RSS));
		sk_netdev_close(d);
	}
	return sk_make_ready(0);
}

SK_TEST(rss_is_programmed_where_the_pmd_has_it)
{
	CHECK_EQ(sk_test_run(1, rss_main, NULL), 0);
}

static sk_future low_pool_main(void *arg)
{
	enum { HOLD_MAX = 7500 };
	struct sk_netdev *d = NULL;
	struct sk_pkt **held = sk_alloc(HOLD_MAX * sizeof(*held));
	struct sk_pkt *b[32];
	unsigned nheld = 0, copied_at = 0;
	(void)arg;

	CHECK_EQ(sk_netdev_dpdk("net_ring0", EAL, 1, NULL, &d), 0);
	if (!d || !held) {
		sk_free(held);
		return sk_make_ready(0);
	}
	CHECK_EQ(sk_netdev_attach(d, 0), 0);
	/* Hold every received packet, as sockets do with unread payloads:
	 * before the pool (8191 mbufs) is gone, receive starts copying. */
	while (nheld + 32 <= HOLD_MAX && !copied_at) {
		for (unsigned i = 0; i < 32; i++)
			b[i] = frame(100, (uint8_t)i);
		CHECK_EQ(d->tx_burst(d, 0, b, 32), 32);
		unsigned got = rx_wait(d, held + nheld, 32);
		CHECK_EQ(got, 32);
		for (unsigned i = 0; i < got; i++)
			if (!(held[nheld + i]->flags & SK_PKT_F_EMBEDDED) && !copied_at)
				copied_at = nheld + i;
		nheld += got;
	}
	/* (The pool is looked at every 16 bursts: 512 packets here.) */
	CHECK(copied_at >= 8191 / 2 && copied_at < 8191 - 512);
	CHECK(same_bytes(held[nheld - 1], 100, 31));
	/* The app reads: mbufs go back, and receive is zero-copy again. */
	for (unsigned i = 0; i < nheld; i++)
		sk_pkt_free(held[i]);
	bool embedded = false;
	for (unsigned round = 0; round < 40 && !embedded; round++) {
		b[0] = frame(100, 5);
		CHECK_EQ(d->tx_burst(d, 0, b, 1), 1);
		CHECK_EQ(rx_wait(d, b, 1), 1);
		embedded = b[0]->flags & SK_PKT_F_EMBEDDED;
		sk_pkt_free(b[0]);
	}
	CHECK(embedded);
	sk_free(held);
	sk_netdev_close(d);
	return sk_make_ready(0);
}

SK_TEST(receive_copies_while_held_packets_drain_the_pool_then_stops)
{
	CHECK_EQ(sk_test_run(1, low_pool_main, NULL), 0);
}
