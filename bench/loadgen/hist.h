/*
 * hist.h - a log-linear latency histogram (nanoseconds).
 *
 * Values below 32 have a bucket each; above, every power of two is split
 * into 32 equal buckets, so a bucket is at most ~3% wide whatever the
 * magnitude - the same idea as HdrHistogram with 5 significant bits.
 * Adding is a count-leading-zeros and an increment: cheap enough to run
 * for every response.  Histograms of several shards merge by adding
 * buckets.
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values are clamped to 2^40 ns (18 minutes): far above any run. */
#define HIST_MAX_EXP 40
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	if (v >= (1ull << HIST_MAX_EXP))
		v = (1ull << HIST_MAX_EXP) - 1;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);	/* e >= HIST_SUB_BITS */
	return ((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) - HIST_SUB);
}

/* The largest value that falls into bucket @i. */
static inline uint64_t hist_upper(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned e = (i >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
	uint64_t width = 1ull << (e - HIST_SUB_BITS);
	return ((uint64_t)(HIST_SUB + (i & (HIST_SUB - 1))) << (e - HIST_SUB_BITS)) + width - 1;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static inline void hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->n += h->n;
	if (h->max > into->max)
		into->max = h->max;
}

/* The value at quantile @q (0..1): the upper edge of its bucket, capped at
 * the largest value seen; 0 for an empty histogram. */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return hist_upper(i) < h->max ? hist_upper(i) : h->max;
	}
	return h->max;
}

#endif /* LG_HIST_H */
