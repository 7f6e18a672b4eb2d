//! Regression tests for the engine issues the simulator found (`sim/README.md`, "Engine notes"):
//! each test's doc says how the engine failed it before the fix.

use alloy_primitives::U256;
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::testkit::test_key;
use supra_channel::*;

const T0: u64 = 1_700_000_000_000;
/// `T_ack` = 10 s, `Δ` = 3 s: unacked messages are posted 7 s after they were sent.
const DELTA_MS: u64 = 3_000;
const GRACE_MS: u64 = 2_000;
const T_CLOSURE_MS: u64 = 60_000;
const SETTLE_WAIT_MS: u64 = 30_000;

fn domain() -> Domain {
    Domain::new(31337, alloy_primitives::Address::repeat_byte(0x42))
}

/// One seller stream and one buyer channel, frames carried by hand.
struct Pair {
    seller: Stream,
    buyer: BuyerChannel,
    bkey: Keypair,
    id: ChannelId,
    /// Seller chain actions and events, in order.
    seller_out: Vec<SellerAction>,
    /// Buyer chain actions and events, in order.
    buyer_out: Vec<BuyerAction>,
    /// Frames the buyer sent.
    buyer_frames: Vec<Frame>,
    now: u64,
}

impl Pair {
    fn new(window: u64) -> Self {
        let skey = test_key("s", 1);
        let bkey = test_key("b", 1);
        let sid = StreamId::new(skey.address(), 7).unwrap();
        let terms = Terms {
            price: U256::from(10u64),
            window,
            t_ack_secs: 10,
            t_closure_secs: (T_CLOSURE_MS / 1000) as u32,
            offer_validity_secs: 600,
        };
        let scfg = SellerConfig {
            delta_onchain_ms: DELTA_MS,
            chain_grace_ms: GRACE_MS,
            ..SellerConfig::default()
        };
        let bcfg = BuyerConfig {
            ack_every: 1,
            chain_grace_ms: GRACE_MS,
            settle_wait_ms: SETTLE_WAIT_MS,
            ..BuyerConfig::default()
        };
        let mut seller = Stream::new(domain(), skey, sid, terms, scfg).unwrap();
        let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
        let buyer = BuyerChannel::new(domain(), bkey.clone(), offer, sig, bcfg, T0).unwrap();
        let id = buyer.id();
        seller.open_channel(T0, id, U256::from(10_000u64)).unwrap();
        let mut p = Self {
            seller,
            buyer,
            bkey,
            id,
            seller_out: vec![],
            buyer_out: vec![],
            buyer_frames: vec![],
            now: T0,
        };
        p.seller_frames();
        p.buyer_frames();
        p.buyer_frames.clear();
        p
    }

    /// W = 8: three messages delivered and acked, three lost; the seller stops the channel and
    /// the three unacked ones are posted (and confirmed) at their deadline.
    fn stopped_with_three_posted() -> Self {
        let mut p = Self::new(8);
        for _ in 0..3 {
            p.publish(true);
        }
        for _ in 0..3 {
            p.publish(false);
        }
        p.seller.stop_channel(p.now, p.id).unwrap();
        p.seller_frames();
        p.advance(8_000);
        for seq in 3..6 {
            p.posted(seq);
        }
        p
    }

    /// Drains the seller: returns its frames, keeps its other actions.
    fn seller_frames(&mut self) -> Vec<Frame> {
        let mut frames = vec![];
        for a in self.seller.drain_actions() {
            match a {
                SellerAction::Persist(_) => {}
                SellerAction::Send { frame, .. } => frames.push(Frame::decode(&frame).unwrap()),
                other => self.seller_out.push(other),
            }
        }
        frames
    }

    /// Drains the buyer: returns its frames (also kept in `buyer_frames`), keeps the rest.
    fn buyer_frames(&mut self) -> Vec<Frame> {
        let mut frames = vec![];
        for a in self.buyer.drain_actions() {
            match a {
                BuyerAction::Persist(_) | BuyerAction::Deliver { .. } => {}
                BuyerAction::Send(f) => frames.push(Frame::decode(&f).unwrap()),
                other => self.buyer_out.push(other),
            }
        }
        self.buyer_frames.extend(frames.iter().cloned());
        frames
    }

    /// Publishes one message; its frames reach the buyer and the buyer's answers reach the seller
    /// (perfect link) when `deliver`, else they are lost.
    fn publish(&mut self, deliver: bool) {
        let seq = self.seller.next_seq();
        self.seller
            .publish(self.now, format!("m{seq}").as_bytes())
            .unwrap();
        let frames = self.seller_frames();
        if deliver {
            for f in frames {
                self.buyer.handle_frame(self.now, f).unwrap();
            }
            self.deliver_to_seller();
        }
    }

    /// The buyer's pending frames reach the seller.
    fn deliver_to_seller(&mut self) {
        for f in self.buyer_frames() {
            self.seller
                .handle_frame(self.now, self.bkey.address(), f)
                .unwrap();
        }
        self.seller_frames();
    }

    /// Moves time on by `ms`, firing both engines' timers at every due instant; seller frames are
    /// lost (the buyer's link is gone), buyer frames too.
    fn advance(&mut self, ms: u64) {
        let until = self.now + ms;
        loop {
            let next = [self.seller.poll_timeout(), self.buyer.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= until)
                .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            self.seller.handle_timeout(self.now);
            self.buyer.handle_timeout(self.now).unwrap();
            self.seller_frames();
            self.buyer_frames();
        }
        self.now = until;
    }

    /// `requestClose` mined now, seen by both.
    fn close(&mut self) -> u64 {
        let at = self.now / 1000;
        self.seller.on_close_requested(self.now, self.id, at);
        self.buyer.on_close_requested(self.now, at);
        self.seller_frames();
        self.buyer_frames();
        at
    }

    /// Message `seq` mined in a `Posted` event, seen by both.
    fn posted(&mut self, seq: u64) {
        self.seller.on_posted(self.now, seq);
        let m = self.seller.message(seq).unwrap().clone();
        self.buyer
            .on_posted(self.now, m.message.clone(), m.sig, m.payload.clone())
            .unwrap();
        self.seller_frames();
        self.buyer_frames();
    }

    fn posts(&self) -> Vec<u64> {
        self.seller_out
            .iter()
            .filter_map(|a| match a {
                SellerAction::Post(m) => Some(m.message.seq),
                _ => None,
            })
            .collect()
    }

    fn claims_posted(&self) -> Vec<u64> {
        self.seller_out
            .iter()
            .filter_map(|a| match a {
                SellerAction::ClaimPosted { upto, .. } => Some(*upto),
                _ => None,
            })
            .collect()
    }

    fn seller_settles(&self) -> usize {
        self.seller_out
            .iter()
            .filter(|a| matches!(a, SellerAction::Settle { .. }))
            .count()
    }

    fn buyer_settles(&self) -> usize {
        self.buyer_out
            .iter()
            .filter(|a| matches!(a, BuyerAction::Settle { .. }))
            .count()
    }

    fn stops_completed(&self) -> usize {
        self.seller_out
            .iter()
            .filter(|a| matches!(a, SellerAction::Event(SellerEvent::StopCompleted { .. })))
            .count()
    }
}

/// Engine note 1. Messages 3..=5 are on their way when the buyer stops at 2: the buyer's engine
/// refuses them. Before the fix the seller kept them in its sent window, posted them at
/// `T_off-ack` and claimed them with `claimPosted` at the close, so the honest buyer paid for
/// three messages it refused (and the seller paid three `post`s).
#[test]
fn seller_neither_posts_nor_claims_past_the_buyers_stop() {
    let mut p = Pair::new(8);
    for _ in 0..3 {
        p.publish(true);
    }
    for _ in 0..3 {
        p.publish(false);
    }
    assert_eq!(p.seller.best_acked_seq(&p.id), Some(2));
    p.buyer.stop(p.now).unwrap();
    p.deliver_to_seller();
    // A retransmission of 4 reaches the buyer: it refuses it and sends its Stop again (the
    // seller may have lost it), at most every `reack_interval_ms`.
    let m4 = p.seller.message(4).unwrap().clone();
    let data = |m: &SignedMessage| {
        Frame::Data(supra_channel::wire::Data {
            message: m.message.clone(),
            sig: m.sig,
            payload: m.payload.clone(),
        })
    };
    p.now += 1_000;
    p.buyer.handle_frame(p.now, data(&m4)).unwrap();
    p.buyer.handle_frame(p.now, data(&m4)).unwrap();
    let again = p.buyer_frames();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(matches!(&again[0], Frame::Stop { stop, .. } if stop.seq == 2));
    assert_eq!(p.buyer.next_seq(), 3);
    // The seller forgets 3..=5 for this channel: nothing in flight, nothing posted.
    assert_eq!(p.seller.unacked_in_flight(&p.id), Some(0));
    p.advance(20_000);
    assert_eq!(p.posts(), Vec::<u64>::new());
    // Even posted by someone else, they are not claimed.
    p.close();
    for seq in 3..6 {
        p.posted(seq);
    }
    p.advance(T_CLOSURE_MS);
    assert_eq!(p.claims_posted(), Vec::<u64>::new());
    assert!(
        p.seller_out
            .iter()
            .any(|a| matches!(a, SellerAction::Claim { ack, .. } if ack.seq == 2))
    );
}

/// Engine note 1, the Stop arriving after the close request was mined (the buyer's
/// `requestClose` can beat its `Stop` frame). Before the fix a seller already `Closing` ignored
/// the buyer's Stop, then posted and claimed what the buyer had refused.
#[test]
fn a_buyer_stop_arriving_while_closing_still_bounds_the_claim() {
    let mut p = Pair::new(8);
    for _ in 0..3 {
        p.publish(true);
    }
    for _ in 0..3 {
        p.publish(false);
    }
    p.buyer.stop(p.now).unwrap();
    let frames = p.buyer_frames();
    p.now += 1_000;
    p.close();
    for f in frames {
        p.seller.handle_frame(p.now, p.bkey.address(), f).unwrap();
    }
    p.seller_frames();
    p.advance(T_CLOSURE_MS);
    assert_eq!(p.posts(), Vec::<u64>::new());
    assert_eq!(p.claims_posted(), Vec::<u64>::new());
}

/// The seller's own stop is different: what it had sent when it stopped is owed. Messages
/// 3..=5, sent and never acked, are posted and claimed (this held before the fix too).
#[test]
fn after_a_seller_stop_what_was_sent_is_posted_and_claimed() {
    let mut p = Pair::new(8);
    for _ in 0..3 {
        p.publish(true);
    }
    for _ in 0..3 {
        p.publish(false);
    }
    p.seller.stop_channel(p.now, p.id).unwrap();
    p.seller_frames();
    p.advance(8_000);
    assert_eq!(p.posts(), vec![3, 4, 5]);
    for seq in 3..6 {
        p.posted(seq);
    }
    p.close();
    assert_eq!(p.claims_posted(), vec![5]);
}

/// Engine note 4, requested is not posted. Messages 3..=5 are posted at `T_off-ack` but the
/// posting of 4 is never mined. Before the fix the close made a `claimPosted` up to 5 at once
/// (it counted postings it had only requested), which the judge reverts (`NotPosted`). Now only
/// the confirmed run after the ack, 3, is claimed, at the last call.
#[test]
fn claim_posted_counts_only_confirmed_postings() {
    let mut p = Pair::new(8);
    for _ in 0..3 {
        p.publish(true);
    }
    for _ in 0..3 {
        p.publish(false);
    }
    p.seller.stop_channel(p.now, p.id).unwrap();
    p.seller_frames();
    p.advance(8_000);
    assert_eq!(p.posts(), vec![3, 4, 5]);
    p.posted(3);
    p.posted(5);
    let at = p.close();
    assert_eq!(p.claims_posted(), Vec::<u64>::new(), "4 may still come");
    let last_call = at * 1000 + T_CLOSURE_MS - DELTA_MS - GRACE_MS;
    p.advance(last_call - p.now - 1);
    assert_eq!(p.claims_posted(), Vec::<u64>::new());
    p.advance(1);
    assert_eq!(p.claims_posted(), vec![3]);
    p.advance(T_CLOSURE_MS);
    assert_eq!(p.claims_posted(), vec![3], "one claim");
}

/// Engine note 4, postings it did not request. Eight messages after the last ack are posted by
/// another account, one `Posted` event after the other, while the channel closes. Before the fix
/// each event made a new `claimPosted` (eight, seven of them useless); now one covers the run,
/// sent when the run reaches `W`.
#[test]
fn postings_arriving_one_by_one_make_one_claim() {
    let mut p = Pair::new(8);
    for _ in 0..3 {
        p.publish(true);
    }
    for _ in 0..8 {
        p.publish(false);
    }
    p.seller.stop_channel(p.now, p.id).unwrap();
    p.seller_frames();
    p.close();
    for seq in 3..11 {
        p.posted(seq);
    }
    assert_eq!(p.claims_posted(), vec![10]);
    p.advance(T_CLOSURE_MS);
    assert_eq!(p.claims_posted(), vec![10]);
    assert_eq!(p.posts(), Vec::<u64>::new(), "all posted before their deadline");
}

/// Engine note 5. With a posted claim to collect, the seller settles once `T_closure` is over;
/// before the fix the buyer settled at the same instant, and one of the two reverted. Now the
/// buyer, which saw postings of its channel, leaves it to the seller and settles only if the
/// channel is still not settled `settle_wait_ms` later.
#[test]
fn only_the_seller_settles_when_it_holds_a_posted_claim() {
    let mut p = Pair::stopped_with_three_posted();
    let at = p.close();
    assert_eq!(p.claims_posted(), vec![5]);
    let settle = at * 1000 + T_CLOSURE_MS + GRACE_MS;
    p.advance(settle - p.now);
    assert_eq!((p.seller_settles(), p.buyer_settles()), (1, 0));
    // Mined: nobody settles again.
    p.seller.on_settled(p.now, p.id);
    p.buyer.on_settled(p.now);
    p.advance(10 * SETTLE_WAIT_MS);
    assert_eq!((p.seller_settles(), p.buyer_settles()), (1, 0));
}

/// Engine note 5, the fallback: the seller holds a posted claim but does not settle (it is
/// gone): the buyer settles `settle_wait_ms` after it could have.
#[test]
fn the_buyer_settles_if_the_seller_does_not() {
    let mut p = Pair::stopped_with_three_posted();
    let at = p.close();
    let settle = at * 1000 + T_CLOSURE_MS + GRACE_MS;
    p.advance(settle + SETTLE_WAIT_MS - 1 - p.now);
    assert_eq!(p.buyer_settles(), 0);
    p.advance(1);
    assert_eq!(p.buyer_settles(), 1);
}

/// Engine note 5, nothing posted: the seller has nothing to collect at `settle` and does not
/// settle; the buyer does, as soon as `T_closure` is over.
#[test]
fn only_the_buyer_settles_when_nothing_was_posted() {
    let mut p = Pair::new(8);
    for _ in 0..5 {
        p.publish(true);
    }
    p.buyer.stop(p.now).unwrap();
    p.deliver_to_seller();
    let at = p.close();
    let settle = at * 1000 + T_CLOSURE_MS + GRACE_MS;
    p.advance(settle - p.now);
    assert_eq!((p.seller_settles(), p.buyer_settles()), (0, 1));
    p.advance(10 * SETTLE_WAIT_MS);
    assert_eq!((p.seller_settles(), p.buyer_settles()), (0, 1));
}

/// Engine note 5, `StopCompleted`. Before the fix the seller emitted it again on every later
/// check of the stopped channel (each timer, each `Posted` event) until the close.
#[test]
fn stop_completed_is_emitted_once_per_channel() {
    let mut p = Pair::stopped_with_three_posted();
    p.advance(5_000);
    for _ in 0..3 {
        p.now += 1;
        p.seller.handle_timeout(p.now);
        p.seller_frames();
    }
    assert_eq!(p.stops_completed(), 1);
    p.close();
    p.advance(T_CLOSURE_MS + GRACE_MS);
    assert_eq!(p.stops_completed(), 1);
    assert!(
        p.seller_out
            .iter()
            .any(|a| matches!(a, SellerAction::RequestClose { .. }))
    );
}
