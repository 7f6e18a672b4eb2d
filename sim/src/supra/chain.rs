//! The chain side of a run: mining a transaction against the [`Judge`](crate::judge::Judge)
//! model, and reporting its outcome to the engines as a broker's chain watcher would.

use alloy_primitives::{B256, U256};
use supra_channel::buyer::TopUpPolicy;
use supra_channel::testkit::ChainEvent;
use supra_channel::{Ack, BuyerChannel, BuyerConfig, ChannelId, Offer, Signature, ack_cost};

use super::calls::execute;
use super::{Origin, PRICE, Tx, Watched, World, tx_name};
use crate::chain::Call;
use crate::judge::Outcome;

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
        let (call, mined) = execute(&mut self.judge, from, secs, tx);
        let res = mined.outcome.clone();
        self.ledger
            .record(call, mined.gas, res.as_ref().err().map(String::as_str));
        let tx = match self.record.as_mut() {
            Some(record) => {
                record.push(mined.clone());
                mined.tx
            }
            None => mined.tx,
        };
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
                if engine {
                    // The broker reads the posting's block time (`postedAt`) once its `post` is
                    // mined; a posting seen only in an event is taken as mined when seen.
                    self.seller.on_posted_at(now, m.message.seq, secs);
                } else {
                    self.seller.on_posted(now, m.message.seq);
                }
                self.flush_seller();
                self.buyer_chain(ChainEvent::Posted(
                    m.message.clone(),
                    m.proof.clone(),
                    m.payload.clone(),
                ));
            }
            (Tx::Post(m), Ok(Outcome::Posted(false))) if engine => {
                // Already posted (no event): the broker reads the stored `postedAt`.
                let stored = self
                    .judge
                    .postings
                    .get(&(m.message.stream(), m.message.seq));
                let at = stored.map_or(secs, |p| p.posted_at);
                self.seller.on_posted_at(now, m.message.seq, at);
                self.flush_seller();
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
            (Tx::ClaimPosted(_, upto), Ok(Outcome::PostedClaimRecorded)) => {
                // Past the seller's Stop it holds, the buyer's engine submits that Stop.
                self.buyer_chain(Watched::PostedClaim(upto));
            }
            (Tx::SubmitStop(s, _), Ok(Outcome::Settled { .. })) => {
                self.note("submitStop proved a posted claim past the seller's Stop");
                self.settled_now(ChannelId(s.channelId));
            }
            (Tx::SubmitStop(s, _), Ok(Outcome::StopRecorded { answered: true })) => {
                self.defended(ChannelId(s.channelId))
            }
            (Tx::SubmitStop(..), Err(_)) if origin == Origin::BuyerEngine => {
                self.buyer_chain(Watched::SubmitStopFailed)
            }
            (Tx::CloseCooperatively(x, ..), Ok(Outcome::Settled { .. })) => {
                self.settled_now(ChannelId(x.0.channelId))
            }
            // Refused (the other side's landed first, say): the normal close goes on.
            (Tx::CloseCooperatively(x, ..), Err(_)) => match origin {
                Origin::SellerEngine => {
                    self.seller
                        .on_close_cooperatively_failed(now, ChannelId(x.0.channelId));
                    self.flush_seller();
                }
                Origin::BuyerEngine => self.buyer_chain(Watched::CloseCooperativelyFailed),
                Origin::SellerBroker => {}
            },
            (Tx::RequestClose(id), Ok(Outcome::CloseRequested(at_secs))) => {
                self.closing = true;
                self.seller.on_close_requested(now, id, at_secs);
                self.flush_seller();
                self.buyer_chain(ChainEvent::CloseRequested(at_secs));
                // The stream carries on for W more messages, then this run stops publishing.
                self.publish_until = self
                    .publish_until
                    .min((self.pub_times.len() as u64 + self.cfg.window).max(self.cfg.n));

                if self.cfg.scenario.overclaims() {
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
            // So is the seller's closeCooperatively: the buyer's grace period.
            cooperative_wait_ms: 2 * self.cfg.chain.delta_onchain_ms,
            top_up: self.cfg.top_up_msgs.map(|messages| TopUpPolicy {
                below_messages: messages / 2,
                messages,
                max_deposit: U256::from(PRICE) * U256::from(self.cfg.n + 2 * self.cfg.window),
            }),
            cooperative_close: self.cfg.cooperative_close,
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
