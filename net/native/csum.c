/*
 * csum.c - the Internet checksum (RFC 1071).
 *
 * Convention: a running sum is the one's complement sum of the message's
 * 16-bit words read big-endian (as nx_get16 reads them), kept in 32 bits
 * by folding.  nx_csum_fold() complements it into the value that
 * nx_put16() stores; a message whose sum includes a correct checksum folds
 * to 0.
 *
 * nx_csum_add() sums in native order, eight bytes at a time into a 64-bit
 * accumulator whose carries are folded back at the end (RFC 1071 section
 * 2: the sum is byte-order independent up to a final byte swap).
 * nx_csum_pkt() walks a chain: a piece that starts at an odd offset of the
 * message has its bytes in the other halves of the words, so its sum is
 * byte-swapped before it is added.
 */
#include <string.h>

#include "nx.h"

/* Fold a 64-bit native-order sum down to 16 bits. */
static inline uint32_t fold64(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

static inline uint32_t swap16(uint32_t v)
{
	return ((v & 0xff) << 8) | (v >> 8);
}

/* Sum of @len bytes at @p as big-endian words, folded to 16 bits. */
static uint32_t csum_part(const uint8_t *p, size_t len)
{
	uint64_t s = 0, s2 = 0;

	/* Two accumulators so consecutive adds do not wait on each other's
	 * carries; each 32-bit half added to a 64-bit sum cannot overflow
	 * before 2^32 words. */
	while (len >= 16) {
		uint64_t a, b;
		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		s += (a & 0xffffffffu) + (a >> 32);
		s2 += (b & 0xffffffffu) + (b >> 32);
		p += 16;
		len -= 16;
	}
	s += s2;
	if (len >= 8) {
		uint64_t a;
		memcpy(&a, p, 8);
		s += (a & 0xffffffffu) + (a >> 32);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t a;
		memcpy(&a, p, 4);
		s += a;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t a;
		memcpy(&a, p, 2);
		s += a;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* The odd last byte is the high half of a zero-padded word. */
		uint8_t w[2] = { p[0], 0 };
		uint16_t a;
		memcpy(&a, w, 2);
		s += a;
	}
	uint32_t r = fold64(s);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	r = swap16(r);
#endif
	return r;
}

/* Add a 16-bit partial sum to a running sum without overflowing 32 bits. */
static inline uint32_t add16(uint32_t sum, uint32_t v)
{
	return (sum & 0xffff) + (sum >> 16) + v;
}

uint32_t nx_csum_add(uint32_t sum, const void *p, size_t len)
{
	return add16(sum, csum_part(p, len));
}

uint32_t nx_csum_pkt(uint32_t sum, const struct sk_pkt *p, uint32_t off, uint32_t len)
{
	uint32_t done = 0;

	for (; p && len; p = p->next) {
		if (off >= p->len) {
			off -= p->len;
			continue;
		}
		uint32_t n = p->len - off;
		if (n > len)
			n = len;
		uint32_t s = csum_part(p->data + off, n);
		if (done & 1)
			s = swap16(s);
		sum = add16(sum, s);
		done += n;
		len -= n;
		off = 0;
	}
	return sum;
}

uint32_t nx_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

uint16_t nx_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
