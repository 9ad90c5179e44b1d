/*
 * tcp_out.c - building and sending TCP segments.
 *
 * Roadmap:
 *   tx_kick / input / timers -> tcp_mark_dirty (per-instance list)
 *   nx_tcp_output (poller, once per round) -> tcp_output_conn per dirty
 *     connection: SYN or SYN-ACK; data from s->out at snd_nxt - snd_una,
 *     MSS-sized, within min(cwnd, snd_wnd); FIN once the output is out;
 *     a pure ACK / window update only if nothing else carried one.
 *     With SACK information (RFC 6675): send_data_sack - lost holes
 *     first, then snd_nxt skipping SACKed ranges, while pipe < cwnd.
 *   SACK scoreboard: tcp_sack_add / tcp_sack_prune (from tcp_in.c),
 *     IsLost (lost_edge), SetPipe (sack_pipe), loss detection and
 *     recovery entry (tcp_sack_loss_check, tcp_sack_enter_recovery).
 *   tcp_emit: header + options (SACK blocks while the reassembly queue
 *     holds data) + payload copied from s->out -> checksum
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

/* --- SACK scoreboard (RFC 6675) ---------------------------------------- */

/* End of the data in the send buffer (our FIN, if any, sits there). */
static uint32_t data_end(const struct tcp_conn *c)
{
	return c->snd_una + (uint32_t)c->s.out.bytes;
}

void tcp_sack_clear(struct tcp_conn *c)
{
	c->nsacked = 0;
}

/* Merge [s, e) into the sorted, disjoint ranges.  Full: the highest range
 * goes (a new highest one is not taken) - what we forget we may resend
 * needlessly, never fail to send. */
void tcp_sack_add(struct tcp_conn *c, uint32_t s, uint32_t e)
{
	struct tcp_sack_blk *b = c->sacked;
	unsigned n = c->nsacked, i, j;

	for (i = 0; i < n && SEQ_LT(b[i].end, s); i++)
		;
	for (j = i; j < n && SEQ_LEQ(b[j].start, e); j++)
		;
	if (j > i) {
		/* Overlaps or touches b[i..j-1]: one range. */
		if (SEQ_LT(b[i].start, s))
			s = b[i].start;
		if (SEQ_GT(b[j - 1].end, e))
			e = b[j - 1].end;
		b[i].start = s;
		b[i].end = e;
		memmove(&b[i + 1], &b[j], (n - j) * sizeof(*b));
		c->nsacked = n - (j - i - 1);
		return;
	}
	if (n == TCP_SACK_MAX) {
		if (i == n)
			return;
		n--;
	}
	memmove(&b[i + 1], &b[i], (n - i) * sizeof(*b));
	b[i].start = s;
	b[i].end = e;
	c->nsacked = n + 1;
}

/*
 * snd_una moved: what it covers is no longer the scoreboard's.  A range
 * it reaches but does not pass, the peer SACKed and then dropped (it
 * would have ACKed past it otherwise): it reneged (RFC 2018 8), so that
 * range goes too, and is resent.
 */
void tcp_sack_prune(struct tcp_conn *c)
{
	struct tcp_sack_blk *b = c->sacked;
	unsigned n = c->nsacked, k = 0;

	while (k < n && SEQ_LEQ(b[k].start, c->snd_una))
		k++;
	if (k) {
		memmove(b, &b[k], (n - k) * sizeof(*b));
		c->nsacked = n - k;
	}
}

/* SACKed bytes at or above @seq. */
static uint32_t sacked_above(const struct tcp_conn *c, uint32_t seq)
{
	uint32_t n = 0;

	for (unsigned i = 0; i < c->nsacked; i++) {
		const struct tcp_sack_blk *b = &c->sacked[i];
		if (SEQ_GEQ(b->start, seq))
			n += b->end - b->start;
		else if (SEQ_GT(b->end, seq))
			n += b->end - seq;
	}
	return n;
}

/* Bytes of [a, b) the peer has not SACKed. */
static uint32_t unsacked(const struct tcp_conn *c, uint32_t a, uint32_t b)
{
	uint32_t n;

	if (!SEQ_LT(a, b))
		return 0;
	n = b - a;
	for (unsigned i = 0; i < c->nsacked; i++) {
		uint32_t s = c->sacked[i].start, e = c->sacked[i].end;
		if (SEQ_LT(s, a))
			s = a;
		if (SEQ_GT(e, b))
			e = b;
		if (SEQ_LT(s, e))
			n -= e - s;
	}
	return n;
}

/*
 * RFC 6675 IsLost: an unSACKed byte is lost once DupThresh discontiguous
 * ranges or more than (DupThresh - 1) * SMSS bytes above it are SACKed.
 * That holds for every hole below the returned edge (snd_una: none).
 */
static uint32_t lost_edge(const struct tcp_conn *c)
{
	uint32_t acc = 0, thr = (TCP_DUPTHRESH - 1) * (uint32_t)c->mss;

	for (unsigned i = c->nsacked; i-- > 0;) {
		acc += c->sacked[i].end - c->sacked[i].start;
		if (acc > thr || c->nsacked - i >= TCP_DUPTHRESH)
			return c->sacked[i].start;
	}
	return c->snd_una;
}

/*
 * The first hole at or above @from and below @to: *@seq and its length
 * (to the next SACKed range or @to).  False if none.
 */
static bool next_hole(const struct tcp_conn *c, uint32_t from, uint32_t to,
		      uint32_t *seq, uint32_t *len)
{
	uint32_t p = from, end = to;

	for (unsigned i = 0; i < c->nsacked; i++) {
		const struct tcp_sack_blk *b = &c->sacked[i];
		if (SEQ_LEQ(b->end, p))
			continue;
		if (SEQ_LEQ(b->start, p)) {
			p = b->end;
			continue;
		}
		if (SEQ_LT(b->start, end))
			end = b->start;
		break;
	}
	if (!SEQ_LT(p, end))
		return false;
	*seq = p;
	*len = end - p;
	return true;
}

/*
 * RFC 6675 SetPipe, from what we track: the unSACKed bytes sent since the
 * last timeout (below snd_nxt: a timeout presumes everything above lost)
 * less the lost ones not resent in this recovery episode.
 */
static uint32_t sack_pipe(const struct tcp_conn *c)
{
	uint32_t pipe = unsacked(c, c->snd_una, c->snd_nxt);

	if (c->in_recovery) {
		uint32_t lo = SEQ_GT(c->high_rxt, c->snd_una) ? c->high_rxt : c->snd_una;
		uint32_t hi = lost_edge(c);
		if (SEQ_GT(hi, c->snd_nxt))
			hi = c->snd_nxt;
		pipe -= unsacked(c, lo, hi);
	}
	return pipe;
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
	if (st->dev->offloads & SK_NETDEV_TX_L4_CSUM) {
		/* The device sums the segment, starting from the
		 * pseudo-header's sum in the field (uncomplemented). */
		nx_put16(h + 16, (uint16_t)~nx_csum_fold(sum));
		p->ol_flags |= SK_PKT_TX_L4_CSUM;
		p->l4_len = (uint16_t)hlen;
	} else {
		sum = nx_csum_add(sum, h, hlen + len);
		nx_put16(h + 16, nx_csum_fold(sum));
	}
	NX_INC(st, tcp_segs_out);
	if (flags & TH_RST)
		NX_INC(st, tcp_rst_sent);
	return nx_ip_output(st, p, rip, NX_IPPROTO_TCP, true);
}

/* Will our segments carry SACK blocks (RFC 2018 4: every ACK while the
 * reassembly queue holds data)? */
static bool sack_due(const struct tcp_conn *c)
{
	return c->sack_ok && c->ooo;
}

/* Payload per segment: the MSS less room for SACK blocks, so that a data
 * segment with them still fits the peer's MSS (RFC 6691). */
static uint32_t seg_size(const struct tcp_conn *c)
{
	return sack_due(c) ? (uint32_t)c->mss - TCP_SACK_OLEN : c->mss;
}

/* A segment of connection @c; an ACK in it settles what we owed. */
static int xmit(struct tcp_conn *c, uint32_t seq, uint8_t flags, size_t off,
		uint32_t len)
{
	uint8_t opts[40];
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
		/* SACK-permitted likewise (RFC 2018 2). */
		if (!(flags & TH_ACK) || c->sack_ok) {
			opts[olen] = 1;
			opts[olen + 1] = 1;
			opts[olen + 2] = 4;
			opts[olen + 3] = 2;
			olen += 4;
		}
		/* The window in a SYN is never scaled. */
		uint32_t space = tcp_rcv_space(c);
		wnd = (uint16_t)min32(space, 65535);
		c->rcv_adv = c->rcv_nxt + wnd;
	} else {
		wnd = window_field(c);
		if ((flags & TH_ACK) && !(flags & TH_RST) && sack_due(c)) {
			uint32_t blk[TCP_SACK_BLOCKS][2];
			unsigned n = tcp_sack_blocks(c, blk);
			if (n) {
				opts[0] = 1;
				opts[1] = 1;
				opts[2] = 5;
				opts[3] = (uint8_t)(2 + 8 * n);
				for (unsigned i = 0; i < n; i++) {
					nx_put32(opts + 4 + 8 * i, blk[i][0]);
					nx_put32(opts + 8 + 8 * i, blk[i][1]);
				}
				olen = 4 + 8 * n;
			}
		}
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
	len = min32(seg_size(c), (uint32_t)min32((uint32_t)c->s.out.bytes,
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

/* One segment of [@seq, @seq + @len), resent or new. */
static void send_seg(struct tcp_conn *c, uint32_t seq, uint32_t len)
{
	uint8_t flags = TH_ACK;

	if (seq + len == data_end(c))
		flags |= TH_PSH;
	data_sent(c, seq, len);
	xmit(c, seq, flags, seq - c->snd_una, len);
	if (c->persist) {
		c->persist = false;
		sk_timer_cancel(&c->rtx);
	}
	tcp_rtx_arm(c);
}

/* Resend the hole at snd_una (entering SACK recovery, RFC 6675 (4.3)),
 * whatever pipe says; our FIN if no data is left. */
static void sack_rxt_first(struct tcp_conn *c)
{
	uint32_t seq, len;

	if (c->s.err)
		return;
	if (!next_hole(c, c->snd_una, data_end(c), &seq, &len) || seq != c->snd_una) {
		tcp_retransmit_una(c);
		return;
	}
	len = min32(len, seg_size(c));
	send_seg(c, seq, len);
	c->high_rxt = seq + len;
	c->rxt_fence = c->snd_max;
	/* Right after a timeout the go-back-N cursor may not be past it
	 * yet: it need not send it again. */
	if (SEQ_LT(c->snd_nxt, c->high_rxt))
		c->snd_nxt = c->high_rxt;
	tcp_rtx_restart(c);
}

/* RFC 6675 (4): a loss - ssthresh and cwnd to half the flight (not above
 * cwnd: after a timeout cwnd is what slow start has earned), recovery to
 * snd_max, and the first hole goes at once. */
void tcp_sack_enter_recovery(struct tcp_conn *c)
{
	uint32_t mss = c->mss, flight = c->snd_max - c->snd_una;
	uint32_t w = min32(flight, c->cwnd) / 2;

	c->ssthresh = w > 2 * mss ? w : 2 * mss;
	c->cwnd = c->ssthresh;
	c->recover = c->snd_max;
	c->recover_hold = true;
	c->in_recovery = true;
	c->high_rxt = c->snd_una;
	NX_INC(c->st, tcp_fast_retransmits);
	sack_rxt_first(c);
	tcp_mark_dirty(c);
}

/*
 * After an ACK of a SACK connection (scoreboard updated, snd_una moved):
 *  - in recovery: a hole below high_rxt while more than (DupThresh - 1)
 *    SMSS are SACKed above rxt_fence (sent after our last resend) means a
 *    resend was lost: a new episode, halving again.  A partial ACK resends
 *    the hole it stops at if this episode has not (RFC 6582's rule, as
 *    FreeBSD's SACK does): in a small window too little may be SACKed
 *    above it for IsLost, and pipe would wait for the timeout.
 *  - in the flight of a timeout (recover_hold, below recover): go-back-N
 *    resends the holes; we step in only for one of those resends lost,
 *    judged likewise (rxt_fence: snd_max at the timeout).  Not the
 *    duplicate-ACK rule: SACK says what really is missing.
 *  - else: IsLost(snd_una) starts recovery (RFC 6675 (4)), as do three
 *    duplicate ACKs (cc_dup_ack).
 */
void tcp_sack_loss_check(struct tcp_conn *c, bool advanced)
{
	uint32_t thr = (TCP_DUPTHRESH - 1) * (uint32_t)c->mss;
	bool lost = SEQ_GT(lost_edge(c), c->snd_una);

	if (c->s.err)
		return;
	if (c->in_recovery) {
		if (lost && SEQ_LT(c->snd_una, c->high_rxt) &&
		    sacked_above(c, c->rxt_fence) > thr)
			tcp_sack_enter_recovery(c);
		else if (advanced && SEQ_GEQ(c->snd_una, c->high_rxt)) {
			NX_INC(c->st, tcp_sack_retransmits);
			sack_rxt_first(c);
		}
		tcp_mark_dirty(c);
		return;
	}
	if (c->recover_hold && SEQ_LT(c->snd_una, c->recover)) {
		if (lost && SEQ_LT(c->snd_una, c->snd_nxt) &&
		    sacked_above(c, c->rxt_fence) > thr)
			tcp_sack_enter_recovery(c);
		return;
	}
	if (lost)
		tcp_sack_enter_recovery(c);
}

/*
 * SACK output (RFC 6675 NextSeg, simplified), while pipe leaves a segment
 * of room in cwnd: first the lost holes not yet resent in this episode,
 * then from snd_nxt - new data, or after a timeout the go-back-N resend -
 * skipping whatever the peer holds (RFC 6675 5.1).
 */
static void send_data_sack(struct tcp_conn *c)
{
	uint32_t pipe = sack_pipe(c), smss = seg_size(c), end = data_end(c);

	for (;;) {
		uint32_t seq, len, room = c->cwnd > pipe ? c->cwnd - pipe : 0;

		if (c->in_recovery) {
			uint32_t lo = SEQ_GT(c->high_rxt, c->snd_una) ?
				      c->high_rxt : c->snd_una;
			uint32_t hi = lost_edge(c);
			if (SEQ_GT(hi, c->snd_nxt))
				hi = c->snd_nxt;
			if (SEQ_LT(lo, hi) && next_hole(c, lo, hi, &seq, &len)) {
				len = min32(len, smss);
				if (len > room && pipe)
					return;
				NX_INC(c->st, tcp_sack_retransmits);
				send_seg(c, seq, len);
				c->high_rxt = seq + len;
				c->rxt_fence = c->snd_max;
				pipe += len;
				continue;
			}
		}
		/* Past what the peer holds. */
		if (!next_hole(c, c->snd_nxt, end, &seq, &len)) {
			if (SEQ_LT(c->snd_nxt, end))
				c->snd_nxt = end;	/* all SACKed */
			return;
		}
		c->snd_nxt = seq;
		uint32_t inflight = seq - c->snd_una;
		if (inflight >= c->snd_wnd)
			return;
		len = min32(len, smss);
		if (c->snd_wnd - inflight < len) {
			/* Sender SWS avoidance, as in send_data: a runt cut
			 * by the window only when nothing is in flight. */
			if (pipe)
				return;
			len = c->snd_wnd - inflight;
		}
		if (len > room && pipe)
			return;
		send_seg(c, seq, len);
		c->snd_nxt = seq + len;
		pipe += len;
	}
}

static void send_data(struct tcp_conn *c)
{
	uint32_t smss = seg_size(c);

	if (c->sack_ok && (c->in_recovery || c->nsacked) &&
	    !(c->snd_wnd == 0 && c->s.out.bytes)) {
		send_data_sack(c);
		return;
	}
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
		len = min32(min32(smss, wnd - inflight), unsent);
		/* Sender SWS avoidance (RFC 1122 4.2.3.4) without Nagle: a
		 * runt only when nothing is in flight to clock more out. */
		if (len < smss && len < unsent && inflight > 0)
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
