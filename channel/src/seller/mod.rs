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

use crate::proof::{MAX_BATCH, MessageProof};
use crate::records::{MemberRecord, SellerRecord};
use crate::seal::{SealError, Sealer};
use crate::sign::{Keypair, PublicKey, SigError, Signature};
use crate::types::{Ack, ChannelId, Domain, Message, Offer, Stop, StreamId, UnixMs};
use crate::wire::{Data, Frame, FrameBytes, FrameRun, WireError};

/// The terms a stream offers to its buyers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Price `P` per message, in the smallest unit of `token` (wei for ETH).
    pub price: U256,
    /// The currency of the price and the deposit (the offer's `token`): an ERC-20 token, or
    /// `Address::ZERO` for ETH (the default).
    pub token: Address,
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
            token: Address::ZERO,
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
    /// Stop a channel whose buyer lags more than this many messages behind the stream head (from
    /// its last verified ack): what the stream keeps for one slow or vanished buyer.
    pub max_backlog: u64,
    /// Margin added to chain deadlines (ms), for clock skew with `block.timestamp`.
    pub chain_grace_ms: u64,
    /// Close a channel with `closeCooperatively` once the buyer's ack reaches the seller's Stop
    /// (else it always takes the normal close, `T_closure` long).
    pub cooperative_close: bool,
    /// Most messages under one batch signature (at most [`MAX_BATCH`]): bounds the Merkle path a
    /// `post` carries on-chain (`log2(max_batch)` hashes) and what one verification vouches for.
    pub max_batch: u64,
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
            cooperative_close: true,
            max_batch: 64,
        }
    }
}

/// A sealed message of the stream with the proof that the seller signed it, shared by all
/// channels.
#[derive(Debug)]
pub struct SignedMessage {
    /// The message.
    pub message: Message,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// Its batch, the seller's signature of the batch, and its Merkle path.
    pub proof: MessageProof,
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
        proof: MessageProof,
        payload: Vec<u8>,
    ) -> Result<Self, SellerError> {
        let data = Frame::Data(Data {
            message,
            proof,
            payload,
        });
        let frame = data.encode_shared()?;
        let Frame::Data(Data {
            message,
            proof,
            payload,
        }) = data
        else {
            return Err(SellerError::UnexpectedFrame);
        };
        Ok(Self {
            message,
            digest,
            proof,
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
    /// The channel's buyer fell more than `max_backlog` messages behind the stream: the channel
    /// is stopped (a `Stop` follows), as the stream would otherwise keep every message for it.
    BuyerLagging {
        /// Channel.
        channel: ChannelId,
        /// Messages past the buyer's last verified ack.
        behind: u64,
        /// [`SellerConfig::max_backlog`].
        limit: u64,
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
    /// Write these encoded frames, in order, to the link with `peer`. Dropped silently if the
    /// link is down. A run of data frames comes as one action (see [`SellerAction::send`] for one).
    Send {
        /// The buyer broker.
        peer: Address,
        /// Encoded frames (length prefixes included), in sending order.
        frames: FrameRun,
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
    /// Call `judge.submitStop(stop, sig)` with the seller's own signed `Stop`: answers an open
    /// accusation for a seq past it (that seq is not owed), by the accusation's deadline.
    SubmitStop {
        /// Channel.
        channel: ChannelId,
        /// The seller's Stop.
        stop: Stop,
        /// Its signature.
        sig: Signature,
    },
    /// Call `judge.closeCooperatively(ack, ack_sig, stop, stop_sig)`: the buyer acked exactly
    /// up to the seller's own Stop, so the channel settles at once. Sent once; if it fails the
    /// normal close goes on (report `on_close_cooperatively_failed`).
    CloseCooperatively {
        /// Channel.
        channel: ChannelId,
        /// The buyer's final ack (at the Stop's seq).
        ack: Ack,
        /// Its signature.
        ack_sig: Signature,
        /// The seller's Stop.
        stop: Stop,
        /// Its signature.
        stop_sig: Signature,
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

impl SellerAction {
    /// One frame to `peer`.
    pub fn send(peer: Address, frame: FrameBytes) -> SellerAction {
        SellerAction::Send {
            peer,
            frames: Arc::new([frame]),
        }
    }
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
    /// Messages signed (as leaves of batches).
    pub signed: u64,
    /// Batch signatures made (one per [`Stream::publish_batch`] run of at most `max_batch`).
    pub batches: u64,
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
        if !crate::types::terms_within_judge_bounds(
            terms.price,
            terms.t_ack_secs,
            terms.t_closure_secs,
        ) {
            return Err(SellerError::InvalidTerms(
                "tAck, tClosure or price beyond the judge's bounds",
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
                acked: c
                    .best_seq()
                    .map_or(0, |s| s.saturating_add(1).saturating_sub(c.start)),
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
            token: self.terms.token,
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
        self.actions
            .push_back(SellerAction::send(buyer_key.address(), frame));
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
            own_stop: None,
            coop_sent: false,
            coop_pending: false,
            close_after_coop: false,
            link_up: false,
            next_send: o.startSeq,
            sent_base: o.startSeq,
            sent_at: SendTimes::default(),
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
        self.actions.push_back(SellerAction::send(peer, frame));
        if let Some(c) = self.channels.get_mut(&channel) {
            c.own_stop = Some((stop.clone(), sig));
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
        self.maybe_close_cooperatively(channel);
        Ok(())
    }

    // ----- publishing ------------------------------------------------------------------------

    /// Publishes `plaintext` as the next message, alone in its batch: a batch of one (see
    /// [`Stream::publish_batch`]). Returns the new message's seq.
    pub fn publish(&mut self, now: UnixMs, plaintext: &[u8]) -> Result<u64, SellerError> {
        self.publish_batch(now, &[plaintext]).map(|seqs| seqs.start)
    }

    /// Publishes `plaintexts` as the next messages, signed together: each is sealed once, chained
    /// onto the one before, and every run of at most `max_batch` of them gets **one** signature,
    /// on the Merkle root of their digests (docs/PROTOCOL.md §1, Batches). Queues
    /// `Persist(Epoch)` when a sealing epoch starts, `Persist(Message)` for each message with its
    /// proof, and then one `Send` per message and channel that is caught up and has window room.
    /// Returns the seqs of the new messages.
    ///
    /// The broker calls it once per turn of its node with whatever local clients published
    /// meanwhile, so at low rate a batch is one message and nothing waits for a batch to fill.
    pub fn publish_batch(
        &mut self,
        now: UnixMs,
        plaintexts: &[&[u8]],
    ) -> Result<std::ops::Range<u64>, SellerError> {
        self.tick(now);
        let first = self.next_seq;
        let end = u64::try_from(plaintexts.len())
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or(SellerError::Exhausted)?;
        let cap = usize::try_from(self.cfg.max_batch.clamp(1, MAX_BATCH)).unwrap_or(1);
        for chunk in plaintexts.chunks(cap) {
            self.sign_batch(chunk)?;
        }
        // One pass over the channels without lookups; only a window blocked behind an
        // unverified ack needs the slow path. The channels that are up to date share one run of
        // the new frames.
        let (head, now, rto) = (self.next_seq, self.now, self.cfg.retransmit_timeout_ms);
        let run: FrameRun = (first..end)
            .filter_map(|seq| self.message(seq).map(|m| m.frame.clone()))
            .collect();
        let mut blocked = Vec::new();
        for c in self.channels.values_mut() {
            if send_window(
                c,
                &self.log,
                self.log_base,
                (head, Some((first, &run))),
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
        if first / 64 != end / 64 {
            self.prune();
        }
        Ok(first..end)
    }

    /// Seals and chains `plaintexts` (at most `MAX_BATCH`), signs their batch and logs them.
    fn sign_batch(&mut self, plaintexts: &[&[u8]]) -> Result<(), SellerError> {
        let mut batch = Vec::with_capacity(plaintexts.len());
        let (mut seq, mut prev, ts) = (self.next_seq, self.last_digest, self.now.max(self.last_ts));
        for plaintext in plaintexts {
            let rotating = self.sealer.rotation_pending();
            let payload = self.sealer.seal(seq, plaintext)?;
            if rotating {
                let members = self.member_records();
                self.actions
                    .push_back(SellerAction::Persist(SellerRecord::Epoch {
                        epoch: self.sealer.epoch(),
                        members,
                    }));
            }
            let message = Message {
                streamId: self.id.0,
                seq,
                timestamp: ts,
                payloadHash: keccak256(&payload),
                prev,
            };
            prev = self.domain.digest(&message);
            batch.push((message, prev, payload));
            seq = seq.checked_add(1).ok_or(SellerError::Exhausted)?;
        }
        let leaves: Vec<(&Message, B256)> = batch.iter().map(|(m, d, _)| (m, *d)).collect();
        let proofs = MessageProof::sign_batch(&self.domain, &self.key, &leaves);
        self.stats.signed += batch.len() as u64;
        self.stats.batches += 1;
        for ((message, digest, payload), proof) in batch.into_iter().zip(proofs) {
            let signed = SignedMessage::new(message, digest, proof, payload)?;
            self.actions
                .push_back(SellerAction::Persist(SellerRecord::Message {
                    message: signed.message.clone(),
                    proof: signed.proof.clone(),
                    payload: signed.payload.clone(),
                }));
            self.push_log(Arc::new(signed));
        }
        self.next_seq = seq;
        self.last_digest = prev;
        self.last_ts = ts;
        Ok(())
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
                (head, None),
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

    /// The sealing epoch's members, as persisted.
    fn member_records(&self) -> Vec<MemberRecord> {
        self.sealer
            .members()
            .iter()
            .map(|(a, k)| MemberRecord {
                address: *a,
                key: k.to_sec1_compressed().to_vec(),
            })
            .collect()
    }

    fn update_members(&mut self) {
        let m = self.desired_members();
        self.sealer.set_members(m);
    }

    /// Drops messages no channel or offer can need any more (always keeps the last one).
    ///
    /// A channel needs every message from its verified ack on, up to what it is owed, even those
    /// posted on-chain: the buyer may take them from the chain and ack them, and an ack is only
    /// taken for a message whose digest the seller can check. (Dropping posted messages made the
    /// seller ignore such acks, so the window stayed full for good: issue 17.) That is at most `W`
    /// messages past the ack, plus the backlog that `max_backlog` bounds.
    fn prune(&mut self) {
        let mut keep_from = self.next_seq.saturating_sub(1);
        for o in self.offers.values() {
            keep_from = keep_from.min(o.offer.startSeq);
        }
        for c in self.channels.values() {
            if c.phase == Phase::Settled || c.owed_end.is_some_and(|end| end <= c.base_v()) {
                continue;
            }
            keep_from = keep_from.min(c.base_v());
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
}

mod chain;
mod channel;
mod frames;
mod persist;
mod timers;

use channel::{Channel, PendingOffer, Phase, Posting, SendTimes, StopRec, arm_rto, cap_owed, send_window};
