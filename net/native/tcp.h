/*
 * tcp.h - private to tcp.c, tcp_in.c, tcp_out.c and tcp_timer.c.
 *
 * One struct tcp_conn per connection, with the app-visible struct sk_sock
 * first (sk_sock * <-> tcp_conn *).  A connection lives as long as either
 * side needs it: the app (owner != OWN_NONE) or the protocol (state !=
 * TCP_CLOSED, i.e. it is in the instance's table).  tcp_maybe_free() frees
 * it once neither does.
 *
 * Sequence space of the send side: the SYN at iss, then the bytes of the
 * socket's output queue s->out (its front byte is snd_una once the SYN is
 * acknowledged), then our FIN at fin_seq.  Nothing is copied until a
 * segment is built: s->out is the send buffer.
 */
#ifndef SK_NET_NATIVE_TCP_H
#define SK_NET_NATIVE_TCP_H

#include "nx.h"
#include "skerry/timer.h"

/* 32-bit sequence arithmetic (RFC 1982 style, through int32_t). */
#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >= 0)

/* Header flags. */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20

#define TCP_WSCALE 7		/* our window shift: 8 MiB windows */
#define TCP_MAX_WSCALE 14	/* RFC 7323 limit for the peer's */
#define TCP_DEFAULT_MSS 536	/* RFC 9293 3.7.1: when the peer says none */
#define TCP_IW_SEGS 10		/* RFC 6928 initial window */
/* Payloads below this are copied out of the packet so that a peer sending
 * tiny segments does not pin a packet buffer per handful of bytes. */
#define TCP_COPY_BELOW 512
#define TCP_CHUNK 4096		/* copy chunk size */
/* Reassembly queue entries per connection.  Besides ooo_max (charged by
 * buffer, not payload), this bounds the cost of a sorted insert. */
#define TCP_OOO_MAX_SEGS 256
/* Window probes an orphan sends before it gives up on a peer that keeps
 * its window shut (Linux's tcp_orphan_retries): nobody waits for that
 * data, and sk_close / shutdown must not be held forever. */
#define TCP_ORPHAN_PROBES 8
/* SACK (RFC 2018, RFC 6675).  The sender's scoreboard keeps at most this
 * many SACKed ranges above snd_una (a peer controls how many it reports;
 * losing the highest one only makes us resend data needlessly). */
#define TCP_SACK_MAX 16
#define TCP_SACK_BLOCKS 4	/* per option: 40 bytes less NOP NOP kind len */
#define TCP_SACK_OLEN (4 + 8 * TCP_SACK_BLOCKS)	/* the most an ACK carries */
#define TCP_DUPTHRESH 3		/* RFC 6675 DupThresh */

enum tcp_state {
	TCP_CLOSED,
	TCP_LISTEN,		/* listeners only */
	TCP_SYN_SENT,
	TCP_SYN_RECEIVED,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSE_WAIT,
	TCP_CLOSING,
	TCP_LAST_ACK,
	TCP_TIME_WAIT,
};

/* Who besides the protocol holds the connection. */
enum tcp_owner {
	OWN_NONE,		/* nobody: orphan (TIME_WAIT, FIN_WAIT_2) */
	OWN_HALF,		/* a listener's half-open SYN_RECEIVED */
	OWN_ACCEPTQ,		/* established, in a listener's accept queue */
	OWN_CONNECT,		/* nx_tcp_connect's promise */
	OWN_APP,		/* the app's sk_sock */
	OWN_CLOSING,		/* sk_close called, its promise not resolved */
};

/*
 * Connections oldest first, so that a bound can make room by ending the
 * oldest: a listener's half-open ones (SYN backlog), the instance's
 * TIME_WAIT ones.  A connection is on one at most.
 */
struct tcp_age_list {
	struct tcp_conn *head, **tail;
	unsigned n;
};

struct tcp_conn {
	struct sk_sock s;		/* first */
	struct nx_stack *st;
	struct tcp_conn *hnext;		/* hash chain */
	struct tcp_conn *dnext, **dprev;	/* dirty list (dprev NULL: off) */
	struct tcp_conn *anext, **aprev;	/* every connection of the instance */
	struct tcp_conn *qnext;		/* accept queue */
	struct tcp_conn *agenext, **ageprev;	/* on @age (a listener's half-open */
	struct tcp_age_list *age;		/* or the TIME_WAIT list), or NULL */
	struct sk_listener *lst;	/* OWN_HALF / OWN_ACCEPTQ */
	struct sk_promise *conn_p;	/* OWN_CONNECT */
	uint32_t lip, rip;
	uint16_t lport, rport;
	uint8_t state;			/* enum tcp_state */
	uint8_t owner;			/* enum tcp_owner */
	bool in_table;
	bool passive;			/* opened by a listener */
	bool ack_now;			/* send an ACK in this round's output */
	bool synack_now;		/* (re)send SYN / SYN-ACK */
	bool fin_queued;		/* app closed: FIN after the output */
	bool fin_sent;			/* fin_seq is valid */
	bool fin_acked;
	bool ws_ok;			/* window scaling negotiated */
	bool in_recovery;		/* fast recovery: NewReno, or SACK */
	bool recover_hold;		/* no fast retransmit until ack > recover */
	bool rtt_timing;
	bool persist;			/* rtx timer runs as persist timer */
	bool rfin;			/* the peer's FIN past a hole, at rfin_seq */
	bool sack_ok;			/* SACK negotiated (RFC 2018) */

	/* Send side. */
	uint32_t iss, snd_una, snd_nxt, snd_max, fin_seq;
	uint32_t snd_wnd, snd_wnd_max, snd_wl1, snd_wl2;
	uint32_t cwnd, ssthresh, recover;
	uint16_t mss;			/* segment size we send */
	uint8_t snd_wscale, rcv_wscale;
	unsigned dupacks;
	unsigned retries;		/* consecutive timeouts */
	unsigned probes;		/* window probes unanswered */
	unsigned probes_total;		/* window probes since the peer last
					 * took data (orphan limit) */
	uint32_t rtt_seq;
	uint64_t rtt_start;
	/* SACK scoreboard (RFC 6675): disjoint, non-adjacent [start, end)
	 * ranges the peer holds above snd_una, sorted; pruned as snd_una
	 * moves.  In loss recovery the holes below high_rxt were resent in
	 * this episode; rxt_fence is snd_max when the latest of those resends
	 * (or the timeout's go-back-N) started: data SACKed above it left
	 * after them, so a hole still below it means a resend was lost. */
	struct tcp_sack_blk {
		uint32_t start, end;
	} sacked[TCP_SACK_MAX];
	unsigned nsacked;
	uint32_t high_rxt, rxt_fence;
	uint64_t srtt, rttvar, rto;	/* ns; srtt 0: no sample yet */
	uint64_t persist_ival;

	/* Receive side. */
	uint32_t irs, rcv_nxt, rcv_adv;	/* rcv_adv: right edge advertised */
	uint32_t last_ack;		/* rcv_nxt of the last ACK sent */
	uint16_t rcv_mss;		/* peer's segments (delayed ACK rule) */
	struct sk_pkt *ooo;		/* out-of-order, by seq, via nextpkt */
	size_t ooo_mem;			/* its buffers' true size (ooo_max) */
	unsigned ooo_segs;		/* its entries (TCP_OOO_MAX_SEGS) */
	uint32_t rfin_seq;
	uint32_t ooo_last;		/* seq of the latest out-of-order arrival:
					 * its SACK block goes first */

	/* Send-buffer cursor: seg of s->out holding offset cur_off. */
	struct sk_seg *cur_seg;
	size_t cur_off;

	struct sk_timer rtx;		/* retransmit / SYN / persist */
	struct sk_timer delack;
	struct sk_timer tw;		/* TIME_WAIT, FIN_WAIT_2, keepalive */
	uint64_t last_rx;		/* keepalive: when the peer last spoke */
	unsigned ka_probes;		/* keepalive probes unanswered */
};

struct sk_listener {
	struct nx_stack *st;
	struct sk_listener *next;
	struct sk_sockaddr addr;
	unsigned backlog;		/* accept queue limit */
	struct tcp_age_list half;	/* half-open connections */
	unsigned qlen;
	struct tcp_conn *qhead, **qtail;
	struct sk_promise *acc;
};

struct nx_tcp {
	struct tcp_conn **tab;
	unsigned tab_mask, nconns;
	uint32_t hseed;
	uint32_t secret[4];		/* ISN key (RFC 6528) */
	struct sk_listener *listeners;
	struct tcp_conn *dirty;
	struct tcp_conn *all;
	struct tcp_age_list tw;		/* TIME_WAIT connections */
	unsigned busy;			/* connections the app holds */
	uint16_t next_port;
};

static inline struct tcp_conn *tcp_of(struct sk_sock *s)
{
	return (struct tcp_conn *)s;
}

static inline uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* The MSS we announce and the most we send (one function, so the two
 * agree): the MTU's, but a segment must also fit one receive buffer -
 * its data room less the TCP header and 40 bytes for Ethernet (with a
 * VLAN tag) and IP. */
static inline uint16_t tcp_our_mss(const struct nx_stack *st)
{
	uint32_t m = (uint32_t)st->mtu - NX_IP_HLEN - NX_TCP_HLEN;
	uint32_t room = SK_PKT_DATAROOM - NX_TCP_HLEN - 40;
	return (uint16_t)min32(m, room);
}

/* Parsed header of a received segment (host order). */
struct tcp_seg {
	uint32_t seq, ack;
	uint16_t sport, dport, wnd;
	uint8_t flags;
	uint16_t mss;			/* 0: none */
	int8_t wscale;			/* -1: none */
	bool sack_perm;			/* SACK-permitted (in a SYN) */
	uint8_t nsack;			/* SACK blocks in sack[] */
	uint8_t sack_bad;		/* SACK options of a bad length */
	uint32_t sack[TCP_SACK_BLOCKS][2];	/* as sent: [start, end) */
	uint32_t len;			/* payload bytes */
};

/* tcp.c */
struct tcp_conn *tcp_lookup(struct nx_stack *st, uint32_t lip, uint16_t lport,
			    uint32_t rip, uint16_t rport);
struct sk_listener *tcp_listener_find(struct nx_stack *st, uint32_t ip, uint16_t port);
struct tcp_conn *tcp_conn_new(struct nx_stack *st, uint32_t lip, uint16_t lport,
			      uint32_t rip, uint16_t rport);
uint32_t tcp_isn(struct nx_stack *st, uint32_t lip, uint16_t lport, uint32_t rip,
		 uint16_t rport);
void tcp_set_state(struct tcp_conn *c, enum tcp_state state);
void tcp_closed(struct tcp_conn *c);
void tcp_fail(struct tcp_conn *c, int err);
void tcp_maybe_free(struct tcp_conn *c);
void tcp_established(struct tcp_conn *c);
/* Keepalive (nx_tcp_tun.keepalive_ns > 0): probe an idle connection. */
void tcp_keepalive_arm(struct tcp_conn *c);
/* Put @c at the end of @l (off any list it was on); take it off its list. */
void tcp_age_add(struct tcp_age_list *l, struct tcp_conn *c);
void tcp_age_del(struct tcp_conn *c);
void tcp_fin_acked(struct tcp_conn *c);
void tcp_mark_dirty(struct tcp_conn *c);

/* tcp_in.c */
/* Forget the reassembly queue (and a FIN past its hole). */
void tcp_ooo_free(struct tcp_conn *c);
/* RFC 2018 blocks describing the reassembly queue, the one holding the
 * latest arrival first; returns how many (at most TCP_SACK_BLOCKS). */
unsigned tcp_sack_blocks(const struct tcp_conn *c, uint32_t blk[][2]);

/* tcp_out.c */
void tcp_output_conn(struct tcp_conn *c);
void tcp_send_ack(struct tcp_conn *c);
void tcp_send_rst(struct tcp_conn *c);
void tcp_reply_rst(struct nx_stack *st, uint32_t src, uint32_t dst,
		   const struct tcp_seg *sg);
void tcp_retransmit_una(struct tcp_conn *c);
void tcp_persist_probe(struct tcp_conn *c);
void tcp_keepalive_probe(struct tcp_conn *c);
uint32_t tcp_rcv_space(const struct tcp_conn *c);
bool tcp_window_update_due(const struct tcp_conn *c);
void tcp_tx_done(struct tcp_conn *c, size_t n);
/* SACK sender (RFC 6675). */
void tcp_sack_clear(struct tcp_conn *c);
void tcp_sack_add(struct tcp_conn *c, uint32_t start, uint32_t end);
void tcp_sack_prune(struct tcp_conn *c);
void tcp_sack_enter_recovery(struct tcp_conn *c);
void tcp_sack_loss_check(struct tcp_conn *c, bool advanced);

/* tcp_timer.c */
void tcp_timers_init(struct tcp_conn *c);
void tcp_timers_stop(struct tcp_conn *c);
void tcp_rtx_arm(struct tcp_conn *c);
void tcp_rtx_restart(struct tcp_conn *c);
/* Zero send window with data to send: probe instead of sending. */
void tcp_persist_enter(struct tcp_conn *c);
void tcp_rtt_sample(struct tcp_conn *c, uint64_t rtt);
void tcp_delack_arm(struct tcp_conn *c);
void tcp_time_wait_arm(struct tcp_conn *c);
void tcp_fin_wait2_arm(struct tcp_conn *c);

#endif /* SK_NET_NATIVE_TCP_H */
