/*
 * skerry/socket.h - the stack-neutral socket API.
 *
 * Apps use only this header; they never know which stack is under it.  The
 * posix stack (io_uring over kernel sockets, the default) and the native
 * user-space stack implement the same calls.  Everything is per shard: a
 * socket belongs to the shard that created it and is used only there.
 *
 * Reading is zero-copy: received bytes stay in the stack's buffers (io_uring
 * provided buffers, or packet payloads) until the app consumes them.
 *
 *     sk_read(s)            -> future: bytes buffered (>0), 0 at EOF, -errno
 *     sk_read_peek(s, &len) -> first contiguous run of buffered bytes
 *     sk_read_consume(s, n) -> drop n bytes, returning buffers to the stack
 *
 * Writing queues bytes (copied, or referenced with a release callback so a
 * value can be sent from where it lives).  Queued output is transmitted at
 * the end of the current reactor round, all sockets of the shard in one
 * batch; the app never has to flush to make progress.  Output is bounded by
 * the app: it checks sk_write_queued() and waits on sk_flush() when a peer
 * reads slowly, so no connection buffers without limit.
 *
 * Errors are negative errno values.  After an error a socket only accepts
 * sk_close()/sk_abort().
 */
#ifndef SKERRY_SOCKET_H
#define SKERRY_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skerry/future.h"

/* An IPv4 endpoint, host byte order. */
struct sk_sockaddr {
	uint32_t ip;
	uint16_t port;
};

enum sk_stack_kind {
	SK_STACK_POSIX,		/* kernel sockets through io_uring */
	SK_STACK_NATIVE,	/* skerry's own TCP/IP stack over a netdev */
};

struct sk_net_config {
	enum sk_stack_kind stack;
	const char *stack_name;	/* "posix" or "native" (--stack): parsed into
				 * @stack by sk_net_config_check(); NULL:
				 * keep @stack */
	unsigned rx_buffers;	/* per shard; 0 = default (512) */
	unsigned rx_buffer_size;	/* bytes; 0 = default (16384) */
	size_t rx_limit;	/* buffered input per socket before the stack
				 * stops reading it; 0 = default (256 KiB) */
	/* Native stack only (NULL: unset). */
	const char *netdev;	/* "tap:NAME", "loop[:Q]" or "dpdk:VDEV" (required) */
	const char *ip;		/* "ADDR/PREFIX" (required) */
	const char *gw;		/* default gateway "ADDR" */
	const char *mac;	/* "02:00:00:00:00:01"; default: random
				 * locally administered */
	const char *fault;	/* fault injection, see sk_fault_parse() */
	const char *eal;	/* extra DPDK EAL arguments (dpdk: only) */
	unsigned long long netdev_queues;	/* device queues (tap, dpdk); 0:
						 * one per shard; fewer: the
						 * others go through software
						 * forwarding */
};

/*
 * The network options of a server, for a program's option table (struct
 * sk_option, skerry/options.h): --stack, and the native stack's --netdev,
 * --ip, --gw, --mac, --netdev-fault, into the fields of @cfg (a struct
 * sk_net_config *); sk_net_config_check() then validates them.
 */
#define SK_NET_OPTIONS(cfg)                                                    \
	{ "stack", 0, SK_OPT_STRING, &(cfg)->stack_name, "NAME",               \
	  "network stack: posix (kernel sockets via io_uring) or native "      \
	  "(skerry's TCP/IP over --netdev)" },                                 \
	{ "netdev", 0, SK_OPT_STRING, &(cfg)->netdev, "DEV",                   \
	  "native stack device: tap:NAME (Linux tap, one queue per shard), "    \
	  "dpdk:VDEV (DPDK virtual device, e.g. dpdk:net_memif0,role=server) or loop" }, \
	{ "ip", 0, SK_OPT_STRING, &(cfg)->ip, "ADDR/PREFIX",                   \
	  "native stack: our IPv4 address and subnet, e.g. 10.0.0.2/24" },     \
	{ "gw", 0, SK_OPT_STRING, &(cfg)->gw, "ADDR",                          \
	  "native stack: default gateway" },                                   \
	{ "mac", 0, SK_OPT_STRING, &(cfg)->mac, "MAC",                         \
	  "native stack: our MAC address (default: random, locally administered)" }, \
	{ "netdev-fault", 0, SK_OPT_STRING, &(cfg)->fault, "SPEC",             \
	  "native stack: inject faults, e.g. drop=0.05,reorder=0.02,dup=0.01,corrupt=0.001,seed=1" }, \
	{ "eal", 0, SK_OPT_STRING, &(cfg)->eal, "ARGS",                        \
	  "dpdk: extra EAL arguments, e.g. '--no-huge -m 512' (--no-pci is always on)" }, \
	{ "netdev-queues", 0, SK_OPT_UINT, &(cfg)->netdev_queues, "N",          \
	  "native stack: device queues to use (default: one per shard; fewer: " \
	  "shards without one send and receive through the others)" }

/*
 * Check @cfg before starting shards: parse @stack_name into @stack, and
 * for the native stack check that a device is named and known and that
 * the address, gateway, MAC and fault spec parse (native-only options
 * without --stack=native are refused).  0, or -EINVAL with a one-line
 * reason in @err.
 */
int sk_net_config_check(struct sk_net_config *cfg, char *err, size_t errlen);

/*
 * Where a server listens unless told: "127.0.0.1" on the posix stack;
 * "0.0.0.0" on the native stack, which has no loopback and so serves on
 * its own --ip address.
 */
const char *sk_net_default_host(const struct sk_net_config *cfg);

struct sk_sock;		/* a TCP connection */
struct sk_listener;	/* a listening TCP socket of this shard */
struct sk_udp;		/* a UDP socket of this shard */

/*
 * "posix" or "native" -> kind; -EINVAL for anything else.
 */
int sk_net_stack_parse(const char *name, enum sk_stack_kind *out);

/*
 * Start the network stack on the calling shard (call on every shard, e.g.
 * through sk_invoke_on_all, before using sockets there).
 * Returns 0, -ENOTSUP (stack not built in), -ENOMEM, or the kernel's error.
 */
int sk_net_init(const struct sk_net_config *cfg);

/*
 * Stop the calling shard's stack: every socket must already be closed.
 * Waits for the kernel to return buffers still in flight.
 */
void sk_net_fini(void);

/* "a.b.c.d", "localhost" or "" (= 0.0.0.0) -> @out; 0 or -EINVAL. */
int sk_addr_parse(const char *host, uint16_t port, struct sk_sockaddr *out);
/* "a.b.c.d:port" into buf (at least 22 bytes). */
void sk_addr_format(const struct sk_sockaddr *a, char *buf, size_t len);

/* --- TCP listening ------------------------------------------------------ */

struct sk_listen_opts {
	int backlog;		/* 0 = 1024 */
	bool reuseport;		/* one listener per shard on the same port */
};

/*
 * Listen on @addr from the calling shard.  With reuseport every shard may
 * listen on the same address and the kernel (or the NIC's hash) spreads
 * connections over them.  Port 0 binds a free port: see sk_listener_addr().
 * Returns 0 and *out, -EADDRINUSE, -EACCES, -ENOMEM, other -errno.
 */
int sk_listen(const struct sk_sockaddr *addr, const struct sk_listen_opts *o,
	      struct sk_listener **out);

/* The bound address (tells the port chosen for port 0). */
void sk_listener_addr(const struct sk_listener *l, struct sk_sockaddr *out);

/*
 * Next connection: resolves with a struct sk_sock * (sk_future_ptr_value),
 * or fails with -ECANCELED once the listener is closed, -EMFILE/-ENFILE when
 * out of descriptors (the listener keeps working), -ENOMEM.
 * One accept may be pending per listener at a time (-EBUSY otherwise).
 */
sk_future sk_accept(struct sk_listener *l);

/* Stop listening; a pending accept fails with -ECANCELED. */
void sk_listener_close(struct sk_listener *l);

/* --- TCP connections ---------------------------------------------------- */

/*
 * Connect to @addr.  Resolves with a struct sk_sock *, or fails with
 * -ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH, -ENOMEM, other -errno.
 */
sk_future sk_connect(const struct sk_sockaddr *addr);

/* The peer's and our own address. */
void sk_sock_peer(const struct sk_sock *s, struct sk_sockaddr *out);
void sk_sock_local(const struct sk_sock *s, struct sk_sockaddr *out);

/*
 * Wait for input.  Resolves with the number of buffered bytes (>0) as soon
 * as some arrived that no earlier sk_read reported - at once if there are
 * such bytes - so a parser holding half a command calls it again to wait
 * for the rest.  Resolves with 0 at end of stream (the peer closed; any
 * bytes still buffered were reported before), fails with -ECONNRESET,
 * -ETIMEDOUT, ..., or -ECANCELED when the socket is closed meanwhile.  One
 * read may be pending per socket (-EBUSY otherwise).
 */
sk_future sk_read(struct sk_sock *s);

/* Bytes buffered and not yet consumed.  A socket holding rx_limit bytes
 * (sk_net_config) unconsumed gets no more until the app consumes some. */
size_t sk_read_avail(const struct sk_sock *s);

/* First contiguous run of buffered bytes and its length; NULL/0 if none.
 * Valid until the next sk_read_consume, sk_read_pullup or sk_read (which
 * may compact a small fragment out of the stack's buffers). */
const uint8_t *sk_read_peek(struct sk_sock *s, size_t *len);

/*
 * Make the first @n buffered bytes contiguous (copying if they span
 * buffers), so that sk_read_peek() returns at least min(n, avail).
 * Returns 0 or -ENOMEM.
 */
int sk_read_pullup(struct sk_sock *s, size_t n);

/* Drop @n bytes (n <= sk_read_avail) from the front of the input. */
void sk_read_consume(struct sk_sock *s, size_t n);

/*
 * Stop reading: input is dropped and the stream ends here - a pending
 * sk_read resolves with 0 at once, as do later ones.  Output still goes
 * out.  Servers use it to wind connections down at shutdown.
 */
void sk_shutdown_read(struct sk_sock *s);

/*
 * Queue @len bytes for sending, copied.  Returns 0, -ENOMEM, or the
 * socket's error (-EPIPE, -ECONNRESET) once it has failed.
 */
int sk_write(struct sk_sock *s, const void *buf, size_t len);

/*
 * Queue @len bytes at @buf without copying: the memory must stay unchanged
 * until release(arg) is called (on this shard), which happens once the
 * stack is done with it - after sending, or on error/close.  release is
 * called even when this returns an error.  0, -ENOMEM, or the socket error.
 */
int sk_write_ref(struct sk_sock *s, const void *buf, size_t len,
		 void (*release)(void *arg), void *arg);

/* Bytes queued and not yet handed to the network. */
size_t sk_write_queued(const struct sk_sock *s);

/*
 * Resolves (0) when every byte queued so far has been handed to the network
 * (posix: the kernel socket buffer; native: acknowledged by the peer - its
 * output queue is its send buffer), or fails with the
 * socket's error.  Apps wait on it when sk_write_queued() passes their
 * output bound: this is how a slow reader slows its own connection down.
 */
sk_future sk_flush(struct sk_sock *s);

/*
 * Send what is queued, then close.  Resolves when the socket is gone (the
 * pointer is invalid afterwards).  A pending read fails with -ECANCELED; a
 * pending flush resolves once the output is out (or fails with the error
 * that stopped it).
 */
sk_future sk_close(struct sk_sock *s);

/*
 * Close at once, dropping queued output (TCP reset where the stack can).
 * A pending read fails with -ECANCELED, a pending flush with -ECONNABORTED;
 * sk_write_ref releases run once the stack no longer reads the memory.
 */
void sk_abort(struct sk_sock *s);

/* --- UDP ---------------------------------------------------------------- */

/* A received datagram, valid until sk_udp_release(). */
struct sk_dgram {
	const uint8_t *data;
	size_t len;
	struct sk_sockaddr from;
	void *priv;		/* the stack's */
};

/* Bind a UDP socket on the calling shard (reuseport: one per shard). */
int sk_udp_bind(const struct sk_sockaddr *addr, bool reuseport,
		struct sk_udp **out);

/* The bound address. */
void sk_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out);

/*
 * Next datagram into *d: resolves with its length (>=0), fails with
 * -ECANCELED once closed.  One receive may be pending at a time.
 */
sk_future sk_udp_recv(struct sk_udp *u, struct sk_dgram *d);

/* Give a received datagram's buffer back. */
void sk_udp_release(struct sk_udp *u, struct sk_dgram *d);

/*
 * Send one datagram (copied).  0, -EMSGSIZE, -ENOMEM, or -EAGAIN when the
 * shard's send queue is full (the datagram is dropped, as UDP may).
 */
int sk_udp_send(struct sk_udp *u, const struct sk_sockaddr *to,
		const void *buf, size_t len);

/* Close; a pending receive fails with -ECANCELED. */
void sk_udp_close(struct sk_udp *u);

#endif /* SKERRY_SOCKET_H */
