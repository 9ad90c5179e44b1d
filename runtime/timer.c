/*
 * timer.c - per-shard timers on a binary min-heap.
 *
 * The heap holds pointers to the callers' sk_timer structs, ordered by
 * (deadline, seq); each timer keeps its slot so cancel and re-arm are
 * O(log n) without a search.  The timer poller fires only timers that were
 * due when it started and were armed before it started, so a callback that
 * re-arms its timer for "now" cannot trap the reactor in one poll.
 */
#include <errno.h>
#include <stdlib.h>

#include "platform.h"
#include "reactor_impl.h"
#include "skerry/alloc.h"
#include "skerry/future.h"
#include "skerry/log.h"

static inline bool before(const struct sk_timer *a, const struct sk_timer *b)
{
	return a->deadline < b->deadline ||
	       (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void place(struct sk_reactor *r, uint32_t i, struct sk_timer *t)
{
	r->heap[i] = t;
	t->slot = i + 1;
}

static void sift_up(struct sk_reactor *r, uint32_t i)
{
	struct sk_timer *t = r->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!before(t, r->heap[parent]))
			break;
		place(r, i, r->heap[parent]);
		i = parent;
	}
	place(r, i, t);
}

static void sift_down(struct sk_reactor *r, uint32_t i)
{
	struct sk_timer *t = r->heap[i];
	uint32_t n = r->heap_n;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(r->heap[c + 1], r->heap[c]))
			c++;
		if (!before(r->heap[c], t))
			break;
		place(r, i, r->heap[c]);
		i = c;
	}
	place(r, i, t);
}

static void heap_remove(struct sk_reactor *r, struct sk_timer *t)
{
	uint32_t i = t->slot - 1;
	struct sk_timer *last = r->heap[--r->heap_n];
	t->slot = 0;
	if (t->flags & SK_TIMER_BACKGROUND)
		r->heap_background--;
	if (last == t)
		return;
	place(r, i, last);
	if (i > 0 && before(last, r->heap[(i - 1) / 2]))
		sift_up(r, i);
	else
		sift_down(r, i);
}

void sk_timer_init(struct sk_timer *t, void (*cb)(struct sk_timer *t), void *arg)
{
	*t = (struct sk_timer){ .cb = cb, .arg = arg };
}

int sk_timer_arm_at(struct sk_timer *t, uint64_t deadline_ns)
{
	struct sk_reactor *r = sk__reactor;

	if (t->slot)
		heap_remove(r, t);
	if (r->heap_n == r->heap_cap) {
		uint32_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
		struct sk_timer **h = sk_realloc(r->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		r->heap = h;
		r->heap_cap = cap;
	}
	t->deadline = deadline_ns;
	t->seq = r->timer_seq++;
	if (t->flags & SK_TIMER_BACKGROUND)
		r->heap_background++;
	r->heap[r->heap_n++] = t;
	sift_up(r, r->heap_n - 1);
	return 0;
}

int sk_timer_arm(struct sk_timer *t, uint64_t delay_ns)
{
	t->period = 0;
	return sk_timer_arm_at(t, sk_plat_now_ns() + delay_ns);
}

int sk_timer_arm_periodic(struct sk_timer *t, uint64_t period_ns)
{
	if (period_ns == 0)
		return -EINVAL;
	t->period = period_ns;
	return sk_timer_arm_at(t, sk_plat_now_ns() + period_ns);
}

bool sk_timer_cancel(struct sk_timer *t)
{
	if (!t->slot)
		return false;
	heap_remove(sk__reactor, t);
	return true;
}

unsigned sk_timer_count(void)
{
	return sk__reactor ? sk__reactor->heap_n : 0;
}

unsigned sk_timer_count_foreground(void)
{
	return sk__reactor ? sk__reactor->heap_n - sk__reactor->heap_background : 0;
}

uint64_t sk__timer_next(struct sk_reactor *r)
{
	return r->heap_n ? r->heap[0]->deadline : UINT64_MAX;
}

bool sk__timer_pure_poll(void *arg)
{
	struct sk_reactor *r = arg;
	return r->heap_n && r->heap[0]->deadline <= sk_plat_now_ns();
}

bool sk__timer_poll(void *arg)
{
	struct sk_reactor *r = arg;
	uint64_t now, seq_limit;
	unsigned fired = 0;

	if (!r->heap_n)
		return false;
	now = sk_plat_now_ns();
	seq_limit = r->timer_seq;
	while (r->heap_n) {
		struct sk_timer *t = r->heap[0];
		if (t->deadline > now || t->seq >= seq_limit)
			break;
		heap_remove(r, t);
		if (t->period) {
			/* Keep the phase; skip periods we slept through. */
			uint64_t next = t->deadline + t->period;
			if (next <= now)
				next = now + t->period;
			if (sk_timer_arm_at(t, next) < 0)
				sk_log_error("timer: periodic timer dropped (-ENOMEM)");
		}
		t->cb(t);
		fired++;
	}
	if (fired)
		sk__counter_add(r, sk__m_timers_fired, fired);
	return fired > 0;
}

/*
 * Fire every STOP_EARLY timer.  The heap is searched again after each
 * callback rather than from a snapshot: a callback may cancel, free or
 * re-arm other timers.  O(n^2) in the worst case, once, at shutdown.
 */
void sk__timer_fire_stop_early(struct sk_reactor *r)
{
	uint64_t seq_limit = r->timer_seq;	/* not timers armed by callbacks */
	for (uint32_t i = 0; i < r->heap_n;) {
		struct sk_timer *t = r->heap[i];
		if ((t->flags & SK_TIMER_STOP_EARLY) && t->seq < seq_limit) {
			heap_remove(r, t);
			t->cb(t);
			i = 0;
		} else {
			i++;
		}
	}
}

void sk__timer_fini(struct sk_reactor *r)
{
	for (uint32_t i = 0; i < r->heap_n; i++)
		r->heap[i]->slot = 0;
	r->heap_n = 0;
	r->heap_background = 0;
	sk_free(r->heap);
	r->heap = NULL;
	r->heap_cap = 0;
}

/* ---- sk_sleep ------------------------------------------------------------ */

struct sleeper {
	struct sk_timer timer;
	struct sk_promise *p;
};

static void sleeper_fire(struct sk_timer *t)
{
	struct sleeper *s = t->arg;
	if (sk_reactor_stopping())
		sk_promise_set_error(s->p, -ECANCELED);
	else
		sk_promise_set_value(s->p, 0);
	sk_free(s);
}

sk_future sk_sleep(uint64_t ns)
{
	struct sleeper *s;
	sk_future f;

	if (sk_reactor_stopping())
		return sk_make_error(-ECANCELED);
	s = sk_alloc(sizeof(*s));
	if (!s)
		return sk_make_error(-ENOMEM);
	s->p = sk_promise_new();
	if (!s->p) {
		sk_free(s);
		return sk_make_error(-ENOMEM);
	}
	f = sk_promise_future(s->p);
	sk_timer_init(&s->timer, sleeper_fire, s);
	s->timer.flags = SK_TIMER_STOP_EARLY;
	if (sk_timer_arm(&s->timer, ns) < 0) {
		sk_promise_set_error(s->p, -ENOMEM);
		sk_free(s);
	}
	return f;
}
