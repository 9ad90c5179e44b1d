/*
 * eth.c - Ethernet II framing.
 *
 * nx_eth_input() checks a received frame (long enough, addressed to our
 * MAC or broadcast), strips the 14-byte header and hands the payload to
 * ARP or IPv4.  Multicast, other hosts' frames (promiscuous devices, a
 * bridge flooding) and unknown EtherTypes (IPv6, VLAN tags: we configure
 * none) are dropped and counted.  nx_eth_output() prepends the header in
 * the headroom every packet of the stack reserves and queues the frame.
 */
#include <string.h>

#include "nx.h"

const uint8_t nx_mac_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };


void nx_eth_input(struct nx_stack *st, struct sk_pkt *p)
{
	const uint8_t *h = p->pkt_len >= NX_ETH_HLEN ? nx_pull(p, NX_ETH_HLEN) : NULL;

	if (!h) {
		NX_INC(st, eth_short);
		goto drop;
	}
	if (memcmp(h, st->mac, 6) != 0 && memcmp(h, nx_mac_bcast, 6) != 0) {
		/* Other hosts' unicast, and multicast (bit 0 of the first
		 * byte): we join no group. */
		NX_INC(st, eth_not_ours);
		goto drop;
	}
	uint16_t type = nx_get16(h + 12);
	p->l2_len = NX_ETH_HLEN;
	switch (type) {
	case NX_ETH_P_IP:
		sk_pkt_adj(p, NX_ETH_HLEN);
		nx_ip_input(st, p);
		return;
	case NX_ETH_P_ARP:
		sk_pkt_adj(p, NX_ETH_HLEN);
		nx_arp_input(st, p);
		return;
	default:
		NX_INC(st, eth_unknown_type);
		goto drop;
	}
drop:
	sk_pkt_free(p);
}

void nx_eth_output(struct nx_stack *st, struct sk_pkt *p, const uint8_t *dst_mac,
		   uint16_t type)
{
	uint8_t *h = sk_pkt_prepend(p, NX_ETH_HLEN);

	if (!h) {
		/* Every packet the stack builds reserves headroom; only a
		 * wrapped foreign buffer could lack it. */
		NX_INC(st, tx_dropped);
		sk_pkt_free(p);
		return;
	}
	memcpy(h, dst_mac, 6);
	memcpy(h + 6, st->mac, 6);
	nx_put16(h + 12, type);
	p->l2_len = NX_ETH_HLEN;
	nx_tx(st, p);
}
