//! Inputs from the link and the chain's postings: verify, order, deliver once, ack, top up.

use alloy_primitives::{B256, U256, keccak256};

use crate::records::BuyerRecord;
use crate::seal::{EpochKey, SealError};
use crate::proof::MessageProof;
use crate::types::{Ack, Message, UnixMs, ack_cost};
use crate::wire::{Data, Frame};

use super::*;

impl BuyerChannel {
    // ----- inputs ----------------------------------------------------------------------------

    /// Handles a frame from the seller's link (`Data`, `Stop`; `Ping` is answered).
    pub fn handle_frame(&mut self, now: UnixMs, frame: Frame) -> Result<(), BuyerError> {
        match frame {
            Frame::Data(Data {
                message,
                proof,
                payload,
            }) => self.handle_message(now, message, proof, payload, Source::Link),
            Frame::Stop { stop, sig } => self.handle_stop(now, stop, sig),
            Frame::Ping { nonce } => {
                self.tick(now);
                let f = Frame::Pong { nonce }.encode_shared()?;
                self.actions.push_back(BuyerAction::Send(f));
                Ok(())
            }
            Frame::Pong { .. } | Frame::Error { .. } => Ok(()),
            _ => Err(BuyerError::UnexpectedFrame),
        }
    }

    /// A message posted on-chain (`Posted` event, with the proof the judge checked) for this
    /// channel's stream.
    pub fn on_posted(
        &mut self,
        now: UnixMs,
        message: Message,
        proof: MessageProof,
        payload: Vec<u8>,
    ) -> Result<(), BuyerError> {
        self.handle_message(now, message, proof, payload, Source::Chain)
    }

    /// Checks that the seller signed `message` (digest `d`) through `proof`, verifying the
    /// batch's signature only the first time this batch is seen.
    pub(super) fn check_signed(
        &mut self,
        message: &Message,
        d: B256,
        proof: &MessageProof,
    ) -> Result<(), BuyerError> {
        if self
            .batches
            .verify(&self.domain, &self.seller_key, message, d, proof)?
        {
            self.stats.sigs_verified += 1;
        }
        Ok(())
    }

    /// The link to the seller is up (again): queues `Resume` and the latest ack.
    pub fn link_up(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        let f = Frame::Resume {
            channel_id: self.id,
            next_seq: self.next,
        }
        .encode_shared()?;
        self.actions.push_back(BuyerAction::Send(f));
        if let Some((_, _, f)) = &self.last_ack {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.last_ack_sent_at = self.now;
        }
        if self.acked_next < self.next {
            self.send_ack()?;
        }
        if let Some(f) = &self.stop_frame {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.stop_sent_at = self.now;
        }
        Ok(())
    }

    /// Handles one stream message from the link or the chain.
    pub fn handle_message(
        &mut self,
        now: UnixMs,
        message: Message,
        proof: MessageProof,
        payload: Vec<u8>,
        source: Source,
    ) -> Result<(), BuyerError> {
        self.tick(now);
        if self.phase == Phase::Settled {
            return Ok(());
        }
        if message.streamId != self.stream.0 {
            return Err(BuyerError::WrongStream);
        }
        let m = message.seq;
        if source == Source::Chain && m >= self.start {
            // The judge only emits seller-signed postings: the seller may claim this one.
            self.saw_posting = true;
        }
        if m < self.start {
            return Ok(());
        }
        if self.stop_end.is_some_and(|e| m >= e) {
            if source == Source::Link {
                // The seller keeps sending past our Stop: it may have lost it.
                self.resend_stop();
            }
            return Ok(());
        }
        if keccak256(&payload) != message.payloadHash {
            return Err(BuyerError::PayloadHash);
        }
        let d = self.domain.digest(&message);
        if m < self.next {
            return self.on_duplicate(message, d, proof, source);
        }
        if let Some(h) = self.buffer.get(&m) {
            if h.digest == d {
                self.stats.duplicates += 1;
                return Ok(());
            }
            let h = h.clone();
            self.check_signed(&message, d, &proof)?;
            // A held message authenticated by its successor's link has not had its own
            // proof checked; the judge needs both.
            if h.sig_ok || self.check_signed(&h.message, h.digest, &h.proof).is_ok() {
                self.equivocation(h.message, h.proof, message, proof);
            }
            return Ok(());
        }
        // Authenticate: by a held, authenticated successor whose prev is our digest, else by
        // the seller's signature.
        let linked = self
            .buffer
            .get(&m.saturating_add(1))
            .is_some_and(|s| s.message.prev == d);
        let sig_ok = if linked {
            false
        } else {
            self.check_signed(&message, d, &proof)?;
            true
        };
        let held = Held {
            message,
            digest: d,
            proof,
            payload,
            sig_ok,
            seen_at: self.now,
        };
        if m == self.next {
            if let Some(ld) = self.last_digest
                && held.message.prev != ld
            {
                self.actions
                    .push_back(BuyerAction::Event(BuyerEvent::BrokenChain { seq: m }));
                self.broken_link(&held.message, d, &held.proof, sig_ok);
                return Err(BuyerError::BrokenChain(m));
            }
            self.deliver_from(held);
        } else {
            if sig_ok && self.gap.as_ref().is_none_or(|g| g.message.seq < self.next) {
                self.gap = Some(Seen {
                    message: held.message.clone(),
                    proof: held.proof.clone(),
                    seen_at: self.now,
                });
            }
            if m < self.next.saturating_add(self.capacity) {
                self.buffer.insert(m, held);
            }
        }
        self.after_progress()
    }

    pub(super) fn on_duplicate(
        &mut self,
        message: Message,
        d: B256,
        proof: MessageProof,
        source: Source,
    ) -> Result<(), BuyerError> {
        let m = message.seq;
        let reack_due = source == Source::Link
            && m < self.acked_next
            && self.last_ack.is_some()
            && self.now
                >= self
                    .last_ack_sent_at
                    .saturating_add(self.cfg.reack_interval_ms);
        match self.recent.iter().find(|(s, _, _)| *s == m) {
            Some((_, known, _)) if *known == d => {
                self.stats.duplicates += 1;
                // The seller retransmits: it may have lost our ack.
                if reack_due {
                    self.reack();
                }
                Ok(())
            }
            Some((_, known, Some((a, pa)))) => {
                let (known, a, pa) = (*known, a.clone(), pa.clone());
                self.check_signed(&message, d, &proof)?;
                // The delivered message may have been authenticated by its successor's link
                // only: the judge needs its own proof too.
                if self.check_signed(&a, known, &pa).is_ok() {
                    self.equivocation(a, pa, message, proof);
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => {
                // Too old to compare (or we restarted): authenticate before re-acking.
                self.stats.duplicates += 1;
                if reack_due {
                    self.check_signed(&message, d, &proof)?;
                    self.reack();
                }
                Ok(())
            }
        }
    }

    /// Re-sends our own `Stop`, at most every `reack_interval_ms`.
    pub(super) fn resend_stop(&mut self) {
        if let Some(f) = &self.stop_frame
            && self.now >= self.stop_sent_at.saturating_add(self.cfg.reack_interval_ms)
        {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.stop_sent_at = self.now;
        }
    }

    pub(super) fn reack(&mut self) {
        if let Some((_, _, f)) = &self.last_ack {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.last_ack_sent_at = self.now;
        }
    }

    pub(super) fn equivocation(
        &mut self,
        a: Message,
        proof_a: MessageProof,
        b: Message,
        proof_b: MessageProof,
    ) {
        self.actions.push_back(BuyerAction::ProveEquivocation {
            channel: self.id,
            a,
            proof_a,
            b,
            proof_b,
        });
    }

    /// `b` does not chain onto the delivered message before it: both cannot be in the seller's
    /// chain, which the judge takes as equivocation when both signatures check.
    pub(super) fn broken_link(
        &mut self,
        b: &Message,
        b_digest: B256,
        b_proof: &MessageProof,
        b_sig_ok: bool,
    ) {
        let Some(prev_seq) = b.seq.checked_sub(1) else {
            return;
        };
        let held = self
            .recent
            .iter()
            .find(|(s, _, _)| *s == prev_seq)
            .and_then(|(_, known, signed)| signed.clone().map(|(a, sa)| (*known, a, sa)));
        let Some((known, a, sa)) = held else { return };
        if (b_sig_ok || self.check_signed(b, b_digest, b_proof).is_ok())
            && self.check_signed(&a, known, &sa).is_ok()
        {
            self.equivocation(a, sa, b.clone(), b_proof.clone());
        }
    }

    /// Delivers `first` (which is `next`) and then whatever the buffer holds in order.
    pub(super) fn deliver_from(&mut self, first: Held) {
        let mut delivered: Vec<(u64, Result<Vec<u8>, SealError>)> = Vec::new();
        let mut learned: Vec<(u64, EpochKey)> = Vec::new();
        let mut cur = Some(first);
        while let Some(h) = cur.take() {
            let seq = h.message.seq;
            match self.opener.open(&self.key, &self.stream, seq, &h.payload) {
                Ok((pt, l)) => {
                    if let Some(l) = l {
                        learned.push(l);
                    }
                    delivered.push((seq, Ok(pt)));
                }
                Err(e) => delivered.push((seq, Err(e))),
            }
            self.next = seq.saturating_add(1);
            self.last_digest = Some(h.digest);
            // Kept whether its signature was checked or its digest vouched for by its
            // successor's link: a conflicting message later is checked against it then.
            let signed = Some((h.message, h.proof));
            self.recent.push_back((seq, h.digest, signed));
            while self.recent.len() > self.cfg.equivocation_memory.max(1) {
                self.recent.pop_front();
            }
            // Next one from the buffer, if it chains on.
            if let Some(n) = self.buffer.remove(&self.next) {
                if n.message.prev == h.digest {
                    cur = Some(n);
                } else {
                    self.actions
                        .push_back(BuyerAction::Event(BuyerEvent::BrokenChain {
                            seq: n.message.seq,
                        }));
                    self.broken_link(&n.message, n.digest, &n.proof, n.sig_ok);
                }
            }
        }
        // Stale buffer entries cannot exist (we only remove in order), but keep it bounded.
        let next = self.next;
        self.buffer = self.buffer.split_off(&next);
        for (epoch, key) in learned {
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::EpochKey {
                    epoch,
                    key: key.0,
                }));
        }
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Position {
                next_seq: self.next,
                last_digest: self.last_digest,
            }));
        for (seq, r) in delivered {
            match r {
                Ok(payload) => {
                    self.stats.delivered += 1;
                    self.actions
                        .push_back(BuyerAction::Deliver { seq, payload });
                }
                Err(error) => self
                    .actions
                    .push_back(BuyerAction::Event(BuyerEvent::Undecryptable { seq, error })),
            }
        }
        // Gap evidence must be after the new gap.
        if self.gap.as_ref().is_some_and(|g| g.message.seq < self.next) {
            self.gap = self.first_held_evidence();
        }
    }

    /// The first held message with a checked signature: evidence of the gap before it.
    pub(super) fn first_held_evidence(&self) -> Option<Seen> {
        self.buffer.values().find(|h| h.sig_ok).map(|h| Seen {
            message: h.message.clone(),
            proof: h.proof.clone(),
            seen_at: h.seen_at,
        })
    }

    pub(super) fn after_progress(&mut self) -> Result<(), BuyerError> {
        let unacked = self.next.saturating_sub(self.acked_next);
        let final_ack = self.stop_end.is_some_and(|e| self.next >= e);
        if unacked >= self.ack_every || (final_ack && unacked > 0) {
            self.send_ack()?;
        } else if unacked > 0 && self.ack_due.is_none() {
            self.ack_due = Some(self.now.saturating_add(self.cfg.ack_delay_ms));
        }
        if final_ack && self.seller_stopped && self.phase == Phase::Open {
            self.phase = Phase::Stopping;
            self.actions
                .push_back(BuyerAction::Event(BuyerEvent::StopCompleted));
            self.close();
        }
        Ok(())
    }

    pub(super) fn send_ack(&mut self) -> Result<(), BuyerError> {
        let Some(digest) = self.last_digest else {
            return Ok(());
        };
        let seq = self.next.saturating_sub(1);
        let cost = ack_cost(self.start, seq, self.offer.price).ok_or(BuyerError::CostOverflow)?;
        let ack = Ack {
            channelId: self.id.0,
            seq,
            digest,
            cost,
            timestamp: self.now,
        };
        let sig = self.key.sign(&self.domain.digest(&ack));
        self.stats.acks_signed += 1;
        let frame = Frame::Ack {
            ack: ack.clone(),
            sig,
        }
        .encode_shared()?;
        self.actions.push_back(BuyerAction::Send(frame.clone()));
        self.last_ack = Some((ack, sig, frame));
        self.last_ack_sent_at = self.now;
        self.acked_next = self.next;
        self.ack_due = None;
        self.maybe_top_up();
        Ok(())
    }

    /// Queues a `TopUp` when the deposit pays for at most `below_messages` more messages than
    /// were delivered (see [`TopUpPolicy`]), one at a time, never past `max_deposit`.
    pub(super) fn maybe_top_up(&mut self) {
        let Some(policy) = &self.cfg.top_up else {
            return;
        };
        if self.top_up_pending || self.deposit.is_zero() || self.phase != Phase::Open {
            return;
        }
        let price = self.offer.price;
        let covered = self.deposit.checked_div(price).unwrap_or_default();
        let delivered = U256::from(self.next.saturating_sub(self.start));
        if covered.saturating_sub(delivered) > U256::from(policy.below_messages) {
            return;
        }
        let room = policy.max_deposit.saturating_sub(self.deposit);
        let amount = price.saturating_mul(U256::from(policy.messages)).min(room);
        if amount.is_zero() {
            return;
        }
        self.top_up_pending = true;
        self.actions.push_back(BuyerAction::TopUp {
            channel: self.id,
            amount,
        });
    }
}
