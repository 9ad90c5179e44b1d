/*
 * main.c - skerry-memcached: flags, shards, listeners, shutdown.
 *
 * Roadmap: parse stock memcached's flags (plus the runtime's), start the
 * shards, and on every shard start the network stack, its part of the
 * store, a TCP listener on the shared port (SO_REUSEPORT: the kernel
 * spreads connections over shards) and, with -U, a UDP socket.  Each
 * accepted connection is served on the shard that accepted it (conn.c);
 * requests for keys of other shards travel as messages (engine.c).
 *
 * The listener, the -c limit and shutdown are skerry/server.h's: at
 * SIGINT/SIGTERM (or "shutdown" with -A) every shard closes its listener
 * and UDP socket, ends the input of its connections so they finish what
 * they are doing and close, then stops its store and stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "mc.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/server.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#ifndef SK_MC_VERSION
#define SK_MC_VERSION "1.6.18"
#endif

static unsigned long long opt_port = 11211, opt_udp_port, opt_mb = 64, opt_conns = 1024;
static uint64_t opt_item_max = 1024 * 1024;
static const char *opt_listen;	/* NULL: the stack's default host */
static int opt_verbose;
static bool opt_enable_shutdown, opt_disable_cas;

static struct sk_sockaddr listen_addr;

static struct sk_udp *udp_socks[SK_MAX_SHARDS];
static struct sk_server_config server = { .net.stack_name = "posix" };

static void on_stop(void)
{
	struct sk_udp **u = &udp_socks[sk_shard_id()];
	if (*u) {
		sk_udp_close(*u);
		*u = NULL;
	}
}

static sk_future shard_start(void *arg)
{
	uint64_t budget = mc_settings.maxbytes / mc_settings.nshards;
	int r;

	(void)arg;
	r = mc_store_init(budget);
	if (r) {
		sk_log_error("cannot set up the store: %s", strerror(-r));
		return sk_make_error(r);
	}
	/* The store is ready before the first connection can arrive. */
	r = sk_server_start(&server);
	if (r) {
		mc_store_fini();
		return sk_make_error(r);
	}
	if (mc_settings.udp_port) {
		struct sk_sockaddr ua = listen_addr;
		struct sk_udp **u = &udp_socks[sk_shard_id()];
		ua.port = (uint16_t)mc_settings.udp_port;
		r = sk_udp_bind(&ua, true, u);
		if (r) {
			sk_log_error("cannot bind UDP port %u: %s", mc_settings.udp_port,
				     strerror(-r));
			return sk_make_error(r);
		}
		sk_future_ignore(mc_udp_serve(*u));
	}
	return sk_make_ready(0);
}

static sk_future started(void *arg, int64_t v, int err)
{
	(void)arg;
	(void)v;
	if (err) {
		sk_smp_request_stop(1);
		return sk_make_ready(1);
	}
	sk_log_info("skerry-memcached %s: %u shard%s, %s stack, listening on %s:%u%s, "
		    "%llu MB, max %u connections",
		    SK_MC_VERSION, mc_settings.nshards, mc_settings.nshards > 1 ? "s" : "",
		    server.net.stack_name, mc_settings.listen_addr, mc_settings.port,
		    mc_settings.udp_port ? " (and UDP)" : "",
		    (unsigned long long)(mc_settings.maxbytes >> 20), mc_settings.maxconns);
	/* Serve until stopped: the exit status comes from the stop. */
	return sk_promise_future(sk_promise_new());
}

static sk_future mc_main(void *arg)
{
	(void)arg;
	mc_settings.nshards = sk_shard_count();
	server.addr = listen_addr;
	server.listen = mc_settings.port != 0;
	server.max_conns = mc_settings.maxconns;
	server.serve = mc_conn_run;
	server.reject = mc_conn_reject;
	server.on_stop = on_stop;
	server.on_finish = mc_store_fini;
	return sk_future_then_wrapped(sk_invoke_on_all(shard_start, NULL), started, NULL);
}

static int check_settings(void)
{
	char net_err[256];

	if (opt_port > 65535 || opt_udp_port > 65535) {
		fprintf(stderr, "skerry-memcached: port must be 0..65535\n");
		return -EINVAL;
	}
	if (sk_net_config_check(&server.net, net_err, sizeof(net_err))) {
		fprintf(stderr, "skerry-memcached: %s\n", net_err);
		return -EINVAL;
	}
	if (!opt_listen)
		opt_listen = sk_net_default_host(&server.net);
	if (sk_addr_parse(opt_listen, (uint16_t)opt_port, &listen_addr)) {
		fprintf(stderr, "skerry-memcached: -l takes an IPv4 address, not '%s'\n",
			opt_listen);
		return -EINVAL;
	}
	if (opt_mb == 0 || opt_mb > (1ull << 40)) {
		fprintf(stderr, "skerry-memcached: -m must be at least 1 (megabytes)\n");
		return -EINVAL;
	}
	if (opt_conns == 0 || opt_conns > 1000000) {
		fprintf(stderr, "skerry-memcached: -c must be 1..1000000\n");
		return -EINVAL;
	}
	/* As stock: the item size limit is 1 KiB .. 1 GiB and at most half
	 * of the memory limit. */
	if (opt_item_max < 1024) {
		fprintf(stderr, "Item max size cannot be less than 1024 bytes.\n");
		return -EINVAL;
	}
	if (opt_item_max > 1024ull * 1024 * 1024) {
		fprintf(stderr, "Cannot set item size limit higher than 1 gigabyte.\n");
		return -EINVAL;
	}
	if (opt_item_max > opt_mb * 1024 * 1024 / 2) {
		fprintf(stderr, "Cannot set item size limit higher than 1/2 of memory max.\n");
		return -EINVAL;
	}
	mc_settings.port = (unsigned)opt_port;
	mc_settings.udp_port = (unsigned)opt_udp_port;
	mc_settings.listen_addr = opt_listen;
	mc_settings.maxbytes = opt_mb * 1024 * 1024;
	mc_settings.maxconns = (unsigned)opt_conns;
	mc_settings.item_size_max = opt_item_max;
	mc_settings.verbose = opt_verbose;
	mc_settings.enable_shutdown = opt_enable_shutdown;
	mc_settings.cas_enabled = !opt_disable_cas;
	mc_settings.process_started = (int64_t)time(NULL);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct sk_option options[] = {
		{ "port", 'p', SK_OPT_UINT, &opt_port, "PORT",
		  "TCP port to listen on (0 = no TCP)" },
		{ "udp-port", 'U', SK_OPT_UINT, &opt_udp_port, "PORT",
		  "UDP port to listen on (0 = off)" },
		{ "listen", 'l', SK_OPT_STRING, &opt_listen, "ADDR",
		  "IPv4 address to listen on (default 127.0.0.1; native stack: its --ip)" },
		{ "memory-limit", 'm', SK_OPT_UINT, &opt_mb, "MB",
		  "item memory in megabytes, split over the shards" },
		{ "conn-limit", 'c', SK_OPT_UINT, &opt_conns, "N",
		  "max simultaneous connections" },
		{ "max-item-size", 'I', SK_OPT_SIZE, &opt_item_max, "SIZE",
		  "largest item (key + value + overhead), e.g. 1m" },
		{ "verbose", 'v', SK_OPT_COUNT, &opt_verbose, NULL,
		  "log more (-vv: every connection)" },
		{ "enable-shutdown", 'A', SK_OPT_FLAG, &opt_enable_shutdown, NULL,
		  "allow the \"shutdown\" command" },
		{ "disable-cas", 'C', SK_OPT_FLAG, &opt_disable_cas, NULL,
		  "no CAS values (saves 8 bytes per item)" },
		SK_NET_OPTIONS(&server.net),
		{ 0 },
	};
	static const struct sk_program prog = {
		"skerry-memcached",
		"A memcached-compatible cache on skerry's shard-per-core runtime.",
		options,
	};
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 2;
	if (check_settings())
		return 2;
	/* -v is the default info level; -vv adds debug (every connection). */
	if (opt_verbose > 1 && o.log_level < SK_LOG_INFO + opt_verbose - 1)
		o.log_level = opt_verbose > 2 ? SK_LOG_TRACE : SK_LOG_DEBUG;
	rc = sk_smp_run(&o, mc_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "skerry-memcached: cannot start shards: %s\n", strerror(-rc));
		return 1;
	}
	return rc;
}
