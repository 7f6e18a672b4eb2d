//! A model of the SUPRA judge contract (`judge-contract/contracts/SupraJudge.sol`), with the
//! rules of `docs/PROTOCOL.md` section 2 that the simulated parties exercise: `open`, `post`,
//! `claim`, `claimPosted`, `requestClose`, `settle`, `accuse`, `defend`, `defendWithAck`,
//! `resolve`, `proveWrongCost`, `proveEquivocation`. Signatures are checked with the engine's
//! own key code, digests with its EIP-712 [`Domain`]: the parties' public keys are registered
//! ([`Judge::register`]) and a signature must verify under the expected signer's key
//! ([`PublicKey::verify`], what `ecrecover` and a comparison decide for real k256 keys, and the
//! only way to check the `testkit` fast simulation keys); an unregistered signer is recovered
//! (real k256 only, as on-chain).
//!
//! Not modelled: `topUp`, deferred payouts / `withdraw` (brokers' EOAs never see a deferral),
//! storage packing limits beyond the ones a run can reach.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256, keccak256};
use supra_channel::sign::verify;
use supra_channel::{
    Ack, ChannelId, Domain, Message, Offer, PublicKey, Signature, StreamId, ack_cost,
};

/// Status of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Open.
    Open,
    /// `requestClose` happened.
    Closing,
    /// Settled (by `settle`, `resolve` or a proof).
    Settled,
}

/// An open accusation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispute {
    /// The missing seq.
    pub missing: u64,
    /// Defence deadline (chain seconds, inclusive).
    pub deadline: u64,
}

/// One channel record.
#[derive(Clone, Debug)]
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
    /// `F`.
    pub deposit: U256,
    /// `R`.
    pub claimed: U256,
    /// Messages covered by the highest claimed ack, from `startSeq`.
    pub acked: u64,
    /// Messages covered by the recorded posted claim, from `startSeq`.
    pub posted_claim: u64,
    /// `requestClose` time (s).
    pub close_at: Option<u64>,
    /// Open accusation.
    pub dispute: Option<Dispute>,
    /// Whether the claims storage word was written (first claim costs more).
    pub claims_word: bool,
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
    /// Accusation defended (`defendWithAck` may also have paid `claimed`).
    Defended {
        /// Paid by this call (defendWithAck).
        amount: U256,
        /// New `R`.
        total: U256,
    },
}

/// The judge model (one stream's postings, any number of channels).
#[derive(Debug)]
pub struct Judge {
    domain: Domain,
    /// Channels by id.
    pub channels: BTreeMap<ChannelId, ChannelRec>,
    /// Postings `(stream, seq) -> (digest, message timestamp ms)`.
    pub postings: BTreeMap<(StreamId, u64), (B256, u64)>,
    /// Known signers' public keys.
    keys: BTreeMap<Address, PublicKey>,
}

type R<T> = Result<T, String>;

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

    /// `sig` over `digest` is `signer`'s (its registered key, else real k256 recovery).
    fn check_sig(&self, digest: &B256, sig: &Signature, signer: Address) -> R<()> {
        let r = match self.keys.get(&signer) {
            Some(k) => k.verify(digest, sig),
            None => verify(digest, sig, signer).map(drop),
        };
        r.map_err(|_| "WrongSigner".to_string())
    }

    fn ch(&mut self, id: ChannelId) -> R<&mut ChannelRec> {
        self.channels
            .get_mut(&id)
            .ok_or_else(|| "WrongStatus(None)".to_string())
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
        if from != offer.buyer {
            return Err("NotBuyer".into());
        }
        if now > offer.validUntil {
            return Err("OfferExpired".into());
        }
        if offer.seller != offer.stream().seller() {
            return Err("SellerMismatch".into());
        }
        let d = self.domain.digest(offer);
        self.check_sig(&d, sig, offer.seller)?;
        if offer.price.is_zero() || offer.window == 0 || offer.tAck == 0 || offer.tClosure == 0 {
            return Err("InvalidTerms".into());
        }
        if value < offer.price * U256::from(offer.window) {
            return Err("DepositTooSmall".into());
        }
        let id = ChannelId::from_offer_digest(d);
        if self.channels.contains_key(&id) {
            return Err("ChannelExists".into());
        }
        self.channels.insert(
            id,
            ChannelRec {
                status: Status::Open,
                stream: offer.stream(),
                seller: offer.seller,
                buyer: offer.buyer,
                price: offer.price,
                window: offer.window,
                start: offer.startSeq,
                t_ack: u64::from(offer.tAck),
                t_closure: u64::from(offer.tClosure),
                deposit: value,
                claimed: U256::ZERO,
                acked: 0,
                posted_claim: 0,
                close_at: None,
                dispute: None,
                claims_word: false,
                to_seller: U256::ZERO,
                to_buyer: U256::ZERO,
            },
        );
        Ok(Outcome::Opened(id))
    }

    /// `post(m, payload, sig)`.
    pub fn post(&mut self, m: &Message, payload: &[u8], sig: &Signature) -> R<Outcome> {
        if keccak256(payload) != m.payloadHash {
            return Err("PayloadMismatch".into());
        }
        let d = self.domain.digest(m);
        self.check_sig(&d, sig, m.stream().seller())?;
        match self.postings.get(&(m.stream(), m.seq)) {
            Some((x, _)) if *x == d => Ok(Outcome::Posted(false)),
            Some(_) => Err("ConflictingPost".into()),
            None => {
                self.postings.insert((m.stream(), m.seq), (d, m.timestamp));
                Ok(Outcome::Posted(true))
            }
        }
    }

    fn pay_ack(&mut self, ack: &Ack, sig: &Signature, allow_zero: bool) -> R<(U256, U256)> {
        let id = ChannelId(ack.channelId);
        let d = self.domain.digest(ack);
        let c = self.ch(id)?;
        if c.status == Status::Settled {
            return Err("WrongStatus(Settled)".into());
        }
        let buyer = c.buyer;
        self.check_sig(&d, sig, buyer)?;
        let c = self.ch(id)?;
        if ack.seq < c.start {
            return Err("SeqBeforeStart".into());
        }
        if ack_cost(c.start, ack.seq, c.price) != Some(ack.cost) {
            return Err("WrongCost".into());
        }
        let r = ack
            .cost
            .saturating_sub(c.claimed)
            .min(c.deposit.saturating_sub(c.claimed));
        let n = ack.seq - c.start + 1;
        if r.is_zero() && !allow_zero {
            return Err("NothingToClaim".into());
        }
        c.claimed += r;
        c.to_seller += r;
        c.acked = c.acked.max(n);
        c.claims_word = true;
        Ok((r, c.claimed))
    }

    /// Whether the next claim of `id` is its first (the costlier one).
    pub fn first_claim(&self, id: ChannelId) -> bool {
        self.channels.get(&id).is_none_or(|c| !c.claims_word)
    }

    /// `claim(ack, buyerSig)`.
    pub fn claim(&mut self, ack: &Ack, sig: &Signature) -> R<Outcome> {
        let (amount, total) = self.pay_ack(ack, sig, false)?;
        Ok(Outcome::Claimed { amount, total })
    }

    /// `claimPosted(id, uptoSeq)` by the seller.
    pub fn claim_posted(&mut self, id: ChannelId, upto: u64) -> R<Outcome> {
        let postings = &self.postings;
        let c = self
            .channels
            .get_mut(&id)
            .ok_or_else(|| "WrongStatus(None)".to_string())?;
        if c.status == Status::Settled {
            return Err("WrongStatus(Settled)".into());
        }
        if upto < c.start {
            return Err("SeqBeforeStart".into());
        }
        let n = upto - c.start + 1;
        if n <= c.acked || n > c.acked + c.window {
            return Err("ClaimOutOfWindow".into());
        }
        if n <= c.posted_claim {
            return Err("NothingToClaim".into());
        }
        let from = c.start + c.acked.max(c.posted_claim);
        for s in from..=upto {
            let Some((_, ts)) = postings.get(&(c.stream, s)) else {
                return Err(format!("NotPosted({s})"));
            };
            if let Some(at) = c.close_at
                && *ts > at * 1000
            {
                return Err(format!("PostedAfterClose({s})"));
            }
        }
        c.posted_claim = n;
        Ok(Outcome::PostedClaimRecorded)
    }

    /// `requestClose(id)`.
    pub fn request_close(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let c = self.ch(id)?;
        if c.status != Status::Open {
            return Err(format!("WrongStatus({:?})", c.status));
        }
        c.status = Status::Closing;
        c.close_at = Some(now);
        Ok(Outcome::CloseRequested(now))
    }

    /// `settle(id)`.
    pub fn settle(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let c = self.ch(id)?;
        if c.status != Status::Closing {
            return Err(format!("WrongStatus({:?})", c.status));
        }
        let at = c.close_at.unwrap_or(0);
        if now < at + c.t_closure {
            return Err("ClosureNotElapsed".into());
        }
        if c.dispute.is_some() {
            return Err("AccusationOpen".into());
        }
        let owed = c.price * U256::from(c.posted_claim);
        let to_seller = owed
            .saturating_sub(c.claimed)
            .min(c.deposit.saturating_sub(c.claimed));
        c.claimed += to_seller;
        c.to_seller += to_seller;
        let to_buyer = c.deposit - c.claimed;
        c.to_buyer += to_buyer;
        c.status = Status::Settled;
        Ok(Outcome::Settled {
            to_seller,
            to_buyer,
        })
    }

    /// `accuse(id, seen, sig, missing)` by the buyer at chain second `now`.
    pub fn accuse(
        &mut self,
        id: ChannelId,
        seen: &Message,
        sig: &Signature,
        missing: u64,
        now: u64,
    ) -> R<Outcome> {
        let d = self.domain.digest(seen);
        let posted = self.postings.contains_key(&(seen.stream(), missing));
        let seller = self.ch(id)?.seller;
        let sig_ok = self.check_sig(&d, sig, seller);
        let c = self.ch(id)?;
        if c.status == Status::Settled {
            return Err("WrongStatus(Settled)".into());
        }
        if c.dispute.is_some() {
            return Err("AccusationOpen".into());
        }
        if seen.stream() != c.stream {
            return Err("WrongStream".into());
        }
        sig_ok?;
        if missing < c.start + c.acked || missing >= seen.seq {
            return Err("MissingSeqOutOfRange".into());
        }
        if posted {
            return Err("AlreadyPosted".into());
        }
        let deadline = now + c.t_ack;
        c.dispute = Some(Dispute { missing, deadline });
        Ok(Outcome::Accused(deadline))
    }

    /// `defend(id)`.
    pub fn defend(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let c = self
            .channels
            .get(&id)
            .ok_or_else(|| "WrongStatus(None)".to_string())?;
        let Some(dsp) = c.dispute else {
            return Err("NoAccusation".into());
        };
        if now > dsp.deadline {
            return Err("DeadlinePassed".into());
        }
        if !self.postings.contains_key(&(c.stream, dsp.missing)) {
            return Err("NotPosted".into());
        }
        let total = c.claimed;
        if let Some(c) = self.channels.get_mut(&id) {
            c.dispute = None;
        }
        Ok(Outcome::Defended {
            amount: U256::ZERO,
            total,
        })
    }

    /// `defendWithAck(ack, sig)`.
    pub fn defend_with_ack(&mut self, ack: &Ack, sig: &Signature, now: u64) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let c = self.ch(id)?;
        let Some(dsp) = c.dispute else {
            return Err("NoAccusation".into());
        };
        if now > dsp.deadline {
            return Err("DeadlinePassed".into());
        }
        if ack.seq < dsp.missing {
            return Err("AckTooLow".into());
        }
        let (amount, total) = self.pay_ack(ack, sig, true)?;
        if let Some(c) = self.channels.get_mut(&id) {
            c.dispute = None;
        }
        Ok(Outcome::Defended { amount, total })
    }

    /// `resolve(id)`: after the deadline the buyer is refunded `F - R`.
    pub fn resolve(&mut self, id: ChannelId, now: u64) -> R<Outcome> {
        let c = self.ch(id)?;
        let Some(dsp) = c.dispute else {
            return Err("NoAccusation".into());
        };
        if now <= dsp.deadline {
            return Err("DeadlineNotPassed".into());
        }
        let to_buyer = c.deposit - c.claimed;
        c.to_buyer += to_buyer;
        c.dispute = None;
        c.status = Status::Settled;
        Ok(Outcome::Settled {
            to_seller: U256::ZERO,
            to_buyer,
        })
    }

    /// `proveWrongCost(ack, sig)`: the seller takes `F - R`.
    pub fn prove_wrong_cost(&mut self, ack: &Ack, sig: &Signature) -> R<Outcome> {
        let id = ChannelId(ack.channelId);
        let d = self.domain.digest(ack);
        let buyer = self.ch(id)?.buyer;
        let sig_ok = self.check_sig(&d, sig, buyer);
        let c = self.ch(id)?;
        if c.status == Status::Settled {
            return Err("WrongStatus(Settled)".into());
        }
        sig_ok?;
        if ack.seq >= c.start && ack_cost(c.start, ack.seq, c.price) == Some(ack.cost) {
            return Err("CostIsCorrect".into());
        }
        let to_seller = c.deposit - c.claimed;
        c.claimed = c.deposit;
        c.to_seller += to_seller;
        c.status = Status::Settled;
        Ok(Outcome::Settled {
            to_seller,
            to_buyer: U256::ZERO,
        })
    }

    /// `proveEquivocation(id, a, sigA, b, sigB)`: the buyer takes `F - R`.
    pub fn prove_equivocation(
        &mut self,
        id: ChannelId,
        a: &Message,
        sig_a: &Signature,
        b: &Message,
        sig_b: &Signature,
    ) -> R<Outcome> {
        let (da, db) = (self.domain.digest(a), self.domain.digest(b));
        let seller = self.ch(id)?.seller;
        let sigs_ok = self
            .check_sig(&da, sig_a, seller)
            .and(self.check_sig(&db, sig_b, seller));
        let c = self.ch(id)?;
        if c.status == Status::Settled {
            return Err("WrongStatus(Settled)".into());
        }
        sigs_ok?;
        let same_seq = a.seq == b.seq && da != db;
        let broken_link = b.seq == a.seq + 1 && b.prev != da;
        if a.seq < c.start || !(same_seq || broken_link) {
            return Err("NotEquivocation".into());
        }
        let to_buyer = c.deposit - c.claimed;
        c.to_buyer += to_buyer;
        c.status = Status::Settled;
        Ok(Outcome::Settled {
            to_seller: U256::ZERO,
            to_buyer,
        })
    }

    /// The channel record.
    pub fn channel(&self, id: ChannelId) -> Option<&ChannelRec> {
        self.channels.get(&id)
    }
}
