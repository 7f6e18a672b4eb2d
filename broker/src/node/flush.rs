//! The end of a turn: the engines' work, then every record committed before the other actions
//! are carried out (persist before act), the commit overlapping the next turns.

use std::time::{Duration, Instant};

use supra_channel::buyer::BuyerEvent;
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::seller::SellerEvent;

use super::*;

impl Node {
    /// Ends a turn: hands the turn's frames to the engines, signs what was published, drains
    /// every engine's actions and plans the commit of their records. The other actions wait
    /// for that commit (`enqueue`): persist before act.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let mut clock = TurnClock::start();
        let drained = self.run_engines();
        clock.mark(Phase::Engines);
        let mut batch = Batch::default();
        let mut turn = Turn::default();
        for d in drained {
            match d {
                Drained::Sold { i, number, signed, rejected, records, acts } => {
                    match signed {
                        Ok(n) => self.stats.messages_signed += n,
                        Err(e) => tracing::error!("{e}"),
                    }
                    self.reject(rejected);
                    for record in records {
                        batch.seller(number, record);
                    }
                    turn.seller_acts.extend(acts.into_iter().map(|a| (i, a)));
                }
                Drained::Bought { id, index, rejected, records, outbox, acts } => {
                    self.reject(rejected);
                    for record in records {
                        batch.buyer(index, record);
                    }
                    for (seq, entry) in outbox {
                        batch.outbox(index, seq, entry);
                    }
                    turn.buyer_acts.extend(acts.into_iter().map(|a| (id, index, a)));
                }
            }
        }
        if let Some(block) = self.store_cursor.take() {
            batch.cursor(block);
        }
        // Opens whose channel records are in this batch or an earlier one: forgotten with them.
        for id in self.openings_done.drain(..) {
            batch.opened(id);
        }
        // Removals from the outbox ride on a commit the turn makes anyway, or go on their own
        // once they waited `FORGET_WITHIN_MS`.
        self.collect_handed_over();
        if batch.has_work() || self.forget_by.is_some_and(|t| t <= now_ms()) {
            turn.forgotten = std::mem::take(&mut self.forgetting);
            for (channel, seq) in &turn.forgotten {
                batch.outbox_done(*channel, *seq);
            }
            self.forget_by = None;
        }
        clock.mark(Phase::Drain);
        self.compact(&mut batch);
        clock.mark(Phase::Compaction);
        let planned = self.store.plan(batch);
        turn.local_publishes = self.stats.local_publishes;
        self.enqueue(planned, turn)?;
        clock.mark(Phase::CarryOut);
        self.last_flush = clock;
        Ok(())
    }

    /// The engine work of a turn, every engine on the workers at once: a sold stream takes its
    /// acks (`inbox`) and signs what was published (`pending`) as one batch; a bought channel
    /// takes its data frames; then each engine's actions are drained, deliveries decoded and
    /// given their local topic. Each engine keeps its inputs' and its actions' order.
    ///
    /// A stream signs one batch for what the turn brought, however many messages (issue 11; the
    /// engine caps a batch at `max_batch`): at low rate a turn holds one message, so nothing
    /// waits for a batch to fill.
    fn run_engines(&mut self) -> Vec<Drained> {
        enum Task<'a> {
            Sell(usize, &'a mut Sold),
            Buy(ChannelId, &'a mut Bought, &'a str),
        }
        let now = now_ms();
        // Threads for the turn only when two engines or more have inputs: at a low rate a turn
        // is one message, and draining the others costs less than starting a thread.
        let busy = self.streams.iter().filter(|s| !s.inbox.is_empty() || !s.pending.is_empty()).count()
            + self.bought.values().filter(|b| !b.inbox.is_empty()).count();
        let workers = if busy > 1 { self.workers } else { Workers::new(std::num::NonZeroUsize::MIN) };
        let buys = &self.buys;
        let sellers = self.streams.iter_mut().enumerate().map(|(i, s)| Task::Sell(i, s));
        let buyers = self.bought.iter_mut().map(|(id, b)| {
            let prefix = b.buy.map(|i| buys[i].cfg.local_prefix.as_str()).unwrap_or("");
            Task::Buy(*id, b, prefix)
        });
        let tasks: Vec<Task> = sellers.chain(buyers).collect();
        workers.run(tasks, |task| match task {
            Task::Sell(i, s) => {
                let rejected = std::mem::take(&mut s.inbox)
                    .into_iter()
                    .filter_map(|(peer, frame)| s.engine.handle_frame(now, peer, frame).err().map(|e| (peer, e.to_string())))
                    .collect();
                let pending = std::mem::take(&mut s.pending);
                let signed = if pending.is_empty() {
                    Ok(0)
                } else {
                    let plaintexts: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
                    s.engine
                        .publish_batch(now, &plaintexts)
                        .map(|seqs| seqs.end - seqs.start)
                        .map_err(|e| format!("stream `{}`: cannot publish {} messages: {e}", s.cfg.topic, plaintexts.len()))
                };
                let (mut records, mut acts) = (Vec::new(), Vec::new());
                while let Some(action) = s.engine.poll_action() {
                    match action {
                        SellerAction::Persist(record) => records.push(record),
                        other => acts.push(other),
                    }
                }
                Drained::Sold { i, number: s.number, signed, rejected, records, acts }
            }
            Task::Buy(id, b, prefix) => {
                let seller = b.engine.seller();
                let rejected = std::mem::take(&mut b.inbox)
                    .into_iter()
                    .filter_map(|frame| b.engine.handle_frame(now, frame).err().map(|e| (seller, e.to_string())))
                    .collect();
                let (mut records, mut outbox, mut acts) = (Vec::new(), Vec::new(), Vec::new());
                while let Some(action) = b.engine.poll_action() {
                    match action {
                        BuyerAction::Persist(record) => persist_coalesced(&mut records, record),
                        BuyerAction::Deliver { seq, payload } => match Publication::decode(&payload) {
                            Ok(p) => {
                                let local = Publication { topic: format!("{prefix}{}", p.topic), ..p };
                                outbox.push((seq, local.clone()));
                                acts.push(Deliverable::Publish(seq, local));
                            }
                            Err(e) => tracing::warn!("channel {id}: message {seq} holds no valid publication: {e}"),
                        },
                        other => acts.push(Deliverable::Action(other)),
                    }
                }
                Drained::Bought { id, index: b.index, rejected, records, outbox, acts }
            }
        })
    }

    /// Counts frames an engine refused.
    pub(super) fn reject(&mut self, rejected: Vec<(Address, String)>) {
        for (peer, reason) in rejected {
            self.stats.frames_rejected += 1;
            tracing::debug!("frame from {peer} rejected: {reason}");
        }
    }

    /// Commits a turn's plan, then carries out the turn (see `CommitQueue`). A failed commit
    /// stops the broker.
    fn enqueue(&mut self, planned: Planned, turn: Turn) -> Result<(), StoreError> {
        if let Pushed::Ready(turn, took) = self.commits.push(planned, turn)? {
            if let Some(took) = took {
                self.observe_commit(took);
            }
            self.carry_out(turn);
        }
        Ok(())
    }

    /// A commit is durable (or failed: the broker stops): its turns are carried out.
    pub(super) fn on_committed(&mut self, done: Committed) -> Result<(), StoreError> {
        self.observe_commit(done.took);
        for turn in self.commits.committed(done)? {
            self.carry_out(turn);
        }
        Ok(())
    }

    fn observe_commit(&mut self, took: Duration) {
        self.observer.commit(took);
        if took > SLOW_TURN {
            // Every message of the turns it carries waited as long (the disk, or a large commit).
            tracing::warn!("slow commit of {}: {:.1} ms", self.me.address(), took.as_secs_f64() * 1e3);
        }
    }

    /// Waits until every turn is committed and carried out (a graceful stop).
    pub(super) async fn settle_commits(&mut self, commits: &mut mpsc::UnboundedReceiver<Committed>) -> Result<(), StoreError> {
        while !self.commits.is_idle() {
            let Some(done) = commits.recv().await else {
                return Err(StoreError::Corrupt("the committer thread stopped".into()));
            };
            self.on_committed(done)?;
        }
        Ok(())
    }

    /// Carries out a turn whose records are durable: frames onto links, jobs to the chain
    /// worker, deliveries to local subscribers, PUBACKs to local publishers.
    fn carry_out(&mut self, turn: Turn) {
        for (_, index, action) in &turn.buyer_acts {
            if matches!(action, Deliverable::Publish(..)) {
                *self.outbox_held.entry(*index).or_default() += 1;
            }
        }
        self.outbox_removed(&turn.forgotten);
        self.mqtt.committed(turn.local_publishes);
        for (i, action) in turn.seller_acts {
            self.carry_out_seller(i, action);
        }
        for (id, index, action) in turn.buyer_acts {
            match action {
                Deliverable::Publish(seq, publication) => self.publish_locally(index, seq, &publication),
                Deliverable::Action(action) => self.carry_out_buyer(id, action),
            }
        }
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

    /// Removes from the outbox everything the local MQTT broker has taken, in the next commit
    /// without waiting (at a restart's replay and at a graceful stop).
    pub(super) fn forget_now(&mut self) -> Result<(), StoreError> {
        self.collect_handed_over();
        self.forget_by = None;
        let forgotten = std::mem::take(&mut self.forgetting);
        if forgotten.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for (channel, seq) in &forgotten {
            batch.outbox_done(*channel, *seq);
        }
        let planned = self.store.plan(batch);
        let turn = Turn { forgotten, local_publishes: self.stats.local_publishes, ..Turn::default() };
        self.enqueue(planned, turn)
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
            SellerAction::Event(SellerEvent::BuyerLagging { channel, behind, limit }) => tracing::warn!(
                "stream `{}`: channel {channel} stopped: its buyer is {behind} messages behind the stream, past [node] max_backlog ({limit})",
                self.streams[i].cfg.topic
            ),
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
            // Emitted only when the seller's `Stop` ends the channel (the buyer's own stop is
            // the operator's, and says so where it is asked for).
            BuyerAction::Event(BuyerEvent::StopCompleted) => {
                tracing::warn!("channel {id}: the seller stopped it; everything it sent is acked and the channel closes")
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
    took: [Duration; 4],
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    /// Frames handed to their engines and pending publications signed (on the workers).
    Engines,
    /// Actions drained from the engines into the turn's batch.
    Drain,
    /// The plan handed to the committer (its commit overlaps the next turns), or, with
    /// nothing to commit and none outstanding, the turn carried out at once.
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
        let [engines, drain, carry_out, compaction] = self.took;
        format!(
            "engines {:.1} ms, drain {:.1} ms, compaction snapshots {:.1} ms, commit (written here when small, else handed over) and carry-out {:.1} ms",
            ms(engines),
            ms(drain),
            ms(compaction),
            ms(carry_out)
        )
    }
}

/// Appends a buyer record of the turn; a delivery position right after another replaces it.
/// The turn's records are committed together before any of its actions, so only the last
/// position of a run of them is ever read back (one per frame was most of a buyer's log).
pub fn persist_coalesced(records: &mut Vec<BuyerRecord>, record: BuyerRecord) {
    if matches!(record, BuyerRecord::Position { .. }) && matches!(records.last(), Some(BuyerRecord::Position { .. })) {
        records.pop();
    }
    records.push(record);
}

/// One engine's part of a turn (`run_engines`).
enum Drained {
    Sold { i: usize, number: u64, signed: Result<u64, String>, rejected: Vec<(Address, String)>, records: Vec<SellerRecord>, acts: Vec<SellerAction> },
    Bought { id: ChannelId, index: u64, rejected: Vec<(Address, String)>, records: Vec<BuyerRecord>, outbox: Vec<(u64, Publication)>, acts: Vec<Deliverable> },
}

/// What a turn carries out once its records are durable.
#[derive(Default)]
pub(super) struct Turn {
    seller_acts: Vec<(usize, SellerAction)>,
    buyer_acts: Vec<(ChannelId, u64, Deliverable)>,
    /// Outbox entries whose removal the turn's commit carries.
    forgotten: Vec<OutboxKey>,
    /// Local publishes taken up to the turn's end (their records are in its commit).
    local_publishes: u64,
}

enum Deliverable {
    Publish(u64, Publication),
    Action(BuyerAction),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_of_consecutive_positions_is_kept() {
        let position = |next_seq| BuyerRecord::Position { next_seq, last_digest: None };
        let mut records = Vec::new();
        for record in [position(1), position(2), BuyerRecord::Stopped { seq: 2, by_buyer: true }, position(3), position(4)] {
            persist_coalesced(&mut records, record);
        }
        assert_eq!(records, vec![position(2), BuyerRecord::Stopped { seq: 2, by_buyer: true }, position(4)]);
    }
}
