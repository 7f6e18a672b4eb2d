//! The end of a turn: commit every record, then carry out the other actions (persist before act).

use super::*;

impl Node {
    /// Commits every record of the turn, then carries out the other actions in order.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        self.hand_frames();
        self.sign_pending();
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
        let started = std::time::Instant::now();
        if batch.has_work() {
            self.store.commit(batch)?;
            self.observer.commit(started.elapsed());
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
        self.compact()
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

    pub(super) fn compact(&mut self) -> Result<(), StoreError> {
        for s in &self.streams {
            if self.store.seller_log_needs_compaction(s.number, COMPACT_AFTER) {
                self.store.compact_seller(s.number, s.engine.snapshot())?;
            }
        }
        for b in self.bought.values() {
            if self.store.buyer_log_needs_compaction(b.index, COMPACT_AFTER) {
                self.store.compact_buyer(b.index, b.engine.snapshot())?;
            }
        }
        Ok(())
    }
}

enum Deliverable {
    Publish(u64, Publication),
    Action(BuyerAction),
}
