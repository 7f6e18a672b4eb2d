//! The node: one task that owns the engines and the durable store, and connects them to the
//! embedded MQTT broker, the peer links and the chain worker.
//!
//! Each turn of its loop takes a burst of inputs (local publishes, link frames, chain events,
//! job results, timers, operator commands), feeds them to the engines, then *flushes*: every
//! `Persist` record of the turn (and every delivered publication, into the outbox) is planned as
//! one transaction, which the store's commit thread writes; the turn's other actions wait until
//! it is durable — persist before act, with group commit (`store::CommitQueue`). Only then do
//! frames leave, transactions get queued and publications reach local subscribers. Meanwhile the
//! node takes the next inputs; they are run when the commit is durable (or when a full burst
//! waits), and their commit follows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use supra_channel::buyer::{BuyerAction, BuyerChannel, BuyerConfig, check_offer};
use supra_channel::handshake::PeerInfo;
use supra_channel::seller::{SellerAction, SellerConfig, Stream, Terms};
use supra_channel::sign::{Keypair, Signature};
use supra_channel::types::{ChannelId, Domain, Offer, StreamId, UnixMs};
use supra_channel::wire::Frame;
use supra_judge::{ChannelStatus, JudgeEvent};
use tokio::sync::{mpsc, oneshot};

use crate::chain::{Call, EventBatch, Job, JobResult, Origin, Outcome};
use crate::config::{BuyConfig, Config, SellConfig};
use crate::market::{self, BuyOrder, Entry, SellOrder};
use crate::mqtt::{Mqtt, OutboxKey, Publication};
use crate::observe::{BoughtSnapshot, Observer, Snapshot, StreamSnapshot};

/// Largest sealed plaintext a stream takes: what `mqtt.max_payload_size` lets in, plus the few
/// bytes by which a publication's encoding can exceed its MQTT packet (of the 4 KiB the seal keeps).
const MAX_SOLD_PLAINTEXT_BYTES: usize = crate::config::MAX_SOLD_PAYLOAD_BYTES + 1024;
use crate::peer::{LinkEvent, LinkId, LinkSender, Role};
use crate::status::{ChannelRole, ChannelStatusLine};
use crate::store::{Batch, CommitQueue, Committed, Planned, Pushed, Store, StoreError};
use crate::workers::Workers;

mod chain;
mod commands;
mod flush;

pub use flush::persist_coalesced;

use flush::{Turn, TurnClock};

/// Compact a log once it holds this many records.
const COMPACT_AFTER: u64 = 20_000;
/// Inputs taken per turn before flushing (bounds latency under load).
const BURST: usize = 512;

/// How long the durable removal of delivered messages from the buyer's outbox may wait for a commit
/// the node makes anyway (a later turn's records) before it is committed on its own. A crash replays
/// what was handed to local subscribers in this time (duplicates, never a loss: PROTOCOL.md); at a
/// steady rate the removals cost no fsync of their own.
const FORGET_WITHIN_MS: u64 = 100;
/// A turn (inputs taken, engines run, commit planned and handed over) or a commit longer than
/// this is reported with where its time went: every message behind it waited as long.
const SLOW_TURN: std::time::Duration = std::time::Duration::from_millis(20);
/// Wait before asking a seller again after a refusal or a failed open.
const RETRY_MS: u64 = 10_000;

/// The current unix time in ms.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An operator's request (from the admin socket or an in-process caller).
#[derive(Debug)]
pub enum Command {
    /// Status of every channel.
    Channels(oneshot::Sender<Vec<ChannelStatusLine>>),
    /// Stop a channel off-chain, claim or acknowledge, and close it on-chain.
    Close(ChannelId, oneshot::Sender<Result<(), String>>),
    /// Hand the outbox left by the last run to local subscribers (after the restart hold).
    ReplayOutbox,
    /// Stop gracefully: take what local clients already published, commit, hand every bought
    /// message to the embedded broker, and return from [`Node::run`].
    Shutdown,
    /// The engines' counters, for metrics and the dashboard (`observe`).
    Observe(oneshot::Sender<Snapshot>),
    /// Sell a stream from now on, and after restarts (`supra sell`); or sell a stopped one again.
    Sell(SellOrder, oneshot::Sender<Result<String, String>>),
    /// Buy a stream from now on, and after restarts (`supra buy`).
    Buy(BuyOrder, oneshot::Sender<Result<String, String>>),
    /// Take no new buyers for a sold stream and close its channels (`supra stop-selling`).
    StopSelling(String, oneshot::Sender<Result<String, String>>),
    /// Stop buying a stream: close its channel, and buy it no more (`supra stop-buying`).
    StopBuying { topic: String, seller: Option<Address>, reply: oneshot::Sender<Result<String, String>> },
}

/// Counters for progress displays and tests.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct NodeStats {
    pub local_publishes: u64,
    pub messages_signed: u64,
    pub delivered: u64,
    pub frames_rejected: u64,
}

struct Sold {
    cfg: SellConfig,
    number: u64,
    engine: Stream,
    /// Local publishes matching its topic (with or without buyers).
    published: u64,
    /// Plaintexts taken this turn, signed together at its end (one batch, see `flush::run_engines`).
    pending: Vec<Vec<u8>>,
    /// Acks from buyers taken this turn, in arrival order, handed to the engine at its end
    /// (`hand_frames`: engines with frames run in parallel on the workers).
    inbox: Vec<(Address, Frame)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuyState {
    /// Not buying yet; ask again from this time.
    Idle { retry_at: UnixMs },
    /// A request is out; waiting for an offer.
    Requested,
    /// An `open` transaction for this channel is in flight.
    Opening(ChannelId),
    /// Buying on this channel.
    Open(ChannelId),
    /// The channel was closed by the operator or settled: not buying any more.
    Done,
}

struct Buy {
    cfg: BuyConfig,
    state: BuyState,
}

struct Bought {
    index: u64,
    buy: Option<usize>,
    engine: BuyerChannel,
    /// Data frames taken this turn, in arrival order (see `Sold::inbox`).
    inbox: Vec<Frame>,
}

struct Link {
    role: Role,
    peer: PeerInfo,
    tx: LinkSender,
}

/// What the node is wired to.
pub struct NodeIo {
    pub local: mpsc::UnboundedReceiver<Publication>,
    pub links: mpsc::UnboundedReceiver<LinkEvent>,
    pub results: mpsc::UnboundedReceiver<JobResult>,
    pub events: mpsc::UnboundedReceiver<EventBatch>,
    pub commands: mpsc::Receiver<Command>,
}

pub struct Node {
    me: Arc<Keypair>,
    domain: Domain,
    store: Store,
    mqtt: Mqtt,
    buyer_cfg: BuyerConfig,
    streams: Vec<Sold>,
    buys: Vec<Buy>,
    bought: BTreeMap<ChannelId, Bought>,
    /// Opens in flight before a restart, being checked on-chain: channel -> (offer, sig, buy).
    recovering: HashMap<ChannelId, (Offer, Signature, usize)>,
    links: HashMap<LinkId, Link>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Opens whose channel record is now durable: forget their in-flight entry.
    openings_done: Vec<ChannelId>,
    /// Per bought channel (store index): outbox entries committed and not yet durably removed.
    outbox_held: BTreeMap<u64, u64>,
    /// Deliveries the local MQTT broker took, whose removal from the outbox is not committed yet.
    forgetting: Vec<OutboxKey>,
    /// When those removals are committed on their own at the latest ([`FORGET_WITHIN_MS`]).
    forget_by: Option<UnixMs>,
    /// The chain block up to which events were handled this turn (persisted at flush).
    store_cursor: Option<u64>,
    /// Buyers with channels here whose link is down, since when.
    buyers_away: HashMap<Address, UnixMs>,
    idle_close_ms: u64,
    stats: NodeStats,
    observer: Arc<Observer>,
    /// Threads that run a turn's engine work (`[node] workers`).
    workers: Workers,
    /// The configuration with the streams sold and bought at runtime: what a new order is checked
    /// against (its `selling` flags are not kept up to date: `Sold::cfg` is the one read).
    config: Config,
    seller_cfg: SellerConfig,
    /// Asks for a link to a seller (endpoint, address); a link already kept is not made twice.
    dial: mpsc::UnboundedSender<(String, Address)>,
    /// The offer catalogue and the endpoint its ads give buyers (`[chain] catalogue`,
    /// `[peer] advertise`): what is sold is listed there, what is stopped withdrawn.
    catalogue: Option<(Address, String)>,
    /// Where the last flush's time went (for the slow-turn report).
    last_flush: TurnClock,
    /// The turns' commits, written on a thread of their own, and the turns waiting for them.
    commits: CommitQueue<Turn>,
    /// The commit thread's reports, until `run` takes them.
    committed: Option<mpsc::UnboundedReceiver<Committed>>,
    /// Link events and local publishes taken since the last flush.
    taken: usize,
}

impl Sold {
    /// The stream sold on `cfg.topic`: restored from its records, or new. Its number, hence its
    /// stream id, is bound to the topic in the store for good (ids are never reused).
    fn open(store: &mut Store, me: &Arc<Keypair>, domain: Domain, cfg: &SellConfig, seller_cfg: &SellerConfig, now: UnixMs) -> Result<Sold, String> {
        let number = store.stream_number(&cfg.topic).map_err(|e| e.to_string())?;
        let id = StreamId::new(me.address(), u128::from(number)).map_err(|e| e.to_string())?;
        let records = store.seller_records(number).map_err(|e| e.to_string())?;
        let engine = if records.is_empty() {
            Stream::new(domain, (**me).clone(), id, terms_of(cfg), seller_cfg.clone())
        } else {
            Stream::restore(domain, (**me).clone(), id, terms_of(cfg), seller_cfg.clone(), records, now)
        }
        .map_err(|e| format!("stream `{}`: {e}", cfg.topic))?;
        Ok(Sold { cfg: cfg.clone(), number, engine, published: 0, pending: Vec::new(), inbox: Vec::new() })
    }
}

fn terms_of(cfg: &SellConfig) -> Terms {
    Terms {
        price: cfg.price_wei,
        token: cfg.token,
        window: cfg.window,
        t_ack_secs: cfg.t_ack_secs,
        t_closure_secs: cfg.t_closure_secs,
        offer_validity_secs: 600,
    }
}

impl Node {
    /// Restores the engines from the store. Channels found there are re-checked on-chain (closes,
    /// accusations and settlements that happened while the broker was down).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        config: &Config,
        me: Arc<Keypair>,
        domain: Domain,
        mut store: Store,
        mqtt: Mqtt,
        jobs: mpsc::UnboundedSender<Job>,
        observer: Arc<Observer>,
        dial: mpsc::UnboundedSender<(String, Address)>,
    ) -> Result<Node, String> {
        let now = now_ms();
        let seller_cfg = SellerConfig {
            delta_onchain_ms: u64::from(config.chain.onchain_delay_secs) * 1000,
            claim_threshold: Some(config.chain.claim_threshold_wei.max(U256::from(1))),
            cooperative_close: config.chain.cooperative_close,
            max_backlog: config.node.max_backlog,
            ..SellerConfig::default()
        };
        // When the seller may hold a posted claim it settles itself; the buyer settles only if
        // nobody did after this wait (a posting delay plus a few polls to see the settle mined).
        // The same wait for the seller's closeCooperatively before the buyer closes itself.
        let seller_tx_wait_ms = (2 * u64::from(config.chain.onchain_delay_secs) * 1000).saturating_add(config.chain.poll_interval_ms.saturating_mul(4));
        let buyer_cfg = BuyerConfig {
            settle_wait_ms: seller_tx_wait_ms,
            cooperative_close: config.chain.cooperative_close,
            cooperative_wait_ms: seller_tx_wait_ms,
            ..BuyerConfig::default()
        };
        let mut streams = Vec::new();
        for cfg in &config.sell {
            streams.push(Sold::open(&mut store, &me, domain, cfg, &seller_cfg, now)?);
        }
        let mut buys: Vec<Buy> = config.buy.iter().map(|cfg| Buy { cfg: cfg.clone(), state: BuyState::Idle { retry_at: 0 } }).collect();
        let mut bought = BTreeMap::new();
        for stored in store.buyer_channels().map_err(|e| e.to_string())? {
            let top_up = buys.iter().find(|b| b.cfg.topic == stored.topic).and_then(|b| b.cfg.top_up.clone());
            let cfg = BuyerConfig { top_up, ..buyer_cfg.clone() };
            let engine = BuyerChannel::restore(domain, (*me).clone(), cfg, stored.records, now)
                .map_err(|e| format!("channel {}: {e}", stored.id))?;
            let buy = buys.iter().position(|b| b.cfg.seller == engine.seller() && b.cfg.topic == stored.topic);
            if let Some(i) = buy {
                buys[i].state = if engine.is_settled() { BuyState::Done } else { BuyState::Open(stored.id) };
            }
            bought.insert(stored.id, Bought { index: stored.index, buy, engine, inbox: Vec::new() });
        }
        let mut recovering = HashMap::new();
        for (offer, sig) in store.openings().map_err(|e| e.to_string())? {
            let id = ChannelId::from_offer_digest(domain.digest(&offer));
            if let Some(i) = buys.iter().position(|b| b.cfg.seller == offer.seller && b.state != BuyState::Done) {
                buys[i].state = BuyState::Opening(id);
                recovering.insert(id, (offer, sig, i));
            }
        }
        let (committer, committed) = store.committer().map_err(|e| e.to_string())?;
        let mut node = Node {
            me,
            domain,
            store,
            mqtt,
            buyer_cfg,
            streams,
            buys,
            bought,
            recovering,
            links: HashMap::new(),
            jobs,
            openings_done: Vec::new(),
            outbox_held: BTreeMap::new(),
            forgetting: Vec::new(),
            forget_by: None,
            store_cursor: None,
            buyers_away: HashMap::new(),
            idle_close_ms: config.peer.idle_close_secs.saturating_mul(1000),
            stats: NodeStats::default(),
            observer,
            workers: Workers::new(config.node.workers),
            config: config.clone(),
            seller_cfg,
            dial,
            catalogue: None,
            last_flush: TurnClock::default(),
            commits: CommitQueue::new(committer),
            committed: Some(committed),
            taken: 0,
        };
        match (config.chain.catalogue, config.peer.advertised()) {
            (Some(catalogue), Some(endpoint)) => node.catalogue = Some((catalogue, endpoint)),
            (Some(catalogue), None) if config.peer.listen.is_some() => tracing::warn!(
                "chain.catalogue = {catalogue}, but peer.listen binds every address: set peer.advertise = \"host:port\" (where buyers reach it) to list what this broker sells"
            ),
            _ => {}
        }
        // The catalogue says what is sold now (ads of stopped streams are withdrawn).
        for i in 0..node.streams.len() {
            node.advertise(i);
        }
        // Until they reconnect, the buyers of restored channels count as away since the start.
        for s in &node.streams {
            for c in s.engine.channel_summaries().into_iter().filter(|c| c.phase == "open") {
                node.buyers_away.insert(c.buyer, now);
            }
        }
        // Re-check every known channel on-chain, and every open that was in flight.
        for (i, s) in node.streams.iter().enumerate() {
            for channel in s.engine.channel_ids() {
                node.job(Origin::Stream(i), Call::ReadChannel { channel });
            }
        }
        for (id, b) in &node.bought {
            if !b.engine.is_settled() {
                node.job(Origin::Bought(*id), Call::ReadChannel { channel: *id });
            }
        }
        for (id, (_, _, i)) in &node.recovering {
            node.job(Origin::Buy(*i), Call::ReadChannel { channel: *id });
        }
        Ok(node)
    }

    /// Hands the outbox left by the last run to local subscribers (deliveries that were durable
    /// but not yet published when the broker stopped).
    pub fn replay_outbox(&mut self) -> Result<(), StoreError> {
        for (channel, seq, publication) in self.store.outbox()? {
            *self.outbox_held.entry(channel).or_default() += 1;
            self.publish_locally(channel, seq, &publication);
        }
        self.forget_now()
    }

    fn job(&self, origin: Origin, call: Call) {
        let _ = self.jobs.send(Job { origin, call });
    }

    /// Runs the node until its inputs close. A storage failure stops it (acting without
    /// persisting could lose money).
    pub async fn run(mut self, mut io: NodeIo) -> Result<(), StoreError> {
        let handed_over = self.mqtt.handed_over_signal();
        let mut commits = self.committed.take().ok_or_else(|| StoreError::Corrupt("the node runs once".into()))?;
        loop {
            let now = now_ms();
            // While a commit is written, turns wait for it (see below): so do the timers.
            let deadline = if self.commits.is_idle() { self.next_timeout() } else { None };
            let sleep = tokio::time::sleep(std::time::Duration::from_millis(deadline.map_or(1_000, |d| d.saturating_sub(now).min(1_000))));
            // When the turn began: its inputs are handled inside the arms.
            let woke;
            tokio::select! {
                biased;
                // A commit is durable: what its turns do can be done.
                done = commits.recv() => {
                    woke = std::time::Instant::now();
                    self.on_committed(done.ok_or_else(|| StoreError::Corrupt("the committer thread stopped".into()))?)?;
                }
                Some(cmd) = io.commands.recv() => {
                    woke = std::time::Instant::now();
                    match cmd {
                        Command::Shutdown => return self.finish(io, commits).await,
                        cmd => self.on_command(cmd),
                    }
                }
                Some(result) = io.results.recv() => {
                    woke = std::time::Instant::now();
                    self.on_result(result);
                }
                Some(batch) = io.events.recv() => {
                    woke = std::time::Instant::now();
                    self.on_events(batch);
                }
                Some(event) = io.links.recv() => {
                    woke = std::time::Instant::now();
                    self.on_link(event);
                    self.taken += 1;
                    for _ in 0..BURST {
                        match io.links.try_recv() { Ok(event) => self.on_link(event), Err(_) => break }
                        self.taken += 1;
                    }
                    self.hand_frames();
                }
                Some(publication) = io.local.recv() => {
                    woke = std::time::Instant::now();
                    self.on_local(publication);
                    self.taken += 1;
                    for _ in 0..BURST {
                        match io.local.try_recv() { Ok(p) => self.on_local(p), Err(_) => break }
                        self.taken += 1;
                    }
                }
                // A bought message left Supra: its outbox removal is committed below, not
                // whenever the next input comes (a crash in between would deliver it twice).
                _ = handed_over.notified() => woke = std::time::Instant::now(),
                _ = sleep => woke = std::time::Instant::now(),
            }
            // While a commit is written, nothing a turn would carry out could leave before it
            // anyway: inputs gather, to be signed and verified as one batch when it is durable
            // (one signature for all of them), unless a full burst of them is waiting.
            if !self.commits.is_idle() && self.taken < BURST {
                continue;
            }
            self.on_timers(now_ms());
            self.flush()?;
            self.taken = 0;
            let took = woke.elapsed();
            self.observer.turn(took);
            if took > SLOW_TURN {
                tracing::warn!(
                    "slow turn of {}: {:.1} ms (inputs and timers {:.1} ms, {})",
                    self.me.address(),
                    took.as_secs_f64() * 1e3,
                    (took.saturating_sub(self.last_flush.total())).as_secs_f64() * 1e3,
                    self.last_flush.describe()
                );
            }
        }
    }

    /// The last turn of a graceful stop. Local publishes the hook already took are signed and
    /// committed (the hook holds back any later one without a PUBACK), frames that arrived are
    /// handled, and the outbox forgets only what the embedded broker has taken.
    async fn finish(mut self, mut io: NodeIo, mut commits: mpsc::UnboundedReceiver<Committed>) -> Result<(), StoreError> {
        io.local.close();
        while let Some(publication) = io.local.recv().await {
            self.on_local(publication);
        }
        while let Ok(event) = io.links.try_recv() {
            self.on_link(event);
        }
        self.flush()?;
        self.settle_commits(&mut commits).await?;
        self.mqtt.finish().await;
        self.forget_now()?;
        self.settle_commits(&mut commits).await?;
        tracing::info!("node stopped: {} local publishes taken, {} delivered in this run, state committed", self.stats.local_publishes, self.stats.delivered);
        Ok(())
    }

    fn next_timeout(&self) -> Option<UnixMs> {
        let sellers = self.streams.iter().filter_map(|s| s.engine.poll_timeout());
        let buyers = self.bought.values().filter_map(|b| b.engine.poll_timeout());
        let retries = self.buys.iter().filter_map(|b| match b.state {
            BuyState::Idle { retry_at } => Some(retry_at),
            _ => None,
        });
        let idle = self.buyers_away.values().map(|since| since.saturating_add(self.idle_close_ms));
        sellers.chain(buyers).chain(retries).chain(idle).chain(self.forget_by).min()
    }

    fn on_timers(&mut self, now: UnixMs) {
        for s in &mut self.streams {
            if s.engine.poll_timeout().is_some_and(|t| t <= now) {
                s.engine.handle_timeout(now);
            }
        }
        for (id, b) in &mut self.bought {
            if b.engine.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = b.engine.handle_timeout(now) {
                    tracing::warn!("channel {id}: {e}");
                }
            }
        }
        // Close the channels of buyers that stayed away too long: the seller posts what it sent
        // unacked, claims it, and settles after T_closure, without the buyer.
        let gone: Vec<Address> = self.buyers_away.iter().filter(|(_, since)| now >= since.saturating_add(self.idle_close_ms)).map(|(a, _)| *a).collect();
        for buyer in gone {
            self.buyers_away.remove(&buyer);
            for s in &mut self.streams {
                for c in s.engine.channel_summaries().into_iter().filter(|c| c.buyer == buyer && c.phase == "open") {
                    tracing::info!("buyer {buyer} away for {} s: closing channel {}", self.idle_close_ms / 1000, c.channel);
                    if let Err(e) = s.engine.stop_channel(now, c.channel) {
                        tracing::warn!("channel {}: {e}", c.channel);
                    }
                }
            }
        }
        // Ask sellers for the streams we still want, on links that are up.
        for i in 0..self.buys.len() {
            if matches!(self.buys[i].state, BuyState::Idle { retry_at } if retry_at <= now) {
                self.request(i);
            }
        }
    }

    // ----- local MQTT ----------------------------------------------------------------------

    fn on_local(&mut self, publication: Publication) {
        self.stats.local_publishes += 1;
        let mut plaintext = None;
        for s in &mut self.streams {
            if !crate::topics::matches(&s.cfg.topic, &publication.topic) {
                continue;
            }
            s.published += 1;
            if !s.engine.has_audience() {
                continue;
            }
            let plaintext = plaintext.get_or_insert_with(|| publication.encode());
            // The listeners' packet limit keeps this within a few bytes of `max_payload_size`; the
            // check is the guarantee that every sold message can be posted on-chain.
            if plaintext.len() > MAX_SOLD_PLAINTEXT_BYTES {
                tracing::error!("stream `{}`: a {}-byte message cannot be sold (at most {MAX_SOLD_PLAINTEXT_BYTES})", s.cfg.topic, plaintext.len());
                continue;
            }
            s.pending.push(plaintext.clone());
        }
    }

    /// Hands the frames taken this turn to their engines: engines with frames run in parallel on
    /// the workers, each one's frames in arrival order (proof and batch-signature checks,
    /// decryption and ack signing on the buyer side, ack checks on the seller side).
    fn hand_frames(&mut self) {
        enum Task<'a> {
            Sell(&'a mut Sold),
            Buy(&'a mut Bought),
        }
        let sellers = self.streams.iter_mut().filter(|s| !s.inbox.is_empty()).map(Task::Sell);
        let buyers = self.bought.iter_mut().filter(|(_, b)| !b.inbox.is_empty()).map(|(_, b)| Task::Buy(b));
        let tasks: Vec<Task> = sellers.chain(buyers).collect();
        if tasks.is_empty() {
            return;
        }
        let now = now_ms();
        let rejected = self.workers.run(tasks, |task| match task {
            Task::Sell(s) => std::mem::take(&mut s.inbox)
                .into_iter()
                .filter_map(|(peer, frame)| s.engine.handle_frame(now, peer, frame).err().map(|e| (peer, e.to_string())))
                .collect::<Vec<_>>(),
            Task::Buy(b) => {
                let seller = b.engine.seller();
                std::mem::take(&mut b.inbox).into_iter().filter_map(|frame| b.engine.handle_frame(now, frame).err().map(|e| (seller, e.to_string()))).collect()
            }
        });
        self.reject(rejected.into_iter().flatten().collect());
    }

    /// Takes a frame into its engine's inbox if it is one that `hand_frames` handles (acks to a
    /// sold stream, data of a bought channel); gives it back otherwise.
    fn take_frame(&mut self, role: Role, peer: Address, frame: Frame) -> Option<Frame> {
        let routed = match (role, &frame) {
            (Role::Seller, Frame::Ack { ack, .. }) => {
                let channel = ChannelId(ack.channelId);
                match self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                    Some(s) => {
                        s.inbox.push((peer, frame));
                        Ok(())
                    }
                    None => Err("unknown channel"),
                }
            }
            (Role::Buyer, Frame::Data(data)) => {
                let stream = data.message.streamId;
                match self.bought.values_mut().find(|b| b.engine.stream().as_b256() == stream && !b.engine.is_settled() && b.engine.seller() == peer) {
                    Some(b) => {
                        b.inbox.push(frame);
                        Ok(())
                    }
                    None => Err("data for a stream we do not buy"),
                }
            }
            _ => return Some(frame),
        };
        if let Err(reason) = routed {
            self.stats.frames_rejected += 1;
            tracing::debug!("frame from {peer} rejected: {reason}");
        }
        None
    }

    /// Hands a bought message to the embedded broker; its outbox entry goes once the router has
    /// taken it (`collect_handed_over`).
    fn publish_locally(&mut self, channel: u64, seq: u64, publication: &Publication) {
        if let Err(e) = self.mqtt.publish(publication, (channel, seq)) {
            tracing::error!("local delivery of {}: {e}", publication.topic);
        }
        self.stats.delivered += 1;
    }

    // ----- links ---------------------------------------------------------------------------

    fn link_for(&self, peer: Address, role: Role) -> Option<&Link> {
        // The newest link wins when a peer reconnected before the old link's end was noticed.
        self.links.iter().filter(|(_, l)| l.role == role && l.peer.address == peer).max_by_key(|(id, _)| **id).map(|(_, l)| l)
    }

    fn send(&self, peer: Address, role: Role, frame: &Frame) {
        if let (Some(link), Ok(bytes)) = (self.link_for(peer, role), frame.encode_shared()) {
            link.tx.send(bytes);
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        let event = match event {
            LinkEvent::Frame { id, peer, frame } => {
                let Some(role) = self.links.get(&id).map(|l| l.role) else { return };
                match self.take_frame(role, peer, frame) {
                    Some(frame) => LinkEvent::Frame { id, peer, frame },
                    None => return,
                }
            }
            event => event,
        };
        // Anything else reaches an engine after the frames taken before it: order kept per engine.
        self.hand_frames();
        let now = now_ms();
        match event {
            LinkEvent::Up(up) => {
                tracing::info!("link up: {:?} {}", up.role, up.peer.address);
                let (role, peer) = (up.role, up.peer.address);
                self.links.insert(up.id, Link { role, peer: up.peer, tx: up.tx });
                match role {
                    Role::Seller => {
                        self.buyers_away.remove(&peer);
                        for s in &mut self.streams {
                            s.engine.link_up(now, peer);
                        }
                    }
                    Role::Buyer => {
                        for i in 0..self.buys.len() {
                            if self.buys[i].cfg.seller != peer {
                                continue;
                            }
                            match self.buys[i].state {
                                BuyState::Open(id) => {
                                    if let Some(b) = self.bought.get_mut(&id)
                                        && let Err(e) = b.engine.link_up(now)
                                    {
                                        tracing::warn!("channel {id}: {e}");
                                    }
                                }
                                BuyState::Idle { .. } | BuyState::Requested => self.request(i),
                                BuyState::Opening(_) | BuyState::Done => {}
                            }
                        }
                    }
                }
            }
            LinkEvent::Down { id, peer, reason } => {
                let Some(link) = self.links.remove(&id) else { return };
                tracing::info!("link down: {:?} {peer}: {reason}", link.role);
                if self.link_for(peer, link.role).is_some() {
                    return;
                }
                match link.role {
                    Role::Seller => {
                        let mut has_channels = false;
                        for s in &mut self.streams {
                            s.engine.link_down(now, peer);
                            has_channels |= s.engine.channel_summaries().iter().any(|c| c.buyer == peer && c.phase == "open");
                        }
                        if has_channels {
                            self.buyers_away.insert(peer, now);
                        }
                    }
                    Role::Buyer => {
                        for b in &mut self.buys {
                            if b.cfg.seller == peer && b.state == BuyState::Requested {
                                b.state = BuyState::Idle { retry_at: now };
                            }
                        }
                    }
                }
            }
            LinkEvent::Frame { id, peer, frame } => {
                let Some(role) = self.links.get(&id).map(|l| l.role) else { return };
                let accepted = match role {
                    Role::Seller => self.on_buyer_frame(id, peer, frame, now),
                    Role::Buyer => self.on_seller_frame(peer, frame, now),
                };
                if let Err(reason) = accepted {
                    self.stats.frames_rejected += 1;
                    tracing::debug!("frame from {peer} rejected: {reason}");
                }
            }
        }
    }

    /// Asks the seller of buy entry `i` for its stream, if the link is up.
    fn request(&mut self, i: usize) {
        let cfg = &self.buys[i].cfg;
        if self.link_for(cfg.seller, Role::Buyer).is_none() {
            // Asked again when the link comes up.
            self.buys[i].state = BuyState::Idle { retry_at: u64::MAX };
            return;
        }
        self.send(cfg.seller, Role::Buyer, &Frame::Request { topic: cfg.topic.clone() });
        self.buys[i].state = BuyState::Requested;
    }

    /// A frame from a buyer broker (we sell to it).
    fn on_buyer_frame(&mut self, link: LinkId, peer: Address, frame: Frame, now: UnixMs) -> Result<(), String> {
        let channel_of = |frame: &Frame| match frame {
            Frame::Ack { ack, .. } => Some(ChannelId(ack.channelId)),
            Frame::Stop { stop, .. } => Some(ChannelId(stop.channelId)),
            Frame::Resume { channel_id, .. } | Frame::Opened { channel_id } => Some(*channel_id),
            _ => None,
        };
        match frame {
            Frame::Request { topic } => {
                let Some(s) = self.streams.iter_mut().find(|s| s.cfg.topic == topic && s.cfg.selling) else {
                    self.send(peer, Role::Seller, &Frame::Refused { reason: format!("`{topic}` is not sold here") });
                    return Err(format!("request for unsold topic `{topic}`"));
                };
                let Some(key) = self.links.get(&link).map(|l| l.peer.key) else { return Ok(()) };
                s.engine.make_offer(now, key, &topic).map(|_| ()).map_err(|e| e.to_string())
            }
            Frame::Opened { channel_id } => {
                let i = self.streams.iter().position(|s| s.engine.knows_channel(&channel_id)).ok_or("unknown channel")?;
                self.job(Origin::OpenedClaim(i, link), Call::ReadChannel { channel: channel_id });
                Ok(())
            }
            Frame::Ping { nonce } => {
                self.send(peer, Role::Seller, &Frame::Pong { nonce });
                Ok(())
            }
            Frame::Pong { .. } => Ok(()),
            Frame::Error { reason, .. } => Err(format!("peer error: {reason}")),
            frame @ (Frame::Ack { .. } | Frame::Stop { .. } | Frame::Resume { .. }) => {
                let channel = channel_of(&frame).ok_or("no channel")?;
                let s = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)).ok_or("unknown channel")?;
                s.engine.handle_frame(now, peer, frame).map_err(|e| e.to_string())
            }
            _ => Err("unexpected frame from a buyer".into()),
        }
    }

    /// A frame from a seller broker (we buy from it).
    fn on_seller_frame(&mut self, peer: Address, frame: Frame, now: UnixMs) -> Result<(), String> {
        match frame {
            Frame::Offer { offer, sig, topic } => self.on_offer(peer, offer, sig, &topic, now),
            Frame::Refused { reason } => {
                for b in &mut self.buys {
                    if b.cfg.seller == peer && b.state == BuyState::Requested {
                        tracing::warn!("seller {peer} refused `{}`: {reason}", b.cfg.topic);
                        b.state = BuyState::Idle { retry_at: now + RETRY_MS };
                    }
                }
                Ok(())
            }
            // Data frames never come here: `take_frame` puts them in their channel's inbox.
            Frame::Stop { stop, sig } => {
                let b = self.bought.get_mut(&ChannelId(stop.channelId)).ok_or("stop for an unknown channel")?;
                b.engine.handle_frame(now, Frame::Stop { stop, sig }).map_err(|e| e.to_string())
            }
            Frame::Ping { nonce } => {
                self.send(peer, Role::Buyer, &Frame::Pong { nonce });
                Ok(())
            }
            Frame::Pong { .. } => Ok(()),
            Frame::Error { reason, .. } => Err(format!("peer error: {reason}")),
            _ => Err("unexpected frame from a seller".into()),
        }
    }

    fn on_offer(&mut self, peer: Address, offer: Offer, sig: Signature, topic: &str, now: UnixMs) -> Result<(), String> {
        let i = self
            .buys
            .iter()
            .position(|b| b.cfg.seller == peer && b.cfg.topic == topic && b.state == BuyState::Requested)
            .ok_or("unsolicited offer")?;
        let cfg = self.buys[i].cfg.clone();
        let refuse = |buys: &mut Vec<Buy>, why: String| {
            tracing::warn!("offer from {peer} for `{topic}` refused: {why}");
            buys[i].state = BuyState::Idle { retry_at: now + RETRY_MS };
            Err(why)
        };
        let (_, channel) = match check_offer(&self.domain, &offer, &sig, self.me.address()) {
            Ok(checked) => checked,
            Err(e) => return refuse(&mut self.buys, e.to_string()),
        };
        // An offer in another currency than the buy's is refused before any transaction, with the
        // engine's clear error (prices in different currencies are not comparable).
        if let Err(e) = supra_channel::check_offer_currency(&offer, cfg.token) {
            return refuse(&mut self.buys, e.to_string());
        }
        if offer.seller != cfg.seller {
            return refuse(&mut self.buys, "offer from another seller".into());
        }
        if offer.price > cfg.max_price_wei {
            return refuse(&mut self.buys, format!("price {} wei above max_price_wei {}", offer.price, cfg.max_price_wei));
        }
        let floor = offer.price.saturating_mul(U256::from(offer.window));
        if cfg.deposit_wei < floor {
            return refuse(&mut self.buys, format!("deposit_wei {} does not cover price * window = {floor}", cfg.deposit_wei));
        }
        if offer.validUntil.saturating_mul(1000) <= now {
            return refuse(&mut self.buys, "offer expired".into());
        }
        if let Err(e) = self.store.opening(channel, &offer, &sig) {
            return refuse(&mut self.buys, format!("cannot record the open: {e}"));
        }
        self.buys[i].state = BuyState::Opening(channel);
        self.recovering.insert(channel, (offer.clone(), sig, i));
        self.job(Origin::Buy(i), Call::Open { offer, sig, deposit: cfg.deposit_wei });
        Ok(())
    }
}
