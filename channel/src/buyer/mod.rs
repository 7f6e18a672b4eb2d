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

use alloy_primitives::{Address, B256, U256};

use crate::records::BuyerRecord;
use crate::seal::{Opener, SealError};
use crate::proof::{MessageProof, ProofError, VerifiedBatches};
use crate::sign::{Keypair, PublicKey, SigError, Signature, recover};
use crate::types::{Ack, ChannelId, Domain, Message, Offer, Stop, StreamId, UnixMs};
use crate::wire::{Frame, FrameBytes, WireError};

/// Buyer-side engine settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuyerConfig {
    /// Ack after this many new in-order messages (clamped to `max(1, W/2)`). 64 by default: a
    /// quarter of the default window, so the seller's window never waits on an ack, while every
    /// ack (one signature here, one check at the seller) covers two of a busy seller's batches.
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
    /// Close with `closeCooperatively` once the buyer's ack reaches the seller's Stop (else it
    /// always takes the normal close, `T_closure` long).
    pub cooperative_close: bool,
    /// The cooperative close's grace period: the seller sends `closeCooperatively` (it holds the
    /// buyer's final ack and its own Stop first); the buyer holds back its `requestClose` this
    /// long after its stop completed (its Stop sent, or the seller's Stop fully received). If the
    /// channel is not settled by then it sends `closeCooperatively` itself (when its ack is at
    /// the seller's Stop), and `requestClose` if that fails or this long again passes without a
    /// settlement (or at once, if it cannot close cooperatively). Like `settle_wait_ms`, it
    /// should exceed the time the seller's transaction needs to be mined and seen.
    pub cooperative_wait_ms: u64,
    /// The currency this buyer pays in: an ERC-20 token, or `Address::ZERO` for ETH (the default).
    /// An offer priced in another currency is refused ([`BuyerError::Currency`]): its price is not
    /// comparable with the buyer's limits.
    pub token: Address,
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
            ack_every: 64,
            ack_delay_ms: 20,
            reorder_capacity: 1024,
            reack_interval_ms: 200,
            equivocation_memory: 256,
            chain_grace_ms: 2_000,
            settle_wait_ms: 60_000,
            top_up: None,
            cooperative_close: true,
            cooperative_wait_ms: 60_000,
            token: Address::ZERO,
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
    /// Call `judge.accuse(channel, seen, proof, missing)`; report `on_accusation_opened`, or
    /// `on_accusation_refused` if the judge refuses it (a revert), or `on_accusation_closed` if
    /// the transaction failed otherwise (it is retried).
    Accuse {
        /// Channel.
        channel: ChannelId,
        /// A seller-signed message after the gap.
        seen: Message,
        /// The proof that the seller signed it.
        proof: MessageProof,
        /// The missing seq.
        missing: u64,
    },
    /// Call `judge.resolve(channel)` (the accusation was not defended in time).
    Resolve {
        /// Channel.
        channel: ChannelId,
    },
    /// Call `judge.proveEquivocation(channel, a, proofA, b, proofB)`.
    ProveEquivocation {
        /// Channel.
        channel: ChannelId,
        /// First message.
        a: Message,
        /// The proof that the seller signed it.
        proof_a: MessageProof,
        /// Conflicting message: the same seq, or the next seq with a `prev` that is not the
        /// digest of `a` (a broken link).
        b: Message,
        /// The proof that the seller signed it.
        proof_b: MessageProof,
    },
    /// Call `judge.submitStop(stop, sig)` with the seller's own signed `Stop`: the seller
    /// recorded a posted claim past it, and the judge gives the buyer `F - R` (Lemma 3's
    /// penalty, `StopViolationProven`).
    SubmitStop {
        /// Channel.
        channel: ChannelId,
        /// The seller's Stop.
        stop: Stop,
        /// The seller's signature of it.
        sig: Signature,
    },
    /// Call `judge.closeCooperatively(ack, ack_sig, stop, stop_sig)`: the buyer's latest ack is
    /// at the seller's Stop, the channel settles at once. Sent once; if it fails (report
    /// `on_close_cooperatively_failed`) the normal close goes on.
    CloseCooperatively {
        /// Channel.
        channel: ChannelId,
        /// The buyer's latest ack.
        ack: Ack,
        /// Its signature.
        ack_sig: Signature,
        /// The seller's Stop at the same seq.
        stop: Stop,
        /// The seller's signature of it.
        stop_sig: Signature,
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
    /// The offer is priced in another currency than the buyer pays in.
    #[error(
        "offer priced in {} but this buyer pays in {}: prices in different currencies are not comparable",
        currency_name(*offered),
        currency_name(*expected)
    )]
    Currency {
        /// The buyer's currency (`BuyerConfig::token`).
        expected: Address,
        /// The offer's `token`.
        offered: Address,
    },
    /// The message is for another stream.
    #[error("message of another stream")]
    WrongStream,
    /// `keccak256(payload) != payloadHash`.
    #[error("payload does not match its hash")]
    PayloadHash,
    /// The seller's signature does not verify.
    #[error("bad seller signature: {0}")]
    Signature(#[from] SigError),
    /// The message's proof does not show that the seller signed it.
    #[error("message not signed by the seller: {0}")]
    Proof(#[from] ProofError),
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
    proof: MessageProof,
    payload: Vec<u8>,
    /// Its proof was checked (else its digest was vouched for by its successor's link).
    sig_ok: bool,
    seen_at: UnixMs,
}

/// A recently delivered message: seq, digest, and the signed message (`None` after a restore).
type Recent = (u64, B256, Option<(Message, MessageProof)>);

#[derive(Clone, Debug)]
struct Seen {
    message: Message,
    proof: MessageProof,
    seen_at: UnixMs,
}

/// Counters for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyerStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Seller (batch) signatures verified.
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
    /// Batches whose signature was checked: one verification per batch.
    batches: VerifiedBatches,
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
    /// The lowest seller-signed `Stop` received: evidence against a posted claim past it.
    seller_stop: Option<(Stop, Signature)>,
    /// `SubmitStop` was emitted for a posted claim past the seller's Stop.
    stop_submitted: bool,
    /// `CloseCooperatively` was emitted.
    coop_sent: bool,
    /// While a cooperative close is expected: when the buyer acts itself (see
    /// [`BuyerConfig::cooperative_wait_ms`]); `None` once `RequestClose` was emitted.
    close_held_until: Option<UnixMs>,
    /// `RequestClose` was emitted (this engine run).
    close_requested: bool,
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

/// Names a currency for messages: `ETH` for `Address::ZERO`, else `token 0x…`.
pub fn currency_name(token: Address) -> String {
    if token.is_zero() {
        "ETH".to_owned()
    } else {
        format!("token {token}")
    }
}

/// Checks that an offer is priced in `expected` (the buyer's currency, `Address::ZERO` for ETH).
/// A buyer runs it with [`check_offer`] before opening the channel on-chain;
/// [`BuyerChannel::new`] runs it with [`BuyerConfig::token`].
pub fn check_offer_currency(offer: &Offer, expected: Address) -> Result<(), BuyerError> {
    if offer.token != expected {
        return Err(BuyerError::Currency {
            expected,
            offered: offer.token,
        });
    }
    Ok(())
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
        check_offer_currency(&offer, cfg.token)?;
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
        check_offer_currency(&offer, cfg.token)?;
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
            batches: VerifiedBatches::default(),
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
            seller_stop: None,
            stop_submitted: false,
            coop_sent: false,
            close_held_until: None,
            close_requested: false,
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

    pub(super) fn tick(&mut self, now: UnixMs) {
        self.now = self.now.max(now);
    }
}

mod chain;
mod inputs;
mod persist;
mod stop;
mod timers;
