/*
 * skerry/timer.h - per-shard timers.
 *
 * Timers live in their reactor's binary min-heap (O(log n) arm and cancel,
 * each timer remembers its heap slot) and fire from the reactor's timer
 * poller, in deadline order; ties fire in arming order.  A timer belongs to
 * the shard that armed it and must be armed/cancelled there only.  The
 * struct is the caller's: arming allocates nothing unless the heap must
 * grow.
 */
#ifndef SKERRY_TIMER_H
#define SKERRY_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "skerry/future.h"

struct sk_timer {
	uint64_t deadline;	/* monotonic ns */
	uint64_t period;	/* 0: one-shot */
	uint64_t seq;		/* arming order, for ties */
	uint32_t slot;		/* heap index + 1; 0 = not armed */
	uint32_t flags;
	void (*cb)(struct sk_timer *t);
	void *arg;
};

/*
 * Flags, set before arming.  STOP_EARLY: fire at once when the shard begins
 * to stop (see sk_sleep).  BACKGROUND: housekeeping (stats clocks, expiry
 * sweeps) that does not hold up shutdown; other armed timers count as work
 * in flight, and the shards wait for them (up to the grace period).
 */
#define SK_TIMER_STOP_EARLY 1u
#define SK_TIMER_BACKGROUND 2u

void sk_timer_init(struct sk_timer *t, void (*cb)(struct sk_timer *t), void *arg);
/*
 * Arm (or re-arm) @t to fire at monotonic time @deadline_ns / after
 * @delay_ns.  Returns 0, or -ENOMEM when the heap cannot grow.
 */
int sk_timer_arm_at(struct sk_timer *t, uint64_t deadline_ns);
int sk_timer_arm(struct sk_timer *t, uint64_t delay_ns);
/* Fire every @period_ns, first after @period_ns.  0, -EINVAL, -ENOMEM. */
int sk_timer_arm_periodic(struct sk_timer *t, uint64_t period_ns);
/* Disarm; returns true if it was armed. */
bool sk_timer_cancel(struct sk_timer *t);
static inline bool sk_timer_armed(const struct sk_timer *t)
{
	return t->slot != 0;
}
/* Number of armed timers of this shard, and of those not BACKGROUND. */
unsigned sk_timer_count(void);
unsigned sk_timer_count_foreground(void);

/*
 * A future that resolves with 0 after @ns, or with -ECANCELED if the shard
 * starts stopping first.  Allocation failure: -ENOMEM.
 */
sk_future sk_sleep(uint64_t ns);

#define SK_NSEC_PER_USEC 1000ull
#define SK_NSEC_PER_MSEC 1000000ull
#define SK_NSEC_PER_SEC  1000000000ull

#endif /* SKERRY_TIMER_H */
