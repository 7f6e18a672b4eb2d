//! SUPRA runs: the real `supra-channel` engine (seller [`Stream`], [`BuyerChannel`], k256
//! signatures, ChaCha20-Poly1305 sealing, the wire codec) over a simulated [`Connection`] and the
//! [`Judge`] model on a block-time chain. With [`Crypto::Fast`] the parties' keys are the
//! engine's `testkit` fast simulation keys (a keyed hash instead of ECDSA; same addresses,
//! digests and sealing), which changes the wall time and nothing else.
//!
//! The driver plays both brokers exactly as the engine's contract asks: it feeds inputs with the
//! simulated time, carries out every queued action in order (frames onto the link, chain actions
//! into the mempool), calls `handle_timeout` at `poll_timeout`, and reports chain events
//! (`on_posted_at`, `on_claimed`, `on_close_requested`, `on_accused`, `on_posted_claim`,
//! `on_close_cooperatively_failed`, `on_settled`, ...) when the transactions are mined, as the
//! broker's `node/` does. `Persist` records are not stored: nothing crashes here (the channel
//! crate's own property tests cover crashes).
//!
//! One subscription: the buyer opens a channel (`open`, deposit `P·(N + 2W)`), the seller
//! starts streaming once it sees it open, the buyer stops after delivering `N` messages (`Stop`,
//! `requestClose`), the seller answers with its `Stop` and claims the buyer's last ack; the
//! engines close cooperatively (`closeCooperatively`, both try, the second is refused), or with
//! [`RunConfig::cooperative_close`] off `settle` after `T_closure`. The stream
//! goes on while the channel closes (it is live data for other buyers too), which is what lets a
//! seller post messages the buyer never asked for. Misbehaviour is the brokers', not the
//! engine's: a malicious broker drops or adds frames and transactions around an honest engine.

mod brokers;
mod calls;
mod chain;

pub use calls::{call_gas, execute};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::{Address, B256, U256};
use supra_channel::seller::{SellerConfig, SignedMessage, Terms};
use supra_channel::testkit::{ChainEvent, Rng, fast_test_key, test_key};
use supra_channel::{
    Ack, BuyerChannel, ChannelId, Domain, FrameBytes, Keypair, Message, MessageProof, Offer,
    Signature, Stop, Stream, StreamId,
};

use crate::chain::{Ledger, Mempool};
use crate::judge::{Judge, Outcome, Refusal};
use crate::metrics::RunResult;
use crate::net::Connection;
use crate::params::{Crypto, Protocol, RunConfig, Scenario};

/// Simulated start time (unix ms, a multiple of any sensible block time).
pub const START_MS: u64 = 1_700_000_040_000;
/// Price per message, wei.
pub const PRICE: u64 = 1_000;

/// Who sends a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The seller's engine (report the outcome back to it).
    SellerEngine,
    /// The buyer's engine.
    BuyerEngine,
    /// The malicious seller's broker acting on its own (no engine notification).
    SellerBroker,
}

/// A judge call of a run, with its arguments (the sender and the time are in [`JudgeCall`]).
#[derive(Clone, Debug)]
#[allow(missing_docs)] // one variant per judge function, arguments in the ABI's order
pub enum Tx {
    /// `open(offer, sellerSig)` with this value.
    Open(Box<(Offer, Signature)>, U256),
    /// `topUp(channel)` with this value.
    TopUp(ChannelId, U256),
    Post(Arc<SignedMessage>),
    Claim(Box<Ack>, Signature),
    ClaimPosted(ChannelId, u64),
    RequestClose(ChannelId),
    Settle(ChannelId),
    Accuse(ChannelId, Box<Message>, Box<MessageProof>, u64),
    Defend(ChannelId),
    DefendWithAck(Box<Ack>, Signature),
    Resolve(ChannelId),
    ProveWrongCost(Box<Ack>, Signature),
    ProveEquivocation(
        ChannelId,
        Box<(Message, Message)>,
        Box<MessageProof>,
        Box<MessageProof>,
    ),
    /// `submitStop(stop, sellerSig)`.
    SubmitStop(Box<Stop>, Signature),
    /// `closeCooperatively(ack, buyerSig, stop, sellerSig)`.
    CloseCooperatively(Box<(Ack, Stop)>, Signature, Signature),
}

/// What the buyer's broker hands its engine from the chain: the `testkit` events, and what the
/// broker reports beyond them: the deposit (`ToppedUp`: `on_deposit`), a `PostedClaimRecorded`
/// event (`on_posted_claim`), and its own calls' failures (`on_top_up_failed`,
/// `on_submit_stop_failed`, `on_close_cooperatively_failed`).
#[derive(Debug)]
enum Watched {
    Event(ChainEvent),
    Deposit(U256),
    TopUpFailed,
    PostedClaim(u64),
    SubmitStopFailed,
    CloseCooperativelyFailed,
}

impl From<ChainEvent> for Watched {
    fn from(ev: ChainEvent) -> Self {
        Watched::Event(ev)
    }
}

/// One judge call as the model mined it.
#[derive(Clone, Debug)]
pub struct JudgeCall {
    /// Block time (unix seconds).
    pub at_secs: u64,
    /// The sender's address.
    pub from: Address,
    /// The call.
    pub tx: Tx,
    /// What the model decided.
    pub outcome: Result<Outcome, Refusal>,
    /// The model's gas figure for it ([`call_gas`]).
    pub gas: u64,
}

/// How a recorded run is set up, so that its calls can be replayed on a real judge: the
/// judge's EIP-712 domain, the parties' (funded) keys, and a start time the chain can reach.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The judge's domain (chain id and address).
    pub domain: Domain,
    /// The seller's key (its address is the stream's seller).
    pub seller: Keypair,
    /// The buyer's key.
    pub buyer: Keypair,
    /// Simulated start time (unix ms, a multiple of the block time).
    pub start_ms: u64,
}

/// Every judge call of a run, in mining order, with the model's final state.
#[derive(Debug)]
pub struct Recording {
    /// The calls.
    pub calls: Vec<JudgeCall>,
    /// The model after the run.
    pub judge: Judge,
    /// The run's channel, once opened.
    pub channel: Option<ChannelId>,
}

struct World {
    cfg: RunConfig,
    now: u64,
    domain: Domain,
    seller: Stream,
    seller_key: Keypair,
    buyer_key: Keypair,
    buyer: Option<BuyerChannel>,
    chan: Option<ChannelId>,
    deposit: U256,
    link: Connection<FrameBytes>,
    link_up: bool,
    pool: Mempool<(Origin, Tx)>,
    judge: Judge,
    ledger: Ledger,
    rng: Rng,
    next_publish: Option<u64>,
    pub_times: Vec<u64>,
    publish_until: u64,
    start_seq: u64,
    delivered: u64,
    latencies: Vec<u64>,
    wrong_payloads: u64,
    buyer_gone: bool,
    buyer_stopped: bool,
    withholding: bool,
    leave_at: Option<u64>,
    dropped_seq: Option<u64>,
    overclaimed: bool,
    posted: u64,
    accusations: u64,
    upheld: u64,
    last_best: Option<u64>,
    last_progress: u64,
    seller_stopped: bool,
    closing: bool,
    settled: bool,
    buyer_stats: (u64, u64),
    events: BTreeMap<String, u64>,
    trace: bool,
    /// `Pause`: the buyer's broker is frozen until then.
    paused_until: Option<u64>,
    /// `Pause`: delivered counts at which the buyer freezes, soonest last.
    pause_at: Vec<u64>,
    /// Frames that reached the frozen buyer's connection, and judge events its watcher will
    /// read when it wakes up, in order.
    held_frames: Vec<FrameBytes>,
    held_chain: Vec<Watched>,
    /// The link came back while the buyer was frozen: it reconnects when it wakes up.
    relink_on_resume: bool,
    /// `Overclaim`: the cheating seller's broker keeps its own copy of the recent signed
    /// messages (the honest engine forgets what no channel is owed any more).
    recent_signed: BTreeMap<u64, Arc<SignedMessage>>,
    /// Simulated start time (unix ms).
    start_ms: u64,
    /// Every judge call mined, when the run is recorded.
    record: Option<Vec<JudgeCall>>,
}

fn tx_name(tx: &Tx) -> String {
    match tx {
        Tx::Open(..) => "open".into(),
        Tx::TopUp(_, v) => format!("topUp {v}"),
        Tx::Post(m) => format!("post {}", m.message.seq),
        Tx::Claim(a, _) => format!("claim {}", a.seq),
        Tx::ClaimPosted(_, u) => format!("claimPosted {u}"),
        Tx::RequestClose(_) => "requestClose".into(),
        Tx::Settle(_) => "settle".into(),
        Tx::Accuse(_, _, _, m) => format!("accuse {m}"),
        Tx::Defend(_) => "defend".into(),
        Tx::DefendWithAck(a, _) => format!("defendWithAck {}", a.seq),
        Tx::Resolve(_) => "resolve".into(),
        Tx::ProveWrongCost(..) => "proveWrongCost".into(),
        Tx::ProveEquivocation(..) => "proveEquivocation".into(),
        Tx::SubmitStop(s, _) => format!("submitStop {}", s.seq),
        Tx::CloseCooperatively(x, ..) => format!("closeCooperatively {}", x.0.seq),
    }
}

/// Runs one SUPRA subscription with the real engine.
pub fn run(cfg: &RunConfig) -> RunResult {
    let t0 = Instant::now();
    let mut w = World::new(cfg.clone(), None);
    w.start();
    w.run();
    w.finish(t0)
}

/// Runs one SUPRA subscription set up as `setup` says, and records every judge call (for a
/// replay on a real judge: `sim/tests/replay.rs`).
pub fn run_recorded(cfg: &RunConfig, setup: Setup) -> (RunResult, Recording) {
    let t0 = Instant::now();
    let mut w = World::new(cfg.clone(), Some(setup));
    w.start();
    w.run();
    let calls = w.record.take().unwrap_or_default();
    let channel = w.chan;
    let judge = std::mem::replace(&mut w.judge, Judge::new(w.domain));
    let result = w.finish(t0);
    let recording = Recording {
        calls,
        judge,
        channel,
    };
    (result, recording)
}

fn buyer_addr(k: &Keypair) -> Address {
    k.address()
}

/// A party's key in the run's crypto mode.
fn key(crypto: Crypto, label: &str, seed: u64) -> Keypair {
    match crypto {
        Crypto::Real => test_key(label, seed),
        Crypto::Fast => fast_test_key(label, seed),
    }
}

impl World {
    fn new(cfg: RunConfig, setup: Option<Setup>) -> Self {
        let recording = setup.is_some();
        let setup = setup.unwrap_or_else(|| Setup {
            domain: Domain::new(31337, Address::repeat_byte(0x42)),
            seller: key(cfg.crypto, "sim-seller", cfg.seed),
            buyer: key(cfg.crypto, "sim-buyer", cfg.seed),
            start_ms: START_MS,
        });
        let Setup {
            domain,
            seller: seller_key,
            buyer: buyer_key,
            start_ms,
        } = setup;
        let mut judge = Judge::new(domain);
        judge.register(*seller_key.public());
        judge.register(*buyer_key.public());
        let sid = StreamId::new(seller_key.address(), 1).unwrap_or(StreamId(B256::ZERO));
        let terms = Terms {
            price: U256::from(PRICE),
            token: Default::default(),
            window: cfg.window,
            t_ack_secs: cfg.t_ack_secs,
            t_closure_secs: cfg.t_closure_secs,
            offer_validity_secs: 600,
        };
        let scfg = SellerConfig {
            delta_onchain_ms: cfg.chain.delta_onchain_ms,
            retransmit_timeout_ms: cfg.retransmit_timeout_ms,
            claim_threshold: None,
            cooperative_close: cfg.cooperative_close,
            ..SellerConfig::default()
        };
        let seller = Stream::new(domain, seller_key.clone(), sid, terms, scfg)
            .unwrap_or_else(|e| panic!("invalid sim terms: {e}"));
        let link = Connection::new(cfg.link.clone(), cfg.seed, start_ms);
        let n = cfg.n;
        let tail = if cfg.scenario.overclaims() {
            cfg.tail.max(2 * cfg.window)
        } else {
            cfg.tail
        };
        Self {
            now: start_ms,
            domain,
            seller,
            seller_key,
            buyer_key,
            buyer: None,
            chan: None,
            deposit: U256::from(PRICE) * U256::from(cfg.deposit_msgs()),
            link,
            link_up: true,
            pool: Mempool::new(cfg.chain.clone()),
            judge,
            ledger: Ledger::default(),
            rng: Rng::new(cfg.seed ^ 0x5EED),
            next_publish: None,
            pub_times: Vec::with_capacity((n + tail) as usize),
            publish_until: n + tail,
            start_seq: 0,
            delivered: 0,
            latencies: Vec::with_capacity(n as usize),
            wrong_payloads: 0,
            buyer_gone: false,
            buyer_stopped: false,
            withholding: false,
            leave_at: None,
            dropped_seq: None,
            overclaimed: false,
            posted: 0,
            accusations: 0,
            upheld: 0,
            last_best: None,
            last_progress: start_ms,
            seller_stopped: false,
            closing: false,
            settled: false,
            buyer_stats: (0, 0),
            events: BTreeMap::new(),
            trace: std::env::var_os("SUPRA_SIM_TRACE").is_some(),
            paused_until: None,
            pause_at: Vec::new(),
            held_frames: Vec::new(),
            held_chain: Vec::new(),
            relink_on_resume: false,
            recent_signed: BTreeMap::new(),
            start_ms,
            record: recording.then(Vec::new),
            cfg,
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        *self.events.entry(what.into()).or_default() += 1;
    }

    fn submit(&mut self, origin: Origin, tx: Tx) {
        if self.trace {
            eprintln!(
                "{:>9} submit {origin:?} {}",
                self.now - self.start_ms,
                tx_name(&tx)
            );
        }
        self.pool.submit(self.now, (origin, tx));
    }

    /// Offer, then the buyer opens the channel on-chain.
    fn start(&mut self) {
        let bk = *self.buyer_key.public();
        let (offer, sig) = self
            .seller
            .make_offer(self.now, bk, "sim/topic")
            .unwrap_or_else(|e| panic!("offer: {e}"));
        self.start_seq = offer.startSeq;
        // The handshake and the offer frame are not simulated: the offer reaches the buyer.
        self.seller.drain_actions().for_each(drop);
        let m = self.cfg.malice_at();
        match self.cfg.scenario {
            Scenario::Leave => {
                // Right after a message whose ack is about to go out: the most the buyer can have
                // received without acking it.
                let every = self.cfg.ack_every.clamp(1, (self.cfg.window / 2).max(1));
                self.leave_at = Some((m / every).max(1) * every);
            }
            Scenario::Drop => self.dropped_seq = Some(self.start_seq + m),
            Scenario::Pause => {
                let n = self.cfg.n;
                self.pause_at = [m, m + n / 8, m + n / 4]
                    .into_iter()
                    .filter(|d| *d < n)
                    .rev()
                    .collect();
            }
            _ => {}
        }
        self.submit(
            Origin::BuyerEngine,
            Tx::Open(Box::new((offer, sig)), self.deposit),
        );
    }

    fn next_time(&mut self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |y: u64| y.min(x)));
        if let Some(p) = self.next_publish {
            at(p);
        }
        if let Some(x) = self.link.next_time() {
            at(x);
        }
        if let Some(x) = self.pool.next_time() {
            at(x);
        }
        if let Some(x) = self.seller.poll_timeout() {
            at(x);
        }
        if !self.buyer_gone
            && self.paused_until.is_none()
            && let Some(x) = self.buyer.as_ref().and_then(BuyerChannel::poll_timeout)
        {
            at(x);
        }
        if let Some(x) = self.paused_until {
            at(x);
        }
        if let Some(x) = self.idle_check_at() {
            at(x);
        }
        // Link transitions matter only while something else is going on.
        if let Some(t) = t
            && self.chan.is_some()
            && !self.settled
            && !self.buyer_gone
            && let Some(x) = self.link.outages.next_transition(self.now)
        {
            return Some(t.min(x));
        }
        t
    }

    fn run(&mut self) {
        let horizon = self.start_ms.saturating_add(self.cfg.horizon_ms);
        while let Some(t) = self.next_time() {
            if t > horizon {
                self.note("horizon reached");
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
    }

    fn step(&mut self) {
        let now = self.now;
        if self.paused_until.is_some_and(|t| t <= now) {
            self.resume();
        }
        // Link transitions.
        if self.chan.is_some() && !self.buyer_gone {
            let up = self.link.up_at(now);
            if up != self.link_up {
                self.link_up = up;
                let peer = buyer_addr(&self.buyer_key);
                if up {
                    self.seller.link_up(now, peer);
                    self.flush_seller();
                    if self.paused_until.is_some() {
                        self.relink_on_resume = true;
                    } else if let Some(b) = self.buyer.as_mut() {
                        let _ = b.link_up(now);
                    }
                    self.flush_buyer();
                } else {
                    self.seller.link_down(now, peer);
                    self.flush_seller();
                }
            }
        }
        // Blocks.
        while let Some((at, (origin, tx))) = self.pool.pop_due(now) {
            self.mine(at, origin, tx);
        }
        // Frames.
        while let Some((dir, bytes)) = self.link.pop_due(now) {
            self.deliver_frame(dir, &bytes);
        }
        // Publication.
        if self.next_publish.is_some_and(|t| t <= now) {
            self.publish();
        }
        // Timers.
        if self.seller.poll_timeout().is_some_and(|t| t <= now) {
            self.seller.handle_timeout(now);
            self.flush_seller();
        }
        if !self.buyer_gone
            && self.paused_until.is_none()
            && let Some(b) = self.buyer.as_mut()
            && b.poll_timeout().is_some_and(|t| t <= now)
        {
            let _ = b.handle_timeout(now);
            self.flush_buyer();
        }
        self.policies();
    }

    fn publish(&mut self) {
        let now = self.now;
        let seq = self.pub_times.len() as u64;
        let mut payload = vec![0u8; self.cfg.payload_len.max(8)];
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        for b in payload.iter_mut().skip(8) {
            *b = self.rng.next_u64() as u8;
        }
        match self.seller.publish(now, &payload) {
            Ok(s) => {
                debug_assert_eq!(s, seq);
                self.pub_times.push(now);
                if self.cfg.scenario.overclaims()
                    && let Some(m) = self.seller.message(s)
                {
                    self.recent_signed.insert(s, m.clone());
                    let keep_from = s.saturating_sub(4 * self.cfg.window);
                    self.recent_signed = self.recent_signed.split_off(&keep_from);
                }
            }
            Err(e) => self.note(format!("publish failed: {e}")),
        }
        self.flush_seller();
        let n = self.pub_times.len() as u64;
        self.next_publish =
            (n < self.publish_until && !self.settled).then_some(now + self.cfg.publish_every_ms);
    }

    fn finish(mut self, t0: Instant) -> RunResult {
        if !self.buyer_gone
            && let Some(b) = self.buyer.as_ref()
        {
            let s = b.stats();
            self.buyer_stats = (s.acks_signed, s.sigs_verified);
        }
        let paid = self
            .chan
            .and_then(|id| self.judge.channel(id))
            .map_or(0, |c| {
                u64::try_from(c.to_seller / U256::from(PRICE)).unwrap_or(u64::MAX)
            });
        if self.wrong_payloads > 0 {
            self.note(format!(
                "{} wrong plaintexts delivered",
                self.wrong_payloads
            ));
        }
        if self.chan.is_some() && !self.settled {
            self.note("channel not settled at the end");
        }
        for (why, n) in self.ledger.reverts.clone() {
            *self.events.entry(format!("reverted {why}")).or_default() += n;
        }
        let ls = self.link.stats;
        let down = self.link.outages.down_time(self.start_ms, self.now);
        self.note(format!(
            "link: {} frames sent, {} lost, {} cut by outages ({:.1} s down)",
            ls.sent,
            ls.lost,
            ls.cut,
            down as f64 / 1e3
        ));
        let ss = self.seller.stats();
        let mut latencies = std::mem::take(&mut self.latencies);
        latencies.sort_unstable();
        RunResult {
            protocol: Protocol::Supra,
            scenario: self.cfg.scenario,
            ledger: self.ledger.clone(),
            delivered: self.delivered,
            paid,
            latencies,
            published: self.pub_times.len() as u64,
            posted: self.posted,
            data_frames: ss.frames_sent,
            accusations: self.accusations,
            upheld: self.upheld,
            sim_ms: self.now - self.start_ms,
            wall_ms: t0.elapsed().as_secs_f64() * 1e3,
            signatures: ss.signed + self.buyer_stats.0,
            verifications: ss.acks_verified + self.buyer_stats.1,
            notes: self
                .events
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect(),
            cfg: self.cfg,
        }
    }
}
