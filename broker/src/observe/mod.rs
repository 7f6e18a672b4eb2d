//! What an operator sees of a running broker: Prometheus metrics ([`metrics`]), a live dashboard
//! and its JSON API on a small HTTP server ([`http`]), and the same figures as retained MQTT
//! messages under `$SYS/supra/...` ([`sys`]).
//!
//! One [`Observer`] per broker is shared by the parts that count things: the chain worker
//! (transactions, gas, latency, RPC errors), the links (up, down, reconnects), the node (store
//! commits). The channel and stream figures are not counted twice: each refresh reads them from
//! the node and the judge exactly as `supra channels` does ([`Sources::read`]).

pub mod http;
pub mod metrics;
pub mod sys;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use serde::Serialize;
use supra_channel::buyer::BuyerStats;
use supra_channel::seller::SellerStats;
use supra_channel::types::ChannelId;
use supra_judge::Judge;
use tokio::sync::{mpsc, oneshot};

use crate::node::{Command, NodeStats, now_ms};
use crate::peer::Role;
use crate::status::{ChannelRole, ChannelStatusLine};
pub use metrics::Metrics;

/// How long a refresh waits for the node and the judge's channel views.
const READ_WITHIN: Duration = Duration::from_secs(10);

/// Recent transactions kept for the dashboard.
const RECENT_TRANSACTIONS: usize = 50;

/// The node's counters at one moment (answer to [`Command::Observe`]).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub streams: Vec<StreamSnapshot>,
    pub bought: Vec<BoughtSnapshot>,
    pub node: NodeStats,
}

/// One sold stream's counters.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub topic: String,
    /// Local publishes matching its topic filter.
    pub published: u64,
    pub stats: SellerStats,
}

/// One bought channel's counters.
#[derive(Debug, Clone)]
pub struct BoughtSnapshot {
    pub channel: ChannelId,
    pub stats: BuyerStats,
}

/// What follows from a channel line's money: what is acked but not yet claimed, and what is left
/// of the deposit.
pub struct Money {
    pub owed: U256,
    pub deposit_left: U256,
}

impl Money {
    pub fn of(line: &ChannelStatusLine) -> Money {
        Money { owed: line.cost.saturating_sub(line.claimed), deposit_left: line.deposit.saturating_sub(line.cost) }
    }
}

/// A judge transaction, for the dashboard's list.
#[derive(Debug, Clone, Serialize)]
pub struct TxRecord {
    /// When its result came back (unix ms).
    pub at_ms: u64,
    pub call: &'static str,
    pub channel: Option<String>,
    pub tx_hash: Option<B256>,
    pub block: Option<u64>,
    pub gas_used: Option<u64>,
    /// From the first attempt to the confirmed receipt (or the final refusal).
    pub latency_ms: u64,
    /// `None` when mined; the judge's refusal otherwise.
    pub error: Option<String>,
}

/// One peer link as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkRecord {
    pub role: &'static str,
    pub peer: Address,
    pub up: bool,
    /// Since when it is in its state (unix ms).
    pub since_ms: u64,
    pub ups: u64,
}

/// The chain as this broker sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainHealth {
    pub rpc_errors: u64,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    /// Last successful exchange with the chain (a transaction or a read of events).
    pub last_ok_ms: Option<u64>,
    /// The last block whose judge events were read.
    pub events_block: Option<u64>,
    /// Transactions mined, and the gas they used.
    pub transactions: u64,
    pub gas_used: u64,
}

/// One sample of the dashboard's history: totals over this broker's channels.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Messages sent on the channels this broker sells on.
    pub sold_messages: u64,
    /// Messages delivered on the channels this broker buys on.
    pub bought_messages: u64,
    /// Claimed (paid on-chain) to this broker as a seller, wei.
    pub earned_wei: U256,
    /// Claimed from this broker's deposits as a buyer, wei.
    pub paid_wei: U256,
    /// Acked on every channel (paid or owed), wei.
    pub acked_wei: U256,
}

impl Sample {
    pub fn of(t_ms: u64, lines: &[ChannelStatusLine]) -> Sample {
        let mut s = Sample { t_ms, sold_messages: 0, bought_messages: 0, earned_wei: U256::ZERO, paid_wei: U256::ZERO, acked_wei: U256::ZERO };
        for l in lines {
            match l.role {
                ChannelRole::Seller => {
                    s.sold_messages += l.messages;
                    s.earned_wei += l.claimed;
                }
                ChannelRole::Buyer => {
                    s.bought_messages += l.messages;
                    s.paid_wei += l.claimed;
                }
            }
            s.acked_wei += l.cost;
        }
        s
    }
}

/// The shared observer of one broker.
pub struct Observer {
    pub address: Address,
    pub started_ms: u64,
    pub metrics: Metrics,
    transactions: Mutex<VecDeque<TxRecord>>,
    links: Mutex<BTreeMap<(&'static str, Address), LinkRecord>>,
    chain: Mutex<ChainHealth>,
    history: Mutex<VecDeque<Sample>>,
    history_len: usize,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Seller => "seller",
        Role::Buyer => "buyer",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Observer {
    pub fn new(address: Address, history_len: usize) -> Arc<Observer> {
        Arc::new(Observer {
            address,
            started_ms: now_ms(),
            metrics: Metrics::new(),
            transactions: Mutex::new(VecDeque::new()),
            links: Mutex::new(BTreeMap::new()),
            chain: Mutex::new(ChainHealth::default()),
            history: Mutex::new(VecDeque::new()),
            history_len: history_len.max(2),
        })
    }

    /// A peer link came up (`up`) or went down. `role` is this broker's side of it.
    pub fn link(&self, role: Role, peer: Address, up: bool) {
        let role = role_name(role);
        let mut links = lock(&self.links);
        let record = links.entry((role, peer)).or_insert(LinkRecord { role, peer, up, since_ms: now_ms(), ups: 0 });
        let (labels, now) = ([role, &peer.to_string()], now_ms());
        if up {
            record.ups += 1;
            self.metrics.link_ups.with_label_values(&labels).inc();
            if record.ups > 1 {
                self.metrics.reconnects.with_label_values(&labels).inc();
            }
        }
        record.up = up;
        record.since_ms = now;
        self.metrics.link_up.with_label_values(&labels).set(i64::from(up));
    }

    /// A judge call's final result (mined or refused), `started` at its first attempt.
    pub fn transaction(&self, call: &'static str, channel: Option<ChannelId>, receipt: Result<Option<&supra_judge::Receipt>, String>, started: std::time::Instant) {
        let latency = started.elapsed();
        let (receipt, error) = match receipt {
            Ok(receipt) => (receipt, None),
            Err(e) => (None, Some(e)),
        };
        if receipt.is_none() && error.is_none() {
            return; // a read: not a transaction
        }
        let outcome = if error.is_none() { "mined" } else { "refused" };
        self.metrics.transactions.with_label_values(&[call, outcome]).inc();
        if let Some(r) = receipt {
            self.metrics.gas.with_label_values(&[call]).inc_by(r.gas_used);
            self.metrics.tx_latency.with_label_values(&[call]).observe(latency.as_secs_f64());
            let mut chain = lock(&self.chain);
            chain.last_ok_ms = Some(now_ms());
            chain.transactions += 1;
            chain.gas_used += r.gas_used;
        }
        let record = TxRecord {
            at_ms: now_ms(),
            call,
            channel: channel.map(|c| c.to_string()),
            tx_hash: receipt.map(|r| r.tx_hash),
            block: receipt.map(|r| r.block),
            gas_used: receipt.map(|r| r.gas_used),
            latency_ms: latency.as_millis() as u64,
            error,
        };
        let mut recent = lock(&self.transactions);
        recent.push_front(record);
        recent.truncate(RECENT_TRANSACTIONS);
    }

    /// A chain RPC failed (and will be retried): `call` is the judge call or `events`.
    pub fn rpc_error(&self, call: &str, error: &str) {
        self.metrics.rpc_errors.with_label_values(&[call]).inc();
        let mut chain = lock(&self.chain);
        chain.rpc_errors += 1;
        chain.last_error = Some(format!("{call}: {error}"));
        chain.last_error_ms = Some(now_ms());
    }

    /// The event watcher read the judge's events up to `block`.
    pub fn events_read(&self, block: u64) {
        self.metrics.events_block.with_label_values::<&str>(&[]).set(block as i64);
        let mut chain = lock(&self.chain);
        chain.events_block = Some(block);
        chain.last_ok_ms = Some(now_ms());
    }

    /// One turn of the node took `took`.
    pub fn turn(&self, took: Duration) {
        self.metrics.turn_latency.with_label_values::<&str>(&[]).observe(took.as_secs_f64());
    }

    /// One durable commit took `took`.
    pub fn commit(&self, took: Duration) {
        self.metrics.commit_latency.with_label_values::<&str>(&[]).observe(took.as_secs_f64());
    }

    pub fn transactions(&self) -> Vec<TxRecord> {
        lock(&self.transactions).iter().cloned().collect()
    }

    pub fn links(&self) -> Vec<LinkRecord> {
        lock(&self.links).values().cloned().collect()
    }

    pub fn chain(&self) -> ChainHealth {
        lock(&self.chain).clone()
    }

    pub fn history(&self) -> Vec<Sample> {
        lock(&self.history).iter().cloned().collect()
    }

    fn push_sample(&self, sample: Sample) {
        let mut history = lock(&self.history);
        if history.len() >= self.history_len {
            history.pop_front();
        }
        history.push_back(sample);
    }
}

/// Where a refresh reads the broker's state: the node (through its command channel) and the
/// judge (deposits and claims, as `supra channels`).
#[derive(Clone)]
pub struct Sources {
    pub commands: mpsc::Sender<Command>,
    pub judge: Judge,
    pub observer: Arc<Observer>,
}

/// The broker's state at one moment, as every view shows it.
pub struct View {
    pub lines: Vec<ChannelStatusLine>,
    pub snapshot: Snapshot,
}

impl Sources {
    /// Reads the channel lines exactly as `supra channels` does, and the node's counters, and
    /// brings the metrics up to date with them.
    pub async fn read(&self) -> Result<View, String> {
        // A chain that does not answer must not hold a scrape or the page for ever.
        let lines = tokio::time::timeout(READ_WITHIN, crate::admin::channels(&self.commands, &self.judge))
            .await
            .map_err(|_| format!("the node or the chain did not answer within {READ_WITHIN:?}"))??;
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Observe(tx)).await.map_err(|_| "broker is stopping".to_owned())?;
        let snapshot = rx.await.map_err(|_| "broker is stopping".to_owned())?;
        self.observer.metrics.update(&snapshot, &lines);
        Ok(View { lines, snapshot })
    }

    /// Takes a history sample every `every`, for as long as the broker runs.
    pub async fn sample(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.read().await {
                Ok(view) => self.observer.push_sample(Sample::of(now_ms(), &view.lines)),
                Err(e) => {
                    tracing::debug!("dashboard sample: {e}");
                    if self.commands.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
