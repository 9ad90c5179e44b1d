/*
 * future.c - the pending half of futures, promises and the combinators.
 *
 * Ready futures never reach this file (future.h handles them inline).  A
 * pending future points at a state block (struct sk_fstate) shared by its
 * producer (a promise, or the continuation whose result it is) and its
 * consumer (whoever attaches a continuation).  Roadmap:
 *
 *   sk_promise_set_*() -> resolve(): store the result; if a continuation is
 *     attached, schedule it as a reactor task (run_cont); if the consumer
 *     forwarded the state, follow the forward chain iteratively.
 *   run_cont(): apply the continuation, free the state, deliver() its
 *     result future into the downstream state.
 *   sk__then_pending(): resolved already -> run the continuation now;
 *     otherwise allocate the downstream state and attach.
 *
 * The block is freed by whichever side finishes second, so there are no
 * reference counts: "resolved" and "kind != NONE" say who came first.
 */
#include <errno.h>
#include <stdlib.h>

#include "reactor_impl.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"
#include "skerry/timer.h"

enum {
	K_NONE = 0,
	/* SK__K_THEN .. SK__K_FINALLY from future.h: a continuation with a
	 * downstream state */
	K_DONE = 8,	/* terminal callback (sk_future_on_done-style), no downstream */
	K_FORWARD,	/* pass the result to `down` */
	K_IGNORE,	/* nobody wants the result */
};

typedef void (*done_fn)(void *arg, int64_t value, int err);

struct sk_fstate {
	struct sk_task task;
	uint8_t resolved;
	uint8_t kind;
	int32_t err;
	int64_t v;
	void *fn;
	void *arg;
	struct sk_fstate *down;
};

static struct sk_fstate *fstate_new(void)
{
	struct sk_fstate *s = sk_alloc(sizeof(*s));
	if (s) {
		s->resolved = 0;
		s->kind = K_NONE;
		s->down = NULL;
	}
	return s;
}

static void run_cont(struct sk_task *t);

static void resolve(struct sk_fstate *st, int64_t v, int err)
{
	for (;;) {
		SK_ASSERT(!st->resolved);
		st->v = v;
		st->err = err;
		st->resolved = 1;
		switch (st->kind) {
		case K_NONE:
			return;
		case K_IGNORE:
			sk_free(st);
			return;
		case K_FORWARD: {
			struct sk_fstate *down = st->down;
			sk_free(st);
			st = down;
			continue;
		}
		default:
			st->task.run = run_cont;
			sk_task_schedule(&st->task);
			return;
		}
	}
}

/*
 * If @f's outcome is known, consume @f: store its value (0 on failure) and
 * its error (0 on success), free its state block, return true.  Otherwise
 * leave @f alone and return false.
 */
static bool take(sk_future f, int64_t *v, int *err)
{
	if (f.st == NULL) {
		*v = f.v;
		*err = 0;
	} else if (f.st == SK_FUT_FAILED) {
		*v = 0;
		*err = (int)f.v;
	} else if (f.st->resolved) {
		*err = f.st->err;
		*v = *err ? 0 : f.st->v;
		sk_free(f.st);
	} else {
		return false;
	}
	return true;
}

/* Hand the outcome of @r to @down (now, or when @r resolves). */
static void deliver(struct sk_fstate *down, sk_future r)
{
	int64_t v;
	int err;

	if (take(r, &v, &err)) {
		resolve(down, v, err);
	} else {
		r.st->kind = K_FORWARD;
		r.st->down = down;
	}
}

static sk_future apply(int kind, void *fn, void *arg, int64_t v, int err)
{
	switch (kind) {
	case SK__K_THEN:
		return err ? sk_make_error(err) : ((sk_then_fn)fn)(arg, v);
	case SK__K_CATCH:
		return err ? ((sk_catch_fn)fn)(arg, err) : sk_make_ready(v);
	case SK__K_WRAPPED:
		return ((sk_wrapped_fn)fn)(arg, err ? 0 : v, err);
	case SK__K_FINALLY:
		((sk_finally_fn)fn)(arg);
		return err ? sk_make_error(err) : sk_make_ready(v);
	}
	sk_assert_fail("bad continuation kind", __FILE__, __LINE__);
}

static void run_cont(struct sk_task *t)
{
	struct sk_fstate *st = (struct sk_fstate *)t;
	int kind = st->kind;
	void *fn = st->fn, *arg = st->arg;
	int64_t v = st->v;
	int err = st->err;
	struct sk_fstate *down = st->down;

	sk_free(st);
	if (kind == K_DONE) {
		((done_fn)fn)(arg, err ? 0 : v, err);
		return;
	}
	deliver(down, apply(kind, fn, arg, v, err));
}

sk_future sk__then_pending(sk_future f, int kind, void *fn, void *arg)
{
	struct sk_fstate *s = f.st, *d;
	int64_t v;
	int err;

	if (take(f, &v, &err))
		return apply(kind, fn, arg, v, err);
	d = fstate_new();
	if (!d) {
		s->kind = K_IGNORE;
		return sk_make_error(-ENOMEM);
	}
	s->kind = (uint8_t)kind;
	s->fn = fn;
	s->arg = arg;
	s->down = d;
	return (sk_future){ d, 0 };
}

/*
 * Call fn(arg, value, err) when @f completes, consuming it.  Allocates
 * nothing: the continuation rides on @f's own state block.
 */
static void on_done(sk_future f, done_fn fn, void *arg)
{
	int64_t v;
	int err;

	if (take(f, &v, &err)) {
		fn(arg, v, err);
	} else {
		f.st->kind = K_DONE;
		f.st->fn = (void *)fn;
		f.st->arg = arg;
	}
}

void sk_future_on_done(sk_future f, void (*fn)(void *arg, int64_t value, int err),
		       void *arg)
{
	on_done(f, fn, arg);
}

bool sk_future_available(sk_future f)
{
	return f.st == NULL || f.st == SK_FUT_FAILED || f.st->resolved;
}

bool sk_future_failed(sk_future f)
{
	if (f.st == NULL)
		return false;
	if (f.st == SK_FUT_FAILED)
		return true;
	return f.st->resolved && f.st->err != 0;
}

int64_t sk_future_get(sk_future f, int *err)
{
	int64_t v;
	int e;

	bool available = take(f, &v, &e);
	SK_ASSERT(available);	/* get() is for available futures only */
	if (err)
		*err = e;
	return v;
}

void sk_future_ignore(sk_future f)
{
	if (f.st == NULL || f.st == SK_FUT_FAILED)
		return;
	if (f.st->resolved)
		sk_free(f.st);
	else
		f.st->kind = K_IGNORE;
}

/* Turn a resolved pending future into the equivalent ready one. */
static sk_future settle(sk_future f)
{
	int err;
	int64_t v = sk_future_get(f, &err);
	return err ? sk_make_error(err) : sk_make_ready(v);
}

/* ---- promises ------------------------------------------------------------ */

struct sk_promise *sk_promise_new(void)
{
	return (struct sk_promise *)fstate_new();
}

sk_future sk_promise_future(struct sk_promise *p)
{
	return (sk_future){ (struct sk_fstate *)p, 0 };
}

void sk_promise_set_value(struct sk_promise *p, int64_t v)
{
	resolve((struct sk_fstate *)p, v, 0);
}

void sk_promise_set_error(struct sk_promise *p, int err)
{
	resolve((struct sk_fstate *)p, 0, err > 0 ? -err : (err ? err : -EIO));
}

void sk_promise_forward(struct sk_promise *p, sk_future f)
{
	deliver((struct sk_fstate *)p, f);
}

/* ---- sk_yield ------------------------------------------------------------ */

static void yield_run(struct sk_task *t)
{
	resolve((struct sk_fstate *)t, 0, 0);
}

sk_future sk_yield(void)
{
	struct sk_fstate *s = fstate_new();
	if (!s)
		return sk_make_error(-ENOMEM);
	s->task.run = yield_run;
	sk_task_schedule(&s->task);
	return (sk_future){ s, 0 };
}

/* ---- when_all ------------------------------------------------------------ */

struct when_all;
struct when_slot {
	struct when_all *w;
	unsigned i;
};
struct when_all {
	struct sk_promise *p;
	sk_future *fs;
	unsigned n, remaining;
	struct when_slot slots[];
};

static void when_all_finish(struct when_all *w)
{
	int err = 0;
	for (unsigned i = 0; i < w->n && !err; i++)
		if (w->fs[i].st == SK_FUT_FAILED)
			err = (int)w->fs[i].v;
	if (err)
		sk_promise_set_error(w->p, err);
	else
		sk_promise_set_value(w->p, w->n);
	sk_free(w);
}

static void when_all_one(void *arg, int64_t v, int err)
{
	struct when_slot *s = arg;
	struct when_all *w = s->w;
	w->fs[s->i] = err ? sk_make_error(err) : sk_make_ready(v);
	if (--w->remaining == 0)
		when_all_finish(w);
}

sk_future sk_when_all(sk_future *fs, unsigned n)
{
	unsigned pending = 0;
	struct when_all *w;
	sk_future out;

	for (unsigned i = 0; i < n; i++) {
		if (sk_future_available(fs[i]))
			fs[i] = settle(fs[i]);
		else
			pending++;
	}
	if (!pending) {
		for (unsigned i = 0; i < n; i++)
			if (fs[i].st == SK_FUT_FAILED)
				return fs[i];
		return sk_make_ready(n);
	}
	w = sk_alloc(sizeof(*w) + n * sizeof(w->slots[0]));
	struct sk_promise *p = w ? sk_promise_new() : NULL;
	if (!p) {
		/* Still consume every future so none leaks or fires into us. */
		sk_free(w);
		for (unsigned i = 0; i < n; i++)
			if (fs[i].st != NULL && fs[i].st != SK_FUT_FAILED) {
				sk_future_ignore(fs[i]);
				fs[i] = sk_make_error(-ENOMEM);
			}
		return sk_make_error(-ENOMEM);
	}
	w->p = p;
	w->fs = fs;
	w->n = n;
	w->remaining = pending;
	out = sk_promise_future(p);
	for (unsigned i = 0; i < n; i++) {
		if (fs[i].st == NULL || fs[i].st == SK_FUT_FAILED)
			continue;
		w->slots[i] = (struct when_slot){ w, i };
		on_done(fs[i], when_all_one, &w->slots[i]);
	}
	return out;
}

/* ---- with_timeout / with_cancel ------------------------------------------ */

/*
 * A race between @f and a timer or a cancel source.  Two parties hold the
 * block: @f's completion (always comes, eventually) and the timer/cancel
 * side (dropped when it fires, or when @f wins and disarms it).
 */
struct race {
	struct sk_promise *p;
	struct sk_timer timer;
	struct sk_cancel_sub sub;
	struct sk_cancel *cancel;
	unsigned refs;
	bool done;
};

static void race_put(struct race *r)
{
	if (--r->refs == 0)
		sk_free(r);
}

static void race_f_done(void *arg, int64_t v, int err)
{
	struct race *r = arg;
	if (!r->done) {
		r->done = true;
		if (r->cancel)
			sk_cancel_unsubscribe(&r->sub);
		else
			sk_timer_cancel(&r->timer);
		race_put(r);	/* the losing side's reference */
		if (err)
			sk_promise_set_error(r->p, err);
		else
			sk_promise_set_value(r->p, v);
	}
	race_put(r);
}

static void race_lose(struct race *r, int err)
{
	if (r->done)
		return;
	r->done = true;
	sk_promise_set_error(r->p, err);
	race_put(r);
}

static void race_timer(struct sk_timer *t)
{
	race_lose(t->arg, -ETIMEDOUT);
}

static void race_cancel(struct sk_cancel_sub *sub)
{
	struct race *r = (struct race *)((char *)sub - offsetof(struct race, sub));
	race_lose(r, -ECANCELED);
}

static sk_future race_start(sk_future f, uint64_t timeout_ns, struct sk_cancel *c)
{
	struct race *r;
	sk_future out;

	if (sk_future_available(f))
		return settle(f);
	if (c && c->requested) {
		sk_future_ignore(f);
		return sk_make_error(-ECANCELED);
	}
	r = sk_alloc(sizeof(*r));
	if (r)
		r->p = sk_promise_new();
	if (!r || !r->p) {
		sk_free(r);
		sk_future_ignore(f);
		return sk_make_error(-ENOMEM);
	}
	r->refs = 2;
	r->done = false;
	r->cancel = c;
	out = sk_promise_future(r->p);
	if (c) {
		r->sub.fn = race_cancel;
		sk_cancel_subscribe(c, &r->sub);
	} else {
		sk_timer_init(&r->timer, race_timer, r);
		if (sk_timer_arm(&r->timer, timeout_ns) < 0)
			race_lose(r, -ENOMEM);
	}
	on_done(f, race_f_done, r);
	return out;
}

sk_future sk_with_timeout(sk_future f, uint64_t timeout_ns)
{
	return race_start(f, timeout_ns, NULL);
}

sk_future sk_with_cancel(sk_future f, struct sk_cancel *c)
{
	return race_start(f, 0, c);
}

void sk_cancel_init(struct sk_cancel *c)
{
	c->subs = NULL;
	c->requested = false;
}

void sk_cancel_subscribe(struct sk_cancel *c, struct sk_cancel_sub *sub)
{
	if (c->requested) {
		sub->next = NULL;
		sub->pprev = NULL;
		sub->fn(sub);
		return;
	}
	sub->next = c->subs;
	sub->pprev = &c->subs;
	if (c->subs)
		c->subs->pprev = &sub->next;
	c->subs = sub;
}

void sk_cancel_unsubscribe(struct sk_cancel_sub *sub)
{
	if (!sub->pprev)
		return;
	*sub->pprev = sub->next;
	if (sub->next)
		sub->next->pprev = sub->pprev;
	sub->next = NULL;
	sub->pprev = NULL;
}

void sk_cancel_request(struct sk_cancel *c)
{
	if (c->requested)
		return;
	c->requested = true;
	while (c->subs) {
		struct sk_cancel_sub *sub = c->subs;
		sk_cancel_unsubscribe(sub);
		sub->fn(sub);
	}
}

/* ---- loops --------------------------------------------------------------- */

/*
 * One engine for do_until and repeat.  Iterations whose futures are ready
 * run in place; the loop moves to the heap only when it must wait (a
 * pending body future) or yield (its budget is spent).
 */
struct loop {
	struct sk_task task;	/* first: resumed as a task after a yield */
	bool (*stop)(void *arg);	/* NULL: repeat() mode */
	sk_future (*body)(void *arg);
	void *arg;
	struct sk_promise *p;
};

/* loop_drive()'s "the loop is waiting on the heap" (errors are negative). */
#define LOOP_SUSPENDED ((sk_future){ SK_FUT_FAILED, 1 })

static void loop_resume_task(struct sk_task *t);
static void loop_body_done(void *arg, int64_t v, int err);

/*
 * Run iterations until done or suspended.  @L is NULL while the loop still
 * lives on the caller's stack (first call); @spec holds its parameters.
 * Returns the loop's result when it ended without suspending.
 */
static sk_future loop_drive(struct loop *spec, struct loop *L)
{
	unsigned iter = 0;

	for (;;) {
		if (spec->stop && spec->stop(spec->arg))
			return sk_make_ready(0);
		sk_future f = spec->body(spec->arg);
		if (!sk_future_available(f)) {
			if (!L) {
				L = sk_alloc(sizeof(*L));
				if (L)
					*L = *spec;
				if (!L || !(L->p = sk_promise_new())) {
					sk_free(L);
					sk_future_ignore(f);
					return sk_make_error(-ENOMEM);
				}
				sk_future out = sk_promise_future(L->p);
				on_done(f, loop_body_done, L);
				return out;
			}
			on_done(f, loop_body_done, L);
			return LOOP_SUSPENDED;
		}
		int err;
		int64_t v = sk_future_get(f, &err);
		if (err)
			return sk_make_error(err);
		if (!spec->stop && v == SK_STOP)
			return sk_make_ready(0);
		if ((++iter & 63) == 0 && sk_need_preempt()) {
			if (!L) {
				L = sk_alloc(sizeof(*L));
				if (L)
					*L = *spec;
				if (!L || !(L->p = sk_promise_new())) {
					sk_free(L);
					return sk_make_error(-ENOMEM);
				}
				sk_future out = sk_promise_future(L->p);
				L->task.run = loop_resume_task;
				sk_task_schedule(&L->task);
				return out;
			}
			L->task.run = loop_resume_task;
			sk_task_schedule(&L->task);
			return LOOP_SUSPENDED;
		}
	}
}

/* A heap loop ran: finish it unless it suspended again. */
static void loop_step(struct loop *L)
{
	sk_future r = loop_drive(L, L);
	if (r.st == SK_FUT_FAILED && r.v == 1)
		return;
	sk_promise_forward(L->p, r);
	sk_free(L);
}

static void loop_resume_task(struct sk_task *t)
{
	loop_step((struct loop *)t);
}

static void loop_body_done(void *arg, int64_t v, int err)
{
	struct loop *L = arg;
	if (err) {
		sk_promise_set_error(L->p, err);
		sk_free(L);
		return;
	}
	if (!L->stop && v == SK_STOP) {
		sk_promise_set_value(L->p, 0);
		sk_free(L);
		return;
	}
	loop_step(L);
}

sk_future sk_do_until(bool (*stop)(void *arg), sk_future (*body)(void *arg),
		      void *arg)
{
	struct loop spec = { .stop = stop, .body = body, .arg = arg };
	return loop_drive(&spec, NULL);
}

sk_future sk_repeat(sk_future (*body)(void *arg), void *arg)
{
	struct loop spec = { .body = body, .arg = arg };
	return loop_drive(&spec, NULL);
}
