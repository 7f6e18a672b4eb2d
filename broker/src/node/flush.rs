//! The end of a turn: commit every record, then carry out the other actions (persist before act).

use std::time::{Duration, Instant};

use super::*;

impl Node {
    /// Commits every record of the turn, then carries out the other actions in order.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let mut clock = TurnClock::start();
        self.hand_frames();
        self.sign_pending();
        clock.mark(Phase::Engines);
        let mut batch = Batch::default();
        let mut seller_acts = Vec::new();
        let mut buyer_acts = Vec::new();
        for (i, s) in self.streams.iter_mut().enumerate() {
            while let Some(action) = s.engine.poll_action() {
                match action {
                    SellerAction::Persist(record) => batch.seller(s.number, record),
                    other => seller_acts.push((i, other)),
                }
            }
        }
        for (id, b) in self.bought.iter_mut() {
            let prefix = b.buy.map(|i| self.buys[i].cfg.local_prefix.as_str()).unwrap_or("");
            while let Some(action) = b.engine.poll_action() {
                match action {
                    BuyerAction::Persist(record) => batch.buyer(b.index, record),
                    BuyerAction::Deliver { seq, payload } => match Publication::decode(&payload) {
                        Ok(p) => {
                            let local = Publication { topic: format!("{prefix}{}", p.topic), ..p };
                            batch.outbox(b.index, seq, local.clone());
                            buyer_acts.push((*id, b.index, Deliverable::Publish(seq, local)));
                        }
                        Err(e) => tracing::warn!("channel {id}: message {seq} holds no valid publication: {e}"),
                    },
                    other => buyer_acts.push((*id, b.index, Deliverable::Action(other))),
                }
            }
        }
        if let Some(block) = self.store_cursor.take() {
            batch.cursor(block);
        }
        // Removals from the outbox ride on a commit the turn makes anyway, or go on their own
        // once they waited `FORGET_WITHIN_MS`.
        self.collect_handed_over();
        let forget = batch.has_work() || self.forget_by.is_some_and(|t| t <= now_ms());
        let done = if forget { std::mem::take(&mut self.forgetting) } else { Vec::new() };
        for (channel, seq) in &done {
            batch.outbox_done(*channel, *seq);
        }
        clock.mark(Phase::Drain);
        self.compact(&mut batch);
        clock.mark(Phase::Compaction);
        if batch.has_work() {
            self.store.commit(batch)?;
            self.observer.commit(clock.mark(Phase::Commit));
        }
        if forget {
            self.forget_by = None;
        }
        for (_, index, action) in &buyer_acts {
            if matches!(action, Deliverable::Publish(..)) {
                *self.outbox_held.entry(*index).or_default() += 1;
            }
        }
        self.outbox_removed(&done);
        self.mqtt.committed(self.stats.local_publishes);
        for id in self.openings_done.drain(..) {
            self.store.opened(id)?;
        }

        for (i, action) in seller_acts {
            self.carry_out_seller(i, action);
        }
        for (id, index, action) in buyer_acts {
            match action {
                Deliverable::Publish(seq, publication) => self.publish_locally(index, seq, &publication),
                Deliverable::Action(action) => self.carry_out_buyer(id, action),
            }
        }
        clock.mark(Phase::CarryOut);
        self.last_flush = clock;
        Ok(())
    }

    /// Takes what the local MQTT broker took since the last call: its removal from the outbox is
    /// due within [`FORGET_WITHIN_MS`].
    pub(super) fn collect_handed_over(&mut self) {
        let taken = self.mqtt.take_handed_over();
        if !taken.is_empty() {
            self.forgetting.extend(taken);
            self.forget_by.get_or_insert(now_ms().saturating_add(FORGET_WITHIN_MS));
        }
    }

    /// Removes from the outbox, durably and at once, everything the local MQTT broker has taken
    /// (at a restart's replay and at a graceful stop).
    pub(super) fn forget_now(&mut self) -> Result<(), StoreError> {
        self.collect_handed_over();
        self.forget_by = None;
        let done = std::mem::take(&mut self.forgetting);
        if done.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for (channel, seq) in &done {
            batch.outbox_done(*channel, *seq);
        }
        self.store.commit(batch)?;
        self.outbox_removed(&done);
        Ok(())
    }

    /// Counts the durable removal of `done` from the outbox.
    pub(super) fn outbox_removed(&mut self, done: &[(u64, u64)]) {
        for (channel, _) in done {
            if let Some(n) = self.outbox_held.get_mut(channel) {
                *n = n.saturating_sub(1);
            }
        }
    }

    pub(super) fn carry_out_seller(&mut self, i: usize, action: SellerAction) {
        let origin = Origin::Stream(i);
        match action {
            SellerAction::Persist(_) => {}
            SellerAction::Send { peer, frames } => {
                if let Some(link) = self.link_for(peer, Role::Seller) {
                    // A full queue drops the run: the engine's retransmission covers it.
                    link.tx.send_run(frames);
                }
            }
            SellerAction::Post(m) => self.job(origin, Call::Post(m)),
            SellerAction::Claim { ack, sig, .. } => self.job(origin, Call::Claim { ack, sig }),
            SellerAction::ClaimPosted { channel, upto } => self.job(origin, Call::ClaimPosted { channel, upto }),
            SellerAction::ProveWrongCost { ack, sig, .. } => self.job(origin, Call::ProveWrongCost { ack, sig }),
            SellerAction::Defend { channel } => self.job(origin, Call::Defend { channel }),
            SellerAction::DefendWithAck { ack, sig, .. } => self.job(origin, Call::DefendWithAck { ack, sig }),
            SellerAction::RequestClose { channel } => self.job(origin, Call::RequestClose { channel }),
            SellerAction::Settle { channel } => self.job(origin, Call::Settle { channel }),
            SellerAction::SubmitStop { stop, sig, .. } => self.job(origin, Call::SubmitStop { stop, sig }),
            SellerAction::CloseCooperatively { ack, ack_sig, stop, stop_sig, .. } => {
                self.job(origin, Call::CloseCooperatively { ack, ack_sig, stop, stop_sig })
            }
            SellerAction::Event(event) => tracing::info!("stream `{}`: {event:?}", self.streams[i].cfg.topic),
        }
    }

    pub(super) fn carry_out_buyer(&mut self, id: ChannelId, action: BuyerAction) {
        let origin = Origin::Bought(id);
        let Some(seller) = self.bought.get(&id).map(|b| b.engine.seller()) else { return };
        match action {
            BuyerAction::Persist(_) | BuyerAction::Deliver { .. } => {}
            BuyerAction::Send(frame) => {
                if let Some(link) = self.link_for(seller, Role::Buyer) {
                    link.tx.send(frame);
                }
            }
            BuyerAction::Claim { ack, sig, .. } => self.job(origin, Call::Claim { ack, sig }),
            BuyerAction::TopUp { channel, amount } => self.job(origin, Call::TopUp { channel, amount }),
            BuyerAction::Accuse { channel, seen, proof, missing } => self.job(origin, Call::Accuse { channel, seen, proof, missing }),
            BuyerAction::Resolve { channel } => self.job(origin, Call::Resolve { channel }),
            BuyerAction::ProveEquivocation { channel, a, proof_a, b, proof_b } => {
                self.job(origin, Call::ProveEquivocation { channel, a, proof_a, b, proof_b })
            }
            BuyerAction::RequestClose { channel } => self.job(origin, Call::RequestClose { channel }),
            BuyerAction::Settle { channel } => self.job(origin, Call::Settle { channel }),
            BuyerAction::SubmitStop { stop, sig, .. } => self.job(origin, Call::SubmitStop { stop, sig }),
            BuyerAction::CloseCooperatively { ack, ack_sig, stop, stop_sig, .. } => {
                self.job(origin, Call::CloseCooperatively { ack, ack_sig, stop, stop_sig })
            }
            BuyerAction::Event(event) => tracing::info!("channel {id}: {event:?}"),
        }
    }

    /// Puts into `batch` a snapshot of every engine whose log grew past `COMPACT_AFTER` (and
    /// twice its last snapshot): the turn's commit replaces the log with it.
    fn compact(&self, batch: &mut Batch) {
        for s in &self.streams {
            if self.store.seller_log_needs_compaction(s.number, COMPACT_AFTER) {
                let snapshot = s.engine.snapshot();
                tracing::debug!("stream `{}`: log compacted to {} records", s.cfg.topic, snapshot.len());
                batch.replace_seller_log(s.number, snapshot);
            }
        }
        for b in self.bought.values() {
            if self.store.buyer_log_needs_compaction(b.index, COMPACT_AFTER) {
                let snapshot = b.engine.snapshot();
                tracing::debug!("channel {}: log compacted to {} records", b.engine.id(), snapshot.len());
                batch.replace_buyer_log(b.index, snapshot);
            }
        }
    }
}

/// Where the time of a turn's flush went, kept for the slow-turn report (`Node::run`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TurnClock {
    at: Option<Instant>,
    took: [Duration; 5],
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    /// Frames handed to their engines and pending publications signed (on the workers).
    Engines,
    /// Actions drained from the engines into the turn's batch.
    Drain,
    /// The durable commit.
    Commit,
    /// Frames onto links, jobs to the chain worker, deliveries to local subscribers.
    CarryOut,
    /// Snapshots of engines whose logs are due for compaction (written by the commit).
    Compaction,
}

impl TurnClock {
    fn start() -> TurnClock {
        TurnClock { at: Some(Instant::now()), took: Default::default() }
    }

    /// Ends `phase` now; returns how long it took.
    fn mark(&mut self, phase: Phase) -> Duration {
        let now = Instant::now();
        let took = self.at.map_or(Duration::ZERO, |at| now - at);
        self.took[phase as usize] += took;
        self.at = Some(now);
        took
    }

    pub(super) fn total(&self) -> Duration {
        self.took.iter().sum()
    }

    pub(super) fn describe(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let [engines, drain, commit, carry_out, compaction] = self.took;
        format!(
            "engines {:.1} ms, drain {:.1} ms, commit {:.1} ms, carry out {:.1} ms, compaction {:.1} ms",
            ms(engines),
            ms(drain),
            ms(commit),
            ms(carry_out),
            ms(compaction)
        )
    }
}

enum Deliverable {
    Publish(u64, Publication),
    Action(BuyerAction),
}
