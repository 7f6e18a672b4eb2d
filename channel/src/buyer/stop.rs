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

    /// The buyer's stop is complete: close. Without cooperative close, `RequestClose` at once;
    /// with it, the seller is expected to settle the channel with `closeCooperatively`, and the
    /// buyer only acts itself if that has not happened within
    /// [`BuyerConfig::cooperative_wait_ms`] (see [`close_wait_over`](Self::close_wait_over)).
    pub(super) fn close(&mut self) {
        if !self.cfg.cooperative_close {
            self.request_close();
        } else if self.close_held_until.is_none() && !self.close_requested {
            self.close_held_until = Some(self.now.saturating_add(self.cfg.cooperative_wait_ms));
        }
    }

    /// Emits `RequestClose` once, unless the channel is already closing or settled.
    pub(super) fn request_close(&mut self) {
        self.close_held_until = None;
        if self.close_requested || matches!(self.phase, Phase::Closing | Phase::Settled) {
            return;
        }
        self.close_requested = true;
        self.actions
            .push_back(BuyerAction::RequestClose { channel: self.id });
    }

    /// The cooperative close's grace period is over and the channel is not settled: the buyer
    /// sends `closeCooperatively` itself if its latest ack is exactly at the seller's `Stop` and
    /// no accusation is open (the close would clear it, and an upheld one refunds more), and
    /// waits once more; otherwise (or the second time) it requests the normal close.
    pub(super) fn close_wait_over(&mut self) {
        self.close_held_until = None;
        if self.coop_sent || self.accused.is_some() || self.resolve_at.is_some() {
            self.request_close();
            return;
        }
        let (Some((stop, stop_sig)), Some((ack, ack_sig, _))) = (&self.seller_stop, &self.last_ack)
        else {
            self.request_close();
            return;
        };
        if ack.seq != stop.seq {
            self.request_close();
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
        self.close_held_until = Some(self.now.saturating_add(self.cfg.cooperative_wait_ms));
    }

    /// The buyer stops: sends a final ack and a signed `Stop`, and closes (see
    /// [`close`](Self::close): with cooperative close, the seller's `closeCooperatively` is
    /// awaited before `requestClose`).
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
        self.close();
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
