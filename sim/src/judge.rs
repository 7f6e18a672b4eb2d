//! A model of the SUPRA judge contract v2 (`judge-contract/contracts/SupraJudge.sol`, rules in
//! `docs/PROTOCOL.md` sections 2 and 3): every function a broker calls — `open`, `topUp`,
//! `post`, `claim`, `claimPosted`, `requestClose`, `settle`, `accuse`, `defend`,
//! `defendWithAck`, `resolve`, `proveWrongCost`, `proveEquivocation`, `submitStop`,
//! `closeCooperatively` — with the contract's checks **in the contract's order**, so that a
//! refused call fails with the same error name (the part of a [`Refusal`] before `(`), and the
//! same payouts. `sim/tests/replay.rs` replays a simulated run's calls on the real contract
//! (Anvil) and compares every outcome, payout and the final channel state.
//!
//! Messages are seller-signed through a [`MessageProof`] (issue 11, docs/PROTOCOL.md §1 Batches):
//! `post`, `accuse` and `proveEquivocation` check it as the contract's `_checkSigned` does, in its
//! order and with its error names (`WrongStream`, `NotInBatch`, `BatchTooLarge`, `WrongRoot`, then
//! the batch signature: `WrongSigner`).
//!
//! Signatures are checked with the engine's own key code, digests with its EIP-712 [`Domain`]:
//! the parties' public keys are registered ([`Judge::register`]) and a signature must verify
//! under the expected signer's key ([`PublicKey::verify`], what `ecrecover` and a comparison
//! decide for real k256 keys, and the only way to check the `testkit` fast simulation keys); an
//! unregistered signer is recovered (real k256 only, as on-chain). Every malformed signature is
//! `WrongSigner` here (the contract names a high-s or 64-byte one with OpenZeppelin's
//! `ECDSAInvalidSignature*`; no party in the simulator makes one).
//!
//! Not modelled: deferred payouts / `withdraw` (a push to a broker's account never fails), the
//! storage packing limits a run cannot reach (`MAX_PRICE`, `uint96` amounts are checked; 2^40
//! seconds are not).

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256, keccak256};
use supra_channel::proof::{MAX_BATCH, MAX_PROOF_DEPTH, MessageProof, fold_path};
use supra_channel::sign::verify;
use supra_channel::{
    Ack, ChannelId, Domain, Message, Offer, PublicKey, Signature, Stop, StreamId, ack_cost,
};

/// `MAX_PAYLOAD_BYTES`.
pub const MAX_PAYLOAD_BYTES: usize = 98_304;
/// `MAX_T_ACK` (s).
pub const MAX_T_ACK: u64 = 86_400;
/// `MAX_T_CLOSURE` (s).
pub const MAX_T_CLOSURE: u64 = 7 * 86_400;
/// `sellerStop` is stored in 40 bits: a Stop's count is clamped to `2^40 - 2`.
const STOP_CLAMP: u128 = (1 << 40) - 2;

/// Status of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Open.
    Open,
    /// `requestClose` happened.
    Closing,
    /// Settled (by `settle`, `resolve`, a proof, a Stop penalty or a cooperative close).
    Settled,
}

/// An open accusation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispute {
    /// The missing seq.
    pub missing: u64,
    /// Defence deadline (chain seconds, inclusive).
    pub deadline: u64,
    /// A posting of `missing` answers the accusation if mined by then (chain seconds).
    pub post_by: u64,
}

/// A posting: what the judge stores per `(streamId, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    /// The message's digest (the contract keeps its first 24 bytes).
    pub digest: B256,
    /// The message's own timestamp in seconds, clamped to `u32`.
    pub signed_secs: u64,
    /// Block time of the `post` (s).
    pub posted_at: u64,
}

/// One channel record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRec {
    /// Status.
    pub status: Status,
    /// Its stream.
    pub stream: StreamId,
    /// Seller.
    pub seller: Address,
    /// Buyer.
    pub buyer: Address,
    /// `P`.
    pub price: U256,
    /// `W`.
    pub window: u64,
    /// `startSeq`.
    pub start: u64,
    /// `T_ack` (s).
    pub t_ack: u64,
    /// `T_closure` (s).
    pub t_closure: u64,
    /// `openedAt` (s).
    pub opened_at: u64,
    /// `extendedAt` (s): last claim raising `acked`, or top-up; 0 if none.
    pub extended_at: u64,
    /// `F`.
    pub deposit: U256,
    /// `R`.
    pub claimed: U256,
    /// Messages covered by the highest claimed ack, from `startSeq`.
    pub acked: u128,
    /// Messages covered by the recorded posted claim, from `startSeq`.
    pub posted_claim: u128,
    /// Messages the seller's lowest recorded Stop leaves owed (`None`: no Stop).
    pub seller_stop: Option<u128>,
    /// `requestClose` time (s).
    pub close_at: Option<u64>,
    /// Open accusation.
    pub dispute: Option<Dispute>,
    /// Whether the progress word (claimed, acked, close, extendedAt) was ever written: its first
    /// write costs ~17k gas more (the gas table's "first" figures).
    pub progress_written: bool,
    /// Paid to the seller so far.
    pub to_seller: U256,
    /// Paid to the buyer (refunds, penalties).
    pub to_buyer: U256,
}

/// What a successful call did, for the caller to notify the parties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Channel opened.
    Opened(ChannelId),
    /// Deposit topped up; the new deposit.
    ToppedUp(U256),
    /// A message was posted for the first time (`true`) or again (no-op, `false`).
    Posted(bool),
    /// A claim paid `amount`; `R` is now `total`.
    Claimed {
        /// Paid by this call.
        amount: U256,
        /// New `R`.
        total: U256,
    },
    /// A posted claim was recorded.
    PostedClaimRecorded,
    /// Close requested at this chain second.
    CloseRequested(u64),
    /// Settled with these payouts.
    Settled {
        /// To the seller.
        to_seller: U256,
        /// To the buyer.
        to_buyer: U256,
    },
    /// Accusation opened, defence deadline (s).
    Accused(u64),
    /// Accusation answered (`defend`, `defendWithAck` — which may also have paid `amount` —,
    /// or a `resolve` finding an in-time posting).
    Defended {
        /// Paid by this call (defendWithAck).
        amount: U256,
        /// New `R`.
        total: U256,
    },
    /// A seller's Stop was recorded (`answered`: it also closed an accusation past it).
    StopRecorded {
        /// Whether it answered the open accusation.
        answered: bool,
    },
}

/// A refused call: the contract's error name, then details in parentheses.
pub type Refusal = String;

/// The error name of a refusal (`"NotPosted"` for `"NotPosted(5)"`).
pub fn refusal_name(r: &str) -> &str {
    r.split(['(', ' ', '{']).next().unwrap_or(r)
}

type R<T> = Result<T, Refusal>;

/// The judge model (postings of any stream, any number of channels).
#[derive(Debug)]
pub struct Judge {
    domain: Domain,
    /// Channels by id.
    pub channels: BTreeMap<ChannelId, ChannelRec>,
    /// Postings by `(stream, seq)`.
    pub postings: BTreeMap<(StreamId, u64), Posting>,
    /// Known signers' public keys.
    keys: BTreeMap<Address, PublicKey>,
}

fn err<T>(name: &str, detail: impl std::fmt::Debug) -> R<T> {
    Err(format!("{name}({detail:?})"))
}

fn min(a: U256, b: U256) -> U256 {
    a.min(b)
}

impl ChannelRec {
    /// `_owedCount`: the window after the last claimed ack, what the deposit covers, and no
    /// further than the seller's recorded Stop.
    fn owed_count(&self) -> u128 {
        let mut owed = self.acked + u128::from(self.window);
        let covered = self.deposit / self.price;
        if covered < U256::from(owed) {
            owed = covered.to::<u128>();
        }
        if let Some(stop) = self.seller_stop {
            owed = owed.min(stop);
        }
        owed
    }

    /// `_applyAck`: pays `min(cost - R, F - R)` (0 when not ahead of `R`) and raises `acked`
    /// (then `extendedAt` = now). Returns what it paid.
    fn apply_ack(&mut self, count: u128, now: u64) -> U256 {
        let cost = self.price * U256::from(count);
        let mut paid = U256::ZERO;
        if cost > self.claimed {
            paid = min(cost - self.claimed, self.deposit - self.claimed);
            self.claimed += paid;
            self.progress_written = true;
        }
        if count > self.acked {
            self.acked = count;
            self.extended_at = now;
            self.progress_written = true;
        }
        self.to_seller += paid;
        paid
    }

    fn settle_with(&mut self, to_seller: U256, to_buyer: U256) -> Outcome {
        self.to_seller += to_seller;
        self.to_buyer += to_buyer;
        self.status = Status::Settled;
        self.dispute = None;
        Outcome::Settled {
            to_seller,
            to_buyer,
        }
    }
}

impl Judge {
    /// A judge for `domain`.
    pub fn new(domain: Domain) -> Self {
        Self {
            domain,
            channels: BTreeMap::new(),
            postings: BTreeMap::new(),
            keys: BTreeMap::new(),
        }
    }

    /// Registers a party's public key: its signatures are checked with it.
    pub fn register(&mut self, key: PublicKey) {
        self.keys.insert(key.address(), key);
    }

    /// `_checkSigner`: `sig` over `digest` is `signer`'s (its registered key, else real k256
    /// recovery).
    fn check_sig(&self, digest: &B256, sig: &Signature, signer: Address) -> R<()> {
        let r = match self.keys.get(&signer) {
            Some(k) => k.verify(digest, sig),
            None => verify(digest, sig, signer).map(drop),
        };
        r.or_else(|_| err("WrongSigner", signer))
    }

    /// `_checkSigned`: `proof` shows that `seller` signed `m` (whose digest is `digest`): the batch
    /// is of `m`'s stream, its range holds `m.seq` and spans fewer than `MAX_BATCH` seqs, the path
    /// has at most `MAX_PROOF_DEPTH` hashes and folds `digest` onto the batch's root, and the
    /// seller signed the batch.
    fn check_signed(
        &self,
        m: &Message,
        digest: B256,
        proof: &MessageProof,
        seller: Address,
    ) -> R<()> {
        let b = &proof.batch;
        if b.streamId != m.streamId {
            return err("WrongStream", (m.streamId, b.streamId));
        }
        if m.seq < b.firstSeq || m.seq > b.lastSeq {
            return err("NotInBatch", (m.seq, b.firstSeq, b.lastSeq));
        }
        if b.lastSeq - b.firstSeq >= MAX_BATCH || proof.path.len() > MAX_PROOF_DEPTH {
            return err("BatchTooLarge", (b.firstSeq, b.lastSeq, proof.path.len()));
        }
        let root = fold_path(digest, &proof.path);
        if root != b.root {
            return err("WrongRoot", (b.root, root));
        }
        self.check_sig(&self.domain.digest(b), &proof.sig, seller)
    }

    /// `_live`: a channel that is Open or Closing.
    fn live(&self, id: ChannelId) -> R<ChannelRec> {
        match self.channels.get(&id) {
            None => err("WrongStatus", "None"),
            Some(c) if c.status == Status::Settled => err("WrongStatus", Status::Settled),
            Some(c) => Ok(c.clone()),
        }
    }

    /// A channel that is exactly `status` (`topUp`, `requestClose`: Open; `settle`: Closing).
    fn in_status(&self, id: ChannelId, status: Status) -> R<ChannelRec> {
        match self.channels.get(&id) {
            None => err("WrongStatus", "None"),
            Some(c) if c.status != status => err("WrongStatus", c.status),
            Some(c) => Ok(c.clone()),
        }
    }

    /// Writes a channel back (every call works on a copy, written only on success: a revert
    /// changes nothing).
    fn put(&mut self, id: ChannelId, c: ChannelRec) {
        self.channels.insert(id, c);
    }

    /// `_checkAck`: the buyer's signature, the seq and the cost; the count of messages covered.
    fn check_ack(&self, a: &Ack, sig: &Signature, c: &ChannelRec) -> R<u128> {
        self.check_sig(&self.domain.digest(a), sig, c.buyer)?;
        if a.seq < c.start {
            return err("SeqBeforeStart", (a.seq, c.start));
        }
        let count = u128::from(a.seq - c.start) + 1;
        let expected = c.price * U256::from(count);
        if a.cost != expected {
            return err("WrongCost", (a.seq, a.cost, expected));
        }
        Ok(count)
    }

    /// `open(offer, sellerSig)` with `value` wei, by `from`, at chain second `now`.
    pub fn open(
        &mut self,
        from: Address,
        offer: &Offer,
        sig: &Signature,
        value: U256,
        now: u64,
    ) -> R<Outcome> {
        let d = self.domain.digest(offer);
        if from != offer.buyer {
            return err("NotBuyer", (from, offer.buyer));
        }
        if now > offer.validUntil {
            return err("OfferExpired", (offer.validUntil, now));
        }
        if offer.seller != offer.stream().seller() {
            return err("SellerMismatch", offer.seller);
        }
        if offer.price.is_zero() || offer.window == 0 || offer.tAck == 0 || offer.tClosure == 0 {
            return err("InvalidTerms", ());
        }
        if u64::from(offer.tAck) > MAX_T_ACK || u64::from(offer.tClosure) > MAX_T_CLOSURE {
            return err("TermsTooLong", (offer.tAck, offer.tClosure));
        }
        let max_price = (U256::from(1) << 72) - U256::from(1);
        if offer.price > max_price {
            return err("AmountTooLarge", offer.price);
        }
        if offer.window > u64::from(u32::MAX) {
            return err("WindowTooLarge", offer.window);
        }
        let required = offer.price * U256::from(offer.window);
        if value < required {
            return err("DepositTooSmall", (value, required));
        }
        if value > max_u96() {
            return err("AmountTooLarge", value);
        }
        self.check_sig(&d, sig, offer.seller)?;
        let id = ChannelId::from_offer_digest(d);
        if self.channels.contains_key(&id) {
            return err("ChannelExists", id);
        }
        let rec = ChannelRec {
            status: Status::Open,
            stream: offer.stream(),
            seller: offer.seller,
            buyer: offer.buyer,
            price: offer.price,
            window: offer.window,
            start: offer.startSeq,
            t_ack: u64::from(offer.tAck),
            t_closure: u64::from(offer.tClosure),
            opened_at: now,
            extended_at: 0,
            deposit: value,
            claimed: U256::ZERO,
            acked: 0,
            posted_claim: 0,
            seller_stop: None,
            close_at: None,
            dispute: None,
            progress_written: false,
            to_seller: U256::ZERO,
            to_buyer: U256::ZERO,
        };
        self.put(id, rec);
        Ok(Outcome::Opened(id))
    }

    /// `topUp(id)` with `value` wei, by `from`.
    pub fn top_up(&mut self, from: Address, id: ChannelId, value: U256, now: u64) -> R<Outcome> {
        let mut c = self.in_status(id, Status::Open)?;
        if from != c.buyer {
            return err("NotBuyer", (from, c.buyer));
        }
        if value.is_zero() {
            return err("ZeroAmount", ());
        }
        let deposit = c.deposit + value;
        if deposit > max_u96() {
            return err("AmountTooLarge", deposit);
        }
        c.deposit = deposit;
        c.extended_at = now;
        c.progress_written = true;
        self.put(id, c);
        Ok(Outcome::ToppedUp(deposit))
    }

    /// `post(m, payload, proof)` mined at `now`.
    pub fn post(
        &mut self,
        m: &Message,
        payload: &[u8],
        proof: &MessageProof,
        now: u64,
    ) -> R<Outcome> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return err("PayloadTooLarge", payload.len());
        }
        let h = keccak256(payload);
        if h != m.payloadHash {
            return err("PayloadMismatch", (m.payloadHash, h));
        }
        let d = self.domain.digest(m);
        let key = (m.stream(), m.seq);
        let stored = self.postings.get(&key).copied();
        if stored.is_some_and(|p| p.digest[..24] == d[..24]) {
            return Ok(Outcome::Posted(false)); // the same message again
        }
        self.check_signed(m, d, proof, m.stream().seller())?;
        if stored.is_some() {
            return err("ConflictingPost", (m.seq, d));
        }
        let posting = Posting {
            digest: d,
            signed_secs: (m.timestamp / 1000).min(u64::from(u32::MAX)),
            posted_at: now,
        };
        self.postings.insert(key, posting);
        Ok(Outcome::Posted(true))
    }

    /// `claim(ack, buyerSig)` mined at `now` (anyone may send it).
    pub fn claim(&mut self, ack: &Ack, sig: &Signature, now: u64) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let mut c = self.live(id)?;
        let count = self.check_ack(ack, sig, &c)?;
        let amount = c.apply_ack(count, now);
        if amount.is_zero() {
            return err("NothingToClaim", ack.seq);
        }
        let total = c.claimed;
        self.put(id, c);
        Ok(Outcome::Claimed { amount, total })
    }

    /// Postings `claimPosted(id, upto)` would check (the gas of the call grows with them).
    pub fn posted_claim_span(&self, id: ChannelId, upto: u64) -> u64 {
        self.channels.get(&id).map_or(0, |c| {
            let from = u128::from(c.start) + c.acked.max(c.posted_claim);
            (u128::from(upto) + 1).saturating_sub(from) as u64
        })
    }

    /// `claimPosted(id, uptoSeq)` by `from`.
    pub fn claim_posted(&mut self, from: Address, id: ChannelId, upto: u64) -> R<Outcome> {
        let mut c = self.live(id)?;
        if from != c.seller {
            return err("NotSeller", (from, c.seller));
        }
        if upto < c.start {
            return err("SeqBeforeStart", (upto, c.start));
        }
        let count = u128::from(upto - c.start) + 1;
        let w = u128::from(c.window);
        if count <= c.acked || count > c.acked + w {
            return err("ClaimOutOfWindow", upto);
        }
        if count <= c.posted_claim {
            return err("NothingToClaim", upto);
        }
        if let Some(stop) = c.seller_stop
            && count > stop
        {
            return err("PastSellerStop", (upto, stop));
        }
        // A Closing channel is owed what was in flight at the close: posted (mined) within T_ack
        // of it, and stamped by the seller no later than it.
        let close_at = c.close_at.filter(|_| c.status == Status::Closing);
        let limit = close_at.map_or(u64::MAX, |t| t + c.t_ack);
        let signed_limit = close_at.unwrap_or(u64::MAX);
        let from_seq = u128::from(c.start) + c.acked.max(c.posted_claim);
        for seq in from_seq..=u128::from(upto) {
            let seq = seq as u64;
            let Some(p) = self.postings.get(&(c.stream, seq)) else {
                return err("NotPosted", seq);
            };
            if p.posted_at > limit {
                return err("PostedAfterClose", (seq, p.posted_at, limit));
            }
            if p.signed_secs > signed_limit {
                return err("PostedAfterClose", (seq, p.signed_secs, signed_limit));
            }
        }
        c.posted_claim = count;
        self.put(id, c);
        Ok(Outcome::PostedClaimRecorded)
    }

    /// `requestClose(id)` by `from` at `now`.
    pub fn request_close(&mut self, from: Address, id: ChannelId, now: u64) -> R<Outcome> {
        let mut c = self.in_status(id, Status::Open)?;
        if from != c.buyer && from != c.seller {
            return err("NotParty", from);
        }
        c.status = Status::Closing;
        c.close_at = Some(now);
        c.progress_written = true;
        self.put(id, c);
        Ok(Outcome::CloseRequested(now))
    }

    /// `settle(id)` at `now` (anyone).
    pub fn settle(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let mut c = self.in_status(id, Status::Closing)?;
        let settle_after = c.close_at.unwrap_or(0) + c.t_closure;
        if now < settle_after {
            return err("ClosureNotElapsed", (settle_after, now));
        }
        if let Some(d) = c.dispute {
            return err("AccusationOpen", d.missing);
        }
        let posted_cost = c.price * U256::from(c.posted_claim);
        let mut to_seller = U256::ZERO;
        if posted_cost > c.claimed {
            to_seller = min(posted_cost - c.claimed, c.deposit - c.claimed);
        }
        c.claimed += to_seller;
        let to_buyer = c.deposit - c.claimed;
        let out = c.settle_with(to_seller, to_buyer);
        self.put(id, c);
        Ok(out)
    }

    /// `accuse(id, seen, proof, missing)` by `from` at `now`.
    pub fn accuse(
        &mut self,
        from: Address,
        id: ChannelId,
        seen: &Message,
        proof: &MessageProof,
        missing: u64,
        now: u64,
    ) -> R<Outcome> {
        let mut c = self.live(id)?;
        if from != c.buyer {
            return err("NotBuyer", (from, c.buyer));
        }
        if c.status == Status::Closing {
            // Bounded delay: settle waits for at most one T_ack past T_closure.
            let settle_after = c.close_at.unwrap_or(0) + c.t_closure;
            if now >= settle_after {
                return err("ClosureElapsed", (settle_after, now));
            }
        }
        if let Some(d) = c.dispute {
            return err("AccusationOpen", d.missing);
        }
        if seen.stream() != c.stream {
            return err("WrongStream", seen.streamId);
        }
        self.check_signed(seen, self.domain.digest(seen), proof, c.seller)?;
        let lowest = u128::from(c.start) + c.acked;
        if u128::from(missing) < lowest || missing >= seen.seq {
            return err("MissingSeqOutOfRange", (missing, lowest, seen.seq));
        }
        let owed = c.owed_count();
        if u128::from(missing - c.start) >= owed {
            return err("NotOwed", (missing, u128::from(c.start) + owed));
        }
        // `_anchor`: the latest of the seen message's time, the opening and the last
        // extension, never after the accusation itself.
        let anchor = (seen.timestamp / 1000)
            .max(c.opened_at)
            .max(c.extended_at)
            .min(now);
        let post_by = anchor + c.t_ack;
        if let Some(p) = self.postings.get(&(c.stream, missing))
            && p.posted_at <= post_by
        {
            return err("AlreadyPosted", missing);
        }
        let deadline = now + c.t_ack;
        c.dispute = Some(Dispute {
            missing,
            deadline,
            post_by,
        });
        self.put(id, c);
        Ok(Outcome::Accused(deadline))
    }

    /// `defend(id)` (anyone; no deadline of its own: the posting must have been mined by the
    /// accusation's `postBy`).
    pub fn defend(&mut self, id: ChannelId) -> R<Outcome> {
        let mut c = self.live(id)?;
        let Some(d) = c.dispute else {
            return err("NoAccusation", id);
        };
        let Some(p) = self.postings.get(&(c.stream, d.missing)) else {
            return err("NotPosted", d.missing);
        };
        if p.posted_at > d.post_by {
            return err("DeadlinePassed", (d.post_by, p.posted_at));
        }
        c.dispute = None;
        let total = c.claimed;
        self.put(id, c);
        Ok(Outcome::Defended {
            amount: U256::ZERO,
            total,
        })
    }

    /// `defendWithAck(ack, sig)` at `now` (anyone).
    pub fn defend_with_ack(&mut self, ack: &Ack, sig: &Signature, now: u64) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let mut c = self.live(id)?;
        // `_answerable`.
        let Some(d) = c.dispute else {
            return err("NoAccusation", id);
        };
        if now > d.deadline {
            return err("DeadlinePassed", (d.deadline, now));
        }
        let count = self.check_ack(ack, sig, &c)?;
        if ack.seq < d.missing {
            return err("AckTooLow", (ack.seq, d.missing));
        }
        c.dispute = None;
        let amount = c.apply_ack(count, now);
        let total = c.claimed;
        self.put(id, c);
        Ok(Outcome::Defended { amount, total })
    }

    /// `resolve(id)` at `now` (anyone): after the deadline the buyer is refunded `F - R`, unless
    /// the missing message was posted in time (then the accusation is answered).
    pub fn resolve(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let mut c = self.live(id)?;
        let Some(d) = c.dispute else {
            return err("NoAccusation", id);
        };
        if now <= d.deadline {
            return err("DeadlineNotPassed", (d.deadline, now));
        }
        if let Some(p) = self.postings.get(&(c.stream, d.missing))
            && p.posted_at <= d.post_by
        {
            c.dispute = None;
            let total = c.claimed;
            self.put(id, c);
            return Ok(Outcome::Defended {
                amount: U256::ZERO,
                total,
            });
        }
        let refund = c.deposit - c.claimed;
        let out = c.settle_with(U256::ZERO, refund);
        self.put(id, c);
        Ok(out)
    }

    /// `proveWrongCost(ack, sig)` (anyone): the seller takes `F - R`.
    pub fn prove_wrong_cost(&mut self, ack: &Ack, sig: &Signature) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let mut c = self.live(id)?;
        self.check_sig(&self.domain.digest(ack), sig, c.buyer)?;
        if ack.seq >= c.start && ack_cost(c.start, ack.seq, c.price) == Some(ack.cost) {
            return err("CostIsCorrect", (ack.seq, ack.cost));
        }
        let penalty = c.deposit - c.claimed;
        c.claimed = c.deposit;
        let out = c.settle_with(penalty, U256::ZERO);
        self.put(id, c);
        Ok(out)
    }

    /// `proveEquivocation(id, a, proofA, b, proofB)` (anyone): the buyer takes `F - R`.
    pub fn prove_equivocation(
        &mut self,
        id: ChannelId,
        a: &Message,
        proof_a: &MessageProof,
        b: &Message,
        proof_b: &MessageProof,
    ) -> R<Outcome> {
        let mut c = self.live(id)?;
        if a.stream() != c.stream {
            return err("WrongStream", a.streamId);
        }
        if b.stream() != c.stream {
            return err("WrongStream", b.streamId);
        }
        if a.seq < c.start {
            return err("SeqBeforeStart", (a.seq, c.start));
        }
        let (da, db) = (self.domain.digest(a), self.domain.digest(b));
        let same_seq = a.seq == b.seq && da != db;
        let broken_link = u128::from(b.seq) == u128::from(a.seq) + 1 && b.prev != da;
        if !same_seq && !broken_link {
            return err("NotEquivocation", (da, db));
        }
        self.check_signed(a, da, proof_a, c.seller)?;
        self.check_signed(b, db, proof_b, c.seller)?;
        let refund = c.deposit - c.claimed;
        let out = c.settle_with(U256::ZERO, refund);
        self.put(id, c);
        Ok(out)
    }

    /// `submitStop(stop, sellerSig)` at `now` (anyone): records the seller's lowest Stop; the
    /// seller's posted claim past it is Lemma 3's penalty (the buyer takes `F - R`); an open
    /// accusation about a seq past it is answered.
    pub fn submit_stop(&mut self, s: &Stop, sig: &Signature, now: u64) -> R<Outcome> {
        let id = ChannelId(s.channelId);
        let mut c = self.live(id)?;
        self.check_sig(&self.domain.digest(s), sig, c.seller)?;
        let count = if s.seq >= c.start {
            (u128::from(s.seq - c.start) + 1).min(STOP_CLAMP)
        } else {
            0
        };
        let stop = c.seller_stop.map_or(count, |old| old.min(count));
        c.seller_stop = Some(stop);
        if c.posted_claim > stop {
            let refund = c.deposit - c.claimed;
            let out = c.settle_with(U256::ZERO, refund);
            self.put(id, c);
            return Ok(out);
        }
        let mut answered = false;
        if let Some(d) = c.dispute
            && now <= d.deadline
            && u128::from(d.missing - c.start) >= stop
        {
            c.dispute = None;
            answered = true;
        }
        self.put(id, c);
        Ok(Outcome::StopRecorded { answered })
    }

    /// `closeCooperatively(ack, buyerSig, stop, sellerSig)` at `now` (anyone): pays the ack and
    /// refunds the rest at once.
    pub fn close_cooperatively(
        &mut self,
        ack: &Ack,
        ack_sig: &Signature,
        s: &Stop,
        stop_sig: &Signature,
        now: u64,
    ) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let mut c = self.live(id)?;
        let count = self.check_ack(ack, ack_sig, &c)?;
        if s.channelId != ack.channelId || s.seq != ack.seq {
            return err("StopMismatch", (ack.seq, s.seq));
        }
        self.check_sig(&self.domain.digest(s), stop_sig, c.seller)?;
        // `apply_ack` books its payment to the seller; `settle_with` must not count it twice.
        let to_seller = c.apply_ack(count, now);
        c.to_seller -= to_seller;
        let to_buyer = c.deposit - c.claimed;
        let out = c.settle_with(to_seller, to_buyer);
        self.put(id, c);
        Ok(out)
    }

    /// The channel record.
    pub fn channel(&self, id: ChannelId) -> Option<&ChannelRec> {
        self.channels.get(&id)
    }
}

fn max_u96() -> U256 {
    (U256::from(1) << 96) - U256::from(1)
}
