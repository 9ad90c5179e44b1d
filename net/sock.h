/*
 * sock.h - what every stack shares behind skerry/socket.h.
 *
 * A connection's input and output are queues of segments.  The generic half
 * (socket.c) implements peek/consume/pullup/write/write_ref/flush on them;
 * a stack only fills the input queue from its receive path, drains the
 * output queue into its transmit path and gets told, through its ops, when
 * the app has made room (rx_resume) or queued output (tx_kick).  So the
 * posix stack and the native stack differ only in where segments come from
 * and go to.
 */
#ifndef SK_NET_SOCK_H
#define SK_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skerry/future.h"
#include "skerry/socket.h"

struct sk_seg;

/* Receive segments a socket may hold before its stack stops reading it. */
#define SK_SOCK_RX_SEGS 32

/*
 * A run of bytes.  Input segments are stack buffers (freed through
 * release); output segments are either copy chunks owned by the socket
 * layer or app memory with the app's release callback.
 */
struct sk_seg {
	struct sk_seg *next;
	uint8_t *p;		/* first unconsumed byte */
	uint32_t len;		/* bytes from p */
	uint32_t room;		/* copy chunk: free bytes after p + len */
	void (*release)(struct sk_seg *seg);	/* NULL: nothing to free */
	void *arg;		/* release's: buffer, app arg */
	void (*app_release)(void *arg);		/* sk_write_ref's callback */
	uint32_t id;		/* stack's: receive buffer id */
};

struct sk_seg_queue {
	struct sk_seg *head, **tail;
	size_t bytes;
};

struct sk_sock_ops {
	/* The app consumed input: the stack may read again if it stopped. */
	void (*rx_resume)(struct sk_sock *s);
	/* Output was queued: transmit it (batched at the end of the round). */
	void (*tx_kick)(struct sk_sock *s);
	/* sk_close: output already handed over; tear down and free later. */
	void (*close)(struct sk_sock *s);
	/* sk_abort: drop everything now. */
	void (*abort)(struct sk_sock *s);
	/* Fill s->peer and s->local (once). */
	void (*addrs)(struct sk_sock *s);
};

struct sk_sock {
	const struct sk_sock_ops *ops;
	struct sk_seg_queue in, out;
	struct sk_promise *rd;		/* pending sk_read */
	struct sk_promise *fl;		/* pending sk_flush */
	struct sk_promise *cl;		/* pending sk_close */
	size_t seen;			/* input bytes sk_read has reported */
	unsigned in_segs;		/* segments in the input queue */
	int err;			/* first error; sticky */
	bool rx_paused;			/* stack stopped reading: call rx_resume */
	bool eof;			/* peer finished sending */
	bool closing;			/* sk_close called */
	bool tx_busy;			/* stack: the kernel/NIC may still read
					 * the output segments; keep them */
	size_t rx_limit;		/* stop reading past this much input */
	struct sk_sockaddr peer, local;
};

/* For stacks. */
void sk__sock_init(struct sk_sock *s, const struct sk_sock_ops *ops, size_t rx_limit);
/* Append a received segment; wakes a pending reader. */
void sk__sock_rx(struct sk_sock *s, struct sk_seg *seg);
/* End of stream or a receive error: wakes a pending reader. */
void sk__sock_rx_end(struct sk_sock *s, int err);
/* @n bytes from the front of the output were transmitted. */
void sk__sock_tx_done(struct sk_sock *s, size_t n);
/* The socket failed: drop output, fail pending read/flush with @err. */
void sk__sock_fail(struct sk_sock *s, int err);
/* Release every segment still queued (socket teardown). */
void sk__sock_drain(struct sk_sock *s);
/* The socket is gone: resolve a pending sk_close. */
void sk__sock_closed(struct sk_sock *s);
/* True once the app has consumed enough that reading may go on. */
static inline bool sk__sock_rx_room(const struct sk_sock *s)
{
	return s->in.bytes < s->rx_limit && s->in_segs < SK_SOCK_RX_SEGS;
}

/* Segment nodes come from a per-shard free list (no allocation once warm). */
struct sk_seg *sk__seg_get(void);
void sk__seg_put(struct sk_seg *seg);

/* Stack entry points, chosen by sk_net_init. */
struct sk_stack {
	int (*init)(const struct sk_net_config *cfg);
	void (*fini)(void);
	int (*listen)(const struct sk_sockaddr *a, const struct sk_listen_opts *o,
		      struct sk_listener **out);
	void (*listener_addr)(const struct sk_listener *l, struct sk_sockaddr *out);
	sk_future (*accept)(struct sk_listener *l);
	void (*listener_close)(struct sk_listener *l);
	sk_future (*connect)(const struct sk_sockaddr *a);
	int (*udp_bind)(const struct sk_sockaddr *a, bool reuseport, struct sk_udp **out);
	void (*udp_addr)(const struct sk_udp *u, struct sk_sockaddr *out);
	sk_future (*udp_recv)(struct sk_udp *u, struct sk_dgram *d);
	void (*udp_release)(struct sk_udp *u, struct sk_dgram *d);
	int (*udp_send)(struct sk_udp *u, const struct sk_sockaddr *to,
			const void *buf, size_t len);
	void (*udp_close)(struct sk_udp *u);
};

extern const struct sk_stack sk__posix_stack;
extern const struct sk_stack sk__native_stack;
/* The native stack's part of sk_net_config_check(). */
int sk__native_check(const struct sk_net_config *cfg, char *err, size_t errlen);

#endif /* SK_NET_SOCK_H */
