//! The Prometheus metrics of one broker, in its own registry (not the process-wide default one,
//! so that brokers sharing a process, as in the demo, keep their figures apart).
//!
//! Counters of events that happen outside the node (chain transactions, links, store commits) are
//! counted where they happen. The per channel and per stream figures are *derived* at each
//! refresh from the same state `supra channels` reads ([`Metrics::update`]), so the two agree.

use alloy_primitives::U256;
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::Snapshot;
use crate::status::{ChannelRole, ChannelStatusLine};

/// Every metric of a broker.
pub struct Metrics {
    registry: Registry,
    // Per sold stream (label `stream`: its topic filter), from the seller engine's counters.
    published: IntCounterVec,
    signed: IntCounterVec,
    frames_sent: IntCounterVec,
    retransmitted: IntCounterVec,
    posts: IntCounterVec,
    acks_received: IntCounterVec,
    // Per bought channel, from the buyer engine's counters.
    delivered: IntCounterVec,
    acks_signed: IntCounterVec,
    duplicates: IntCounterVec,
    // Per channel (both roles), the figures of `supra channels`.
    channel_messages: IntGaugeVec,
    channel_acked: IntGaugeVec,
    channel_wei: GaugeVec,
    channel_price: GaugeVec,
    channel_link: IntGaugeVec,
    // Node-wide.
    frames_rejected: IntCounterVec,
    // Links (labels `role`, `peer`).
    pub(super) link_up: IntGaugeVec,
    pub(super) link_ups: IntCounterVec,
    pub(super) reconnects: IntCounterVec,
    // Chain (label `call`: the judge function, or the watcher's `events`).
    pub(super) transactions: IntCounterVec,
    pub(super) gas: IntCounterVec,
    pub(super) tx_latency: HistogramVec,
    pub(super) rpc_errors: IntCounterVec,
    pub(super) events_block: IntGaugeVec,
    // Store.
    pub(super) commit_latency: HistogramVec,
    // Node.
    pub(super) turn_latency: HistogramVec,
}

const CHANNEL_LABELS: &[&str] = &["channel", "role", "peer", "topic"];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn int_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

/// Raises a counter derived from an engine's running count to `value` (engine counts only grow
/// within a run; the counter never goes down, as Prometheus requires).
fn advance(vec: &IntCounterVec, labels: &[&str], value: u64) {
    let c = vec.with_label_values(labels);
    let now = c.get();
    if value > now {
        c.inc_by(value - now);
    }
}

/// Wei as a float for Prometheus (exact up to 2^53 wei; Prometheus samples are floats anyway).
pub fn wei_f64(wei: U256) -> f64 {
    wei.to_string().parse().unwrap_or(f64::MAX)
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let stream = &["stream"];
        let channel = &["channel"];
        let link = &["role", "peer"];
        let call = &["call"];
        Metrics {
            published: counter(&r, "supra_stream_published_total", "Local publishes on a sold stream's topics (with or without buyers).", stream),
            signed: counter(&r, "supra_stream_messages_signed_total", "Messages a sold stream signed (once each, whatever the number of buyers).", stream),
            frames_sent: counter(&r, "supra_stream_frames_sent_total", "Data frames a sold stream queued to its buyers (first sends and retransmissions).", stream),
            retransmitted: counter(&r, "supra_stream_retransmitted_total", "Data frames a sold stream sent again (go-back-N after a timeout or a resume).", stream),
            posts: counter(&r, "supra_stream_posts_total", "Messages a sold stream posted on-chain (unacked near T_ack, or as a defence).", stream),
            acks_received: counter(&r, "supra_stream_acks_received_total", "Acks a sold stream received from its buyers.", stream),
            delivered: counter(&r, "supra_channel_delivered_total", "Messages a bought channel delivered to local subscribers in this run.", channel),
            acks_signed: counter(&r, "supra_channel_acks_signed_total", "Acks a bought channel signed in this run.", channel),
            duplicates: counter(&r, "supra_channel_duplicates_total", "Duplicate messages a bought channel ignored in this run.", channel),
            channel_messages: int_gauge(&r, "supra_channel_messages", "Seller: messages sent at least once; buyer: messages delivered (as `supra channels`).", CHANNEL_LABELS),
            channel_acked: int_gauge(&r, "supra_channel_acked_messages", "Messages covered by the channel's latest ack.", CHANNEL_LABELS),
            channel_wei: gauge(
                &r,
                "supra_channel_wei",
                "Money of a channel in wei, by `kind`: acked (cost of the latest ack), claimed (R, paid to the seller on-chain), owed (acked, not yet claimed), deposit (F, locked by the buyer), deposit_left (deposit minus acked).",
                &["channel", "role", "peer", "topic", "kind"],
            ),
            channel_price: gauge(&r, "supra_channel_price_wei", "Price of one message on the channel, in wei.", CHANNEL_LABELS),
            channel_link: int_gauge(&r, "supra_channel_link_up", "1 when the channel's peer link is up.", CHANNEL_LABELS),
            frames_rejected: counter(&r, "supra_frames_rejected_total", "Peer frames the node refused (malformed, unexpected or unknown channel).", &[]),
            link_up: int_gauge(&r, "supra_link_up", "1 while a peer link is up.", link),
            link_ups: counter(&r, "supra_link_ups_total", "Times a peer link came up (after its handshake).", link),
            reconnects: counter(&r, "supra_link_reconnects_total", "Times a peer link came up again after it had been up once.", link),
            transactions: counter(&r, "supra_chain_transactions_total", "Judge transactions by `call` and `outcome` (mined, refused).", &["call", "outcome"]),
            gas: counter(&r, "supra_chain_gas_used_total", "Gas used by mined judge transactions.", call),
            tx_latency: histogram(
                &r,
                "supra_chain_transaction_seconds",
                "Time from a judge call's first attempt to its confirmed receipt (retries included).",
                call,
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            ),
            rpc_errors: counter(&r, "supra_chain_rpc_errors_total", "Chain RPC failures (retried) by `call` (or `events` for the event watcher).", call),
            events_block: int_gauge(&r, "supra_chain_events_block", "The last chain block whose judge events were read.", &[]),
            commit_latency: histogram(
                &r,
                "supra_store_commit_seconds",
                "Durable commit of one node turn's records (redb, fsync'd).",
                &[],
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            turn_latency: histogram(
                &r,
                "supra_node_turn_seconds",
                "One turn of the node: its inputs handed to the engines, the commit, the actions carried out (messages behind it wait as long).",
                &[],
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            registry: r,
        }
    }

    /// Brings the derived figures up to date with a snapshot of the node and the channel lines.
    pub fn update(&self, snapshot: &Snapshot, lines: &[ChannelStatusLine]) {
        for s in &snapshot.streams {
            let l = &[s.topic.as_str()];
            advance(&self.published, l, s.published);
            advance(&self.signed, l, s.stats.signed);
            advance(&self.frames_sent, l, s.stats.frames_sent);
            advance(&self.retransmitted, l, s.stats.retransmits);
            advance(&self.posts, l, s.stats.posts);
            advance(&self.acks_received, l, s.stats.acks_received);
        }
        for b in &snapshot.bought {
            let id = b.channel.to_string();
            let l = &[id.as_str()];
            advance(&self.delivered, l, b.stats.delivered);
            advance(&self.acks_signed, l, b.stats.acks_signed);
            advance(&self.duplicates, l, b.stats.duplicates);
        }
        advance(&self.frames_rejected, &[] as &[&str], snapshot.node.frames_rejected);
        // Settled channels leave the broker's state: their gauges go with them.
        for vec in [&self.channel_messages, &self.channel_acked, &self.channel_link] {
            vec.reset();
        }
        self.channel_wei.reset();
        self.channel_price.reset();
        for line in lines {
            let (id, peer) = (line.channel.to_string(), line.peer.to_string());
            let role = match line.role {
                ChannelRole::Seller => "seller",
                ChannelRole::Buyer => "buyer",
            };
            let l = [id.as_str(), role, peer.as_str(), line.topic.as_str()];
            self.channel_messages.with_label_values(&l).set(line.messages as i64);
            self.channel_acked.with_label_values(&l).set(line.acked as i64);
            self.channel_link.with_label_values(&l).set(i64::from(line.link_up));
            self.channel_price.with_label_values(&l).set(wei_f64(line.price));
            let money = super::Money::of(line);
            for (kind, wei) in [
                ("acked", line.cost),
                ("claimed", line.claimed),
                ("owed", money.owed),
                ("deposit", line.deposit),
                ("deposit_left", money.deposit_left),
            ] {
                self.channel_wei.with_label_values(&[l[0], l[1], l[2], l[3], kind]).set(wei_f64(wei));
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
