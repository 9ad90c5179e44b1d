/*
 * tcp_in.c - processing received TCP segments.
 *
 * Roadmap:
 *   nx_tcp_input: length, data offset, checksum, flags, options
 *     -> tcp_lookup (4-tuple) -> syn_sent_input | tcp_process
 *     -> else listener -> listen_input (SYN: new SYN_RECEIVED connection)
 *     -> else RST (RFC 9293 3.10.7.1)
 *   tcp_process (RFC 9293 3.10.7.4, in this order):
 *     RST (RFC 5961: exact -> reset, in window -> challenge ACK), SYN
 *     (challenge ACK), sequence check and trimming (old data -> ACK,
 *     beyond the window -> ACK), ACK (handshake completion, snd_una,
 *     RTT, NewReno or with SACK the scoreboard (sack_input ->
 *     tcp_sack_loss_check), window update, FIN acknowledged), URG ignored, text
 *     -> receive (in order: to the socket; otherwise the reassembly
 *     queue), FIN.
 *
 * Mostly nothing is sent from here: the connection is marked dirty with
 * ack_now (or the delayed-ACK timer is armed) and tcp_output_conn sends
 * at the end of the round, so the ACK can ride on the app's reply.  What
 * must not wait goes out at once: RST replies (strangers, a bad ACK in
 * SYN_RECEIVED), the duplicate ACK for an out-of-order segment (the
 * sender counts them, one per segment) and a fast retransmission.
 */
#include <errno.h>
#include <string.h>

#include "tcp.h"
#include "skerry/alloc.h"

/* A reassembly queue entry: its sequence number and payload length.
 * The payload is exactly the packet's data (one segment, len trimmed). */
#define OOO_SEQ(p) ((uint32_t)(p)->meta[0])
#define OOO_LEN(p) ((uint32_t)(p)->meta[1])

/* --- parsing ------------------------------------------------------------ */

/* Options of a header of @hlen bytes; false if malformed. */
static bool parse_opts(const uint8_t *h, unsigned hlen, struct tcp_seg *sg)
{
	unsigned i = NX_TCP_HLEN;

	sg->mss = 0;
	sg->wscale = -1;
	sg->sack_perm = false;
	sg->nsack = 0;
	sg->sack_bad = 0;
	while (i < hlen) {
		uint8_t kind = h[i];
		unsigned len;

		if (kind == 0)
			break;		/* end of list */
		if (kind == 1) {
			i++;		/* NOP */
			continue;
		}
		if (i + 1 >= hlen)
			return false;	/* no room for the length */
		len = h[i + 1];
		if (len < 2 || i + len > hlen)
			return false;
		switch (kind) {
		case 2:
			if (len != 4)
				return false;
			if (sg->flags & TH_SYN)
				sg->mss = nx_get16(h + i + 2);
			break;
		case 3:
			if (len != 3)
				return false;
			if (sg->flags & TH_SYN)
				sg->wscale = (int8_t)min32(h[i + 2], TCP_MAX_WSCALE);
			break;
		case 4:		/* SACK permitted (RFC 2018 2) */
			if (len != 2)
				return false;
			if (sg->flags & TH_SYN)
				sg->sack_perm = true;
			break;
		case 5:		/* SACK (RFC 2018 3): 1 to 4 blocks */
			if (len < 10 || (len - 2) % 8) {
				/* Not a list of blocks: ignore just this
				 * option, the segment is fine otherwise. */
				sg->sack_bad++;
				break;
			}
			for (unsigned o = i + 2; o < i + len; o += 8) {
				if (sg->nsack >= TCP_SACK_BLOCKS) {
					sg->sack_bad++;	/* a second option */
					break;
				}
				sg->sack[sg->nsack][0] = nx_get32(h + o);
				sg->sack[sg->nsack][1] = nx_get32(h + o + 4);
				sg->nsack++;
			}
			break;
		case 8:		/* timestamps: not used, never sent */
			if (len != 10)
				return false;
			break;
		default:
			break;
		}
		i += len;
	}
	return true;
}

/* --- delivery to the socket --------------------------------------------- */

static void tcp_pkt_release(struct sk_seg *seg)
{
	sk_pkt_free(seg->arg);
}

static void tcp_chunk_release(struct sk_seg *seg)
{
	sk_free(seg->arg);
}

/* Drop @n bytes from the front of a packet's payload (any chain). */
static void pkt_trim_front(struct sk_pkt *p, uint32_t n)
{
	struct sk_pkt *q = p;

	p->pkt_len -= n;
	while (n && q) {
		uint32_t k = min32(n, q->len);
		q->data += k;
		q->len -= k;
		n -= k;
		q = q->next;
	}
}

/*
 * @len in-order payload bytes at p->data go to the app (zero-copy for
 * full segments, copied for small ones).  Takes @p.  False: no memory,
 * the bytes were not taken.
 */
static bool deliver(struct tcp_conn *c, struct sk_pkt *p, uint32_t len)
{
	struct sk_sock *s = &c->s;
	struct sk_seg *seg;

	if (c->owner == OWN_NONE || c->owner == OWN_CLOSING || s->eof) {
		/* Nobody reads any more: accept and discard. */
		sk_pkt_free(p);
		return true;
	}
	if (len >= TCP_COPY_BELOW && !p->next) {
		seg = sk__seg_get();
		if (!seg) {
			sk_pkt_free(p);
			return false;
		}
		seg->p = p->data;
		seg->len = len;
		seg->arg = p;
		seg->release = tcp_pkt_release;
		sk__sock_rx(s, seg);
		return true;
	}
	/* Small: append to our own tail chunk when no reader needs waking
	 * (sk__sock_rx is what wakes it), else a fresh chunk. */
	if (s->in.head && !s->rd) {
		struct sk_seg *tail = (struct sk_seg *)((char *)s->in.tail -
							offsetof(struct sk_seg, next));
		if (tail->release == tcp_chunk_release && tail->room >= len) {
			sk_pkt_copy_out(p, 0, len, tail->p + tail->len);
			tail->len += len;
			tail->room -= len;
			s->in.bytes += len;
			sk_pkt_free(p);
			return true;
		}
	}
	uint32_t cap = len > TCP_CHUNK ? len : TCP_CHUNK;
	uint8_t *mem = sk_alloc(cap);
	seg = mem ? sk__seg_get() : NULL;
	if (!seg) {
		sk_free(mem);
		sk_pkt_free(p);
		return false;
	}
	sk_pkt_copy_out(p, 0, len, mem);
	sk_pkt_free(p);
	seg->p = mem;
	seg->len = len;
	seg->room = cap - len;
	seg->arg = mem;
	seg->release = tcp_chunk_release;
	sk__sock_rx(s, seg);
	return true;
}

/* The peer's FIN, in order. */
static void fin_in(struct tcp_conn *c)
{
	c->rcv_nxt++;
	c->ack_now = true;
	sk__sock_rx_end(&c->s, 0);
	switch (c->state) {
	case TCP_SYN_RECEIVED:
	case TCP_ESTABLISHED:
		c->state = TCP_CLOSE_WAIT;
		break;
	case TCP_FIN_WAIT_1:
		c->state = TCP_CLOSING;
		break;
	case TCP_FIN_WAIT_2:
		tcp_set_state(c, TCP_TIME_WAIT);
		break;
	default:
		break;
	}
	tcp_mark_dirty(c);
}

/* What a queued packet really holds down: its buffers, not its payload
 * (a 1-byte segment pins a whole pool buffer). */
static size_t pkt_truesize(const struct sk_pkt *p)
{
	size_t n = 0;

	for (; p; p = p->next)
		n += sizeof(*p) + p->buf_size;
	return n;
}

static void ooo_take(struct tcp_conn *c, struct sk_pkt *q)
{
	c->ooo_mem -= pkt_truesize(q);
	c->ooo_segs--;
}

/* May we write past the data of @p (our own pool buffer, unshared)? */
static bool pkt_writable(const struct sk_pkt *p)
{
	return p->refcnt == 1 && !p->ext_free && !p->next;
}

/*
 * Insert a segment that starts past rcv_nxt into the reassembly queue.
 * Takes @p (data at the payload).  The queue is charged by buffer size
 * against ooo_max and holds at most TCP_OOO_MAX_SEGS entries; a small
 * segment that continues the previous entry is copied onto its end, so a
 * peer sending tiny segments does not pin a buffer per few bytes.  What
 * does not fit is dropped: the peer sends it again.
 */
static void ooo_insert(struct tcp_conn *c, struct sk_pkt *p, uint32_t seq,
		       uint32_t len)
{
	struct nx_stack *st = c->st;
	struct sk_pkt **pp = &c->ooo, *q, *prev = NULL;
	size_t size;

	/* Its block leads the SACK option of the ACK it earns (RFC 2018 4),
	 * even when it duplicates what we hold. */
	c->ooo_last = seq;
	if (p->next || (c->rfin && SEQ_GEQ(seq, c->rfin_seq))) {
		/* A chain is bigger than any segment our MSS allows; data
		 * past the peer's FIN cannot be. */
		NX_INC(st, tcp_ooo_dropped);
		sk_pkt_free(p);
		return;
	}
	/* prev: the last queued segment starting at or before us. */
	for (q = c->ooo; q && SEQ_LEQ(OOO_SEQ(q), seq); q = q->nextpkt) {
		prev = q;
		pp = &q->nextpkt;
	}
	if (prev) {
		uint32_t pend = OOO_SEQ(prev) + OOO_LEN(prev);
		if (SEQ_GEQ(pend, seq + len)) {
			NX_INC(st, tcp_dup_rx);
			sk_pkt_free(p);
			return;
		}
		if (SEQ_GT(pend, seq)) {
			uint32_t cut = pend - seq;
			pkt_trim_front(p, cut);
			seq += cut;
			len -= cut;
		}
	}
	/* Swallow the segments we cover; stop short of one we overlap. */
	while ((q = *pp) && SEQ_LT(OOO_SEQ(q), seq + len)) {
		uint32_t qend = OOO_SEQ(q) + OOO_LEN(q);
		if (SEQ_LEQ(qend, seq + len)) {
			*pp = q->nextpkt;
			ooo_take(c, q);
			sk_pkt_free(q);
			continue;
		}
		len = OOO_SEQ(q) - seq;
		break;
	}
	p->len = len;		/* one segment: drop what we do not keep */
	p->pkt_len = len;
	if (len < TCP_COPY_BELOW) {
		/* Small: onto the end of the entry it continues, if there
		 * is room there. */
		if (prev && OOO_SEQ(prev) + OOO_LEN(prev) == seq && pkt_writable(prev)) {
			uint8_t *dst = sk_pkt_append(prev, len);
			if (dst) {
				memcpy(dst, p->data, len);
				prev->meta[1] = OOO_LEN(prev) + len;
				sk_pkt_free(p);
				return;
			}
		}
		/* A foreign or shared buffer cannot take followers: copy
		 * into a pool buffer of our own that can. */
		if (!pkt_writable(p)) {
			struct sk_pkt *n = sk_pkt_alloc();
			uint8_t *dst = n ? sk_pkt_append(n, len) : NULL;
			if (dst) {
				memcpy(dst, p->data, len);
				sk_pkt_free(p);
				p = n;
			} else if (n) {
				sk_pkt_free(n);
			}
		}
	}
	size = pkt_truesize(p);
	if (c->ooo_segs >= TCP_OOO_MAX_SEGS || c->ooo_mem + size > nx_tcp_tun.ooo_max) {
		NX_INC(st, tcp_ooo_dropped);
		sk_pkt_free(p);
		return;
	}
	p->meta[0] = seq;
	p->meta[1] = len;
	p->nextpkt = *pp;
	*pp = p;
	c->ooo_mem += size;
	c->ooo_segs++;
	NX_INC(st, tcp_ooo_queued);
}

void tcp_ooo_free(struct tcp_conn *c)
{
	sk_pkt_free_list(c->ooo);
	c->ooo = NULL;
	c->ooo_mem = 0;
	c->ooo_segs = 0;
	c->rfin = false;
}

unsigned tcp_sack_blocks(const struct tcp_conn *c, uint32_t blk[][2])
{
	uint32_t other[TCP_SACK_BLOCKS][2], first[2] = { 0, 0 };
	unsigned nother = 0, n = 0;
	bool have_first = false;
	const struct sk_pkt *q = c->ooo;

	/* Adjacent entries make one block (the queue is sorted, without
	 * overlaps; at most TCP_OOO_MAX_SEGS entries to walk). */
	while (q) {
		uint32_t s = OOO_SEQ(q), e = s + OOO_LEN(q);
		for (q = q->nextpkt; q && OOO_SEQ(q) == e; q = q->nextpkt)
			e += OOO_LEN(q);
		if (!have_first && SEQ_GEQ(c->ooo_last, s) && SEQ_LT(c->ooo_last, e)) {
			first[0] = s;
			first[1] = e;
			have_first = true;
		} else if (nother < TCP_SACK_BLOCKS) {
			other[nother][0] = s;
			other[nother][1] = e;
			nother++;
		}
		if (have_first && nother >= TCP_SACK_BLOCKS - 1)
			break;
	}
	if (have_first) {
		blk[n][0] = first[0];
		blk[n][1] = first[1];
		n++;
	}
	/* The others lowest first: those are what the sender repairs next. */
	for (unsigned i = 0; i < nother && n < TCP_SACK_BLOCKS; i++, n++) {
		blk[n][0] = other[i][0];
		blk[n][1] = other[i][1];
	}
	return n;
}

/* The peer's FIN arrived past a hole: keep its place, not its packet. */
static void ooo_fin(struct tcp_conn *c, uint32_t seq)
{
	c->rfin = true;
	c->rfin_seq = seq;
}

/* Anything waiting for rcv_nxt to move? */
static bool ooo_pending(const struct tcp_conn *c)
{
	return c->ooo || c->rfin;
}

/* After rcv_nxt moved: what the queue now continues. */
static void ooo_drain(struct tcp_conn *c)
{
	struct sk_pkt *q;

	while ((q = c->ooo) && SEQ_LEQ(OOO_SEQ(q), c->rcv_nxt)) {
		uint32_t skip = c->rcv_nxt - OOO_SEQ(q), len = OOO_LEN(q);

		c->ooo = q->nextpkt;
		q->nextpkt = NULL;
		ooo_take(c, q);
		if (skip >= len) {
			sk_pkt_free(q);
			continue;
		}
		pkt_trim_front(q, skip);
		len -= skip;
		if (!deliver(c, q, len)) {
			/* Not taken: the peer sends it again. */
			NX_INC(c->st, tcp_rcv_full);
			tcp_ooo_free(c);
			return;
		}
		c->rcv_nxt += len;
	}
	if (!c->rfin)
		return;
	if (c->rcv_nxt == c->rfin_seq) {
		tcp_ooo_free(c);	/* nothing lies past a FIN */
		fin_in(c);
	} else if (SEQ_GT(c->rcv_nxt, c->rfin_seq)) {
		c->rfin = false;	/* data past it after all: not a FIN */
	}
}

/* In-order data arrived: ACK every second full segment, else delay. */
static void ack_policy(struct tcp_conn *c, bool now)
{
	if (now || c->rcv_nxt - c->last_ack >= 2u * c->rcv_mss)
		c->ack_now = true;
	else
		tcp_delack_arm(c);
	if (c->ack_now)
		tcp_mark_dirty(c);
	/* A window under half open: have sk_read_consume tell us when the
	 * app makes room, so a window update can go out. */
	if (tcp_rcv_space(c) < c->s.rx_limit / 2)
		c->s.rx_paused = true;
}

/* --- congestion control (RFC 5681, RFC 6582) ---------------------------- */

static void cc_new_ack(struct tcp_conn *c, uint32_t ack, uint32_t acked)
{
	uint32_t mss = c->mss;

	/* Past the flight of the last loss: fast retransmit is allowed
	 * again (and recover is not compared with acks that may lie 2 GB
	 * away one day). */
	if (c->recover_hold && SEQ_GT(ack, c->recover))
		c->recover_hold = false;
	if (c->in_recovery) {
		if (SEQ_GEQ(ack, c->recover)) {
			/* Full ACK: deflate to ssthresh (RFC 6582 3.2 (3)). */
			uint32_t flight = c->snd_max - ack;
			uint32_t w = (flight > mss ? flight : mss) + mss;
			c->cwnd = w < c->ssthresh ? w : c->ssthresh;
			c->in_recovery = false;
			c->dupacks = 0;
		} else if (!c->sack_ok) {
			/* Partial ACK: deflate by what it acked, add one MSS
			 * back, resend the next hole (caller).  With SACK the
			 * window stays at ssthresh and pipe says what may go
			 * (RFC 6675). */
			c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
			if (acked >= mss)
				c->cwnd += mss;
			if (c->cwnd < mss)
				c->cwnd = mss;
		}
		return;
	}
	c->dupacks = 0;
	if (c->cwnd < c->ssthresh) {
		c->cwnd += min32(acked, mss);	/* slow start, L = 1 SMSS */
	} else {
		uint32_t inc = mss * mss / (c->cwnd ? c->cwnd : 1);
		c->cwnd += inc ? inc : 1;	/* congestion avoidance */
	}
	if (c->cwnd > 0x3fffffff)
		c->cwnd = 0x3fffffff;
}

static void cc_dup_ack(struct tcp_conn *c, uint32_t ack)
{
	uint32_t mss = c->mss;

	c->dupacks++;
	if (c->in_recovery) {
		/* NewReno inflates: a segment left the network.  With SACK,
		 * pipe counts what left (RFC 6675), cwnd stays. */
		if (!c->sack_ok)
			c->cwnd += mss;
		tcp_mark_dirty(c);
		return;
	}
	/* RFC 6582 3.2 (1): not for duplicates of a flight a loss already
	 * dealt with (ack at or below recover).  With SACK too: after a
	 * timeout, duplicates may answer our go-back-N resends of data the
	 * peer held; the scoreboard (tcp_sack_loss_check) says what is
	 * really lost. */
	if (c->dupacks == 3 && (!c->recover_hold || SEQ_GT(ack, c->recover))) {
		if (c->sack_ok) {
			tcp_sack_enter_recovery(c);
			return;
		}
		uint32_t flight = c->snd_max - c->snd_una;
		c->ssthresh = flight / 2 > 2 * mss ? flight / 2 : 2 * mss;
		c->recover = c->snd_max;
		c->recover_hold = true;
		c->in_recovery = true;
		NX_INC(c->st, tcp_fast_retransmits);
		tcp_retransmit_una(c);
		c->cwnd = c->ssthresh + 3 * mss;
		tcp_mark_dirty(c);
	}
}

/*
 * The SACK blocks of an ACK into the scoreboard (RFC 2018, RFC 6675 Update).
 * Valid blocks lie within (snd_una, snd_max]; a D-SACK (RFC 2883: the first
 * block below the cumulative ACK or inside the second) only reports a
 * duplicate and is ignored, as is anything else.
 */
static void sack_input(struct tcp_conn *c, const struct tcp_seg *sg, uint32_t ack)
{
	uint32_t una = SEQ_GT(ack, c->snd_una) ? ack : c->snd_una;

	for (unsigned i = 0; i < sg->nsack; i++) {
		uint32_t s = sg->sack[i][0], e = sg->sack[i][1];

		if (i == 0 && (SEQ_LT(s, ack) ||
			       (sg->nsack > 1 && SEQ_GEQ(s, sg->sack[1][0]) &&
				SEQ_LEQ(e, sg->sack[1][1]))))
			continue;	/* D-SACK */
		if (!SEQ_LT(s, e) || SEQ_LEQ(s, una) || SEQ_GT(e, c->snd_max)) {
			NX_INC(c->st, tcp_sack_bad);
			continue;
		}
		NX_INC(c->st, tcp_sack_blocks_rx);
		/* Less in flight (pipe): more may go - limited transmit,
		 * the RFC 6675 way. */
		tcp_mark_dirty(c);
		/* Our FIN is not data: the scoreboard covers s->out only. */
		if (c->fin_sent && SEQ_GT(e, c->fin_seq))
			e = c->fin_seq;
		if (SEQ_LT(s, e))
			tcp_sack_add(c, s, e);
	}
}

/* --- LISTEN ------------------------------------------------------------- */

static void take_syn_opts(struct tcp_conn *c, const struct tcp_seg *sg)
{
	uint16_t ours = tcp_our_mss(c->st);
	uint16_t peer = sg->mss ? sg->mss : TCP_DEFAULT_MSS;

	c->mss = peer < ours ? peer : ours;
	if (c->mss < 64)
		c->mss = 64;	/* nonsense MSS: do not send 1-byte segments */
	c->rcv_mss = c->mss;
	/* RFC 2018 2: SACK only when the peer's SYN permits it (and ours
	 * always does; a SYN-ACK offers it only in answer). */
	c->sack_ok = sg->sack_perm;
	if (sg->wscale >= 0) {
		c->ws_ok = true;
		c->snd_wscale = (uint8_t)sg->wscale;
	} else {
		c->ws_ok = false;
		c->snd_wscale = 0;
		c->rcv_wscale = 0;
	}
	/* RFC 6928 initial window. */
	c->cwnd = TCP_IW_SEGS * (uint32_t)c->mss;
}

static void listen_input(struct nx_stack *st, struct sk_listener *l,
			 const struct tcp_seg *sg, uint32_t src, uint32_t dst)
{
	struct tcp_conn *c;

	if (sg->flags & TH_RST) {
		NX_INC(st, tcp_rst_rx);
		return;
	}
	if (sg->flags & TH_ACK) {
		NX_INC(st, tcp_bad_ack);
		tcp_reply_rst(st, src, dst, sg);
		return;
	}
	if (!(sg->flags & TH_SYN)) {
		NX_INC(st, tcp_bad_flags);
		return;
	}
	if (l->half.n >= nx_tcp_tun.syn_backlog) {
		/* A flood (or a burst of clients that went quiet): make room
		 * by forgetting the oldest half-open connection, silently, as
		 * a BSD syncache does - a real client retransmits its SYN,
		 * and newcomers are not locked out until the flood's entries
		 * time out. */
		NX_INC(st, tcp_backlog_full);
		if (!l->half.head)
			return;
		tcp_fail(l->half.head, -ECONNRESET);
	}
	if (l->qlen >= l->backlog) {
		NX_INC(st, tcp_accept_full);
		return;
	}
	c = tcp_conn_new(st, dst, sg->dport, src, sg->sport);
	if (!c) {
		NX_INC(st, tcp_syn_dropped);
		return;
	}
	c->passive = true;
	c->lst = l;
	c->owner = OWN_HALF;
	tcp_age_add(&l->half, c);
	c->irs = sg->seq;
	c->rcv_nxt = sg->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	c->last_ack = c->rcv_nxt;
	c->iss = tcp_isn(st, dst, sg->dport, src, sg->sport);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->recover = c->iss;
	take_syn_opts(c, sg);
	c->snd_wnd = sg->wnd;	/* never scaled in a SYN */
	c->snd_wnd_max = c->snd_wnd;
	c->snd_wl1 = sg->seq;
	c->snd_wl2 = c->iss;
	c->state = TCP_SYN_RECEIVED;
	c->synack_now = true;
	c->rtt_start = sk_now_ns();
	/* Data in the SYN is not kept: the peer sends it again. */
	tcp_mark_dirty(c);
}

/* --- SYN_SENT ----------------------------------------------------------- */

static void syn_sent_input(struct tcp_conn *c, const struct tcp_seg *sg)
{
	struct nx_stack *st = c->st;
	bool ack_ok = false;

	if (sg->flags & TH_ACK) {
		if (SEQ_LEQ(sg->ack, c->iss) || SEQ_GT(sg->ack, c->snd_max)) {
			NX_INC(st, tcp_bad_ack);
			if (!(sg->flags & TH_RST))
				tcp_reply_rst(st, c->rip, c->lip, sg);
			return;
		}
		ack_ok = true;
	}
	if (sg->flags & TH_RST) {
		NX_INC(st, tcp_rst_rx);
		if (ack_ok)
			tcp_fail(c, -ECONNREFUSED);
		return;
	}
	if (!(sg->flags & TH_SYN)) {
		NX_INC(st, tcp_bad_flags);
		return;
	}
	c->irs = sg->seq;
	c->rcv_nxt = sg->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	c->last_ack = c->rcv_nxt - 1;
	take_syn_opts(c, sg);
	if (!c->ws_ok)
		c->rcv_wscale = 0;
	c->snd_wnd = sg->wnd;
	c->snd_wnd_max = c->snd_wnd;
	c->snd_wl1 = sg->seq;
	c->snd_wl2 = sg->ack;
	if (ack_ok) {
		c->snd_una = sg->ack;
		if (c->retries == 0)
			tcp_rtt_sample(c, sk_now_ns() - c->rtt_start);
		c->retries = 0;
		sk_timer_cancel(&c->rtx);
		c->ack_now = true;
		tcp_mark_dirty(c);
		tcp_established(c);
		return;
	}
	/* Simultaneous open: SYN-ACK from our ISS again. */
	c->state = TCP_SYN_RECEIVED;
	c->synack_now = true;
	tcp_mark_dirty(c);
}

/* --- synchronized states ------------------------------------------------ */

/*
 * RFC 9293 3.10.7.4 for every state past SYN_SENT.  Takes @p (data at the
 * payload).
 */
static void tcp_process(struct tcp_conn *c, struct tcp_seg *sg, struct sk_pkt *p)
{
	struct nx_stack *st = c->st;
	uint32_t seq = sg->seq, plen = sg->len;
	uint8_t flags = sg->flags;
	uint32_t wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	bool now = false;

	/* Anything from the peer proves it alive (keepalive). */
	if (nx_tcp_tun.keepalive_ns) {
		c->last_rx = sk_now_ns();
		c->ka_probes = 0;
	}
	/* RST (RFC 5961 3.2): only an exact hit resets; an in-window guess
	 * earns a challenge ACK, anything else is ignored. */
	if (flags & TH_RST) {
		NX_INC(st, tcp_rst_rx);
		if (c->state == TCP_TIME_WAIT) {
			/* RFC 1337: a reset must not cut TIME_WAIT short - an
			 * old duplicate of the connection could then be taken
			 * for a new incarnation's. */
		} else if (seq == c->rcv_nxt) {
			int err = c->owner == OWN_CONNECT ? -ECONNREFUSED : -ECONNRESET;
			tcp_fail(c, err);
		} else if (SEQ_GT(seq, c->rcv_nxt) &&
			   SEQ_LT(seq, c->rcv_nxt + (wnd ? wnd : 1))) {
			NX_INC(st, tcp_out_of_window);
			c->ack_now = true;
			tcp_mark_dirty(c);
		} else {
			NX_INC(st, tcp_out_of_window);
		}
		goto drop;
	}
	if (c->state == TCP_SYN_RECEIVED && (flags & TH_SYN) && seq == c->irs) {
		if (!(flags & TH_ACK)) {
			/* The peer's SYN again while we answer it: answer
			 * again. */
			c->synack_now = true;
			tcp_mark_dirty(c);
			goto drop;
		}
		/* Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK
		 * answers our SYN.  Its SYN is the one we have; the rest,
		 * the ACK above all, is processed as usual, and ACKed. */
		flags &= (uint8_t)~TH_SYN;
		seq++;
		c->ack_now = true;
		tcp_mark_dirty(c);
	}
	/* SYN in a synchronized state (RFC 5961 4): challenge ACK. */
	if (flags & TH_SYN) {
		NX_INC(st, tcp_bad_flags);
		c->ack_now = true;
		tcp_mark_dirty(c);
		goto drop;
	}

	/* Sequence check: trim what we already have, and what lies past
	 * the window. */
	int32_t todrop = (int32_t)(c->rcv_nxt - seq);
	if (todrop > 0) {
		if ((uint32_t)todrop > plen || ((uint32_t)todrop == plen && !(flags & TH_FIN))) {
			/* All old (a retransmission, a keepalive, a FIN we
			 * have): tell the peer where we are, and drop the
			 * text - but keep processing the ACK field, as BSD
			 * does: a peer that went back N after a timeout
			 * carries its new ACKs on old sequence numbers, and
			 * ignoring them would deadlock two such peers. */
			if (plen || (flags & TH_FIN))
				NX_INC(st, tcp_dup_rx);
			if (c->state == TCP_TIME_WAIT && (flags & TH_FIN))
				tcp_time_wait_arm(c);
			c->ack_now = true;
			tcp_mark_dirty(c);
			plen = 0;
			flags &= (uint8_t)~TH_FIN;
		} else {
			NX_INC(st, tcp_dup_rx);
			pkt_trim_front(p, (uint32_t)todrop);
			seq += (uint32_t)todrop;
			plen -= (uint32_t)todrop;
			now = true;
		}
	}
	if (SEQ_GT(seq + plen, c->rcv_nxt + wnd)) {
		if (SEQ_GEQ(seq, c->rcv_nxt + wnd) && !(wnd == 0 && seq == c->rcv_nxt)) {
			NX_INC(st, tcp_out_of_window);
			c->ack_now = true;
			tcp_mark_dirty(c);
			goto drop;
		}
		/* Keep what fits (a zero window keeps the ACK only). */
		NX_INC(st, tcp_rcv_full);
		plen = c->rcv_nxt + wnd - seq;
		flags &= (uint8_t)~TH_FIN;
		c->ack_now = true;
		tcp_mark_dirty(c);
	}

	if (!(flags & TH_ACK)) {
		NX_INC(st, tcp_bad_flags);
		goto drop;
	}

	/* ACK. */
	uint32_t ack = sg->ack;
	if (c->state == TCP_SYN_RECEIVED) {
		if (SEQ_LEQ(ack, c->snd_una) || SEQ_GT(ack, c->snd_max)) {
			NX_INC(st, tcp_bad_ack);
			tcp_reply_rst(st, c->rip, c->lip, sg);
			goto drop;
		}
		c->snd_una = ack;
		if (c->retries == 0)
			tcp_rtt_sample(c, sk_now_ns() - c->rtt_start);
		c->retries = 0;
		sk_timer_cancel(&c->rtx);
		c->snd_wnd = (uint32_t)sg->wnd << c->snd_wscale;
		c->snd_wnd_max = c->snd_wnd;
		c->snd_wl1 = seq;
		c->snd_wl2 = ack;
		tcp_established(c);
	}
	if (SEQ_GT(ack, c->snd_max)) {
		/* Acknowledges what we never sent. */
		NX_INC(st, tcp_bad_ack);
		c->ack_now = true;
		tcp_mark_dirty(c);
		goto drop;
	}
	/* The peer answers: window probes are not going into the void. */
	c->probes = 0;
	uint32_t new_wnd = (uint32_t)sg->wnd << c->snd_wscale;
	bool advanced = SEQ_GT(ack, c->snd_una);
	if (c->sack_ok && sg->nsack)
		sack_input(c, sg, ack);
	if (advanced) {
		uint32_t acked = ack - c->snd_una, data = acked;
		bool fin_acked = false;

		if (c->fin_sent && !c->fin_acked && SEQ_GT(ack, c->fin_seq)) {
			data--;
			fin_acked = true;
		}
		if (c->rtt_timing && SEQ_GT(ack, c->rtt_seq)) {
			c->rtt_timing = false;
			tcp_rtt_sample(c, sk_now_ns() - c->rtt_start);
		}
		cc_new_ack(c, ack, acked);
		c->snd_una = ack;
		if (SEQ_LT(c->snd_nxt, c->snd_una))
			c->snd_nxt = c->snd_una;
		if (c->sack_ok)
			tcp_sack_prune(c);
		c->retries = 0;
		c->probes_total = 0;
		tcp_tx_done(c, data);
		if (c->in_recovery && !c->sack_ok)
			tcp_retransmit_una(c);	/* partial ACK: next hole */
		tcp_rtx_restart(c);
		if (fin_acked) {
			tcp_fin_acked(c);
			if (c->state == TCP_CLOSED) {
				tcp_maybe_free(c);
				goto drop;
			}
		}
		tcp_mark_dirty(c);
	} else if (ack == c->snd_una && !sg->len && !(sg->flags & TH_FIN) &&
		   c->snd_max != c->snd_una && new_wnd == c->snd_wnd && new_wnd) {
		cc_dup_ack(c, ack);
	}
	if (c->sack_ok && c->snd_una != c->snd_max)
		tcp_sack_loss_check(c, advanced);
	/* Window update (RFC 9293 3.10.7.4): only from an ACK in
	 * SND.UNA..SND.NXT (snd_una is already moved to a new one) that is
	 * not older than the last update (SND.WL1/WL2) - a stale, reordered
	 * segment must not shrink or reopen the window. */
	if (SEQ_GEQ(ack, c->snd_una) &&
	    (SEQ_LT(c->snd_wl1, seq) || (c->snd_wl1 == seq && SEQ_LEQ(c->snd_wl2, ack)))) {
		/* Opened: more may go; closed: persist instead (output). */
		if (new_wnd != c->snd_wnd)
			tcp_mark_dirty(c);
		c->snd_wnd = new_wnd;
		if (new_wnd > c->snd_wnd_max)
			c->snd_wnd_max = new_wnd;
		c->snd_wl1 = seq;
		c->snd_wl2 = ack;
		if (new_wnd && c->persist) {
			/* Window open again: the persist timer's job is done. */
			c->persist = false;
			sk_timer_cancel(&c->rtx);
			if (c->snd_una != c->snd_max)
				tcp_rtx_arm(c);
		}
	}

	/* Text (URG is ignored: the urgent pointer is just data here). */
	if (plen) {
		if (c->state != TCP_ESTABLISHED && c->state != TCP_FIN_WAIT_1 &&
		    c->state != TCP_FIN_WAIT_2) {
			/* After the peer's FIN: nothing more can be data. */
			goto drop;
		}
		if (seq == c->rcv_nxt) {
			bool gap = ooo_pending(c);
			if (!deliver(c, p, plen)) {
				NX_INC(st, tcp_rcv_full);
				return;
			}
			c->rcv_nxt += plen;
			if (c->rcv_mss < plen)
				c->rcv_mss = (uint16_t)min32(plen, tcp_our_mss(st));
			if (flags & TH_FIN) {
				tcp_ooo_free(c);
				fin_in(c);
			} else if (gap) {
				ooo_drain(c);
			}
			ack_policy(c, now || gap);
			return;
		}
		/* A hole before it: queue, and ACK at once (RFC 5681 4.2) so
		 * the sender sees duplicate ACKs. */
		if (flags & TH_FIN)
			ooo_fin(c, seq + plen);
		ooo_insert(c, p, seq, plen);
		tcp_send_ack(c);
		return;
	}
	if (flags & TH_FIN) {
		if (c->state != TCP_ESTABLISHED && c->state != TCP_FIN_WAIT_1 &&
		    c->state != TCP_FIN_WAIT_2) {
			/* Had the peer's FIN already (a different one now is
			 * nonsense); a retransmission was ACKed above. */
		} else if (seq == c->rcv_nxt) {
			tcp_ooo_free(c);	/* nothing lies past a FIN */
			fin_in(c);
		} else {
			/* A bare FIN past a hole: keep its place. */
			ooo_fin(c, seq);
			c->ack_now = true;
			tcp_mark_dirty(c);
		}
	}
drop:
	if (p)
		sk_pkt_free(p);
}

/* --- entry -------------------------------------------------------------- */

void nx_tcp_input(struct nx_stack *st, struct sk_pkt *p, uint32_t src, uint32_t dst)
{
	struct tcp_seg sg;
	struct tcp_conn *c;
	struct sk_listener *l;
	uint32_t len = p->pkt_len;
	unsigned hlen;
	uint8_t *h;

	NX_INC(st, tcp_rx);
	if (len < NX_TCP_HLEN || !(h = sk_pkt_pullup(p, NX_TCP_HLEN))) {
		NX_INC(st, tcp_short);
		goto drop;
	}
	hlen = (unsigned)(h[12] >> 4) * 4;
	if (hlen < NX_TCP_HLEN || hlen > len) {
		NX_INC(st, tcp_bad_off);
		goto drop;
	}
	if (!(h = sk_pkt_pullup(p, hlen))) {
		NX_INC(st, tcp_short);
		goto drop;
	}
	if (p->ol_flags & SK_PKT_RX_CSUM_BAD) {
		NX_INC(st, tcp_bad_csum);
		goto drop;
	}
	if (!(p->ol_flags & SK_PKT_RX_L4_CSUM_GOOD)) {
		uint32_t sum = nx_csum_pseudo(src, dst, NX_IPPROTO_TCP, (uint16_t)len);
		if (nx_csum_fold(nx_csum_pkt(sum, p, 0, len)) != 0) {
			NX_INC(st, tcp_bad_csum);
			goto drop;
		}
	}
	sg.sport = nx_get16(h);
	sg.dport = nx_get16(h + 2);
	sg.seq = nx_get32(h + 4);
	sg.ack = nx_get32(h + 8);
	sg.flags = h[13] & 0x3f;
	sg.wnd = nx_get16(h + 14);
	sg.len = len - hlen;
	if ((sg.flags & TH_SYN) && (sg.flags & (TH_FIN | TH_RST))) {
		NX_INC(st, tcp_bad_flags);
		goto drop;
	}
	if (!sg.sport || !sg.dport) {
		NX_INC(st, tcp_bad_flags);
		goto drop;
	}
	if (!parse_opts(h, hlen, &sg)) {
		NX_INC(st, tcp_bad_opts);
		goto drop;
	}
	st->stats.tcp_sack_bad += sg.sack_bad;
	pkt_trim_front(p, hlen);

	c = tcp_lookup(st, dst, sg.dport, src, sg.sport);
	if (c && c->state == TCP_TIME_WAIT && (sg.flags & TH_SYN) &&
	    !(sg.flags & TH_ACK) && SEQ_GT(sg.seq, c->rcv_nxt) &&
	    tcp_listener_find(st, dst, sg.dport)) {
		/* A new incarnation of a connection in TIME_WAIT (RFC 9293
		 * 3.6.1): its SYN is past anything the old one sent. */
		tcp_closed(c);
		tcp_maybe_free(c);
		c = NULL;
	}
	if (c) {
		if (c->state == TCP_SYN_SENT) {
			syn_sent_input(c, &sg);
			goto drop;
		}
		tcp_process(c, &sg, p);
		return;
	}
	l = tcp_listener_find(st, dst, sg.dport);
	if (l) {
		listen_input(st, l, &sg, src, dst);
		goto drop;
	}
	NX_INC(st, tcp_no_port);
	tcp_reply_rst(st, src, dst, &sg);
drop:
	sk_pkt_free(p);
}
