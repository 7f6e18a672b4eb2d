//! How far one judge on one chain goes: the subscriptions and messages per second a chain with a
//! given gas limit and block time can carry, from the gas the simulator measures for each
//! subscription (the judge's measured gas table, `chain::gas`) and for each fallback.
//!
//! Messages that cross the link cost the chain nothing: an honest subscription pays `open` and
//! one `closeCooperatively` whatever its length. What the chain bounds is subscription churn, the
//! fallback (each message posted on-chain while a link is down), claims during a stream, top-ups
//! and disputes. `supra-sim capacity` prints the table; `sim/README.md` discusses it.

use crate::chain::{Call, gas};
use crate::params::{Crypto, RunConfig, Scenario};

/// A chain's throughput of gas.
#[derive(Clone, Debug)]
pub struct ChainProfile {
    /// What the chain is called in the table.
    pub name: String,
    /// Gas limit of one block.
    pub gas_per_block: u64,
    /// Seconds between blocks.
    pub block_secs: f64,
}

impl ChainProfile {
    /// Gas the chain carries per second.
    pub fn gas_per_sec(&self) -> f64 {
        self.gas_per_block as f64 / self.block_secs
    }

    /// The profiles of the default table. They are assumptions, not measurements: give your
    /// chain's own with `--gas-per-block` and `--block-secs`.
    pub fn defaults() -> Vec<ChainProfile> {
        vec![
            ChainProfile { name: "Ethereum L1 (45 M gas / 12 s)".into(), gas_per_block: 45_000_000, block_secs: 12.0 },
            ChainProfile { name: "an L2 (30 M gas / 2 s)".into(), gas_per_block: 30_000_000, block_secs: 2.0 },
        ]
    }
}

/// Gas of each on-chain event, measured by simulated runs (honest subscriptions) or taken from
/// the judge's gas table (single calls).
#[derive(Clone, Debug)]
pub struct GasCosts {
    /// One honest subscription, `open` to settlement, with cooperative close.
    pub subscription: u64,
    /// Transactions of that subscription.
    pub subscription_txs: u64,
    /// The same without cooperative close (`requestClose`, `claim`, `settle`).
    pub subscription_without_cooperative: u64,
    /// A claim during the stream (a later `claim` of the channel).
    pub claim: u64,
    /// A 256-byte message posted on-chain (the fallback while a link is down).
    pub post_256b: u64,
    /// A top-up.
    pub top_up: u64,
    /// An accusation answered by a defence with an ack.
    pub dispute: u64,
}

/// Runs honest subscriptions of `n` messages in the simulator (fast keys: the gas is the same)
/// and reads the gas of the rest from the judge's table.
pub fn measure(n: u64) -> GasCosts {
    let honest = |cooperative_close: bool| {
        let cfg = RunConfig { n, scenario: Scenario::Honest, crypto: Crypto::Fast, cooperative_close, ..RunConfig::default() };
        crate::supra::run(&cfg)
    };
    let with = honest(true);
    let without = honest(false);
    GasCosts {
        subscription: with.ledger.gas,
        subscription_txs: with.ledger.txs,
        subscription_without_cooperative: without.ledger.gas,
        claim: gas::CLAIM_NEXT,
        post_256b: gas::POST_256B,
        top_up: gas::TOP_UP,
        dispute: gas::ACCUSE + gas::DEFEND_WITH_ACK,
    }
}

/// One row of the table: what a chain carries per second if it did only this.
pub struct Row {
    /// The kind of call or of channel life.
    pub what: &'static str,
    /// Its gas.
    pub gas: u64,
    /// How many per second each chain carries, in the order of the chains given.
    pub per_sec: Vec<f64>,
}

/// The table: for each kind of call, how many per second each chain carries.
pub fn rows(costs: &GasCosts, chains: &[ChainProfile]) -> Vec<Row> {
    let row = |what, gas: u64| Row { what, gas, per_sec: chains.iter().map(|c| c.gas_per_sec() / gas as f64).collect() };
    vec![
        row("subscriptions opened and closed (cooperative close)", costs.subscription),
        row("subscriptions opened and closed (without cooperative close)", costs.subscription_without_cooperative),
        row("messages posted on-chain (fallback, 256 B)", costs.post_256b),
        row("claims during a stream", costs.claim),
        row("top-ups", costs.top_up),
        row("disputes (accusation + defence with an ack)", costs.dispute),
    ]
}

/// The table as text.
pub fn format(costs: &GasCosts, chains: &[ChainProfile]) -> String {
    let mut out = String::from("| per second, if the chain did only this | gas each |");
    for c in chains {
        out += &format!(" {} |", c.name);
    }
    out += "\n|---|---:|";
    out += &"---:|".repeat(chains.len());
    out += "\n";
    for r in rows(costs, chains) {
        out += &format!("| {} | {} |", r.what, r.gas);
        for v in &r.per_sec {
            out += &format!(" {} |", if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") });
        }
        out += "\n";
    }
    out
}

/// Called by tests and docs: the honest gas per subscription is what Table I reports, and the
/// ledger names exactly `open` and `closeCooperatively`.
pub fn honest_calls(n: u64) -> Vec<(Call, u64)> {
    let cfg = RunConfig { n, scenario: Scenario::Honest, crypto: Crypto::Fast, ..RunConfig::default() };
    crate::supra::run(&cfg).ledger.by_call.iter().map(|(call, (mined, _, _))| (*call, *mined)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_honest_subscription_costs_open_and_one_cooperative_close_whatever_its_length() {
        let short = measure(1_000);
        let long = measure(20_000);
        assert_eq!(short.subscription, long.subscription, "the chain's cost does not grow with the messages");
        assert_eq!(short.subscription_txs, 2);
        assert_eq!(honest_calls(1_000), vec![(Call::Open, 1), (Call::CloseCooperatively, 1)]);
        assert!(short.subscription_without_cooperative > short.subscription);
    }

    #[test]
    fn the_table_divides_each_chain_s_gas_by_each_cost() {
        let costs = measure(1_000);
        let chains = ChainProfile::defaults();
        let rows = rows(&costs, &chains);
        let l1 = chains[0].gas_per_sec();
        assert!((rows[0].per_sec[0] - l1 / costs.subscription as f64).abs() < 1e-9);
        assert!((rows[2].per_sec[1] - chains[1].gas_per_sec() / gas::POST_256B as f64).abs() < 1e-9);
        assert!(format(&costs, &chains).contains("Ethereum L1"));
    }
}
