/*
 * skerry/shard.h - shards and the messages between them.
 *
 * sk_smp_run() starts one shard per core (or --smp N, on --cpuset CPUs),
 * each a thread pinned to its own CPU with its own reactor and allocator
 * slice; shard 0 runs on the calling thread.  Shards talk only through
 * N x N single-producer/single-consumer rings: ring (a,b) carries everything
 * shard a sends to shard b, requests and replies alike.  Entries are
 * written locally and published in batches (every 16 entries and at the end
 * of each reactor round), so one cache-line transfer carries many messages.
 *
 * Shutdown: when the main future resolves, sk_smp_request_stop() is called,
 * or SIGINT/SIGTERM arrives, every shard runs its at-stop hooks, cancels its
 * sleeps, finishes the work in flight (cross-shard requests complete, rings
 * drain, armed timers that are not SK_TIMER_BACKGROUND fire) and then all
 * shards exit together; a grace period (--stop-grace-ms) bounds the wait.
 * A second signal ends the process at once.
 */
#ifndef SKERRY_SHARD_H
#define SKERRY_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skerry/future.h"
#include "skerry/options.h"
#include "skerry/reactor.h"

/* The program's main: runs on shard 0; its future's value is the exit status. */
typedef sk_future (*sk_main_fn)(void *arg);

/*
 * Run @main_fn on @nshards shards configured by @o.  Returns the exit
 * status: the main future's value (0..255), 1 if it failed, 0 after a clean
 * stop by signal; or a negative errno if the shards could not start
 * (-EINVAL bad cpuset, -ENOMEM, -EAGAIN no threads).
 */
int sk_smp_run(const struct sk_opts *o, sk_main_fn main_fn, void *arg);

/* Calling shard's id (0..count-1) and the number of shards. */
static inline unsigned sk_shard_id(void)
{
	return sk_reactor_id();
}
unsigned sk_shard_count(void);

/*
 * Run fn(arg) on shard @shard and return its result here.  fn runs on
 * @shard, its future resolves there, and the value travels back; @arg must
 * stay valid until then and must not be used by both shards at once.
 * Returns -EINVAL for a bad shard, -ENOMEM, -ESHUTDOWN after the shards
 * have exited.  On the calling shard itself, fn runs in place.
 */
sk_future sk_submit_to(unsigned shard, sk_future (*fn)(void *arg), void *arg);

/*
 * Run fn(arg) on every shard (including this one); resolves with the number
 * of shards when all are done, or with the first error by shard order.
 */
sk_future sk_invoke_on_all(sk_future (*fn)(void *arg), void *arg);

/*
 * One-way message: fn(arg) runs on @shard, nothing comes back (on the
 * calling shard itself: at its next poll).  No allocation.  Returns 0,
 * -ENOBUFS when the ring to @shard is full (try again after a reactor
 * round), -EINVAL for a bad shard or when called outside a shard.
 */
int sk_smp_post(unsigned shard, void (*fn)(void *arg), void *arg);

/* Publish this shard's pending ring entries now (otherwise done per round). */
void sk_smp_flush(void);

/*
 * Ask every shard to stop; the program exits with @status.  Call it from a
 * shard or a signal handler (other threads may race with the shards'
 * teardown).
 */
void sk_smp_request_stop(int status);

/* The shard that owns hash @h (an even split of the 64-bit hash space). */
static inline unsigned sk_shard_of_hash(uint64_t h, unsigned nshards)
{
	return (unsigned)(((unsigned __int128)h * nshards) >> 64);
}
/* A fast 64-bit hash of a key (for key -> owner shard). */
uint64_t sk_hash64(const void *key, size_t len, uint64_t seed);

/* Counters of shard @shard's cross-shard queues (zeros for a bad id). */
struct sk_smp_stats {
	uint64_t sent;		/* entries this shard pushed to others */
	uint64_t received;	/* entries this shard ran from others */
	uint64_t ring_full;	/* times a ring was full (backlog/-ENOBUFS) */
};
void sk_smp_stats(unsigned shard, struct sk_smp_stats *out);

#endif /* SKERRY_SHARD_H */
