/*
 * main.c - skerry-httpd: flags, the document root, shards, listeners,
 * shutdown.
 *
 * Roadmap: parse the flags (plus the runtime's), read the whole document
 * root into memory (files.c) before any shard starts, then start the
 * shards; on every shard start the network stack, the shard's Date clock
 * and a listener on the shared port (SO_REUSEPORT: the kernel spreads
 * connections over the shards).  Each accepted connection is served on the
 * shard that accepted it (conn.c).
 *
 * Listener, -c limit and shutdown come from skerry/server.h: at
 * SIGINT/SIGTERM every shard closes its listener and ends the input of its
 * connections, so they answer what they already read and close; then it
 * stops its stack.  The file table is freed after the
 * shards are gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/server.h"
#include "skerry/shard.h"
#include "skerry/socket.h"
#include "skerry/timer.h"

#ifndef SK_HTTPD_WWW
#define SK_HTTPD_WWW "www"
#endif

static unsigned long long opt_port = 8080, opt_conns = 1024;
static unsigned long long opt_header_timeout = 10, opt_keepalive_timeout = 60;
static uint64_t opt_max_files = 256ull << 20;
static const char *opt_listen;	/* NULL: the stack's default host */
static const char *opt_root = SK_HTTPD_WWW;

static struct sk_sockaddr listen_addr;

static struct sk_server_config server = { .net.stack_name = "posix" };

static sk_future shard_start(void *arg)
{
	int r;

	(void)arg;
	/* The shard's Date clock and answers first: connections follow. */
	r = httpd_conn_shard_init();
	if (r) {
		sk_log_error("cannot set up the shard: %s", strerror(-r));
		return sk_make_error(r);
	}
	r = sk_server_start(&server);
	return r ? sk_make_error(r) : sk_make_ready(0);
}

static sk_future started(void *arg, int64_t v, int err)
{
	char where[32];

	(void)arg;
	(void)v;
	if (err) {
		sk_smp_request_stop(1);
		return sk_make_ready(1);
	}
	sk_addr_format(&listen_addr, where, sizeof(where));
	sk_log_info("skerry-httpd: %u shard%s, listening on %s, serving %u files "
		    "(%llu bytes) from %s, max %u connections",
		    sk_shard_count(), sk_shard_count() > 1 ? "s" : "", where,
		    httpd_files_count(), (unsigned long long)httpd_files_bytes(), opt_root,
		    httpd_settings.maxconns);
	/* Serve until stopped: the exit status comes from the stop. */
	return sk_promise_future(sk_promise_new());
}

static sk_future httpd_main(void *arg)
{
	(void)arg;
	server.addr = listen_addr;
	server.listen = true;
	server.max_conns = httpd_settings.maxconns;
	server.serve = httpd_conn_run;
	server.reject = httpd_conn_reject;
	server.on_stop = httpd_conn_shard_stop;
	return sk_future_then_wrapped(sk_invoke_on_all(shard_start, NULL), started, NULL);
}

static int check_settings(void)
{
	char net_err[256];

	if (opt_port == 0 || opt_port > 65535) {
		fprintf(stderr, "skerry-httpd: port must be 1..65535\n");
		return -EINVAL;
	}
	if (sk_net_config_check(&server.net, net_err, sizeof(net_err))) {
		fprintf(stderr, "skerry-httpd: %s\n", net_err);
		return -EINVAL;
	}
	if (!opt_listen)
		opt_listen = sk_net_default_host(&server.net);
	if (sk_addr_parse(opt_listen, (uint16_t)opt_port, &listen_addr)) {
		fprintf(stderr, "skerry-httpd: -l takes an IPv4 address, not '%s'\n", opt_listen);
		return -EINVAL;
	}
	if (opt_conns == 0 || opt_conns > 1000000) {
		fprintf(stderr, "skerry-httpd: -c must be 1..1000000\n");
		return -EINVAL;
	}
	if (opt_header_timeout == 0 || opt_header_timeout > 86400 ||
	    opt_keepalive_timeout == 0 || opt_keepalive_timeout > 86400) {
		fprintf(stderr, "skerry-httpd: timeouts must be 1..86400 seconds\n");
		return -EINVAL;
	}
	if (opt_max_files == 0) {
		fprintf(stderr, "skerry-httpd: --max-files-size must be above 0\n");
		return -EINVAL;
	}
	httpd_settings.maxconns = (unsigned)opt_conns;
	httpd_settings.header_timeout_ns = opt_header_timeout * SK_NSEC_PER_SEC;
	httpd_settings.keepalive_timeout_ns = opt_keepalive_timeout * SK_NSEC_PER_SEC;
	return 0;
}

static int load_root(void)
{
	int r = httpd_files_load(opt_root, opt_max_files);

	if (r == -EFBIG) {
		fprintf(stderr, "skerry-httpd: the files under %s total more than "
			"--max-files-size (%llu bytes); raise it or serve less\n",
			opt_root, (unsigned long long)opt_max_files);
	} else if (r) {
		fprintf(stderr, "skerry-httpd: cannot load the document root %s: %s\n",
			opt_root, strerror(-r));
	}
	return r;
}

int main(int argc, char **argv)
{
	static const struct sk_option options[] = {
		{ "port", 'p', SK_OPT_UINT, &opt_port, "PORT", "TCP port to listen on" },
		{ "listen", 'l', SK_OPT_STRING, &opt_listen, "ADDR",
		  "IPv4 address to listen on (default 127.0.0.1; native stack: its --ip)" },
		{ "conn-limit", 'c', SK_OPT_UINT, &opt_conns, "N",
		  "max simultaneous connections" },
		{ "root", 0, SK_OPT_STRING, &opt_root, "DIR",
		  "document root, read into memory at start-up" },
		{ "header-timeout", 0, SK_OPT_UINT, &opt_header_timeout, "SEC",
		  "time a client has to send a request head (408 after)" },
		{ "keepalive-timeout", 0, SK_OPT_UINT, &opt_keepalive_timeout, "SEC",
		  "idle time before a keep-alive connection is closed" },
		{ "max-files-size", 0, SK_OPT_SIZE, &opt_max_files, "SIZE",
		  "largest total size of the document root, e.g. 256m" },
		SK_NET_OPTIONS(&server.net),
		{ 0 },
	};
	static const struct sk_program prog = {
		"skerry-httpd",
		"An HTTP/1.1 static file server on skerry's shard-per-core runtime.",
		options,
	};
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 2;
	if (check_settings())
		return 2;
	if (httpd_conn_global_init()) {
		fprintf(stderr, "skerry-httpd: cannot prepare the error answers\n");
		return 1;
	}
	if (load_root())
		return 1;
	rc = sk_smp_run(&o, httpd_main, NULL);
	httpd_files_free();
	if (rc < 0) {
		fprintf(stderr, "skerry-httpd: cannot start shards: %s\n", strerror(-rc));
		return 1;
	}
	return rc;
}
