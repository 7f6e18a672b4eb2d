//! A deterministic in-memory harness (feature `testkit`): one seller [`Stream`], buyers, lossy
//! links and a tiny judge model, driven by a discrete-event loop. Used by this crate's property
//! tests and benches, and reusable by the simulator.
//!
//! It carries out actions exactly as a broker must: in order, `Persist` records appended to a
//! per-party store before any later action, `Deliver`s committed to a durable outbox atomically
//! with the `Position` record that precedes them. Crashes drop the engine, its queued actions
//! and everything in flight on its links, then restore it from its store.
//!
//! While running it records what the protocol properties need ([`Observations`]), and
//! [`Sim::check`] turns violations into errors.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy_primitives::{Address, B256, U256, keccak256};

use crate::buyer::{BuyerAction, BuyerChannel, BuyerConfig, BuyerEvent};
use crate::records::{BuyerRecord, SellerRecord};
use crate::seller::{SellerAction, SellerConfig, SellerEvent, Stream, Terms};
use crate::proof::MessageProof;
use crate::sign::Keypair;
use crate::types::{Ack, ChannelId, Domain, Message, StreamId, UnixMs, ack_cost};
use crate::wire::{Frame, FrameBytes};

/// A small deterministic PRNG (SplitMix64), so runs replay from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)` (0 if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }
    /// `true` with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }
}

/// A deterministic test key (real k256).
pub fn test_key(label: &str, i: u64) -> Keypair {
    derive_key(label, i, Keypair::from_secret_bytes)
}

/// The same key as [`test_key`] (same secret, address and ECDH key) as a **fast simulation
/// key**: its signatures are a keyed hash, not ECDSA (see the `sign` module docs). Only for
/// closed simulations: no real key, peer or judge accepts its signatures.
pub fn fast_test_key(label: &str, i: u64) -> Keypair {
    derive_key(label, i, Keypair::fast_for_simulation)
}

fn derive_key(
    label: &str,
    i: u64,
    make: impl Fn(&[u8; 32]) -> Result<Keypair, crate::sign::KeyError>,
) -> Keypair {
    let mut ctr = 0u64;
    loop {
        let mut pre = label.as_bytes().to_vec();
        pre.extend_from_slice(&i.to_be_bytes());
        pre.extend_from_slice(&ctr.to_be_bytes());
        if let Ok(k) = make(&keccak256(&pre).0) {
            return k;
        }
        ctr += 1;
    }
}

/// Link impairments (per buyer link, both directions).
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Per-mille of frames dropped.
    pub loss_permille: u32,
    /// Per-mille of frames duplicated.
    pub dup_permille: u32,
    /// Minimum one-way delay.
    pub delay_min_ms: u64,
    /// Maximum one-way delay (frames reorder when it exceeds the minimum).
    pub delay_max_ms: u64,
    /// Per-mille chance, per simulated event, that some link goes down (it comes back after
    /// `outage_ms`).
    pub flap_permille: u32,
    /// Outage duration range.
    pub outage_ms: (u64, u64),
}

impl LinkConfig {
    /// A perfect link with a fixed delay.
    pub fn perfect(delay_ms: u64) -> Self {
        Self {
            loss_permille: 0,
            dup_permille: 0,
            delay_min_ms: delay_ms,
            delay_max_ms: delay_ms,
            flap_permille: 0,
            outage_ms: (0, 0),
        }
    }
}

/// Harness settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Number of buyers.
    pub buyers: usize,
    /// When each buyer joins (ms); buyers beyond the list join at 0.
    pub join_at: Vec<UnixMs>,
    /// Stream terms.
    pub terms: Terms,
    /// Seller settings.
    pub seller: SellerConfig,
    /// Buyer settings.
    pub buyer: BuyerConfig,
    /// Link impairments.
    pub link: LinkConfig,
    /// Time for a transaction to be mined (must be ≤ `seller.delta_onchain_ms`).
    pub chain_delay_ms: u64,
    /// Messages to publish.
    pub messages: u64,
    /// Interval between publications.
    pub publish_every_ms: u64,
    /// Most messages published together, as one `publish_batch` (a broker's turn): each
    /// publication draws 1 to this many. 1: one message per publication, one batch each.
    pub publish_batch: u64,
    /// Payload size in bytes.
    pub payload_len: usize,
    /// Per-mille chance, per event and per action batch, that the seller crashes (possibly after
    /// carrying out only part of its queued actions) and restarts at once from its store.
    pub seller_crash_permille: u32,
    /// Same for a buyer.
    pub buyer_crash_permille: u32,
    /// Simulated start time (unix ms).
    pub start_ms: UnixMs,
    /// Buyer pauses (a stopped process: `kill -STOP`).
    pub pauses: PauseConfig,
}

/// Buyer pauses: the buyer's process is frozen while its link stays up. Frames sent to it wait
/// in the connection and chain events in its watcher; it sends nothing and runs no timer until
/// it resumes, then takes everything in order.
#[derive(Clone, Debug, Default)]
pub struct PauseConfig {
    /// Per-mille chance, per simulated event, that some buyer pauses.
    pub permille: u32,
    /// Pause duration range.
    pub ms: (u64, u64),
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            buyers: 1,
            join_at: Vec::new(),
            terms: Terms {
                price: U256::from(1000u64),
                token: Default::default(),
                window: 16,
                t_ack_secs: 10,
                t_closure_secs: 60,
                offer_validity_secs: 600,
            },
            seller: SellerConfig {
                delta_onchain_ms: 2_000,
                retransmit_timeout_ms: 300,
                ..SellerConfig::default()
            },
            buyer: BuyerConfig {
                ack_every: 4,
                ack_delay_ms: 20,
                ..BuyerConfig::default()
            },
            link: LinkConfig::perfect(5),
            chain_delay_ms: 1_000,
            messages: 100,
            publish_every_ms: 10,
            publish_batch: 1,
            payload_len: 32,
            seller_crash_permille: 0,
            buyer_crash_permille: 0,
            start_ms: 1_700_000_000_000,
            pauses: PauseConfig::default(),
        }
    }
}

/// What the harness saw, for property checks.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Published plaintexts by seq.
    pub published: Vec<Vec<u8>>,
    /// Message timestamps by seq.
    pub timestamps: Vec<UnixMs>,
    /// Digest of every message seen signed by the seller, by seq (first seen).
    pub signed: BTreeMap<u64, B256>,
    /// Equivocations (two different signed messages for one seq).
    pub equivocations: Vec<u64>,
    /// First transmission of (channel, seq) by the seller.
    pub first_sent: BTreeMap<(ChannelId, u64), UnixMs>,
    /// Per channel: times at which the seller's best held ack first covered a seq
    /// (`upto -> time`, increasing).
    pub acked: BTreeMap<ChannelId, BTreeMap<u64, UnixMs>>,
    /// Mining time of each posted seq.
    pub posted_at: BTreeMap<u64, UnixMs>,
    /// Most unacked messages seen in flight on any channel.
    pub max_in_flight: u64,
    /// Acks with a wrong cost received by the seller.
    pub wrong_cost_acks: u64,
    /// Acks received by the seller.
    pub acks: u64,
    /// Accusations mined / upheld.
    pub accusations: u64,
    /// Accusations upheld (not defended in time).
    pub upheld: u64,
    /// Misbehaviour actions emitted by honest parties (`ProveWrongCost`, `ProveEquivocation`).
    pub misbehaviour_claims: u64,
    /// Seller / buyer crashes.
    pub crashes: u64,
    /// Durable outbox of each buyer: delivered (seq, plaintext), in delivery order.
    pub outbox: Vec<Vec<(u64, Vec<u8>)>>,
    /// Events reported by the engines.
    pub undecryptable: u64,
    /// Buyer pauses.
    pub pauses: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Seller(usize),
    Buyer(usize),
}

#[derive(Clone, Debug)]
enum Tx {
    Post(Message, MessageProof, Vec<u8>),
    Claim(Ack),
    Accuse(usize, u64),
    Defend(ChannelId),
    DefendWithAck(ChannelId, Ack),
    Resolve(usize),
    RequestClose(ChannelId),
    Settle(ChannelId),
}

/// A judge event as a buyer broker's chain watcher hands it to the buyer's engine (a harness
/// holds them back while the buyer is paused).
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// A message of the stream posted on-chain.
    Posted(Message, MessageProof, Vec<u8>),
    /// An accusation opened on the channel, with its deadline (seconds).
    AccusationOpened(u64),
    /// The accusation was defended or resolved.
    AccusationClosed,
    /// The judge refused the accusation (final).
    AccusationRefused,
    /// A claim covering this seq was mined on the channel (the seller's or the buyer's own).
    Claimed(u64),
    /// `requestClose` mined at this chain time (seconds).
    CloseRequested(u64),
    /// The channel is settled.
    Settled,
}

impl ChainEvent {
    /// Hands the event to `chan` at `now`.
    pub fn apply(self, chan: &mut BuyerChannel, now: UnixMs) {
        match self {
            ChainEvent::Posted(m, proof, payload) => {
                // A posting the engine refuses (another stream's, say) changes nothing.
                let _ = chan.on_posted(now, m, proof, payload);
            }
            ChainEvent::AccusationOpened(deadline) => chan.on_accusation_opened(now, deadline),
            ChainEvent::AccusationClosed => chan.on_accusation_closed(now),
            ChainEvent::AccusationRefused => chan.on_accusation_refused(now),
            ChainEvent::Claimed(seq) => chan.on_claimed(now, seq),
            ChainEvent::CloseRequested(at) => chan.on_close_requested(now, at),
            ChainEvent::Settled => chan.on_settled(now),
        }
    }
}

#[derive(Debug)]
struct Dispute {
    buyer: usize,
    missing: u64,
    deadline: UnixMs,
}

/// One simulated buyer.
#[derive(Debug)]
pub struct SimBuyer {
    /// Its key.
    pub key: Keypair,
    /// Its engine (None before it joins).
    pub chan: Option<BuyerChannel>,
    /// Its durable store.
    pub store: Vec<BuyerRecord>,
    /// Join time.
    pub join_at: UnixMs,
    link_up: bool,
    link_epoch: u64,
    down_until: Option<UnixMs>,
    /// Frozen until then (see [`PauseConfig`]).
    paused_until: Option<UnixMs>,
    /// Chain events seen while paused, in order.
    chain_backlog: Vec<ChainEvent>,
}

/// The harness.
#[derive(Debug)]
pub struct Sim {
    /// Settings.
    pub cfg: SimConfig,
    /// Current time.
    pub now: UnixMs,
    /// Signing domain.
    pub domain: Domain,
    /// The seller engine.
    pub seller: Stream,
    /// The seller's key.
    pub seller_key: Keypair,
    /// The seller's durable store.
    pub seller_store: Vec<SellerRecord>,
    /// Buyers.
    pub buyers: Vec<SimBuyer>,
    /// Observations.
    pub obs: Observations,
    rng: Rng,
    packets: BTreeMap<(UnixMs, u64), (Dest, u64, FrameBytes)>,
    txs: BTreeMap<(UnixMs, u64), Tx>,
    ids: u64,
    next_publish: Option<UnixMs>,
    claimed: BTreeMap<ChannelId, U256>,
    disputes: BTreeMap<ChannelId, Dispute>,
    posted: BTreeMap<u64, B256>,
    /// Publications whose records are not persisted yet: (seq, payload, time).
    unpersisted: VecDeque<(u64, Vec<u8>, UnixMs)>,
    seller_restarts: u64,
}

impl Sim {
    /// Builds the harness (buyers join at their `join_at`).
    pub fn new(cfg: SimConfig) -> Self {
        let domain = Domain::new(31337, Address::repeat_byte(0x42));
        let seller_key = test_key("seller", cfg.seed);
        let sid = StreamId::new(seller_key.address(), 1).unwrap_or(StreamId(B256::ZERO));
        let seller = Stream::new(
            domain,
            seller_key.clone(),
            sid,
            cfg.terms.clone(),
            cfg.seller.clone(),
        )
        .unwrap_or_else(|e| panic!("bad sim terms: {e}"));
        let buyers = (0..cfg.buyers)
            .map(|i| SimBuyer {
                key: test_key("buyer", cfg.seed.wrapping_mul(1000).wrapping_add(i as u64)),
                chan: None,
                store: Vec::new(),
                join_at: cfg.start_ms + cfg.join_at.get(i).copied().unwrap_or(0),
                link_up: true,
                link_epoch: 0,
                down_until: None,
                paused_until: None,
                chain_backlog: Vec::new(),
            })
            .collect();
        let obs = Observations {
            outbox: vec![Vec::new(); cfg.buyers],
            ..Default::default()
        };
        Self {
            now: cfg.start_ms,
            next_publish: (cfg.messages > 0).then_some(cfg.start_ms),
            rng: Rng::new(cfg.seed),
            domain,
            seller,
            seller_key,
            seller_store: Vec::new(),
            buyers,
            obs,
            packets: BTreeMap::new(),
            txs: BTreeMap::new(),
            ids: 0,
            claimed: BTreeMap::new(),
            disputes: BTreeMap::new(),
            posted: BTreeMap::new(),
            unpersisted: VecDeque::new(),
            seller_restarts: 0,
            cfg,
        }
    }

    fn id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    /// The channel id of buyer `i` (once joined).
    pub fn channel_of(&self, i: usize) -> Option<ChannelId> {
        self.buyers
            .get(i)
            .and_then(|b| b.chan.as_ref())
            .map(BuyerChannel::id)
    }

    fn buyer_of(&self, id: ChannelId) -> Option<usize> {
        self.buyers
            .iter()
            .position(|b| b.chan.as_ref().is_some_and(|c| c.id() == id))
    }

    fn buyer_by_addr(&self, a: Address) -> Option<usize> {
        self.buyers.iter().position(|b| b.key.address() == a)
    }

    // ----- running ---------------------------------------------------------------------------

    /// Runs until every message is published and every joined buyer delivered all of them, or
    /// until `deadline`. Faults stop once publishing is done and `calm_after_publish` is set.
    pub fn run(&mut self, deadline: UnixMs, calm_after_publish: bool) -> bool {
        while self.now <= deadline {
            if calm_after_publish && self.next_publish.is_none() {
                self.calm();
            }
            if self.done() {
                return true;
            }
            if !self.step() {
                return self.done();
            }
        }
        self.done()
    }

    /// Keeps processing events for `ms` more simulated milliseconds (or until none is left).
    pub fn run_for(&mut self, ms: UnixMs) {
        let until = self.now.saturating_add(ms);
        while self.now < until {
            if !self.step() {
                break;
            }
        }
    }

    /// Removes all impairments from now on.
    pub fn calm(&mut self) {
        self.cfg.link.loss_permille = 0;
        self.cfg.link.dup_permille = 0;
        self.cfg.link.flap_permille = 0;
        self.cfg.seller_crash_permille = 0;
        self.cfg.buyer_crash_permille = 0;
        self.cfg.pauses.permille = 0;
        let now = self.now;
        for b in &mut self.buyers {
            if !b.link_up {
                // A frozen buyer reconnects when it runs again.
                b.down_until = Some(b.paused_until.unwrap_or(now).max(now));
            }
        }
    }

    /// Whether all messages are published, every buyer joined, and each delivered all of them.
    pub fn done(&self) -> bool {
        self.next_publish.is_none()
            && self.buyers.iter().all(|b| {
                b.chan
                    .as_ref()
                    .is_some_and(|c| c.next_seq() >= self.seller.next_seq())
            })
    }

    /// Processes the next event. Returns `false` when nothing is left to do.
    pub fn step(&mut self) -> bool {
        let mut next: Option<UnixMs> = None;
        let mut at = |t: UnixMs| next = Some(next.map_or(t, |n: UnixMs| n.min(t)));
        if let Some(t) = self.next_publish {
            at(t);
        }
        if let Some(((t, _), _)) = self.packets.first_key_value() {
            at(*t);
        }
        if let Some(((t, _), _)) = self.txs.first_key_value() {
            at(*t);
        }
        if let Some(t) = self.seller.poll_timeout() {
            at(t);
        }
        for b in &self.buyers {
            match &b.chan {
                None => at(b.join_at),
                // A frozen buyer runs no timer (its resumption is an event of its own).
                Some(_) if b.paused_until.is_some() => {}
                Some(c) => {
                    if let Some(t) = c.poll_timeout() {
                        at(t);
                    }
                }
            }
            if let Some(t) = b.down_until {
                at(t);
            }
            if let Some(t) = b.paused_until {
                at(t);
            }
        }
        for d in self.disputes.values() {
            at(d.deadline + 1);
        }
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        let now = self.now;

        // Joins.
        for i in 0..self.buyers.len() {
            if self.buyers[i].chan.is_none() && self.buyers[i].join_at <= now {
                self.join(i);
            }
        }
        // Resumptions: the buyer's watcher catches up with the chain.
        for i in 0..self.buyers.len() {
            if self.buyers[i].paused_until.is_some_and(|t| t <= now) {
                self.buyers[i].paused_until = None;
                for ev in std::mem::take(&mut self.buyers[i].chain_backlog) {
                    self.chain_event(i, ev);
                }
            }
        }
        // Link recoveries.
        for i in 0..self.buyers.len() {
            if self.buyers[i].down_until.is_some_and(|t| t <= now) {
                if let Some(t) = self.buyers[i].paused_until {
                    // A frozen process reconnects once it runs again.
                    self.buyers[i].down_until = Some(t);
                    continue;
                }
                self.buyers[i].down_until = None;
                self.buyers[i].link_up = true;
                let peer = self.buyers[i].key.address();
                self.seller.link_up(now, peer);
                if let Some(c) = self.buyers[i].chan.as_mut() {
                    let _ = c.link_up(now);
                }
                self.flush_seller();
                self.flush_buyer(i);
            }
        }
        // Publication.
        if self.next_publish.is_some_and(|t| t <= now) {
            let first = self.obs.published.len() as u64;
            let left = self.cfg.messages.saturating_sub(first).max(1);
            let count = match self.cfg.publish_batch {
                0 | 1 => 1,
                n => 1 + self.rng.below(n.min(left)),
            };
            let payloads: Vec<Vec<u8>> = (first..first + count)
                .map(|seq| {
                    let mut payload = vec![0u8; self.cfg.payload_len.max(8)];
                    payload[..8].copy_from_slice(&seq.to_be_bytes());
                    for b in payload.iter_mut().skip(8) {
                        *b = self.rng.next_u64() as u8;
                    }
                    payload
                })
                .collect();
            // A publication counts once its record is persisted (see flush_seller); a crash
            // before that loses it, as a broker would not have acknowledged it.
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            self.unpersisted.clear();
            if let Ok(seqs) = self.seller.publish_batch(now, &refs) {
                self.unpersisted = seqs.zip(payloads).map(|(seq, p)| (seq, p, now)).collect();
            }
            self.flush_seller();
            let n = self.obs.published.len() as u64;
            self.next_publish = (n < self.cfg.messages).then_some(now + self.cfg.publish_every_ms);
        }
        // Packets due.
        while let Some(entry) = self.packets.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (dest, epoch, bytes) = entry.remove();
            self.deliver_packet(dest, epoch, &bytes);
        }
        // Transactions mined.
        while let Some(entry) = self.txs.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let tx = entry.remove();
            self.mine(tx);
        }
        // Timers.
        if self.seller.poll_timeout().is_some_and(|t| t <= now) {
            self.seller.handle_timeout(now);
            self.flush_seller();
        }
        for i in 0..self.buyers.len() {
            if self.buyers[i].paused_until.is_some() {
                continue;
            }
            if let Some(c) = self.buyers[i].chan.as_mut()
                && c.poll_timeout().is_some_and(|t| t <= now)
            {
                let _ = c.handle_timeout(now);
                self.flush_buyer(i);
            }
        }
        // Resolutions are modelled by the buyers' Resolve actions; expire stale disputes here.
        // Faults.
        self.faults();
        self.observe();
        true
    }

    fn join(&mut self, i: usize) {
        let now = self.now;
        let bk = *self.buyers[i].key.public();
        let crashes = self.obs.crashes;
        let Ok((offer, sig)) = self.seller.make_offer(now, bk, "t") else {
            return;
        };
        self.flush_seller();
        if self.obs.crashes != crashes {
            // The offer may not have been persisted (nor sent): ask again.
            self.buyers[i].join_at = now + 1;
            return;
        }
        match BuyerChannel::new(
            self.domain,
            self.buyers[i].key.clone(),
            offer,
            sig,
            self.cfg.buyer.clone(),
            now,
        ) {
            Ok(c) => {
                let id = c.id();
                self.buyers[i].chan = Some(c);
                self.claimed.insert(id, U256::ZERO);
                self.flush_buyer(i);
                // The channel is open on-chain: the seller learns it (again after a crash, from
                // the chain's events).
                self.open_on_seller(i);
            }
            Err(e) => panic!("offer rejected: {e}"),
        }
    }

    fn open_on_seller(&mut self, i: usize) {
        let Some(c) = self.buyers[i].chan.as_ref() else {
            return;
        };
        let id = c.id();
        // Enough for the whole run: the seller sends nothing its deposit does not pay for, and
        // these runs are about links, crashes and pauses, not about top-ups.
        let covered = self.cfg.messages.saturating_add(c.offer().window) * 4;
        let deposit = c.offer().price * U256::from(covered);
        if self.seller.open_channel(self.now, id, deposit).is_ok() {
            self.flush_seller();
        }
    }

    fn faults(&mut self) {
        let now = self.now;
        if self.rng.chance(self.cfg.link.flap_permille) && !self.buyers.is_empty() {
            let i = self.rng.below(self.buyers.len() as u64) as usize;
            if self.buyers[i].link_up {
                self.buyers[i].link_up = false;
                self.buyers[i].link_epoch += 1;
                let (lo, hi) = self.cfg.link.outage_ms;
                let d = self.rng.range(lo, hi);
                self.buyers[i].down_until = Some(now + d);
                let peer = self.buyers[i].key.address();
                self.seller.link_down(now, peer);
                self.flush_seller();
            }
        }
        if self.rng.chance(self.cfg.pauses.permille) && !self.buyers.is_empty() {
            let i = self.rng.below(self.buyers.len() as u64) as usize;
            if self.buyers[i].paused_until.is_none() {
                let (lo, hi) = self.cfg.pauses.ms;
                self.buyers[i].paused_until = Some(now + self.rng.range(lo, hi));
                self.obs.pauses += 1;
            }
        }
        // Crashes between events; crashes in the middle of an action batch happen in the
        // flush functions.
        if self.rng.chance(self.cfg.seller_crash_permille / 2) {
            self.crash_seller();
        }
        if self.rng.chance(self.cfg.buyer_crash_permille / 2) && !self.buyers.is_empty() {
            let i = self.rng.below(self.buyers.len() as u64) as usize;
            self.crash_buyer(i);
        }
    }

    /// Crashes the seller and restores it from its store (queued actions are lost, links drop).
    pub fn crash_seller(&mut self) {
        let now = self.now;
        self.obs.crashes += 1;
        let restored = Stream::restore(
            self.domain,
            self.seller_key.clone(),
            self.seller.id(),
            self.cfg.terms.clone(),
            self.cfg.seller.clone(),
            self.seller_store.clone(),
            now,
        );
        let before: Vec<(ChannelId, Option<u64>)> = self
            .seller
            .channel_ids()
            .map(|c| (c, persisted_best(&self.seller_store, c)))
            .collect();
        match restored {
            Ok(s) => self.seller = s,
            Err(e) => panic!("seller restore failed: {e}"),
        }
        self.seller_restarts += 1;
        for (c, best) in before {
            if let Some(b) = best {
                assert!(
                    self.seller.best_acked_seq(&c).is_some_and(|s| s >= b),
                    "restored seller lost an ack"
                );
            }
        }
        // All links drop and reconnect.
        for i in 0..self.buyers.len() {
            self.buyers[i].link_epoch += 1;
            if self.buyers[i].link_up {
                self.buyers[i].link_up = false;
                self.buyers[i].down_until = Some(now + 1);
            }
        }
        // The broker re-reads open channels from the chain.
        let depth = self.seller_restarts;
        for i in 0..self.buyers.len() {
            if self.seller_restarts != depth {
                break;
            }
            self.open_on_seller(i);
        }
    }

    /// Crashes buyer `i` and restores it from its store.
    pub fn crash_buyer(&mut self, i: usize) {
        let now = self.now;
        if self.buyers[i].chan.is_none() || self.buyers[i].paused_until.is_some() {
            return;
        }
        self.obs.crashes += 1;
        let store = self.buyers[i].store.clone();
        if store.is_empty() {
            // Crashed before its channel record was written: it never opened; join again.
            self.buyers[i].chan = None;
            self.buyers[i].join_at = now + 1;
            return;
        }
        match BuyerChannel::restore(
            self.domain,
            self.buyers[i].key.clone(),
            self.cfg.buyer.clone(),
            store,
            now,
        ) {
            Ok(c) => self.buyers[i].chan = Some(c),
            Err(e) => panic!("buyer restore failed: {e}"),
        }
        self.buyers[i].link_epoch += 1;
        if self.buyers[i].link_up {
            self.buyers[i].link_up = false;
            self.buyers[i].down_until = Some(now + 1);
            let peer = self.buyers[i].key.address();
            self.seller.link_down(now, peer);
            self.flush_seller();
        }
    }

    fn send(&mut self, dest: Dest, frame: FrameBytes) {
        let i = match dest {
            Dest::Seller(i) | Dest::Buyer(i) => i,
        };
        if !self.buyers[i].link_up {
            return;
        }
        if self.rng.chance(self.cfg.link.loss_permille) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.link.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = self
                .rng
                .range(self.cfg.link.delay_min_ms, self.cfg.link.delay_max_ms);
            let id = self.id();
            self.packets.insert(
                (self.now + d, id),
                (dest.clone(), self.buyers[i].link_epoch, frame.clone()),
            );
        }
    }

    fn deliver_packet(&mut self, dest: Dest, epoch: u64, bytes: &[u8]) {
        let now = self.now;
        let Ok(frame) = Frame::decode(bytes) else {
            panic!("undecodable frame on the link")
        };
        match dest {
            Dest::Seller(i) => {
                if self.buyers[i].link_epoch != epoch || !self.buyers[i].link_up {
                    return;
                }
                if let Frame::Ack { ack, .. } = &frame {
                    self.obs.acks += 1;
                    let start = self.buyers[i]
                        .chan
                        .as_ref()
                        .map_or(0, |c| c.offer().startSeq);
                    if ack_cost(start, ack.seq, self.cfg.terms.price) != Some(ack.cost) {
                        self.obs.wrong_cost_acks += 1;
                    }
                }
                let peer = self.buyers[i].key.address();
                let _ = self.seller.handle_frame(now, peer, frame);
                self.flush_seller();
            }
            Dest::Buyer(i) => {
                if self.buyers[i].link_epoch != epoch || !self.buyers[i].link_up {
                    return;
                }
                if let Some(t) = self.buyers[i].paused_until {
                    // Waits in the connection until the buyer reads again.
                    let id = self.id();
                    self.packets
                        .insert((t, id), (dest, epoch, FrameBytes::from(bytes.to_vec())));
                    return;
                }
                if let Frame::Data(d) = &frame {
                    self.note_signed(&d.message);
                }
                if let Some(c) = self.buyers[i].chan.as_mut() {
                    if matches!(frame, Frame::Offer { .. }) {
                        return;
                    }
                    let _ = c.handle_frame(now, frame);
                    self.flush_buyer(i);
                }
            }
        }
    }

    fn note_signed(&mut self, m: &Message) {
        let d = self.domain.digest(m);
        match self.obs.signed.get(&m.seq) {
            Some(x) if *x != d => self.obs.equivocations.push(m.seq),
            Some(_) => {}
            None => {
                self.obs.signed.insert(m.seq, d);
            }
        }
    }

    /// Carries out the seller's queued actions, possibly crashing after any prefix of them.
    fn flush_seller(&mut self) {
        let mut actions: Vec<SellerAction> = self.seller.drain_actions().collect();
        let cut = (!actions.is_empty() && self.rng.chance(self.cfg.seller_crash_permille))
            .then(|| self.rng.below(actions.len() as u64 + 1) as usize);
        if let Some(k) = cut {
            actions.truncate(k);
        }
        for a in actions {
            match a {
                SellerAction::Persist(r) => {
                    if let SellerRecord::Message { message, .. } = &r
                        && self.unpersisted.front().is_some_and(|(seq, _, _)| *seq == message.seq)
                        && let Some((seq, payload, ts)) = self.unpersisted.pop_front()
                        && seq == self.obs.published.len() as u64
                    {
                        self.obs.published.push(payload);
                        self.obs.timestamps.push(ts);
                    }
                    self.seller_store.push(r)
                }
                SellerAction::Send { peer, frames } => {
                    let Some(i) = self.buyer_by_addr(peer) else {
                        continue;
                    };
                    for frame in frames.iter().cloned() {
                        if let Ok(Frame::Data(d)) = Frame::decode(&frame) {
                            self.note_signed(&d.message);
                            if let Some(id) = self.channel_of(i) {
                                self.obs
                                    .first_sent
                                    .entry((id, d.message.seq))
                                    .or_insert(self.now);
                            }
                        }
                        self.send(Dest::Buyer(i), frame);
                    }
                }
                SellerAction::Post(m) => {
                    self.note_signed(&m.message);
                    let id = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, id),
                        Tx::Post(m.message.clone(), m.proof.clone(), m.payload.clone()),
                    );
                }
                SellerAction::Claim { ack, .. } => {
                    let id = self.id();
                    self.txs
                        .insert((self.now + self.cfg.chain_delay_ms, id), Tx::Claim(ack));
                }
                SellerAction::Defend { channel } => {
                    let id = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, id),
                        Tx::Defend(channel),
                    );
                }
                SellerAction::DefendWithAck { channel, ack, .. } => {
                    let id = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, id),
                        Tx::DefendWithAck(channel, ack),
                    );
                }
                SellerAction::RequestClose { channel } => {
                    let id = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, id),
                        Tx::RequestClose(channel),
                    );
                }
                SellerAction::Settle { channel } => {
                    let id = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, id),
                        Tx::Settle(channel),
                    );
                }
                SellerAction::ProveWrongCost { .. } => self.obs.misbehaviour_claims += 1,
                // The testkit's judge does not model them: as if they failed, and the normal
                // close goes on (honest buyers never accuse past the seller's Stop).
                SellerAction::ClaimPosted { .. }
                | SellerAction::SubmitStop { .. }
                | SellerAction::CloseCooperatively { .. } => {}
                SellerAction::Event(e) => {
                    if let SellerEvent::InvalidAck { .. } = e {
                        self.obs.misbehaviour_claims += 1;
                    }
                }
            }
        }
        if cut.is_some() {
            self.crash_seller();
        }
    }

    /// The accusation on `id` was answered in time: both sides hear it closed.
    fn defended(&mut self, now: UnixMs, id: ChannelId) {
        let Some(d) = self.disputes.remove(&id) else {
            return;
        };
        self.seller.on_accusation_closed(now, id);
        self.chain_event(d.buyer, ChainEvent::AccusationClosed);
    }

    fn flush_buyer(&mut self, i: usize) {
        let Some(c) = self.buyers[i].chan.as_mut() else {
            return;
        };
        let all: Vec<BuyerAction> = c.drain_actions().collect();
        let id = c.id();
        let cut = (!all.is_empty() && self.rng.chance(self.cfg.buyer_crash_permille))
            .then(|| self.rng.below(all.len() as u64 + 1) as usize);
        let done = cut.unwrap_or(all.len());
        for (k, a) in all.iter().enumerate().take(done) {
            match a {
                BuyerAction::Persist(r) => {
                    if let BuyerRecord::Position { next_seq, .. } = r {
                        // Commit the deliveries this position covers in the same transaction.
                        for later in &all[k + 1..] {
                            if let BuyerAction::Deliver { seq, payload } = later
                                && seq < next_seq
                            {
                                self.obs.outbox[i].push((*seq, payload.clone()));
                            }
                        }
                    }
                    self.buyers[i].store.push(r.clone());
                }
                BuyerAction::Send(f) => self.send(Dest::Seller(i), f.clone()),
                // The testkit's buyers deposit enough for their whole run.
                BuyerAction::Deliver { .. } | BuyerAction::TopUp { .. } => {}
                // Not modelled by the testkit's judge (see the seller's).
                BuyerAction::SubmitStop { .. } | BuyerAction::CloseCooperatively { .. } => {}
                BuyerAction::Claim { ack, .. } => {
                    let tid = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, tid),
                        Tx::Claim(ack.clone()),
                    );
                }
                BuyerAction::Accuse { missing, .. } => {
                    let tid = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, tid),
                        Tx::Accuse(i, *missing),
                    );
                }
                BuyerAction::Resolve { .. } => {
                    let tid = self.id();
                    self.txs
                        .insert((self.now + self.cfg.chain_delay_ms, tid), Tx::Resolve(i));
                }
                BuyerAction::ProveEquivocation { .. } => self.obs.misbehaviour_claims += 1,
                BuyerAction::RequestClose { .. } => {
                    let tid = self.id();
                    self.txs.insert(
                        (self.now + self.cfg.chain_delay_ms, tid),
                        Tx::RequestClose(id),
                    );
                }
                BuyerAction::Settle { .. } => {
                    let tid = self.id();
                    self.txs
                        .insert((self.now + self.cfg.chain_delay_ms, tid), Tx::Settle(id));
                }
                BuyerAction::Event(BuyerEvent::Undecryptable { .. }) => self.obs.undecryptable += 1,
                BuyerAction::Event(_) => {}
            }
        }
        if cut.is_some() {
            self.crash_buyer(i);
        }
    }

    fn mine(&mut self, tx: Tx) {
        let now = self.now;
        match tx {
            Tx::Post(m, proof, payload) => {
                let d = self.domain.digest(&m);
                match self.posted.get(&m.seq) {
                    Some(x) if *x != d => {
                        self.obs.equivocations.push(m.seq);
                        self.seller.on_post_failed(now, m.seq);
                    }
                    Some(_) => {}
                    None => {
                        self.posted.insert(m.seq, d);
                        self.obs.posted_at.insert(m.seq, now);
                        self.seller.on_posted(now, m.seq);
                        for i in 0..self.buyers.len() {
                            self.chain_event(
                                i,
                                ChainEvent::Posted(m.clone(), proof.clone(), payload.clone()),
                            );
                        }
                        // Defended disputes.
                        let defended: Vec<ChannelId> = self
                            .disputes
                            .iter()
                            .filter(|(_, d)| d.missing == m.seq)
                            .map(|(c, _)| *c)
                            .collect();
                        let _ = defended;
                    }
                }
                self.flush_seller();
            }
            Tx::Claim(ack) => {
                let id = ChannelId(ack.channelId);
                let r = self.claimed.get(&id).copied().unwrap_or_default();
                if ack.cost > r {
                    self.claimed.insert(id, ack.cost);
                    self.seller.on_claimed(now, id, ack.cost);
                    self.flush_seller();
                    if let Some(i) = self.buyer_of(id) {
                        self.chain_event(i, ChainEvent::Claimed(ack.seq));
                    }
                } else {
                    self.seller.on_claim_failed(now, id);
                    self.flush_seller();
                }
            }
            Tx::Accuse(i, missing) => {
                let Some(id) = self.channel_of(i) else { return };
                if self.posted.contains_key(&missing) || self.disputes.contains_key(&id) {
                    self.chain_event(i, ChainEvent::AccusationClosed);
                    return;
                }
                self.obs.accusations += 1;
                let deadline = now + u64::from(self.cfg.terms.t_ack_secs) * 1000;
                self.disputes.insert(
                    id,
                    Dispute {
                        buyer: i,
                        missing,
                        deadline,
                    },
                );
                self.seller.on_accused(now, id, missing);
                self.flush_seller();
                self.chain_event(i, ChainEvent::AccusationOpened(deadline / 1000));
            }
            Tx::Defend(id) => {
                if let Some(d) = self.disputes.get(&id)
                    && self.posted.contains_key(&d.missing)
                    && now <= d.deadline
                {
                    self.defended(now, id);
                }
            }
            Tx::DefendWithAck(id, ack) => {
                if let Some(d) = self.disputes.get(&id)
                    && ack.seq >= d.missing
                    && now <= d.deadline
                {
                    self.defended(now, id);
                }
            }
            Tx::Resolve(i) => {
                let Some(id) = self.channel_of(i) else { return };
                if let Some(d) = self.disputes.get(&id)
                    && now > d.deadline
                {
                    self.obs.upheld += 1;
                    self.disputes.remove(&id);
                }
                self.chain_event(i, ChainEvent::AccusationClosed);
            }
            Tx::RequestClose(id) => {
                self.seller.on_close_requested(now, id, now / 1000);
                self.flush_seller();
                if let Some(i) = self.buyer_of(id) {
                    self.chain_event(i, ChainEvent::CloseRequested(now / 1000));
                }
            }
            Tx::Settle(id) => {
                self.seller.on_settled(now, id);
                self.flush_seller();
                if let Some(i) = self.buyer_of(id) {
                    self.chain_event(i, ChainEvent::Settled);
                }
            }
        }
    }

    /// Hands a judge event to buyer `i`'s engine, or holds it while the buyer is paused.
    fn chain_event(&mut self, i: usize, ev: ChainEvent) {
        if self.buyers[i].paused_until.is_some() {
            self.buyers[i].chain_backlog.push(ev);
            return;
        }
        let now = self.now;
        if let Some(c) = self.buyers[i].chan.as_mut() {
            ev.apply(c, now);
        }
        self.flush_buyer(i);
    }

    fn observe(&mut self) {
        let now = self.now;
        let ids: Vec<ChannelId> = self.seller.channel_ids().collect();
        for id in ids {
            if let Some(n) = self.seller.unacked_in_flight(&id) {
                self.obs.max_in_flight = self.obs.max_in_flight.max(n);
            }
            if let Some(best) = self.seller.best_acked_seq(&id) {
                let m = self.obs.acked.entry(id).or_default();
                if m.last_key_value().is_none_or(|(k, _)| *k < best) {
                    m.insert(best, now);
                }
            }
        }
    }

    // ----- checks ----------------------------------------------------------------------------

    /// Checks the protocol properties on what was observed; `Err` describes the first violation.
    pub fn check(&self) -> Result<(), String> {
        // Exactly-once, in-order delivery of the right plaintexts.
        for (i, b) in self.buyers.iter().enumerate() {
            let Some(c) = &b.chan else { continue };
            let start = c.offer().startSeq;
            for (k, (seq, pt)) in self.obs.outbox[i].iter().enumerate() {
                if *seq != start + k as u64 {
                    return Err(format!(
                        "buyer {i}: delivery #{k} is seq {seq}, expected {}",
                        start + k as u64
                    ));
                }
                if self.obs.published.get(*seq as usize) != Some(pt) {
                    return Err(format!("buyer {i}: wrong plaintext for seq {seq}"));
                }
            }
        }
        if self.obs.max_in_flight > self.cfg.terms.window {
            return Err(format!(
                "{} unacked in flight > W = {}",
                self.obs.max_in_flight, self.cfg.terms.window
            ));
        }
        if self.obs.wrong_cost_acks > 0 {
            return Err(format!(
                "{} acks with a wrong cost",
                self.obs.wrong_cost_acks
            ));
        }
        if !self.obs.equivocations.is_empty() {
            return Err(format!("equivocation on seqs {:?}", self.obs.equivocations));
        }
        if self.obs.upheld > 0 {
            return Err(format!(
                "{} accusations upheld against an honest seller",
                self.obs.upheld
            ));
        }
        if self.obs.misbehaviour_claims > 0 {
            return Err("an honest party claimed misbehaviour".into());
        }
        if self.obs.undecryptable > 0 {
            return Err(format!("{} undecryptable messages", self.obs.undecryptable));
        }
        // Every message sent on a channel is acked or posted by max(timestamp, first send) + T_ack.
        let t_ack = u64::from(self.cfg.terms.t_ack_secs) * 1000;
        for ((id, seq), sent) in &self.obs.first_sent {
            let ts = self
                .obs
                .timestamps
                .get(*seq as usize)
                .copied()
                .unwrap_or(*sent);
            let deadline = ts.max(*sent) + t_ack;
            let acked = self
                .obs
                .acked
                .get(id)
                .and_then(|m| m.range(*seq..).next().map(|(_, t)| *t));
            let posted = self.obs.posted_at.get(seq).copied();
            let met = acked.is_some_and(|t| t <= deadline) || posted.is_some_and(|t| t <= deadline);
            if !met && self.now > deadline {
                return Err(format!(
                    "channel {id}: seq {seq} neither acked ({acked:?}) nor posted ({posted:?}) by {deadline}"
                ));
            }
        }
        Ok(())
    }

    /// Whether the seller holds an ack covering `seq` on buyer `i`'s channel.
    pub fn acked(&self, i: usize, seq: u64) -> bool {
        self.channel_of(i)
            .and_then(|c| self.seller.best_acked_seq(&c))
            .is_some_and(|s| s >= seq)
    }

    /// Posted seqs (mined).
    pub fn posted(&self) -> BTreeSet<u64> {
        self.posted.keys().copied().collect()
    }
}

fn persisted_best(store: &[SellerRecord], c: ChannelId) -> Option<u64> {
    store
        .iter()
        .filter_map(|r| match r {
            SellerRecord::Ack { ack, .. } if ChannelId(ack.channelId) == c => Some(ack.seq),
            _ => None,
        })
        .max()
}
