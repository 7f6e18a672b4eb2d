//! Durable state in one redb file (`<data_dir>/supra.redb`), with a commit journal in front of it
//! (`<data_dir>/supra.journal`, see `journal`).
//!
//! The engines' records are appended to per-stream and per-channel logs; a [`Batch`] gathers every
//! write of one turn of the broker's loop and commits it at once (its journal record synced; redb
//! gets it later, with others, in one transaction), before the actions that follow the records
//! are carried out (persist before act, with group commit). Logs are compacted by replacing them
//! with the engine's `snapshot()` in a turn's commit (appended, then the log's start moved past
//! the old records, which later commits delete a few at a time: see `Logs`).
//!
//! Besides the logs: the sold topics' stream numbers (never reused), the buyer's outbox of
//! delivered plaintexts not yet handed to local subscribers, channel opens in flight (written
//! before the `open` transaction, so a crash cannot leave a deposit locked in an unknown channel),
//! and the chain event cursor.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::sign::Signature;
use supra_channel::types::{ChannelId, Offer};

use crate::mqtt::Publication;

/// (stream number, record number) -> encoded `SellerRecord`.
const SELLER_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("seller_log");
/// (channel index, record number) -> encoded `BuyerRecord`.
const BUYER_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("buyer_log");
/// (channel index, seq) -> encoded local publish (a `Publication`) not yet handed to the embedded MQTT broker.
const OUTBOX: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("outbox");
/// Stream number -> the first record of its seller log (records before it are garbage left by a
/// compaction; absent: 0).
const SELLER_LOG_START: TableDefinition<u64, u64> = TableDefinition::new("seller_log_start");
/// Channel index -> the first record of its buyer log (the same).
const BUYER_LOG_START: TableDefinition<u64, u64> = TableDefinition::new("buyer_log_start");
/// Sold topic filter -> stream number.
const STREAMS: TableDefinition<&str, u64> = TableDefinition::new("streams");
/// Buyer channel id (32 bytes) -> channel index.
const CHANNELS: TableDefinition<&[u8], u64> = TableDefinition::new("channels");
/// Buyer channel index -> the bought topic (which `[[buy]]` entry it serves).
const CHANNEL_TOPICS: TableDefinition<u64, &str> = TableDefinition::new("channel_topics");
/// Buyer channel id (32 bytes) -> offer and signature, while its `open` transaction is in flight.
const OPENING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("opening");
/// Counters and cursors.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Which chain and judge this state belongs to: "judge" (20 bytes), "genesis" (32 bytes).
const CHAIN: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
/// Streams an operator sold or bought at runtime (`supra sell`, `supra buy`): key -> JSON entry
/// (see `market.rs`).
const MARKET: TableDefinition<&str, &[u8]> = TableDefinition::new("market");

const NEXT_STREAM: &str = "next_stream_number";
const NEXT_CHANNEL: &str = "next_channel_index";
const CHAIN_CURSOR: &str = "chain_cursor";
/// The last plan (journal LSN) this database holds.
const JOURNAL_LSN: &str = "journal_lsn";
/// A random id made with the redb file: its journal's records carry it.
const STORE_ID: &str = "store_id";

mod commit;
mod journal;
mod logs;

pub use commit::{CommitQueue, Committed, Committer, Planned, Pushed};
use commit::{Journaled, Target, Writes};
use journal::Journal;
use logs::Logs;

/// A storage failure. The broker stops on one: acting without persisting could lose money.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Db(#[from] redb::Error),
    #[error("state store holds an unreadable record: {0}")]
    Corrupt(String),
    #[error("this data directory holds the state of another chain or judge ({0}); use another data_dir")]
    OtherChain(String),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_error!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// A delivered publication in the buyer's outbox, with its local topic.
pub type OutboxEntry = Publication;

fn decode_outbox(bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    Publication::decode(bytes).map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))
}

fn encode_opening(offer: &Offer, sig: &Signature) -> Vec<u8> {
    // The buyer's Channel record already has a codec for (offer, sig): reuse it.
    BuyerRecord::Channel { offer: offer.clone(), sig: *sig }.encode().unwrap_or_default()
}

/// Runs `f`, which blocks on the disk (an fsync), without holding up the other tasks of the
/// runtime's worker thread: on a multi-threaded tokio runtime the worker hands its queued tasks to
/// another thread for the duration (`block_in_place`). The node's commit is such a call, made from
/// its task; on 2 cores, the embedded MQTT broker, the peer links and the other node of a test or
/// bench waited behind it, among them the very tasks that carry the committed turn's frames.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Garbage records deleted by a quiet commit, one that only removes outbox entries (see `Store::commit`).
const GARBAGE_PER_QUIET_COMMIT: u64 = 64;

/// A buyer channel as stored.
#[derive(Debug)]
pub struct StoredChannel {
    pub id: ChannelId,
    pub index: u64,
    /// The `[[buy]]` topic it was bought for.
    pub topic: String,
    pub records: Vec<BuyerRecord>,
}

/// Everything written in one turn of the broker loop, committed at once.
#[derive(Debug, Default)]
pub struct Batch {
    seller: Vec<(u64, SellerRecord)>,
    buyer: Vec<(u64, BuyerRecord)>,
    outbox_add: Vec<(u64, u64, OutboxEntry)>,
    outbox_done: Vec<(u64, u64)>,
    cursor: Option<u64>,
    /// Logs replaced by a snapshot of their engine taken after this batch's records (compaction
    /// rides on the turn's commit: no transaction and no fsync of its own).
    seller_snapshots: Vec<(u64, Vec<SellerRecord>)>,
    buyer_snapshots: Vec<(u64, Vec<BuyerRecord>)>,
    /// Opens in flight that became channels (their records are in this batch or an earlier one).
    opened: Vec<ChannelId>,
}

impl Batch {
    pub fn seller(&mut self, stream: u64, record: SellerRecord) {
        self.seller.push((stream, record));
    }
    pub fn buyer(&mut self, channel: u64, record: BuyerRecord) {
        self.buyer.push((channel, record));
    }
    pub fn outbox(&mut self, channel: u64, seq: u64, entry: OutboxEntry) {
        self.outbox_add.push((channel, seq, entry));
    }
    pub fn outbox_done(&mut self, channel: u64, seq: u64) {
        self.outbox_done.push((channel, seq));
    }
    pub fn cursor(&mut self, block: u64) {
        self.cursor = Some(block);
    }
    /// Replaces a seller log, once this batch's records are in it, with `snapshot` (see
    /// `Store::seller_log_needs_compaction`).
    pub fn replace_seller_log(&mut self, stream: u64, snapshot: Vec<SellerRecord>) {
        self.seller_snapshots.push((stream, snapshot));
    }
    /// Forgets an `open` in flight in the same transaction (see `Store::opened`).
    pub fn opened(&mut self, id: ChannelId) {
        self.opened.push(id);
    }
    /// The same for a buyer log.
    pub fn replace_buyer_log(&mut self, channel: u64, snapshot: Vec<BuyerRecord>) {
        self.buyer_snapshots.push((channel, snapshot));
    }
    /// True when there is anything to write.
    pub fn has_work(&self) -> bool {
        !self.seller.is_empty()
            || !self.buyer.is_empty()
            || !self.outbox_add.is_empty()
            || !self.outbox_done.is_empty()
            || self.cursor.is_some()
            || !self.seller_snapshots.is_empty()
            || !self.buyer_snapshots.is_empty()
            || !self.opened.is_empty()
    }
}

/// The broker's durable state.
pub struct Store {
    db: std::sync::Arc<Database>,
    seller: Logs,
    buyer: Logs,
    /// Where plans go (the same database, behind the journal).
    target: Target,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_journal(dir, journal::JOURNAL_BYTES)
    }

    /// The same with a journal of `journal_bytes` (a test's small one checkpoints often).
    fn open_with_journal(dir: &Path, journal_bytes: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let db = Database::create(dir.join("supra.redb"))?;
        // Every table exists, and the store's id (made with its redb file, see `journal`) is
        // read or made, in one transaction.
        let txn = db.begin_write()?;
        let (id, applied) = {
            txn.open_table(SELLER_LOG)?;
            txn.open_table(BUYER_LOG)?;
            txn.open_table(SELLER_LOG_START)?;
            txn.open_table(BUYER_LOG_START)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(STREAMS)?;
            txn.open_table(CHANNELS)?;
            txn.open_table(CHANNEL_TOPICS)?;
            txn.open_table(OPENING)?;
            txn.open_table(CHAIN)?;
            txn.open_table(MARKET)?;
            let mut meta = txn.open_table(META)?;
            let stored = meta.get(STORE_ID)?.map(|v| v.value());
            let id = match stored {
                Some(id) => id,
                None => {
                    let id = rand::random::<u64>();
                    meta.insert(STORE_ID, id)?;
                    id
                }
            };
            let applied = meta.get(JOURNAL_LSN)?.map_or(0, |v| v.value());
            (id, applied)
        };
        txn.commit()?;
        let (seller, buyer) = (Logs::new(SELLER_LOG, SELLER_LOG_START), Logs::new(BUYER_LOG, BUYER_LOG_START));
        let logs = (seller.tables, buyer.tables);
        // The plans journaled after redb's last durable commit are written again, durably, in
        // one transaction; then the journal starts over.
        let (mut journal, replay) = Journal::open(&dir.join("supra.journal"), id, applied, journal_bytes)?;
        if let Some((last, _)) = replay.last() {
            let txn = db.begin_write()?;
            for (lsn, record) in &replay {
                Writes::from_bytes(record)?.write(&txn, logs, *lsn)?;
            }
            txn.commit()?;
            tracing::info!("store: {} commits after plan {applied} written again from the journal (up to plan {last})", replay.len());
        }
        journal.restart();
        let db = std::sync::Arc::new(db);
        let target = Target { db: db.clone(), logs, journal: std::sync::Arc::new(std::sync::Mutex::new(Journaled::new(journal))) };
        Ok(Store { db, seller, buyer, target })
    }

    /// A read transaction that sees every plan written so far.
    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.target.applied()?;
        Ok(self.db.begin_read()?)
    }

    /// A write transaction of the store's own, after every plan written so far.
    fn write_txn(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.target.applied()?;
        Ok(self.db.begin_write()?)
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(META)?.get(key)?.map(|v| v.value()))
    }

    /// Binds the state to a chain (its genesis block hash) and a judge the first time; afterwards
    /// refuses to run against another one (the channels recorded here live there).
    pub fn bind_chain(&mut self, genesis: &[u8; 32], judge: &[u8; 20]) -> Result<(), StoreError> {
        let txn = self.write_txn()?;
        {
            let mut table = txn.open_table(CHAIN)?;
            for (key, value) in [("genesis", &genesis[..]), ("judge", &judge[..])] {
                let stored = table.get(key)?.map(|v| v.value().to_vec());
                match stored {
                    Some(stored) if stored != value => {
                        return Err(StoreError::OtherChain(format!("{key} was 0x{}, is now 0x{}", hex::encode(stored), hex::encode(value))));
                    }
                    Some(_) => {}
                    None => {
                        table.insert(key, value)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The stream number of a sold topic filter, allocating a new one (never reused) the first time.
    pub fn stream_number(&mut self, topic: &str) -> Result<u64, StoreError> {
        let txn = self.write_txn()?;
        let number = {
            let mut streams = txn.open_table(STREAMS)?;
            if let Some(n) = streams.get(topic)?.map(|v| v.value()) {
                n
            } else {
                let mut meta = txn.open_table(META)?;
                let n = meta.get(NEXT_STREAM)?.map_or(0, |v| v.value());
                meta.insert(NEXT_STREAM, n + 1)?;
                streams.insert(topic, n)?;
                n
            }
        };
        txn.commit()?;
        Ok(number)
    }

    /// The seller records of stream `number`, in order.
    pub fn seller_records(&mut self, number: u64) -> Result<Vec<SellerRecord>, StoreError> {
        let txn = self.read()?;
        self.seller.read(&txn, number)
    }

    /// Every buyer channel with its index, bought topic and records, in order.
    pub fn buyer_channels(&mut self) -> Result<Vec<StoredChannel>, StoreError> {
        let txn = self.read()?;
        let channels = txn.open_table(CHANNELS)?;
        let topics = txn.open_table(CHANNEL_TOPICS)?;
        let mut out = Vec::new();
        for entry in channels.iter()? {
            let (id, index) = entry?;
            let id = ChannelId(alloy_primitives::U256::from_be_slice(id.value()));
            let index = index.value();
            let records = self.buyer.read(&txn, index)?;
            let topic = topics.get(index)?.map(|t| t.value().to_owned()).unwrap_or_default();
            out.push(StoredChannel { id, index, topic, records });
        }
        Ok(out)
    }

    /// Registers a new buyer channel bought for `topic` and returns its index.
    pub fn add_buyer_channel(&mut self, id: ChannelId, topic: &str) -> Result<u64, StoreError> {
        let txn = self.write_txn()?;
        let index = {
            let mut meta = txn.open_table(META)?;
            let index = meta.get(NEXT_CHANNEL)?.map_or(0, |v| v.value());
            meta.insert(NEXT_CHANNEL, index + 1)?;
            txn.open_table(CHANNELS)?.insert(id.0.to_be_bytes::<32>().as_slice(), index)?;
            txn.open_table(CHANNEL_TOPICS)?.insert(index, topic)?;
            index
        };
        txn.commit()?;
        self.buyer.next.insert(index, 0);
        self.buyer.start.insert(index, 0);
        Ok(index)
    }

    /// Records an `open` about to be sent for `id` (before the transaction).
    pub fn opening(&mut self, id: ChannelId, offer: &Offer, sig: &Signature) -> Result<(), StoreError> {
        let txn = self.write_txn()?;
        txn.open_table(OPENING)?.insert(id.0.to_be_bytes::<32>().as_slice(), encode_opening(offer, sig).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Forgets an `open` in flight (it became a channel, or it failed for good).
    pub fn opened(&mut self, id: ChannelId) -> Result<(), StoreError> {
        let txn = self.write_txn()?;
        txn.open_table(OPENING)?.remove(id.0.to_be_bytes::<32>().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Opens that were in flight at the last stop: (offer, signature).
    pub fn openings(&self) -> Result<Vec<(Offer, Signature)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OPENING)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            match BuyerRecord::decode(value.value()) {
                Ok(BuyerRecord::Channel { offer, sig }) => out.push((offer, sig)),
                _ => return Err(StoreError::Corrupt("opening entry".into())),
            }
        }
        Ok(out)
    }

    /// The runtime market entries, by key.
    pub fn market(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(MARKET)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    /// Writes (`Some`) or removes (`None`) a runtime market entry, durably.
    pub fn set_market(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        let txn = self.write_txn()?;
        {
            let mut table = txn.open_table(MARKET)?;
            match value {
                Some(value) => {
                    table.insert(key, value)?;
                }
                None => {
                    table.remove(key)?;
                }
            }
        }
        blocking(|| txn.commit())?;
        Ok(())
    }

    /// Outbox entries not yet handed to local subscribers: (channel index, seq, entry), in order.
    pub fn outbox(&self) -> Result<Vec<(u64, u64, OutboxEntry)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let (channel, seq) = key.value();
            out.push((channel, seq, decode_outbox(value.value())?));
        }
        Ok(out)
    }

    /// The last chain block whose events were fully handled.
    pub fn chain_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.meta(CHAIN_CURSOR)
    }

    /// Commits a batch in one durable (fsync'd) transaction, off the runtime's worker thread.
    pub fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        let planned = self.plan(batch);
        self.write(planned)
    }

    /// Plans a batch's transaction: its records get their keys in their logs, and garbage of past
    /// compactions is chosen for deletion: as many records as it appends (so garbage never
    /// outgrows the logs), and `GARBAGE_PER_QUIET_COMMIT` in a quiet commit, one that only removes
    /// outbox entries (the node makes one at most every `FORGET_WITHIN_MS` when no records came to
    /// carry the removals). Plans are written in the order they were made.
    pub fn plan(&mut self, batch: Batch) -> Planned {
        let mut planned = Planned::default();
        if !batch.has_work() {
            return planned;
        }
        let quiet = batch.seller.is_empty()
            && batch.buyer.is_empty()
            && batch.outbox_add.is_empty()
            && batch.cursor.is_none()
            && batch.seller_snapshots.is_empty()
            && batch.buyer_snapshots.is_empty()
            && batch.opened.is_empty();
        let appended = (batch.seller.len() + batch.buyer.len()) as u64;
        let budget = if quiet { GARBAGE_PER_QUIET_COMMIT } else { appended };
        self.seller.append(batch.seller, &mut planned.seller.records);
        self.buyer.append(batch.buyer, &mut planned.buyer.records);
        for (log, snapshot) in batch.seller_snapshots {
            self.seller.replace(log, snapshot, &mut planned.seller.records, &mut planned.seller.starts);
        }
        for (log, snapshot) in batch.buyer_snapshots {
            self.buyer.replace(log, snapshot, &mut planned.buyer.records, &mut planned.buyer.starts);
        }
        let before = self.seller.garbage();
        self.seller.collect(budget, &mut planned.seller.garbage);
        self.buyer.collect(budget - (before - self.seller.garbage()), &mut planned.buyer.garbage);
        planned.outbox_add = batch.outbox_add;
        planned.outbox_done = batch.outbox_done;
        planned.cursor = batch.cursor;
        planned.opened = batch.opened;
        planned
    }

    /// Writes a plan in one durable transaction, here and now. No commit of the `Committer` may
    /// be outstanding (plans are written in order).
    pub fn write(&mut self, planned: Planned) -> Result<(), StoreError> {
        if !planned.has_work() {
            return Ok(());
        }
        self.target.write(planned)
    }

    /// A thread that writes plans in the order submitted, and the channel on which it reports
    /// each one (see `Committer`).
    pub fn committer(&self) -> Result<(Committer, tokio::sync::mpsc::UnboundedReceiver<Committed>), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<(u64, Planned)>();
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let target = self.target.clone();
        let thread = std::thread::Builder::new()
            .name("supra-commit".into())
            .spawn(move || {
                for (ticket, planned) in rx {
                    let started = std::time::Instant::now();
                    let result = target.write(planned);
                    let failed = result.is_err();
                    if done_tx.send(Committed { ticket, took: started.elapsed(), result }).is_err() || failed {
                        // Nobody listens, or the store failed: the broker stops on the report.
                        break;
                    }
                }
            })
            .map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        Ok((Committer { tx: Some(tx), thread: Some(thread), next: 0, target: self.target.clone() }, done_rx))
    }

    /// Whether a seller log grew enough to be worth compacting (see `Logs::needs_compaction`).
    pub fn seller_log_needs_compaction(&self, stream: u64, threshold: u64) -> bool {
        self.seller.needs_compaction(stream, threshold)
    }

    /// The same for a buyer log.
    pub fn buyer_log_needs_compaction(&self, channel: u64, threshold: u64) -> bool {
        self.buyer.needs_compaction(channel, threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("supra-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Run as a child process by the test below: commits plans forever into the store at
    /// `SUPRA_CRASH_WRITER_DIR`, printing the number of each once `commit` returned.
    #[test]
    #[ignore = "a child process of every_acknowledged_commit_survives_a_kill_at_any_moment"]
    fn crash_writer() {
        use std::io::Write;
        let Ok(dir) = std::env::var("SUPRA_CRASH_WRITER_DIR") else { return };
        let journal = std::env::var("SUPRA_CRASH_WRITER_JOURNAL").ok().and_then(|v| v.parse().ok()).unwrap_or(64 << 10);
        let mut store = Store::open_with_journal(Path::new(&dir), journal).unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0u64.. {
            let mut batch = Batch::default();
            batch.outbox(1, i, Publication::plain("t", vec![i as u8; 200]));
            batch.cursor(i);
            if i >= 1 {
                // The outbox keeps a sliding window: removals are journaled as well as inserts.
                batch.outbox_done(1, i - 1);
            }
            store.commit(batch).unwrap();
            writeln!(out, "committed {i}").unwrap();
            out.flush().unwrap();
        }
    }

    #[test]
    fn every_acknowledged_commit_survives_a_kill_at_any_moment() {
        use std::io::BufRead;
        let dir = temp("crash");
        let mut acked_total = 0;
        // Kills, each after a different number of commits, through several checkpoints of a
        // 64 KiB journal (~200 commits each), then of a 1 KiB one (a checkpoint every third
        // commit): what is not in redb durably yet lives only in the journal.
        let runs = [150u64, 333, 517, 90, 700].map(|after| (64 << 10, after)).into_iter().chain([37u64, 100, 251, 8, 400].map(|after| (1 << 10, after)));
        for (round, (journal, after)) in runs.enumerate() {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "store::tests::crash_writer", "--ignored", "--nocapture", "--test-threads=1"])
                .env("SUPRA_CRASH_WRITER_DIR", &dir)
                .env("SUPRA_CRASH_WRITER_JOURNAL", journal.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut acked = None;
            let mut seen = 0;
            while let Some(Ok(line)) = lines.next() {
                if let Some(n) = line.strip_prefix("committed ").and_then(|n| n.parse::<u64>().ok()) {
                    acked = Some(n);
                    seen += 1;
                    if seen == after {
                        break;
                    }
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let acked = acked.expect("the writer committed");
            acked_total += seen;
            let store = Store::open_with_journal(&dir, journal).unwrap();
            // Each run starts again at commit 0 over the same keys: the newest acknowledged one
            // is there, and nothing older than the one before it (its removal was committed).
            let cursor = store.chain_cursor().unwrap().expect("a cursor");
            assert!(cursor >= acked, "round {round}: commit {acked} was acknowledged, the store has {cursor}");
            let outbox: Vec<u64> = store.outbox().unwrap().into_iter().map(|(_, seq, _)| seq).collect();
            assert!(outbox.contains(&cursor) && outbox.iter().all(|s| *s + 1 >= cursor), "round {round}: outbox {outbox:?} after commit {cursor}");
            // Clean the keys for the next round.
            drop(store);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(acked_total > 1_500);
    }

    #[test]
    fn a_new_store_beside_an_old_journal_reads_none_of_it() {
        // `rpc = "auto"` sets supra.redb aside at a new chain and leaves supra.journal: the
        // journal's records are the old store's, not the new one's.
        let dir = temp("old-journal");
        let mut store = Store::open(&dir).unwrap();
        for i in 0..5 {
            let mut batch = Batch::default();
            batch.outbox(1, i, Publication::plain("t", b"x".to_vec()));
            batch.cursor(i);
            store.commit(batch).unwrap();
        }
        drop(store);
        std::fs::remove_file(dir.join("supra.redb")).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.chain_cursor().unwrap(), None);
        assert!(store.outbox().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_is_bound_to_one_chain_and_judge() {
        let dir = temp("bind");
        let mut store = Store::open(&dir).unwrap();
        store.bind_chain(&[1; 32], &[2; 20]).unwrap();
        store.bind_chain(&[1; 32], &[2; 20]).unwrap();
        assert!(matches!(store.bind_chain(&[1; 32], &[3; 20]), Err(StoreError::OtherChain(_))));
        drop(store);
        let mut reopened = Store::open(&dir).unwrap();
        assert!(matches!(reopened.bind_chain(&[9; 32], &[2; 20]), Err(StoreError::OtherChain(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn streams_and_channels_keep_their_numbers_and_the_outbox_survives_reopening() {
        let dir = temp("numbers");
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.stream_number("a/#").unwrap(), 0);
        assert_eq!(store.stream_number("b/#").unwrap(), 1);
        assert_eq!(store.stream_number("a/#").unwrap(), 0);
        let mut batch = Batch::default();
        batch.outbox(4, 7, Publication::plain("t", b"x".to_vec()));
        batch.outbox(4, 8, Publication::plain("t", b"y".to_vec()));
        batch.cursor(42);
        store.commit(batch).unwrap();
        let mut batch = Batch::default();
        batch.outbox_done(4, 7);
        store.commit(batch).unwrap();
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.stream_number("b/#").unwrap(), 1);
        assert_eq!(store.stream_number("c/#").unwrap(), 2, "numbers are never reused");
        assert_eq!(store.chain_cursor().unwrap(), Some(42));
        let outbox = store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!((outbox[0].0, outbox[0].1, outbox[0].2.payload.as_slice()), (4, 8, &b"y"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Records stored for seller log `log`, garbage included.
    fn raw_seller_records(store: &Store, log: u64) -> usize {
        let txn = store.read().unwrap();
        let table = txn.open_table(SELLER_LOG).unwrap();
        table.range((log, 0)..=(log, u64::MAX)).unwrap().count()
    }

    fn nonces(records: Vec<SellerRecord>) -> Vec<u64> {
        records
            .into_iter()
            .map(|r| match r {
                SellerRecord::OfferNonce { next } => next,
                other => panic!("unexpected record {other:?}"),
            })
            .collect()
    }

    fn one_record(store: &mut Store, next: u64) {
        let mut batch = Batch::default();
        batch.seller(0, SellerRecord::OfferNonce { next });
        store.commit(batch).unwrap();
    }

    fn forget(store: &mut Store, seq: u64) {
        let mut batch = Batch::default();
        batch.outbox_done(0, seq);
        store.commit(batch).unwrap();
    }

    #[test]
    fn compaction_leaves_old_records_to_later_commits_and_reopening_reads_only_the_snapshot() {
        let dir = temp("garbage");
        let mut store = Store::open(&dir).unwrap();
        let mut batch = Batch::default();
        for next in 0..200 {
            batch.seller(0, SellerRecord::OfferNonce { next });
        }
        batch.seller(1, SellerRecord::OfferNonce { next: 9 });
        store.commit(batch).unwrap();
        let mut batch = Batch::default();
        batch.replace_seller_log(0, vec![SellerRecord::OfferNonce { next: 200 }]);
        store.commit(batch).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![200]);
        assert_eq!(raw_seller_records(&store, 0), 201, "the compaction itself deletes nothing");
        // A commit deletes as many old records as it appends; a quiet one (only outbox removals)
        // GARBAGE_PER_QUIET_COMMIT.
        one_record(&mut store, 201);
        assert_eq!(raw_seller_records(&store, 0), 201);
        forget(&mut store, 1);
        assert_eq!(raw_seller_records(&store, 0), 201 - GARBAGE_PER_QUIET_COMMIT as usize);
        // Reopened: only the snapshot and what follows it are read; the rest of the garbage is
        // found and deleted by the next commits; the other log is untouched.
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![200, 201]);
        assert_eq!(nonces(store.seller_records(1).unwrap()), vec![9]);
        for seq in 2..5 {
            forget(&mut store, seq);
        }
        assert_eq!(raw_seller_records(&store, 0), 2);
        one_record(&mut store, 202);
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![200, 201, 202]);
        assert_eq!(raw_seller_records(&store, 1), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_snapshot_in_a_turns_commit_replaces_the_records_of_that_turn_too() {
        let dir = temp("snapshot-in-turn");
        let mut store = Store::open(&dir).unwrap();
        one_record(&mut store, 1);
        // The turn appends 2 and 3, and its snapshot (taken after them) says 3.
        let mut batch = Batch::default();
        batch.seller(0, SellerRecord::OfferNonce { next: 2 });
        batch.seller(0, SellerRecord::OfferNonce { next: 3 });
        batch.replace_seller_log(0, vec![SellerRecord::OfferNonce { next: 3 }]);
        store.commit(batch).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![3]);
        one_record(&mut store, 4);
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![3, 4], "reopened: the snapshot, then what followed it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Persist before act with the commit thread: a turn comes back to be carried out only once
    /// its records (and every earlier turn's) are durable, in order; turns that end during a
    /// commit share the next one; a small plan with nothing outstanding is written at once.
    #[test]
    fn the_commit_queue_gives_turns_back_in_order_once_durable() {
        let dir = temp("queue");
        let mut store = Store::open(&dir).unwrap();
        let (committer, mut reports) = store.committer().unwrap();
        let mut queue = CommitQueue::new(committer);
        let plan = |store: &mut Store, next: u64, records: usize| {
            let mut batch = Batch::default();
            for _ in 0..records {
                batch.seller(0, SellerRecord::OfferNonce { next });
            }
            store.plan(batch)
        };
        let large = commit::INLINE_WRITES + 1;
        assert_eq!(queue.push(plan(&mut store, 1, large), "t1").unwrap(), Pushed::Queued, "a large plan goes to the commit thread");
        assert_eq!(queue.push(plan(&mut store, 2, 1), "t2").unwrap(), Pushed::Queued, "a small one waits for t1's commit: plans are written in order");
        assert_eq!(queue.push(store.plan(Batch::default()), "t3").unwrap(), Pushed::Queued, "nothing to commit, but after t2");
        let first = queue.committed(reports.blocking_recv().unwrap()).unwrap();
        assert_eq!(first, vec!["t1"]);
        // Read while t2's commit is in flight: the read must not hand t2's key out again (t5's
        // record below would overwrite t2's).
        assert!(nonces(store.seller_records(0).unwrap()).contains(&1), "t1's record is durable when t1 comes back");
        let second = queue.committed(reports.blocking_recv().unwrap()).unwrap();
        assert_eq!(second, vec!["t2", "t3"], "t2 and t3 shared one commit");
        assert!(queue.is_idle());
        assert_eq!(queue.push(store.plan(Batch::default()), "t4").unwrap(), Pushed::Ready("t4", None), "nothing outstanding: at once");
        let pushed = queue.push(plan(&mut store, 3, 1), "t5").unwrap();
        assert!(matches!(pushed, Pushed::Ready("t5", Some(_))), "a small plan, nothing outstanding: written here, then given back ({pushed:?})");
        assert!(queue.is_idle());
        assert!(reports.try_recv().is_err(), "the commit thread wrote nothing of it");
        let mut expected = vec![1; large];
        expected.extend([2, 3]);
        assert_eq!(nonces(store.seller_records(0).unwrap()), expected);
        drop(queue);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A plan waits in the journal, not in redb, until a checkpoint or until the store reads or
    /// writes redb itself; a reopen without either (as after a crash) finds it in the journal.
    #[test]
    fn plans_reach_redb_at_a_checkpoint_or_before_the_store_reads_and_a_reopen_replays_the_rest() {
        let dir = temp("unapplied");
        let mut store = Store::open_with_journal(&dir, 1 << 20).unwrap();
        for next in 0..10 {
            one_record(&mut store, next);
        }
        let mut batch = Batch::default();
        batch.outbox(0, 1, Publication::plain("t", b"x".to_vec()));
        batch.cursor(77);
        store.commit(batch).unwrap();
        assert_eq!(store.target.unapplied(), 11, "eleven commits, none of them a redb transaction");
        // Reads see every plan written, in order.
        assert_eq!(store.chain_cursor().unwrap(), Some(77));
        assert_eq!(store.target.unapplied(), 0);
        assert_eq!(nonces(store.seller_records(0).unwrap()), (0..10).collect::<Vec<_>>());
        assert_eq!(store.outbox().unwrap().len(), 1);
        // More plans, then the store is dropped with them unapplied: the journal has them.
        for next in 10..15 {
            one_record(&mut store, next);
        }
        forget(&mut store, 1);
        assert_eq!(store.target.unapplied(), 6);
        drop(store);
        let mut store = Store::open_with_journal(&dir, 1 << 20).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), (0..15).collect::<Vec<_>>());
        assert!(store.outbox().unwrap().is_empty());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();

        // A small journal: its checkpoints write what waited, and what follows waits again.
        let dir = temp("unapplied-small");
        let mut store = Store::open_with_journal(&dir, 2 << 10).unwrap();
        let mut most = 0;
        for next in 0..100 {
            one_record(&mut store, next);
            most = most.max(store.target.unapplied());
        }
        assert!(most > 1 && most < 100, "{most} plans waited at most");
        drop(store);
        let mut store = Store::open_with_journal(&dir, 2 << 10).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), (0..100).collect::<Vec<_>>());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A log read while a plan is not yet written (a commit in flight) sees the durable log only;
    /// the keys planned beyond it must not be given out again, or a later record would overwrite
    /// a planned one.
    #[test]
    fn a_read_during_a_commit_does_not_give_planned_keys_out_again() {
        let dir = temp("read-in-flight");
        let mut store = Store::open(&dir).unwrap();
        one_record(&mut store, 1);
        let mut batch = Batch::default();
        batch.seller(0, SellerRecord::OfferNonce { next: 2 });
        let in_flight = store.plan(batch);
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![1], "the durable log");
        let mut batch = Batch::default();
        batch.seller(0, SellerRecord::OfferNonce { next: 3 });
        let later = store.plan(batch);
        store.write(in_flight).unwrap();
        store.write(later).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![1, 2, 3]);
        // The same with a compaction in flight: the log's new start is kept too.
        let mut batch = Batch::default();
        batch.replace_seller_log(0, vec![SellerRecord::OfferNonce { next: 10 }]);
        let in_flight = store.plan(batch);
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![1, 2, 3], "the durable log");
        let mut batch = Batch::default();
        batch.seller(0, SellerRecord::OfferNonce { next: 11 });
        let later = store.plan(batch);
        store.write(in_flight).unwrap();
        store.write(later).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![10, 11]);
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(nonces(store.seller_records(0).unwrap()), vec![10, 11], "reopened");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_waits_for_the_log_to_double() {
        let dir = temp("compact");
        let mut store = Store::open(&dir).unwrap();
        let record = || SellerRecord::OfferNonce { next: 1 };
        let mut batch = Batch::default();
        for _ in 0..12 {
            batch.seller(0, record());
        }
        store.commit(batch).unwrap();
        assert!(store.seller_log_needs_compaction(0, 10));
        let mut batch = Batch::default();
        batch.replace_seller_log(0, vec![record(); 8]);
        store.commit(batch).unwrap();
        assert_eq!(store.seller_records(0).unwrap().len(), 8);
        assert!(!store.seller_log_needs_compaction(0, 10), "8 records after compaction: wait for 16");
        let mut batch = Batch::default();
        for _ in 0..9 {
            batch.seller(0, record());
        }
        store.commit(batch).unwrap();
        assert!(store.seller_log_needs_compaction(0, 10));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
