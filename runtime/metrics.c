/*
 * metrics.c - the counter registry.  Values live in each reactor
 * (reactor_impl.h), written only by their shard; sums read them relaxed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "reactor_impl.h"
#include "skerry/metrics.h"
#include "skerry/options.h"

struct metric_def {
	char name[64];
	const char *help;
};

static struct metric_def defs[SK_METRICS_MAX];
static _Atomic int ndefs;
static atomic_flag reg_lock = ATOMIC_FLAG_INIT;	/* registration only, never the data path */

int sk__m_tasks = -1, sk__m_polls, sk__m_sleeps, sk__m_busy_ns, sk__m_sleep_ns,
    sk__m_timers_fired;

int sk_metric_find(const char *name)
{
	int n = atomic_load(&ndefs);
	for (int i = 0; i < n; i++)
		if (strcmp(defs[i].name, name) == 0)
			return i;
	return -ENOENT;
}

int sk_metric_register(const char *name, const char *help)
{
	int id;

	while (atomic_flag_test_and_set(&reg_lock))
		;
	id = sk_metric_find(name);
	if (id < 0) {
		id = atomic_load(&ndefs);
		if (id >= SK_METRICS_MAX) {
			id = -ENOSPC;
		} else {
			strncpy(defs[id].name, name, sizeof(defs[id].name) - 1);
			defs[id].help = help;
			atomic_store(&ndefs, id + 1);
		}
	}
	atomic_flag_clear(&reg_lock);
	return id;
}

void sk__metrics_builtin(void)
{
	if (sk__m_tasks >= 0)
		return;
	sk__m_polls = sk_metric_register("reactor_polls", "Poller rounds run");
	sk__m_sleeps = sk_metric_register("reactor_sleeps", "Times the reactor slept");
	sk__m_busy_ns = sk_metric_register("reactor_busy_ns", "Time spent running tasks and pollers");
	sk__m_sleep_ns = sk_metric_register("reactor_sleep_ns", "Time spent asleep");
	sk__m_timers_fired = sk_metric_register("timers_fired", "Timers that fired");
	sk__m_tasks = sk_metric_register("reactor_tasks", "Tasks run");
}

void sk_metric_add(int id, uint64_t n)
{
	struct sk_reactor *r = sk__reactor;
	if (r && id >= 0 && id < SK_METRICS_MAX)
		sk__counter_add(r, id, n);
}

uint64_t sk_metric_shard(int id, unsigned shard)
{
	struct sk_reactor *r = sk_reactor_of(shard);
	if (!r || id < 0 || id >= SK_METRICS_MAX)
		return 0;
	return atomic_load_explicit(&r->counters[id], memory_order_relaxed);
}

uint64_t sk_metric_total(int id)
{
	uint64_t sum = 0;
	for (unsigned s = 0; s < SK_MAX_SHARDS; s++)
		sum += sk_metric_shard(id, s);
	return sum;
}

const char *sk_metric_name(int id)
{
	return id >= 0 && id < atomic_load(&ndefs) ? defs[id].name : NULL;
}

const char *sk_metric_help(int id)
{
	return id >= 0 && id < atomic_load(&ndefs) ? defs[id].help : NULL;
}

int sk_metric_count(void)
{
	return atomic_load(&ndefs);
}
