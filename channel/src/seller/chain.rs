//! Chain decisions (claims, postings, posted claims) and chain notifications.

use alloy_primitives::U256;

use crate::records::SellerRecord;
use crate::types::{ChannelId, UnixMs};

use super::*;

impl Stream {
    // ----- chain decisions -------------------------------------------------------------------

    pub(super) fn maybe_claim(&mut self, id: ChannelId) {
        let Some(threshold) = self.cfg.claim_threshold else {
            return;
        };
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let best_cost = c
            .pending
            .as_ref()
            .map(|(p, _)| p.ack.cost)
            .or(c.verified.as_ref().map(|v| v.ack.cost));
        if best_cost.is_some_and(|cost| cost.saturating_sub(c.claim_submitted) >= threshold) {
            self.verify_pending(id);
            self.claim_best(id);
        }
    }

    /// Claims the best verified ack if it is worth more than what was submitted. Not while a
    /// cooperative close is out (or can go out now): it pays that ack itself, and a claim would
    /// only cost a transaction; the claim follows if it fails.
    pub(super) fn claim_best(&mut self, id: ChannelId) {
        self.maybe_close_cooperatively(id);
        let Some(c) = self.channels.get_mut(&id) else {
            return;
        };
        if c.phase == Phase::Settled || c.coop_pending {
            return;
        }
        if let Some(v) = &c.verified
            && v.ack.cost > c.claim_submitted
            && v.ack.cost > c.claimed
        {
            c.claim_submitted = v.ack.cost;
            let (ack, sig) = (v.ack.clone(), v.sig);
            self.actions.push_back(SellerAction::Claim {
                channel: id,
                ack,
                sig,
            });
        }
    }

    pub(super) fn check_stop_done(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Phase::Stopping { by_seller } = c.phase else {
            return;
        };
        if c.stop_done {
            // Done and reported; a better ack that arrives now is still worth claiming.
            self.verify_pending(id);
            self.claim_best(id);
            return;
        }
        let Some(end) = c.stop_end else { return };
        if c.base_hint() < end {
            let all_posted = (c.base_hint()..end).all(|s| self.posts.contains_key(&s));
            if !all_posted {
                return;
            }
        }
        self.verify_pending(id);
        self.claim_best(id);
        self.actions
            .push_back(SellerAction::Event(SellerEvent::StopCompleted {
                channel: id,
            }));
        // With cooperative close on, the buyer holds back its `requestClose` (it may never come:
        // a buyer that stops and leaves), so the seller requests the close of any completed stop
        // itself, unless its cooperative close is out: then only if that fails.
        if let Some(c) = self.channels.get_mut(&id)
            && (by_seller || self.cfg.cooperative_close)
        {
            if c.coop_pending {
                c.close_after_coop = true;
            } else {
                self.actions
                    .push_back(SellerAction::RequestClose { channel: id });
            }
        }
        if let Some(c) = self.channels.get_mut(&id) {
            // Done off-chain; the channel waits for the chain's close.
            c.stop_done = true;
            c.phase = Phase::Stopping { by_seller: false };
            c.stop_end = Some(c.base_hint().min(end));
            c.link_up = c.link_up && c.base_hint() < end;
        }
    }

    /// Posting deadline of the first unposted, unacked, sent message of `c`.
    pub(super) fn post_deadline(&self, c: &Channel) -> Option<(u64, UnixMs)> {
        if !c.sending() {
            return None;
        }
        let mut s = c.base_v().max(c.sent_base);
        // Nothing the buyer refuses (past its Stop) or that cannot be claimed (stamped after the
        // close) is posted for this channel.
        let high = c.high_sent().min(c.owed_end.unwrap_or(u64::MAX));
        while s < high {
            if !self.posts.contains_key(&s) {
                let first = c.sent_at.get(s - c.sent_base)?;
                let ts = self.message(s).map_or(first, |m| m.message.timestamp);
                let mut deadline = ts
                    .max(first)
                    .saturating_add(c.t_off_ack(self.cfg.delta_onchain_ms));
                if let Phase::Closing { at_secs } = c.phase {
                    // Anyone may settle at close + T_closure: what is still unacked must be
                    // posted, and the posting claimed (two transactions), before then.
                    let last_call = at_secs
                        .saturating_mul(1000)
                        .saturating_add(c.t_closure_ms)
                        .saturating_sub(
                            self.cfg
                                .delta_onchain_ms
                                .saturating_mul(2)
                                .saturating_add(self.cfg.chain_grace_ms),
                        );
                    deadline = deadline.min(last_call);
                }
                return Some((s, deadline));
            }
            s += 1;
        }
        None
    }

    pub(super) fn post(&mut self, seq: u64) {
        if self.posts.contains_key(&seq) {
            return;
        }
        if let Some(m) = self.message(seq).cloned() {
            self.posts.insert(
                seq,
                Posting {
                    confirmed: false,
                    timestamp: m.message.timestamp,
                    mined_by: None,
                },
            );
            self.stats.posts += 1;
            self.actions.push_back(SellerAction::Post(m));
        }
    }

    // ----- chain notifications ---------------------------------------------------------------

    /// A `Posted` event for `seq` of this stream was seen on-chain, mined at an unknown block
    /// time: it is taken as mined by `now` (see [`on_posted_at`](Self::on_posted_at)).
    pub fn on_posted(&mut self, now: UnixMs, seq: u64) {
        self.on_posted_at(now, seq, now.div_ceil(1000));
    }

    /// A `Posted` event for `seq` of this stream was seen on-chain, mined in a block of time
    /// `mined_at_secs` (the judge's `postedAt`). A `claimPosted` on a Closing channel only
    /// covers postings mined by `closeRequestedAt + T_ack` (else the judge refuses it:
    /// `PostedAfterClose`).
    pub fn on_posted_at(&mut self, now: UnixMs, seq: u64, mined_at_secs: u64) {
        self.tick(now);
        // Seen again: only a better (earlier) block time matters, e.g. the exact `postedAt`
        // after the event.
        let seen_before = self.posts.get(&seq).is_some_and(|p| p.confirmed);
        if seen_before
            && self
                .posts
                .get(&seq)
                .is_some_and(|p| p.mined_by.is_none_or(|t| t <= mined_at_secs))
        {
            return;
        }
        let Some(timestamp) = self
            .posts
            .get(&seq)
            .map(|p| p.timestamp)
            .or_else(|| self.message(seq).map(|m| m.message.timestamp))
        else {
            return;
        };
        self.posts.insert(
            seq,
            Posting {
                confirmed: true,
                timestamp,
                mined_by: Some(mined_at_secs),
            },
        );
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::PostedAt {
                seq,
                timestamp,
                mined_at_secs,
            }));
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        if seen_before {
            for id in ids {
                self.maybe_claim_posted(id, false);
            }
            return;
        }
        for id in ids {
            if self
                .channels
                .get(&id)
                .is_some_and(|c| c.accused == Some(seq))
            {
                // The posting is mined: it answers the accusation if it was mined by the
                // judge's posting limit, whenever `defend` lands (else `resolve` decides).
                self.actions.push_back(SellerAction::Defend { channel: id });
            }
            self.check_stop_done(id);
            self.maybe_claim_posted(id, false);
        }
    }

    /// A `Post` action failed (the transaction reverted or was dropped): it will be retried.
    pub fn on_post_failed(&mut self, now: UnixMs, seq: u64) {
        self.tick(now);
        if self.posts.get(&seq).is_some_and(|p| !p.confirmed) {
            self.posts.remove(&seq);
        }
        if self.channels.values().any(|c| c.accused == Some(seq)) {
            // `Defend` follows once it is mined (`on_posted`).
            self.post(seq);
        }
    }

    /// The judge's claimed total `R` for `channel` changed (a `Claimed` event).
    pub fn on_claimed(&mut self, now: UnixMs, channel: ChannelId, total: U256) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel)
            && total > c.claimed
        {
            c.claimed = total;
            c.claim_submitted = c.claim_submitted.max(total);
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Claimed {
                    channel_id: channel,
                    total,
                }));
        }
    }

    /// The buyer topped up `channel` (a `ToppedUp` event): its deposit is now `deposit`. Sending
    /// resumes up to what the new deposit pays for.
    pub fn on_topped_up(&mut self, now: UnixMs, channel: ChannelId, deposit: U256) {
        self.tick(now);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        if deposit <= c.deposit {
            return;
        }
        c.deposit = deposit;
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::ToppedUp {
                channel_id: channel,
                deposit,
            }));
        self.pump(channel);
    }

    /// A `Claim` action failed: the ack may be claimed again.
    pub fn on_claim_failed(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.claim_submitted = c.claimed;
        }
    }

    /// `requestClose` was mined for `channel` at `at_secs` (chain time). The seller claims its
    /// best ack, then the posted messages after it, within `T_closure`.
    pub fn on_close_requested(&mut self, now: UnixMs, channel: ChannelId, at_secs: u64) {
        self.tick(now);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        if matches!(c.phase, Phase::Closing { .. } | Phase::Settled) {
            return;
        }
        c.phase = Phase::Closing { at_secs };
        self.apply_close_end(channel, at_secs);
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::CloseRequested {
                channel_id: channel,
                at_secs,
            }));
        self.update_members();
        self.verify_pending(channel);
        self.claim_best(channel);
        self.maybe_claim_posted(channel, false);
    }

    /// Messages stamped after the close request cannot be claimed: send none of them, post none
    /// of them for this channel. Also arms the last call for `claimPosted`.
    pub(super) fn apply_close_end(&mut self, id: ChannelId, at_secs: u64) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let close_ms = at_secs.saturating_mul(1000);
        let before_close = |mut end: u64| {
            end = end.min(self.next_seq);
            while end > c.start
                && self
                    .message(end - 1)
                    .is_some_and(|m| m.message.timestamp > close_ms)
            {
                end -= 1;
            }
            end
        };
        // Separately: `stop_end` may already be below what is owed (a completed stop no longer
        // sends what it posted), and what is owed must not shrink to it.
        let send_end = before_close(c.stop_end.unwrap_or(self.next_seq));
        let owed_end = before_close(c.owed_end.unwrap_or(self.next_seq));
        let last_call = self.claim_posted_last_call(c, at_secs);
        if let Some(c) = self.channels.get_mut(&id) {
            cap_owed(c, owed_end);
            c.stop_end = Some(c.stop_end.map_or(send_end, |e| e.min(send_end)));
            c.claim_posted_call = Some(last_call);
        }
    }

    /// The last moment for `claimPosted` after a close at `at_secs`: it must be mined before
    /// anyone can settle (`close + T_closure`). Postings are requested up to `Δ` before it (see
    /// `post_deadline`), so every posting the engine asked for is confirmed by then.
    pub(super) fn claim_posted_last_call(&self, c: &Channel, at_secs: u64) -> UnixMs {
        at_secs
            .saturating_mul(1000)
            .saturating_add(c.t_closure_ms)
            .saturating_sub(
                self.cfg
                    .delta_onchain_ms
                    .saturating_add(self.cfg.chain_grace_ms),
            )
    }

    /// While closing: one `claimPosted` for the longest run of **confirmed** postings (seen in a
    /// `Posted` event) right after the best verified ack (claimed before it), at most `W` long,
    /// below `owed_end` and stamped before the close. It is sent as soon as the run cannot grow
    /// any more (it reaches `W` or `owed_end`), else at the last call (`final_call`), so postings
    /// that arrive one by one (another account's, or after a restart) make one claim, not one
    /// per event, and a posting that was requested but never mined is never claimed.
    pub(super) fn maybe_claim_posted(&mut self, id: ChannelId, final_call: bool) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Phase::Closing { at_secs } = c.phase else {
            return;
        };
        let close_ms = at_secs.saturating_mul(1000);
        // What was in flight at the close had T_ack to be mined (`PostedAfterClose`).
        let mined_limit = at_secs.saturating_add(c.t_ack_ms / 1000);
        let first = c.base_v();
        // Never past the seller's own Stop (`PastSellerStop`, or worse `StopViolationProven`).
        let limit = first
            .saturating_add(c.window)
            .min(c.owed_end.unwrap_or(u64::MAX))
            .min(c.own_stop_end().unwrap_or(u64::MAX));
        let mut upto = None;
        let mut s = first;
        while s < limit
            && self.posts.get(&s).is_some_and(|p| {
                p.confirmed
                    && p.timestamp <= close_ms
                    && p.mined_by.is_none_or(|t| t <= mined_limit)
            })
        {
            upto = Some(s);
            s += 1;
        }
        let Some(upto) = upto else { return };
        if c.posted_claim.is_some_and(|p| p >= upto) {
            return;
        }
        // A posting mined too late ends the run for good: claim what precedes it now.
        let complete = s >= limit || self.posts.get(&s).is_some_and(|p| p.confirmed);
        if !complete && !final_call {
            return;
        }
        let settle_at = close_ms
            .saturating_add(c.t_closure_ms)
            .saturating_add(self.cfg.chain_grace_ms);
        if let Some(c) = self.channels.get_mut(&id) {
            c.posted_claim = Some(upto);
            c.settle_at = Some(settle_at);
        }
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::PostedClaim {
                channel_id: id,
                upto,
            }));
        self.actions
            .push_back(SellerAction::ClaimPosted { channel: id, upto });
    }

    /// An accusation against this stream on `channel` for `missing` was opened. Queues the
    /// defence: `DefendWithAck` if an ack covers it, else `Defend` once `missing` is posted (a
    /// `Post` first if needed; the `Defend` then comes with `on_posted`).
    pub fn on_accused(&mut self, now: UnixMs, channel: ChannelId, missing: u64) {
        self.tick(now);
        if !self.channels.contains_key(&channel) {
            return;
        }
        self.verify_pending(channel);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        c.accused = Some(missing);
        if let (Some(end), Some((stop, sig))) = (c.own_stop_end(), &c.own_stop)
            && missing >= end
        {
            // Past our own Stop: not owed. The Stop answers it (by the accusation's deadline);
            // posting the message would only hand the buyer what it did not pay for.
            let (stop, sig) = (stop.clone(), *sig);
            self.actions
                .push_back(SellerAction::SubmitStop { channel, stop, sig });
            return;
        }
        if let Some(v) = c.verified.as_ref().filter(|v| v.ack.seq >= missing) {
            let (ack, sig) = (v.ack.clone(), v.sig);
            self.actions
                .push_back(SellerAction::DefendWithAck { channel, ack, sig });
            return;
        }
        match self.posts.get(&missing).map(|p| p.confirmed) {
            Some(true) => self.actions.push_back(SellerAction::Defend { channel }),
            // Posted (or posting) now; `Defend` follows once the posting is mined
            // (`on_posted`): a `defend` before it would be refused.
            _ if self.message(missing).is_some() => self.post(missing),
            _ => self
                .actions
                .push_back(SellerAction::Event(SellerEvent::CannotDefend {
                    channel,
                    missing,
                })),
        }
    }

    /// A `CloseCooperatively` action failed (refused or dropped): the normal close goes on
    /// (the claim of the ack it would have paid, `requestClose` if our own stop asked for it,
    /// posted claims and `settle` after `T_closure`); it is not sent again.
    pub fn on_close_cooperatively_failed(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        c.coop_pending = false;
        if std::mem::take(&mut c.close_after_coop) {
            self.actions
                .push_back(SellerAction::RequestClose { channel });
        }
        self.verify_pending(channel);
        self.claim_best(channel);
    }

    /// The accusation on `channel` was defended or resolved.
    pub fn on_accusation_closed(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.accused = None;
        }
        self.maybe_close_cooperatively(channel);
    }

    /// `channel` is settled on-chain: forget it.
    pub fn on_settled(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if self.channels.remove(&channel).is_some() {
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Settled {
                    channel_id: channel,
                }));
            self.actions
                .push_back(SellerAction::Event(SellerEvent::ChannelClosed { channel }));
            self.update_members();
            self.prune();
        }
    }
}
