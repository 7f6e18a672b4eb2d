//! Stopping: the buyer's own `Stop` and the seller's.

use crate::records::BuyerRecord;
use crate::sign::Signature;
use crate::types::{Stop, UnixMs};
use crate::wire::Frame;

use super::*;

impl BuyerChannel {
    pub(super) fn handle_stop(
        &mut self,
        now: UnixMs,
        stop: Stop,
        sig: Signature,
    ) -> Result<(), BuyerError> {
        self.tick(now);
        if stop.channelId != self.id.0 {
            return Err(BuyerError::WrongChannel);
        }
        self.seller_key.verify(&self.domain.digest(&stop), &sig)?;
        self.keep_seller_stop(&stop, sig);
        if self.stop_frame.is_some() {
            // The seller's answer to our Stop: what it had sent, hence all it may still send.
            let end = stop.seq.saturating_add(1).max(self.start);
            self.cap_stop_end(end);
            self.after_progress()?;
            self.maybe_close_cooperatively();
            return Ok(());
        }
        if self.phase != Phase::Open || self.seller_stopped {
            return Ok(());
        }
        let end = stop.seq.saturating_add(1).max(self.start);
        self.stop_end = Some(self.stop_end.map_or(end, |e| e.min(end)));
        self.seller_stopped = true;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Stopped {
                seq: stop.seq,
                by_buyer: false,
            }));
        let end = self.stop_end.unwrap_or(end);
        self.buffer = self.buffer.split_off(&self.next);
        self.buffer.retain(|s, _| *s < end);
        self.after_progress()?;
        self.maybe_close_cooperatively();
        Ok(())
    }

    /// Keeps the lowest seller-signed `Stop` (persisted: it is on-chain evidence, see
    /// [`on_posted_claim`](Self::on_posted_claim)) and accepts nothing past it.
    fn keep_seller_stop(&mut self, stop: &Stop, sig: Signature) {
        if self.phase == Phase::Settled
            || self
                .seller_stop
                .as_ref()
                .is_some_and(|(s, _)| s.seq <= stop.seq)
        {
            return;
        }
        self.seller_stop = Some((stop.clone(), sig));
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::SellerStop {
                stop: stop.clone(),
                sig,
            }));
    }

    /// Cooperative close: the buyer's latest ack is exactly at the seller's `Stop`, so the
    /// channel can settle at once (`closeCooperatively`), without waiting `T_closure`. Once; if
    /// it fails, the normal close goes on.
    pub(super) fn maybe_close_cooperatively(&mut self) {
        // Not while an accusation is open: the close would clear it, and an upheld one refunds
        // more (`F - R`); it is tried again once the accusation is closed.
        if self.coop_sent
            || !self.cfg.cooperative_close
            || self.phase == Phase::Settled
            || self.accused.is_some()
            || self.resolve_at.is_some()
        {
            return;
        }
        let (Some((stop, stop_sig)), Some((ack, ack_sig, _))) = (&self.seller_stop, &self.last_ack)
        else {
            return;
        };
        if ack.seq != stop.seq {
            return;
        }
        self.coop_sent = true;
        let action = BuyerAction::CloseCooperatively {
            channel: self.id,
            ack: ack.clone(),
            ack_sig: *ack_sig,
            stop: stop.clone(),
            stop_sig: *stop_sig,
        };
        self.actions.push_back(action);
    }

    /// The buyer stops: sends a final ack and a signed `Stop`, and requests the close on-chain.
    ///
    /// Messages the seller sent before the `Stop` reached it are still owed to it (it cannot tell
    /// what the buyer received), so the buyer keeps accepting, delivering and acking them: at most
    /// `W` after what it has (the seller never has more than `W` unacked in flight). It pays for
    /// those and receives them, by link or from the chain.
    pub fn stop(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        if self.phase != Phase::Open {
            return Ok(());
        }
        if self.acked_next < self.next {
            self.send_ack()?;
        }
        let seq = self.next.saturating_sub(1);
        let stop = Stop {
            channelId: self.id.0,
            seq,
            timestamp: self.now,
        };
        let sig = self.key.sign(&self.domain.digest(&stop));
        let frame = Frame::Stop { stop, sig }.encode_shared()?;
        self.cap_stop_end(self.in_flight_end(self.next));
        self.phase = Phase::Stopping;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Stopped {
                seq,
                by_buyer: true,
            }));
        self.actions.push_back(BuyerAction::Send(frame.clone()));
        self.stop_frame = Some(frame);
        self.stop_sent_at = self.now;
        self.actions
            .push_back(BuyerAction::RequestClose { channel: self.id });
        Ok(())
    }

    /// Accepts nothing at or after `end` any more (keeps the lower bound if there is one).
    pub(super) fn cap_stop_end(&mut self, end: u64) {
        let end = self.stop_end.map_or(end, |e| e.min(end));
        self.stop_end = Some(end);
        self.buffer.retain(|s, _| *s < end);
        if self.gap.as_ref().is_some_and(|g| g.message.seq >= end) {
            self.gap = self.first_held_evidence();
        }
    }

    /// Exclusive end of what the seller may have sent before a buyer `Stop` at `end` (the next seq
    /// the buyer lacked, all before it acked) reached it: `W` more.
    pub(super) fn in_flight_end(&self, end: u64) -> u64 {
        end.saturating_add(self.offer.window.max(1))
    }
}
