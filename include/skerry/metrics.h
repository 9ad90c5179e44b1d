/*
 * skerry/metrics.h - per-shard counters, summed on demand.
 *
 * Each shard increments its own copy of a counter (no atomic RMW, no shared
 * cache line); readers on any thread sum the copies.  Counters are
 * registered by name, before or after the shards start.
 */
#ifndef SKERRY_METRICS_H
#define SKERRY_METRICS_H

#include <stdint.h>

#define SK_METRICS_MAX 128

/* Register (or find) counter @name.  Returns its id, or -ENOSPC. */
int sk_metric_register(const char *name, const char *help);
/* Add @n to counter @id on the calling shard (no-op outside shards). */
void sk_metric_add(int id, uint64_t n);
/* Counter @id of one shard / summed over all shards. */
uint64_t sk_metric_shard(int id, unsigned shard);
uint64_t sk_metric_total(int id);
/* Id of counter @name, or -ENOENT. */
int sk_metric_find(const char *name);
/* Name and help of counter @id, or NULL. */
const char *sk_metric_name(int id);
const char *sk_metric_help(int id);
/* Number of registered counters (ids are 0..n-1). */
int sk_metric_count(void);

#endif /* SKERRY_METRICS_H */
