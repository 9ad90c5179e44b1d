/*
 * smp.c - shards: start-up, cross-shard messages, shutdown.
 *
 * Roadmap:
 *   sk_smp_run()      reserve memory, make N*N rings, start N-1 pinned threads
 *                     (shard 0 is the caller), wait until every reactor
 *                     exists, run main on shard 0, then join everything.
 *   smp_poll()        each shard's poller: run what others sent (consume),
 *                     push backlogged entries, publish the batch (flush),
 *                     and, once stopping, the shutdown protocol (stop_poll).
 *   sk_submit_to()    a request entry to the target; the target runs fn, and
 *                     when fn's future resolves sends a completion entry
 *                     back on its own ring to us; we resolve the promise.
 *
 * Shutdown is a two-round quiescence check run by shard 0: every shard
 * reports whether it is idle (no tasks, no requests awaiting replies, no
 * timers, nothing queued), with its message counters and a poll epoch.
 * When all are idle and every message sent has been received, shard 0
 * records the counters; once every shard has polled again (epochs moved)
 * and still nothing moved, no work can exist anywhere and all shards exit.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "ring.h"
#include "skerry/alloc.h"
#include "skerry/log.h"
#include "skerry/shard.h"
#include "skerry/timer.h"

#define DRAIN_MAX_SLEEP_NS SK_NSEC_PER_MSEC

enum { RUNNING = 0, DRAINING = 1, EXITING = 2 };

/* A submit_to in flight; lives on the sender's heap. */
struct work {
	struct work *next;		/* backlog link */
	void (*msg_fn)(void *arg);	/* entry to send: exec or complete */
	sk_future (*fn)(void *arg);
	void *arg;
	struct sk_promise *p;
	int64_t v;
	int err;
	unsigned src;			/* where the completion goes */
};

struct shard {
	unsigned id;
	int cpu;
	struct sk_reactor *r;
	struct sk_plat_thread *thread;
	struct sk_poller poller;
	struct sk_ring_prod *out;	/* [nshards] producer views */
	struct work **bl_head;		/* [nshards] backlog when a ring is full */
	struct work **bl_tail;
	uint64_t in_flight;		/* our requests awaiting completion */
	bool draining;
	uint64_t grace_deadline;

	/* Read by other shards (stats, shutdown protocol). */
	_Alignas(64) _Atomic uint64_t sent, received, ring_full;
	_Atomic uint64_t epoch;
	_Atomic bool idle;
};

static struct {
	unsigned n;
	struct shard *shards;
	struct sk_ring *rings;		/* rings[src * n + dst] */
	_Atomic int state;
	_Atomic int status;
	_Atomic int signals;
	_Atomic uint32_t ready;		/* shards whose reactor exists (futex word) */
	_Atomic uint32_t left;		/* shards out of their loop (futex word) */
	_Atomic int failed;		/* a shard could not start */
	const struct sk_opts *opts;
	/* shard 0's shutdown bookkeeping */
	bool armed;
	uint64_t snap_epoch[SK_MAX_SHARDS], snap_sent[SK_MAX_SHARDS],
		 snap_recv[SK_MAX_SHARDS];
} smp;

static _Thread_local struct shard *me;

static inline struct sk_ring *ring(unsigned src, unsigned dst)
{
	return &smp.rings[src * smp.n + dst];
}

unsigned sk_shard_count(void)
{
	return smp.n ? smp.n : 1;
}

/* ---- sending --------------------------------------------------------- */

static void publish(unsigned dst)
{
	struct sk_ring_prod *p = &me->out[dst];
	sk_ring_publish(ring(me->id, dst), p);
	sk_reactor_wake(smp.shards[dst].r);
}

static inline bool push(unsigned dst, void (*fn)(void *), void *arg)
{
	struct sk_ring_prod *p = &me->out[dst];
	if (!sk_ring_push(ring(me->id, dst), p, fn, arg))
		return false;
	atomic_store_explicit(&me->sent,
		atomic_load_explicit(&me->sent, memory_order_relaxed) + 1,
		memory_order_relaxed);
	if (p->head - p->published >= SK_RING_BATCH)
		publish(dst);
	return true;
}

int sk_smp_post(unsigned shard, void (*fn)(void *arg), void *arg)
{
	if (!me || shard >= smp.n)
		return -EINVAL;
	/* Keep order with what is already waiting in the backlog. */
	if (me->bl_head[shard] || !push(shard, fn, arg)) {
		atomic_fetch_add_explicit(&me->ring_full, 1, memory_order_relaxed);
		return -ENOBUFS;
	}
	return 0;
}

/* Send a work entry, queueing it locally if the ring is full. */
static void send_work(unsigned dst, struct work *w)
{
	if (!me->bl_head[dst] && push(dst, w->msg_fn, w))
		return;
	atomic_fetch_add_explicit(&me->ring_full, 1, memory_order_relaxed);
	w->next = NULL;
	if (me->bl_head[dst])
		me->bl_tail[dst]->next = w;
	else
		me->bl_head[dst] = w;
	me->bl_tail[dst] = w;
}

/* Push backlogs and publish every ring with unpublished entries. */
static bool flush(void)
{
	bool work = false;
	for (unsigned d = 0; d < smp.n; d++) {
		struct work *w;
		while ((w = me->bl_head[d]) != NULL) {
			if (!push(d, w->msg_fn, w))
				break;
			me->bl_head[d] = w->next;
			work = true;
		}
		if (me->out[d].head != me->out[d].published)
			publish(d);
	}
	return work;
}

void sk_smp_flush(void)
{
	if (me)
		flush();
}

/* ---- submit_to ------------------------------------------------------- */

static void work_complete(void *arg)
{
	struct work *w = arg;
	me->in_flight--;
	if (w->err)
		sk_promise_set_error(w->p, w->err);
	else
		sk_promise_set_value(w->p, w->v);
	sk_free(w);
}

static void work_reply(void *arg, int64_t v, int err)
{
	struct work *w = arg;
	w->v = v;
	w->err = err;
	w->msg_fn = work_complete;
	send_work(w->src, w);
}

static void work_exec(void *arg)
{
	struct work *w = arg;
	sk_future_on_done(w->fn(w->arg), work_reply, w);
}

sk_future sk_submit_to(unsigned shard, sk_future (*fn)(void *arg), void *arg)
{
	struct work *w;
	sk_future f;

	if (!me)
		return sk_make_error(-EINVAL);
	if (shard >= smp.n)
		return sk_make_error(-EINVAL);
	if (atomic_load_explicit(&smp.state, memory_order_relaxed) == EXITING)
		return sk_make_error(-ESHUTDOWN);
	if (shard == me->id)
		return fn(arg);
	w = sk_alloc(sizeof(*w));
	if (!w)
		return sk_make_error(-ENOMEM);
	w->p = sk_promise_new();
	if (!w->p) {
		sk_free(w);
		return sk_make_error(-ENOMEM);
	}
	w->msg_fn = work_exec;
	w->fn = fn;
	w->arg = arg;
	w->src = me->id;
	f = sk_promise_future(w->p);
	me->in_flight++;
	send_work(shard, w);
	return f;
}

static sk_future on_all_done(void *arg, int64_t v, int err)
{
	sk_free(arg);	/* the futures array */
	return err ? sk_make_error(err) : sk_make_ready(v);
}

sk_future sk_invoke_on_all(sk_future (*fn)(void *arg), void *arg)
{
	unsigned n = sk_shard_count();
	sk_future *fs;

	if (!me)
		return sk_make_error(-EINVAL);
	fs = sk_alloc(n * sizeof(*fs));
	if (!fs)
		return sk_make_error(-ENOMEM);
	/* Others first, so they work while we run our own share. */
	for (unsigned i = 1; i <= n; i++) {
		unsigned s = (me->id + i) % n;
		fs[s] = sk_submit_to(s, fn, arg);
	}
	return sk_future_then_wrapped(sk_when_all(fs, n), on_all_done, fs);
}

/* ---- receiving ------------------------------------------------------- */

static bool consume(void)
{
	uint64_t got = 0;
	/* Our own ring too: sk_smp_post() to ourselves runs on the next poll. */
	for (unsigned s = 0; s < smp.n; s++) {
		struct sk_ring *r = ring(s, me->id);
		uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		if (head == tail)
			continue;
		got += head - tail;
		while (tail != head) {
			struct sk_ring_msg m = r->slots[tail & SK_RING_MASK];
			tail++;
			m.fn(m.arg);
			/* Hand space back in batches so a producer with a
			 * backlog is not held up for the whole ring. */
			if ((tail & (4 * SK_RING_BATCH - 1)) == 0)
				atomic_store_explicit(&r->tail, tail, memory_order_release);
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	if (got)
		atomic_store_explicit(&me->received,
			atomic_load_explicit(&me->received, memory_order_relaxed) + got,
			memory_order_relaxed);
	return got != 0;
}

/*
 * The poller's pure_poll: entries to run, entries of ours still to push or
 * publish (a shard must not sleep on its own backlog: the consumer does
 * not wake producers), or a shutdown step to take.
 */
static bool rings_pending(void *arg)
{
	struct shard *sh = arg;
	for (unsigned s = 0; s < smp.n; s++) {
		if (!sk_ring_empty(ring(s, sh->id)))
			return true;
		if (sh->bl_head[s] || sh->out[s].head != sh->out[s].published)
			return true;
	}
	int state = atomic_load_explicit(&smp.state, memory_order_relaxed);
	return (state != RUNNING && !sh->draining) || state == EXITING;
}

/* ---- shutdown -------------------------------------------------------- */

static void wake_all(void)
{
	for (unsigned i = 0; i < smp.n; i++)
		if (smp.shards[i].r)
			sk_reactor_wake(smp.shards[i].r);
}

void sk_smp_request_stop(int status)
{
	int expect = RUNNING;
	if (atomic_compare_exchange_strong(&smp.state, &expect, DRAINING)) {
		atomic_store(&smp.status, status);
		wake_all();
	}
}

static void on_signal(int signo)
{
	(void)signo;
	if (atomic_fetch_add(&smp.signals, 1) > 0)
		sk_plat_exit(1);	/* second signal: leave now */
	/* sk_smp_request_stop() is signal-safe: atomics and futex wakes. */
	sk_smp_request_stop(0);
}

static bool locally_idle(void)
{
	if (sk_reactor_tasks_pending() || me->in_flight || sk_timer_count_foreground() ||
	    sk_reactor_pollers_busy())
		return false;
	for (unsigned s = 0; s < smp.n; s++) {
		if (me->bl_head[s] || me->out[s].head != me->out[s].published)
			return false;
		if (!sk_ring_empty(ring(s, me->id)))
			return false;
	}
	return true;
}

static bool all_idle_balanced(void)
{
	uint64_t sent = 0, recv = 0;
	for (unsigned i = 0; i < smp.n; i++) {
		struct shard *sh = &smp.shards[i];
		if (!atomic_load(&sh->idle))
			return false;
		sent += atomic_load(&sh->sent);
		recv += atomic_load(&sh->received);
	}
	return sent == recv;
}

static void coordinate(void)
{
	uint64_t now = sk_plat_now_ns();
	bool go = false;

	if (!smp.armed) {
		if (all_idle_balanced()) {
			for (unsigned i = 0; i < smp.n; i++) {
				smp.snap_epoch[i] = atomic_load(&smp.shards[i].epoch);
				smp.snap_sent[i] = atomic_load(&smp.shards[i].sent);
				smp.snap_recv[i] = atomic_load(&smp.shards[i].received);
			}
			smp.armed = true;
		}
	} else {
		bool moved = true;
		for (unsigned i = 0; i < smp.n; i++)
			moved &= atomic_load(&smp.shards[i].epoch) > smp.snap_epoch[i];
		if (moved) {
			go = all_idle_balanced();
			for (unsigned i = 0; go && i < smp.n; i++)
				go = atomic_load(&smp.shards[i].sent) == smp.snap_sent[i] &&
				     atomic_load(&smp.shards[i].received) == smp.snap_recv[i];
			smp.armed = false;
		}
	}
	if (!go && now >= me->grace_deadline) {
		sk_log_warn("shutdown: work still in flight after the %llu ms grace period; "
			    "exiting anyway", (unsigned long long)(smp.opts->stop_grace_ns / SK_NSEC_PER_MSEC));
		go = true;
	}
	if (go) {
		atomic_store(&smp.state, EXITING);
		wake_all();
	}
}

static bool stop_poll(void)
{
	int state = atomic_load_explicit(&smp.state, memory_order_acquire);
	bool work = false;

	if (!me->draining) {
		me->draining = true;
		me->grace_deadline = sk_plat_now_ns() + smp.opts->stop_grace_ns;
		sk_reactor_set_max_sleep(DRAIN_MAX_SLEEP_NS);
		sk_reactor_begin_stop();
		work = true;
	}
	if (state == EXITING) {
		sk_reactor_stop(me->r);
		return false;
	}
	atomic_store(&me->idle, !work && locally_idle());
	atomic_fetch_add(&me->epoch, 1);
	if (me->id == 0)
		coordinate();
	return work;
}

static bool smp_poll(void *arg)
{
	(void)arg;
	bool work = consume();
	work |= flush();
	if (SK_UNLIKELY(atomic_load_explicit(&smp.state, memory_order_relaxed) != RUNNING))
		work |= stop_poll();
	return work;
}

/* ---- start-up -------------------------------------------------------- */

static int shard_setup(struct shard *sh)
{
	struct sk_reactor_config rc = {
		.task_budget_ns = smp.opts->task_budget_ns,
		.idle_spin_ns = smp.opts->idle_spin_ns,
	};
	int rcode = sk_mem_thread_init(sh->id);
	if (rcode < 0)
		return rcode;
	me = sh;
	sh->out = sk_zalloc(smp.n * sizeof(*sh->out));
	sh->bl_head = sk_zalloc(smp.n * sizeof(*sh->bl_head));
	sh->bl_tail = sk_zalloc(smp.n * sizeof(*sh->bl_tail));
	if (!sh->out || !sh->bl_head || !sh->bl_tail)
		return -ENOMEM;
	sh->r = sk_reactor_create(sh->id, &rc);
	if (!sh->r)
		return -ENOMEM;
	sh->poller = (struct sk_poller){ .poll = smp_poll, .pure_poll = rings_pending, .arg = sh };
	sk_reactor_add_poller(&sh->poller);
	return 0;
}

static void shard_teardown(struct shard *sh)
{
	if (sh->r)
		sk_reactor_destroy(sh->r);
	sh->r = NULL;
	sk_free(sh->out);
	sk_free(sh->bl_head);
	sk_free(sh->bl_tail);
	me = NULL;
	sk_mem_thread_exit();
}

/*
 * Every shard waits here until all have arrived (or, at start, one failed).
 * At start: no message may target a reactor that does not exist yet.  At
 * the end: no shard may free its reactor while another can still wake it.
 */
static bool barrier(_Atomic uint32_t *count, bool stop_on_failure)
{
	uint32_t v = atomic_fetch_add(count, 1) + 1;
	sk_plat_wake((uint32_t *)count);
	while (v < smp.n && !(stop_on_failure && atomic_load(&smp.failed))) {
		sk_plat_wait((uint32_t *)count, v, SK_NSEC_PER_MSEC);
		v = atomic_load(count);
	}
	return !atomic_load(&smp.failed);
}

static void pin(struct shard *sh)
{
	int rc = sk_plat_pin_self(sh->cpu);
	if (rc < 0)
		sk_log_warn("shard %u: cannot pin to CPU %d: %s", sh->id, sh->cpu, strerror(-rc));
}

static void shard_thread(void *arg)
{
	struct shard *sh = arg;
	pin(sh);
	int rc = shard_setup(sh);
	if (rc < 0) {
		sk_log_error("shard %u: could not start: %s", sh->id, strerror(-rc));
		atomic_store(&smp.failed, 1);
	}
	if (barrier(&smp.ready, true))
		sk_reactor_run(sh->r);
	barrier(&smp.left, false);
	shard_teardown(sh);
}

static void main_done(void *arg, int64_t v, int err)
{
	(void)arg;
	if (err) {
		sk_log_error("main failed: %s", strerror(-err));
		sk_smp_request_stop(1);
	} else {
		sk_smp_request_stop((int)(v & 0xff));
	}
}

/* Pick each shard's CPU from --cpuset or the topology (cores first). */
static int choose_cpus(const struct sk_opts *o, unsigned n, int *cpu_of)
{
	const struct sk_plat_topology *t = sk_plat_topology();
	if (o->ncpus) {
		for (unsigned i = 0; i < o->ncpus; i++) {
			bool ok = false;
			for (unsigned k = 0; k < t->ncpus; k++)
				ok |= t->cpus[k] == o->cpus[i];
			if (!ok) {
				sk_log_error("--cpuset: CPU %u is not available to this process", o->cpus[i]);
				return -EINVAL;
			}
		}
		for (unsigned i = 0; i < n; i++)
			cpu_of[i] = (int)o->cpus[i % o->ncpus];
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		cpu_of[i] = t->ncpus ? (int)t->cpus[i % t->ncpus] : -1;
	return 0;
}

int sk_smp_run(const struct sk_opts *o, sk_main_fn main_fn, void *arg)
{
	const struct sk_plat_topology *t;
	int cpu_of[SK_MAX_SHARDS];
	unsigned n, avail;
	int rc, status;

	if (smp.n)
		return -EBUSY;
	sk_log_set_level(o->log_level);
	rc = sk_plat_init();
	if (rc < 0)
		return rc;
	t = sk_plat_topology();
	avail = o->ncpus ? o->ncpus : t->ncpus;
	n = o->smp ? o->smp : (avail ? avail : 1);
	if (n > SK_MAX_SHARDS)
		return -EINVAL;
	rc = choose_cpus(o, n, cpu_of);
	if (rc < 0)
		return rc;
	if (n > avail)
		sk_log_warn("%u shards on %u CPUs: shards will share CPUs", n, avail);

	struct sk_mem_config mc = { .nshards = n, .bytes_per_shard = o->memory / n };
	rc = sk_mem_init(&mc);
	if (rc < 0) {
		sk_log_error("memory: cannot set up %u shards: %s", n, strerror(-rc));
		return rc;
	}
	memset(&smp, 0, sizeof(smp));
	smp.opts = o;
	smp.shards = sk_alloc_aligned(64, n * sizeof(*smp.shards));
	smp.rings = sk_alloc_aligned(64, (size_t)n * n * sizeof(*smp.rings));
	if (!smp.shards || !smp.rings) {
		sk_free(smp.shards);
		sk_free(smp.rings);
		sk_mem_fini();
		return -ENOMEM;
	}
	memset(smp.shards, 0, n * sizeof(*smp.shards));
	for (unsigned i = 0; i < n * n; i++)
		sk_ring_init(&smp.rings[i]);
	smp.n = n;
	for (unsigned i = 0; i < n; i++) {
		smp.shards[i].id = i;
		smp.shards[i].cpu = cpu_of[i];
	}
	sk_log_info("starting %u shard%s on %u CPU%s (%u cores, %u NUMA node%s); "
		    "allocator %s, %s", n, n == 1 ? "" : "s", avail, avail == 1 ? "" : "s",
		    t->ncores, t->nnuma, t->nnuma == 1 ? "" : "s",
		    sk_mem_backend(), sk_mem_source());

	unsigned started = 1;
	rc = 0;
	for (unsigned i = 1; i < n; i++) {
		rc = sk_plat_thread_start(&smp.shards[i].thread, -1,
					  shard_thread, &smp.shards[i]);
		if (rc < 0) {
			sk_log_error("shard %u: cannot start thread: %s", i, strerror(-rc));
			atomic_store(&smp.failed, 1);
			break;
		}
		started++;
	}

	pin(&smp.shards[0]);
	int src = shard_setup(&smp.shards[0]);
	if (src < 0) {
		sk_log_error("shard 0: could not start: %s", strerror(-src));
		atomic_store(&smp.failed, 1);
		rc = src;
	}
	if (barrier(&smp.ready, true)) {
		sk_plat_on_terminate(on_signal);
		sk_future_on_done(main_fn(arg), main_done, NULL);
		sk_reactor_run(smp.shards[0].r);
		sk_plat_on_terminate(NULL);
	} else if (rc == 0) {
		rc = -EAGAIN;
	}
	/* Threads that never started cannot arrive: count them in. */
	atomic_fetch_add(&smp.left, smp.n - started);
	barrier(&smp.left, false);
	for (unsigned i = 1; i < started; i++)
		sk_plat_thread_join(smp.shards[i].thread);
	shard_teardown(&smp.shards[0]);
	sk_plat_pin_self(-1);	/* the caller gets its CPUs back */

	status = rc < 0 ? rc : atomic_load(&smp.status);
	sk_free(smp.rings);
	sk_free(smp.shards);
	memset(&smp, 0, sizeof(smp));
	sk_mem_fini();
	return status;
}

void sk_smp_stats(unsigned shard, struct sk_smp_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (shard >= smp.n)
		return;
	out->sent = atomic_load_explicit(&smp.shards[shard].sent, memory_order_relaxed);
	out->received = atomic_load_explicit(&smp.shards[shard].received, memory_order_relaxed);
	out->ring_full = atomic_load_explicit(&smp.shards[shard].ring_full, memory_order_relaxed);
}
