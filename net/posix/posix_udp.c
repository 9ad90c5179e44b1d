/*
 * posix_udp.c - UDP sockets of the posix stack.
 *
 * A socket receives one datagram at a time into its own 64 KiB buffer with
 * a RECVMSG on the shard's ring; the app holds it until sk_udp_release().
 * Sends go straight to sendto(MSG_DONTWAIT): a datagram is complete or
 * dropped, so there is nothing to queue (UDP may drop; -EAGAIN says so).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "posix.h"
#include "skerry/alloc.h"

#define UDP_MAX 65536

struct sk_udp {
	int fd;
	unsigned ops;
	bool closed;
	bool busy;		/* recvmsg in flight */
	bool held;		/* the app holds the datagram */
	struct sk_sockaddr addr;
	struct sk_promise *rp;
	struct sk_dgram *d;
	struct msghdr mh;
	struct iovec iov;
	struct sockaddr_in from;
	uint8_t buf[UDP_MAX];
};

static void udp_maybe_free(struct sk_udp *u)
{
	if (u->closed && !u->ops) {
		px->nudp--;
		sk_free(u);
	}
}

void px_udp_done(void *obj, struct io_uring_cqe *cqe)
{
	struct sk_udp *u = obj;
	struct sk_promise *p = u->rp;

	u->ops--;
	u->busy = false;
	u->rp = NULL;
	if (u->closed) {
		if (p)
			sk_promise_set_error(p, -ECANCELED);
		udp_maybe_free(u);
		return;
	}
	if (cqe->res < 0) {
		sk_promise_set_error(p, cqe->res);
		return;
	}
	u->held = true;
	u->d->data = u->buf;
	u->d->len = (size_t)cqe->res;
	from_sa(&u->from, &u->d->from);
	u->d->priv = u;
	sk_promise_set_value(p, cqe->res);
}

int px_udp_bind(const struct sk_sockaddr *a, bool reuseport, struct sk_udp **out)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct sk_udp *u;
	int one = 1, r;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto err;
	to_sa(a, &sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		goto err;
	u = sk_alloc(sizeof(*u));
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	memset(u, 0, offsetof(struct sk_udp, buf));
	u->fd = fd;
	from_sa(&sa, &u->addr);
	px->nudp++;
	*out = u;
	return 0;
err:
	r = -errno;
	close(fd);
	return r;
}

void px_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out)
{
	*out = u->addr;
}

sk_future px_udp_recv(struct sk_udp *u, struct sk_dgram *d)
{
	struct io_uring_sqe *sqe;

	if (u->closed)
		return sk_make_error(-ECANCELED);
	if (u->busy || u->held)
		return sk_make_error(-EBUSY);
	u->rp = sk_promise_new();
	if (!u->rp)
		return sk_make_error(-ENOMEM);
	u->d = d;
	u->iov.iov_base = u->buf;
	u->iov.iov_len = sizeof(u->buf);
	memset(&u->mh, 0, sizeof(u->mh));
	u->mh.msg_name = &u->from;
	u->mh.msg_namelen = sizeof(u->from);
	u->mh.msg_iov = &u->iov;
	u->mh.msg_iovlen = 1;
	sqe = px_sqe();
	io_uring_prep_recvmsg(sqe, u->fd, &u->mh, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)u | PX_T_UDP);
	u->busy = true;
	u->ops++;
	return sk_promise_future(u->rp);
}

void px_udp_release(struct sk_udp *u, struct sk_dgram *d)
{
	(void)d;
	u->held = false;
}

int px_udp_send(struct sk_udp *u, const struct sk_sockaddr *to, const void *buf,
		size_t len)
{
	struct sockaddr_in sa;

	if (u->closed)
		return -EBADF;
	to_sa(to, &sa);
	if (sendto(u->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

void px_udp_close(struct sk_udp *u)
{
	if (u->closed)
		return;
	u->closed = true;
	if (u->busy) {
		struct io_uring_sqe *sqe = px_sqe();
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)u | PX_T_UDP, 0);
		io_uring_sqe_set_data64(sqe, 0);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
	close(u->fd);
	udp_maybe_free(u);
}
