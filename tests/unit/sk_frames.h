/*
 * sk_frames.h - hand-built frames for the network tests: big-endian
 * fields, a reference Internet checksum (RFC 1071, byte by byte, written
 * apart from the stack's own so that each checks the other), Ethernet and
 * ARP.  Headers only of the wire formats: the tests that use it build the
 * rest themselves.
 */
#ifndef SK_FRAMES_H
#define SK_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void fr_put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void fr_put32(uint8_t *p, uint32_t v)
{
	fr_put16(p, v >> 16);
	fr_put16(p + 2, v);
}

static inline uint32_t fr_get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t fr_get32(const uint8_t *p)
{
	return fr_get16(p) << 16 | fr_get16(p + 2);
}

/* Add @n bytes at @p to the running sum @s (an odd last byte is padded). */
static inline uint32_t fr_sum(uint32_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)p[i] << 8 | (i + 1 < n ? p[i + 1] : 0);
	return s;
}

/* Fold and complement: the value to store; 0 over a correct message. */
static inline uint16_t fr_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The TCP/UDP pseudo-header's sum. */
static inline uint32_t fr_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

/* Ethernet header at @f; its length (14). */
static inline size_t fr_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	fr_put16(f + 12, type);
	return 14;
}

/* An Ethernet + ARP (IPv4 over Ethernet) frame at @f; its length (42). */
static inline size_t fr_arp(uint8_t *f, const uint8_t *edst, const uint8_t *esrc, uint16_t op,
			    const uint8_t *sha, uint32_t spa, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = f + fr_eth(f, edst, esrc, 0x0806);

	fr_put16(a, 1);
	fr_put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	fr_put16(a + 6, op);
	memcpy(a + 8, sha, 6);
	fr_put32(a + 14, spa);
	memcpy(a + 18, tha, 6);
	fr_put32(a + 24, tpa);
	return 42;
}

#endif /* SK_FRAMES_H */
