//! Append-only record logs: the engines' records, their keys, compaction and its garbage.

use std::collections::HashMap;

use redb::TableDefinition;
use supra_channel::records::{BuyerRecord, SellerRecord};

use super::StoreError;

/// An engine record kind stored in a log.
pub(super) trait Record: Sized {
    /// Encodes into `buf`, replacing its contents.
    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), StoreError>;
    fn decode(bytes: &[u8]) -> Result<Self, StoreError>;
}

macro_rules! record {
    ($t:ty) => {
        impl Record for $t {
            fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
                <$t>::encode_into(self, buf).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
                <$t>::decode(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
        }
    };
}
record!(SellerRecord);
record!(BuyerRecord);

/// One family of append-only record logs (the sellers' per stream, or the buyers' per channel):
/// its table, where each log starts (a compaction moves the start), the next record number of
/// each log, each log's size after its last compaction, and the records a compaction left behind,
/// still to delete.
///
/// A compaction does not delete the old records in its own transaction: it appends the snapshot
/// after them and moves the log's start past them, atomically; the old records are then deleted a
/// few at a time by later commits (see `Logs::collect`). Deleting a 20,000-record log in the
/// compaction's transaction held the node's turn, and every message behind it, for 10 ms (a
/// 50-record snapshot) to 90 ms (2,000 records) on this machine's disk. The snapshot itself is
/// written by the turn's own commit (`Batch::replace_seller_log`): a transaction of its own
/// cost one more fsync, and its turn waited for both.
pub(super) struct Logs {
    pub(super) tables: LogTables,
    pub(super) start: HashMap<u64, u64>,
    pub(super) next: HashMap<u64, u64>,
    pub(super) compacted: HashMap<u64, u64>,
    /// (log, from, to): records `from..to` of `log` are garbage left by a compaction.
    pub(super) garbage: Vec<(u64, u64, u64)>,
}

/// The two tables of a family of logs: records, and where each log starts. All the commit thread
/// needs of a `Logs`.
#[derive(Clone, Copy)]
pub(super) struct LogTables {
    pub(super) table: TableDefinition<'static, (u64, u64), &'static [u8]>,
    pub(super) starts: TableDefinition<'static, u64, u64>,
}

impl Logs {
    pub(super) fn new(table: TableDefinition<'static, (u64, u64), &'static [u8]>, starts: TableDefinition<'static, u64, u64>) -> Logs {
        Logs { tables: LogTables { table, starts }, start: HashMap::new(), next: HashMap::new(), compacted: HashMap::new(), garbage: Vec::new() }
    }

    /// Reads log `log` in order and remembers where it starts and ends (and the garbage before it).
    /// A read while a commit is in flight sees the durable log only: the start and keys already
    /// planned beyond it are kept, never moved back (a key given out again would let a later
    /// record overwrite a planned one).
    pub(super) fn read<R: Record>(&mut self, txn: &redb::ReadTransaction, log: u64) -> Result<Vec<R>, StoreError> {
        let table = txn.open_table(self.tables.table)?;
        let durable_start = txn.open_table(self.tables.starts)?.get(log)?.map_or(0, |v| v.value());
        let start = self.start.get(&log).map_or(durable_start, |planned| (*planned).max(durable_start));
        self.garbage.retain(|(l, ..)| *l != log);
        if let Some(first) = table.range((log, 0)..(log, start))?.next() {
            self.garbage.push((log, first?.0.value().1, start));
        }
        let mut records = Vec::new();
        let mut next = durable_start;
        for entry in table.range((log, durable_start)..=(log, u64::MAX))? {
            let (key, value) = entry?;
            next = key.value().1 + 1;
            records.push(R::decode(value.value())?);
        }
        self.start.insert(log, start);
        let planned_next = self.next.entry(log).or_insert(next);
        *planned_next = (*planned_next).max(next);
        Ok(records)
    }

    /// Gives each record its key (the next of its log).
    pub(super) fn append<R>(&mut self, records: Vec<(u64, R)>, out: &mut Vec<((u64, u64), R)>) {
        for (log, record) in records {
            let next = self.next.entry(log).or_insert(0);
            out.push(((log, *next), record));
            *next += 1;
        }
    }

    /// Chooses up to `budget` records of garbage to delete.
    pub(super) fn collect(&mut self, mut budget: u64, out: &mut Vec<(u64, u64, u64)>) {
        while budget > 0 {
            let Some((log, from, to)) = self.garbage.last_mut() else { break };
            let end = (*from + budget).min(*to);
            out.push((*log, *from, end));
            budget -= end - *from;
            *from = end;
            if *from >= *to {
                self.garbage.pop();
            }
        }
    }

    /// Records of garbage left.
    pub(super) fn garbage(&self) -> u64 {
        self.garbage.iter().map(|(_, from, to)| to - from).sum()
    }

    /// Past `threshold` records and twice its size after the last compaction: a log with a large
    /// legitimate backlog is not rewritten on every commit.
    pub(super) fn needs_compaction(&self, log: u64, threshold: u64) -> bool {
        let len = self.next.get(&log).copied().unwrap_or(0).saturating_sub(self.start.get(&log).copied().unwrap_or(0));
        len > threshold.max(2 * self.compacted.get(&log).copied().unwrap_or(0))
    }

    /// Replaces log `log` with an equivalent snapshot: the snapshot is appended and the log's
    /// start moved to it (in the same transaction); the records before it (among them any the
    /// same transaction appended: the snapshot includes them) become garbage.
    pub(super) fn replace<R>(&mut self, log: u64, snapshot: Vec<R>, out: &mut Vec<((u64, u64), R)>, starts: &mut Vec<(u64, u64)>) {
        let count = snapshot.len() as u64;
        let old_start = self.start.get(&log).copied().unwrap_or(0);
        let start = self.next.get(&log).copied().unwrap_or(0);
        out.extend(snapshot.into_iter().enumerate().map(|(i, record)| ((log, start + i as u64), record)));
        starts.push((log, start));
        self.start.insert(log, start);
        self.next.insert(log, start + count);
        self.compacted.insert(log, count);
        if old_start < start {
            self.garbage.push((log, old_start, start));
        }
    }
}

/// One family of logs' part of a commit, planned: records with their keys, moved log starts,
/// garbage ranges to delete.
pub(super) struct LogWrites<R> {
    pub(super) records: Vec<((u64, u64), R)>,
    pub(super) starts: Vec<(u64, u64)>,
    pub(super) garbage: Vec<(u64, u64, u64)>,
}

impl<R> Default for LogWrites<R> {
    fn default() -> Self {
        LogWrites { records: Vec::new(), starts: Vec::new(), garbage: Vec::new() }
    }
}

impl<R: Record> LogWrites<R> {
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.starts.is_empty() && self.garbage.is_empty()
    }

    pub(super) fn extend(&mut self, other: LogWrites<R>) {
        self.records.extend(other.records);
        self.starts.extend(other.starts);
        self.garbage.extend(other.garbage);
    }

}
