/*
 * reactor_impl.h - the reactor's insides, shared by the runtime/ sources only.
 */
#ifndef SK_REACTOR_IMPL_H
#define SK_REACTOR_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "skerry/metrics.h"
#include "skerry/reactor.h"
#include "skerry/timer.h"

struct sk_reactor {
	/* Hot: touched every task. */
	struct sk_task *head;
	struct sk_task **tailp;
	uint64_t round_deadline;	/* end of the current task budget */
	unsigned id;
	bool stop;
	bool stopping;

	uint64_t budget_ns;
	uint64_t spin_ns;
	uint64_t max_sleep_ns;		/* 0: no cap */
	struct sk_poller *pollers;
	struct sk_poller timer_poller;
	struct sk_poller mem_poller;
	struct sk_stop_hook *hooks;

	/* Timers: binary min-heap ordered by (deadline, seq). */
	struct sk_timer **heap;
	uint32_t heap_n, heap_cap;
	uint32_t heap_background;	/* armed timers with SK_TIMER_BACKGROUND */
	uint64_t timer_seq;

	/* Written by other threads: keep away from the hot fields. */
	_Alignas(64) _Atomic uint32_t sleeping;
	_Atomic uint32_t wake_seq;	/* futex word */
	const struct sk_sleeper *_Atomic sleeper;	/* NULL: futex */

	_Alignas(64) _Atomic uint64_t counters[SK_METRICS_MAX];
};

extern _Thread_local struct sk_reactor *sk__reactor;

/* Built-in counters, registered once per process. */
extern int sk__m_tasks, sk__m_polls, sk__m_sleeps, sk__m_busy_ns, sk__m_sleep_ns,
	sk__m_timers_fired;
void sk__metrics_builtin(void);

static inline void sk__counter_add(struct sk_reactor *r, int id, uint64_t n)
{
	uint64_t v = atomic_load_explicit(&r->counters[id], memory_order_relaxed);
	atomic_store_explicit(&r->counters[id], v + n, memory_order_relaxed);
}

/* Timer heap, in timer.c. */
bool sk__timer_poll(void *arg);
bool sk__timer_pure_poll(void *arg);
/* Deadline of the earliest timer, or UINT64_MAX. */
uint64_t sk__timer_next(struct sk_reactor *r);
/* Fire the SK_TIMER_STOP_EARLY timers now (shutdown). */
void sk__timer_fire_stop_early(struct sk_reactor *r);
void sk__timer_fini(struct sk_reactor *r);

#endif /* SK_REACTOR_IMPL_H */
