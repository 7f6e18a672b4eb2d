//! Commits: a turn's plan (`Planned`), encoded (`Writes`), journaled and written to redb
//! (`Target`), on the node's thread or the `Committer`'s, in order (`CommitQueue`).

use redb::Database;
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::types::ChannelId;

use super::journal::Journal;
use super::logs::{LogTables, LogWrites, Record};
use super::{CHAIN_CURSOR, JOURNAL_LSN, META, OPENING, OUTBOX, OutboxEntry, StoreError, blocking};

impl<R: Record> LogWrites<R> {
    /// Encodes the records into `values` (`buf` is scratch space).
    fn encode(self, values: &mut Vec<u8>, buf: &mut Vec<u8>) -> Result<LogOps, StoreError> {
        let mut records = Vec::with_capacity(self.records.len());
        for ((log, n), record) in self.records {
            record.encode_into(buf)?;
            records.push((log, n, push_value(values, buf)?));
        }
        Ok(LogOps { records, starts: self.starts, garbage: self.garbage })
    }
}

/// Appends `value` to `values`; returns where it lies there.
fn push_value(values: &mut Vec<u8>, value: &[u8]) -> Result<(u32, u32), StoreError> {
    let start = values.len();
    values.extend_from_slice(value);
    match (u32::try_from(start), u32::try_from(values.len())) {
        (Ok(start), Ok(end)) => Ok((start, end)),
        _ => Err(StoreError::Corrupt("a commit of more than 4 GiB".into())),
    }
}

/// A family of logs' part of [`Writes`]: records as (log, number, value range).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct LogOps {
    records: Vec<(u64, u64, (u32, u32))>,
    starts: Vec<(u64, u64)>,
    garbage: Vec<(u64, u64, u64)>,
}

impl LogOps {
    /// Writes inside `txn`: records, then starts, then deletions (a later turn's garbage may be
    /// records an earlier turn of the same transaction appended).
    fn write(&self, txn: &redb::WriteTransaction, logs: LogTables, writes: &Writes) -> Result<(), StoreError> {
        if self.records.is_empty() && self.starts.is_empty() && self.garbage.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(logs.table)?;
        for (log, n, range) in &self.records {
            table.insert((*log, *n), writes.value(*range)?)?;
        }
        let mut starts = txn.open_table(logs.starts)?;
        for (log, start) in &self.starts {
            starts.insert(*log, *start)?;
        }
        // One scan per range (redb's retain_in walks the leaves once), not a descent from the
        // root per record: a compaction's garbage is whole runs of a log.
        for (log, from, to) in &self.garbage {
            table.retain_in((*log, *from)..(*log, *to), |_, _| false)?;
        }
        Ok(())
    }
}

/// A plan with its values encoded, back to back in `values`: what the journal records and what
/// the redb transaction writes (`write`), the same on the way in and at replay.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Writes {
    #[serde(with = "supra_channel::wire::byte_string")]
    values: Vec<u8>,
    seller: LogOps,
    buyer: LogOps,
    outbox_add: Vec<(u64, u64, (u32, u32))>,
    outbox_done: Vec<(u64, u64)>,
    cursor: Option<u64>,
    opened: Vec<[u8; 32]>,
}

impl Writes {
    fn value(&self, (start, end): (u32, u32)) -> Result<&[u8], StoreError> {
        self.values.get(start as usize..end as usize).ok_or_else(|| StoreError::Corrupt("a journal record refers past its values".into()))
    }

    /// The size of its journal record (counted, not written).
    fn encoded_len(&self) -> Result<usize, StoreError> {
        let mut size = bincode::enc::write::SizeWriter::default();
        bincode::serde::encode_into_writer(self, &mut size, bincode::config::standard()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(size.bytes_written)
    }

    /// Appends its journal record to `buf`.
    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        bincode::serde::encode_into_std_write(self, buf, bincode::config::standard()).map(drop).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Result<Writes, StoreError> {
        // A record is at most the journal's size: a length beyond it is a damaged record, not
        // an allocation to attempt.
        let config = bincode::config::standard().with_limit::<{ 16 << 20 }>();
        match bincode::serde::decode_from_slice::<Writes, _>(bytes, config) {
            Ok((writes, used)) if used == bytes.len() => Ok(writes),
            Ok(_) => Err(StoreError::Corrupt("a journal record with trailing bytes".into())),
            Err(e) => Err(StoreError::Corrupt(format!("a journal record: {e}"))),
        }
    }

    /// Writes everything inside `txn`, with `lsn` as the last plan the store holds.
    pub(super) fn write(&self, txn: &redb::WriteTransaction, logs: (LogTables, LogTables), lsn: u64) -> Result<(), StoreError> {
        self.seller.write(txn, logs.0, self)?;
        self.buyer.write(txn, logs.1, self)?;
        let mut outbox = txn.open_table(OUTBOX)?;
        for (channel, seq, range) in &self.outbox_add {
            outbox.insert((*channel, *seq), self.value(*range)?)?;
        }
        for (channel, seq) in &self.outbox_done {
            outbox.remove((*channel, *seq))?;
        }
        let mut meta = txn.open_table(META)?;
        if let Some(block) = self.cursor {
            meta.insert(CHAIN_CURSOR, block)?;
        }
        meta.insert(JOURNAL_LSN, lsn)?;
        if !self.opened.is_empty() {
            let mut opening = txn.open_table(OPENING)?;
            for id in &self.opened {
                opening.remove(id.as_slice())?;
            }
        }
        Ok(())
    }
}

/// Where plans are written: the journal, then redb (see `journal`). The store, the `Committer`'s
/// thread and a small plan written on the node's thread share it; the lock keeps the journal's
/// order and redb's the same.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) db: std::sync::Arc<Database>,
    pub(super) logs: (LogTables, LogTables),
    pub(super) journal: std::sync::Arc<std::sync::Mutex<Journaled>>,
}

/// The journal, and the plans it holds that redb does not have yet.
pub(super) struct Journaled {
    pub(super) journal: Journal,
    /// Durable in the journal, not yet written to redb: applied together at the next checkpoint,
    /// or before anything reads or writes redb directly (`Target::applied`). At most the
    /// journal's size of records.
    unapplied: Vec<(u64, Writes)>,
}

impl Journaled {
    pub(super) fn new(journal: Journal) -> Journaled {
        Journaled { journal, unapplied: Vec::new() }
    }

    /// Writes the unapplied plans inside `txn`, in order (the caller clears them once it is
    /// committed).
    fn write_unapplied(&self, txn: &redb::WriteTransaction, logs: (LogTables, LogTables)) -> Result<(), StoreError> {
        for (lsn, writes) in &self.unapplied {
            writes.write(txn, logs, *lsn)?;
        }
        Ok(())
    }
}

impl Target {
    /// Makes `planned` durable: its record synced in the journal, which is all a turn waits for
    /// (redb gets it later, with others: see `Journaled::unapplied`); or, when the journal is
    /// full, one durable redb commit of every unapplied plan and this one (a checkpoint), after
    /// which the journal starts over.
    ///
    /// A redb commit per plan, even a non-durable one, cost as much CPU as the journal's write
    /// and sync together (a fifth of the process's time at 1 000 msg/s in the e2e bench).
    pub(super) fn write(&self, planned: Planned) -> Result<(), StoreError> {
        let writes = planned.encode()?;
        // Counted first: a plan too large for the journal is never encoded for it.
        let size = writes.encoded_len()?;
        let mut state = self.lock()?;
        let (lsn, journaled) = blocking(|| state.journal.append_with(size, |record| writes.encode_into(record)))?;
        if journaled {
            state.unapplied.push((lsn, writes));
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        state.write_unapplied(&txn, self.logs)?;
        writes.write(&txn, self.logs, lsn)?;
        blocking(|| txn.commit())?;
        state.unapplied.clear();
        state.journal.restart();
        Ok(())
    }

    /// Writes every unapplied plan to redb (one non-durable commit: they are durable in the
    /// journal already), so that what follows reads them, or writes after them. Call it before
    /// any transaction of one's own, and not while holding one (a checkpoint waits for redb's
    /// writer under the same lock).
    pub(super) fn applied(&self) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.unapplied.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        state.write_unapplied(&txn, self.logs)?;
        txn.commit()?;
        state.unapplied.clear();
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Journaled>, StoreError> {
        self.journal.lock().map_err(|_| StoreError::Corrupt("the journal's lock was poisoned by a panic".into()))
    }

    /// Plans written to the journal and not yet to redb.
    #[cfg(test)]
    pub(super) fn unapplied(&self) -> usize {
        self.lock().map_or(0, |s| s.unapplied.len())
    }
}

/// What one durable transaction writes, planned on the node's thread (keys given, garbage
/// chosen: the logs' bookkeeping stays there, in order) and written by `Store::write` or by the
/// `Committer`'s thread, which also encodes the records. Several turns' plans merge into one
/// transaction (`Planned::merge`), their order kept.
#[derive(Default)]
pub struct Planned {
    pub(super) seller: LogWrites<SellerRecord>,
    pub(super) buyer: LogWrites<BuyerRecord>,
    pub(super) outbox_add: Vec<(u64, u64, OutboxEntry)>,
    pub(super) outbox_done: Vec<(u64, u64)>,
    pub(super) cursor: Option<u64>,
    pub(super) opened: Vec<ChannelId>,
}

impl Planned {
    /// True when there is anything to write.
    pub fn has_work(&self) -> bool {
        !self.seller.is_empty()
            || !self.buyer.is_empty()
            || !self.outbox_add.is_empty()
            || !self.outbox_done.is_empty()
            || self.cursor.is_some()
            || !self.opened.is_empty()
    }

    /// How many values it inserts or deletes: what its transaction costs beside the fsync.
    pub fn writes(&self) -> usize {
        fn of<R>(log: &LogWrites<R>) -> usize {
            let garbage: u64 = log.garbage.iter().map(|(_, from, to)| to - from).sum();
            log.records.len() + log.starts.len() + garbage as usize
        }
        of(&self.seller) + of(&self.buyer) + self.outbox_add.len() + self.outbox_done.len() + self.opened.len()
    }

    /// Appends a later plan: written in the same transaction, after this one.
    pub fn merge(&mut self, later: Planned) {
        self.seller.extend(later.seller);
        self.buyer.extend(later.buyer);
        self.outbox_add.extend(later.outbox_add);
        self.outbox_done.extend(later.outbox_done);
        self.cursor = later.cursor.or(self.cursor);
        self.opened.extend(later.opened);
    }

    /// Encodes every value (what `Target::write` journals and writes).
    fn encode(self) -> Result<Writes, StoreError> {
        let mut writes = Writes::default();
        // One scratch buffer for every value of the plan.
        let mut buf = Vec::with_capacity(1024);
        writes.seller = self.seller.encode(&mut writes.values, &mut buf)?;
        writes.buyer = self.buyer.encode(&mut writes.values, &mut buf)?;
        for (channel, seq, entry) in self.outbox_add {
            entry.encode_into(&mut buf);
            let range = push_value(&mut writes.values, &buf)?;
            writes.outbox_add.push((channel, seq, range));
        }
        writes.outbox_done = self.outbox_done;
        writes.cursor = self.cursor;
        writes.opened = self.opened.iter().map(|id| id.0.to_be_bytes::<32>()).collect();
        Ok(writes)
    }
}

/// A commit written by the `Committer`: its ticket, how long the transaction took, and whether
/// it is durable.
#[derive(Debug)]
pub struct Committed {
    pub ticket: u64,
    pub took: std::time::Duration,
    pub result: Result<(), StoreError>,
}

/// Writes planned commits on a thread of its own, in the order submitted, so that a turn's
/// fsync overlaps the next turn's engine work (issue 15). Each one is reported on the channel
/// `Store::committer` returns; nothing that follows a commit may act before its report. A
/// small plan may be written on the caller's thread instead (`CommitQueue::push`).
pub struct Committer {
    pub(super) tx: Option<std::sync::mpsc::Sender<(u64, Planned)>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
    pub(super) next: u64,
    /// The same journal and database, for a small plan written on the caller's thread.
    pub(super) target: Target,
}

impl Committer {
    /// Writes `planned` here and now, on the caller's thread; returns how long it took. Only
    /// while nothing submitted is outstanding (plans are written in order).
    fn write_now(&self, planned: Planned) -> Result<std::time::Duration, StoreError> {
        let started = std::time::Instant::now();
        self.target.write(planned)?;
        Ok(started.elapsed())
    }

    /// Queues `planned`; returns its ticket.
    pub fn submit(&mut self, planned: Planned) -> u64 {
        let ticket = self.next;
        self.next += 1;
        if let Some(tx) = &self.tx {
            // The thread only stops when this sender is dropped.
            let _ = tx.send((ticket, planned));
        }
        ticket
    }
}

/// The most values (`Planned::writes`) a plan may hold to be written on the node's own thread
/// when no commit is outstanding. A turn that small is a low rate's one or few messages: handing
/// it to the commit thread and back would cost two thread wakeups, each of which can take
/// milliseconds when the other core sleeps (as a VM's idle vCPU does), for no overlap worth
/// having. A larger plan goes to the commit thread, and the turns behind it pipeline.
pub(super) const INLINE_WRITES: usize = 16;

/// What `CommitQueue::push` did with a turn.
#[derive(Debug, PartialEq)]
pub enum Pushed<T> {
    /// Behind or in a commit of the commit thread: carried out when `committed` returns it.
    Queued,
    /// May be carried out now: it had nothing to commit, or its small plan was just written on
    /// this thread (how long that took).
    Ready(T, Option<std::time::Duration>),
}

/// Persist before act with a `Committer`: each turn's plan is committed before the turn is
/// carried out, turns are carried out in order, and while one commit is written the plans of the
/// turns that end meanwhile merge into the next one (group commit; the engines go on meanwhile).
/// A small plan with nothing outstanding is written at once on the caller's thread
/// (`INLINE_WRITES`). Generic over what a turn carries out, so that the node and the benches
/// share it.
pub struct CommitQueue<T> {
    committer: Committer,
    /// The commit being written (its ticket) and the turns it carries.
    in_flight: Option<(u64, Vec<T>)>,
    /// Turns ended while it is written: their merged plan is the next commit.
    waiting: Option<(Planned, Vec<T>)>,
}

impl<T> CommitQueue<T> {
    pub fn new(committer: Committer) -> CommitQueue<T> {
        CommitQueue { committer, in_flight: None, waiting: None }
    }

    /// A turn ended with `planned` to commit: queues it, or gives it back when it may be carried
    /// out now (nothing to commit, or a small plan written here; see `Pushed`). An error is a
    /// failed commit: nothing after it may be carried out.
    pub fn push(&mut self, planned: Planned, turn: T) -> Result<Pushed<T>, StoreError> {
        if let Some((waiting, turns)) = &mut self.waiting {
            waiting.merge(planned);
            turns.push(turn);
        } else if self.in_flight.is_some() {
            self.waiting = Some((planned, vec![turn]));
        } else if !planned.has_work() {
            return Ok(Pushed::Ready(turn, None));
        } else if planned.writes() <= INLINE_WRITES {
            let took = self.committer.write_now(planned)?;
            return Ok(Pushed::Ready(turn, Some(took)));
        } else {
            let ticket = self.committer.submit(planned);
            self.in_flight = Some((ticket, vec![turn]));
        }
        Ok(Pushed::Queued)
    }

    /// The committer reported `done`: returns the turns it made durable, in order, and sends
    /// the waiting ones' plan (or returns them too, when they have nothing to commit). A failed
    /// commit is an error: nothing after it may be carried out.
    pub fn committed(&mut self, done: Committed) -> Result<Vec<T>, StoreError> {
        done.result?;
        let Some((ticket, mut turns)) = self.in_flight.take() else { return Ok(Vec::new()) };
        debug_assert_eq!(ticket, done.ticket, "commits are reported in order");
        if let Some((planned, waiting)) = self.waiting.take() {
            if planned.has_work() {
                let ticket = self.committer.submit(planned);
                self.in_flight = Some((ticket, waiting));
            } else {
                turns.extend(waiting);
            }
        }
        Ok(turns)
    }

    /// Turns wait behind the commit being written.
    pub fn is_backed_up(&self) -> bool {
        self.waiting.is_some()
    }

    /// Nothing is being committed or waiting.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none()
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
