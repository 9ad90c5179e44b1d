/*
 * skerry/reactor.h - the per-shard event loop.
 *
 * One reactor per shard thread.  A round of the loop runs ready tasks until
 * the queue is empty or the task budget (default 0.5 ms) is spent, then every
 * poller (timers, cross-shard queues, returned memory, later NICs and
 * io_uring), then, if nothing happened, spins for a while and finally sleeps
 * until a timer is due or another shard wakes it.
 *
 * All functions act on the calling thread's reactor unless they take one.
 */
#ifndef SKERRY_REACTOR_H
#define SKERRY_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "skerry/future.h"

/* A unit of work: run() is called once per schedule. */
struct sk_task {
	struct sk_task *next;
	void (*run)(struct sk_task *t);
};

/*
 * A poller.  poll() does its work and says whether it found any;
 * pure_poll() only says whether poll() would find work (no side effects),
 * and is asked just before the reactor sleeps.  pure_poll is optional.
 */
struct sk_poller {
	bool (*poll)(void *arg);
	bool (*pure_poll)(void *arg);	/* optional */
	void *arg;
	struct sk_poller *next;
	/* optional: work is in flight that will show up in poll() later
	 * (submitted I/O, open sockets); shutdown waits while it says so. */
	bool (*busy)(void *arg);
};

struct sk_reactor_config {
	uint64_t task_budget_ns;	/* 0: 500 us */
	uint64_t idle_spin_ns;		/* 0: 50 us of spinning before sleeping */
};

struct sk_reactor;

/* Create a reactor for shard @id and make it the calling thread's.  NULL: -ENOMEM. */
struct sk_reactor *sk_reactor_create(unsigned id, const struct sk_reactor_config *cfg);
/* Destroy the calling thread's reactor (after sk_reactor_run returned). */
void sk_reactor_destroy(struct sk_reactor *r);
/* Run the loop until sk_reactor_stop(). */
void sk_reactor_run(struct sk_reactor *r);
/* Make the loop return after the current round (own shard only). */
void sk_reactor_stop(struct sk_reactor *r);
/*
 * Wake a sleeping reactor; callable from any thread and from a signal
 * handler.  Publish what it should find before calling it.
 */
void sk_reactor_wake(struct sk_reactor *r);

/* The calling thread's reactor, or NULL outside shards. */
struct sk_reactor *sk_reactor_local(void);
/* Reactor of shard @id (for waking it), or NULL. */
struct sk_reactor *sk_reactor_of(unsigned id);
/* The shard id of the calling thread's reactor (0 outside shards). */
unsigned sk_reactor_id(void);

/* Queue @t to run on this shard after the tasks already queued. */
void sk_task_schedule(struct sk_task *t);
/* True when ready tasks are waiting. */
bool sk_reactor_tasks_pending(void);
/* True when the current task round has spent its budget: yield soon. */
bool sk_need_preempt(void);

/* Add/remove a poller of the calling shard's reactor. */
void sk_reactor_add_poller(struct sk_poller *p);
void sk_reactor_remove_poller(struct sk_poller *p);
/* True while any poller reports work in flight (see sk_poller.busy). */
bool sk_reactor_pollers_busy(void);

/*
 * Shutdown support for the shard layer.  sk_reactor_begin_stop() runs the
 * at-stop hooks (each once, newest first) and cancels sleeps
 * (sk_sleep resolves with -ECANCELED); sk_reactor_stopping() tells loops and
 * apps to wind down.  Hooks may start futures; the shard layer keeps the
 * reactor running until all work is done.
 */
struct sk_stop_hook {
	void (*fn)(void *arg);
	void *arg;
	struct sk_stop_hook *next;
};
void sk_reactor_at_stop(struct sk_stop_hook *h);
void sk_reactor_begin_stop(void);
bool sk_reactor_stopping(void);
/* Cap how long the reactor may sleep (while draining); 0 = no cap. */
void sk_reactor_set_max_sleep(uint64_t ns);

/*
 * Replace the reactor's futex sleep, for a poller whose events can only be
 * waited for in its own system call (the posix stack waits in io_uring).
 * sleep() blocks until its own events arrive, @timeout_ns passes
 * (UINT64_MAX: no limit) or wake() is called; wake() is called from other
 * threads when they give this reactor work.  One per reactor; NULL restores
 * the futex.  @s must outlive its use.
 */
struct sk_sleeper {
	void (*sleep)(void *arg, uint64_t timeout_ns);
	void (*wake)(void *arg);
	void *arg;
};
void sk_reactor_set_sleeper(const struct sk_sleeper *s);

/* Monotonic nanoseconds. */
uint64_t sk_now_ns(void);

#endif /* SKERRY_REACTOR_H */
