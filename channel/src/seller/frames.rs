//! Frames from buyers (acks, resumes, stops) and lazy ack verification.

use alloy_primitives::Address;

use crate::records::SellerRecord;
use crate::sign::Signature;
use crate::types::{Ack, ChannelId, Stop, UnixMs, ack_cost};
use crate::wire::Frame;

use super::*;

impl Stream {
    // ----- frames from buyers ----------------------------------------------------------------

    /// Handles a frame received from the authenticated buyer broker `peer` (`Ack`, `Resume`,
    /// `Stop`; `Ping` is answered with `Pong`). On error the stream is unchanged.
    pub fn handle_frame(
        &mut self,
        now: UnixMs,
        peer: Address,
        frame: Frame,
    ) -> Result<(), SellerError> {
        self.tick(now);
        match frame {
            Frame::Ack { ack, sig } => self.on_ack(peer, ack, sig),
            Frame::Resume {
                channel_id,
                next_seq,
            } => self.on_resume(peer, channel_id, next_seq),
            Frame::Stop { stop, sig } => self.on_stop(peer, stop, sig),
            Frame::Ping { nonce } => {
                let frame = Frame::Pong { nonce }.encode_shared()?;
                self.actions.push_back(SellerAction::send(peer, frame));
                Ok(())
            }
            Frame::Pong { .. } => Ok(()),
            _ => Err(SellerError::UnexpectedFrame),
        }
    }

    pub(super) fn channel_of(&self, peer: Address, id: ChannelId) -> Result<&Channel, SellerError> {
        let c = self
            .channels
            .get(&id)
            .ok_or(SellerError::UnknownChannel(id))?;
        if c.buyer != peer {
            return Err(SellerError::NotBuyer { channel: id, peer });
        }
        Ok(c)
    }

    pub(super) fn on_ack(
        &mut self,
        peer: Address,
        ack: Ack,
        sig: Signature,
    ) -> Result<(), SellerError> {
        let id = ChannelId(ack.channelId);
        let c = self.channel_of(peer, id)?;
        if c.phase == Phase::Settled {
            return Ok(());
        }
        let (start, price, buyer_key, best, pending) = (
            c.start,
            c.price,
            c.buyer_key,
            c.best_seq(),
            c.pending.as_ref().map(|(p, _)| p.clone()),
        );
        self.stats.acks_received += 1;
        if ack_cost(start, ack.seq, price) != Some(ack.cost) {
            // Provable misbehaviour if the buyer really signed it.
            buyer_key.verify(&self.domain.digest(&ack), &sig)?;
            self.stats.acks_verified += 1;
            self.actions.push_back(SellerAction::ProveWrongCost {
                channel: id,
                ack,
                sig,
            });
            if let Some(c) = self.channels.get_mut(&id) {
                c.phase = Phase::Settled;
            }
            self.update_members();
            return Ok(());
        }
        if ack.seq >= self.next_seq {
            return Err(SellerError::AckBeyondHead(ack.seq));
        }
        match self.message(ack.seq) {
            Some(m) if m.digest != ack.digest => return Err(SellerError::WrongDigest(ack.seq)),
            Some(_) => {}
            // Older than anything held: nothing to learn from it.
            None => return Ok(()),
        }
        if let Some(best) = best {
            if ack.seq < best {
                return Ok(());
            }
            if ack.seq == best {
                match pending {
                    // Two different acks for the same seq: settle which one is genuine now.
                    Some(p) if p.ack.seq == best && (p.ack != ack || p.sig != sig) => {
                        self.verify_pending(id);
                        if self.channels.get(&id).and_then(Channel::best_seq) == Some(best) {
                            return Ok(());
                        }
                    }
                    _ => return Ok(()),
                }
            }
        }
        let now = self.now;
        let rto = self.cfg.retransmit_timeout_ms;
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Ack {
                ack: ack.clone(),
                sig,
            }));
        let Some(c) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        let seq = ack.seq;
        // The verification timer runs from the oldest unverified ack, so a busy channel's acks
        // still get verified within `ack_verify_interval_ms`.
        let since = c.pending.as_ref().map_or(now, |(_, t)| *t);
        c.pending = Some((SignedAck { ack, sig }, since));
        if c.next_send <= seq {
            c.next_send = seq + 1;
        }
        // Progress: restart the retransmission timer if anything is still in flight.
        c.rto_at = if c.high_sent() > seq + 1 {
            Some(now.saturating_add(rto))
        } else {
            None
        };
        self.after_ack_progress(id);
        Ok(())
    }

    pub(super) fn on_resume(
        &mut self,
        peer: Address,
        id: ChannelId,
        next_seq: u64,
    ) -> Result<(), SellerError> {
        let head = self.next_seq;
        let now = self.now;
        self.channel_of(peer, id)?;
        let Some(c) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        c.link_up = true;
        // The buyer holds everything below next_seq (maybe from the chain): resend from there,
        // but never count more than W messages in flight.
        let cap = head.min(c.base_v().saturating_add(c.window));
        let from = c.base_hint().max(next_seq.min(cap));
        if c.sent_at.is_empty() && from > c.high_sent() {
            c.sent_base = from;
        }
        c.sent_at.push_n(now, from.saturating_sub(c.high_sent()));
        c.next_send = from;
        c.rto_at = None;
        self.pump(id);
        Ok(())
    }

    /// The buyer's signed `Stop`: nothing is sent past what was already sent, and that is still
    /// owed (acked, or posted and claimed), whatever `stop.seq` says: the seller cannot tell what
    /// the buyer received, and SUPRA never leaves a seller unpaid for what it sent. An honest buyer
    /// accepts those messages and pays for what it gets (see `BuyerChannel::stop`).
    pub(super) fn on_stop(
        &mut self,
        peer: Address,
        stop: Stop,
        sig: Signature,
    ) -> Result<(), SellerError> {
        let id = ChannelId(stop.channelId);
        let c = self.channel_of(peer, id)?;
        c.buyer_key.verify(&self.domain.digest(&stop), &sig)?;
        let closing = matches!(c.phase, Phase::Closing { .. });
        if c.stop_rec.is_some() || !(c.phase == Phase::Open || closing) {
            // A repeat (our answer may be lost), or a stop after ours: what is owed is already
            // fixed; say it again.
            self.answer_stop(id);
            return Ok(());
        }
        // Open, or Closing (the buyer's requestClose often beats its Stop frame): the answer
        // says where the channel ends, which lets both sides close cooperatively.
        let end = stop
            .seq
            .saturating_add(1)
            .max(c.high_sent())
            .max(c.base_hint())
            .max(c.start);
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Stop {
                stop: stop.clone(),
                sig,
                by_seller: false,
                owed_end: end,
            }));
        if let Some(c) = self.channels.get_mut(&id) {
            if !closing {
                c.phase = Phase::Stopping { by_seller: false };
            }
            c.stop_rec = Some(StopRec {
                stop,
                sig,
                by_seller: false,
                owed_end: end,
            });
            cap_owed(c, end);
        }
        self.answer_stop(id);
        self.update_members();
        self.check_stop_done(id);
        self.maybe_close_cooperatively(id);
        Ok(())
    }

    /// Tells a stopping buyer where the channel ends: a seller-signed `Stop` at the last seq it
    /// owes (our own stop's, if we stopped first), so the buyer accepts exactly those.
    pub(super) fn answer_stop(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Some(r) = &c.stop_rec else { return };
        let (stop, sig) = if let Some(own) = &c.own_stop {
            own.clone()
        } else if r.by_seller {
            (r.stop.clone(), r.sig)
        } else {
            let seq = c.answer_stop_seq(r);
            let stop = Stop {
                channelId: id.0,
                seq,
                timestamp: self.now,
            };
            let sig = self.key.sign(&self.domain.digest(&stop));
            (stop, sig)
        };
        let peer = c.buyer;
        if let Some(c) = self.channels.get_mut(&id) {
            c.own_stop = Some((stop.clone(), sig));
        }
        // Encoding a Stop cannot fail (fixed size, far below the frame limit).
        if let Ok(frame) = (Frame::Stop { stop, sig }).encode_shared() {
            self.actions.push_back(SellerAction::send(peer, frame));
        }
    }

    // ----- ack verification ------------------------------------------------------------------

    /// Verifies the pending ack of `id` (if any) with the buyer's known key.
    pub(super) fn verify_pending(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get_mut(&id) else {
            return;
        };
        let Some((p, _)) = c.pending.take() else {
            return;
        };
        let digest = self.domain.digest(&p.ack);
        self.stats.acks_verified += 1;
        match c.buyer_key.verify(&digest, &p.sig) {
            Ok(()) => {
                let seq = p.ack.seq;
                if c.verified.as_ref().is_none_or(|v| v.ack.seq < seq) {
                    c.verified = Some(p);
                    // Forget first-send times of acked seqs.
                    let base = seq + 1;
                    let acked = base.saturating_sub(c.sent_base).min(c.sent_at.len());
                    c.sent_at.pop_front_n(acked);
                    c.sent_base += acked;
                    if c.sent_at.is_empty() {
                        c.sent_base = c.sent_base.max(base);
                    }
                    if c.next_send < base {
                        c.next_send = base;
                    }
                }
            }
            Err(error) => {
                self.actions
                    .push_back(SellerAction::Event(SellerEvent::InvalidAck {
                        channel: id,
                        seq: p.ack.seq,
                        error,
                    }));
                // Fall back to what is verified: retransmit from there.
                c.next_send = c.next_send.min(c.base_v());
            }
        }
    }

    pub(super) fn after_ack_progress(&mut self, id: ChannelId) {
        self.maybe_claim(id);
        // Closing: the close request already claimed the best ack held then; an ack arriving
        // later (e.g. the buyer's final ack, racing its own requestClose) must be claimed now, or
        // the messages it covers are neither claimed nor posted.
        if self
            .channels
            .get(&id)
            .is_some_and(|c| matches!(c.phase, Phase::Closing { .. }))
        {
            self.verify_pending(id);
            self.claim_best(id);
        }
        self.check_stop_done(id);
        self.maybe_close_cooperatively(id);
        self.pump(id);
    }

    /// Cooperative close: the buyer's verified ack is exactly at the seller's own `Stop`, so
    /// both agree the channel ends there and it can settle at once (`closeCooperatively`). Once.
    pub(super) fn maybe_close_cooperatively(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        // Not while an accusation is open: it is answered first (`defend`, `defendWithAck` or
        // `submitStop`), then the close is tried again.
        if c.coop_sent
            || !self.cfg.cooperative_close
            || c.phase == Phase::Settled
            || c.own_stop.is_none()
            || c.accused.is_some()
        {
            return;
        }
        self.verify_pending(id);
        let Some(c) = self.channels.get_mut(&id) else {
            return;
        };
        let (Some(v), Some((stop, stop_sig))) = (&c.verified, &c.own_stop) else {
            return;
        };
        if v.ack.seq != stop.seq {
            return;
        }
        c.coop_sent = true;
        c.coop_pending = true;
        let action = SellerAction::CloseCooperatively {
            channel: id,
            ack: v.ack.clone(),
            ack_sig: v.sig,
            stop: stop.clone(),
            stop_sig: *stop_sig,
        };
        self.actions.push_back(action);
    }
}
