//! The two brokers around the engines: what each does with its engine's actions (frames onto
//! the link, chain calls into the mempool), the malicious brokers' deviations, and the buyer's
//! pauses.

use supra_channel::{BuyerAction, BuyerEvent, Frame, FrameBytes, SellerAction, SellerEvent};

use super::{Origin, Tx, Watched, World, buyer_addr};
use crate::net::Dir;
use crate::params::Scenario;

impl World {
    // ----- the seller's broker ---------------------------------------------------------------

    pub(super) fn flush_seller(&mut self) {
        let actions: Vec<SellerAction> = self.seller.drain_actions().collect();
        for a in actions {
            match a {
                SellerAction::Persist(_) => {}
                SellerAction::Send { frames, .. } => {
                    if self.buyer.is_none() {
                        continue;
                    }
                    for frame in frames.iter().cloned() {
                        if self.cfg.scenario == Scenario::Overclaim
                            && let Ok(Frame::Stop { .. }) = Frame::decode(&frame)
                        {
                            self.note("seller broker withheld its Stop");
                            continue;
                        }
                        if let Some(d) = self.dropped_seq
                            && let Ok(Frame::Data(data)) = Frame::decode(&frame)
                            && data.message.seq == d
                        {
                            self.note("seller broker dropped a data frame");
                            continue;
                        }
                        self.link.send(self.now, Dir::ToBuyer, frame);
                    }
                }
                SellerAction::Post(m) => {
                    if Some(m.message.seq) == self.dropped_seq {
                        self.note("seller broker withheld a posting");
                        continue;
                    }
                    self.submit(Origin::SellerEngine, Tx::Post(m));
                }
                SellerAction::Claim { ack, sig, .. } => {
                    self.submit(Origin::SellerEngine, Tx::Claim(Box::new(ack), sig))
                }
                SellerAction::ClaimPosted { channel, upto } => {
                    self.submit(Origin::SellerEngine, Tx::ClaimPosted(channel, upto))
                }
                SellerAction::ProveWrongCost { ack, sig, .. } => {
                    self.submit(Origin::SellerEngine, Tx::ProveWrongCost(Box::new(ack), sig))
                }
                SellerAction::Defend { channel } => {
                    if self.dropped_seq.is_some() {
                        self.note("seller broker did not defend");
                        continue;
                    }
                    self.submit(Origin::SellerEngine, Tx::Defend(channel))
                }
                SellerAction::DefendWithAck { ack, sig, .. } => {
                    self.submit(Origin::SellerEngine, Tx::DefendWithAck(Box::new(ack), sig))
                }
                SellerAction::RequestClose { channel } => {
                    self.submit(Origin::SellerEngine, Tx::RequestClose(channel))
                }
                SellerAction::Settle { channel } => {
                    self.submit(Origin::SellerEngine, Tx::Settle(channel))
                }
                SellerAction::SubmitStop { stop, sig, .. } => {
                    self.submit(Origin::SellerEngine, Tx::SubmitStop(Box::new(stop), sig))
                }
                SellerAction::CloseCooperatively {
                    ack,
                    ack_sig,
                    stop,
                    stop_sig,
                    ..
                } => {
                    if self.cfg.scenario.overclaims() {
                        self.note("seller broker withheld its closeCooperatively");
                        continue;
                    }
                    self.submit(
                        Origin::SellerEngine,
                        Tx::CloseCooperatively(Box::new((ack, stop)), ack_sig, stop_sig),
                    )
                }
                SellerAction::Event(e) => {
                    let name = match e {
                        SellerEvent::InvalidAck { .. } => "seller: InvalidAck",
                        SellerEvent::StopCompleted { .. } => {
                            self.closing = true;
                            "seller: StopCompleted"
                        }
                        SellerEvent::CannotDefend { .. } => "seller: CannotDefend",
                        SellerEvent::BuyerLagging { .. } => "seller: BuyerLagging",
                        SellerEvent::ChannelClosed { .. } => "seller: ChannelClosed",
                    };
                    self.note(name);
                }
            }
        }
        self.track_progress();
    }

    pub(super) fn track_progress(&mut self) {
        let Some(id) = self.chan else { return };
        let best = self.seller.best_acked_seq(&id);
        if best > self.last_best {
            self.last_best = best;
            self.last_progress = self.now;
        }
    }

    /// When the seller's broker gives up on a silent buyer (`idle_stop_ms` without ack
    /// progress while something it sent is unacked).
    pub(super) fn idle_check_at(&self) -> Option<u64> {
        let id = self.chan?;
        if self.seller_stopped || self.closing || self.settled {
            return None;
        }
        let stalled = self.seller.unacked_in_flight(&id).is_some_and(|n| n > 0)
            || self.pub_times.len() as u64 > self.last_best.map_or(0, |b| b + 1) + self.cfg.window;
        stalled.then_some(self.last_progress + self.cfg.idle_stop_ms)
    }

    pub(super) fn policies(&mut self) {
        if let (Some(t), Some(id)) = (self.idle_check_at(), self.chan)
            && t <= self.now
        {
            self.seller_stopped = true;
            self.note("seller broker stopped an idle channel");
            if let Err(e) = self.seller.stop_channel(self.now, id) {
                self.note(format!("stop_channel failed: {e}"));
            }
            self.flush_seller();
        }
    }

    // ----- the buyer's broker ----------------------------------------------------------------

    pub(super) fn flush_buyer(&mut self) {
        loop {
            if self.buyer_gone {
                return;
            }
            let Some(b) = self.buyer.as_mut() else { return };
            let actions: Vec<BuyerAction> = b.drain_actions().collect();
            if actions.is_empty() {
                return;
            }
            let id = b.id();
            for a in actions {
                if self.buyer_gone {
                    // Left in the middle of this batch: nothing after that point happens.
                    return;
                }
                match a {
                    BuyerAction::Persist(_) => {}
                    BuyerAction::Send(frame) => {
                        if self.withholding
                            && matches!(Frame::decode(&frame), Ok(Frame::Ack { .. }))
                        {
                            self.note("buyer broker withheld an ack");
                            continue;
                        }
                        self.link.send(self.now, Dir::ToSeller, frame);
                    }
                    BuyerAction::Deliver { seq, payload } => self.on_deliver(seq, &payload),
                    BuyerAction::TopUp { channel, amount } => {
                        self.buyer_tx(Tx::TopUp(channel, amount))
                    }
                    BuyerAction::Claim { ack, sig, .. } => {
                        self.buyer_tx(Tx::Claim(Box::new(ack), sig))
                    }
                    BuyerAction::Accuse {
                        seen,
                        proof,
                        missing,
                        ..
                    } => self.buyer_tx(Tx::Accuse(id, Box::new(seen), Box::new(proof), missing)),
                    BuyerAction::Resolve { channel } => self.buyer_tx(Tx::Resolve(channel)),
                    BuyerAction::ProveEquivocation {
                        channel,
                        a,
                        proof_a,
                        b,
                        proof_b,
                    } => self.buyer_tx(Tx::ProveEquivocation(
                        channel,
                        Box::new((a, b)),
                        Box::new(proof_a),
                        Box::new(proof_b),
                    )),
                    BuyerAction::RequestClose { channel } => {
                        self.buyer_tx(Tx::RequestClose(channel))
                    }
                    BuyerAction::Settle { channel } => self.buyer_tx(Tx::Settle(channel)),
                    BuyerAction::SubmitStop { stop, sig, .. } => {
                        self.buyer_tx(Tx::SubmitStop(Box::new(stop), sig))
                    }
                    BuyerAction::CloseCooperatively {
                        ack,
                        ack_sig,
                        stop,
                        stop_sig,
                        ..
                    } => self.buyer_tx(Tx::CloseCooperatively(
                        Box::new((ack, stop)),
                        ack_sig,
                        stop_sig,
                    )),
                    BuyerAction::Event(e) => {
                        let name = match e {
                            BuyerEvent::Undecryptable { .. } => "buyer: Undecryptable",
                            BuyerEvent::BrokenChain { .. } => "buyer: BrokenChain",
                            BuyerEvent::StopCompleted => "buyer: StopCompleted",
                        };
                        self.note(name);
                    }
                }
            }
            // The subscription is complete: the buyer stops.
            if !self.buyer_stopped
                && !self.buyer_gone
                && let Some(b) = self.buyer.as_mut()
                && b.next_seq() >= self.start_seq + self.cfg.n
            {
                self.buyer_stopped = true;
                if let Err(e) = b.stop(self.now) {
                    self.note(format!("buyer stop failed: {e}"));
                }
            }
        }
    }

    pub(super) fn buyer_tx(&mut self, tx: Tx) {
        if self.withholding {
            // A buyer that stopped paying makes no chain calls either.
            self.note("withholding buyer skipped a chain call");
            return;
        }
        self.submit(Origin::BuyerEngine, tx);
    }

    pub(super) fn on_deliver(&mut self, seq: u64, payload: &[u8]) {
        if payload.get(..8) != Some(&seq.to_be_bytes()[..]) {
            self.wrong_payloads += 1;
        }
        if let Some(t) = self.pub_times.get(seq as usize) {
            self.latencies.push(self.now - t);
        }
        self.delivered += 1;
        let m = self.cfg.malice_at();
        match self.cfg.scenario {
            Scenario::Withhold if self.delivered >= m && !self.withholding => {
                self.withholding = true;
                self.note("buyer starts withholding acks");
            }
            Scenario::Leave if Some(self.delivered) == self.leave_at => self.leave(),
            Scenario::Pause if self.pause_at.last() == Some(&self.delivered) => {
                self.pause_at.pop();
                self.paused_until = Some(self.now + u64::from(self.cfg.t_ack_secs) * 1000);
                self.note("buyer broker paused for T_ack");
            }
            _ => {}
        }
    }

    /// The frozen buyer's broker runs again: its watcher reads the judge events it missed, its
    /// connection the frames that waited there.
    pub(super) fn resume(&mut self) {
        self.paused_until = None;
        let now = self.now;
        for ev in std::mem::take(&mut self.held_chain) {
            self.buyer_chain(ev);
        }
        if std::mem::take(&mut self.relink_on_resume)
            && let Some(b) = self.buyer.as_mut()
        {
            let _ = b.link_up(now);
            self.flush_buyer();
        }
        for frame in std::mem::take(&mut self.held_frames) {
            self.deliver_frame(Dir::ToBuyer, &frame);
        }
    }

    /// Hands a judge event to the buyer's engine (held while its broker is frozen).
    pub(super) fn buyer_chain(&mut self, ev: impl Into<Watched>) {
        if self.buyer_gone {
            return;
        }
        let ev = ev.into();
        if self.paused_until.is_some() {
            self.held_chain.push(ev);
            return;
        }
        let now = self.now;
        if let Some(b) = self.buyer.as_mut() {
            match ev {
                Watched::Event(ev) => ev.apply(b, now),
                Watched::Deposit(deposit) => b.on_deposit(now, deposit),
                Watched::TopUpFailed => b.on_top_up_failed(now),
                Watched::PostedClaim(upto) => b.on_posted_claim(now, upto),
                Watched::SubmitStopFailed => b.on_submit_stop_failed(now),
                Watched::CloseCooperativelyFailed => b.on_close_cooperatively_failed(now),
            }
            self.flush_buyer();
        }
    }

    pub(super) fn leave(&mut self) {
        self.buyer_gone = true;
        if let Some(b) = self.buyer.as_ref() {
            let s = b.stats();
            self.buyer_stats = (s.acks_signed, s.sigs_verified);
        }
        self.link.sever();
        self.seller.link_down(self.now, buyer_addr(&self.buyer_key));
        self.flush_seller();
        self.note("buyer left");
    }

    pub(super) fn deliver_frame(&mut self, dir: Dir, bytes: &[u8]) {
        let Ok(frame) = Frame::decode(bytes) else {
            self.note("undecodable frame");
            return;
        };
        if self.trace {
            match &frame {
                Frame::Ack { ack, .. } => {
                    eprintln!(
                        "{:>9} seller gets ack {}",
                        self.now - self.start_ms,
                        ack.seq
                    )
                }
                Frame::Stop { stop, .. } => {
                    eprintln!("{:>9} {dir:?} stop {}", self.now - self.start_ms, stop.seq)
                }
                _ => {}
            }
        }
        match dir {
            Dir::ToBuyer => {
                if self.buyer_gone {
                    return;
                }
                if self.paused_until.is_some() {
                    self.held_frames.push(FrameBytes::from(bytes));
                    return;
                }
                if let Some(b) = self.buyer.as_mut() {
                    if let Err(e) = b.handle_frame(self.now, frame) {
                        self.note(format!("buyer rejected a frame: {e}"));
                    }
                    self.flush_buyer();
                }
            }
            Dir::ToSeller => {
                let peer = buyer_addr(&self.buyer_key);
                if let Err(e) = self.seller.handle_frame(self.now, peer, frame) {
                    // `Opened` is not for the engine (the broker reads the chain).
                    if !matches!(e, supra_channel::SellerError::UnexpectedFrame) {
                        self.note(format!("seller rejected a frame: {e}"));
                    }
                }
                self.flush_seller();
            }
        }
    }
}
