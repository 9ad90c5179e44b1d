/*
 * tap.c - Linux /dev/net/tun in tap mode, one file descriptor per queue.
 *
 * Roadmap: sk_netdev_tap() opens /dev/net/tun once per queue and attaches
 * each descriptor to the same interface with IFF_TAP | IFF_NO_PI |
 * IFF_MULTI_QUEUE (the first one creates it when missing; it goes away
 * with the last descriptor), non-blocking.  tap_rx() reads one frame per
 * read() into a pool buffer until EAGAIN; tap_tx() writes one frame per
 * write() (writev for chains) until the kernel pushes back.  The shard
 * sleeps on the queue's descriptor (wait_fd).
 *
 * The kernel side of the interface (address, link up) belongs to whoever
 * made the device; this driver only moves frames.  It is Linux-only and
 * the one place in net/ besides posix/ that includes OS headers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "skerry/alloc.h"
#include "skerry/netdev.h"

#define TAP_IOV_MAX	64	/* segments per frame written with writev */
#define TAP_SPILL	65536	/* catches frames too long for a pool buffer */

struct tap_dev {
	struct sk_netdev dev;
	int fd[SK_NETDEV_MAX_QUEUES];
	/* One per queue: a frame that overflows the pool buffer lands here
	 * and is dropped, instead of being cut short silently. */
	uint8_t *spill[SK_NETDEV_MAX_QUEUES];
};

static inline struct tap_dev *tap_of(struct sk_netdev *d)
{
	return d->priv;
}

static unsigned tap_rx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
		       unsigned n)
{
	struct tap_dev *t = tap_of(d);
	struct sk_netdev_stats *st = &d->stats[q];
	unsigned got = 0;

	while (got < n) {
		struct sk_pkt *p = sk_pkt_alloc();
		if (!p)
			break;
		uint32_t room = sk_pkt_tailroom(p);
		struct iovec iov[2] = {
			{ .iov_base = p->data, .iov_len = room },
			{ .iov_base = t->spill[q], .iov_len = TAP_SPILL },
		};
		ssize_t r = readv(t->fd[q], iov, 2);
		if (r <= 0) {
			sk_pkt_free(p);
			if (r < 0 && errno == EINTR)
				continue;
			/* EAGAIN: empty; anything else: nothing to read
			 * either (a closed interface), so stop. */
			break;
		}
		if ((size_t)r > room) {
			sk_pkt_free(p);
			st->rx_dropped++;
			continue;
		}
		p->len = p->pkt_len = (uint32_t)r;
		st->rx_packets++;
		st->rx_bytes += (uint64_t)r;
		pkts[got++] = p;
	}
	return got;
}

static unsigned tap_tx(struct sk_netdev *d, unsigned q, struct sk_pkt **pkts,
		       unsigned n)
{
	struct tap_dev *t = tap_of(d);
	struct sk_netdev_stats *st = &d->stats[q];
	unsigned i;

	for (i = 0; i < n; i++) {
		struct sk_pkt *p = pkts[i];
		ssize_t r;

		if (!p->next) {
			r = write(t->fd[q], p->data, p->len);
		} else {
			struct iovec iov[TAP_IOV_MAX];
			struct sk_pkt *s = p;
			int k = 0;
			for (; s && k < TAP_IOV_MAX; s = s->next)
				iov[k++] = (struct iovec){ s->data, s->len };
			if (s) {	/* more segments than iovecs */
				errno = EMSGSIZE;
				r = -1;
			} else {
				r = writev(t->fd[q], iov, k);
			}
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;	/* the caller keeps the rest */
		if (r < 0) {
			st->tx_dropped++;	/* bad frame, link gone: drop */
		} else {
			st->tx_packets++;
			st->tx_bytes += p->pkt_len;
		}
		sk_pkt_free(p);
	}
	return i;
}

static int tap_wait_fd(struct sk_netdev *d, unsigned q)
{
	return q < d->nqueues ? tap_of(d)->fd[q] : -1;
}

static void tap_close(struct sk_netdev *d)
{
	struct tap_dev *t = tap_of(d);
	for (unsigned q = 0; q < SK_NETDEV_MAX_QUEUES; q++) {
		if (t->fd[q] >= 0)
			close(t->fd[q]);
		sk_free(t->spill[q]);
	}
	sk_free(t);
}

static const struct sk_netdev_ops tap_ops = {
	.wait_fd = tap_wait_fd,
	.close = tap_close,
};

/* Interface names the kernel takes: 1..15 bytes, no '/', ':' or spaces. */
static bool tap_name_ok(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == ':' || *c <= ' ' || *c == 0x7f)
			return false;
	return true;
}

static int tap_open_queue(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == EACCES ? -EPERM : -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		/* Without CAP_NET_ADMIN the kernel says EPERM; EINVAL means
		 * the name is taken by a tap without multi-queue. */
		return -e;
	}
	return fd;
}

/* The kernel side's MTU, or 1500 when it cannot be read. */
static uint16_t tap_mtu(const char *name)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint16_t mtu = 1500;

	if (s < 0)
		return mtu;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(s, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu >= 68 && ifr.ifr_mtu <= 65535)
		mtu = (uint16_t)ifr.ifr_mtu;
	close(s);
	return mtu;
}

int sk_netdev_tap(const char *ifname, unsigned nqueues, const uint8_t *mac,
		  struct sk_netdev **out)
{
	struct tap_dev *t;
	int rc = 0;

	if (!tap_name_ok(ifname) || nqueues == 0 || nqueues > SK_NETDEV_MAX_QUEUES)
		return -EINVAL;
	t = sk_zalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->dev.priv = t;
	for (unsigned q = 0; q < SK_NETDEV_MAX_QUEUES; q++)
		t->fd[q] = -1;
	for (unsigned q = 0; q < nqueues; q++) {
		t->spill[q] = sk_alloc(TAP_SPILL);
		if (!t->spill[q]) {
			rc = -ENOMEM;
			break;
		}
		int fd = tap_open_queue(ifname);
		if (fd < 0) {
			rc = fd;
			break;
		}
		t->fd[q] = fd;
	}
	if (rc) {
		tap_close(&t->dev);
		return rc;
	}
	t->dev.rx_burst = tap_rx;
	t->dev.tx_burst = tap_tx;
	t->dev.ops = &tap_ops;
	snprintf(t->dev.name, sizeof(t->dev.name), "%s", ifname);
	t->dev.nqueues = nqueues;
	if (mac) {
		memcpy(t->dev.mac, mac, 6);
	} else {
		if (getrandom(t->dev.mac, 6, 0) != 6)
			memcpy(t->dev.mac, (uint8_t[6]){ 0, 0, 0, 0, 0, 0x01 }, 6);
		/* Unicast, locally administered: 02:xx:xx:xx:xx:xx. */
		t->dev.mac[0] = 0x02;
	}
	t->dev.mtu = tap_mtu(ifname);
	t->dev.offloads = 0;
	t->dev.link_up = true;
	*out = &t->dev;
	return 0;
}

bool sk_netdev_tap_exists(const char *ifname)
{
	return if_nametoindex(ifname) != 0;
}
