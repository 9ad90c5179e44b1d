/*
 * conn.h - serving memcached clients: TCP connections and the UDP socket.
 *
 * main.c accepts connections on every shard and hands each one to
 * mc_conn_run() on the shard that accepted it; it binds the UDP socket (one
 * per shard with reuseport) and runs mc_udp_serve() on it.  Everything else
 * (protocol detection, parsing, the store, answers, backpressure, closing)
 * happens behind these calls.
 */
#ifndef SK_MC_CONN_H
#define SK_MC_CONN_H

#include "skerry/future.h"

struct sk_sock;
struct sk_udp;

/*
 * Serve one accepted TCP connection until it is gone: the client closed it,
 * sent "quit", broke the protocol, failed, or its input was ended with
 * sk_shutdown_read() (how main.c winds connections down at shutdown: what
 * was already parsed is answered, then the socket closes).  Closes @s
 * itself.  The future resolves with 0 once the socket is closed; it fails
 * only with -ENOMEM when the connection could not even be set up (then @s
 * has been closed too).  Counts curr/total_connections, bytes_read/written
 * and cmd_*.
 */
sk_future mc_conn_run(struct sk_sock *s);

/*
 * Refuse a connection over the -c limit, as stock: write
 * "ERROR Too many open connections\r\n" and close @s.  Counts
 * rejected_connections.  Returns at once; the socket closes in the
 * background.
 */
void mc_conn_reject(struct sk_sock *s);

/*
 * Serve memcached's UDP protocol on @u (8-byte frame header, text
 * commands, answers cut into datagrams of at most 1400 bytes) until the
 * socket is closed (sk_udp_close(), e.g. from an at-stop hook): then the
 * future resolves with 0.  Does not close @u.
 */
sk_future mc_udp_serve(struct sk_udp *u);

#endif /* SK_MC_CONN_H */
