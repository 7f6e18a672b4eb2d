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
        if self.stop_frame.is_some() {
            // The seller's answer to our Stop: what it had sent, hence all it may still send.
            let end = stop.seq.saturating_add(1).max(self.start);
            self.cap_stop_end(end);
            return self.after_progress();
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
        self.after_progress()
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
