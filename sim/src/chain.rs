//! The chain model: block-time inclusion, a transaction queue, and gas accounting with the judge's
//! measured gas table.
//!
//! A transaction submitted at `t` is mined in the first block strictly after `t` (blocks every
//! `block_ms`, at multiples of it); transactions of one block are executed in submission order
//! (one account per party submits in order, as the engine requires); every party sees the events
//! at the block's time. A reverted transaction is counted (it is a transaction and costs gas) and
//! charged the gas of its call: an upper bound, since a revert stops early.

use std::collections::BTreeMap;
use std::fmt;

use crate::params::ChainParams;

/// Gas per judge call, from `judge-contract/README.md` ("Gas" section): forge 1.7.1
/// `--gas-report` of `SupraJudgeGasTest`, solc 0.8.30 via-IR, optimizer 10 000 runs, EVM prague;
/// each call its own transaction (21 000 base, calldata, cold accounts and storage included).
pub mod gas {
    /// `open` (fresh channel, random 256-bit nonce).
    pub const OPEN: u64 = 98_917;
    /// `topUp`.
    pub const TOP_UP: u64 = 30_932;
    /// `post` of a 64-byte payload.
    pub const POST_64B: u64 = 57_928;
    /// `post` of a 256-byte payload.
    pub const POST_256B: u64 = 62_646;
    /// First `claim` of a channel (its claims word goes from zero to non-zero): the max.
    pub const CLAIM_FIRST: u64 = 67_080;
    /// A later `claim` of the same channel: the min.
    pub const CLAIM_NEXT: u64 = 49_980;
    /// `claimPosted`.
    pub const CLAIM_POSTED: u64 = 59_666;
    /// `requestClose`.
    pub const REQUEST_CLOSE: u64 = 33_063;
    /// `settle` (pays the posted claim and the refund).
    pub const SETTLE: u64 = 54_180;
    /// `accuse`.
    pub const ACCUSE: u64 = 64_993;
    /// `defend`.
    pub const DEFEND: u64 = 32_692;
    /// `defendWithAck`.
    pub const DEFEND_WITH_ACK: u64 = 69_131;
    /// `resolve`.
    pub const RESOLVE: u64 = 56_612;
    /// `proveWrongCost`.
    pub const PROVE_WRONG_COST: u64 = 70_349;
    /// `proveEquivocation`.
    pub const PROVE_EQUIVOCATION: u64 = 79_261;
    /// A plain ether transfer to an existing account: the baselines' payment. The cheapest
    /// possible on-chain payment, so this favours SDPP and PPSP (an invoice-checking contract
    /// call would cost more).
    pub const TRANSFER: u64 = 21_000;

    /// `post` of a `bytes`-long payload: linear between the two measured sizes (calldata and
    /// log data are linear in the payload), extrapolated outside them.
    pub fn post(bytes: usize) -> u64 {
        let per_byte = (POST_256B - POST_64B) as f64 / 192.0;
        let g = POST_64B as f64 + (bytes as f64 - 64.0) * per_byte;
        g.max(21_000.0).round() as u64
    }
}

/// Kinds of on-chain calls, for the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// `open`.
    Open,
    /// `post`.
    Post,
    /// `claim`.
    Claim,
    /// `claimPosted`.
    ClaimPosted,
    /// `requestClose`.
    RequestClose,
    /// `settle`.
    Settle,
    /// `accuse`.
    Accuse,
    /// `defend`.
    Defend,
    /// `defendWithAck`.
    DefendWithAck,
    /// `resolve`.
    Resolve,
    /// `proveWrongCost`.
    ProveWrongCost,
    /// `proveEquivocation`.
    ProveEquivocation,
    /// A baseline's payment (ether transfer).
    Pay,
}

impl Call {
    /// Name as in the ABI.
    pub fn name(self) -> &'static str {
        match self {
            Call::Open => "open",
            Call::Post => "post",
            Call::Claim => "claim",
            Call::ClaimPosted => "claimPosted",
            Call::RequestClose => "requestClose",
            Call::Settle => "settle",
            Call::Accuse => "accuse",
            Call::Defend => "defend",
            Call::DefendWithAck => "defendWithAck",
            Call::Resolve => "resolve",
            Call::ProveWrongCost => "proveWrongCost",
            Call::ProveEquivocation => "proveEquivocation",
            Call::Pay => "pay",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Count and gas of mined transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Transactions mined (including reverted ones).
    pub txs: u64,
    /// Of which reverted.
    pub reverted: u64,
    /// Total gas.
    pub gas: u64,
    /// Per call: (mined, reverted, gas).
    pub by_call: BTreeMap<Call, (u64, u64, u64)>,
    /// Reasons of reverts, for diagnostics.
    pub reverts: BTreeMap<String, u64>,
}

impl Ledger {
    /// Records a mined transaction.
    pub fn record(&mut self, call: Call, gas: u64, revert: Option<&str>) {
        self.txs += 1;
        self.gas += gas;
        let e = self.by_call.entry(call).or_default();
        e.0 += 1;
        e.2 += gas;
        if let Some(r) = revert {
            self.reverted += 1;
            e.1 += 1;
            *self.reverts.entry(format!("{call}: {r}")).or_default() += 1;
        }
    }

    /// Mined transactions of one kind.
    pub fn count(&self, call: Call) -> u64 {
        self.by_call.get(&call).map_or(0, |e| e.0)
    }

    /// `open:1 claim:1 ...` summary.
    pub fn summary(&self) -> String {
        self.by_call
            .iter()
            .map(|(c, (n, r, _))| {
                if *r > 0 {
                    format!("{c}:{n}({r} reverted)")
                } else {
                    format!("{c}:{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Submitted transactions waiting for their block.
#[derive(Debug)]
pub struct Mempool<T> {
    params: ChainParams,
    queue: BTreeMap<(u64, u64), T>,
    ids: u64,
}

impl<T> Mempool<T> {
    /// An empty mempool.
    pub fn new(params: ChainParams) -> Self {
        Self {
            params,
            queue: BTreeMap::new(),
            ids: 0,
        }
    }

    /// Time of the first block strictly after `t`.
    pub fn inclusion_time(&self, t: u64) -> u64 {
        (t / self.params.block_ms + 1) * self.params.block_ms
    }

    /// Submits `tx` at `now`; returns its mining time.
    pub fn submit(&mut self, now: u64, tx: T) -> u64 {
        let at = self.inclusion_time(now);
        self.ids += 1;
        self.queue.insert((at, self.ids), tx);
        at
    }

    /// Mining time of the next transaction.
    pub fn next_time(&self) -> Option<u64> {
        self.queue.first_key_value().map(|(k, _)| k.0)
    }

    /// The next transaction mined at or before `now`, with its block time.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, T)> {
        let e = self.queue.first_entry()?;
        if e.key().0 > now {
            return None;
        }
        let at = e.key().0;
        Some((at, e.remove()))
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
