/*
 * reactor.c - the per-shard event loop.
 *
 * Roadmap: sk_reactor_run() -> run_tasks() (FIFO queue, time budget)
 *          -> run_pollers() (timers, returned memory, then everything the
 *          upper layers registered: cross-shard rings, NICs, io_uring)
 *          -> idle(): spin idle_spin_ns, then sleep on the futex word
 *          `wake_seq` until the next timer or sk_reactor_wake().
 *
 * Sleeping is a Dekker-style handshake: the sleeper stores `sleeping`,
 * then asks every poller's pure_poll() once more; a waker publishes its
 * work, then loads `sleeping`.  A sequentially consistent fence sits between
 * the store and the loads on each side, so at least one of the two sees the
 * other and a wake-up is never lost.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "reactor_impl.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/options.h"

_Thread_local struct sk_reactor *sk__reactor;

/* Reactors by shard id, so any thread can wake one or read its counters. */
static struct sk_reactor *_Atomic reactors[SK_MAX_SHARDS];

struct sk_reactor *sk_reactor_local(void)
{
	return sk__reactor;
}

struct sk_reactor *sk_reactor_of(unsigned id)
{
	return id < SK_MAX_SHARDS ? atomic_load(&reactors[id]) : NULL;
}

unsigned sk_reactor_id(void)
{
	return sk__reactor ? sk__reactor->id : 0;
}

uint64_t sk_now_ns(void)
{
	return sk_plat_now_ns();
}

static bool mem_poll(void *arg)
{
	(void)arg;
	return sk_mem_drain_remote() > 0;
}

static bool mem_pure_poll(void *arg)
{
	(void)arg;
	return sk_mem_remote_pending();
}

struct sk_reactor *sk_reactor_create(unsigned id, const struct sk_reactor_config *cfg)
{
	struct sk_reactor *r;

	if (id >= SK_MAX_SHARDS)
		return NULL;
	r = sk_alloc_aligned(64, sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->tailp = &r->head;
	r->budget_ns = cfg && cfg->task_budget_ns ? cfg->task_budget_ns : 500000;
	r->spin_ns = cfg && cfg->idle_spin_ns ? cfg->idle_spin_ns : 50000;
	sk__metrics_builtin();

	/* Timers first (they make tasks), then memory returned by others. */
	r->timer_poller = (struct sk_poller){ .poll = sk__timer_poll, .pure_poll = sk__timer_pure_poll, .arg = r };
	r->mem_poller = (struct sk_poller){ .poll = mem_poll, .pure_poll = mem_pure_poll, .arg = r };
	r->pollers = &r->timer_poller;
	r->timer_poller.next = &r->mem_poller;

	sk__reactor = r;
	atomic_store(&reactors[id], r);
	return r;
}

void sk_reactor_destroy(struct sk_reactor *r)
{
	if (!r)
		return;
	atomic_store(&reactors[r->id], NULL);
	sk__timer_fini(r);
	if (sk__reactor == r)
		sk__reactor = NULL;
	sk_free(r);
}

void sk_task_schedule(struct sk_task *t)
{
	struct sk_reactor *r = sk__reactor;
	t->next = NULL;
	*r->tailp = t;
	r->tailp = &t->next;
}

bool sk_reactor_tasks_pending(void)
{
	return sk__reactor && sk__reactor->head != NULL;
}

bool sk_need_preempt(void)
{
	struct sk_reactor *r = sk__reactor;
	return r && sk_plat_now_ns() >= r->round_deadline;
}

void sk_reactor_add_poller(struct sk_poller *p)
{
	struct sk_reactor *r = sk__reactor;
	struct sk_poller **pp = &r->pollers;
	while (*pp)
		pp = &(*pp)->next;
	p->next = NULL;
	*pp = p;
}

void sk_reactor_remove_poller(struct sk_poller *p)
{
	struct sk_reactor *r = sk__reactor;
	for (struct sk_poller **pp = &r->pollers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

void sk_reactor_at_stop(struct sk_stop_hook *h)
{
	struct sk_reactor *r = sk__reactor;
	h->next = r->hooks;
	r->hooks = h;
}

void sk_reactor_begin_stop(void)
{
	struct sk_reactor *r = sk__reactor;
	if (r->stopping)
		return;
	r->stopping = true;
	/* Hooks may register more hooks; take them one at a time. */
	while (r->hooks) {
		struct sk_stop_hook *h = r->hooks;
		r->hooks = h->next;
		h->fn(h->arg);
	}
	sk__timer_fire_stop_early(r);
}

bool sk_reactor_stopping(void)
{
	return sk__reactor && sk__reactor->stopping;
}

void sk_reactor_set_max_sleep(uint64_t ns)
{
	sk__reactor->max_sleep_ns = ns;
}

void sk_reactor_stop(struct sk_reactor *r)
{
	r->stop = true;
}

void sk_reactor_wake(struct sk_reactor *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed)) {
		const struct sk_sleeper *s = atomic_load_explicit(&r->sleeper,
								  memory_order_acquire);
		atomic_fetch_add(&r->wake_seq, 1);
		if (s)
			s->wake(s->arg);
		else
			sk_plat_wake((uint32_t *)&r->wake_seq);
	}
}

void sk_reactor_set_sleeper(const struct sk_sleeper *s)
{
	atomic_store_explicit(&sk__reactor->sleeper, s, memory_order_release);
}

static bool run_tasks(struct sk_reactor *r, uint64_t now)
{
	unsigned n = 0;

	if (!r->head)
		return false;
	r->round_deadline = now + r->budget_ns;
	do {
		struct sk_task *t = r->head;
		r->head = t->next;
		if (!r->head)
			r->tailp = &r->head;
		t->run(t);
		/* Reading the clock costs ~20 ns: do it every 16 tasks. */
		if ((++n & 15) == 0 && sk_plat_now_ns() >= r->round_deadline)
			break;
	} while (r->head);
	sk__counter_add(r, sk__m_tasks, n);
	return true;
}

static bool run_pollers(struct sk_reactor *r)
{
	bool work = false;
	for (struct sk_poller *p = r->pollers; p; p = p->next)
		work |= p->poll(p->arg);
	sk__counter_add(r, sk__m_polls, 1);
	return work;
}

bool sk_reactor_pollers_busy(void)
{
	for (struct sk_poller *p = sk__reactor->pollers; p; p = p->next)
		if (p->busy && p->busy(p->arg))
			return true;
	return false;
}

static bool pure_poll_all(struct sk_reactor *r)
{
	if (r->head)
		return true;
	for (struct sk_poller *p = r->pollers; p; p = p->next)
		if (p->pure_poll && p->pure_poll(p->arg))
			return true;
	return false;
}

static void sleep_until_woken(struct sk_reactor *r, uint64_t now)
{
	uint32_t seq = atomic_load(&r->wake_seq);
	uint64_t next = sk__timer_next(r);
	uint64_t timeout = next == UINT64_MAX ? UINT64_MAX : (next > now ? next - now : 0);

	if (r->max_sleep_ns && timeout > r->max_sleep_ns)
		timeout = r->max_sleep_ns;
	if (timeout == 0)
		return;
	atomic_store(&r->sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);	/* pairs with sk_reactor_wake */
	if (!pure_poll_all(r) && !r->stop) {
		const struct sk_sleeper *s = atomic_load_explicit(&r->sleeper,
								  memory_order_relaxed);
		if (s)
			s->sleep(s->arg, timeout);
		else
			sk_plat_wait((uint32_t *)&r->wake_seq, seq, timeout);
		sk__counter_add(r, sk__m_sleeps, 1);
	}
	atomic_store(&r->sleeping, 0);
}

void sk_reactor_run(struct sk_reactor *r)
{
	uint64_t idle_since = 0;
	uint64_t t0 = sk_plat_now_ns();

	while (!r->stop) {
		uint64_t now = sk_plat_now_ns();
		bool work = run_tasks(r, now);
		work |= run_pollers(r);
		if (work || r->head) {
			idle_since = 0;
			continue;
		}
		now = sk_plat_now_ns();
		if (!idle_since) {
			idle_since = now;
			sk__counter_add(r, sk__m_busy_ns, now - t0);
			t0 = now;
		}
		if (now - idle_since < r->spin_ns) {
			sk_plat_cpu_relax();
			continue;
		}
		/* The spin was polling work: count it as busy. */
		sk__counter_add(r, sk__m_busy_ns, now - t0);
		sleep_until_woken(r, now);
		uint64_t after = sk_plat_now_ns();
		sk__counter_add(r, sk__m_sleep_ns, after - now);
		t0 = after;
		idle_since = 0;
	}
	sk__counter_add(r, sk__m_busy_ns, sk_plat_now_ns() - t0);
}
