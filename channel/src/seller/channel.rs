//! Per-channel state of a seller stream: the go-back-N sender, what is owed, the stop.

use std::collections::VecDeque;
use std::sync::Arc;

use alloy_primitives::{Address, U256};

use crate::sign::{PublicKey, Signature};
use crate::types::{ChannelId, Offer, Stop, UnixMs};

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    /// Stopped off-chain: nothing sent at or after `stop_end`.
    Stopping {
        by_seller: bool,
    },
    /// `requestClose` happened on-chain.
    Closing {
        at_secs: u64,
    },
    Settled,
}

/// A posting of one message, requested or confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Posting {
    pub(super) confirmed: bool,
    pub(super) timestamp: UnixMs,
    /// Block time (seconds) by which the posting was mined, once confirmed: exact when the
    /// caller reports it (`on_posted_at`), else an upper bound (the engine's clock when it
    /// learnt of it). `claimPosted` on a Closing channel needs it by `close + T_ack`.
    pub(super) mined_by: Option<u64>,
}

/// A pending offer (not opened yet).
#[derive(Clone, Debug)]
pub(super) struct PendingOffer {
    pub(super) offer: Offer,
    pub(super) sig: Signature,
    pub(super) buyer_key: PublicKey,
}

/// A channel's stop, as persisted.
#[derive(Debug, Clone)]
pub(super) struct StopRec {
    pub(super) stop: Stop,
    pub(super) sig: Signature,
    pub(super) by_seller: bool,
    /// What the channel is owed from then on (see `Channel::owed_end`).
    pub(super) owed_end: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Channel {
    pub(super) id: ChannelId,
    pub(super) offer: Offer,
    pub(super) offer_sig: Signature,
    pub(super) stop_rec: Option<StopRec>,
    pub(super) buyer: Address,
    pub(super) buyer_key: PublicKey,
    pub(super) start: u64,
    pub(super) window: u64,
    pub(super) price: U256,
    pub(super) t_ack_ms: u64,
    pub(super) t_closure_ms: u64,
    pub(super) deposit: U256,
    pub(super) phase: Phase,
    /// Exclusive end of what may be sent (from a Stop / close).
    pub(super) stop_end: Option<u64>,
    /// Exclusive end of what this channel is owed, hence of what may be posted for it or claimed
    /// with `claimPosted`: at a stop (either side's), everything sent by then (the buyer may hold
    /// it, whatever its `Stop` says); at the close, what was stamped before it. Only ever lowered.
    pub(super) owed_end: Option<u64>,
    /// `StopCompleted` was emitted (once per channel and engine run).
    pub(super) stop_done: bool,
    /// The last call for `claimPosted` while closing (see `claim_posted_last_call`); `None` once
    /// handled.
    pub(super) claim_posted_call: Option<UnixMs>,
    pub(super) verified: Option<SignedAck>,
    pub(super) pending: Option<(SignedAck, UnixMs)>,
    /// `R` as confirmed by the judge.
    pub(super) claimed: U256,
    /// Highest ack cost submitted in a claim.
    pub(super) claim_submitted: U256,
    pub(super) posted_claim: Option<u64>,
    pub(super) link_up: bool,
    pub(super) next_send: u64,
    /// First transmission time of seqs `[sent_base, sent_base + sent_at.len())`.
    pub(super) sent_base: u64,
    pub(super) sent_at: SendTimes,
    pub(super) rto_at: Option<UnixMs>,
    pub(super) settle_at: Option<UnixMs>,
    pub(super) accused: Option<u64>,
    /// The seller's own signed `Stop` for this channel (its own stop, or its answer to the
    /// buyer's), kept to answer an accusation past it with `submitStop` and to close
    /// cooperatively. Any Stop at the same seq has the same effect on-chain, so it is signed
    /// again after a restart rather than persisted.
    pub(super) own_stop: Option<(Stop, Signature)>,
    /// `CloseCooperatively` was emitted (once per channel and engine run).
    pub(super) coop_sent: bool,
    /// That `CloseCooperatively` is out and has not failed: it pays the buyer's ack at the Stop
    /// (`min(C - R, F - R)`), so that ack is not claimed meanwhile.
    pub(super) coop_pending: bool,
    /// Our own stop completed while the cooperative close was out: `RequestClose` if it fails.
    pub(super) close_after_coop: bool,
}

impl Channel {
    pub(super) fn base_v(&self) -> u64 {
        self.verified
            .as_ref()
            .map_or(self.start, |a| a.ack.seq.saturating_add(1))
    }
    pub(super) fn base_hint(&self) -> u64 {
        let p = self
            .pending
            .as_ref()
            .map_or(self.start, |(a, _)| a.ack.seq.saturating_add(1));
        self.base_v().max(p)
    }
    pub(super) fn best_seq(&self) -> Option<u64> {
        let v = self.verified.as_ref().map(|a| a.ack.seq);
        let p = self.pending.as_ref().map(|(a, _)| a.ack.seq);
        v.max(p)
    }
    pub(super) fn high_sent(&self) -> u64 {
        self.sent_base + self.sent_at.len()
    }
    /// Exclusive end of what the current deposit pays for: the seller sends nothing at or after
    /// it (`(n - start + 1) * P <= F`), so nothing it delivers goes unpaid.
    pub(super) fn deposit_end(&self) -> u64 {
        let covered = self.deposit.checked_div(self.price).unwrap_or_default();
        let covered = u64::try_from(covered).unwrap_or(u64::MAX);
        self.start.saturating_add(covered)
    }
    /// Exclusive end of what the seller's own `Stop` leaves owed (`None`: no Stop signed).
    pub(super) fn own_stop_end(&self) -> Option<u64> {
        self.own_stop
            .as_ref()
            .map(|(s, _)| s.seq.saturating_add(1).max(self.start))
    }
    /// The seq of the seller's Stop answering the buyer's (`r`): the last seq it owes, and
    /// never below a posted claim already recorded (the judge would take that Stop as proof
    /// against the seller: `StopViolationProven`).
    pub(super) fn answer_stop_seq(&self, r: &StopRec) -> u64 {
        r.owed_end
            .saturating_sub(1)
            .max(self.posted_claim.unwrap_or(0))
    }
    pub(super) fn t_off_ack(&self, delta: u64) -> u64 {
        self.t_ack_ms.saturating_sub(delta)
    }
    pub(super) fn sending(&self) -> bool {
        matches!(
            self.phase,
            Phase::Open | Phase::Stopping { .. } | Phase::Closing { .. }
        )
    }
}

/// Lowers what `c` owes (`owed_end`) and sends (`stop_end`) to `end`, and forgets the first-send
/// times of the messages at or after it: they will be neither retransmitted nor posted for `c`.
pub(super) fn cap_owed(c: &mut Channel, end: u64) {
    c.owed_end = Some(c.owed_end.map_or(end, |e| e.min(end)));
    c.stop_end = Some(c.stop_end.map_or(end, |e| e.min(end)));
    c.sent_at.truncate(end.saturating_sub(c.sent_base));
}

/// Keeps the retransmission timer armed exactly while something sent is unacked.
pub(super) fn arm_rto(c: &mut Channel, now: UnixMs, rto: u64) {
    if c.link_up && c.sending() && c.base_hint() < c.high_sent() {
        if c.rto_at.is_none() {
            c.rto_at = Some(now.saturating_add(rto));
        }
    } else {
        c.rto_at = None;
    }
}

/// Queues the frames the link and the window allow on `c`, up to `head`. `run`, when given, holds
/// the frames of the messages from its first seq to `head`, just published: a channel that is due
/// exactly those gets the run itself. Returns `true` if the window is full while an unverified ack
/// is pending (verifying it may free the window).
pub(super) fn send_window(
    c: &mut Channel,
    log: &VecDeque<Arc<SignedMessage>>,
    log_base: u64,
    (head, run): (u64, Option<(u64, &FrameRun)>),
    now: UnixMs,
    actions: &mut VecDeque<SellerAction>,
    stats: &mut SellerStats,
) -> bool {
    if !c.link_up || !c.sending() {
        return false;
    }
    let limit = c
        .stop_end
        .map_or(head, |e| e.min(head))
        .min(c.deposit_end());
    let window_end = c.base_v().saturating_add(c.window);
    if let Some((first, run)) = run
        && !run.is_empty()
        && c.next_send == first
        && c.high_sent() <= first
        && (c.sent_at.is_empty() || c.high_sent() == first)
        && first.saturating_add(run.len() as u64) <= limit.min(window_end)
    {
        if c.sent_at.is_empty() {
            c.sent_base = first;
        }
        c.sent_at.push_n(now, run.len() as u64);
        c.next_send = first + run.len() as u64;
        stats.frames_sent += run.len() as u64;
        actions.push_back(SellerAction::Send {
            peer: c.buyer,
            frames: Arc::clone(run),
        });
        return false;
    }
    // One action carries every frame of this call: with many buyers, a batch costs each channel
    // one action and a reference per frame, not an action per message (issue 11's fan-out).
    let due = limit.min(window_end).saturating_sub(c.next_send);
    let mut frames = Vec::with_capacity(usize::try_from(due).unwrap_or(0));
    let mut blocked = false;
    while c.next_send < limit {
        if c.next_send >= window_end {
            blocked = c.pending.is_some();
            break;
        }
        let seq = c.next_send;
        let m = seq
            .checked_sub(log_base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| log.get(i));
        let Some(m) = m else {
            // Not held (pruned): nothing sensible to send; skip ahead.
            c.next_send = seq.saturating_add(1);
            continue;
        };
        if seq >= c.high_sent() {
            if c.sent_at.is_empty() {
                c.sent_base = seq;
            }
            c.sent_at.push_back(now);
        } else {
            stats.retransmits += 1;
        }
        c.next_send = seq + 1;
        stats.frames_sent += 1;
        frames.push(m.frame.clone());
    }
    if !frames.is_empty() {
        actions.push_back(SellerAction::Send {
            peer: c.buyer,
            frames: frames.into(),
        });
    }
    blocked
}

/// First transmission times of consecutive seqs, run-length encoded: the messages of one pump
/// leave at the same time, so a channel keeps one entry per pump and not one per message (with
/// many buyers, an entry per message and channel was a good part of the seller's per-channel
/// cost, and of its memory with a large window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SendTimes {
    /// (time, how many consecutive seqs were first sent then).
    runs: VecDeque<(UnixMs, u64)>,
    len: u64,
}

/// Runs an idle channel keeps room for.
const IDLE_RUNS: usize = 4;

impl SendTimes {
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The time of the `i`-th seq from the front.
    pub(super) fn get(&self, mut i: u64) -> Option<UnixMs> {
        for (t, n) in &self.runs {
            if i < *n {
                return Some(*t);
            }
            i -= n;
        }
        None
    }

    pub(super) fn push_back(&mut self, t: UnixMs) {
        self.push_n(t, 1);
    }

    /// `n` more seqs first sent at `t`.
    pub(super) fn push_n(&mut self, t: UnixMs, n: u64) {
        if n == 0 {
            return;
        }
        match self.runs.back_mut() {
            Some((last, count)) if *last == t => *count += n,
            _ => self.runs.push_back((t, n)),
        }
        self.len += n;
    }

    /// Forgets the first `n` seqs (all of them if fewer).
    pub(super) fn pop_front_n(&mut self, mut n: u64) {
        while n > 0 {
            let Some((_, count)) = self.runs.front_mut() else { break };
            let k = n.min(*count);
            *count -= k;
            self.len -= k;
            n -= k;
            if *count == 0 {
                self.runs.pop_front();
            }
        }
        // Everything sent is acked: an idle channel gives its buffer back (a busy one grows it
        // again once per window, not per message).
        if self.runs.is_empty() && self.runs.capacity() > IDLE_RUNS {
            self.runs.shrink_to(IDLE_RUNS);
        }
    }

    /// Keeps the first `len` seqs only.
    pub(super) fn truncate(&mut self, len: u64) {
        while self.len > len {
            let Some((_, count)) = self.runs.back_mut() else { break };
            let k = (self.len - len).min(*count);
            *count -= k;
            self.len -= k;
            if *count == 0 {
                self.runs.pop_back();
            }
        }
    }
}

impl FromIterator<UnixMs> for SendTimes {
    fn from_iter<I: IntoIterator<Item = UnixMs>>(iter: I) -> SendTimes {
        let mut times = SendTimes::default();
        for t in iter {
            times.push_back(t);
        }
        times
    }
}

#[cfg(test)]
mod tests {
    use super::SendTimes;

    /// The run-length encoding answers as the plain per-seq list it replaces.
    #[test]
    fn send_times_behave_as_a_list_of_times() {
        let mut times = SendTimes::default();
        let mut list = std::collections::VecDeque::new();
        let check = |times: &SendTimes, list: &std::collections::VecDeque<u64>| {
            assert_eq!(times.len(), list.len() as u64);
            for i in 0..list.len() as u64 + 2 {
                assert_eq!(times.get(i), list.get(i as usize).copied(), "seq {i} of {list:?}");
            }
        };
        for (t, n) in [(5, 3), (5, 2), (7, 1), (9, 4), (9, 0), (11, 2)] {
            times.push_n(t, n);
            list.extend(std::iter::repeat_n(t, n as usize));
            check(&times, &list);
        }
        assert_eq!(times.runs.len(), 4, "equal times share a run");
        times.pop_front_n(4);
        list.drain(..4);
        check(&times, &list);
        times.truncate(5);
        list.truncate(5);
        check(&times, &list);
        times.truncate(9);
        check(&times, &list);
        times.pop_front_n(100);
        list.clear();
        check(&times, &list);
        assert!(times.is_empty() && times.runs.is_empty());
        let collected: SendTimes = [1, 1, 2, 3, 3].into_iter().collect();
        assert_eq!(collected.runs.len(), 3);
        assert_eq!(collected.get(4), Some(3));
    }
}
