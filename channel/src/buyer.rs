//! The buyer's state machine: one [`BuyerChannel`] per channel.
//!
//! It takes the stream's messages from the link (`Data` frames) or from the chain (`Posted`
//! events), in any order and with duplicates; verifies each (stream, payload hash, seller
//! signature, chain link `prev`); delivers each plaintext exactly once and in order; keeps a
//! bounded reorder buffer; sends cumulative acks with the right cost (every `k` messages or after
//! an ack delay, and always within `W`); detects gaps and, after `T_ack`, accuses the seller.
//!
//! Drain the resulting [`BuyerAction`]s with [`BuyerChannel::poll_action`] and carry them out in
//! order, writing each [`BuyerAction::Persist`] durably before any later action. A `Position`
//! record always precedes the `Deliver` actions it covers: a broker that writes the delivered
//! plaintext into its own durable outbox in the same transaction gets exactly-once delivery
//! across crashes.

use std::collections::{BTreeMap, VecDeque};

use alloy_primitives::{Address, B256, U256, keccak256};

use crate::records::BuyerRecord;
use crate::seal::{EpochKey, Opener, SealError};
use crate::sign::{Keypair, PublicKey, SigError, Signature, recover};
use crate::types::{Ack, ChannelId, Domain, Message, Offer, Stop, StreamId, UnixMs, ack_cost};
use crate::wire::{Data, Frame, FrameBytes, WireError};

/// Buyer-side engine settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuyerConfig {
    /// Ack after this many new in-order messages (clamped to `max(1, W/2)`).
    pub ack_every: u64,
    /// Ack at most this long after the first unacked message arrived.
    pub ack_delay_ms: u64,
    /// Reorder buffer size in messages (clamped to at least `W`).
    pub reorder_capacity: u64,
    /// Minimum interval between re-sends of the latest ack on duplicates.
    pub reack_interval_ms: u64,
    /// How many recent delivered messages are kept to detect equivocation.
    pub equivocation_memory: usize,
    /// Margin added to chain deadlines (ms), for clock skew with `block.timestamp`.
    pub chain_grace_ms: u64,
    /// Who settles: once `T_closure` is over, the seller settles a channel in which it recorded a
    /// posted claim (it is paid at `settle`), the buyer settles the others. A buyer that saw a
    /// message of its channel posted on-chain (so the seller may hold such a claim) leaves the
    /// seller this much longer, and settles only if the channel is still not settled then. It
    /// should exceed the time the seller's `settle` needs to be mined and seen.
    pub settle_wait_ms: u64,
    /// Tops the deposit up ahead of exhaustion (the seller sends nothing the deposit does not
    /// pay for); `None`: never, the stream stops when the deposit is used up.
    pub top_up: Option<TopUpPolicy>,
}

/// When and how much a buyer tops up its channel's deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopUpPolicy {
    /// Top up once the deposit pays for at most this many messages after those delivered.
    pub below_messages: u64,
    /// Each top-up adds this many messages' worth (`price * messages`).
    pub messages: u64,
    /// The deposit never exceeds this (wei); a top-up is cut to fit.
    pub max_deposit: U256,
}

impl Default for BuyerConfig {
    fn default() -> Self {
        Self {
            ack_every: 32,
            ack_delay_ms: 20,
            reorder_capacity: 1024,
            reack_interval_ms: 200,
            equivocation_memory: 256,
            chain_grace_ms: 2_000,
            settle_wait_ms: 60_000,
            top_up: None,
        }
    }
}

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The peer link.
    Link,
    /// A `Posted` event of the judge.
    Chain,
}

/// Informational events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuyerEvent {
    /// A verified message could not be decrypted (not granted, or sealed wrongly). It is acked
    /// (it was delivered over the protocol) but its plaintext is not delivered.
    Undecryptable {
        /// Seq.
        seq: u64,
        /// Why.
        error: SealError,
    },
    /// A seller-signed message does not chain onto the previous one (the seller signed two
    /// chains). Proven with `ProveEquivocation` when both signatures check.
    BrokenChain {
        /// Seq.
        seq: u64,
    },
    /// The seller stopped and everything up to its stop was received and acked.
    StopCompleted,
}

/// What the caller must do, in order.
#[derive(Clone, Debug)]
pub enum BuyerAction {
    /// Write durably before carrying out any later action.
    Persist(BuyerRecord),
    /// Write this encoded frame to the seller's link (dropped silently if it is down).
    Send(FrameBytes),
    /// Hand this plaintext to local subscribers (exactly once per seq, in order).
    Deliver {
        /// Seq of the message.
        seq: u64,
        /// Opened payload.
        payload: Vec<u8>,
    },
    /// Call `judge.topUp(channel)` with `amount` wei; report the new deposit with `on_deposit`
    /// (from the `ToppedUp` event), or `on_top_up_failed`.
    TopUp {
        /// Channel.
        channel: ChannelId,
        /// Wei to add.
        amount: U256,
    },
    /// Call `judge.claim(ack, sig)` with the buyer's own latest ack. Queued right before an
    /// `Accuse` when the judge's `acked` lags behind it: the judge only takes accusations below
    /// `acked + W`, and a claim pays the seller nothing the buyer does not owe anyway. Report the
    /// `Claimed` event with `on_claimed`; a refusal needs no report (the accusation follows).
    Claim {
        /// Channel.
        channel: ChannelId,
        /// The buyer's latest ack.
        ack: Ack,
        /// Its signature.
        sig: Signature,
    },
    /// Call `judge.accuse(channel, seen, sig, missing)`; report `on_accusation_opened`, or
    /// `on_accusation_refused` if the judge refuses it (a revert), or `on_accusation_closed` if
    /// the transaction failed otherwise (it is retried).
    Accuse {
        /// Channel.
        channel: ChannelId,
        /// A seller-signed message after the gap.
        seen: Message,
        /// Its signature.
        sig: Signature,
        /// The missing seq.
        missing: u64,
    },
    /// Call `judge.resolve(channel)` (the accusation was not defended in time).
    Resolve {
        /// Channel.
        channel: ChannelId,
    },
    /// Call `judge.proveEquivocation(channel, a, sigA, b, sigB)`.
    ProveEquivocation {
        /// Channel.
        channel: ChannelId,
        /// First message.
        a: Message,
        /// Its signature.
        sig_a: Signature,
        /// Conflicting message: the same seq, or the next seq with a `prev` that is not the
        /// digest of `a` (a broken link).
        b: Message,
        /// Its signature.
        sig_b: Signature,
    },
    /// Call `judge.requestClose(channel)`.
    RequestClose {
        /// Channel.
        channel: ChannelId,
    },
    /// Call `judge.settle(channel)` (after `T_closure`).
    Settle {
        /// Channel.
        channel: ChannelId,
    },
    /// Informational.
    Event(BuyerEvent),
}

/// Why an input was rejected. A rejected input changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuyerError {
    /// The offer is not acceptable.
    #[error("invalid offer: {0}")]
    InvalidOffer(&'static str),
    /// The message is for another stream.
    #[error("message of another stream")]
    WrongStream,
    /// `keccak256(payload) != payloadHash`.
    #[error("payload does not match its hash")]
    PayloadHash,
    /// The seller's signature does not verify.
    #[error("bad seller signature: {0}")]
    Signature(#[from] SigError),
    /// The message's `prev` is not the digest of the previous message.
    #[error("message {0} does not chain onto the previous one")]
    BrokenChain(u64),
    /// A frame for another channel.
    #[error("frame for another channel")]
    WrongChannel,
    /// A frame a buyer does not expect.
    #[error("unexpected frame")]
    UnexpectedFrame,
    /// Encoding failed.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// Cost overflow (absurd terms).
    #[error("cost overflow")]
    CostOverflow,
    /// Restore failed.
    #[error("restore: {0}")]
    Restore(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Stopping,
    Closing,
    Settled,
}

#[derive(Clone, Debug)]
struct Held {
    message: Message,
    digest: B256,
    sig: Signature,
    payload: Vec<u8>,
    sig_ok: bool,
    seen_at: UnixMs,
}

/// A recently delivered message: seq, digest, and the signed message (`None` after a restore).
type Recent = (u64, B256, Option<(Message, Signature)>);

#[derive(Clone, Debug)]
struct Seen {
    message: Message,
    sig: Signature,
    seen_at: UnixMs,
}

/// Counters for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyerStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Seller signatures verified.
    pub sigs_verified: u64,
    /// Acks signed.
    pub acks_signed: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
}

/// The buyer's engine for one channel.
#[derive(Debug, Clone)]
pub struct BuyerChannel {
    domain: Domain,
    key: Keypair,
    id: ChannelId,
    offer: Offer,
    offer_sig: Signature,
    seller_key: PublicKey,
    stream: StreamId,
    cfg: BuyerConfig,
    ack_every: u64,
    capacity: u64,
    start: u64,
    t_ack_ms: u64,
    t_closure_ms: u64,
    now: UnixMs,
    phase: Phase,
    next: u64,
    last_digest: Option<B256>,
    buffer: BTreeMap<u64, Held>,
    /// Recently delivered: seq -> (digest, signed message if its signature was checked).
    recent: VecDeque<Recent>,
    opener: Opener,
    /// Next seq not covered by a sent ack.
    acked_next: u64,
    last_ack: Option<(Ack, Signature, FrameBytes)>,
    last_ack_sent_at: UnixMs,
    ack_due: Option<UnixMs>,
    gap: Option<Seen>,
    accused: Option<u64>,
    /// The last missing seq the judge refused an accusation for: never accused again.
    refused: Option<u64>,
    /// Exclusive end of what the judge's claimed acks cover (`startSeq + acked`), from
    /// `Claimed` events (not persisted: at worst the buyer claims its ack once more).
    chain_acked_end: u64,
    /// The channel's deposit as last reported (`on_deposit`; zero: unknown, no top-up).
    deposit: U256,
    /// A `TopUp` is out and not yet seen on-chain.
    top_up_pending: bool,
    resolve_at: Option<UnixMs>,
    /// Exclusive end of what is accepted (from a Stop).
    stop_end: Option<u64>,
    seller_stopped: bool,
    /// Our own signed `Stop` (when we stopped), re-sent when the seller keeps sending past it.
    stop_frame: Option<FrameBytes>,
    stop_sent_at: UnixMs,
    /// Chain second of the close request, once mined.
    close_at_secs: Option<u64>,
    /// `Settle` still to be emitted (see [`BuyerConfig::settle_wait_ms`]).
    settle_due: bool,
    /// A message at or after `startSeq` was seen posted on-chain: the seller may hold a posted
    /// claim, and then it settles.
    saw_posting: bool,
    actions: VecDeque<BuyerAction>,
    stats: BuyerStats,
}

/// Checks an offer received from `seller` for buyer `me`: seller signature, stream ownership,
/// positive terms. Returns the seller's public key (recovered from the signature: a real k256
/// key) and the channel id the offer will open.
pub fn check_offer(
    domain: &Domain,
    offer: &Offer,
    sig: &Signature,
    me: Address,
) -> Result<(PublicKey, ChannelId), BuyerError> {
    check_offer_terms(offer, me)?;
    let digest = domain.digest(offer);
    let key = recover(&digest, sig)?;
    if key.address() != offer.seller {
        return Err(BuyerError::InvalidOffer("offer not signed by its seller"));
    }
    Ok((key, ChannelId::from_offer_digest(digest)))
}

/// [`check_offer`] with the seller's public key already known (e.g. from the peer handshake):
/// the key must be the offer's seller, and the signature is checked with it (no recovery).
/// Returns the channel id the offer will open.
pub fn check_offer_with_key(
    domain: &Domain,
    offer: &Offer,
    sig: &Signature,
    me: Address,
    seller_key: &PublicKey,
) -> Result<ChannelId, BuyerError> {
    check_offer_terms(offer, me)?;
    if seller_key.address() != offer.seller {
        return Err(BuyerError::InvalidOffer("offer not signed by its seller"));
    }
    let digest = domain.digest(offer);
    seller_key.verify(&digest, sig)?;
    Ok(ChannelId::from_offer_digest(digest))
}

fn check_offer_terms(offer: &Offer, me: Address) -> Result<(), BuyerError> {
    if offer.buyer != me {
        return Err(BuyerError::InvalidOffer("offer is for another buyer"));
    }
    if offer.stream().seller() != offer.seller {
        return Err(BuyerError::InvalidOffer(
            "stream id does not belong to the seller",
        ));
    }
    if offer.price.is_zero() || offer.window == 0 || offer.tAck == 0 || offer.tClosure == 0 {
        return Err(BuyerError::InvalidOffer(
            "price, window, tAck and tClosure must be positive",
        ));
    }
    if !crate::types::terms_within_judge_bounds(offer.price, offer.tAck, offer.tClosure) {
        return Err(BuyerError::InvalidOffer(
            "tAck, tClosure or price beyond the judge's bounds",
        ));
    }
    offer
        .price
        .checked_mul(U256::from(offer.window))
        .ok_or(BuyerError::InvalidOffer("price * window overflows"))?;
    Ok(())
}

impl BuyerChannel {
    /// A channel opened on-chain with `offer`: queues `Persist(Channel)` then `Send(Opened)`.
    pub fn new(
        domain: Domain,
        key: Keypair,
        offer: Offer,
        offer_sig: Signature,
        cfg: BuyerConfig,
        now: UnixMs,
    ) -> Result<Self, BuyerError> {
        let b = Self::build(domain, key, offer, offer_sig, None, cfg, now)?;
        b.opened()
    }

    /// [`new`](Self::new) with the seller's public key already known (e.g. from the peer
    /// handshake): the offer's signature is checked with it ([`check_offer_with_key`]).
    pub fn with_seller_key(
        domain: Domain,
        key: Keypair,
        seller_key: PublicKey,
        offer: Offer,
        offer_sig: Signature,
        cfg: BuyerConfig,
        now: UnixMs,
    ) -> Result<Self, BuyerError> {
        let b = Self::build(domain, key, offer, offer_sig, Some(seller_key), cfg, now)?;
        b.opened()
    }

    fn opened(mut self) -> Result<Self, BuyerError> {
        let b = &mut self;
        b.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Channel {
                offer: b.offer.clone(),
                sig: b.offer_sig,
            }));
        let frame = Frame::Opened { channel_id: b.id }.encode_shared()?;
        b.actions.push_back(BuyerAction::Send(frame));
        Ok(self)
    }

    fn build(
        domain: Domain,
        key: Keypair,
        offer: Offer,
        offer_sig: Signature,
        seller_key: Option<PublicKey>,
        cfg: BuyerConfig,
        now: UnixMs,
    ) -> Result<Self, BuyerError> {
        let (seller_key, id) = match seller_key {
            Some(k) => {
                let id = check_offer_with_key(&domain, &offer, &offer_sig, key.address(), &k)?;
                (k, id)
            }
            None => check_offer(&domain, &offer, &offer_sig, key.address())?,
        };
        let window = offer.window.max(1);
        let ack_every = cfg.ack_every.clamp(1, (window / 2).max(1));
        let capacity = cfg.reorder_capacity.max(window);
        let start_seq = offer.startSeq;
        Ok(Self {
            stream: offer.stream(),
            start: offer.startSeq,
            t_ack_ms: u64::from(offer.tAck) * 1000,
            t_closure_ms: u64::from(offer.tClosure) * 1000,
            next: offer.startSeq,
            acked_next: offer.startSeq,
            domain,
            key,
            id,
            offer,
            offer_sig,
            seller_key,
            cfg,
            ack_every,
            capacity,
            now,
            phase: Phase::Open,
            last_digest: None,
            buffer: BTreeMap::new(),
            recent: VecDeque::new(),
            opener: Opener::new(),
            last_ack: None,
            last_ack_sent_at: 0,
            ack_due: None,
            gap: None,
            accused: None,
            refused: None,
            chain_acked_end: start_seq,
            deposit: U256::ZERO,
            top_up_pending: false,
            resolve_at: None,
            stop_end: None,
            seller_stopped: false,
            stop_frame: None,
            stop_sent_at: 0,
            close_at_secs: None,
            settle_due: false,
            saw_posting: false,
            actions: VecDeque::new(),
            stats: BuyerStats::default(),
        })
    }

    // ----- accessors -------------------------------------------------------------------------

    /// The channel id.
    pub fn id(&self) -> ChannelId {
        self.id
    }
    /// The stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }
    /// The seller's address.
    pub fn seller(&self) -> Address {
        self.offer.seller
    }
    /// The offer.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }
    /// Next seq to deliver (everything below was delivered).
    pub fn next_seq(&self) -> u64 {
        self.next
    }
    /// Messages held in the reorder buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
    /// The latest ack sent.
    pub fn last_ack(&self) -> Option<(&Ack, &Signature)> {
        self.last_ack.as_ref().map(|(a, s, _)| (a, s))
    }
    /// The open accusation's missing seq.
    pub fn accused(&self) -> Option<u64> {
        self.accused
    }
    /// Counters.
    pub fn stats(&self) -> BuyerStats {
        self.stats
    }
    /// Whether the channel is settled.
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Settled
    }
    /// `open`, `stopping`, `closing` or `settled`, for operators.
    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Open => "open",
            Phase::Stopping => "stopping",
            Phase::Closing => "closing",
            Phase::Settled => "settled",
        }
    }

    // ----- action queue ----------------------------------------------------------------------

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<BuyerAction> {
        self.actions.pop_front()
    }

    /// Drains all pending actions, in order.
    pub fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, BuyerAction> {
        self.actions.drain(..)
    }

    /// Number of queued actions.
    pub fn pending_actions(&self) -> usize {
        self.actions.len()
    }

    fn tick(&mut self, now: UnixMs) {
        self.now = self.now.max(now);
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Handles a frame from the seller's link (`Data`, `Stop`; `Ping` is answered).
    pub fn handle_frame(&mut self, now: UnixMs, frame: Frame) -> Result<(), BuyerError> {
        match frame {
            Frame::Data(Data {
                message,
                sig,
                payload,
            }) => self.handle_message(now, message, sig, payload, Source::Link),
            Frame::Stop { stop, sig } => self.handle_stop(now, stop, sig),
            Frame::Ping { nonce } => {
                self.tick(now);
                let f = Frame::Pong { nonce }.encode_shared()?;
                self.actions.push_back(BuyerAction::Send(f));
                Ok(())
            }
            Frame::Pong { .. } | Frame::Error { .. } => Ok(()),
            _ => Err(BuyerError::UnexpectedFrame),
        }
    }

    /// A message posted on-chain (`Posted` event) for this channel's stream.
    pub fn on_posted(
        &mut self,
        now: UnixMs,
        message: Message,
        sig: Signature,
        payload: Vec<u8>,
    ) -> Result<(), BuyerError> {
        self.handle_message(now, message, sig, payload, Source::Chain)
    }

    /// The link to the seller is up (again): queues `Resume` and the latest ack.
    pub fn link_up(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        let f = Frame::Resume {
            channel_id: self.id,
            next_seq: self.next,
        }
        .encode_shared()?;
        self.actions.push_back(BuyerAction::Send(f));
        if let Some((_, _, f)) = &self.last_ack {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.last_ack_sent_at = self.now;
        }
        if self.acked_next < self.next {
            self.send_ack()?;
        }
        if let Some(f) = &self.stop_frame {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.stop_sent_at = self.now;
        }
        Ok(())
    }

    /// Handles one stream message from the link or the chain.
    pub fn handle_message(
        &mut self,
        now: UnixMs,
        message: Message,
        sig: Signature,
        payload: Vec<u8>,
        source: Source,
    ) -> Result<(), BuyerError> {
        self.tick(now);
        if self.phase == Phase::Settled {
            return Ok(());
        }
        if message.streamId != self.stream.0 {
            return Err(BuyerError::WrongStream);
        }
        let m = message.seq;
        if source == Source::Chain && m >= self.start {
            // The judge only emits seller-signed postings: the seller may claim this one.
            self.saw_posting = true;
        }
        if m < self.start {
            return Ok(());
        }
        if self.stop_end.is_some_and(|e| m >= e) {
            if source == Source::Link {
                // The seller keeps sending past our Stop: it may have lost it.
                self.resend_stop();
            }
            return Ok(());
        }
        if keccak256(&payload) != message.payloadHash {
            return Err(BuyerError::PayloadHash);
        }
        let d = self.domain.digest(&message);
        if m < self.next {
            return self.on_duplicate(message, d, sig, source);
        }
        if let Some(h) = self.buffer.get(&m) {
            if h.digest == d {
                self.stats.duplicates += 1;
                return Ok(());
            }
            self.seller_key.verify(&d, &sig)?;
            self.stats.sigs_verified += 1;
            // A held message authenticated by its successor's link has not had its own
            // signature checked; the judge needs both.
            if h.sig_ok || self.seller_key.verify(&h.digest, &h.sig).is_ok() {
                self.equivocation(h.message.clone(), h.sig, message, sig);
            }
            return Ok(());
        }
        // Authenticate: by a held, authenticated successor whose prev is our digest, else by
        // the seller's signature.
        let linked = self
            .buffer
            .get(&m.saturating_add(1))
            .is_some_and(|s| s.message.prev == d);
        let sig_ok = if linked {
            false
        } else {
            self.seller_key.verify(&d, &sig)?;
            self.stats.sigs_verified += 1;
            true
        };
        let held = Held {
            message,
            digest: d,
            sig,
            payload,
            sig_ok,
            seen_at: self.now,
        };
        if m == self.next {
            if let Some(ld) = self.last_digest
                && held.message.prev != ld
            {
                self.actions
                    .push_back(BuyerAction::Event(BuyerEvent::BrokenChain { seq: m }));
                self.broken_link(&held.message, d, sig, sig_ok);
                return Err(BuyerError::BrokenChain(m));
            }
            self.deliver_from(held);
        } else {
            if sig_ok && self.gap.as_ref().is_none_or(|g| g.message.seq < self.next) {
                self.gap = Some(Seen {
                    message: held.message.clone(),
                    sig,
                    seen_at: self.now,
                });
            }
            if m < self.next.saturating_add(self.capacity) {
                self.buffer.insert(m, held);
            }
        }
        self.after_progress()
    }

    fn on_duplicate(
        &mut self,
        message: Message,
        d: B256,
        sig: Signature,
        source: Source,
    ) -> Result<(), BuyerError> {
        let m = message.seq;
        let reack_due = source == Source::Link
            && m < self.acked_next
            && self.last_ack.is_some()
            && self.now
                >= self
                    .last_ack_sent_at
                    .saturating_add(self.cfg.reack_interval_ms);
        match self.recent.iter().find(|(s, _, _)| *s == m) {
            Some((_, known, _)) if *known == d => {
                self.stats.duplicates += 1;
                // The seller retransmits: it may have lost our ack.
                if reack_due {
                    self.reack();
                }
                Ok(())
            }
            Some((_, known, Some((a, sa)))) => {
                let (known, a, sa) = (*known, a.clone(), *sa);
                self.seller_key.verify(&d, &sig)?;
                self.stats.sigs_verified += 1;
                // The delivered message may have been authenticated by its successor's link
                // only: the judge needs its own signature too.
                if self.seller_key.verify(&known, &sa).is_ok() {
                    self.equivocation(a, sa, message, sig);
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => {
                // Too old to compare (or we restarted): authenticate before re-acking.
                self.stats.duplicates += 1;
                if reack_due {
                    self.seller_key.verify(&d, &sig)?;
                    self.stats.sigs_verified += 1;
                    self.reack();
                }
                Ok(())
            }
        }
    }

    /// Re-sends our own `Stop`, at most every `reack_interval_ms`.
    fn resend_stop(&mut self) {
        if let Some(f) = &self.stop_frame
            && self.now >= self.stop_sent_at.saturating_add(self.cfg.reack_interval_ms)
        {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.stop_sent_at = self.now;
        }
    }

    fn reack(&mut self) {
        if let Some((_, _, f)) = &self.last_ack {
            self.actions.push_back(BuyerAction::Send(f.clone()));
            self.last_ack_sent_at = self.now;
        }
    }

    fn equivocation(&mut self, a: Message, sig_a: Signature, b: Message, sig_b: Signature) {
        self.actions.push_back(BuyerAction::ProveEquivocation {
            channel: self.id,
            a,
            sig_a,
            b,
            sig_b,
        });
    }

    /// `b` does not chain onto the delivered message before it: both cannot be in the seller's
    /// chain, which the judge takes as equivocation when both signatures check.
    fn broken_link(&mut self, b: &Message, b_digest: B256, b_sig: Signature, b_sig_ok: bool) {
        let Some(prev_seq) = b.seq.checked_sub(1) else {
            return;
        };
        let held = self
            .recent
            .iter()
            .find(|(s, _, _)| *s == prev_seq)
            .and_then(|(_, known, signed)| signed.clone().map(|(a, sa)| (*known, a, sa)));
        let Some((known, a, sa)) = held else { return };
        if (b_sig_ok || self.seller_key.verify(&b_digest, &b_sig).is_ok())
            && self.seller_key.verify(&known, &sa).is_ok()
        {
            self.equivocation(a, sa, b.clone(), b_sig);
        }
    }

    /// Delivers `first` (which is `next`) and then whatever the buffer holds in order.
    fn deliver_from(&mut self, first: Held) {
        let mut delivered: Vec<(u64, Result<Vec<u8>, SealError>)> = Vec::new();
        let mut learned: Vec<(u64, EpochKey)> = Vec::new();
        let mut cur = Some(first);
        while let Some(h) = cur.take() {
            let seq = h.message.seq;
            match self.opener.open(&self.key, &self.stream, seq, &h.payload) {
                Ok((pt, l)) => {
                    if let Some(l) = l {
                        learned.push(l);
                    }
                    delivered.push((seq, Ok(pt)));
                }
                Err(e) => delivered.push((seq, Err(e))),
            }
            self.next = seq.saturating_add(1);
            self.last_digest = Some(h.digest);
            // Kept whether its signature was checked or its digest vouched for by its
            // successor's link: a conflicting message later is checked against it then.
            let signed = Some((h.message.clone(), h.sig));
            self.recent.push_back((seq, h.digest, signed));
            while self.recent.len() > self.cfg.equivocation_memory.max(1) {
                self.recent.pop_front();
            }
            // Next one from the buffer, if it chains on.
            if let Some(n) = self.buffer.remove(&self.next) {
                if n.message.prev == h.digest {
                    cur = Some(n);
                } else {
                    self.actions
                        .push_back(BuyerAction::Event(BuyerEvent::BrokenChain {
                            seq: n.message.seq,
                        }));
                    self.broken_link(&n.message, n.digest, n.sig, n.sig_ok);
                }
            }
        }
        // Stale buffer entries cannot exist (we only remove in order), but keep it bounded.
        let next = self.next;
        self.buffer = self.buffer.split_off(&next);
        for (epoch, key) in learned {
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::EpochKey {
                    epoch,
                    key: key.0,
                }));
        }
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Position {
                next_seq: self.next,
                last_digest: self.last_digest,
            }));
        for (seq, r) in delivered {
            match r {
                Ok(payload) => {
                    self.stats.delivered += 1;
                    self.actions
                        .push_back(BuyerAction::Deliver { seq, payload });
                }
                Err(error) => self
                    .actions
                    .push_back(BuyerAction::Event(BuyerEvent::Undecryptable { seq, error })),
            }
        }
        // Gap evidence must be after the new gap.
        if self.gap.as_ref().is_some_and(|g| g.message.seq < self.next) {
            self.gap = self.first_held_evidence();
        }
    }

    /// The first held message with a checked signature: evidence of the gap before it.
    fn first_held_evidence(&self) -> Option<Seen> {
        self.buffer.values().find(|h| h.sig_ok).map(|h| Seen {
            message: h.message.clone(),
            sig: h.sig,
            seen_at: h.seen_at,
        })
    }

    fn after_progress(&mut self) -> Result<(), BuyerError> {
        let unacked = self.next.saturating_sub(self.acked_next);
        let final_ack = self.stop_end.is_some_and(|e| self.next >= e);
        if unacked >= self.ack_every || (final_ack && unacked > 0) {
            self.send_ack()?;
        } else if unacked > 0 && self.ack_due.is_none() {
            self.ack_due = Some(self.now.saturating_add(self.cfg.ack_delay_ms));
        }
        if final_ack && self.seller_stopped && self.phase == Phase::Open {
            self.phase = Phase::Stopping;
            self.actions
                .push_back(BuyerAction::Event(BuyerEvent::StopCompleted));
            self.actions
                .push_back(BuyerAction::RequestClose { channel: self.id });
        }
        Ok(())
    }

    fn send_ack(&mut self) -> Result<(), BuyerError> {
        let Some(digest) = self.last_digest else {
            return Ok(());
        };
        let seq = self.next.saturating_sub(1);
        let cost = ack_cost(self.start, seq, self.offer.price).ok_or(BuyerError::CostOverflow)?;
        let ack = Ack {
            channelId: self.id.0,
            seq,
            digest,
            cost,
            timestamp: self.now,
        };
        let sig = self.key.sign(&self.domain.digest(&ack));
        self.stats.acks_signed += 1;
        let frame = Frame::Ack {
            ack: ack.clone(),
            sig,
        }
        .encode_shared()?;
        self.actions.push_back(BuyerAction::Send(frame.clone()));
        self.last_ack = Some((ack, sig, frame));
        self.last_ack_sent_at = self.now;
        self.acked_next = self.next;
        self.ack_due = None;
        self.maybe_top_up();
        Ok(())
    }

    /// Queues a `TopUp` when the deposit pays for at most `below_messages` more messages than
    /// were delivered (see [`TopUpPolicy`]), one at a time, never past `max_deposit`.
    fn maybe_top_up(&mut self) {
        let Some(policy) = &self.cfg.top_up else {
            return;
        };
        if self.top_up_pending || self.deposit.is_zero() || self.phase != Phase::Open {
            return;
        }
        let price = self.offer.price;
        let covered = self.deposit.checked_div(price).unwrap_or_default();
        let delivered = U256::from(self.next.saturating_sub(self.start));
        if covered.saturating_sub(delivered) > U256::from(policy.below_messages) {
            return;
        }
        let room = policy.max_deposit.saturating_sub(self.deposit);
        let amount = price.saturating_mul(U256::from(policy.messages)).min(room);
        if amount.is_zero() {
            return;
        }
        self.top_up_pending = true;
        self.actions.push_back(BuyerAction::TopUp {
            channel: self.id,
            amount,
        });
    }

    fn handle_stop(&mut self, now: UnixMs, stop: Stop, sig: Signature) -> Result<(), BuyerError> {
        self.tick(now);
        if stop.channelId != self.id.0 {
            return Err(BuyerError::WrongChannel);
        }
        self.seller_key.verify(&self.domain.digest(&stop), &sig)?;
        if self.stop_frame.is_some() {
            // The seller's answer to our Stop: what it had sent, hence all it may still send.
            let end = stop.seq.saturating_add(1).max(self.start);
            self.cap_stop_end(end);
            return self.after_progress();
        }
        if self.phase != Phase::Open || self.seller_stopped {
            return Ok(());
        }
        let end = stop.seq.saturating_add(1).max(self.start);
        self.stop_end = Some(self.stop_end.map_or(end, |e| e.min(end)));
        self.seller_stopped = true;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Stopped {
                seq: stop.seq,
                by_buyer: false,
            }));
        let end = self.stop_end.unwrap_or(end);
        self.buffer = self.buffer.split_off(&self.next);
        self.buffer.retain(|s, _| *s < end);
        self.after_progress()
    }

    /// The buyer stops: sends a final ack and a signed `Stop`, and requests the close on-chain.
    ///
    /// Messages the seller sent before the `Stop` reached it are still owed to it (it cannot tell
    /// what the buyer received), so the buyer keeps accepting, delivering and acking them: at most
    /// `W` after what it has (the seller never has more than `W` unacked in flight). It pays for
    /// those and receives them, by link or from the chain.
    pub fn stop(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        if self.phase != Phase::Open {
            return Ok(());
        }
        if self.acked_next < self.next {
            self.send_ack()?;
        }
        let seq = self.next.saturating_sub(1);
        let stop = Stop {
            channelId: self.id.0,
            seq,
            timestamp: self.now,
        };
        let sig = self.key.sign(&self.domain.digest(&stop));
        let frame = Frame::Stop { stop, sig }.encode_shared()?;
        self.cap_stop_end(self.in_flight_end(self.next));
        self.phase = Phase::Stopping;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::Stopped {
                seq,
                by_buyer: true,
            }));
        self.actions.push_back(BuyerAction::Send(frame.clone()));
        self.stop_frame = Some(frame);
        self.stop_sent_at = self.now;
        self.actions
            .push_back(BuyerAction::RequestClose { channel: self.id });
        Ok(())
    }

    /// Accepts nothing at or after `end` any more (keeps the lower bound if there is one).
    fn cap_stop_end(&mut self, end: u64) {
        let end = self.stop_end.map_or(end, |e| e.min(end));
        self.stop_end = Some(end);
        self.buffer.retain(|s, _| *s < end);
        if self.gap.as_ref().is_some_and(|g| g.message.seq >= end) {
            self.gap = self.first_held_evidence();
        }
    }

    /// Exclusive end of what the seller may have sent before a buyer `Stop` at `end` (the next seq
    /// the buyer lacked, all before it acked) reached it: `W` more.
    fn in_flight_end(&self, end: u64) -> u64 {
        end.saturating_add(self.offer.window.max(1))
    }

    // ----- timers ----------------------------------------------------------------------------

    /// Handles every timer due at `now`: delayed acks, accusations, resolution, settlement.
    pub fn handle_timeout(&mut self, now: UnixMs) -> Result<(), BuyerError> {
        self.tick(now);
        let now = self.now;
        if self.ack_due.is_some_and(|t| t <= now) {
            self.ack_due = None;
            if self.acked_next < self.next {
                self.send_ack()?;
            }
        }
        if let Some(at) = self.accuse_at()
            && at <= now
            && let Some(g) = self.gap.clone()
        {
            let missing = self.next;
            self.accused = Some(missing);
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::Accused { missing }));
            if let Some((ack, sig, _)) = &self.last_ack
                && ack.seq >= self.chain_acked_end
            {
                self.actions.push_back(BuyerAction::Claim {
                    channel: self.id,
                    ack: ack.clone(),
                    sig: *sig,
                });
            }
            self.actions.push_back(BuyerAction::Accuse {
                channel: self.id,
                seen: g.message,
                sig: g.sig,
                missing,
            });
        }
        if self.resolve_at.is_some_and(|t| t <= now) {
            self.resolve_at = None;
            self.actions
                .push_back(BuyerAction::Resolve { channel: self.id });
        }
        if self.settle_at().is_some_and(|t| t <= now) {
            self.settle_due = false;
            self.actions
                .push_back(BuyerAction::Settle { channel: self.id });
        }
        Ok(())
    }

    /// When the buyer settles: `T_closure` after the close request (plus the chain grace), or
    /// [`BuyerConfig::settle_wait_ms`] later if the seller may hold a posted claim (then the
    /// seller settles, and the buyer only if nobody did).
    fn settle_at(&self) -> Option<UnixMs> {
        if !self.settle_due || self.phase == Phase::Settled {
            return None;
        }
        let wait = if self.saw_posting {
            self.cfg.settle_wait_ms
        } else {
            0
        };
        Some(
            self.close_at_secs?
                .saturating_mul(1000)
                .saturating_add(self.t_closure_ms)
                .saturating_add(self.cfg.chain_grace_ms)
                .saturating_add(wait),
        )
    }

    fn accuse_at(&self) -> Option<UnixMs> {
        if self.accused.is_some() || self.phase == Phase::Settled || self.refused == Some(self.next)
        {
            return None;
        }
        let g = self.gap.as_ref()?;
        if g.message.seq <= self.next || self.stop_end.is_some_and(|e| self.next >= e) {
            return None;
        }
        let at = g
            .seen_at
            .max(g.message.timestamp)
            .saturating_add(self.t_ack_ms);
        if let Some(close) = self.close_at_secs {
            // The judge takes accusations on a Closing channel only before close + T_closure
            // (`ClosureElapsed`); one mined later would be refused.
            let last = close
                .saturating_mul(1000)
                .saturating_add(self.t_closure_ms)
                .saturating_sub(self.cfg.chain_grace_ms);
            if at >= last {
                return None;
            }
        }
        Some(at)
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        [
            self.ack_due,
            self.accuse_at(),
            self.resolve_at,
            self.settle_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- chain notifications ---------------------------------------------------------------

    /// The accusation was mined; the seller must defend by `deadline_secs` (chain time).
    pub fn on_accusation_opened(&mut self, now: UnixMs, deadline_secs: u64) {
        self.tick(now);
        self.resolve_at = Some(
            deadline_secs
                .saturating_mul(1000)
                .saturating_add(self.cfg.chain_grace_ms),
        );
    }

    /// The accusation was defended, resolved, or its transaction failed.
    pub fn on_accusation_closed(&mut self, now: UnixMs) {
        self.tick(now);
        if self.accused.take().is_some() {
            self.resolve_at = None;
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::AccusationCleared));
        }
    }

    /// The judge refused the open accusation (it reverted: `NotOwed`, `ClosureElapsed`, ...): a
    /// refusal is final, the buyer does not accuse for that seq again.
    pub fn on_accusation_refused(&mut self, now: UnixMs) {
        self.tick(now);
        if let Some(missing) = self.accused.take() {
            self.resolve_at = None;
            self.refused = Some(missing);
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::AccusationRefused {
                    missing,
                }));
        }
    }

    /// The channel's deposit on-chain: what the buyer locked at `open`, then each `ToppedUp`
    /// event's new total (or the judge's `channel()` view after a restart).
    pub fn on_deposit(&mut self, now: UnixMs, deposit: U256) {
        self.tick(now);
        if deposit > self.deposit {
            self.deposit = deposit;
            self.top_up_pending = false;
        }
        self.maybe_top_up();
    }

    /// A `TopUp` transaction failed: the next ack may try again.
    pub fn on_top_up_failed(&mut self, now: UnixMs) {
        self.tick(now);
        self.top_up_pending = false;
    }

    /// A `Claimed` event of this channel: the judge's claimed acks now cover `seq` (whoever
    /// claimed it, the seller or the buyer itself).
    pub fn on_claimed(&mut self, now: UnixMs, seq: u64) {
        self.tick(now);
        self.chain_acked_end = self.chain_acked_end.max(seq.saturating_add(1));
    }

    /// `requestClose` was mined at `at_secs` (chain time): settle after `T_closure` (see
    /// [`BuyerConfig::settle_wait_ms`] for who settles).
    pub fn on_close_requested(&mut self, now: UnixMs, at_secs: u64) {
        self.tick(now);
        if matches!(self.phase, Phase::Closing | Phase::Settled) {
            return;
        }
        self.phase = Phase::Closing;
        self.close_at_secs = Some(at_secs);
        self.settle_due = true;
        self.actions
            .push_back(BuyerAction::Persist(BuyerRecord::CloseRequested {
                at_secs,
            }));
    }

    /// The channel is settled on-chain.
    pub fn on_settled(&mut self, now: UnixMs) {
        self.tick(now);
        if self.phase != Phase::Settled {
            self.phase = Phase::Settled;
            self.settle_due = false;
            self.resolve_at = None;
            self.buffer.clear();
            self.actions
                .push_back(BuyerAction::Persist(BuyerRecord::Settled));
        }
    }

    // ----- persistence -----------------------------------------------------------------------

    /// A minimal record list equivalent to everything persisted so far.
    pub fn snapshot(&self) -> Vec<BuyerRecord> {
        let mut out = vec![BuyerRecord::Channel {
            offer: self.offer.clone(),
            sig: self.offer_sig,
        }];
        for (e, k) in self.opener.keys() {
            out.push(BuyerRecord::EpochKey {
                epoch: *e,
                key: k.0,
            });
        }
        out.push(BuyerRecord::Position {
            next_seq: self.next,
            last_digest: self.last_digest,
        });
        if let Some(end) = self.stop_end {
            out.push(BuyerRecord::Stopped {
                seq: end.saturating_sub(1),
                by_buyer: !self.seller_stopped,
            });
        }
        if let Some(missing) = self.refused {
            out.push(BuyerRecord::AccusationRefused { missing });
        }
        if let Some(m) = self.accused {
            out.push(BuyerRecord::Accused { missing: m });
        }
        match self.phase {
            Phase::Closing => {
                if let Some(at_secs) = self.close_at_secs {
                    out.push(BuyerRecord::CloseRequested { at_secs });
                }
            }
            Phase::Settled => out.push(BuyerRecord::Settled),
            _ => {}
        }
        out
    }

    /// Rebuilds a channel from its records (first must be `Channel`). Deliveries resume right
    /// after the last persisted `Position`; the next ack is sent on `link_up`.
    pub fn restore(
        domain: Domain,
        key: Keypair,
        cfg: BuyerConfig,
        records: impl IntoIterator<Item = BuyerRecord>,
        now: UnixMs,
    ) -> Result<Self, BuyerError> {
        let mut it = records.into_iter();
        let Some(BuyerRecord::Channel { offer, sig }) = it.next() else {
            return Err(BuyerError::Restore("first record must be Channel".into()));
        };
        let mut b = Self::build(domain, key, offer, sig, None, cfg, now)?;
        for r in it {
            match r {
                BuyerRecord::Channel { .. } => {
                    return Err(BuyerError::Restore("duplicate Channel record".into()));
                }
                BuyerRecord::Position {
                    next_seq,
                    last_digest,
                } => {
                    if next_seq >= b.next {
                        b.next = next_seq;
                        b.last_digest = last_digest;
                    }
                }
                BuyerRecord::EpochKey { epoch, key } => b.opener.insert_key(epoch, EpochKey(key)),
                BuyerRecord::Stopped { seq, by_buyer } => {
                    let end = seq.saturating_add(1).max(b.start);
                    b.stop_end = Some(if by_buyer { b.in_flight_end(end) } else { end });
                    b.seller_stopped = !by_buyer;
                    if by_buyer {
                        b.phase = Phase::Stopping;
                        // Signed again (a Stop is never used on-chain): re-sent on link_up and
                        // when the seller keeps sending past it.
                        let stop = Stop {
                            channelId: b.id.0,
                            seq,
                            timestamp: now,
                        };
                        let sig = b.key.sign(&b.domain.digest(&stop));
                        b.stop_frame = Some(Frame::Stop { stop, sig }.encode_shared()?);
                    }
                }
                BuyerRecord::Accused { missing } => b.accused = Some(missing),
                BuyerRecord::AccusationCleared => b.accused = None,
                BuyerRecord::AccusationRefused { missing } => {
                    b.accused = None;
                    b.refused = Some(missing);
                }
                BuyerRecord::CloseRequested { at_secs } => {
                    b.phase = Phase::Closing;
                    b.close_at_secs = Some(at_secs);
                    b.settle_due = true;
                    // Postings seen before the restart are not recorded: assume there were some
                    // (the buyer then only settles if the seller did not).
                    b.saw_posting = true;
                }
                BuyerRecord::Settled => {
                    b.phase = Phase::Settled;
                    b.settle_due = false;
                }
            }
        }
        // Unknown whether the last ack went out: ack again on link_up.
        b.acked_next = b.start;
        if let (Some(d), Some(last)) = (b.last_digest, b.next.checked_sub(1)) {
            b.recent.push_back((last, d, None));
        }
        Ok(b)
    }
}
