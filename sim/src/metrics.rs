//! What a run measures.

use crate::chain::Ledger;
use crate::params::{Protocol, RunConfig, Scenario};

/// The outcome of one subscription.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Protocol.
    pub protocol: Protocol,
    /// Scenario.
    pub scenario: Scenario,
    /// Settings of the run.
    pub cfg: RunConfig,
    /// On-chain transactions, gas, per call.
    pub ledger: Ledger,
    /// Messages the buyer delivered to its subscribers (each counted once).
    pub delivered: u64,
    /// Messages paid to the seller (amount received / price).
    pub paid: u64,
    /// Latency of each delivered message (delivery time minus publication time), ms, sorted.
    pub latencies: Vec<u64>,
    /// Messages published by the stream during the run.
    pub published: u64,
    /// Messages posted on-chain (SUPRA).
    pub posted: u64,
    /// Data frames the seller sent (first sends and retransmissions).
    pub data_frames: u64,
    /// Accusations mined (SUPRA).
    pub accusations: u64,
    /// Accusations upheld (buyer refunded, SUPRA).
    pub upheld: u64,
    /// Simulated time from the start to the last event, ms.
    pub sim_ms: u64,
    /// Wall time of the run, ms.
    pub wall_ms: f64,
    /// Signatures made (seller messages + buyer acks), SUPRA.
    pub signatures: u64,
    /// Signature verifications by the engines (buyer on messages, seller on acks), SUPRA.
    pub verifications: u64,
    /// Free-form notes (engine events worth a look).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Messages delivered but never paid (the seller's loss): `max(0, delivered - paid)`.
    pub fn unpaid(&self) -> u64 {
        self.delivered.saturating_sub(self.paid)
    }

    /// Messages paid but never delivered (the buyer's loss): `max(0, paid - delivered)`.
    pub fn excess(&self) -> u64 {
        self.paid.saturating_sub(self.delivered)
    }

    /// Latency percentile `q` in `[0, 1]` (nearest rank), ms; `None` if nothing was delivered.
    pub fn latency(&self, q: f64) -> Option<u64> {
        percentile(&self.latencies, q)
    }

    /// Gas per delivered message (`None` if nothing was delivered).
    pub fn gas_per_msg(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.ledger.gas as f64 / self.delivered as f64)
    }
}

/// Nearest-rank percentile of a sorted slice.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
