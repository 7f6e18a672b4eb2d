//! Timers: delayed acks, accusations, resolution, settlement.

use crate::records::BuyerRecord;
use crate::types::UnixMs;

use super::*;

impl BuyerChannel {
    // ----- timers ----------------------------------------------------------------------------

    /// Handles every timer due at `now`: delayed acks, accusations, resolution, the cooperative
    /// close's grace period, settlement.
    pub fn handle_timeout(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        let now = self.now;
        if self.ack_due.is_some_and(|t| t <= now) {
            self.ack_due = None;
            if self.acked_next < self.next {
                self.send_ack()?;
            }
        }
        if let Some(at) = self.accuse_at()
            && at <= now
            && let Some(g) = self.gap.clone()
        {
            let missing = self.next;
            self.accused = Some(missing);
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::Accused { missing }));
            if let Some((ack, sig, _)) = &self.last_ack
                && ack.seq >= self.chain_acked_end
            {
                self.actions.push_back(BuyerAction::Claim {
                    channel: self.id,
                    ack: ack.clone(),
                    sig: *sig,
                });
            }
            self.actions.push_back(BuyerAction::Accuse {
                channel: self.id,
                seen: g.message,
                proof: g.proof,
                missing,
            });
        }
        if self.resolve_at.is_some_and(|t| t <= now) {
            self.resolve_at = None;
            self.actions
                .push_back(BuyerAction::Resolve { channel: self.id });
        }
        if self.close_held_until.is_some_and(|t| t <= now) {
            self.close_wait_over();
        }
        if self.settle_at().is_some_and(|t| t <= now) {
            self.settle_due = false;
            self.actions
                .push_back(BuyerAction::Settle { channel: self.id });
        }
        Ok(())
    }

    /// When the buyer settles: `T_closure` after the close request (plus the chain grace), or
    /// [`BuyerConfig::settle_wait_ms`] later if the seller may hold a posted claim (then the
    /// seller settles, and the buyer only if nobody did).
    pub(super) fn settle_at(&self) -> Option<UnixMs> {
        if !self.settle_due || self.phase == Phase::Settled {
            return None;
        }
        let wait = if self.saw_posting {
            self.cfg.settle_wait_ms
        } else {
            0
        };
        Some(
            self.close_at_secs?
                .saturating_mul(1000)
                .saturating_add(self.t_closure_ms)
                .saturating_add(self.cfg.chain_grace_ms)
                .saturating_add(wait),
        )
    }

    pub(super) fn accuse_at(&self) -> Option<UnixMs> {
        if self.accused.is_some() || self.phase == Phase::Settled || self.refused == Some(self.next)
        {
            return None;
        }
        let g = self.gap.as_ref()?;
        if g.message.seq <= self.next || self.stop_end.is_some_and(|e| self.next >= e) {
            return None;
        }
        let at = g
            .seen_at
            .max(g.message.timestamp)
            .saturating_add(self.t_ack_ms);
        if let Some(close) = self.close_at_secs {
            // The judge takes accusations on a Closing channel only before close + T_closure
            // (`ClosureElapsed`); one mined later would be refused.
            let last = close
                .saturating_mul(1000)
                .saturating_add(self.t_closure_ms)
                .saturating_sub(self.cfg.chain_grace_ms);
            if at >= last {
                return None;
            }
        }
        Some(at)
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        [
            self.ack_due,
            self.accuse_at(),
            self.resolve_at,
            self.settle_at(),
            self.close_held_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
