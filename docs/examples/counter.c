/*
 * counter.c - the example from docs/programming.md, built and run by the
 * test suite so the guide cannot drift from the API.
 *
 * 1000 requests, one after another (sk_repeat), each sent to the shard that
 * owns a hashed key (sk_submit_to), bounded by a 100 ms timeout
 * (sk_with_timeout); the replies are summed and printed.  With one shard the
 * sum is 1 + 2 + ... + 1000 = 500500.
 */
#include <errno.h>
#include <stdio.h>
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/options.h"
#include "skerry/reactor.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

/* Runs on the shard that owns the key: bump its count, return the new value. */
static uint64_t counts[SK_MAX_SHARDS];
static sk_future bump_local(void *arg)
{
	(void)arg;
	return sk_make_ready((int64_t)++counts[sk_shard_id()]);
}

struct job {
	unsigned left;
	uint64_t sum;
};

static sk_future add_reply(void *arg, int64_t v)
{
	struct job *j = arg;
	j->sum += (uint64_t)v;
	return sk_make_ready(--j->left == 0 ? SK_STOP : SK_CONTINUE);
}

static sk_future one_request(void *arg)
{
	struct job *j = arg;
	uint64_t h = sk_hash64(&j->left, sizeof(j->left), 0);
	unsigned owner = sk_shard_of_hash(h, sk_shard_count());
	sk_future f = sk_with_timeout(sk_submit_to(owner, bump_local, NULL),
				      100 * SK_NSEC_PER_MSEC);
	return sk_future_then(f, add_reply, j);
}

static sk_future report(void *arg, int64_t v, int err)
{
	struct job *j = arg;
	(void)v;
	if (err)
		sk_log_error("job failed: %d", err);
	else
		printf("sum of replies: %llu\n", (unsigned long long)j->sum);
	sk_free(j);
	return sk_make_ready(err ? 1 : 0);
}

static sk_future app_main(void *arg)
{
	(void)arg;
	struct job *j = sk_alloc(sizeof(*j));
	if (!j)
		return sk_make_error(-ENOMEM);
	*j = (struct job){ .left = 1000 };
	return sk_future_then_wrapped(sk_repeat(one_request, j), report, j);
}

int main(int argc, char **argv)
{
	static const struct sk_option mine[] = { { 0 } };
	static const struct sk_program prog = { "example", "An example.", mine };
	struct sk_opts o;
	int rc = sk_options_parse(&prog, argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	rc = sk_smp_run(&o, app_main, NULL);
	return rc < 0 ? 1 : rc;
}
