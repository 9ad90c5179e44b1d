/*
 * skerry/server.h - the shape every skerry TCP server shares.
 *
 * sk_server_start(), called on every shard, starts the network stack there,
 * listens on the shared address (SO_REUSEPORT: connections spread over the
 * shards) and hands each accepted connection to the app's serve() on the
 * shard that accepted it.  It enforces the connection limit over all
 * shards, backs off when accepting fails (out of descriptors), and at
 * shutdown closes the listener, ends every connection's input with
 * sk_shutdown_read() so the app finishes what it has read and closes, and
 * stops the stack once the last connection is gone.
 */
#ifndef SKERRY_SERVER_H
#define SKERRY_SERVER_H

#include <stdbool.h>

#include "skerry/future.h"
#include "skerry/socket.h"

struct sk_server_config {
	struct sk_net_config net;	/* the stack to start on each shard */
	struct sk_sockaddr addr;	/* where to listen */
	bool listen;			/* false: no TCP listener (stock -p 0) */
	unsigned max_conns;		/* over all shards; 0 = no limit */
	/* Serve one connection; resolves once the app has closed it. */
	sk_future (*serve)(struct sk_sock *s);
	/* Over max_conns: answer (e.g. an error line) and close @s. */
	void (*reject)(struct sk_sock *s);
	/* optional: at the start of shutdown, before connections are ended
	 * (close UDP sockets, stop timers...). */
	void (*on_stop)(void);
	/* optional: the last connection of the shard is gone; the stack
	 * stops right after. */
	void (*on_finish)(void);
};

/*
 * Start serving on the calling shard.  @cfg must outlive the server (a
 * static).  Returns 0, or the error of sk_net_init()/sk_listen() (the
 * reason is logged).
 */
int sk_server_start(const struct sk_server_config *cfg);

/* Connections open on the calling shard. */
unsigned sk_server_conns_local(void);

#endif /* SKERRY_SERVER_H */
