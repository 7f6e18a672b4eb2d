//! Timers: ack verification, retransmission, postings, claims, settlement, offer expiry.

use crate::types::{ChannelId, UnixMs};

use super::*;

impl Stream {
    /// How many messages an open channel's buyer is behind the stream's head (from its last
    /// verified ack); `None` for a channel not open.
    fn lag(&self, id: ChannelId) -> Option<u64> {
        let c = self.channels.get(&id).filter(|c| c.phase == Phase::Open)?;
        Some(self.next_seq.saturating_sub(c.base_v()))
    }

    /// Handles every timer due at `now`: ack verification, retransmission, on-chain posting,
    /// claims, stop completion, settlement, offer expiry.
    pub fn handle_timeout(&mut self, now: UnixMs) {
        self.tick(now);
        let now = self.now;
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            // Lazy ack verification.
            if self
                .channels
                .get(&id)
                .and_then(|c| c.pending.as_ref())
                .is_some_and(|(_, at)| now >= at.saturating_add(self.cfg.ack_verify_interval_ms))
            {
                self.verify_pending(id);
                self.maybe_claim(id);
                self.check_stop_done(id);
            }
            // Postings.
            while let Some((seq, deadline)) =
                self.channels.get(&id).and_then(|c| self.post_deadline(c))
            {
                if deadline > now {
                    break;
                }
                if self
                    .channels
                    .get(&id)
                    .and_then(|c| c.pending.as_ref())
                    .is_some_and(|(p, _)| p.ack.seq >= seq)
                {
                    self.verify_pending(id);
                    continue;
                }
                self.post(seq);
            }
            self.check_stop_done(id);
            // Retransmission: go back to the first unacked message.
            if let Some(c) = self.channels.get_mut(&id)
                && let Some(at) = c.rto_at
                && at <= now
            {
                c.rto_at = None;
                if c.link_up && c.base_hint() < c.high_sent() {
                    c.next_send = c.base_hint();
                }
            }
            self.pump(id);
            // Backlog: a buyer this far behind is stopped (the stream keeps every message a
            // channel is owed). Lazy verification adds at most the window to the lag: `pump`
            // verifies the newest ack whenever the window is full.
            if let Some(behind) = self.lag(id).filter(|b| *b > self.cfg.max_backlog) {
                self.actions
                    .push_back(SellerAction::Event(SellerEvent::BuyerLagging {
                        channel: id,
                        behind,
                        limit: self.cfg.max_backlog,
                    }));
                let _ = self.stop_channel(now, id);
            }
            // The last call for a posted claim.
            if let Some(c) = self.channels.get_mut(&id)
                && c.claim_posted_call.is_some_and(|t| t <= now)
            {
                c.claim_posted_call = None;
                // A cooperative close still not settled by now will not be: claim what it
                // would have paid while the judge still takes claims.
                c.coop_pending = false;
                self.verify_pending(id);
                self.claim_best(id);
                self.maybe_claim_posted(id, true);
            }
            // Settlement of a recorded posted claim.
            if let Some(c) = self.channels.get_mut(&id)
                && let Some(at) = c.settle_at
                && at <= now
            {
                c.settle_at = None;
                self.actions.push_back(SellerAction::Settle { channel: id });
            }
        }
        // Offer expiry.
        let expired: Vec<ChannelId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.offer.validUntil.saturating_mul(1000) < now)
            .map(|(k, _)| *k)
            .collect();
        if !expired.is_empty() {
            for k in expired {
                self.offers.remove(&k);
            }
            self.update_members();
        }
        self.prune();
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        let mut t: Option<UnixMs> = None;
        let mut at = |x: UnixMs| t = Some(t.map_or(x, |y| y.min(x)));
        for c in self.channels.values() {
            if let Some((_, since)) = &c.pending {
                at(since.saturating_add(self.cfg.ack_verify_interval_ms));
            }
            if let Some(r) = c.rto_at {
                at(r);
            }
            if let Some((_, d)) = self.post_deadline(c) {
                at(d);
            }
            if let Some(s) = c.settle_at {
                at(s);
            }
            if let Some(s) = c.claim_posted_call {
                at(s);
            }
        }
        for o in self.offers.values() {
            at(o.offer.validUntil.saturating_mul(1000).saturating_add(1));
        }
        t
    }
}
