/*
 * rss.c - the Toeplitz hash a NIC computes to spread flows over queues.
 *
 * Roadmap: sk_rss_key is the key skerry programs into devices; rss_init()
 * turns it into one table per input byte (12 x 256 words, 12 KiB) so that
 * sk_rss_hash() costs twelve loads and XORs per received packet instead of
 * a loop over 96 bits.
 *
 * Toeplitz: for every set bit i of the input (most significant bit of the
 * first byte is bit 0), XOR in the 32 key bits starting at key bit i.  The
 * input is what the NIC sees on the wire, in network byte order: source
 * address, destination address, then source and destination port.
 */
#include "skerry/netdev.h"

/* The Microsoft RSS verification key (also the default of most NICs). */
const uint8_t sk_rss_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

#define RSS_INPUT_MAX 12	/* IPv4 addresses + ports */

static uint32_t rss_table[RSS_INPUT_MAX][256];

/* Key bits k .. k+31 as one word. */
static uint32_t rss_window(unsigned k)
{
	const uint8_t *b = &sk_rss_key[k / 8];
	uint32_t w = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		     (uint32_t)b[2] << 8 | b[3];
	unsigned sh = k % 8;
	return sh ? w << sh | b[4] >> (8 - sh) : w;
}

/* The table is a pure function of the key: build it before main() so that
 * no shard ever races on it. */
__attribute__((constructor)) static void rss_init(void)
{
	for (unsigned j = 0; j < RSS_INPUT_MAX; j++) {
		for (unsigned v = 0; v < 256; v++) {
			uint32_t h = 0;
			for (unsigned bit = 0; bit < 8; bit++)
				if (v & (0x80u >> bit))
					h ^= rss_window(j * 8 + bit);
			rss_table[j][v] = h;
		}
	}
}

static inline uint32_t rss_word(uint32_t h, unsigned j, uint32_t x)
{
	return h ^ rss_table[j][x >> 24] ^ rss_table[j + 1][(x >> 16) & 0xff] ^
	       rss_table[j + 2][(x >> 8) & 0xff] ^ rss_table[j + 3][x & 0xff];
}

uint32_t sk_rss_hash(uint32_t src_ip, uint32_t dst_ip, uint16_t src_port,
		     uint16_t dst_port, bool l4)
{
	uint32_t h = rss_word(0, 0, src_ip);
	h = rss_word(h, 4, dst_ip);
	if (l4)
		h = rss_word(h, 8, (uint32_t)src_port << 16 | dst_port);
	return h;
}
