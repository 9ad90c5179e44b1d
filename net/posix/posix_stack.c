/*
 * posix_stack.c - the socket API on kernel sockets through one io_uring per
 * shard.
 *
 * Roadmap:
 *   px_init: ring (single issuer, deferred task work when the kernel has
 *            it), provided-buffer ring for receives, eventfd for wake-ups,
 *            a reactor poller and the reactor's sleeper.
 *   px_poll (every reactor round): prepare one send per socket with queued
 *            output (px_flush_dirty), re-arm receives that ran out of
 *            buffers, then one io_uring_enter for all of it, then reap every
 *            completion (px_cqe).
 *   receive: one multishot recv per connection picking buffers from the
 *            shared ring; a buffer goes back when the app consumes it.  A
 *            connection holding too much unconsumed input has its recv
 *            cancelled (backpressure), re-armed when the app catches up.
 *   send:    at most one SENDMSG in flight per connection, gathering its
 *            queued segments; partial sends continue next round.
 *   accept:  one multishot accept per listener; fds queue until sk_accept.
 *   sleep:   io_uring_enter waiting for one completion, with a read on the
 *            eventfd armed so sk_reactor_wake() can interrupt it.
 *
 * Every submission's user_data is a pointer with a 3-bit tag; an object is
 * freed only when all its submissions have completed (ops == 0).
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "posix.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"

#define PX_SQ_ENTRIES 1024
#define PX_CQ_ENTRIES 8192
#define PX_BGID 1
#define PX_IOV 64
/* Accepted fds waiting for sk_accept: past HIGH the multishot accept is
 * cancelled (new connections wait in the kernel's backlog), re-armed below
 * LOW.  Completions already on their way still queue (the array grows). */
#define PX_ACCEPT_HIGH 256
#define PX_ACCEPT_LOW 64


enum { RX_IDLE, RX_ARMED, RX_CANCELLING };

struct px_sock {
	struct sk_sock s;	/* first: sk_sock * <-> px_sock * */
	int fd;
	unsigned ops;		/* submissions not yet completed */
	uint8_t rx;		/* RX_* */
	bool send_busy;
	bool dirty;		/* on the dirty list */
	bool starved;		/* on the starved list */
	bool fd_closed;
	bool close_sent;
	bool addrs_known;
	struct px_sock *dirty_next, *starved_next;
	struct sk_promise *conn;	/* pending sk_connect */
	struct sockaddr_in sa;		/* connect target */
	struct msghdr mh;
	struct iovec iov[PX_IOV];
};

struct sk_listener {
	int fd;
	unsigned ops;
	bool armed;
	bool pausing;		/* cancel of the multishot accept sent */
	bool backoff;		/* accept failed: re-arm on the next sk_accept */
	bool closed;
	struct sk_sockaddr addr;
	struct sk_promise *acc;
	int *q;			/* ring of accepted fds, qcap a power of 2 */
	unsigned qh, qn, qcap;
};

struct px_shard px_shards[SK_MAX_SHARDS];
_Thread_local struct px_shard *px;

static const struct sk_sock_ops px_sock_ops;

static inline uint64_t tag(void *p, unsigned t)
{
	return (uint64_t)(uintptr_t)p | t;
}

/* An SQE, submitting first when the queue is full. */
struct io_uring_sqe *px_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&px->ring);
	while (!sqe) {
		io_uring_submit(&px->ring);
		sqe = io_uring_get_sqe(&px->ring);
	}
	return sqe;
}

/* --- receive buffers ---------------------------------------------------- */

static void buf_recycle(unsigned bid)
{
	io_uring_buf_ring_add(px->br, px->bufs + (size_t)bid * px->bufsz, px->bufsz,
			      (unsigned short)bid, io_uring_buf_ring_mask(px->nbufs), 0);
	io_uring_buf_ring_advance(px->br, 1);
	px->bufs_out--;
}

static void buf_release(struct sk_seg *seg)
{
	buf_recycle(seg->id);
}

/* --- connections -------------------------------------------------------- */

static void px_arm_recv(struct px_sock *ps)
{
	struct io_uring_sqe *sqe = px_sqe();
	io_uring_prep_recv_multishot(sqe, ps->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = PX_BGID;
	io_uring_sqe_set_data64(sqe, tag(ps, T_RECV));
	ps->rx = RX_ARMED;
	ps->s.rx_paused = false;
	ps->ops++;
}

static void px_cancel(void *obj, unsigned t)
{
	struct io_uring_sqe *sqe = px_sqe();
	io_uring_prep_cancel64(sqe, tag(obj, t), 0);
	io_uring_sqe_set_data64(sqe, 0);	/* nobody waits for it */
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void px_pause_recv(struct px_sock *ps)
{
	if (ps->rx == RX_ARMED) {
		px_cancel(ps, T_RECV);
		ps->rx = RX_CANCELLING;
	}
	ps->s.rx_paused = true;
}

static struct px_sock *px_sock_new(int fd)
{
	struct px_sock *ps = sk_alloc(sizeof(*ps));
	if (!ps)
		return NULL;
	sk__sock_init(&ps->s, &px_sock_ops, px->rx_limit);
	ps->fd = fd;
	ps->rx = RX_IDLE;
	ps->send_busy = ps->dirty = ps->starved = false;
	ps->fd_closed = ps->close_sent = ps->addrs_known = false;
	ps->ops = 0;
	ps->conn = NULL;
	px->nsocks++;
	return ps;
}

static void px_maybe_free(struct px_sock *ps)
{
	if (!ps->fd_closed || ps->ops)
		return;
	/* Give its receive buffers back now: on the starved list it waits
	 * for free buffers, which may be the very ones it holds. */
	sk__sock_drain(&ps->s);
	/* Still linked on a shard list: freed when it is taken off. */
	if (ps->dirty || ps->starved)
		return;
	sk__sock_closed(&ps->s);
	px->nsocks--;
	sk_free(ps);
}

static void px_close_fd(struct px_sock *ps)
{
	struct io_uring_sqe *sqe;

	if (ps->close_sent)
		return;
	ps->close_sent = true;
	if (ps->rx == RX_ARMED) {
		px_cancel(ps, T_RECV);
		ps->rx = RX_CANCELLING;
	}
	sqe = px_sqe();
	io_uring_prep_close(sqe, ps->fd);
	io_uring_sqe_set_data64(sqe, tag(ps, T_CLOSE));
	ps->ops++;
}

/* Graceful close may go ahead once output is out (or can never be). */
static void px_close_step(struct px_sock *ps)
{
	if (ps->s.closing && !ps->send_busy && (!ps->s.out.bytes || ps->s.err))
		px_close_fd(ps);
}

static void px_mark_dirty(struct px_sock *ps)
{
	if (ps->dirty || ps->send_busy || ps->s.err)
		return;
	ps->dirty = true;
	ps->dirty_next = px->dirty;
	px->dirty = ps;
}

static void px_send(struct px_sock *ps)
{
	struct io_uring_sqe *sqe;
	unsigned n = 0;

	for (struct sk_seg *seg = ps->s.out.head; seg && n < PX_IOV; seg = seg->next) {
		ps->iov[n].iov_base = seg->p;
		ps->iov[n].iov_len = seg->len;
		n++;
	}
	if (!n)
		return;
	memset(&ps->mh, 0, sizeof(ps->mh));
	ps->mh.msg_iov = ps->iov;
	ps->mh.msg_iovlen = n;
	sqe = px_sqe();
	io_uring_prep_sendmsg(sqe, ps->fd, &ps->mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, tag(ps, T_SEND));
	ps->send_busy = true;
	ps->s.tx_busy = true;
	ps->ops++;
}

static bool px_flush_dirty(void)
{
	struct px_sock *ps = px->dirty;
	if (!ps)
		return false;
	px->dirty = NULL;
	while (ps) {
		struct px_sock *next = ps->dirty_next;
		ps->dirty = false;
		if (ps->fd_closed)
			px_maybe_free(ps);
		else if (!ps->send_busy && !ps->s.err && ps->s.out.bytes)
			px_send(ps);
		ps = next;
	}
	return true;
}

static void px_tx_kick(struct sk_sock *s)
{
	px_mark_dirty((struct px_sock *)s);
}

static void px_rx_resume(struct sk_sock *s)
{
	struct px_sock *ps = (struct px_sock *)s;
	if (!s->rx_paused || !sk__sock_rx_room(s) || s->eof || s->closing)
		return;
	if (ps->rx == RX_IDLE && !ps->starved)
		px_arm_recv(ps);
	/* RX_CANCELLING: re-armed when the cancelled recv reports back. */
}

static void px_sock_close(struct sk_sock *s)
{
	struct px_sock *ps = (struct px_sock *)s;
	if (ps->conn) {
		/* Still connecting: the connect completion finishes it. */
		return;
	}
	px_close_step(ps);
}

static void px_sock_abort(struct sk_sock *s)
{
	struct px_sock *ps = (struct px_sock *)s;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	/* A zero linger makes close() send a reset instead of a FIN. */
	setsockopt(ps->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (ps->send_busy)
		px_cancel(ps, T_SEND);
	if (!ps->conn)
		px_close_fd(ps);
}

static void px_sock_addrs(struct sk_sock *s)
{
	struct px_sock *ps = (struct px_sock *)s;
	struct sockaddr_in sa;
	socklen_t len;

	if (ps->addrs_known)
		return;
	len = sizeof(sa);
	if (getpeername(ps->fd, (struct sockaddr *)&sa, &len) == 0)
		from_sa(&sa, &s->peer);
	len = sizeof(sa);
	if (getsockname(ps->fd, (struct sockaddr *)&sa, &len) == 0)
		from_sa(&sa, &s->local);
	ps->addrs_known = true;
}

static const struct sk_sock_ops px_sock_ops = {
	.rx_resume = px_rx_resume,
	.tx_kick = px_tx_kick,
	.close = px_sock_close,
	.abort = px_sock_abort,
	.addrs = px_sock_addrs,
};

/* --- completions -------------------------------------------------------- */

static void px_recv_done(struct px_sock *ps, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		struct sk_seg *seg;

		px->bufs_out++;
		if (res <= 0 || ps->s.closing || ps->s.eof ||
		    !(seg = sk__seg_get())) {
			buf_recycle(bid);
			if (res > 0 && !ps->s.closing && !ps->s.eof)
				sk__sock_fail(&ps->s, -ENOMEM);
		} else {
			seg->p = px->bufs + (size_t)bid * px->bufsz;
			seg->len = (uint32_t)res;
			seg->id = bid;
			seg->release = buf_release;
			px->bytes_in += (uint64_t)res;
			sk__sock_rx(&ps->s, seg);
		}
	}
	if (!more) {
		ps->rx = RX_IDLE;
		ps->ops--;
	}
	if (res == 0) {
		sk__sock_rx_end(&ps->s, 0);
	} else if (res == -ENOBUFS) {
		/* The shard ran out of receive buffers: wait for some. */
		if (!ps->starved) {
			ps->starved = true;
			ps->starved_next = px->starved;
			px->starved = ps;
		}
		ps->s.rx_paused = true;
	} else if (res < 0 && res != -ECANCELED) {
		sk__sock_rx_end(&ps->s, res);
	}
	if (ps->s.closing || ps->s.eof) {
		px_close_step(ps);
		return;
	}
	if (!sk__sock_rx_room(&ps->s)) {
		px_pause_recv(ps);
	} else if (ps->rx == RX_IDLE && !ps->starved) {
		px_arm_recv(ps);
	}
}

static void px_send_done(struct px_sock *ps, int res)
{
	ps->send_busy = false;
	ps->s.tx_busy = false;
	ps->ops--;
	if (res < 0 || ps->s.err) {
		/* Failed, or failed meanwhile (abort, receive error): drop the
		 * output that was kept while the kernel could still read it. */
		sk__sock_fail(&ps->s, ps->s.err ? ps->s.err : res);
	} else {
		px->bytes_out += (uint64_t)res;
		sk__sock_tx_done(&ps->s, (size_t)res);
		if (ps->s.out.bytes)
			px_mark_dirty(ps);
	}
	px_close_step(ps);
}

static void px_connect_done(struct px_sock *ps, int res)
{
	struct sk_promise *p = ps->conn;

	ps->ops--;
	ps->conn = NULL;
	if (ps->s.closing) {
		/* Closed (or aborted) while connecting. */
		sk_promise_set_error(p, -ECANCELED);
		px_close_fd(ps);
		return;
	}
	if (res < 0) {
		sk_promise_set_error(p, res);
		ps->s.closing = true;
		px_close_fd(ps);
		return;
	}
	px_arm_recv(ps);
	sk_promise_set_value(p, (int64_t)(intptr_t)&ps->s);
}

static void px_arm_accept(struct sk_listener *l)
{
	struct io_uring_sqe *sqe = px_sqe();
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, tag(l, T_ACCEPT));
	l->armed = true;
	l->ops++;
}

static bool aq_push(struct sk_listener *l, int fd)
{
	if (l->qn == l->qcap) {
		unsigned cap = l->qcap ? l->qcap * 2 : 64;
		int *q = sk_alloc(cap * sizeof(*q));
		if (!q)
			return false;
		for (unsigned i = 0; i < l->qn; i++)
			q[i] = l->q[(l->qh + i) & (l->qcap - 1)];
		sk_free(l->q);
		l->q = q;
		l->qh = 0;
		l->qcap = cap;
	}
	l->q[(l->qh + l->qn++) & (l->qcap - 1)] = fd;
	return true;
}

static int aq_pop(struct sk_listener *l)
{
	int fd = l->q[l->qh];
	l->qh = (l->qh + 1) & (l->qcap - 1);
	l->qn--;
	return fd;
}

/* A connection for the next queued fd; re-arms accept once drained. */
static struct px_sock *aq_take(struct sk_listener *l)
{
	struct px_sock *ps = px_sock_new(l->q[l->qh]);
	if (!ps)
		return NULL;
	aq_pop(l);
	px_arm_recv(ps);
	if (!l->armed && !l->closed && l->qn < PX_ACCEPT_LOW)
		px_arm_accept(l);
	return ps;
}

static void px_listener_free(struct sk_listener *l)
{
	px->nlisteners--;
	sk_free(l->q);
	sk_free(l);
}

static void px_accept_done(struct sk_listener *l, struct io_uring_cqe *cqe)
{
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		l->armed = false;
		l->ops--;
	}
	if (res >= 0) {
		if (l->closed || !aq_push(l, res))
			close(res);
		else if (l->armed && l->qn >= PX_ACCEPT_HIGH && !l->pausing) {
			/* Nobody is taking them: leave the rest to the backlog. */
			px_cancel(l, T_ACCEPT);
			l->pausing = true;
		}
	} else if (res != -ECANCELED && !l->closed) {
		/* EMFILE & co: the listener stays, but accepting again at once
		 * would spin; the next sk_accept re-arms (the app backs off). */
		l->backoff = true;
		if (l->acc) {
			struct sk_promise *p = l->acc;
			l->acc = NULL;
			sk_promise_set_error(p, res);
		}
	}
	if (!l->armed)
		l->pausing = false;
	if (l->acc && l->qn) {
		struct sk_promise *p = l->acc;
		struct px_sock *ps = aq_take(l);
		l->acc = NULL;
		if (!ps)
			sk_promise_set_error(p, -ENOMEM);
		else
			sk_promise_set_value(p, (int64_t)(intptr_t)&ps->s);
	}
	if (l->closed) {
		if (!l->ops)
			px_listener_free(l);
		return;
	}
	if (!l->armed && !l->backoff && l->qn < PX_ACCEPT_HIGH)
		px_arm_accept(l);
}

static void px_cqe(struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	void *obj = (void *)(uintptr_t)(ud & ~(uint64_t)7);

	switch (ud & 7) {
	case 0:
		break;	/* cancel requests */
	case T_RECV:
		px_recv_done(obj, cqe);
		break;
	case T_SEND:
		px_send_done(obj, cqe->res);
		break;
	case T_CLOSE: {
		struct px_sock *ps = obj;
		ps->fd_closed = true;
		ps->ops--;
		px_maybe_free(ps);
		return;
	}
	case T_ACCEPT:
		px_accept_done(obj, cqe);
		return;
	case T_WAKE:
		px->wake_armed = false;
		return;
	case T_CONNECT:
		px_connect_done(obj, cqe->res);
		break;
	case PX_T_UDP:
		px_udp_done(obj, cqe);
		return;
	}
	if ((ud & 7) == T_RECV || (ud & 7) == T_SEND || (ud & 7) == T_CONNECT) {
		struct px_sock *ps = obj;
		if (ps->fd_closed)
			px_maybe_free(ps);
	}
}

static unsigned px_reap(void)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&px->ring, head, cqe) {
		px_cqe(cqe);
		n++;
	}
	io_uring_cq_advance(&px->ring, n);
	return n;
}

/* Sockets that lost their recv to -ENOBUFS get it back once buffers are. */
static void px_unstarve(void)
{
	struct px_sock *ps = px->starved;

	if (!ps || px->bufs_out + px->nbufs / 8 > px->nbufs)
		return;
	px->starved = NULL;
	while (ps) {
		struct px_sock *next = ps->starved_next;
		ps->starved = false;
		if (ps->fd_closed)
			px_maybe_free(ps);
		else if (!ps->s.closing && !ps->s.eof && ps->rx == RX_IDLE &&
		    sk__sock_rx_room(&ps->s))
			px_arm_recv(ps);
		ps = next;
	}
}

static bool px_taskrun_pending(void)
{
	return IO_URING_READ_ONCE(*px->ring.sq.kflags) & IORING_SQ_TASKRUN;
}

static bool px_poll(void *arg)
{
	unsigned n;

	(void)arg;
	px_flush_dirty();
	px_unstarve();
	if (io_uring_sq_ready(&px->ring) || (px->deferred && px_taskrun_pending())) {
		if (px->deferred)
			io_uring_submit_and_get_events(&px->ring);
		else
			io_uring_submit(&px->ring);
		px->enters++;
	}
	n = px_reap();
	/* Completions may have queued more output or re-arms. */
	return n > 0 || px->dirty || io_uring_sq_ready(&px->ring);
}

/* Open sockets hold shutdown: their closes are still to come. */
static bool px_busy(void *arg)
{
	(void)arg;
	return px->nsocks || px->nudp || px->nlisteners;
}

static bool px_pure_poll(void *arg)
{
	(void)arg;
	return px->dirty || io_uring_sq_ready(&px->ring) || io_uring_cq_ready(&px->ring) ||
	       (px->deferred && px_taskrun_pending());
}

static void px_arm_wake(void)
{
	struct io_uring_sqe *sqe;
	if (px->wake_armed)
		return;
	sqe = px_sqe();
	io_uring_prep_read(sqe, px->efd, &px->efd_val, sizeof(px->efd_val), 0);
	io_uring_sqe_set_data64(sqe, tag(px, T_WAKE));
	px->wake_armed = true;
}

static void px_sleep(void *arg, uint64_t timeout_ns)
{
	struct io_uring_cqe *cqe;

	(void)arg;
	px_arm_wake();
	if (timeout_ns == UINT64_MAX) {
		io_uring_submit_and_wait(&px->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = (long long)(timeout_ns / 1000000000u),
			.tv_nsec = (long long)(timeout_ns % 1000000000u),
		};
		io_uring_submit_and_wait_timeout(&px->ring, &cqe, 1, &ts, NULL);
	}
}

static void px_wake(void *arg)
{
	struct px_shard *sh = arg;
	uint64_t one = 1;
	ssize_t r = write(sh->efd, &one, sizeof(one));
	(void)r;	/* a full counter still wakes the reader */
}

/* --- stack entry points ------------------------------------------------- */

static int px_init(const struct sk_net_config *cfg)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	unsigned id = sk_shard_id();
	struct px_shard *sh;
	int r;

	if (id >= SK_MAX_SHARDS)
		return -EINVAL;
	sh = &px_shards[id];
	if (px)
		return -EALREADY;
	/* The eventfd outlives sk_net_fini: other shards may still be about
	 * to write to it. */
	int efd = sh->efd_open ? sh->efd : -1;
	memset(sh, 0, sizeof(*sh));
	if (efd < 0) {
		efd = eventfd(0, EFD_CLOEXEC);
		if (efd < 0)
			return -errno;
	}
	sh->efd = efd;
	sh->efd_open = true;
	sh->nbufs = cfg->rx_buffers ? cfg->rx_buffers : 512;
	sh->bufsz = cfg->rx_buffer_size ? cfg->rx_buffer_size : 16384;
	sh->rx_limit = cfg->rx_limit ? cfg->rx_limit : 256 * 1024;
	if (sh->nbufs & (sh->nbufs - 1) || sh->nbufs > 32768)
		return -EINVAL;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	p.cq_entries = PX_CQ_ENTRIES;
	r = io_uring_queue_init_params(PX_SQ_ENTRIES, &sh->ring, &p);
	if (r == -EINVAL) {
		/* Older kernels: completions then arrive without entering. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = PX_CQ_ENTRIES;
		r = io_uring_queue_init_params(PX_SQ_ENTRIES, &sh->ring, &p);
	} else {
		sh->deferred = true;
	}
	if (r < 0)
		return r;

	sh->br = sk_alloc_aligned(4096, sh->nbufs * sizeof(struct io_uring_buf));
	sh->bufs = sk_alloc_aligned(4096, (size_t)sh->nbufs * sh->bufsz);
	if (!sh->br || !sh->bufs) {
		r = -ENOMEM;
		goto fail;
	}
	io_uring_buf_ring_init(sh->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)sh->br;
	reg.ring_entries = sh->nbufs;
	reg.bgid = PX_BGID;
	r = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (r < 0)
		goto fail;
	px = sh;
	for (unsigned i = 0; i < sh->nbufs; i++) {
		sh->bufs_out++;
		buf_recycle(i);
	}
	sh->poller.poll = px_poll;
	sh->poller.pure_poll = px_pure_poll;
	sh->poller.arg = sh;
	sh->poller.busy = px_busy;
	sk_reactor_add_poller(&sh->poller);
	sh->sleeper.sleep = px_sleep;
	sh->sleeper.wake = px_wake;
	sh->sleeper.arg = sh;
	sk_reactor_set_sleeper(&sh->sleeper);
	return 0;
fail:
	io_uring_queue_exit(&sh->ring);
	sk_free(sh->br);
	sk_free(sh->bufs);
	return r;
}

static void px_fini(void)
{
	struct px_shard *sh = px;
	uint64_t deadline;

	if (!sh)
		return;
	/* Let closes and cancels still in flight finish. */
	deadline = sk_now_ns() + 2000000000ull;
	while (px_busy(NULL) && sk_now_ns() < deadline) {
		px_poll(NULL);
		if (px_busy(NULL)) {
			struct io_uring_cqe *cqe;
			struct __kernel_timespec ts = { .tv_nsec = 10000000 };
			io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		}
	}
	if (sh->nsocks)
		sk_log_warn("posix stack: %u sockets still open at shutdown", sh->nsocks);
	sk_reactor_set_sleeper(NULL);
	sk_reactor_remove_poller(&sh->poller);
	io_uring_queue_exit(&sh->ring);	/* cancels whatever is left */
	sk_free(sh->br);
	sk_free(sh->bufs);
	px = NULL;
}

static int px_listen(const struct sk_sockaddr *a, const struct sk_listen_opts *o,
		     struct sk_listener **out)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct sk_listener *l;
	int one = 1, fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (o && o->reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto err;
	/* Accepted sockets inherit it: no setsockopt per connection. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	to_sa(a, &sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, o && o->backlog ? o->backlog : 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		goto err;
	l = sk_alloc(sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	from_sa(&sa, &l->addr);
	px_arm_accept(l);
	px->nlisteners++;
	*out = l;
	return 0;
err:
	r = -errno;
	close(fd);
	return r;
}

static void px_listener_addr(const struct sk_listener *l, struct sk_sockaddr *out)
{
	*out = l->addr;
}

static sk_future px_accept(struct sk_listener *l)
{
	if (l->closed)
		return sk_make_error(-ECANCELED);
	if (l->acc)
		return sk_make_error(-EBUSY);
	if (l->backoff) {
		l->backoff = false;
		if (!l->armed)
			px_arm_accept(l);
	}
	if (l->qn) {
		struct px_sock *ps = aq_take(l);
		if (!ps)
			return sk_make_error(-ENOMEM);
		return sk_make_ready_ptr(&ps->s);
	}
	l->acc = sk_promise_new();
	if (!l->acc)
		return sk_make_error(-ENOMEM);
	return sk_promise_future(l->acc);
}

static void px_listener_close(struct sk_listener *l)
{
	if (l->closed)
		return;
	l->closed = true;
	if (l->acc) {
		struct sk_promise *p = l->acc;
		l->acc = NULL;
		sk_promise_set_error(p, -ECANCELED);
	}
	while (l->qn)
		close(aq_pop(l));
	if (l->armed)
		px_cancel(l, T_ACCEPT);
	/* Closing the fd now is safe: the armed accept holds its own file
	 * reference until the cancel completes. */
	close(l->fd);
	if (!l->ops)
		px_listener_free(l);
}

static sk_future px_connect(const struct sk_sockaddr *a)
{
	struct io_uring_sqe *sqe;
	struct px_sock *ps;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return sk_make_error(-errno);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ps = px_sock_new(fd);
	if (!ps) {
		close(fd);
		return sk_make_error(-ENOMEM);
	}
	ps->conn = sk_promise_new();
	if (!ps->conn) {
		close(fd);
		px->nsocks--;
		sk_free(ps);
		return sk_make_error(-ENOMEM);
	}
	to_sa(a, &ps->sa);
	sqe = px_sqe();
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&ps->sa, sizeof(ps->sa));
	io_uring_sqe_set_data64(sqe, tag(ps, T_CONNECT));
	ps->ops++;
	return sk_promise_future(ps->conn);
}

const struct sk_stack sk__posix_stack = {
	.init = px_init,
	.fini = px_fini,
	.listen = px_listen,
	.listener_addr = px_listener_addr,
	.accept = px_accept,
	.listener_close = px_listener_close,
	.connect = px_connect,
	.udp_bind = px_udp_bind,
	.udp_addr = px_udp_addr,
	.udp_recv = px_udp_recv,
	.udp_release = px_udp_release,
	.udp_send = px_udp_send,
	.udp_close = px_udp_close,
};
