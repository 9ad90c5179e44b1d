/*
 * tcp_out.c - building and sending TCP segments.
 *
 * Roadmap:
 *   tx_kick / input / timers -> tcp_mark_dirty (per-instance list)
 *   nx_tcp_output (poller, once per round) -> tcp_output_conn per dirty
 *     connection: SYN or SYN-ACK; data from s->out at snd_nxt - snd_una,
 *     MSS-sized, within min(cwnd, snd_wnd); FIN once the output is out;
 *     a pure ACK / window update only if nothing else carried one.
 *   tcp_emit: header + options + payload copied from s->out -> checksum
 *     -> nx_ip_output.
 *
 * Batching is the point: the input path only notes that an ACK is owed
 * (or arms the delayed-ACK timer), so when the app answers in the next
 * round the ACK rides on its reply.
 */
#include <errno.h>
#include <string.h>

#include "tcp.h"

/* --- receive window ----------------------------------------------------- */

/* Room for input: what the socket may hold minus what the app has not
 * consumed (input nobody will read any more is discarded, so full room). */
uint32_t tcp_rcv_space(const struct tcp_conn *c)
{
	size_t lim = c->s.rx_limit, used = c->s.in.bytes;
	size_t cap = (size_t)65535 << c->rcv_wscale;
	size_t space;

	if (c->owner == OWN_NONE || c->owner == OWN_CLOSING || c->s.eof)
		used = 0;
	space = used >= lim ? 0 : lim - used;
	return (uint32_t)(space < cap ? space : cap);
}

/* RFC 1122 4.2.3.3: move the right edge only by a worthwhile amount. */
static uint32_t sws_threshold(const struct tcp_conn *c)
{
	uint32_t half = (uint32_t)(c->s.rx_limit / 2);
	return min32(half ? half : 1, c->rcv_mss);
}

static uint32_t cur_window(const struct tcp_conn *c)
{
	return SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
}

/* Would a window update be worth a segment of its own? */
bool tcp_window_update_due(const struct tcp_conn *c)
{
	uint32_t space = tcp_rcv_space(c), cur = cur_window(c);

	return space > cur && space - cur >= sws_threshold(c) &&
	       cur <= c->s.rx_limit / 2;
}

/* The window field for a segment going out now; records the edge. */
static uint16_t window_field(struct tcp_conn *c)
{
	uint32_t space = tcp_rcv_space(c), cur = cur_window(c), wnd, field;
	unsigned ws = c->rcv_wscale;

	/* Never shrink what we offered (RFC 9293 3.8.6.2.2). */
	wnd = space > cur && space - cur >= sws_threshold(c) ? space : cur;
	field = (wnd + (1u << ws) - 1) >> ws;
	if (field > 65535)
		field = 65535;
	c->rcv_adv = c->rcv_nxt + (field << ws);
	return (uint16_t)field;
}

/* --- the send buffer ---------------------------------------------------- */

/* Copy @len bytes from offset @off of the output queue. */
static void out_copy(struct tcp_conn *c, size_t off, uint32_t len, uint8_t *dst)
{
	struct sk_seg *seg = c->cur_seg;
	size_t base = c->cur_off;

	if (!seg || off < base) {
		seg = c->s.out.head;
		base = 0;
	}
	while (off >= base + seg->len) {
		base += seg->len;
		seg = seg->next;
	}
	/* Sending walks forward: remember where this segment starts. */
	c->cur_seg = seg;
	c->cur_off = base;
	while (len) {
		size_t in = off - base;
		uint32_t n = min32(len, (uint32_t)(seg->len - in));
		memcpy(dst, seg->p + in, n);
		dst += n;
		len -= n;
		off += n;
		base += seg->len;
		seg = seg->next;
	}
}

void tcp_tx_done(struct tcp_conn *c, size_t n)
{
	if (n > c->s.out.bytes)
		n = c->s.out.bytes;
	c->cur_seg = NULL;
	c->cur_off = 0;
	if (n)
		sk__sock_tx_done(&c->s, n);
}

/* --- emitting ----------------------------------------------------------- */

/*
 * One segment from lport to rip:rport.  With @c, payload @len bytes from
 * offset @off of its output.  0, -ENOMEM, -ENETUNREACH.
 */
static int tcp_emit(struct nx_stack *st, struct tcp_conn *c, uint32_t rip,
		    uint16_t lport, uint16_t rport, uint32_t seq, uint32_t ack,
		    uint8_t flags, uint16_t wnd, const uint8_t *opts, unsigned olen,
		    size_t off, uint32_t len)
{
	struct sk_pkt *p = sk_pkt_alloc();
	unsigned hlen = NX_TCP_HLEN + olen;
	uint8_t *h;
	uint32_t sum;

	if (!p) {
		NX_INC(st, tx_dropped);
		return -ENOMEM;
	}
	h = sk_pkt_append(p, hlen + len);
	if (!h) {
		sk_pkt_free(p);
		NX_INC(st, tx_dropped);
		return -ENOMEM;
	}
	nx_put16(h, lport);
	nx_put16(h + 2, rport);
	nx_put32(h + 4, seq);
	nx_put32(h + 8, ack);
	h[12] = (uint8_t)(hlen / 4) << 4;
	h[13] = flags;
	nx_put16(h + 14, wnd);
	nx_put16(h + 16, 0);
	nx_put16(h + 18, 0);
	if (olen)
		memcpy(h + NX_TCP_HLEN, opts, olen);
	if (len)
		out_copy(c, off, len, h + hlen);
	sum = nx_csum_pseudo(st->ip, rip, NX_IPPROTO_TCP, (uint16_t)(hlen + len));
	sum = nx_csum_add(sum, h, hlen + len);
	nx_put16(h + 16, nx_csum_fold(sum));
	NX_INC(st, tcp_segs_out);
	if (flags & TH_RST)
		NX_INC(st, tcp_rst_sent);
	return nx_ip_output(st, p, rip, NX_IPPROTO_TCP, true);
}

/* A segment of connection @c; an ACK in it settles what we owed. */
static int xmit(struct tcp_conn *c, uint32_t seq, uint8_t flags, size_t off,
		uint32_t len)
{
	uint8_t opts[8];
	unsigned olen = 0;
	uint16_t wnd;
	uint32_t ack = 0;

	if (flags & TH_SYN) {
		/* MSS always; window scale in a SYN, and in a SYN-ACK only
		 * when the peer offered it (RFC 7323 1.3). */
		opts[0] = 2;
		opts[1] = 4;
		nx_put16(opts + 2, tcp_our_mss(c->st));
		olen = 4;
		if (!(flags & TH_ACK) || c->ws_ok) {
			opts[4] = 1;
			opts[5] = 3;
			opts[6] = 3;
			opts[7] = c->rcv_wscale;
			olen = 8;
		}
		/* The window in a SYN is never scaled. */
		uint32_t space = tcp_rcv_space(c);
		wnd = (uint16_t)min32(space, 65535);
		c->rcv_adv = c->rcv_nxt + wnd;
	} else {
		wnd = window_field(c);
	}
	if (flags & TH_ACK) {
		ack = c->rcv_nxt;
		c->ack_now = false;
		c->last_ack = c->rcv_nxt;
		sk_timer_cancel(&c->delack);
	}
	return tcp_emit(c->st, c, c->rip, c->lport, c->rport, seq, ack, flags, wnd,
			opts, olen, off, len);
}

/*
 * A pure ACK carries the highest sequence sent, not snd_nxt: after a
 * timeout snd_nxt went back and the peer would find it old.  But never
 * past the peer's window (what we sent beyond it may have been dropped
 * there, and a zero-window peer accepts only its rcv_nxt) - Linux's
 * tcp_acceptable_seq.
 */
void tcp_send_ack(struct tcp_conn *c)
{
	uint32_t seq = c->snd_max, end = c->snd_una + c->snd_wnd;

	if (SEQ_GT(seq, end))
		seq = SEQ_GT(c->snd_nxt, end) ? end : c->snd_nxt;
	xmit(c, seq, TH_ACK, 0, 0);
}

void tcp_send_rst(struct tcp_conn *c)
{
	xmit(c, c->snd_max, TH_RST | TH_ACK, 0, 0);
}

/* RFC 9293 3.10.7.1: the reply to a segment for no connection. */
void tcp_reply_rst(struct nx_stack *st, uint32_t src, uint32_t dst,
		   const struct tcp_seg *sg)
{
	(void)dst;
	if (sg->flags & TH_RST)
		return;	/* never answer a reset */
	if (sg->flags & TH_ACK) {
		tcp_emit(st, NULL, src, sg->dport, sg->sport, sg->ack, 0, TH_RST, 0,
			 NULL, 0, 0, 0);
	} else {
		uint32_t len = sg->len + !!(sg->flags & TH_SYN) + !!(sg->flags & TH_FIN);
		tcp_emit(st, NULL, src, sg->dport, sg->sport, 0, sg->seq + len,
			 TH_RST | TH_ACK, 0, NULL, 0, 0, 0);
	}
}

/* Data segment at @seq: accounting shared by new and resent data. */
static void data_sent(struct tcp_conn *c, uint32_t seq, uint32_t len)
{
	if (SEQ_LT(seq, c->snd_max)) {
		NX_INC(c->st, tcp_retransmits);
		c->rtt_timing = false;	/* Karn: no samples from resends */
	} else if (!c->rtt_timing) {
		c->rtt_timing = true;
		c->rtt_seq = seq;
		c->rtt_start = sk_now_ns();
	}
	if (SEQ_GT(seq + len, c->snd_max))
		c->snd_max = seq + len;
}

/* Resend the first unacknowledged segment (fast retransmit, partial ACK). */
void tcp_retransmit_una(struct tcp_conn *c)
{
	uint32_t len;

	if (c->s.err)
		return;
	len = min32(c->mss, (uint32_t)min32((uint32_t)c->s.out.bytes,
					   c->snd_max - c->snd_una));
	if (len) {
		data_sent(c, c->snd_una, len);
		xmit(c, c->snd_una, TH_ACK | TH_PSH, 0, len);
	} else if (c->fin_sent && !c->fin_acked) {
		NX_INC(c->st, tcp_retransmits);
		xmit(c, c->fin_seq, TH_FIN | TH_ACK, 0, 0);
	}
	tcp_rtx_restart(c);
}

/* Zero-window probe: an old sequence number makes the peer answer with
 * its current window without us committing a byte. */
void tcp_persist_probe(struct tcp_conn *c)
{
	NX_INC(c->st, tcp_persist_probes);
	xmit(c, c->snd_una - 1, TH_ACK, 0, 0);
}

/* An already acknowledged sequence number: the peer answers with an ACK. */
void tcp_keepalive_probe(struct tcp_conn *c)
{
	xmit(c, c->snd_una - 1, TH_ACK, 0, 0);
}

static bool may_send_data(const struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
	case TCP_FIN_WAIT_1:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		return !c->s.err;
	default:
		return false;
	}
}

static void send_data(struct tcp_conn *c)
{
	for (;;) {
		uint32_t inflight = c->snd_nxt - c->snd_una;
		size_t queued = c->s.out.bytes;
		uint32_t wnd = min32(c->cwnd, c->snd_wnd), unsent, len;
		uint8_t flags = TH_ACK;

		if (c->snd_wnd == 0 && queued) {
			/* RFC 9293 3.8.6.1, RFC 1122 4.2.2.17: a closed window
			 * is probed, whatever is in flight (a peer that shrank
			 * its window dropped that). */
			tcp_persist_enter(c);
			return;
		}
		if (inflight >= queued)
			return;
		unsent = (uint32_t)(queued - inflight);
		if (inflight >= wnd)
			return;
		len = min32(min32(c->mss, wnd - inflight), unsent);
		/* Sender SWS avoidance (RFC 1122 4.2.3.4) without Nagle: a
		 * runt only when nothing is in flight to clock more out. */
		if (len < c->mss && len < unsent && inflight > 0)
			return;
		if (len == unsent)
			flags |= TH_PSH;
		data_sent(c, c->snd_nxt, len);
		xmit(c, c->snd_nxt, flags, inflight, len);
		c->snd_nxt += len;
		if (c->persist) {
			c->persist = false;
			sk_timer_cancel(&c->rtx);
		}
		tcp_rtx_arm(c);
	}
}

static void send_fin(struct tcp_conn *c)
{
	uint32_t data_end = c->snd_una + (uint32_t)c->s.out.bytes;

	if (!c->fin_queued || c->fin_acked || c->s.err || c->snd_nxt != data_end)
		return;
	if (c->fin_sent)
		NX_INC(c->st, tcp_retransmits);
	c->fin_seq = c->snd_nxt;
	c->fin_sent = true;
	xmit(c, c->snd_nxt, TH_FIN | TH_ACK, 0, 0);
	c->snd_nxt++;
	if (SEQ_GT(c->snd_nxt, c->snd_max))
		c->snd_max = c->snd_nxt;
	tcp_rtx_arm(c);
}

void tcp_output_conn(struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_CLOSED:
	case TCP_LISTEN:
		return;
	case TCP_SYN_SENT:
		if (c->synack_now) {
			c->synack_now = false;
			if (!c->retries)
				c->rtt_start = sk_now_ns();
			int r = xmit(c, c->iss, TH_SYN, 0, 0);
			c->snd_nxt = c->snd_max = c->iss + 1;
			if (r == -ENETUNREACH) {
				tcp_fail(c, r);
				return;
			}
			tcp_rtx_arm(c);
		}
		return;
	case TCP_SYN_RECEIVED:
		if (c->synack_now || c->ack_now) {
			c->synack_now = false;
			xmit(c, c->iss, TH_SYN | TH_ACK, 0, 0);
			c->snd_nxt = c->snd_max = c->iss + 1;
			tcp_rtx_arm(c);
		}
		return;
	default:
		break;
	}
	if (may_send_data(c)) {
		send_data(c);
		if (c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING ||
		    c->state == TCP_LAST_ACK)
			send_fin(c);
	}
	if (c->ack_now)
		tcp_send_ack(c);
}

void nx_tcp_output(struct nx_stack *st)
{
	struct nx_tcp *t = st->tcp;

	while (t->dirty) {
		struct tcp_conn *c = t->dirty;
		t->dirty = c->dnext;
		if (t->dirty)
			t->dirty->dprev = &t->dirty;
		c->dnext = NULL;
		c->dprev = NULL;
		tcp_output_conn(c);
	}
}
