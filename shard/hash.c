/*
 * hash.c - sk_hash64: a small multiply-xorshift hash for key -> shard.
 * Not cryptographic; good avalanche, 8 bytes per step.
 */
#include <string.h>

#include "skerry/shard.h"

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t sk_hash64(const void *key, size_t len, uint64_t seed)
{
	const unsigned char *p = key;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);

	while (len >= 8) {
		uint64_t k;
		memcpy(&k, p, 8);
		h = mix(h ^ k) + 0x9e3779b97f4a7c15ull;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t k = 0;
		memcpy(&k, p, len);
		h = mix(h ^ k ^ ((uint64_t)len << 56));
	}
	return mix(h);
}
