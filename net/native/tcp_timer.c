/*
 * tcp_timer.c - the timers of a connection.
 *
 * Roadmap: three sk_timers per connection, all SK_TIMER_BACKGROUND (a
 * connection's own state says whether shutdown must wait, not its timers):
 *   rtx     retransmission (RFC 6298: SRTT/RTTVAR, Karn, backoff, bounds)
 *           -> rtx_fire: SYN / SYN-ACK again, or go back to snd_una with
 *           cwnd = 1 MSS (RFC 5681 3.1); or, with a zero send window and
 *           data to send, the persist timer sending window probes.
 *   delack  the delayed ACK (RFC 1122 4.2.3.2, RFC 5681 4.2).
 *   tw      TIME_WAIT (2 MSL), the FIN_WAIT_2 limit for orphans, and
 *           keepalive while ESTABLISHED / CLOSE_WAIT (when enabled).
 * Timers only mark the connection dirty or act on it; segments leave
 * through tcp_output_conn like everything else.
 */
#include <errno.h>

#include "tcp.h"

static uint64_t clamp_rto(uint64_t rto)
{
	if (rto < nx_tcp_tun.rto_min_ns)
		rto = nx_tcp_tun.rto_min_ns;
	if (rto > nx_tcp_tun.rto_max_ns)
		rto = nx_tcp_tun.rto_max_ns;
	return rto;
}

/* RFC 6298 2.2 / 2.3, in ns (G: clock granularity, 1 ms). */
void tcp_rtt_sample(struct tcp_conn *c, uint64_t r)
{
	uint64_t g = SK_NSEC_PER_MSEC, var4;

	if (!r)
		r = 1;
	if (!c->srtt) {
		c->srtt = r;
		c->rttvar = r / 2;
	} else {
		uint64_t d = c->srtt > r ? c->srtt - r : r - c->srtt;
		c->rttvar = (3 * c->rttvar + d) / 4;
		c->srtt = (7 * c->srtt + r) / 8;
	}
	var4 = 4 * c->rttvar;
	c->rto = clamp_rto(c->srtt + (var4 > g ? var4 : g));
}

static void rtx_fire(struct sk_timer *t)
{
	struct tcp_conn *c = t->arg;
	struct nx_stack *st = c->st;

	if (c->persist) {
		bool orphan = c->owner == OWN_NONE || c->owner == OWN_CLOSING;

		/* Persist: probe and back off.  A peer that answers is alive,
		 * just not reading, and gets all the time it needs - unless
		 * nobody waits for the data any more: an orphan gives up
		 * after TCP_ORPHAN_PROBES without the peer taking a byte (a
		 * window opened now and then does not reset that), so that
		 * its sk_close resolves and shutdown is not held forever.  A
		 * peer that stays silent through data_retries probes is gone,
		 * as with retransmissions. */
		if (c->probes >= nx_tcp_tun.data_retries ||
		    (orphan && c->probes_total >= TCP_ORPHAN_PROBES)) {
			NX_INC(st, tcp_conn_timeouts);
			tcp_send_rst(c);
			tcp_fail(c, -ETIMEDOUT);
			return;
		}
		c->probes++;
		c->probes_total++;
		tcp_persist_probe(c);
		c->persist_ival = clamp_rto(c->persist_ival * 2);
		sk_timer_arm(&c->rtx, c->persist_ival);
		return;
	}
	if (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RECEIVED) {
		if (++c->retries > nx_tcp_tun.syn_retries) {
			NX_INC(st, tcp_conn_timeouts);
			tcp_fail(c, -ETIMEDOUT);
			return;
		}
		NX_INC(st, tcp_rto_timeouts);
		NX_INC(st, tcp_retransmits);
		c->rto = clamp_rto(c->rto * 2);
		c->synack_now = true;
		tcp_mark_dirty(c);
		return;
	}
	if (c->snd_una == c->snd_max)
		return;	/* everything acknowledged meanwhile */
	if (c->snd_wnd == 0 && c->s.out.bytes && !c->s.err) {
		/* The window closed under the flight: what is out is not
		 * lost, it did not fit - probe rather than count a loss. */
		tcp_persist_enter(c);
		return;
	}
	if (++c->retries > nx_tcp_tun.data_retries) {
		NX_INC(st, tcp_conn_timeouts);
		if (c->state != TCP_TIME_WAIT)
			tcp_send_rst(c);
		tcp_fail(c, -ETIMEDOUT);
		return;
	}
	NX_INC(st, tcp_rto_timeouts);
	/* RFC 5681 (4): ssthresh from the flight, loss window 1 MSS; RFC
	 * 6582: leave recovery, no fast retransmit for this flight. */
	uint32_t flight = c->snd_max - c->snd_una;
	c->ssthresh = flight / 2 > 2u * c->mss ? flight / 2 : 2u * c->mss;
	c->cwnd = c->mss;
	c->in_recovery = false;
	c->recover = c->snd_max;
	c->recover_hold = true;
	c->dupacks = 0;
	c->rtt_timing = false;
	c->rto = clamp_rto(c->rto * 2);
	/* SACK: the go-back-N below skips what the scoreboard says the peer
	 * holds (RFC 6675 5.1), and data SACKed above rxt_fence was sent
	 * after those resends (tcp_sack_loss_check).  A peer may renege on
	 * what it SACKed (RFC 2018 8): after repeated timeouts without
	 * progress, forget the scoreboard and resend everything. */
	c->rxt_fence = c->snd_max;
	c->high_rxt = c->snd_una;
	if (c->retries > 2)
		tcp_sack_clear(c);
	/* Go back N: send again from the first unacknowledged byte (our
	 * FIN, if that is all that is left: send_fin resends it). */
	c->snd_nxt = c->snd_una;
	sk_timer_arm(&c->rtx, c->rto);
	tcp_mark_dirty(c);
}

void tcp_rtx_arm(struct tcp_conn *c)
{
	if (!sk_timer_armed(&c->rtx))
		sk_timer_arm(&c->rtx, c->rto);
}

/* New data acknowledged: the clock starts over for the rest (RFC 6298
 * 5.3), or stops when nothing is outstanding (5.2). */
void tcp_rtx_restart(struct tcp_conn *c)
{
	if (c->persist)
		return;
	if (c->snd_una == c->snd_max)
		sk_timer_cancel(&c->rtx);
	else
		sk_timer_arm(&c->rtx, c->rto);
}

/*
 * Zero send window with data to send (RFC 9293 3.8.6.1): the rtx timer
 * becomes the persist timer.  What is in flight past the closed window
 * did not fit: it goes again from snd_una once the window opens.
 */
void tcp_persist_enter(struct tcp_conn *c)
{
	if (c->persist)
		return;
	c->persist = true;
	c->snd_nxt = c->snd_una;
	c->rtt_timing = false;
	c->retries = 0;
	c->probes = 0;
	c->persist_ival = clamp_rto(c->rto);
	sk_timer_arm(&c->rtx, c->persist_ival);
}

static void delack_fire(struct sk_timer *t)
{
	struct tcp_conn *c = t->arg;

	if (c->last_ack != c->rcv_nxt) {
		c->ack_now = true;
		tcp_mark_dirty(c);
	}
}

void tcp_delack_arm(struct tcp_conn *c)
{
	if (!sk_timer_armed(&c->delack))
		sk_timer_arm(&c->delack, nx_tcp_tun.delack_ns);
}

/*
 * Keepalive (RFC 1122 4.2.3.6, off unless nx_tcp_tun.keepalive_ns): after
 * that much silence from the peer, send probes (an old sequence number,
 * which the peer must ACK) every keepalive_intvl_ns; after
 * keepalive_probes unanswered ones the connection fails with -ETIMEDOUT.
 */
void tcp_keepalive_arm(struct tcp_conn *c)
{
	if (!nx_tcp_tun.keepalive_ns)
		return;
	c->last_rx = sk_now_ns();
	c->ka_probes = 0;
	sk_timer_arm(&c->tw, nx_tcp_tun.keepalive_ns);
}

static void keepalive_fire(struct tcp_conn *c)
{
	uint64_t idle = sk_now_ns() - c->last_rx;

	if (idle < nx_tcp_tun.keepalive_ns && !c->ka_probes) {
		sk_timer_arm(&c->tw, nx_tcp_tun.keepalive_ns - idle);
		return;
	}
	if (c->ka_probes >= nx_tcp_tun.keepalive_probes) {
		NX_INC(c->st, tcp_conn_timeouts);
		tcp_send_rst(c);
		tcp_fail(c, -ETIMEDOUT);
		return;
	}
	c->ka_probes++;
	NX_INC(c->st, tcp_keepalive_probes);
	tcp_keepalive_probe(c);
	sk_timer_arm(&c->tw, nx_tcp_tun.keepalive_intvl_ns);
}

static void tw_fire(struct sk_timer *t)
{
	struct tcp_conn *c = t->arg;

	switch (c->state) {
	case TCP_TIME_WAIT:
	case TCP_FIN_WAIT_2:
		/* TIME_WAIT over, or an orphan in FIN_WAIT_2 waited long
		 * enough for the peer's FIN. */
		tcp_closed(c);
		tcp_maybe_free(c);
		break;
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
		keepalive_fire(c);
		break;
	default:
		break;	/* a keepalive left over from ESTABLISHED: closing now */
	}
}

void tcp_time_wait_arm(struct tcp_conn *c)
{
	sk_timer_cancel(&c->rtx);
	sk_timer_cancel(&c->delack);
	c->persist = false;
	sk_timer_arm(&c->tw, nx_tcp_tun.time_wait_ns);
}

void tcp_fin_wait2_arm(struct tcp_conn *c)
{
	sk_timer_arm(&c->tw, nx_tcp_tun.fin_wait2_ns);
}

void tcp_timers_init(struct tcp_conn *c)
{
	sk_timer_init(&c->rtx, rtx_fire, c);
	sk_timer_init(&c->delack, delack_fire, c);
	sk_timer_init(&c->tw, tw_fire, c);
	c->rtx.flags = c->delack.flags = c->tw.flags = SK_TIMER_BACKGROUND;
}

void tcp_timers_stop(struct tcp_conn *c)
{
	sk_timer_cancel(&c->rtx);
	sk_timer_cancel(&c->delack);
	sk_timer_cancel(&c->tw);
	c->persist = false;
}
