//! The chain side of a run: mining a transaction against the [`Judge`](crate::judge::Judge)
//! model, and reporting its outcome to the engines as a broker's chain watcher would.

use alloy_primitives::{B256, U256};
use supra_channel::buyer::TopUpPolicy;
use supra_channel::testkit::ChainEvent;
use supra_channel::{Ack, BuyerChannel, BuyerConfig, ChannelId, Offer, Signature, ack_cost};

use super::{JudgeCall, Origin, PRICE, Tx, Watched, World, tx_name};
use crate::chain::{Call, gas};
use crate::judge::{ChannelRec, Outcome, Refusal};
use crate::params::Scenario;

/// The channel a call is about (`None` for `post`, which is about a stream).
fn tx_channel(tx: &Tx) -> Option<ChannelId> {
    match tx {
        Tx::Open(..) | Tx::Post(..) => None,
        Tx::Claim(a, _) | Tx::DefendWithAck(a, _) | Tx::ProveWrongCost(a, _) => {
            Some(ChannelId(a.channelId))
        }
        Tx::TopUp(id, _)
        | Tx::ClaimPosted(id, _)
        | Tx::RequestClose(id)
        | Tx::Settle(id)
        | Tx::Accuse(id, ..)
        | Tx::Defend(id)
        | Tx::Resolve(id)
        | Tx::ProveEquivocation(id, ..) => Some(*id),
    }
}

/// The kind of `tx` and its gas (see [`gas`] for where each figure comes from), given the
/// channel before it, the postings a posted claim checks, what it did, and who sent it. A
/// refused call is charged its figure: an upper bound (a revert stops early).
pub fn call_gas(
    tx: &Tx,
    before: Option<&ChannelRec>,
    posted_span: u64,
    outcome: &Result<Outcome, Refusal>,
    by_seller: bool,
) -> (Call, u64) {
    let first_write = before.is_none_or(|c| !c.progress_written);
    let later = |g: u64| {
        if first_write {
            g
        } else {
            g - gas::FIRST_WRITE_EXTRA
        }
    };
    match tx {
        Tx::Open(..) => (Call::Open, gas::OPEN),
        Tx::TopUp(..) => (Call::TopUp, later(gas::TOP_UP)),
        Tx::Post(m) => (Call::Post, gas::post(m.payload.len())),
        Tx::Claim(..) if first_write => (Call::Claim, gas::CLAIM_FIRST),
        Tx::Claim(..) => (Call::Claim, gas::CLAIM_NEXT),
        Tx::ClaimPosted(..) => (Call::ClaimPosted, gas::claim_posted(posted_span)),
        Tx::RequestClose(..) => {
            let mut g = gas::REQUEST_CLOSE;
            if first_write {
                g += gas::FIRST_WRITE_EXTRA;
            }
            if by_seller {
                g += gas::REQUEST_CLOSE_BY_SELLER_EXTRA;
            }
            (Call::RequestClose, g)
        }
        Tx::Settle(..) => match outcome {
            Ok(Outcome::Settled { to_seller, .. }) if to_seller.is_zero() => {
                (Call::Settle, gas::SETTLE_BUYER_ONLY)
            }
            _ => (Call::Settle, gas::SETTLE),
        },
        Tx::Accuse(..) => (Call::Accuse, gas::ACCUSE),
        Tx::Defend(..) => (Call::Defend, gas::DEFEND),
        Tx::DefendWithAck(..) => (Call::DefendWithAck, gas::DEFEND_WITH_ACK),
        Tx::Resolve(..) => match outcome {
            Ok(Outcome::Defended { .. }) => (Call::Resolve, gas::RESOLVE_ANSWERED),
            _ => (Call::Resolve, later(gas::RESOLVE_REFUND)),
        },
        Tx::ProveWrongCost(..) => (Call::ProveWrongCost, gas::PROVE_WRONG_COST),
        Tx::ProveEquivocation(..) => (Call::ProveEquivocation, gas::PROVE_EQUIVOCATION),
    }
}

impl World {
    // ----- the chain -------------------------------------------------------------------------

    pub(super) fn mine(&mut self, at: u64, origin: Origin, tx: Tx) {
        let secs = at / 1000;
        let now = self.now;
        if self.trace {
            eprintln!(
                "{:>9} mine {origin:?} {}",
                self.now - self.start_ms,
                tx_name(&tx)
            );
        }
        let from = match origin {
            Origin::SellerEngine | Origin::SellerBroker => self.seller_key.address(),
            Origin::BuyerEngine => self.buyer_key.address(),
        };
        // What a call costs depends on the state before it (first write of the channel's
        // progress word, postings a posted claim checks) and on what it did.
        let before = tx_channel(&tx).and_then(|id| self.judge.channel(id).cloned());
        let span = match &tx {
            Tx::ClaimPosted(id, upto) => self.judge.posted_claim_span(*id, *upto),
            _ => 0,
        };
        let j = &mut self.judge;
        let res = match &tx {
            Tx::Open(o, value) => j.open(from, &o.0, &o.1, *value, secs),
            Tx::TopUp(id, value) => j.top_up(from, *id, *value, secs),
            Tx::Post(m) => j.post(&m.message, &m.payload, &m.sig, secs),
            Tx::Claim(a, s) => j.claim(a, s, secs),
            Tx::ClaimPosted(id, upto) => j.claim_posted(from, *id, *upto),
            Tx::RequestClose(id) => j.request_close(from, *id, secs),
            Tx::Settle(id) => j.settle(*id, secs),
            Tx::Accuse(id, m, s, missing) => j.accuse(from, *id, m, s, *missing, secs),
            Tx::Defend(id) => j.defend(*id),
            Tx::DefendWithAck(a, s) => j.defend_with_ack(a, s, secs),
            Tx::Resolve(id) => j.resolve(*id, secs),
            Tx::ProveWrongCost(a, s) => j.prove_wrong_cost(a, s),
            Tx::ProveEquivocation(id, ms, sa, sb) => {
                j.prove_equivocation(*id, &ms.0, sa, &ms.1, sb)
            }
        };
        let by_seller = origin != Origin::BuyerEngine;
        let (call, gas_used) = call_gas(&tx, before.as_ref(), span, &res, by_seller);
        self.ledger
            .record(call, gas_used, res.as_ref().err().map(String::as_str));
        if let Some(record) = self.record.as_mut() {
            record.push(JudgeCall {
                at_secs: secs,
                from,
                tx: tx.clone(),
                outcome: res.clone(),
                gas: gas_used,
            });
        }
        let engine = origin != Origin::SellerBroker;
        match (tx, res) {
            (Tx::Open(o, value), Ok(Outcome::Opened(id))) => self.opened(id, o.0, o.1, value),
            (Tx::TopUp(id, _), Ok(Outcome::ToppedUp(deposit))) => {
                // The `ToppedUp` event: the seller resumes up to what it pays for.
                self.seller.on_topped_up(now, id, deposit);
                self.flush_seller();
                self.buyer_chain(Watched::Deposit(deposit));
            }
            (Tx::TopUp(..), Err(_)) => self.buyer_chain(Watched::TopUpFailed),
            (Tx::Post(m), Ok(Outcome::Posted(true))) => {
                self.posted += 1;
                self.seller.on_posted(now, m.message.seq);
                self.flush_seller();
                self.buyer_chain(ChainEvent::Posted(
                    m.message.clone(),
                    m.sig,
                    m.payload.clone(),
                ));
            }
            (Tx::Post(m), Err(_)) if engine => {
                self.seller.on_post_failed(now, m.message.seq);
                self.flush_seller();
            }
            (Tx::Claim(a, _), Ok(Outcome::Claimed { total, .. })) => {
                self.seller.on_claimed(now, ChannelId(a.channelId), total);
                self.flush_seller();
                self.buyer_chain(ChainEvent::Claimed(a.seq));
            }
            (Tx::Claim(a, _), Err(_)) if origin == Origin::SellerEngine => {
                self.seller.on_claim_failed(now, ChannelId(a.channelId));
                self.flush_seller();
            }
            (Tx::RequestClose(id), Ok(Outcome::CloseRequested(at_secs))) => {
                self.closing = true;
                self.seller.on_close_requested(now, id, at_secs);
                self.flush_seller();
                self.buyer_chain(ChainEvent::CloseRequested(at_secs));
                // The stream carries on for W more messages, then this run stops publishing.
                self.publish_until = self
                    .publish_until
                    .min((self.pub_times.len() as u64 + self.cfg.window).max(self.cfg.n));

                if self.cfg.scenario == Scenario::Overclaim {
                    self.overclaim(id, at_secs);
                }
            }
            (Tx::Settle(id), Ok(Outcome::Settled { .. }))
            | (Tx::Resolve(id), Ok(Outcome::Settled { .. })) => {
                if call == Call::Resolve {
                    self.upheld += 1;
                }
                self.settled_now(id);
            }
            (Tx::ProveWrongCost(a, _), Ok(Outcome::Settled { .. })) => {
                self.settled_now(ChannelId(a.channelId))
            }
            (Tx::ProveEquivocation(id, ..), Ok(Outcome::Settled { .. })) => self.settled_now(id),
            (Tx::Accuse(id, _, _, missing), Ok(Outcome::Accused(deadline))) => {
                self.accusations += 1;
                self.seller.on_accused(now, id, missing);
                self.flush_seller();
                self.buyer_chain(ChainEvent::AccusationOpened(deadline));
                if self.dropped_seq == Some(missing) {
                    // The cheating seller cashes in what the buyer acked before the gap.
                    if let Some(v) = self.seller.verified_ack(&id).cloned() {
                        self.submit(Origin::SellerBroker, Tx::Claim(Box::new(v.ack), v.sig));
                    }
                }
            }
            (Tx::Accuse(..), Err(_)) => self.buyer_chain(ChainEvent::AccusationRefused),
            (Tx::Resolve(_), Err(_)) => self.buyer_chain(ChainEvent::AccusationClosed),
            // `resolve` found the missing message posted in time: the accusation is answered.
            (Tx::Defend(id) | Tx::Resolve(id), Ok(Outcome::Defended { .. })) => self.defended(id),
            (Tx::DefendWithAck(a, _), Ok(Outcome::Defended { total, .. })) => {
                let id = ChannelId(a.channelId);
                self.seller.on_claimed(now, id, total);
                self.buyer_chain(ChainEvent::Claimed(a.seq));
                self.defended(id);
            }
            _ => {}
        }
    }

    pub(super) fn opened(&mut self, id: ChannelId, offer: Offer, sig: Signature, deposit: U256) {
        let now = self.now;
        let bcfg = BuyerConfig {
            ack_every: self.cfg.ack_every,
            ack_delay_ms: self.cfg.ack_delay_ms,
            // The seller's settle is mined within Δ.
            settle_wait_ms: 2 * self.cfg.chain.delta_onchain_ms,
            top_up: self.cfg.top_up_msgs.map(|messages| TopUpPolicy {
                below_messages: messages / 2,
                messages,
                max_deposit: U256::from(PRICE) * U256::from(self.cfg.n + 2 * self.cfg.window),
            }),
            ..BuyerConfig::default()
        };
        // The buyer knows the seller's key from the (not simulated) peer handshake.
        let seller_key = *self.seller_key.public();
        match BuyerChannel::with_seller_key(
            self.domain,
            self.buyer_key.clone(),
            seller_key,
            offer,
            sig,
            bcfg,
            now,
        ) {
            Ok(mut b) => {
                // What it locked at `open` (as the broker reports it); `ToppedUp` raises it.
                b.on_deposit(now, deposit);
                self.buyer = Some(b);
            }
            Err(e) => panic!("the buyer rejected the seller's offer: {e}"),
        }
        self.chan = Some(id);
        self.flush_buyer();
        if let Err(e) = self.seller.open_channel(now, id, deposit) {
            panic!("open_channel: {e}");
        }
        self.flush_seller();
        self.last_progress = now;
        // The subscription starts: the stream publishes from now on.
        self.next_publish = Some(now);
    }

    pub(super) fn defended(&mut self, id: ChannelId) {
        self.seller.on_accusation_closed(self.now, id);
        self.flush_seller();
        self.buyer_chain(ChainEvent::AccusationClosed);
    }

    pub(super) fn settled_now(&mut self, id: ChannelId) {
        self.settled = true;
        self.next_publish = None;
        self.seller.on_settled(self.now, id);
        self.flush_seller();
        self.buyer_chain(ChainEvent::AccusationClosed);
        self.buyer_chain(ChainEvent::Settled);
    }

    /// A seller that tries to be paid for more than it delivered, once the close is requested:
    /// a forged ack, a posted claim beyond the window, then the most the judge lets through:
    /// up to `W` messages after the buyer's last ack, posted and claimed although the buyer
    /// stopped before them.
    pub(super) fn overclaim(&mut self, id: ChannelId, close_secs: u64) {
        if self.overclaimed {
            return;
        }
        self.overclaimed = true;
        let start = self.start_seq;
        let window = self.cfg.window;
        // The buyer's final ack, as the seller holds it.
        let acked_upto = self
            .seller
            .best_acked_seq(&id)
            .unwrap_or(start.saturating_sub(1));
        // 1. An ack the buyer never signed.
        let seq = acked_upto + window;
        if let Some(cost) = ack_cost(start, seq, U256::from(PRICE)) {
            let forged = Ack {
                channelId: id.0,
                seq,
                digest: B256::repeat_byte(0xAB),
                cost,
                timestamp: self.now,
            };
            let sig = self.seller_key.sign(&self.domain.digest(&forged));
            self.submit(Origin::SellerBroker, Tx::Claim(Box::new(forged), sig));
        }
        // 2. Post what follows the last ack (stamped before the close) ...
        let mut last = None;
        for s in acked_upto + 1..=acked_upto + window {
            match self.recent_signed.get(&s) {
                Some(m) if m.message.timestamp <= close_secs * 1000 => {
                    let m = m.clone();
                    self.submit(Origin::SellerBroker, Tx::Post(m));
                    last = Some(s);
                }
                _ => break,
            }
        }
        // 3. ... claim beyond the window (rejected), then within it.
        if let Some(last) = last {
            self.submit(
                Origin::SellerBroker,
                Tx::ClaimPosted(id, acked_upto + window + 1),
            );
            self.submit(Origin::SellerBroker, Tx::ClaimPosted(id, last));
        }
        self.note("seller broker over-claimed");
    }
}
