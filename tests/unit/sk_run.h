/* sk_run.h - run a test body on N shards and get its status back. */
#ifndef SK_RUN_H
#define SK_RUN_H

#include "skerry/options.h"
#include "skerry/shard.h"

static inline int sk_test_run(unsigned nshards, sk_main_fn fn, void *arg)
{
	struct sk_opts o;
	sk_opts_init(&o);
	o.smp = nshards;
	o.log_level = 1;		/* warnings and errors only */
	o.idle_spin_ns = 20000;
	return sk_smp_run(&o, fn, arg);
}

static inline sk_future sk_test_zero_(void *arg, int64_t v)
{
	(void)arg;
	(void)v;
	return sk_make_ready(0);
}

/* A main's future whose value is not an exit status: success -> 0. */
static inline sk_future sk_test_status0(sk_future f)
{
	return sk_future_then(f, sk_test_zero_, NULL);
}

#endif
