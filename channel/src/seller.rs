//! The seller's state machine: one [`Stream`] per (seller, stream number), with one channel per
//! buyer.
//!
//! A `Stream` signs and seals each published payload **once** and shares the encoded `Data` frame
//! across all its channels. Per channel it keeps a go-back-N sender with window `W`, the best ack
//! seen, the on-chain posting deadlines, claims and the close/accusation logic.
//!
//! Drive it with events (`publish`, `handle_frame`, `link_up`, chain `on_*` notifications,
//! `handle_timeout`) and an injected clock; drain the resulting [`SellerAction`]s with
//! [`Stream::poll_action`] and carry them out **in order**, writing each
//! [`SellerAction::Persist`] durably before carrying out any later action.
//!
//! Acks are checked cheaply on receipt (channel, seq, digest of that seq, cost) and their
//! signatures verified lazily: only the newest pending ack, and only when it matters (the window
//! is full, a posting deadline is near, a claim is due, or `ack_verify_interval_ms` passed).
//! Cumulative acks make the older ones worthless, so a buyer acking often costs one cheap check
//! per ack, not one signature verification.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use alloy_primitives::{Address, B256, U256, keccak256};

use crate::records::{MemberRecord, SellerRecord};
use crate::seal::{SealError, Sealer, envelope_info};
use crate::sign::{Keypair, PublicKey, SigError, Signature};
use crate::types::{Ack, ChannelId, Domain, Message, Offer, Stop, StreamId, UnixMs, ack_cost};
use crate::wire::{Data, Frame, FrameBytes, WireError};

/// The terms a stream offers to its buyers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Price `P` in wei per message.
    pub price: U256,
    /// Window `W`: most unacked messages in flight per channel.
    pub window: u64,
    /// `T_ack` in seconds.
    pub t_ack_secs: u32,
    /// `T_closure` in seconds.
    pub t_closure_secs: u32,
    /// How long an offer can be used to open a channel, in seconds.
    pub offer_validity_secs: u64,
}

impl Default for Terms {
    fn default() -> Self {
        Self {
            price: U256::from(1_000_000_000u64),
            window: 256,
            t_ack_secs: 60,
            t_closure_secs: 3600,
            offer_validity_secs: 600,
        }
    }
}

/// Seller-side engine settings (policy, not protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellerConfig {
    /// `Δ_on-chain` in ms: time a transaction needs to be mined. Messages unacked at
    /// `T_off-ack = T_ack - Δ` after their first transmission are posted on-chain.
    pub delta_onchain_ms: u64,
    /// Go-back-N retransmission timeout (no ack progress for this long: resend from the first
    /// unacked message).
    pub retransmit_timeout_ms: u64,
    /// Verify the newest pending ack at least this long after it arrived.
    pub ack_verify_interval_ms: u64,
    /// Claim when the best ack's cost exceeds what was claimed by at least this much (wei).
    /// `None`: claim only when the channel closes.
    pub claim_threshold: Option<U256>,
    /// Stop a channel whose buyer lags this many messages behind the stream head.
    pub max_backlog: u64,
    /// Margin added to chain deadlines (ms), for clock skew with `block.timestamp`.
    pub chain_grace_ms: u64,
}

impl Default for SellerConfig {
    fn default() -> Self {
        Self {
            delta_onchain_ms: 15_000,
            retransmit_timeout_ms: 1_000,
            ack_verify_interval_ms: 250,
            claim_threshold: None,
            max_backlog: 1 << 16,
            chain_grace_ms: 2_000,
        }
    }
}

/// A signed, sealed message of the stream, shared by all channels.
#[derive(Debug)]
pub struct SignedMessage {
    /// The message.
    pub message: Message,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// The seller's signature.
    pub sig: Signature,
    /// The sealed payload.
    pub payload: Vec<u8>,
    /// The encoded `Data` frame, ready for every link.
    pub frame: FrameBytes,
}

impl SignedMessage {
    /// Encodes the `Data` frame once (moving the payload through it, no copy).
    fn new(
        message: Message,
        digest: B256,
        sig: Signature,
        payload: Vec<u8>,
    ) -> Result<Self, SellerError> {
        let data = Frame::Data(Data {
            message,
            sig,
            payload,
        });
        let frame = data.encode_shared()?;
        let Frame::Data(Data {
            message, payload, ..
        }) = data
        else {
            return Err(SellerError::UnexpectedFrame);
        };
        Ok(Self {
            message,
            digest,
            sig,
            payload,
            frame,
        })
    }
}

/// An ack with its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAck {
    /// The ack.
    pub ack: Ack,
    /// Buyer's signature.
    pub sig: Signature,
}

/// Informational events (no action required, useful for logs and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SellerEvent {
    /// An ack failed its lazy signature check and was dropped.
    InvalidAck {
        /// Channel.
        channel: ChannelId,
        /// The ack's seq.
        seq: u64,
        /// Why.
        error: SigError,
    },
    /// The channel finished its off-chain exchange (stopped and fully acked/posted). Emitted once
    /// per channel (again after a restart if the channel was not closing yet).
    StopCompleted {
        /// Channel.
        channel: ChannelId,
    },
    /// An accusation cannot be answered (the message is no longer held).
    CannotDefend {
        /// Channel.
        channel: ChannelId,
        /// Missing seq.
        missing: u64,
    },
    /// The channel is forgotten (settled).
    ChannelClosed {
        /// Channel.
        channel: ChannelId,
    },
}

/// What the caller must do, in order.
#[derive(Clone, Debug)]
pub enum SellerAction {
    /// Write this record durably before carrying out any later action.
    Persist(SellerRecord),
    /// Write this encoded frame to the link with `peer`. Dropped silently if the link is down.
    Send {
        /// The buyer broker.
        peer: Address,
        /// Encoded frame (length prefix included).
        frame: FrameBytes,
    },
    /// Call `judge.post(message, payload, sig)`; report `on_posted` / `on_post_failed`.
    Post(Arc<SignedMessage>),
    /// Call `judge.claim(ack, sig)`; report `on_claimed` / `on_claim_failed`.
    Claim {
        /// Channel.
        channel: ChannelId,
        /// The buyer's ack.
        ack: Ack,
        /// Its signature.
        sig: Signature,
    },
    /// Call `judge.claimPosted(channel, upto)`: every seq after the claimed ack up to `upto` has
    /// a confirmed posting (see [`Stream::on_posted`]). One per channel, sent when the posted run
    /// cannot grow any more or at the last call before `T_closure` ends.
    ClaimPosted {
        /// Channel.
        channel: ChannelId,
        /// Highest posted seq claimed.
        upto: u64,
    },
    /// Call `judge.proveWrongCost(ack, sig)`: the buyer signed an ack with a wrong cost.
    ProveWrongCost {
        /// Channel.
        channel: ChannelId,
        /// The wrong ack.
        ack: Ack,
        /// Buyer's valid signature of it.
        sig: Signature,
    },
    /// Call `judge.defend(channel)` (the missing message is posted, possibly by the preceding
    /// `Post` action: submit in order from one account).
    Defend {
        /// Channel.
        channel: ChannelId,
    },
    /// Call `judge.defendWithAck(ack, sig)`.
    DefendWithAck {
        /// Channel.
        channel: ChannelId,
        /// Ack covering the missing seq.
        ack: Ack,
        /// Its signature.
        sig: Signature,
    },
    /// Call `judge.requestClose(channel)`.
    RequestClose {
        /// Channel.
        channel: ChannelId,
    },
    /// Call `judge.settle(channel)` (after `T_closure`). The seller settles only channels in
    /// which it recorded a posted claim (paid at `settle`); the buyer settles the others (see
    /// `BuyerConfig::settle_wait_ms`), so only one side sends it.
    Settle {
        /// Channel.
        channel: ChannelId,
    },
    /// Informational.
    Event(SellerEvent),
}

/// Seller errors. An error leaves the stream unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SellerError {
    /// No such channel (or pending offer).
    #[error("unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// The frame came from a peer that is not the channel's buyer.
    #[error("peer {peer} is not the buyer of channel {channel}")]
    NotBuyer {
        /// Channel.
        channel: ChannelId,
        /// Sender.
        peer: Address,
    },
    /// The ack is for a seq the stream never published.
    #[error("ack for unpublished seq {0}")]
    AckBeyondHead(u64),
    /// The ack's digest is not the digest of that seq.
    #[error("ack digest does not match message {0}")]
    WrongDigest(u64),
    /// Bad signature.
    #[error("bad signature: {0}")]
    Signature(#[from] SigError),
    /// A frame a seller does not expect.
    #[error("unexpected frame")]
    UnexpectedFrame,
    /// Sealing failed.
    #[error("sealing failed: {0}")]
    Seal(#[from] SealError),
    /// Encoding failed.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// Sequence numbers exhausted.
    #[error("stream exhausted")]
    Exhausted,
    /// The offer's terms overflow (price * window) or are invalid.
    #[error("invalid terms: {0}")]
    InvalidTerms(&'static str),
    /// Restore failed.
    #[error("restore: {0}")]
    Restore(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// Stopped off-chain: nothing sent at or after `stop_end`.
    Stopping {
        by_seller: bool,
    },
    /// `requestClose` happened on-chain.
    Closing {
        at_secs: u64,
    },
    Settled,
}

/// A posting of one message, requested or confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Posting {
    confirmed: bool,
    timestamp: UnixMs,
}

/// A pending offer (not opened yet).
#[derive(Clone, Debug)]
struct PendingOffer {
    offer: Offer,
    sig: Signature,
    buyer_key: PublicKey,
}

/// A channel's stop, as persisted.
#[derive(Debug, Clone)]
struct StopRec {
    stop: Stop,
    sig: Signature,
    by_seller: bool,
    /// What the channel is owed from then on (see `Channel::owed_end`).
    owed_end: u64,
}

#[derive(Debug, Clone)]
struct Channel {
    id: ChannelId,
    offer: Offer,
    offer_sig: Signature,
    stop_rec: Option<StopRec>,
    buyer: Address,
    buyer_key: PublicKey,
    start: u64,
    window: u64,
    price: U256,
    t_ack_ms: u64,
    t_closure_ms: u64,
    deposit: U256,
    phase: Phase,
    /// Exclusive end of what may be sent (from a Stop / close).
    stop_end: Option<u64>,
    /// Exclusive end of what this channel is owed, hence of what may be posted for it or claimed
    /// with `claimPosted`: at a stop (either side's), everything sent by then (the buyer may hold
    /// it, whatever its `Stop` says); at the close, what was stamped before it. Only ever lowered.
    owed_end: Option<u64>,
    /// `StopCompleted` was emitted (once per channel and engine run).
    stop_done: bool,
    /// The last call for `claimPosted` while closing (see `claim_posted_last_call`); `None` once
    /// handled.
    claim_posted_call: Option<UnixMs>,
    verified: Option<SignedAck>,
    pending: Option<(SignedAck, UnixMs)>,
    /// `R` as confirmed by the judge.
    claimed: U256,
    /// Highest ack cost submitted in a claim.
    claim_submitted: U256,
    posted_claim: Option<u64>,
    link_up: bool,
    next_send: u64,
    /// First transmission time of seqs `[sent_base, sent_base + sent_at.len())`.
    sent_base: u64,
    sent_at: VecDeque<UnixMs>,
    rto_at: Option<UnixMs>,
    settle_at: Option<UnixMs>,
    accused: Option<u64>,
}

impl Channel {
    fn base_v(&self) -> u64 {
        self.verified
            .as_ref()
            .map_or(self.start, |a| a.ack.seq.saturating_add(1))
    }
    fn base_hint(&self) -> u64 {
        let p = self
            .pending
            .as_ref()
            .map_or(self.start, |(a, _)| a.ack.seq.saturating_add(1));
        self.base_v().max(p)
    }
    fn best_seq(&self) -> Option<u64> {
        let v = self.verified.as_ref().map(|a| a.ack.seq);
        let p = self.pending.as_ref().map(|(a, _)| a.ack.seq);
        v.max(p)
    }
    fn high_sent(&self) -> u64 {
        self.sent_base + self.sent_at.len() as u64
    }
    fn t_off_ack(&self, delta: u64) -> u64 {
        self.t_ack_ms.saturating_sub(delta)
    }
    fn sending(&self) -> bool {
        matches!(
            self.phase,
            Phase::Open | Phase::Stopping { .. } | Phase::Closing { .. }
        )
    }
}

/// One channel of a stream, as operators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: ChannelId,
    /// Its buyer.
    pub buyer: Address,
    /// First seq of the channel.
    pub start_seq: u64,
    /// Messages sent at least once.
    pub sent: u64,
    /// Messages covered by the best ack received (verified or not yet).
    pub acked: u64,
    /// Cost of the best verified ack.
    pub acked_cost: U256,
    /// `R` as confirmed by the judge.
    pub claimed: U256,
    /// The buyer's deposit when the channel opened.
    pub deposit: U256,
    /// `open`, `stopping`, `closing` or `settled`.
    pub phase: &'static str,
    /// Whether the buyer's link is up.
    pub link_up: bool,
}

/// Counters for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SellerStats {
    /// Messages signed.
    pub signed: u64,
    /// Ack signatures verified.
    pub acks_verified: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Data frames queued (first sends and retransmissions).
    pub frames_sent: u64,
    /// Retransmitted data frames.
    pub retransmits: u64,
    /// Post actions emitted.
    pub posts: u64,
}

/// The seller's engine for one stream.
#[derive(Debug, Clone)]
pub struct Stream {
    domain: Domain,
    key: Keypair,
    id: StreamId,
    terms: Terms,
    cfg: SellerConfig,
    now: UnixMs,
    next_seq: u64,
    last_digest: B256,
    last_ts: UnixMs,
    log: VecDeque<Arc<SignedMessage>>,
    log_base: u64,
    /// seq -> posting state.
    posts: BTreeMap<u64, Posting>,
    channels: BTreeMap<ChannelId, Channel>,
    offers: BTreeMap<ChannelId, PendingOffer>,
    offer_nonce: u64,
    sealer: Sealer,
    actions: VecDeque<SellerAction>,
    stats: SellerStats,
}

impl Stream {
    /// A new stream `id` (whose seller must be `key`'s address), starting at seq 0.
    pub fn new(
        domain: Domain,
        key: Keypair,
        id: StreamId,
        terms: Terms,
        cfg: SellerConfig,
    ) -> Result<Self, SellerError> {
        if id.seller() != key.address() {
            return Err(SellerError::InvalidTerms(
                "stream id does not belong to this key",
            ));
        }
        if terms.window == 0
            || terms.price.is_zero()
            || terms.t_ack_secs == 0
            || terms.t_closure_secs == 0
        {
            return Err(SellerError::InvalidTerms(
                "price, window, tAck and tClosure must be positive",
            ));
        }
        terms
            .price
            .checked_mul(U256::from(terms.window))
            .ok_or(SellerError::InvalidTerms("price * window overflows"))?;
        let sealer = Sealer::new(&key, id);
        Ok(Self {
            domain,
            key,
            id,
            terms,
            cfg,
            now: 0,
            next_seq: 0,
            last_digest: B256::ZERO,
            last_ts: 0,
            log: VecDeque::new(),
            log_base: 0,
            posts: BTreeMap::new(),
            channels: BTreeMap::new(),
            offers: BTreeMap::new(),
            offer_nonce: 0,
            sealer,
            actions: VecDeque::new(),
            stats: SellerStats::default(),
        })
    }

    // ----- accessors -------------------------------------------------------------------------

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }
    /// The seller's address.
    pub fn seller(&self) -> Address {
        self.key.address()
    }
    /// The signing domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    /// Next seq to be published.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Digest of the last published message (zero before the first).
    pub fn last_digest(&self) -> B256 {
        self.last_digest
    }
    /// The terms.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }
    /// Counters.
    pub fn stats(&self) -> SellerStats {
        self.stats
    }
    /// Channels currently known (not settled).
    pub fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.channels.keys().copied()
    }
    /// The best *verified* ack of a channel.
    pub fn verified_ack(&self, channel: &ChannelId) -> Option<&SignedAck> {
        self.channels.get(channel).and_then(|c| c.verified.as_ref())
    }
    /// Highest seq acked on a channel, counting the not-yet-verified pending ack.
    pub fn best_acked_seq(&self, channel: &ChannelId) -> Option<u64> {
        self.channels.get(channel).and_then(Channel::best_seq)
    }
    /// Number of messages of `channel` sent and not covered by a verified ack.
    pub fn unacked_in_flight(&self, channel: &ChannelId) -> Option<u64> {
        self.channels
            .get(channel)
            .map(|c| c.high_sent().saturating_sub(c.base_v()))
    }
    /// A published message still held in memory.
    pub fn message(&self, seq: u64) -> Option<&Arc<SignedMessage>> {
        let i = usize::try_from(seq.checked_sub(self.log_base)?).ok()?;
        self.log.get(i)
    }
    /// Whether `seq` is known to be posted on-chain (`Some(true)`: confirmed; `Some(false)`:
    /// requested).
    pub fn posted(&self, seq: u64) -> Option<bool> {
        self.posts.get(&seq).map(|p| p.confirmed)
    }
    /// A human-readable dump of a channel's state (diagnostics).
    pub fn describe_channel(&self, channel: &ChannelId) -> Option<String> {
        self.channels.get(channel).map(|c| {
            format!(
                "phase {:?} start {} base_v {} base_hint {} next_send {} high_sent {} sent_base {} stop_end {:?} owed_end {:?} link_up {} rto_at {:?} pending {:?} post_deadline {:?}",
                c.phase, c.start, c.base_v(), c.base_hint(), c.next_send, c.high_sent(), c.sent_base, c.stop_end, c.owed_end, c.link_up, c.rto_at,
                c.pending.as_ref().map(|(p, t)| (p.ack.seq, *t)), self.post_deadline(c)
            )
        })
    }

    /// The current sealing epoch.
    pub fn epoch(&self) -> u64 {
        self.sealer.epoch()
    }

    /// Whether any buyer has an open channel or a pending offer: publishing to a stream without
    /// one signs messages nobody can buy (a new channel starts at the next seq).
    pub fn has_audience(&self) -> bool {
        !self.channels.is_empty() || !self.offers.is_empty()
    }

    /// Whether `channel` is one of this stream's channels or pending offers.
    pub fn knows_channel(&self, channel: &ChannelId) -> bool {
        self.channels.contains_key(channel) || self.offers.contains_key(channel)
    }

    /// A status line per channel, for operators.
    pub fn channel_summaries(&self) -> Vec<ChannelSummary> {
        self.channels
            .values()
            .map(|c| ChannelSummary {
                channel: c.id,
                buyer: c.buyer,
                start_seq: c.start,
                sent: c.high_sent().saturating_sub(c.start),
                acked: c.best_seq().map_or(0, |s| s.saturating_add(1).saturating_sub(c.start)),
                acked_cost: c.verified.as_ref().map_or(U256::ZERO, |v| v.ack.cost),
                claimed: c.claimed,
                deposit: c.deposit,
                phase: match c.phase {
                    Phase::Open => "open",
                    Phase::Stopping { .. } => "stopping",
                    Phase::Closing { .. } => "closing",
                    Phase::Settled => "settled",
                },
                link_up: c.link_up,
            })
            .collect()
    }

    // ----- action queue ----------------------------------------------------------------------

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<SellerAction> {
        self.actions.pop_front()
    }

    /// Drains all pending actions, in order.
    pub fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, SellerAction> {
        self.actions.drain(..)
    }

    /// Number of queued actions.
    pub fn pending_actions(&self) -> usize {
        self.actions.len()
    }

    fn tick(&mut self, now: UnixMs) {
        self.now = self.now.max(now);
    }

    // ----- offers and channels ----------------------------------------------------------------

    /// Makes a signed offer for `buyer` (whose public key comes from the peer handshake) and
    /// queues `Persist(Offer)` then `Send(Offer frame)`. The channel starts at the next seq, and
    /// the next message starts a sealing epoch that includes the buyer.
    pub fn make_offer(
        &mut self,
        now: UnixMs,
        buyer_key: PublicKey,
        topic: &str,
    ) -> Result<(Offer, Signature), SellerError> {
        self.tick(now);
        let offer = Offer {
            streamId: self.id.0,
            seller: self.key.address(),
            buyer: buyer_key.address(),
            price: self.terms.price,
            window: self.terms.window,
            startSeq: self.next_seq,
            tAck: self.terms.t_ack_secs,
            tClosure: self.terms.t_closure_secs,
            validUntil: (self.now / 1000).saturating_add(self.terms.offer_validity_secs),
            nonce: U256::from(self.offer_nonce),
        };
        let digest = self.domain.digest(&offer);
        let sig = self.key.sign(&digest);
        let frame = Frame::Offer {
            offer: offer.clone(),
            sig,
            topic: topic.to_owned(),
        }
        .encode_shared()?;
        self.offer_nonce = self.offer_nonce.saturating_add(1);
        let id = ChannelId::from_offer_digest(digest);
        self.offers.insert(
            id,
            PendingOffer {
                offer: offer.clone(),
                sig,
                buyer_key,
            },
        );
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Offer {
                offer: offer.clone(),
                sig,
                buyer_key: buyer_key.to_sec1_compressed().to_vec(),
            }));
        self.actions.push_back(SellerAction::Send {
            peer: buyer_key.address(),
            frame,
        });
        self.update_members();
        // The channel starts at the next message: it must carry the buyer's key grant.
        self.sealer.request_grants();
        Ok((offer, sig))
    }

    /// The channel of one of our offers was opened on-chain (the caller checked status `Open`,
    /// terms and `deposit`): start streaming to the buyer from the offer's `startSeq`.
    pub fn open_channel(
        &mut self,
        now: UnixMs,
        channel: ChannelId,
        deposit: U256,
    ) -> Result<(), SellerError> {
        self.tick(now);
        if self.channels.contains_key(&channel) {
            return Ok(());
        }
        let po = self
            .offers
            .get(&channel)
            .ok_or(SellerError::UnknownChannel(channel))?
            .clone();
        self.offers.remove(&channel);
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Opened {
                channel_id: channel,
                deposit,
            }));
        let ch = Self::new_channel(channel, po, deposit);
        self.channels.insert(channel, ch);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.link_up = true;
        }
        self.update_members();
        self.pump(channel);
        Ok(())
    }

    fn new_channel(id: ChannelId, po: PendingOffer, deposit: U256) -> Channel {
        let o = &po.offer;
        Channel {
            id,
            buyer: o.buyer,
            buyer_key: po.buyer_key,
            start: o.startSeq,
            window: o.window.max(1),
            price: o.price,
            t_ack_ms: u64::from(o.tAck) * 1000,
            t_closure_ms: u64::from(o.tClosure) * 1000,
            deposit,
            phase: Phase::Open,
            stop_end: None,
            owed_end: None,
            stop_done: false,
            claim_posted_call: None,
            verified: None,
            pending: None,
            claimed: U256::ZERO,
            claim_submitted: U256::ZERO,
            posted_claim: None,
            link_up: false,
            next_send: o.startSeq,
            sent_base: o.startSeq,
            sent_at: VecDeque::new(),
            rto_at: None,
            settle_at: None,
            accused: None,
            offer_sig: po.sig,
            stop_rec: None,
            offer: po.offer,
        }
    }

    /// The buyer's link came up (after the handshake): resend everything unacked.
    pub fn link_up(&mut self, now: UnixMs, peer: Address) {
        self.tick(now);
        let ids: Vec<ChannelId> = self
            .channels
            .values()
            .filter(|c| c.buyer == peer)
            .map(|c| c.id)
            .collect();
        for id in ids {
            if let Some(c) = self.channels.get_mut(&id) {
                c.link_up = true;
                c.next_send = c.base_hint();
                c.rto_at = None;
            }
            self.pump(id);
        }
    }

    /// The buyer's link went down: stop sending to it (deadlines keep running).
    pub fn link_down(&mut self, now: UnixMs, peer: Address) {
        self.tick(now);
        for c in self.channels.values_mut().filter(|c| c.buyer == peer) {
            c.link_up = false;
            c.rto_at = None;
        }
    }

    /// Stops a channel off-chain: nothing is sent after the last message already sent; once it
    /// is acked (or posted), the best ack is claimed and a close is requested.
    pub fn stop_channel(&mut self, now: UnixMs, channel: ChannelId) -> Result<(), SellerError> {
        self.tick(now);
        let c = self
            .channels
            .get(&channel)
            .ok_or(SellerError::UnknownChannel(channel))?;
        if c.phase != Phase::Open {
            return Ok(());
        }
        let end = c.high_sent().max(c.base_hint());
        let stop = Stop {
            channelId: channel.0,
            seq: end.saturating_sub(1),
            timestamp: self.now,
        };
        let sig = self.key.sign(&self.domain.digest(&stop));
        let frame = Frame::Stop {
            stop: stop.clone(),
            sig,
        }
        .encode_shared()?;
        let peer = c.buyer;
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Stop {
                stop: stop.clone(),
                sig,
                by_seller: true,
                owed_end: end,
            }));
        self.actions.push_back(SellerAction::Send { peer, frame });
        if let Some(c) = self.channels.get_mut(&channel) {
            c.stop_rec = Some(StopRec {
                stop,
                sig,
                by_seller: true,
                owed_end: end,
            });
            // Everything below `end` was sent: it is owed (acked or posted).
            cap_owed(c, end);
            c.phase = Phase::Stopping { by_seller: true };
        }
        self.update_members();
        self.check_stop_done(channel);
        Ok(())
    }

    // ----- publishing ------------------------------------------------------------------------

    /// Publishes `plaintext` as the next message: seals it once, signs it once, queues
    /// `Persist(Message)` (and `Persist(Epoch)` when a sealing epoch starts) and then one `Send`
    /// per channel that is caught up and has window room. Returns the new message's seq.
    pub fn publish(&mut self, now: UnixMs, plaintext: &[u8]) -> Result<u64, SellerError> {
        self.tick(now);
        let seq = self.next_seq;
        let next = seq.checked_add(1).ok_or(SellerError::Exhausted)?;
        let rotating = self.sealer.rotation_pending();
        let payload = self.sealer.seal(seq, plaintext)?;
        if rotating {
            let members = self
                .sealer
                .members()
                .iter()
                .map(|(a, k)| MemberRecord {
                    address: *a,
                    key: k.to_sec1_compressed().to_vec(),
                })
                .collect();
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Epoch {
                    epoch: self.sealer.epoch(),
                    members,
                }));
        }
        let ts = self.now.max(self.last_ts);
        let message = Message {
            streamId: self.id.0,
            seq,
            timestamp: ts,
            payloadHash: keccak256(&payload),
            prev: self.last_digest,
        };
        let digest = self.domain.digest(&message);
        let sig = self.key.sign(&digest);
        self.stats.signed += 1;
        let signed = SignedMessage::new(message, digest, sig, payload)?;
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Message {
                message: signed.message.clone(),
                sig,
                payload: signed.payload.clone(),
            }));
        self.push_log(Arc::new(signed));
        self.next_seq = next;
        self.last_digest = digest;
        self.last_ts = ts;
        // One pass over the channels without lookups; only a window blocked behind an
        // unverified ack needs the slow path.
        let (head, now, rto) = (self.next_seq, self.now, self.cfg.retransmit_timeout_ms);
        let mut blocked = Vec::new();
        for c in self.channels.values_mut() {
            if send_window(
                c,
                &self.log,
                self.log_base,
                head,
                now,
                &mut self.actions,
                &mut self.stats,
            ) {
                blocked.push(c.id);
            } else {
                arm_rto(c, now, rto);
            }
        }
        for id in blocked {
            self.pump(id);
        }
        if seq.is_multiple_of(64) {
            self.prune();
        }
        Ok(seq)
    }

    fn push_log(&mut self, m: Arc<SignedMessage>) {
        if self.log.is_empty() {
            self.log_base = m.message.seq;
        }
        self.log.push_back(m);
    }

    /// Sends what the window and the link allow on `id`, then keeps the retransmission timer
    /// armed while anything sent is unacked.
    fn pump(&mut self, id: ChannelId) {
        self.pump_sends(id);
        let (now, rto) = (self.now, self.cfg.retransmit_timeout_ms);
        if let Some(c) = self.channels.get_mut(&id) {
            arm_rto(c, now, rto);
        }
    }

    fn pump_sends(&mut self, id: ChannelId) {
        loop {
            let (head, now) = (self.next_seq, self.now);
            let Some(c) = self.channels.get_mut(&id) else {
                return;
            };
            let blocked = send_window(
                c,
                &self.log,
                self.log_base,
                head,
                now,
                &mut self.actions,
                &mut self.stats,
            );
            if !blocked {
                return;
            }
            // The window is full but an unverified ack may free it.
            self.verify_pending(id);
            if self
                .channels
                .get(&id)
                .is_none_or(|c| c.next_send >= c.base_v().saturating_add(c.window))
            {
                return;
            }
        }
    }

    // ----- frames from buyers ----------------------------------------------------------------

    /// Handles a frame received from the authenticated buyer broker `peer` (`Ack`, `Resume`,
    /// `Stop`; `Ping` is answered with `Pong`). On error the stream is unchanged.
    pub fn handle_frame(
        &mut self,
        now: UnixMs,
        peer: Address,
        frame: Frame,
    ) -> Result<(), SellerError> {
        self.tick(now);
        match frame {
            Frame::Ack { ack, sig } => self.on_ack(peer, ack, sig),
            Frame::Resume {
                channel_id,
                next_seq,
            } => self.on_resume(peer, channel_id, next_seq),
            Frame::Stop { stop, sig } => self.on_stop(peer, stop, sig),
            Frame::Ping { nonce } => {
                let frame = Frame::Pong { nonce }.encode_shared()?;
                self.actions.push_back(SellerAction::Send { peer, frame });
                Ok(())
            }
            Frame::Pong { .. } => Ok(()),
            _ => Err(SellerError::UnexpectedFrame),
        }
    }

    fn channel_of(&self, peer: Address, id: ChannelId) -> Result<&Channel, SellerError> {
        let c = self
            .channels
            .get(&id)
            .ok_or(SellerError::UnknownChannel(id))?;
        if c.buyer != peer {
            return Err(SellerError::NotBuyer { channel: id, peer });
        }
        Ok(c)
    }

    fn on_ack(&mut self, peer: Address, ack: Ack, sig: Signature) -> Result<(), SellerError> {
        let id = ChannelId(ack.channelId);
        let c = self.channel_of(peer, id)?;
        if c.phase == Phase::Settled {
            return Ok(());
        }
        let (start, price, buyer_key, best, pending) = (
            c.start,
            c.price,
            c.buyer_key,
            c.best_seq(),
            c.pending.as_ref().map(|(p, _)| p.clone()),
        );
        self.stats.acks_received += 1;
        if ack_cost(start, ack.seq, price) != Some(ack.cost) {
            // Provable misbehaviour if the buyer really signed it.
            buyer_key.verify(&self.domain.digest(&ack), &sig)?;
            self.stats.acks_verified += 1;
            self.actions.push_back(SellerAction::ProveWrongCost {
                channel: id,
                ack,
                sig,
            });
            if let Some(c) = self.channels.get_mut(&id) {
                c.phase = Phase::Settled;
            }
            self.update_members();
            return Ok(());
        }
        if ack.seq >= self.next_seq {
            return Err(SellerError::AckBeyondHead(ack.seq));
        }
        match self.message(ack.seq) {
            Some(m) if m.digest != ack.digest => return Err(SellerError::WrongDigest(ack.seq)),
            Some(_) => {}
            // Older than anything held: nothing to learn from it.
            None => return Ok(()),
        }
        if let Some(best) = best {
            if ack.seq < best {
                return Ok(());
            }
            if ack.seq == best {
                match pending {
                    // Two different acks for the same seq: settle which one is genuine now.
                    Some(p) if p.ack.seq == best && (p.ack != ack || p.sig != sig) => {
                        self.verify_pending(id);
                        if self.channels.get(&id).and_then(Channel::best_seq) == Some(best) {
                            return Ok(());
                        }
                    }
                    _ => return Ok(()),
                }
            }
        }
        let now = self.now;
        let rto = self.cfg.retransmit_timeout_ms;
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Ack {
                ack: ack.clone(),
                sig,
            }));
        let Some(c) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        let seq = ack.seq;
        // The verification timer runs from the oldest unverified ack, so a busy channel's acks
        // still get verified within `ack_verify_interval_ms`.
        let since = c.pending.as_ref().map_or(now, |(_, t)| *t);
        c.pending = Some((SignedAck { ack, sig }, since));
        if c.next_send <= seq {
            c.next_send = seq + 1;
        }
        // Progress: restart the retransmission timer if anything is still in flight.
        c.rto_at = if c.high_sent() > seq + 1 {
            Some(now.saturating_add(rto))
        } else {
            None
        };
        self.after_ack_progress(id);
        Ok(())
    }

    fn on_resume(
        &mut self,
        peer: Address,
        id: ChannelId,
        next_seq: u64,
    ) -> Result<(), SellerError> {
        let head = self.next_seq;
        let now = self.now;
        self.channel_of(peer, id)?;
        let Some(c) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        c.link_up = true;
        // The buyer holds everything below next_seq (maybe from the chain): resend from there,
        // but never count more than W messages in flight.
        let cap = head.min(c.base_v().saturating_add(c.window));
        let from = c.base_hint().max(next_seq.min(cap));
        if c.sent_at.is_empty() && from > c.high_sent() {
            c.sent_base = from;
        }
        while c.high_sent() < from {
            c.sent_at.push_back(now);
        }
        c.next_send = from;
        c.rto_at = None;
        self.pump(id);
        Ok(())
    }

    /// The buyer's signed `Stop`: nothing is sent past what was already sent, and that is still
    /// owed (acked, or posted and claimed), whatever `stop.seq` says: the seller cannot tell what
    /// the buyer received, and SUPRA never leaves a seller unpaid for what it sent. An honest buyer
    /// accepts those messages and pays for what it gets (see `BuyerChannel::stop`).
    fn on_stop(&mut self, peer: Address, stop: Stop, sig: Signature) -> Result<(), SellerError> {
        let id = ChannelId(stop.channelId);
        let c = self.channel_of(peer, id)?;
        c.buyer_key.verify(&self.domain.digest(&stop), &sig)?;
        if c.phase != Phase::Open {
            // A repeat (our answer may be lost), or a stop after ours or after the close: what is
            // owed is already fixed; say it again.
            self.answer_stop(id);
            return Ok(());
        }
        let end = stop
            .seq
            .saturating_add(1)
            .max(c.high_sent())
            .max(c.base_hint())
            .max(c.start);
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Stop {
                stop: stop.clone(),
                sig,
                by_seller: false,
                owed_end: end,
            }));
        if let Some(c) = self.channels.get_mut(&id) {
            c.phase = Phase::Stopping { by_seller: false };
            c.stop_rec = Some(StopRec {
                stop,
                sig,
                by_seller: false,
                owed_end: end,
            });
            cap_owed(c, end);
        }
        self.answer_stop(id);
        self.update_members();
        self.check_stop_done(id);
        Ok(())
    }

    /// Tells a stopping buyer where the channel ends: a seller-signed `Stop` at the last seq it
    /// owes (our own stop's, if we stopped first), so the buyer accepts exactly those.
    fn answer_stop(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Some(r) = &c.stop_rec else { return };
        let (stop, sig) = if r.by_seller {
            (r.stop.clone(), r.sig)
        } else {
            let stop = Stop {
                channelId: id.0,
                seq: r.owed_end.saturating_sub(1),
                timestamp: self.now,
            };
            let sig = self.key.sign(&self.domain.digest(&stop));
            (stop, sig)
        };
        let peer = c.buyer;
        // Encoding a Stop cannot fail (fixed size, far below the frame limit).
        if let Ok(frame) = (Frame::Stop { stop, sig }).encode_shared() {
            self.actions.push_back(SellerAction::Send { peer, frame });
        }
    }

    // ----- ack verification ------------------------------------------------------------------

    /// Verifies the pending ack of `id` (if any) with the buyer's known key.
    fn verify_pending(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get_mut(&id) else {
            return;
        };
        let Some((p, _)) = c.pending.take() else {
            return;
        };
        let digest = self.domain.digest(&p.ack);
        self.stats.acks_verified += 1;
        match c.buyer_key.verify(&digest, &p.sig) {
            Ok(()) => {
                let seq = p.ack.seq;
                if c.verified.as_ref().is_none_or(|v| v.ack.seq < seq) {
                    c.verified = Some(p);
                    // Forget first-send times of acked seqs.
                    let base = seq + 1;
                    while c.sent_base < base && !c.sent_at.is_empty() {
                        c.sent_at.pop_front();
                        c.sent_base += 1;
                    }
                    if c.sent_at.is_empty() {
                        c.sent_base = c.sent_base.max(base);
                    }
                    if c.next_send < base {
                        c.next_send = base;
                    }
                }
            }
            Err(error) => {
                self.actions
                    .push_back(SellerAction::Event(SellerEvent::InvalidAck {
                        channel: id,
                        seq: p.ack.seq,
                        error,
                    }));
                // Fall back to what is verified: retransmit from there.
                c.next_send = c.next_send.min(c.base_v());
            }
        }
    }

    fn after_ack_progress(&mut self, id: ChannelId) {
        self.maybe_claim(id);
        // Closing: the close request already claimed the best ack held then; an ack arriving
        // later (e.g. the buyer's final ack, racing its own requestClose) must be claimed now, or
        // the messages it covers are neither claimed nor posted.
        if self
            .channels
            .get(&id)
            .is_some_and(|c| matches!(c.phase, Phase::Closing { .. }))
        {
            self.verify_pending(id);
            self.claim_best(id);
        }
        self.check_stop_done(id);
        self.pump(id);
    }

    // ----- chain decisions -------------------------------------------------------------------

    fn maybe_claim(&mut self, id: ChannelId) {
        let Some(threshold) = self.cfg.claim_threshold else {
            return;
        };
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let best_cost = c
            .pending
            .as_ref()
            .map(|(p, _)| p.ack.cost)
            .or(c.verified.as_ref().map(|v| v.ack.cost));
        if best_cost.is_some_and(|cost| cost.saturating_sub(c.claim_submitted) >= threshold) {
            self.verify_pending(id);
            self.claim_best(id);
        }
    }

    /// Claims the best verified ack if it is worth more than what was submitted.
    fn claim_best(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get_mut(&id) else {
            return;
        };
        if c.phase == Phase::Settled {
            return;
        }
        if let Some(v) = &c.verified
            && v.ack.cost > c.claim_submitted
            && v.ack.cost > c.claimed
        {
            c.claim_submitted = v.ack.cost;
            let (ack, sig) = (v.ack.clone(), v.sig);
            self.actions.push_back(SellerAction::Claim {
                channel: id,
                ack,
                sig,
            });
        }
    }

    fn check_stop_done(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Phase::Stopping { by_seller } = c.phase else {
            return;
        };
        if c.stop_done {
            // Done and reported; a better ack that arrives now is still worth claiming.
            self.verify_pending(id);
            self.claim_best(id);
            return;
        }
        let Some(end) = c.stop_end else { return };
        if c.base_hint() < end {
            let all_posted = (c.base_hint()..end).all(|s| self.posts.contains_key(&s));
            if !all_posted {
                return;
            }
        }
        self.verify_pending(id);
        self.claim_best(id);
        self.actions
            .push_back(SellerAction::Event(SellerEvent::StopCompleted {
                channel: id,
            }));
        if by_seller {
            self.actions
                .push_back(SellerAction::RequestClose { channel: id });
        }
        if let Some(c) = self.channels.get_mut(&id) {
            // Done off-chain; the channel waits for the chain's close.
            c.stop_done = true;
            c.phase = Phase::Stopping { by_seller: false };
            c.stop_end = Some(c.base_hint().min(end));
            c.link_up = c.link_up && c.base_hint() < end;
        }
    }

    /// Posting deadline of the first unposted, unacked, sent message of `c`.
    fn post_deadline(&self, c: &Channel) -> Option<(u64, UnixMs)> {
        if !c.sending() {
            return None;
        }
        let mut s = c.base_v().max(c.sent_base);
        // Nothing the buyer refuses (past its Stop) or that cannot be claimed (stamped after the
        // close) is posted for this channel.
        let high = c.high_sent().min(c.owed_end.unwrap_or(u64::MAX));
        while s < high {
            if !self.posts.contains_key(&s) {
                let i = usize::try_from(s - c.sent_base).ok()?;
                let first = *c.sent_at.get(i)?;
                let ts = self.message(s).map_or(first, |m| m.message.timestamp);
                let mut deadline = ts
                    .max(first)
                    .saturating_add(c.t_off_ack(self.cfg.delta_onchain_ms));
                if let Phase::Closing { at_secs } = c.phase {
                    // Anyone may settle at close + T_closure: what is still unacked must be
                    // posted, and the posting claimed (two transactions), before then.
                    let last_call = at_secs
                        .saturating_mul(1000)
                        .saturating_add(c.t_closure_ms)
                        .saturating_sub(
                            self.cfg
                                .delta_onchain_ms
                                .saturating_mul(2)
                                .saturating_add(self.cfg.chain_grace_ms),
                        );
                    deadline = deadline.min(last_call);
                }
                return Some((s, deadline));
            }
            s += 1;
        }
        None
    }

    fn post(&mut self, seq: u64) {
        if self.posts.contains_key(&seq) {
            return;
        }
        if let Some(m) = self.message(seq).cloned() {
            self.posts.insert(
                seq,
                Posting {
                    confirmed: false,
                    timestamp: m.message.timestamp,
                },
            );
            self.stats.posts += 1;
            self.actions.push_back(SellerAction::Post(m));
        }
    }

    /// Handles every timer due at `now`: ack verification, retransmission, on-chain posting,
    /// claims, stop completion, settlement, offer expiry.
    pub fn handle_timeout(&mut self, now: UnixMs) {
        self.tick(now);
        let now = self.now;
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            // Lazy ack verification.
            if self
                .channels
                .get(&id)
                .and_then(|c| c.pending.as_ref())
                .is_some_and(|(_, at)| now >= at.saturating_add(self.cfg.ack_verify_interval_ms))
            {
                self.verify_pending(id);
                self.maybe_claim(id);
                self.check_stop_done(id);
            }
            // Postings.
            while let Some((seq, deadline)) =
                self.channels.get(&id).and_then(|c| self.post_deadline(c))
            {
                if deadline > now {
                    break;
                }
                if self
                    .channels
                    .get(&id)
                    .and_then(|c| c.pending.as_ref())
                    .is_some_and(|(p, _)| p.ack.seq >= seq)
                {
                    self.verify_pending(id);
                    continue;
                }
                self.post(seq);
            }
            self.check_stop_done(id);
            // Retransmission: go back to the first unacked message.
            if let Some(c) = self.channels.get_mut(&id)
                && let Some(at) = c.rto_at
                && at <= now
            {
                c.rto_at = None;
                if c.link_up && c.base_hint() < c.high_sent() {
                    c.next_send = c.base_hint();
                }
            }
            self.pump(id);
            // Backlog.
            if let Some(c) = self.channels.get(&id)
                && c.phase == Phase::Open
                && self.next_seq.saturating_sub(c.base_v()) > self.cfg.max_backlog
            {
                let _ = self.stop_channel(now, id);
            }
            // The last call for a posted claim.
            if let Some(c) = self.channels.get_mut(&id)
                && c.claim_posted_call.is_some_and(|t| t <= now)
            {
                c.claim_posted_call = None;
                self.verify_pending(id);
                self.claim_best(id);
                self.maybe_claim_posted(id, true);
            }
            // Settlement of a recorded posted claim.
            if let Some(c) = self.channels.get_mut(&id)
                && let Some(at) = c.settle_at
                && at <= now
            {
                c.settle_at = None;
                self.actions.push_back(SellerAction::Settle { channel: id });
            }
        }
        // Offer expiry.
        let expired: Vec<ChannelId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.offer.validUntil.saturating_mul(1000) < now)
            .map(|(k, _)| *k)
            .collect();
        if !expired.is_empty() {
            for k in expired {
                self.offers.remove(&k);
            }
            self.update_members();
        }
        self.prune();
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        let mut t: Option<UnixMs> = None;
        let mut at = |x: UnixMs| t = Some(t.map_or(x, |y| y.min(x)));
        for c in self.channels.values() {
            if let Some((_, since)) = &c.pending {
                at(since.saturating_add(self.cfg.ack_verify_interval_ms));
            }
            if let Some(r) = c.rto_at {
                at(r);
            }
            if let Some((_, d)) = self.post_deadline(c) {
                at(d);
            }
            if let Some(s) = c.settle_at {
                at(s);
            }
            if let Some(s) = c.claim_posted_call {
                at(s);
            }
        }
        for o in self.offers.values() {
            at(o.offer.validUntil.saturating_mul(1000).saturating_add(1));
        }
        t
    }

    // ----- chain notifications ---------------------------------------------------------------

    /// A `Posted` event for `seq` of this stream was seen on-chain.
    pub fn on_posted(&mut self, now: UnixMs, seq: u64) {
        self.tick(now);
        if self.posts.get(&seq).is_some_and(|p| p.confirmed) {
            return;
        }
        let Some(timestamp) = self
            .posts
            .get(&seq)
            .map(|p| p.timestamp)
            .or_else(|| self.message(seq).map(|m| m.message.timestamp))
        else {
            return;
        };
        self.posts.insert(
            seq,
            Posting {
                confirmed: true,
                timestamp,
            },
        );
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::Posted {
                seq,
                timestamp,
            }));
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            self.check_stop_done(id);
            self.maybe_claim_posted(id, false);
        }
    }

    /// A `Post` action failed (the transaction reverted or was dropped): it will be retried.
    pub fn on_post_failed(&mut self, now: UnixMs, seq: u64) {
        self.tick(now);
        if self.posts.get(&seq).is_some_and(|p| !p.confirmed) {
            self.posts.remove(&seq);
        }
        let accused: Vec<ChannelId> = self
            .channels
            .values()
            .filter(|c| c.accused == Some(seq))
            .map(|c| c.id)
            .collect();
        for id in accused {
            self.post(seq);
            self.actions.push_back(SellerAction::Defend { channel: id });
        }
    }

    /// The judge's claimed total `R` for `channel` changed (a `Claimed` event).
    pub fn on_claimed(&mut self, now: UnixMs, channel: ChannelId, total: U256) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel)
            && total > c.claimed
        {
            c.claimed = total;
            c.claim_submitted = c.claim_submitted.max(total);
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Claimed {
                    channel_id: channel,
                    total,
                }));
        }
    }

    /// A `Claim` action failed: the ack may be claimed again.
    pub fn on_claim_failed(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.claim_submitted = c.claimed;
        }
    }

    /// `requestClose` was mined for `channel` at `at_secs` (chain time). The seller claims its
    /// best ack, then the posted messages after it, within `T_closure`.
    pub fn on_close_requested(&mut self, now: UnixMs, channel: ChannelId, at_secs: u64) {
        self.tick(now);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        if matches!(c.phase, Phase::Closing { .. } | Phase::Settled) {
            return;
        }
        c.phase = Phase::Closing { at_secs };
        self.apply_close_end(channel, at_secs);
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::CloseRequested {
                channel_id: channel,
                at_secs,
            }));
        self.update_members();
        self.verify_pending(channel);
        self.claim_best(channel);
        self.maybe_claim_posted(channel, false);
    }

    /// Messages stamped after the close request cannot be claimed: send none of them, post none
    /// of them for this channel. Also arms the last call for `claimPosted`.
    fn apply_close_end(&mut self, id: ChannelId, at_secs: u64) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let close_ms = at_secs.saturating_mul(1000);
        let before_close = |mut end: u64| {
            end = end.min(self.next_seq);
            while end > c.start
                && self
                    .message(end - 1)
                    .is_some_and(|m| m.message.timestamp > close_ms)
            {
                end -= 1;
            }
            end
        };
        // Separately: `stop_end` may already be below what is owed (a completed stop no longer
        // sends what it posted), and what is owed must not shrink to it.
        let send_end = before_close(c.stop_end.unwrap_or(self.next_seq));
        let owed_end = before_close(c.owed_end.unwrap_or(self.next_seq));
        let last_call = self.claim_posted_last_call(c, at_secs);
        if let Some(c) = self.channels.get_mut(&id) {
            cap_owed(c, owed_end);
            c.stop_end = Some(c.stop_end.map_or(send_end, |e| e.min(send_end)));
            c.claim_posted_call = Some(last_call);
        }
    }

    /// The last moment for `claimPosted` after a close at `at_secs`: it must be mined before
    /// anyone can settle (`close + T_closure`). Postings are requested up to `Δ` before it (see
    /// `post_deadline`), so every posting the engine asked for is confirmed by then.
    fn claim_posted_last_call(&self, c: &Channel, at_secs: u64) -> UnixMs {
        at_secs
            .saturating_mul(1000)
            .saturating_add(c.t_closure_ms)
            .saturating_sub(
                self.cfg
                    .delta_onchain_ms
                    .saturating_add(self.cfg.chain_grace_ms),
            )
    }

    /// While closing: one `claimPosted` for the longest run of **confirmed** postings (seen in a
    /// `Posted` event) right after the best verified ack (claimed before it), at most `W` long,
    /// below `owed_end` and stamped before the close. It is sent as soon as the run cannot grow
    /// any more (it reaches `W` or `owed_end`), else at the last call (`final_call`), so postings
    /// that arrive one by one (another account's, or after a restart) make one claim, not one
    /// per event, and a posting that was requested but never mined is never claimed.
    fn maybe_claim_posted(&mut self, id: ChannelId, final_call: bool) {
        let Some(c) = self.channels.get(&id) else {
            return;
        };
        let Phase::Closing { at_secs } = c.phase else {
            return;
        };
        let close_ms = at_secs.saturating_mul(1000);
        let first = c.base_v();
        let limit = first
            .saturating_add(c.window)
            .min(c.owed_end.unwrap_or(u64::MAX));
        let mut upto = None;
        let mut s = first;
        while s < limit
            && self
                .posts
                .get(&s)
                .is_some_and(|p| p.confirmed && p.timestamp <= close_ms)
        {
            upto = Some(s);
            s += 1;
        }
        let Some(upto) = upto else { return };
        if c.posted_claim.is_some_and(|p| p >= upto) {
            return;
        }
        let complete = s >= limit;
        if !complete && !final_call {
            return;
        }
        let settle_at = close_ms
            .saturating_add(c.t_closure_ms)
            .saturating_add(self.cfg.chain_grace_ms);
        if let Some(c) = self.channels.get_mut(&id) {
            c.posted_claim = Some(upto);
            c.settle_at = Some(settle_at);
        }
        self.actions
            .push_back(SellerAction::Persist(SellerRecord::PostedClaim {
                channel_id: id,
                upto,
            }));
        self.actions
            .push_back(SellerAction::ClaimPosted { channel: id, upto });
    }

    /// An accusation against this stream on `channel` for `missing` was opened. Queues the
    /// defence: `DefendWithAck` if an ack covers it, else `Defend` (after a `Post` if needed).
    pub fn on_accused(&mut self, now: UnixMs, channel: ChannelId, missing: u64) {
        self.tick(now);
        if !self.channels.contains_key(&channel) {
            return;
        }
        self.verify_pending(channel);
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        c.accused = Some(missing);
        if let Some(v) = c.verified.as_ref().filter(|v| v.ack.seq >= missing) {
            let (ack, sig) = (v.ack.clone(), v.sig);
            self.actions
                .push_back(SellerAction::DefendWithAck { channel, ack, sig });
            return;
        }
        match self.posts.get(&missing).map(|p| p.confirmed) {
            Some(true) => self.actions.push_back(SellerAction::Defend { channel }),
            _ if self.message(missing).is_some() => {
                self.post(missing);
                self.actions.push_back(SellerAction::Defend { channel });
            }
            _ => self
                .actions
                .push_back(SellerAction::Event(SellerEvent::CannotDefend {
                    channel,
                    missing,
                })),
        }
    }

    /// The accusation on `channel` was defended or resolved.
    pub fn on_accusation_closed(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.accused = None;
        }
    }

    /// `channel` is settled on-chain: forget it.
    pub fn on_settled(&mut self, now: UnixMs, channel: ChannelId) {
        self.tick(now);
        if self.channels.remove(&channel).is_some() {
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Settled {
                    channel_id: channel,
                }));
            self.actions
                .push_back(SellerAction::Event(SellerEvent::ChannelClosed { channel }));
            self.update_members();
            self.prune();
        }
    }

    // ----- membership and retention ----------------------------------------------------------

    fn desired_members(&self) -> BTreeMap<Address, PublicKey> {
        let mut m = BTreeMap::new();
        for o in self.offers.values() {
            m.insert(o.offer.buyer, o.buyer_key);
        }
        for c in self.channels.values().filter(|c| c.phase == Phase::Open) {
            m.insert(c.buyer, c.buyer_key);
        }
        m
    }

    fn update_members(&mut self) {
        let m = self.desired_members();
        self.sealer.set_members(m);
    }

    /// Drops messages no channel or offer can need any more (always keeps the last one).
    fn prune(&mut self) {
        let mut keep_from = self.next_seq.saturating_sub(1);
        for o in self.offers.values() {
            keep_from = keep_from.min(o.offer.startSeq);
        }
        for c in self.channels.values() {
            if c.phase == Phase::Settled {
                continue;
            }
            let mut s = c.base_v();
            while s < keep_from && self.posts.get(&s).is_some_and(|p| p.confirmed) {
                s += 1;
            }
            keep_from = keep_from.min(s);
        }
        while self.log_base < keep_from && self.log.len() > 1 {
            self.log.pop_front();
            self.log_base += 1;
        }
        let mut posts_from = self.log_base;
        for c in self.channels.values() {
            posts_from = posts_from.min(c.base_v());
        }
        self.posts = self.posts.split_off(&posts_from);
    }

    // ----- persistence -----------------------------------------------------------------------

    /// A minimal record list equivalent to everything persisted so far (for compaction):
    /// replaying it with [`restore`](Self::restore) gives the same state.
    pub fn snapshot(&self) -> Vec<SellerRecord> {
        let mut out = Vec::new();
        out.push(SellerRecord::OfferNonce {
            next: self.offer_nonce,
        });
        // The sealer's epoch: before the messages if its grants went out (a message of the
        // epoch follows), after them if they are still due.
        let epoch = SellerRecord::Epoch {
            epoch: self.sealer.epoch(),
            members: self
                .sealer
                .members()
                .iter()
                .map(|(a, k)| MemberRecord {
                    address: *a,
                    key: k.to_sec1_compressed().to_vec(),
                })
                .collect(),
        };
        let due = self.sealer.grants_due();
        if !due {
            out.push(epoch.clone());
        }
        for m in &self.log {
            out.push(SellerRecord::Message {
                message: m.message.clone(),
                sig: m.sig,
                payload: m.payload.clone(),
            });
        }
        if due {
            out.push(epoch);
        }
        for (seq, p) in &self.posts {
            if p.confirmed {
                out.push(SellerRecord::Posted {
                    seq: *seq,
                    timestamp: p.timestamp,
                });
            }
        }
        for o in self.offers.values() {
            out.push(SellerRecord::Offer {
                offer: o.offer.clone(),
                sig: o.sig,
                buyer_key: o.buyer_key.to_sec1_compressed().to_vec(),
            });
        }
        for c in self.channels.values() {
            out.push(SellerRecord::Offer {
                offer: c.offer.clone(),
                sig: c.offer_sig,
                buyer_key: c.buyer_key.to_sec1_compressed().to_vec(),
            });
            out.push(SellerRecord::Opened {
                channel_id: c.id,
                deposit: c.deposit,
            });
            if let Some(v) = &c.verified {
                out.push(SellerRecord::Ack {
                    ack: v.ack.clone(),
                    sig: v.sig,
                });
            }
            if let Some((p, _)) = &c.pending {
                out.push(SellerRecord::Ack {
                    ack: p.ack.clone(),
                    sig: p.sig,
                });
            }
            if !c.claimed.is_zero() {
                out.push(SellerRecord::Claimed {
                    channel_id: c.id,
                    total: c.claimed,
                });
            }
            if let Some(r) = &c.stop_rec {
                out.push(SellerRecord::Stop {
                    stop: r.stop.clone(),
                    sig: r.sig,
                    by_seller: r.by_seller,
                    owed_end: r.owed_end,
                });
            }
            if let Phase::Closing { at_secs } = c.phase {
                out.push(SellerRecord::CloseRequested {
                    channel_id: c.id,
                    at_secs,
                });
            }
            if let Some(upto) = c.posted_claim {
                out.push(SellerRecord::PostedClaim {
                    channel_id: c.id,
                    upto,
                });
            }
        }
        out
    }

    /// Rebuilds a stream from its records (in the order they were persisted, or a
    /// [`snapshot`](Self::snapshot)). The restored stream resumes from the last persisted
    /// message (it never re-signs a seq), keeps every persisted ack (re-verified now), treats
    /// every unacked message as sent at its timestamp, and waits for `link_up` / `Resume` to
    /// retransmit.
    pub fn restore(
        domain: Domain,
        key: Keypair,
        id: StreamId,
        terms: Terms,
        cfg: SellerConfig,
        records: impl IntoIterator<Item = SellerRecord>,
        now: UnixMs,
    ) -> Result<Self, SellerError> {
        let mut s = Self::new(domain, key, id, terms, cfg)?;
        s.now = now;
        let mut epoch: Option<(u64, BTreeMap<Address, PublicKey>, bool)> = None;
        let mut closing = Vec::new();
        for r in records {
            match r {
                SellerRecord::Epoch { epoch: e, members } => {
                    let mut m = BTreeMap::new();
                    for mr in members {
                        let k = PublicKey::from_sec1(&mr.key)
                            .map_err(|e| SellerError::Restore(e.to_string()))?;
                        m.insert(mr.address, k);
                    }
                    epoch = Some((e, m, true));
                }
                SellerRecord::Message {
                    message,
                    sig,
                    payload,
                } => {
                    if message.streamId != id.0 {
                        return Err(SellerError::Restore("message of another stream".into()));
                    }
                    if let (Ok(info), Some((e, _, due))) = (envelope_info(&payload), epoch.as_mut())
                        && info.epoch == *e
                    {
                        *due = false;
                    }
                    if message.seq < s.next_seq && !s.log.is_empty() {
                        continue;
                    }
                    if message.seq != s.next_seq || s.log.is_empty() {
                        s.log.clear();
                        s.log_base = message.seq;
                    }
                    let digest = s.domain.digest(&message);
                    s.next_seq = message.seq.saturating_add(1);
                    s.last_digest = digest;
                    s.last_ts = message.timestamp;
                    s.log
                        .push_back(Arc::new(SignedMessage::new(message, digest, sig, payload)?));
                }
                SellerRecord::Offer {
                    offer,
                    sig,
                    buyer_key,
                } => {
                    let buyer_key = PublicKey::from_sec1(&buyer_key)
                        .map_err(|e| SellerError::Restore(e.to_string()))?;
                    let nonce = u64::try_from(offer.nonce).unwrap_or(u64::MAX);
                    s.offer_nonce = s.offer_nonce.max(nonce.saturating_add(1));
                    let cid = ChannelId::from_offer_digest(s.domain.digest(&offer));
                    if !s.channels.contains_key(&cid) {
                        s.offers.insert(
                            cid,
                            PendingOffer {
                                offer,
                                sig,
                                buyer_key,
                            },
                        );
                    }
                }
                SellerRecord::OfferNonce { next } => s.offer_nonce = s.offer_nonce.max(next),
                SellerRecord::Opened {
                    channel_id,
                    deposit,
                } => {
                    if let Some(po) = s.offers.remove(&channel_id) {
                        s.channels
                            .insert(channel_id, Self::new_channel(channel_id, po, deposit));
                    }
                }
                SellerRecord::Ack { ack, sig } => {
                    let cid = ChannelId(ack.channelId);
                    let digest = s.domain.digest(&ack);
                    if let Some(c) = s.channels.get_mut(&cid)
                        && c.buyer_key.verify(&digest, &sig).is_ok()
                        && c.verified.as_ref().is_none_or(|v| v.ack.seq < ack.seq)
                    {
                        c.verified = Some(SignedAck { ack, sig });
                    }
                }
                SellerRecord::Stop {
                    stop,
                    sig,
                    by_seller,
                    owed_end,
                } => {
                    if let Some(c) = s.channels.get_mut(&ChannelId(stop.channelId))
                        && c.phase == Phase::Open
                    {
                        let end = owed_end.max(stop.seq.saturating_add(1)).max(c.start);
                        c.phase = Phase::Stopping { by_seller };
                        c.stop_rec = Some(StopRec {
                            stop,
                            sig,
                            by_seller,
                            owed_end: end,
                        });
                        c.owed_end = Some(c.owed_end.map_or(end, |e| e.min(end)));
                        c.stop_end = Some(c.stop_end.map_or(end, |e| e.min(end)));
                    }
                }
                SellerRecord::Posted { seq, timestamp } => {
                    s.posts.insert(
                        seq,
                        Posting {
                            confirmed: true,
                            timestamp,
                        },
                    );
                }
                SellerRecord::Claimed { channel_id, total } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.claimed = c.claimed.max(total);
                        c.claim_submitted = c.claimed;
                    }
                }
                SellerRecord::PostedClaim { channel_id, upto } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.posted_claim = Some(upto);
                    }
                }
                SellerRecord::CloseRequested {
                    channel_id,
                    at_secs,
                } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.phase = Phase::Closing { at_secs };
                        closing.push((channel_id, at_secs));
                        if c.posted_claim.is_some() {
                            c.settle_at = Some(
                                at_secs
                                    .saturating_mul(1000)
                                    .saturating_add(c.t_closure_ms)
                                    .saturating_add(s.cfg.chain_grace_ms),
                            );
                        }
                    }
                }
                SellerRecord::Settled { channel_id } => {
                    s.channels.remove(&channel_id);
                }
            }
        }
        if let Some((e, m, due)) = epoch {
            s.sealer = Sealer::restore(&s.key, id, e, m, due);
        }
        for (cid, at_secs) in closing {
            s.apply_close_end(cid, at_secs);
        }
        // A channel or offer starting at the next message needs grants in it.
        if s.offers.values().any(|o| o.offer.startSeq >= s.next_seq)
            || s.channels.values().any(|c| c.start >= s.next_seq)
        {
            s.sealer.request_grants();
        }
        // Sent state is unknown after a crash: consider everything in the window sent at its
        // timestamp (conservative for posting deadlines), resend on the next link_up/Resume.
        let head = s.next_seq;
        let ids: Vec<ChannelId> = s.channels.keys().copied().collect();
        for cid in ids {
            let Some(c) = s.channels.get(&cid) else {
                continue;
            };
            let base = c.base_v();
            let limit = c
                .stop_end
                .map_or(head, |e| e.min(head))
                .min(c.owed_end.unwrap_or(head))
                .min(base.saturating_add(c.window));
            let times: VecDeque<UnixMs> = (base..limit)
                .map(|q| s.message(q).map_or(now, |m| m.message.timestamp))
                .collect();
            if let Some(c) = s.channels.get_mut(&cid) {
                c.sent_base = base;
                c.sent_at = times;
                c.next_send = base;
                c.link_up = false;
            }
        }
        s.update_members();
        Ok(s)
    }
}

/// Lowers what `c` owes (`owed_end`) and sends (`stop_end`) to `end`, and forgets the first-send
/// times of the messages at or after it: they will be neither retransmitted nor posted for `c`.
fn cap_owed(c: &mut Channel, end: u64) {
    c.owed_end = Some(c.owed_end.map_or(end, |e| e.min(end)));
    c.stop_end = Some(c.stop_end.map_or(end, |e| e.min(end)));
    while c.high_sent() > end && !c.sent_at.is_empty() {
        c.sent_at.pop_back();
    }
}

/// Keeps the retransmission timer armed exactly while something sent is unacked.
fn arm_rto(c: &mut Channel, now: UnixMs, rto: u64) {
    if c.link_up && c.sending() && c.base_hint() < c.high_sent() {
        if c.rto_at.is_none() {
            c.rto_at = Some(now.saturating_add(rto));
        }
    } else {
        c.rto_at = None;
    }
}

/// Queues the frames the link and the window allow on `c`. Returns `true` if the window is full
/// while an unverified ack is pending (verifying it may free the window).
fn send_window(
    c: &mut Channel,
    log: &VecDeque<Arc<SignedMessage>>,
    log_base: u64,
    head: u64,
    now: UnixMs,
    actions: &mut VecDeque<SellerAction>,
    stats: &mut SellerStats,
) -> bool {
    if !c.link_up || !c.sending() {
        return false;
    }
    let limit = c.stop_end.map_or(head, |e| e.min(head));
    let window_end = c.base_v().saturating_add(c.window);
    while c.next_send < limit {
        if c.next_send >= window_end {
            return c.pending.is_some();
        }
        let seq = c.next_send;
        let m = seq
            .checked_sub(log_base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| log.get(i));
        let Some(m) = m else {
            // Not held (pruned): nothing sensible to send; skip ahead.
            c.next_send = seq.saturating_add(1);
            continue;
        };
        if seq >= c.high_sent() {
            if c.sent_at.is_empty() {
                c.sent_base = seq;
            }
            c.sent_at.push_back(now);
        } else {
            stats.retransmits += 1;
        }
        c.next_send = seq + 1;
        stats.frames_sent += 1;
        actions.push_back(SellerAction::Send {
            peer: c.buyer,
            frame: m.frame.clone(),
        });
    }
    false
}
