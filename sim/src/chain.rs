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

/// Gas per judge call (ETH channels; figures of issue 14's judge), from the gas table of
/// `judge-contract/README.md` ("Gas" section): forge
/// 1.7.1 `--gas-report` of `SupraJudgeGasTest` (`judge-contract/test/SupraJudgeGas.t.sol`),
/// solc 0.8.30 via-IR, optimizer 10 000 runs, EVM prague; each call its own transaction (21 000
/// base, calldata, cold accounts and storage included). The table's row and column are named at
/// each figure. `sim/tests/replay.rs` replays simulated runs on Anvil and checks the model's gas
/// against the receipts.
pub mod gas {
    /// `open` (fresh channel, random 256-bit nonce): row `open`, all columns.
    pub const OPEN: u64 = 99_505;
    /// `topUp`: row `topUp` (its one measurement, the first write of the progress word; a
    /// top-up after a claim rewrites a non-zero word and costs less: an upper bound).
    pub const TOP_UP: u64 = 53_371;
    /// `post` of a 64-byte payload in a batch of one message (empty path): row `post`, Min.
    pub const POST_64B: u64 = 63_275;
    /// `post` of a 256-byte payload in a batch of one (`test_gas_post256`; the README's "Posting a
    /// message of a batch" table).
    pub const POST_256B: u64 = 67_992;
    /// First `claim` of a channel (its progress word goes from zero to non-zero): row `claim`,
    /// Max.
    pub const CLAIM_FIRST: u64 = 67_222;
    /// A later `claim` of the same channel: row `claim`, Min.
    pub const CLAIM_NEXT: u64 = 50_122;
    /// `claimPosted` checking 2 postings: row `claimPosted`, Min
    /// (`test_gas_claimPosted_requestClose_settle`).
    pub const CLAIM_POSTED_2: u64 = 60_218;
    /// `claimPosted` checking 3 postings: row `claimPosted`, Max (`test_gas_submitStop_penalty`).
    pub const CLAIM_POSTED_3: u64 = 62_558;
    /// `requestClose` by the buyer: row `requestClose` (after a claim: a non-zero progress
    /// word).
    pub const REQUEST_CLOSE: u64 = 33_166;
    /// What `requestClose` costs more when the seller sends it: the judge reads the stream id
    /// (a cold storage read) to know the seller. 2 131, measured by `sim/tests/replay.rs`
    /// (35 261 against 33 130; the table has no seller-sent `requestClose`).
    pub const REQUEST_CLOSE_BY_SELLER_EXTRA: u64 = 2_131;
    /// `settle` paying the posted claim and the refund: row `settle`.
    pub const SETTLE: u64 = 54_491;
    /// `settle` paying only the buyer's refund (no posted claim due): 42 557, measured by
    /// `sim/tests/replay.rs` (the table has no such row).
    pub const SETTLE_BUYER_ONLY: u64 = 42_557;
    /// The first write of a channel's progress word (claimed, acked, close, extendedAt) costs
    /// this much more than a later one: an SSTORE from zero is 20 000 gas, from non-zero 2 900
    /// (EIP-2200/2929). The table measures `topUp`, `resolve` and `submitStop`'s record (of
    /// the pending word) with that first write, `requestClose` and `submitStop`'s penalty
    /// without it; `sim/tests/replay.rs` checks both cases on Anvil.
    pub const FIRST_WRITE_EXTRA: u64 = 17_100;
    /// `accuse` with a seen message in a batch of one: `test_gas_accuse_defend`.
    pub const ACCUSE: u64 = 69_061;
    /// `defend`: row `defend`.
    pub const DEFEND: u64 = 33_060;
    /// `defendWithAck`: row `defendWithAck`.
    pub const DEFEND_WITH_ACK: u64 = 69_392;
    /// `resolve` refunding the buyer: row `resolve`, Max (the channel's first write of its
    /// progress word: no claim before the accusation).
    pub const RESOLVE_REFUND: u64 = 63_347;
    /// `resolve` finding an in-time posting (no payout): row `resolve`, Min.
    pub const RESOLVE_ANSWERED: u64 = 32_582;
    /// `proveWrongCost`: row `proveWrongCost`.
    pub const PROVE_WRONG_COST: u64 = 70_815;
    /// `proveEquivocation` with two batches of one: row `proveEquivocation`, Min.
    pub const PROVE_EQUIVOCATION: u64 = 85_405;
    /// `submitStop` recording a Stop (first write of the pending word): row `submitStop`, Max.
    pub const SUBMIT_STOP_RECORD: u64 = 60_822;
    /// `submitStop` answering an accusation: row `submitStop`, Min.
    pub const SUBMIT_STOP_ANSWER: u64 = 45_308;
    /// `submitStop` proving a posted claim past the Stop (penalty): row `submitStop`, Median
    /// (after a claim: a non-zero progress word).
    pub const SUBMIT_STOP_PENALTY: u64 = 55_563;
    /// `closeCooperatively` with the channel's first write of its progress word: row
    /// `closeCooperatively`, Max.
    pub const CLOSE_COOPERATIVELY_FIRST: u64 = 86_934;
    /// `closeCooperatively` after an earlier claim: row `closeCooperatively`, Min.
    pub const CLOSE_COOPERATIVELY_NEXT: u64 = 69_834;
    /// `closeCooperatively` paying the seller nothing (its ack was claimed already: the
    /// progress word is not written, only the buyer's refund is paid), sent by the seller:
    /// 62 314, measured by `sim/tests/replay.rs` (the table has no such row).
    pub const CLOSE_COOPERATIVELY_NOTHING_DUE: u64 = 62_314;
    /// What that call costs less when the buyer sends it: its refund goes to the sender, an
    /// account already warm (EIP-2929: 2 600 for a cold account, 100 warm). Measured by
    /// `sim/tests/replay.rs` (59 814).
    pub const REFUND_TO_SENDER_DISCOUNT: u64 = 2_500;
    /// A plain ether transfer to an existing account: the baselines' payment. The cheapest
    /// possible on-chain payment, so this favours SDPP and PPSP (an invoice-checking contract
    /// call would cost more).
    pub const TRANSFER: u64 = 21_000;

    /// Each hash of a `BatchProof`'s Merkle path that a call checks: 32 bytes of calldata and a
    /// keccak. From `accuse` with a path of 8 (74 246) against a batch of one (68 845), and
    /// `proveEquivocation` with two paths of 8 (96 057) against two batches of one (85 213).
    pub const PATH_HASH: u64 = 675;
    /// Each hash of the path of a posted message: checked, and emitted again in `Posted` (32 bytes
    /// of log data). From `post` of 256 bytes in batches of 256 (75 435, 8 hashes) and 64
    /// (73 559, 6 hashes) against a batch of one (67 918).
    pub const PATH_HASH_POSTED: u64 = 940;

    /// `post` of a `bytes`-long payload with a Merkle path of `path` hashes: linear between the
    /// two measured sizes (calldata and log data are linear in the payload), extrapolated
    /// outside them, plus the path.
    pub fn post(bytes: usize, path: usize) -> u64 {
        let per_byte = (POST_256B - POST_64B) as f64 / 192.0;
        let g = POST_64B as f64 + (bytes as f64 - 64.0) * per_byte;
        g.max(21_000.0).round() as u64 + path as u64 * PATH_HASH_POSTED
    }

    /// `claimPosted` checking `postings` postings: linear in them (one cold storage read and
    /// the loop per posting, 2 340 gas between the 2- and 3-posting measurements).
    pub fn claim_posted(postings: u64) -> u64 {
        let per = CLAIM_POSTED_3 - CLAIM_POSTED_2;
        (CLAIM_POSTED_2 + postings.saturating_sub(2) * per).max(CLAIM_POSTED_2 - per)
    }
}

/// Kinds of on-chain calls, for the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// `open`.
    Open,
    /// `topUp`.
    TopUp,
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
    /// `submitStop`.
    SubmitStop,
    /// `closeCooperatively`.
    CloseCooperatively,
    /// A baseline's payment (ether transfer).
    Pay,
}

impl Call {
    /// Name as in the ABI.
    pub fn name(self) -> &'static str {
        match self {
            Call::Open => "open",
            Call::TopUp => "topUp",
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
            Call::SubmitStop => "submitStop",
            Call::CloseCooperatively => "closeCooperatively",
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
