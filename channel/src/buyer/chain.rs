//! Chain notifications: accusations, deposits, claims, close and settlement.

use alloy_primitives::U256;

use crate::records::BuyerRecord;
use crate::types::UnixMs;

use super::*;

impl BuyerChannel {
    // ----- chain notifications ---------------------------------------------------------------

    /// The accusation was mined; the seller must defend by `deadline_secs` (chain time).
    pub fn on_accusation_opened(&mut self, now: UnixMs, deadline_secs: u64) {
        self.tick(now);
        self.resolve_at = Some(
            deadline_secs
                .saturating_mul(1000)
                .saturating_add(self.cfg.chain_grace_ms),
        );
    }

    /// The accusation was defended, resolved, or its transaction failed.
    pub fn on_accusation_closed(&mut self, now: UnixMs) {
        self.tick(now);
        self.resolve_at = None;
        if self.accused.take().is_some() {
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::AccusationCleared));
        }
    }

    /// The judge refused the open accusation (it reverted: `NotOwed`, `ClosureElapsed`, ...): a
    /// refusal is final, the buyer does not accuse for that seq again.
    pub fn on_accusation_refused(&mut self, now: UnixMs) {
        self.tick(now);
        if let Some(missing) = self.accused.take() {
            self.resolve_at = None;
            self.refused = Some(missing);
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::AccusationRefused {
                    missing,
                }));
        }
    }

    /// The channel's deposit on-chain: what the buyer locked at `open`, then each `ToppedUp`
    /// event's new total (or the judge's `channel()` view after a restart).
    pub fn on_deposit(&mut self, now: UnixMs, deposit: U256) {
        self.tick(now);
        if deposit > self.deposit {
            self.deposit = deposit;
            self.top_up_pending = false;
        }
        self.maybe_top_up();
    }

    /// A `TopUp` transaction failed: the next ack may try again.
    pub fn on_top_up_failed(&mut self, now: UnixMs) {
        self.tick(now);
        self.top_up_pending = false;
    }

    /// A `Claimed` event of this channel: the judge's claimed acks now cover `seq` (whoever
    /// claimed it, the seller or the buyer itself).
    pub fn on_claimed(&mut self, now: UnixMs, seq: u64) {
        self.tick(now);
        self.chain_acked_end = self.chain_acked_end.max(seq.saturating_add(1));
    }

    /// `requestClose` was mined at `at_secs` (chain time): settle after `T_closure` (see
    /// [`BuyerConfig::settle_wait_ms`] for who settles).
    pub fn on_close_requested(&mut self, now: UnixMs, at_secs: u64) {
        self.tick(now);
        if matches!(self.phase, Phase::Closing | Phase::Settled) {
            return;
        }
        self.phase = Phase::Closing;
        // Closing on-chain (by either side): the normal close goes on.
        self.close_held_until = None;
        self.close_at_secs = Some(at_secs);
        self.settle_due = true;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::CloseRequested {
                at_secs,
            }));
    }

    /// A `PostedClaimRecorded` event of this channel: the seller claims the posted messages up
    /// to `upto`. Past the seller's own signed `Stop` that is provable: the buyer submits the
    /// Stop and the judge gives it `F - R` (`StopViolationProven`).
    pub fn on_posted_claim(&mut self, now: UnixMs, upto: u64) {
        self.tick(now);
        if self.stop_submitted || self.phase == Phase::Settled {
            return;
        }
        if let Some((stop, sig)) = &self.seller_stop
            && upto > stop.seq
        {
            self.stop_submitted = true;
            let (stop, sig) = (stop.clone(), *sig);
            self.actions.push_back(BuyerAction::SubmitStop {
                channel: self.id,
                stop,
                sig,
            });
        }
    }

    /// A `CloseCooperatively` action failed (refused or dropped): the normal close (request,
    /// then `settle` after `T_closure`) goes on at once; it is not sent again.
    pub fn on_close_cooperatively_failed(&mut self, now: UnixMs) {
        self.tick(now);
        self.request_close();
    }

    /// A `SubmitStop` action failed: it may be sent again on the next posted claim.
    pub fn on_submit_stop_failed(&mut self, now: UnixMs) {
        self.tick(now);
        self.stop_submitted = false;
    }

    /// The seller's lowest signed `Stop` received, if any.
    pub fn seller_stop(&self) -> Option<(&Stop, &Signature)> {
        self.seller_stop.as_ref().map(|(s, g)| (s, g))
    }

    /// The channel is settled on-chain.
    pub fn on_settled(&mut self, now: UnixMs) {
        self.tick(now);
        if self.phase != Phase::Settled {
            self.phase = Phase::Settled;
            self.settle_due = false;
            self.resolve_at = None;
            self.close_held_until = None;
            self.buffer.clear();
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::Settled));
        }
    }
}
