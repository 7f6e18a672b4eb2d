//! The commit journal (`<data_dir>/supra.journal`): what makes a turn's commit durable.
//!
//! A redb commit made durable on its own writes every B-tree page it touched, scattered, then
//! syncs: on this project's development disk a one-message turn's commit cost 7.4 write IOs and
//! 37 KB at the device, 0.29-0.31 ms at the median (0.38-0.40 ms with a second writer, as A and B
//! are), and the broker pays it twice per message (A's commit before sending, B's before
//! delivering). The same commit as one record appended here and synced: 2 IOs, 4.7 KB, 0.15-0.17
//! ms (0.25-0.29 ms). So each plan is written here first and synced, and that is all the turn
//! waits for: redb gets the plans later, several in one transaction (see `commit::Journaled`), at
//! the next checkpoint or before the store reads or writes redb itself.
//!
//! The file is preallocated and zero-filled once: an in-place write changes no file size or
//! extent, so `fdatasync` flushes the data alone. Records are written one after the other from
//! the start; when the next one does not fit, its plan is committed to redb durably instead,
//! with every plan not yet written there (a checkpoint), and the journal starts over at offset
//! 0. The file is small (`JOURNAL_BYTES`): checkpoints come often and stay short. Every record
//! carries its plan's number (LSN), which redb also stores in the same transaction as the plan.
//! On open, redb holds its last durable commit, with the LSN of the last plan it includes; the
//! records after it, consecutive from the start of the file, are applied again. A record is
//! valid when its magic, store id, length and CRC-32 check out and its LSN follows the one
//! before: a record torn by a crash was never acknowledged (its sync had not returned), and the
//! bytes after the last record of the current pass are the previous pass's, whose LSNs are
//! lower, so the scan stops there.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::StoreError;

/// Size of the journal file: a few dozen commits of a one-message turn between checkpoints. A
/// checkpoint writes the plans since the last one to redb and syncs every page they touched, and
/// the next turns wait for it: with 8 MiB (thousands of commits) that took 70-90 ms in the e2e
/// bench, once a round, the worst stall of the run; with 64 KiB each one is short and the median
/// commit stays the journal's. A plan larger than this (a busy turn's group commit) goes to redb
/// durably, as before.
pub const JOURNAL_BYTES: u64 = 64 << 10;

/// A record's write and sync that took longer than this is logged: 0.15-0.4 ms is usual, and a
/// stall of the disk shows here first.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(5);

/// `SUPJ`: the first bytes of every record.
const MAGIC: u32 = 0x5355_504A;
/// magic, store id, LSN, payload length, CRC-32 of (store id, LSN, length, payload).
const HEADER: usize = 4 + 8 + 8 + 4 + 4;

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(redb::Error::Io(e))
}

/// The journal file and where the next record goes.
pub struct Journal {
    file: std::fs::File,
    /// The store's id (random, made with its redb file): a record of another store (its redb
    /// file deleted or set aside, this file left) is not read.
    store: u64,
    capacity: u64,
    offset: u64,
    next_lsn: u64,
    record: Vec<u8>,
}

/// A record read back at open: its LSN and payload.
pub type Replayed = (u64, Vec<u8>);

impl Journal {
    /// Opens the journal at `path` (creating it `capacity` bytes long, zero-filled, the first
    /// time) of the store with id `store`, given that its redb holds every plan up to LSN
    /// `applied`; returns it with the records of the later plans, in order. It writes nothing
    /// before `restart` says the records returned are durable elsewhere.
    pub fn open(path: &Path, store: u64, applied: u64, capacity: u64) -> Result<(Journal, Vec<Replayed>), StoreError> {
        Journal::open_file(path, store, applied, capacity).map_err(|e| match e {
            StoreError::Db(redb::Error::Io(e)) => io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            other => other,
        })
    }

    fn open_file(path: &Path, store: u64, applied: u64, capacity: u64) -> Result<(Journal, Vec<Replayed>), StoreError> {
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut bytes = Vec::new();
        if len < capacity {
            // Zero-filled, not sparse: see the module's doc.
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < capacity {
                let n = (capacity - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at).map_err(io)?;
                at += n as u64;
            }
            file.sync_all().map_err(io)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        file.read_to_end(&mut bytes).map_err(io)?;
        let capacity = capacity.max(len);
        let (records, last) = scan(&bytes[..bytes.len().min(capacity as usize)], store);
        let replay: Vec<Replayed> = records.into_iter().filter(|(lsn, _)| *lsn > applied).collect();
        // Replayed records must form the run right after `applied`, or a plan is missing.
        if let Some((first, _)) = replay.first()
            && *first != applied + 1
        {
            return Err(StoreError::Corrupt(format!(
                "the commit journal resumes at plan {first}, but the store holds plans up to {applied} only: supra.redb is older than supra.journal (restored from a copy?), and the plans between are lost"
            )));
        }
        let next_lsn = last.unwrap_or(0).max(applied) + 1;
        Ok((Journal { file, store, capacity, offset: capacity, next_lsn, record: Vec::with_capacity(4096) }, replay))
    }

    /// The LSN the next plan gets.
    #[cfg(test)]
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Appends `payload` as the next plan's record; see [`append_with`](Self::append_with).
    #[cfg(test)]
    pub fn append(&mut self, payload: &[u8]) -> Result<(u64, bool), StoreError> {
        self.append_with(payload.len(), |record| {
            record.extend_from_slice(payload);
            Ok(())
        })
    }

    /// Appends the next plan's record, whose payload of `size` bytes `encode` writes at the end
    /// of the record's buffer (no copy of its own), and syncs it; returns the plan's LSN and
    /// whether it was written: not when it does not fit in what is left (then `encode` is not
    /// called, and the caller commits that plan durably to redb, then calls `restart`). The LSN
    /// is taken either way.
    pub fn append_with(&mut self, size: usize, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>) -> Result<(u64, bool), StoreError> {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let total = (HEADER + size) as u64;
        if self.offset.saturating_add(total) > self.capacity || size > u32::MAX as usize {
            return Ok((lsn, false));
        }
        self.record.clear();
        self.record.resize(HEADER, 0);
        encode(&mut self.record)?;
        let written = self.record.len() - HEADER;
        if written != size {
            return Err(StoreError::Corrupt(format!("a journal record of {written} bytes where {size} were announced")));
        }
        let crc = checksum(self.store, lsn, &self.record[HEADER..]);
        let fields: [&[u8]; 5] = [&MAGIC.to_le_bytes(), &self.store.to_le_bytes(), &lsn.to_le_bytes(), &(size as u32).to_le_bytes(), &crc.to_le_bytes()];
        let mut at = 0;
        for field in fields {
            self.record[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        let started = std::time::Instant::now();
        self.file.write_all_at(&self.record, self.offset).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        let took = started.elapsed();
        if took > SLOW_SYNC {
            // Said apart from the turn's own "slow commit": the disk held it, unless the thread
            // waited that long for a core.
            tracing::warn!("store: a journal record's write and sync took {:.1} ms (a slow disk, or no core free for this thread)", took.as_secs_f64() * 1e3);
        }
        self.offset += total;
        Ok((lsn, true))
    }

    /// Every plan so far is durable in redb: the next record goes at the start again.
    pub fn restart(&mut self) {
        self.offset = 0;
    }
}

fn checksum(store: u64, lsn: u64, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&store.to_le_bytes());
    crc.update(&lsn.to_le_bytes());
    crc.update(&(payload.len() as u32).to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

/// The valid records of store `store` from the start of `bytes`, consecutive in LSN, and the
/// last LSN seen.
fn scan(bytes: &[u8], store: u64) -> (Vec<Replayed>, Option<u64>) {
    let mut out: Vec<Replayed> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let word = |from: usize, n: usize| &header[from..from + n];
        let magic = u32::from_le_bytes(word(0, 4).try_into().unwrap_or_default());
        let id = u64::from_le_bytes(word(4, 8).try_into().unwrap_or_default());
        let lsn = u64::from_le_bytes(word(12, 8).try_into().unwrap_or_default());
        let len = u32::from_le_bytes(word(20, 4).try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(word(24, 4).try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else { break };
        let follows = out.last().is_none_or(|(previous, _)| lsn == previous + 1);
        if magic != MAGIC || id != store || !follows || checksum(id, lsn, payload) != crc {
            break;
        }
        out.push((lsn, payload.to_vec()));
        at += HEADER + len;
    }
    let last = out.last().map(|(lsn, _)| *lsn);
    (out, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("supra-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("supra.journal")
    }

    #[test]
    fn records_after_the_applied_plan_come_back_in_order_and_a_torn_one_is_not_read() {
        let path = temp("replay");
        let (mut journal, replay) = Journal::open(&path, 7, 0, 4096).unwrap();
        assert!(replay.is_empty());
        journal.restart();
        for n in 1..=4u8 {
            assert_eq!(journal.append(&[n; 100]).unwrap(), (u64::from(n), true));
        }
        drop(journal);
        // redb holds plans up to 2: 3 and 4 come back.
        let (journal, replay) = Journal::open(&path, 7, 2, 4096).unwrap();
        assert_eq!(replay, vec![(3, vec![3; 100]), (4, vec![4; 100])]);
        assert_eq!(journal.next_lsn(), 5);
        drop(journal);
        // A crash tore record 4 (a byte of its payload never reached the disk): it was never
        // acknowledged, and is not read.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0], (3 * (HEADER + 100) + HEADER + 50) as u64).unwrap();
        let (_, replay) = Journal::open(&path, 7, 2, 4096).unwrap();
        assert_eq!(replay, vec![(3, vec![3; 100])]);
    }

    #[test]
    fn a_record_that_does_not_fit_is_not_encoded_and_one_of_another_size_is_refused() {
        let path = temp("sizes");
        let (mut journal, _) = Journal::open(&path, 7, 0, 4096).unwrap();
        journal.restart();
        let never = |_: &mut Vec<u8>| -> Result<(), StoreError> { panic!("encoded a record that does not fit") };
        assert_eq!(journal.append_with(4096, never).unwrap(), (1, false));
        let nine = |record: &mut Vec<u8>| {
            record.extend_from_slice(&[9; 9]);
            Ok(())
        };
        assert!(matches!(journal.append_with(10, nine), Err(StoreError::Corrupt(_))));
        drop(journal);
        let (_, replay) = Journal::open(&path, 7, 0, 4096).unwrap();
        assert!(replay.is_empty(), "nothing was written: {replay:?}");
    }

    #[test]
    fn a_new_pass_over_an_old_one_stops_where_the_new_one_ends() {
        let path = temp("passes");
        let (mut journal, _) = Journal::open(&path, 7, 0, 4096).unwrap();
        journal.restart();
        for n in 1..=6u8 {
            journal.append(&[n; 100]).unwrap();
        }
        // A record that does not fit is refused (its plan goes to redb durably), then a new pass.
        assert_eq!(journal.append(&[7; 4000]).unwrap(), (7, false));
        journal.restart();
        assert_eq!(journal.append(&[8; 100]).unwrap(), (8, true));
        drop(journal);
        // redb holds up to 7 (the checkpoint): 8 comes back, and not the old pass's 2..6 behind it.
        let (journal, replay) = Journal::open(&path, 7, 7, 4096).unwrap();
        assert_eq!(replay, vec![(8, vec![8; 100])]);
        assert_eq!(journal.next_lsn(), 9);
        drop(journal);
        // Just after a checkpoint, before any new record: nothing comes back, and LSNs go on.
        let (journal, replay) = Journal::open(&path, 7, 8, 4096).unwrap();
        assert!(replay.is_empty());
        assert_eq!(journal.next_lsn(), 9);
    }

    #[test]
    fn a_gap_between_the_store_and_the_journal_is_an_error_not_a_silent_loss() {
        let path = temp("gap");
        let (mut journal, _) = Journal::open(&path, 7, 10, 4096).unwrap();
        journal.restart();
        journal.append(&[1; 10]).unwrap(); // plan 11
        journal.append(&[2; 10]).unwrap(); // plan 12
        drop(journal);
        // The store says it holds up to 9 only: plan 10 is nowhere.
        assert!(matches!(Journal::open(&path, 7, 9, 4096), Err(StoreError::Corrupt(_))));
        // Another store (a new redb file beside this journal) reads none of it, and starts over.
        let (journal, replay) = Journal::open(&path, 8, 0, 4096).unwrap();
        assert!(replay.is_empty());
        assert_eq!(journal.next_lsn(), 1);
    }
}
