/*
 * server.c - listener, accept loop, connection limit and shutdown for
 * every skerry TCP server (skerry/server.h).
 *
 * Roadmap: sk_server_start() -> stack + listener + accept loop (sk_repeat).
 * Each accepted socket is counted against max_conns (one atomic over all
 * shards, touched per accept and close, never per request), linked into
 * the shard's live list and given to cfg->serve.  At stop (a reactor
 * at-stop hook): close the listener, call the app's on_stop, end every
 * live connection's input; when the accept loop has ended and the last
 * connection closed, call on_finish and stop the stack.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/server.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

static atomic_uint open_conns;

/* A live connection, so that shutdown can end it. */
struct live {
	struct live *next, **pprev;
	struct sk_sock *s;
};

struct srv_shard {
	const struct sk_server_config *cfg;
	struct sk_listener *l;
	struct live *conns;
	unsigned nconns;
	bool accepting;
	bool stopping;
	bool finished;
	struct sk_stop_hook hook;
};
static struct srv_shard shards[SK_MAX_SHARDS];

static struct srv_shard *me(void)
{
	return &shards[sk_shard_id()];
}

unsigned sk_server_conns_local(void)
{
	return me()->nconns;
}

static void finish(struct srv_shard *st)
{
	if (!st->stopping || st->finished || st->nconns || st->accepting)
		return;
	st->finished = true;
	if (st->cfg->on_finish)
		st->cfg->on_finish();
	sk_net_fini();
}

static sk_future conn_done(void *arg, int64_t v, int err)
{
	struct live *lv = arg;
	struct srv_shard *st = me();

	(void)v;
	(void)err;
	*lv->pprev = lv->next;
	if (lv->next)
		lv->next->pprev = lv->pprev;
	sk_free(lv);
	st->nconns--;
	atomic_fetch_sub_explicit(&open_conns, 1, memory_order_relaxed);
	finish(st);
	return sk_make_ready(0);
}

static void serve(struct srv_shard *st, struct sk_sock *s)
{
	unsigned n = atomic_fetch_add_explicit(&open_conns, 1, memory_order_relaxed);
	struct live *lv;

	if ((st->cfg->max_conns && n >= st->cfg->max_conns) ||
	    !(lv = sk_alloc(sizeof(*lv)))) {
		atomic_fetch_sub_explicit(&open_conns, 1, memory_order_relaxed);
		st->cfg->reject(s);
		return;
	}
	lv->s = s;
	lv->next = st->conns;
	lv->pprev = &st->conns;
	if (st->conns)
		st->conns->pprev = &lv->next;
	st->conns = lv;
	st->nconns++;
	sk_future_ignore(sk_future_then_wrapped(st->cfg->serve(s), conn_done, lv));
}

static sk_future after_pause(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	(void)err;
	return sk_make_ready(0);
}

static sk_future accepted(void *arg, int64_t v, int err)
{
	struct srv_shard *st = arg;

	if (err == -ECANCELED || st->stopping) {
		if (!err)	/* accepted just as we stopped */
			sk_future_ignore(sk_close(sk_future_ptr_value(v)));
		st->accepting = false;
		finish(st);
		return sk_make_ready(SK_STOP);
	}
	if (err) {
		/* Out of descriptors and the like: the listener stays; pause
		 * a little so a full fd table does not spin the shard. */
		sk_log_warn("accept failed: %s", strerror(-err));
		return sk_future_then_wrapped(sk_sleep(10 * SK_NSEC_PER_MSEC), after_pause, NULL);
	}
	serve(st, sk_future_ptr_value(v));
	return sk_make_ready(0);
}

static sk_future accept_next(void *arg)
{
	struct srv_shard *st = arg;
	return sk_future_then_wrapped(sk_accept(st->l), accepted, st);
}

static void on_stop(void *arg)
{
	struct srv_shard *st = arg;

	st->stopping = true;
	if (st->l)
		sk_listener_close(st->l);
	if (st->cfg->on_stop)
		st->cfg->on_stop();
	for (struct live *lv = st->conns; lv; lv = lv->next)
		sk_shutdown_read(lv->s);
	finish(st);
}

int sk_server_start(const struct sk_server_config *cfg)
{
	struct srv_shard *st = me();
	struct sk_listen_opts lo = { .backlog = 1024, .reuseport = true };
	char where[32];
	int r;

	memset(st, 0, sizeof(*st));
	st->cfg = cfg;
	r = sk_net_init(&cfg->net);
	if (r) {
		sk_log_error("cannot start the network stack: %s", strerror(-r));
		return r;
	}
	st->hook.fn = on_stop;
	st->hook.arg = st;
	sk_reactor_at_stop(&st->hook);
	if (!cfg->listen)
		return 0;
	sk_addr_format(&cfg->addr, where, sizeof(where));
	r = sk_listen(&cfg->addr, &lo, &st->l);
	if (r) {
		sk_log_error("cannot listen on %s: %s", where, strerror(-r));
		return r;
	}
	st->accepting = true;
	sk_future_ignore(sk_repeat(accept_next, st));
	return 0;
}
