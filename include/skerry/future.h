/*
 * skerry/future.h - futures, promises and continuations.
 *
 * A future is a 16-byte value that is either ready (holding an int64 value or
 * a negative errno) or pending (pointing at a state block that a promise, or
 * an earlier continuation, will resolve).  Ready futures live entirely in
 * registers: sk_future_then() on one calls the continuation directly and
 * allocates nothing.  Only a continuation attached to a pending future costs
 * an allocation (one state block for the future it returns), from the shard
 * allocator.
 *
 * Rules, as in Seastar:
 *  - every future is consumed exactly once: by then/catch/then_wrapped/
 *    finally, by sk_future_ignore(), or by reading a ready future;
 *  - a failed future skips value continuations (then) until an error
 *    handler (catch, then_wrapped) takes it;
 *  - continuations of pending futures run later, as reactor tasks, on the
 *    shard that attached them; futures never cross shards (sk_submit_to()
 *    carries results between shards).
 *
 * Values are int64_t; pointers travel with sk_make_ready_ptr()/sk_future_ptr().
 */
#ifndef SKERRY_FUTURE_H
#define SKERRY_FUTURE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sk_fstate;

typedef struct sk_future {
	struct sk_fstate *st;	/* NULL: ready value; SK_FUT_FAILED: ready error */
	int64_t v;		/* the value, or the negative errno */
} sk_future;

#define SK_FUT_FAILED ((struct sk_fstate *)(uintptr_t)1)

/* Two registers: returned in rax:rdx on x86-64, never through memory. */
_Static_assert(sizeof(sk_future) == 16, "sk_future must stay 16 bytes");

#define SK_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SK_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- making futures ------------------------------------------------------ */

static inline sk_future sk_make_ready(int64_t v)
{
	return (sk_future){ NULL, v };
}

static inline sk_future sk_make_ready_ptr(void *p)
{
	return (sk_future){ NULL, (int64_t)(intptr_t)p };
}

/* @err is a negative errno (a positive one is negated, 0 becomes -EIO). */
static inline sk_future sk_make_error(int err)
{
	return (sk_future){ SK_FUT_FAILED, err > 0 ? -err : (err ? err : -EIO) };
}

/* ---- inspecting futures -------------------------------------------------- */

/* True if the result is known now (ready, or a resolved pending state). */
bool sk_future_available(sk_future f);
/* True if available and failed. */
bool sk_future_failed(sk_future f);
/*
 * Consume an available future: returns its value and stores 0 in *err, or
 * returns 0 and stores the negative errno in *err.  Calling it on a future
 * that is not available is a bug (asserted).
 */
int64_t sk_future_get(sk_future f, int *err);

static inline void *sk_future_ptr_value(int64_t v)
{
	return (void *)(intptr_t)v;
}

/* ---- continuations ------------------------------------------------------- */

/* Runs on success; receives the value; returns the next future. */
typedef sk_future (*sk_then_fn)(void *arg, int64_t value);
/* Runs on failure; receives the negative errno; returns the next future. */
typedef sk_future (*sk_catch_fn)(void *arg, int err);
/* Runs either way; err is 0 on success, value is 0 on failure. */
typedef sk_future (*sk_wrapped_fn)(void *arg, int64_t value, int err);
/* Runs either way; the result passes through unchanged. */
typedef void (*sk_finally_fn)(void *arg);

sk_future sk__then_pending(sk_future f, int kind, void *fn, void *arg);
enum { SK__K_THEN = 1, SK__K_CATCH, SK__K_WRAPPED, SK__K_FINALLY };

/*
 * Chain fn(arg, value) after @f.  Ready value: fn runs now, its future is
 * returned.  Ready error: returned as it is, fn never runs.  Pending: returns
 * a pending future for fn's result (or sk_make_error(-ENOMEM)).
 */
static inline sk_future sk_future_then(sk_future f, sk_then_fn fn, void *arg)
{
	if (SK_LIKELY(f.st == NULL))
		return fn(arg, f.v);
	if (f.st == SK_FUT_FAILED)
		return f;
	return sk__then_pending(f, SK__K_THEN, (void *)fn, arg);
}

/* Chain an error handler: runs only if @f fails; values pass through. */
static inline sk_future sk_future_catch(sk_future f, sk_catch_fn fn, void *arg)
{
	if (SK_LIKELY(f.st == NULL))
		return f;
	if (f.st == SK_FUT_FAILED)
		return fn(arg, (int)f.v);
	return sk__then_pending(f, SK__K_CATCH, (void *)fn, arg);
}

/* Chain fn(arg, value, err) after @f whatever its outcome. */
static inline sk_future sk_future_then_wrapped(sk_future f, sk_wrapped_fn fn,
					       void *arg)
{
	if (f.st == NULL)
		return fn(arg, f.v, 0);
	if (f.st == SK_FUT_FAILED)
		return fn(arg, 0, (int)f.v);
	return sk__then_pending(f, SK__K_WRAPPED, (void *)fn, arg);
}

/* Run fn(arg) when @f completes; the returned future has @f's result. */
static inline sk_future sk_future_finally(sk_future f, sk_finally_fn fn,
					  void *arg)
{
	if (f.st == NULL || f.st == SK_FUT_FAILED) {
		fn(arg);
		return f;
	}
	return sk__then_pending(f, SK__K_FINALLY, (void *)fn, arg);
}

/* Consume @f without looking at its result (its state is freed when done). */
void sk_future_ignore(sk_future f);

/*
 * Terminal continuation: call fn(arg, value, err) when @f completes (now, if
 * it is available).  Returns nothing and allocates nothing.
 */
void sk_future_on_done(sk_future f, void (*fn)(void *arg, int64_t value, int err),
		       void *arg);

/* ---- promises ------------------------------------------------------------ */

/* The producer side.  Resolve it exactly once; it is gone afterwards. */
struct sk_promise;

/* A new promise, or NULL (-ENOMEM). */
struct sk_promise *sk_promise_new(void);
/* The promise's future; take it exactly once. */
sk_future sk_promise_future(struct sk_promise *p);
void sk_promise_set_value(struct sk_promise *p, int64_t v);
/* @err: negative errno. */
void sk_promise_set_error(struct sk_promise *p, int err);
/* Resolve @p with the outcome of @f (now or when @f completes). */
void sk_promise_forward(struct sk_promise *p, sk_future f);

/* ---- combinators --------------------------------------------------------- */

/*
 * Wait for all @n futures in @fs.  When every one has completed, each fs[i]
 * holds its ready result (read it with sk_future_get) and the returned future
 * resolves with @n, or with the error of the lowest-indexed failed future.
 * @fs must stay valid until then.  Allocates one block when any is pending.
 */
sk_future sk_when_all(sk_future *fs, unsigned n);

/*
 * @f's result, or -ETIMEDOUT if @f has not completed @timeout_ns from now.
 * @f's late result is discarded.
 */
sk_future sk_with_timeout(sk_future f, uint64_t timeout_ns);

/* Cancellation: one source, any number of waiters. */
struct sk_cancel_sub {
	struct sk_cancel_sub *next, **pprev;
	void (*fn)(struct sk_cancel_sub *sub);
};
struct sk_cancel {
	struct sk_cancel_sub *subs;
	bool requested;
};
void sk_cancel_init(struct sk_cancel *c);
/* Fire every waiter once; later waiters see the request at once. */
void sk_cancel_request(struct sk_cancel *c);
static inline bool sk_cancel_requested(const struct sk_cancel *c)
{
	return c->requested;
}
/* Low level: call sub->fn when @c fires (now, if it already has). */
void sk_cancel_subscribe(struct sk_cancel *c, struct sk_cancel_sub *sub);
void sk_cancel_unsubscribe(struct sk_cancel_sub *sub);

/*
 * @f's result, or -ECANCELED once @c is requested, whichever comes first.
 * @c must outlive the returned future.
 */
sk_future sk_with_cancel(sk_future f, struct sk_cancel *c);

/*
 * Loops.  sk_do_until: while !stop(arg), run body(arg) and wait for its
 * future; resolves with 0 when stop() says so, or with the first error.
 * sk_repeat: run body(arg) until its future's value is SK_STOP (or an
 * error).  Ready iterations run in place; the loop yields to the reactor when
 * its time budget is spent, so a loop never starves other tasks.
 */
#define SK_CONTINUE 0
#define SK_STOP 1
sk_future sk_do_until(bool (*stop)(void *arg), sk_future (*body)(void *arg),
		      void *arg);
sk_future sk_repeat(sk_future (*body)(void *arg), void *arg);

/* A future that resolves (with 0) after the other ready tasks have run. */
sk_future sk_yield(void);

#endif /* SKERRY_FUTURE_H */
