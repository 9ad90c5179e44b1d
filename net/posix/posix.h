/*
 * posix.h - the posix stack's shared insides (posix_stack.c, posix_udp.c).
 */
#ifndef SK_NET_POSIX_H
#define SK_NET_POSIX_H

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../sock.h"
#include "skerry/reactor.h"

struct px_sock;

/* user_data tags (low 3 bits of an 8-aligned pointer; 0 = ignore). */
enum { T_RECV = 1, T_SEND, T_CLOSE, T_ACCEPT, T_WAKE, T_CONNECT, PX_T_UDP };

/* One per shard; lives in a static array so that other shards can still
 * wake it (write its eventfd) while it shuts down. */
struct px_shard {
	struct io_uring ring;
	bool deferred;			/* IORING_SETUP_DEFER_TASKRUN */
	struct io_uring_buf_ring *br;	/* provided receive buffers */
	uint8_t *bufs;
	unsigned nbufs, bufsz, bufs_out;
	size_t rx_limit;
	struct px_sock *dirty;		/* output queued, no send in flight */
	struct px_sock *starved;	/* recv stopped by -ENOBUFS */
	unsigned nsocks, nudp, nlisteners;
	struct sk_poller poller;
	struct sk_sleeper sleeper;
	int efd;			/* sk_reactor_wake() writes it */
	bool efd_open;
	bool wake_armed;
	uint64_t efd_val;
	uint64_t enters, bytes_in, bytes_out;
};

extern struct px_shard px_shards[];
extern _Thread_local struct px_shard *px;

struct io_uring_sqe *px_sqe(void);

static inline void to_sa(const struct sk_sockaddr *a, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(a->port);
	sa->sin_addr.s_addr = htonl(a->ip);
}

static inline void from_sa(const struct sockaddr_in *sa, struct sk_sockaddr *a)
{
	a->ip = ntohl(sa->sin_addr.s_addr);
	a->port = ntohs(sa->sin_port);
}

/* UDP (posix_udp.c). */
void px_udp_done(void *obj, struct io_uring_cqe *cqe);
int px_udp_bind(const struct sk_sockaddr *a, bool reuseport, struct sk_udp **out);
void px_udp_addr(const struct sk_udp *u, struct sk_sockaddr *out);
sk_future px_udp_recv(struct sk_udp *u, struct sk_dgram *d);
void px_udp_release(struct sk_udp *u, struct sk_dgram *d);
int px_udp_send(struct sk_udp *u, const struct sk_sockaddr *to, const void *buf,
		size_t len);
void px_udp_close(struct sk_udp *u);

#endif /* SK_NET_POSIX_H */
