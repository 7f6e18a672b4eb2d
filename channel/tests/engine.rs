//! Direct tests of the seller and buyer engines (no harness).

use alloy_primitives::{U256, keccak256};
use supra_channel::buyer::TopUpPolicy;
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::seal::{EpochKey, Opener, SealError};
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::testkit::test_key;
use supra_channel::*;

mod common;
use common::*;


/// Issue 10, first must-deliver: with F = 8·P the seller used to deliver all 40 messages (the
/// last ack carried 40·P, so 32 delivered messages could never be paid). It sends nothing whose
/// cost exceeds the channel's deposit: the buyer gets 8 and owes exactly F.
#[test]
fn seller_never_sends_a_message_the_deposit_does_not_cover() {
    let bcfg = BuyerConfig {
        ack_every: 1,
        ..Default::default()
    };
    let mut p = Pair::with_deposit(16, SellerConfig::default(), bcfg, U256::from(80u64));
    p.publish_each(40);
    p.advance(100);
    p.exchange();
    assert_eq!(p.delivered.len(), 8, "F = 8·P covers 8 messages");
    let (ack, _) = p.buyer.last_ack().unwrap();
    assert_eq!(
        ack.cost,
        U256::from(80u64),
        "everything delivered is paid by the deposit"
    );
}

/// The seller resumes when it sees a top-up on-chain, up to what the new deposit pays for, and
/// keeps the new deposit across a restart; the buyer's engine asks for the top-up itself, ahead
/// of exhaustion, never past its ceiling.
#[test]
fn a_top_up_resumes_the_stream_and_the_buyer_asks_for_it_ahead_of_exhaustion() {
    let bcfg = BuyerConfig {
        ack_every: 1,
        top_up: Some(TopUpPolicy {
            below_messages: 2,
            messages: 6,
            max_deposit: U256::from(200u64),
        }),
        ..Default::default()
    };
    let mut p = Pair::with_deposit(16, SellerConfig::default(), bcfg, U256::from(80u64));
    p.buyer.on_deposit(p.now, U256::from(80u64));
    let top_ups = |p: &Pair| -> Vec<U256> {
        p.bother
            .iter()
            .filter_map(|a| match a {
                BuyerAction::TopUp { amount, .. } => Some(*amount),
                _ => None,
            })
            .collect()
    };
    p.publish_each(40);
    assert_eq!(p.delivered.len(), 8);
    assert_eq!(
        top_ups(&p),
        [U256::from(60u64)],
        "one top-up, when 2 messages were left"
    );
    // Mined: the ToppedUp event reaches both engines.
    let id = p.buyer.id();
    p.seller.on_topped_up(p.now, id, U256::from(140u64));
    p.buyer.on_deposit(p.now, U256::from(140u64));
    p.exchange();
    assert_eq!(
        p.delivered.len(),
        14,
        "the seller resumed up to the new deposit"
    );
    // The next top-up is cut to the ceiling (200 - 140 = 60), and nothing more after it.
    assert_eq!(top_ups(&p), [U256::from(60u64), U256::from(60u64)]);
    p.seller.on_topped_up(p.now, id, U256::from(200u64));
    p.buyer.on_deposit(p.now, U256::from(200u64));
    p.exchange();
    assert_eq!(p.delivered.len(), 20);
    assert_eq!(top_ups(&p).len(), 2, "the ceiling is reached");
    let (ack, _) = p.buyer.last_ack().unwrap();
    assert_eq!(ack.cost, U256::from(200u64));
    // A restarted seller knows the topped-up deposit.
    let restored = Stream::restore(
        domain(),
        test_key("s", 1),
        p.seller.id(),
        terms(16),
        SellerConfig::default(),
        p.store.clone(),
        p.now,
    )
    .unwrap();
    assert!(restored.snapshot().contains(&SellerRecord::Opened {
        channel_id: id,
        deposit: U256::from(200u64)
    }));
}

/// Issue 10, point 5: an offer with `tClosure = 2^32 - 1` would lock the buyer's deposit for
/// ~136 years. Terms beyond the judge's bounds are refused by the seller's engine and by the
/// buyer's offer check (the judge refuses them too, `TermsTooLong`).
#[test]
fn terms_beyond_the_judge_bounds_are_refused_on_both_sides() {
    use supra_channel::types::{MAX_PRICE_WEI, MAX_T_ACK_SECS, MAX_T_CLOSURE_SECS};
    let skey = test_key("s", 1);
    let sid = StreamId::new(skey.address(), 7).unwrap();
    for (t_ack_secs, t_closure_secs, price) in [
        (MAX_T_ACK_SECS + 1, 60, U256::from(10u64)),
        (10, MAX_T_CLOSURE_SECS + 1, U256::from(10u64)),
        (10, u32::MAX, U256::from(10u64)),
        (10, 60, U256::from(MAX_PRICE_WEI) + U256::from(1u64)),
    ] {
        let terms = Terms {
            price,
            t_ack_secs,
            t_closure_secs,
            ..terms(8)
        };
        assert!(
            Stream::new(domain(), skey.clone(), sid, terms, SellerConfig::default()).is_err(),
            "the seller's engine refuses {t_ack_secs} / {t_closure_secs} / {price}"
        );
    }
    let bkey = test_key("b", 1);
    let mut seller = Stream::new(
        domain(),
        skey.clone(),
        sid,
        terms(8),
        SellerConfig::default(),
    )
    .unwrap();
    let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
    assert!(check_offer(&domain(), &offer, &sig, bkey.address()).is_ok());
    let mut greedy = offer.clone();
    greedy.tClosure = u32::MAX;
    let greedy_sig = skey.sign(&domain().digest(&greedy));
    assert!(matches!(
        check_offer(&domain(), &greedy, &greedy_sig, bkey.address()),
        Err(BuyerError::InvalidOffer(_))
    ));
}

/// Issue 14: an offer names its currency (`token`, signed); a buyer refuses an offer priced in
/// another currency than its own (`BuyerConfig::token`, ETH by default) with a clear error, and the
/// seller's offer carries `Terms::token`.
#[test]
fn an_offer_in_another_currency_is_refused() {
    use alloy_primitives::Address;
    use supra_channel::check_offer_currency;
    let skey = test_key("s", 1);
    let bkey = test_key("b", 1);
    let sid = StreamId::new(skey.address(), 7).unwrap();
    let usd = Address::repeat_byte(0x05);
    let mut seller = Stream::new(
        domain(),
        skey.clone(),
        sid,
        Terms {
            token: usd,
            ..terms(8)
        },
        SellerConfig::default(),
    )
    .unwrap();
    let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
    assert_eq!(offer.token, usd, "the offer carries the seller's currency");
    // The currency is signed: the same offer in ETH has another digest (and channel id).
    let mut in_eth = offer.clone();
    in_eth.token = Address::ZERO;
    assert_ne!(domain().digest(&in_eth), domain().digest(&offer));
    assert!(check_offer(&domain(), &in_eth, &sig, bkey.address()).is_err());

    // An ETH buyer (the default) refuses it.
    let err = BuyerChannel::new(
        domain(),
        bkey.clone(),
        offer.clone(),
        sig,
        BuyerConfig::default(),
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err,
        BuyerError::Currency {
            expected: Address::ZERO,
            offered: usd
        }
    );
    let text = err.to_string();
    assert!(text.contains("ETH") && text.contains(&usd.to_string()), "{text}");
    assert!(check_offer_currency(&offer, Address::ZERO).is_err());
    // A buyer paying in that token accepts it.
    assert!(check_offer_currency(&offer, usd).is_ok());
    BuyerChannel::new(
        domain(),
        bkey.clone(),
        offer,
        sig,
        BuyerConfig {
            token: usd,
            ..Default::default()
        },
        T0,
    )
    .expect("a buyer paying in the offer's token accepts it");
    // And an ETH offer is refused by a token buyer.
    let mut eth_seller = Stream::new(domain(), skey, sid, terms(8), SellerConfig::default()).unwrap();
    let (eth_offer, eth_sig) = eth_seller.make_offer(T0, *bkey.public(), "t").unwrap();
    assert_eq!(eth_offer.token, Address::ZERO, "ETH by default");
    assert!(matches!(
        BuyerChannel::new(
            domain(),
            bkey,
            eth_offer,
            eth_sig,
            BuyerConfig {
                token: usd,
                ..Default::default()
            },
            T0
        ),
        Err(BuyerError::Currency { .. })
    ));
}

#[test]
fn delivers_in_order_and_acks_with_right_cost() {
    let mut p = Pair::new(
        8,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 2,
            ..Default::default()
        },
    );
    p.publish_each(50);
    p.advance(100);
    p.exchange();
    assert_eq!(p.delivered.len(), 50);
    for (k, (seq, pl)) in p.delivered.iter().enumerate() {
        assert_eq!(*seq, k as u64);
        assert_eq!(pl, &payload(k as u64));
    }
    let (ack, _) = p.buyer.last_ack().unwrap();
    assert_eq!(ack.seq, 49);
    assert_eq!(ack.cost, U256::from(500u64));
    assert_eq!(p.seller.best_acked_seq(&p.buyer.id()), Some(49));
}

#[test]
fn window_is_never_exceeded_without_acks() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    let mut sent = 0;
    for i in 0..100 {
        p.seller.publish(T0 + i, &payload(i)).unwrap();
        sent += p
            .seller_out()
            .iter()
            .filter(|f| matches!(f, Frame::Data(_)))
            .count();
    }
    assert_eq!(sent, 8);
    assert_eq!(p.seller.unacked_in_flight(&p.buyer.id()), Some(8));
}

#[test]
fn a_buyer_past_max_backlog_is_stopped_and_the_seller_says_why() {
    let cfg = SellerConfig {
        max_backlog: 20,
        ..SellerConfig::default()
    };
    let mut p = Pair::new(8, cfg, BuyerConfig::default());
    let id = p.buyer.id();
    let lagging = |p: &Pair| {
        p.other.iter().any(|a| {
            matches!(a, SellerAction::Event(SellerEvent::BuyerLagging { channel, behind: 21, limit: 20 }) if *channel == id)
        })
    };
    let stops = |frames: &[Frame]| frames.iter().filter(|f| matches!(f, Frame::Stop { .. })).count();
    // The buyer takes nothing: 20 messages behind is still within the limit.
    for i in 0..20 {
        p.seller.publish(T0 + i, &payload(i)).unwrap();
    }
    p.seller.handle_timeout(T0 + 20);
    assert_eq!(stops(&p.seller_out()), 0);
    assert!(!lagging(&p));
    p.seller.publish(T0 + 21, &payload(20)).unwrap();
    p.seller.handle_timeout(T0 + 21);
    assert_eq!(stops(&p.seller_out()), 1, "21 behind a limit of 20: the channel is stopped");
    assert!(lagging(&p), "the seller says why: {:?}", p.other);
}

#[test]
fn acks_are_verified_lazily() {
    // The deposit pays for all 2000 messages (the seller sends nothing it does not cover).
    let mut p = Pair::with_deposit(
        256,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 16,
            ..Default::default()
        },
        U256::from(10u64 * 2000),
    );
    for i in 0..2000 {
        p.seller.publish(T0, &payload(i)).unwrap();
        p.exchange();
    }
    let st = p.seller.stats();
    assert!(st.acks_received >= 2000 / 16 - 1, "{st:?}");
    assert!(
        st.acks_verified * 5 < st.acks_received,
        "too many verifications: {st:?}"
    );
    assert_eq!(p.delivered.len(), 2000);
}

#[test]
fn wrong_cost_ack_is_evidence() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    p.seller.publish(T0, b"x").unwrap();
    p.seller_out();
    let m = p.seller.message(0).unwrap().clone();
    let ack = Ack {
        channelId: p.buyer.id().0,
        seq: 0,
        digest: m.digest,
        cost: U256::from(11u64),
        timestamp: T0,
    };
    let sig = p.bkey.sign(&domain().digest(&ack));
    p.seller
        .handle_frame(
            T0,
            p.bkey.address(),
            Frame::Ack {
                ack: ack.clone(),
                sig,
            },
        )
        .unwrap();
    p.seller_out();
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::ProveWrongCost { ack: a2, .. } if *a2 == ack))
    );
}

#[test]
fn forged_acks_never_count() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    p.seller.publish(T0, b"x").unwrap();
    p.seller_out();
    let m = p.seller.message(0).unwrap().clone();
    let ack = Ack {
        channelId: p.buyer.id().0,
        seq: 0,
        digest: m.digest,
        cost: U256::from(10u64),
        timestamp: T0,
    };
    // Signed by someone else.
    let other = test_key("mallory", 1);
    let sig = other.sign(&domain().digest(&ack));
    p.seller
        .handle_frame(
            T0,
            p.bkey.address(),
            Frame::Ack {
                ack: ack.clone(),
                sig,
            },
        )
        .unwrap();
    // Wrong digest / unpublished seq / not the buyer are rejected outright.
    let mut bad = ack.clone();
    bad.digest = keccak256(b"nope");
    assert!(
        p.seller
            .handle_frame(T0, p.bkey.address(), Frame::Ack { ack: bad, sig })
            .is_err()
    );
    let mut far = ack.clone();
    far.seq = 5;
    far.cost = U256::from(60u64);
    let far_sig = p.bkey.sign(&domain().digest(&far));
    assert!(
        p.seller
            .handle_frame(
                T0,
                p.bkey.address(),
                Frame::Ack {
                    ack: far,
                    sig: far_sig
                }
            )
            .is_err()
    );
    assert!(
        p.seller
            .handle_frame(
                T0,
                other.address(),
                Frame::Ack {
                    ack: ack.clone(),
                    sig
                }
            )
            .is_err()
    );
    // Lazy check fires: dropped, never verified.
    p.advance(1000);
    p.seller_out();
    assert!(p.seller.verified_ack(&p.buyer.id()).is_none());
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Event(SellerEvent::InvalidAck { .. })))
    );
    // The genuine ack still counts afterwards.
    let good = p.bkey.sign(&domain().digest(&ack));
    p.seller
        .handle_frame(T0, p.bkey.address(), Frame::Ack { ack, sig: good })
        .unwrap();
    p.advance(1000);
    assert_eq!(
        p.seller.verified_ack(&p.buyer.id()).map(|a| a.ack.seq),
        Some(0)
    );
}

#[test]
fn unacked_messages_are_posted_at_t_off_ack() {
    let scfg = SellerConfig {
        delta_onchain_ms: 3_000,
        ..Default::default()
    };
    let mut p = Pair::new(8, scfg, BuyerConfig::default());
    p.seller.publish(T0, b"m0").unwrap();
    p.seller_out();
    p.advance(6_999);
    p.seller_out();
    assert!(!p.other.iter().any(|a| matches!(a, SellerAction::Post(_))));
    p.advance(1);
    p.seller_out();
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Post(m) if m.message.seq == 0)),
        "T_off_ack = 10s - 3s"
    );
    // The buyer takes the posted message as if from the link.
    let m = p.seller.message(0).unwrap().clone();
    p.buyer
        .on_posted(p.now, m.message.clone(), m.proof.clone(), m.payload.clone())
        .unwrap();
    p.buyer_out();
    assert_eq!(p.delivered, vec![(0, b"m0".to_vec())]);
}

#[test]
fn accusation_defences() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    let id = p.buyer.id();
    for i in 0..3 {
        p.seller.publish(T0, &payload(i)).unwrap();
    }
    p.seller_out();
    // Not acked: post, then defend once the posting is mined (a `defend` before it would be
    // refused: the judge looks at the posting's block time, not at when `defend` lands).
    p.seller.on_accused(T0, id, 1);
    p.seller_out();
    assert!(matches!(p.other.last(), Some(SellerAction::Post(m)) if m.message.seq == 1));
    assert!(
        !p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Defend { .. }))
    );
    p.seller.on_posted(T0 + 1_000, 1);
    p.seller_out();
    assert!(matches!(p.other.last(), Some(SellerAction::Defend { channel }) if *channel == id));
    // Acked: defend with the ack.
    let m2 = p.seller.message(2).unwrap().clone();
    let ack = Ack {
        channelId: id.0,
        seq: 2,
        digest: m2.digest,
        cost: U256::from(30u64),
        timestamp: T0,
    };
    let sig = p.bkey.sign(&domain().digest(&ack));
    p.seller
        .handle_frame(T0, p.bkey.address(), Frame::Ack { ack, sig })
        .unwrap();
    p.seller.on_accused(T0, id, 2);
    p.seller_out();
    assert!(
        matches!(p.other.last(), Some(SellerAction::DefendWithAck { ack, .. }) if ack.seq == 2)
    );
}

#[test]
fn buyer_accuses_after_t_ack_then_resolves() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    for i in 0..3 {
        p.seller.publish(T0, &payload(i)).unwrap();
    }
    let frames = p.seller_out();
    // Lose message 1.
    for (k, f) in frames.into_iter().enumerate() {
        if k != 1 {
            p.buyer.handle_frame(T0 + 5, f).unwrap();
        }
    }
    p.buyer_out();
    assert_eq!(p.delivered.len(), 1);
    assert_eq!(p.buyer.buffered(), 1);
    p.buyer.handle_timeout(T0 + 5 + 9_999).unwrap();
    p.buyer_out();
    assert!(
        !p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::Accuse { .. })),
        "accusation waits seen_at + T_ack"
    );
    let t = T0 + 5 + 10_000;
    p.buyer.handle_timeout(t).unwrap();
    p.buyer_out();
    assert!(
        p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::Accuse { missing: 1, seen, .. } if seen.seq == 2))
    );
    p.buyer.on_accusation_opened(t, t / 1000 + 10);
    let r = p.buyer.poll_timeout().unwrap();
    p.buyer.handle_timeout(r).unwrap();
    p.buyer_out();
    assert!(
        p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::Resolve { .. }))
    );
}

/// The judge takes accusations only below `acked + W` of its own `acked`: a buyer whose latest
/// ack was never claimed submits it first (a `Claim` right before the `Accuse`), and not when the
/// judge already has it.
#[test]
fn buyer_claims_its_own_ack_before_accusing_when_the_judge_lags() {
    let lose_one_of_three = |p: &mut Pair| {
        for i in 0..3 {
            p.seller.publish(T0, &payload(i)).unwrap();
        }
        for (k, f) in p.seller_out().into_iter().enumerate() {
            if k != 1 {
                p.buyer.handle_frame(T0 + 5, f).unwrap();
            }
        }
        p.buyer.handle_timeout(T0 + 5 + 5_000).unwrap(); // the delayed ack for 0
        p.buyer_out();
    };
    let chain_calls = |p: &Pair| -> Vec<&'static str> {
        p.bother
            .iter()
            .filter_map(|a| match a {
                BuyerAction::Claim { ack, .. } if ack.seq == 0 => Some("claim 0"),
                BuyerAction::Claim { .. } => Some("claim ?"),
                BuyerAction::Accuse { missing: 1, .. } => Some("accuse 1"),
                BuyerAction::Accuse { .. } => Some("accuse ?"),
                _ => None,
            })
            .collect()
    };
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    lose_one_of_three(&mut p);
    p.buyer.handle_timeout(T0 + 5 + 10_000).unwrap();
    p.buyer_out();
    assert_eq!(chain_calls(&p), ["claim 0", "accuse 1"]);

    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    lose_one_of_three(&mut p);
    p.buyer.on_claimed(T0 + 6_000, 0); // the seller claimed it
    p.buyer.handle_timeout(T0 + 5 + 10_000).unwrap();
    p.buyer_out();
    assert_eq!(chain_calls(&p), ["accuse 1"]);
}

/// A refused accusation (`NotOwed`, `ClosureElapsed`) is final: the buyer does not accuse for that
/// seq again, also after a restart; before, it retried at every timeout, forever.
#[test]
fn buyer_takes_a_refused_accusation_as_final() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    for i in 0..3 {
        p.seller.publish(T0, &payload(i)).unwrap();
    }
    for (k, f) in p.seller_out().into_iter().enumerate() {
        if k != 1 {
            p.buyer.handle_frame(T0 + 5, f).unwrap();
        }
    }
    let t = T0 + 5 + 10_000;
    p.buyer.handle_timeout(t).unwrap();
    p.buyer_out();
    let accusations = |p: &Pair| {
        p.bother
            .iter()
            .filter(|a| matches!(a, BuyerAction::Accuse { .. }))
            .count()
    };
    assert_eq!(accusations(&p), 1);
    p.buyer.on_accusation_refused(t + 100);
    assert_eq!(p.buyer.accused(), None);
    p.buyer.handle_timeout(t + 120_000).unwrap();
    p.buyer_out();
    assert_eq!(accusations(&p), 1, "no second accusation for a refused seq");
    let restored = BuyerChannel::restore(
        domain(),
        p.bkey.clone(),
        BuyerConfig::default(),
        p.buyer.snapshot(),
        t + 130_000,
    )
    .unwrap();
    assert_eq!(restored.accused(), None);
    assert!(
        restored
            .snapshot()
            .contains(&BuyerRecord::AccusationRefused { missing: 1 })
    );
}

#[test]
fn equivocation_is_proved() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    p.seller.publish(T0, b"a").unwrap();
    for f in p.seller_out() {
        p.buyer.handle_frame(T0, f).unwrap();
    }
    // The seller (its key) signs another message 0.
    let skey = test_key("s", 1);
    let payload = b"evil".to_vec();
    let m = Message {
        streamId: p.buyer.stream().0,
        seq: 0,
        timestamp: T0,
        payloadHash: keccak256(&payload),
        prev: Default::default(),
    };
    let proof = MessageProof::sign_single(&domain(), &skey, &m, domain().digest(&m));
    p.buyer.on_posted(T0, m, proof, payload).unwrap();
    p.buyer_out();
    assert!(
        p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::ProveEquivocation { .. }))
    );
    assert_eq!(p.delivered.len(), 1);
}

#[test]
fn seller_restart_never_resigns_and_loses_no_ack() {
    let mut p = Pair::new(
        16,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 2,
            ..Default::default()
        },
    );
    for i in 0..10 {
        p.seller.publish(T0 + i, &payload(i)).unwrap();
        p.exchange();
    }
    let best = p.seller.best_acked_seq(&p.buyer.id());
    // Crash right after message 10 was persisted, before it was sent.
    p.seller.publish(T0 + 10, &payload(10)).unwrap();
    for a in p.seller.drain_actions() {
        if let SellerAction::Persist(r) = a {
            p.store.push(r);
            break;
        }
    }
    let signed_10 = p.store.iter().rev().find_map(|r| match r {
        SellerRecord::Message { message, .. } if message.seq == 10 => Some(message.clone()),
        _ => None,
    });
    assert!(signed_10.is_some());
    let mut s2 = Stream::restore(
        domain(),
        test_key("s", 1),
        p.seller.id(),
        terms(16),
        SellerConfig::default(),
        p.store.clone(),
        T0 + 20,
    )
    .unwrap();
    assert_eq!(s2.next_seq(), 11);
    assert!(s2.best_acked_seq(&p.buyer.id()) >= best);
    assert_eq!(s2.message(10).unwrap().message, signed_10.unwrap());
    // Same via a compacted snapshot.
    let s3 = Stream::restore(
        domain(),
        test_key("s", 1),
        p.seller.id(),
        terms(16),
        SellerConfig::default(),
        s2.snapshot(),
        T0 + 20,
    )
    .unwrap();
    assert_eq!(s3.next_seq(), 11);
    assert_eq!(s3.last_digest(), s2.last_digest());
    assert_eq!(
        s3.best_acked_seq(&p.buyer.id()),
        s2.best_acked_seq(&p.buyer.id())
    );
    // Resume: the buyer gets 10 (retransmitted), then 11.
    s2.link_up(T0 + 20, p.bkey.address());
    p.seller = s2;
    p.now = T0 + 20;
    p.buyer.link_up(p.now).unwrap();
    p.exchange();
    p.seller.publish(p.now, &payload(11)).unwrap();
    p.exchange();
    p.advance(100);
    p.exchange();
    let seqs: Vec<u64> = p.delivered.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..12).collect::<Vec<_>>());
    assert_eq!(p.seller.best_acked_seq(&p.buyer.id()), Some(11));
}

#[test]
fn buyer_restart_neither_duplicates_nor_loses() {
    let mut p = Pair::new(
        16,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 3,
            ..Default::default()
        },
    );
    for i in 0..7 {
        p.seller.publish(T0, &payload(i)).unwrap();
        p.exchange();
    }
    let restored = BuyerChannel::restore(
        domain(),
        p.bkey.clone(),
        BuyerConfig {
            ack_every: 3,
            ..Default::default()
        },
        p.bstore.clone(),
        T0 + 1,
    )
    .unwrap();
    assert_eq!(restored.next_seq(), 7);
    let snap = BuyerChannel::restore(
        domain(),
        p.bkey.clone(),
        BuyerConfig::default(),
        restored.snapshot(),
        T0 + 1,
    )
    .unwrap();
    assert_eq!(snap.next_seq(), 7);
    p.buyer = restored;
    p.now = T0 + 1;
    p.buyer.link_up(p.now).unwrap();
    p.seller.link_up(p.now, p.bkey.address());
    p.exchange();
    for i in 7..12 {
        p.seller.publish(p.now, &payload(i)).unwrap();
        p.exchange();
    }
    p.advance(1000);
    p.exchange();
    let seqs: Vec<u64> = p.delivered.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..12).collect::<Vec<_>>());
}

#[test]
fn buyer_stop_and_seller_stop() {
    // Buyer stops.
    let mut p = Pair::new(
        8,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 1,
            ..Default::default()
        },
    );
    for i in 0..3 {
        p.seller.publish(T0, &payload(i)).unwrap();
        p.exchange();
    }
    p.buyer.stop(T0).unwrap();
    let frames = p.buyer_out();
    assert!(frames.iter().any(|f| matches!(f, Frame::Stop { .. })));
    assert!(
        !p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::RequestClose { .. })),
        "held back: the seller is expected to close cooperatively"
    );
    for f in frames {
        p.seller.handle_frame(T0, p.bkey.address(), f).unwrap();
    }
    p.seller_out();
    p.seller.publish(T0, &payload(3)).unwrap();
    assert!(
        p.seller_out().is_empty(),
        "nothing sent after the buyer's stop"
    );
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Event(SellerEvent::StopCompleted { .. })))
    );

    // Seller stops.
    let mut p = Pair::new(
        8,
        SellerConfig::default(),
        BuyerConfig {
            ack_every: 100,
            ack_delay_ms: 50,
            ..Default::default()
        },
    );
    for i in 0..3 {
        p.seller.publish(T0, &payload(i)).unwrap();
    }
    let id = p.buyer.id();
    p.seller.stop_channel(T0, id).unwrap();
    p.exchange();
    // The seller closes cooperatively; the buyer holds back its `requestClose`.
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::CloseCooperatively { .. }))
    );
    assert!(
        !p.bother
            .iter()
            .any(|a| matches!(a, BuyerAction::RequestClose { .. }))
    );
    assert_eq!(p.buyer.last_ack().unwrap().0.seq, 2, "final ack");
    // The close pays ack 2 and settles: neither a claim nor a close request while it is out.
    let claimed_or_requested = |p: &Pair| {
        p.other.iter().any(|a| {
            matches!(a, SellerAction::Claim { ack, .. } if ack.seq == 2)
                || matches!(a, SellerAction::RequestClose { .. })
        })
    };
    assert!(!claimed_or_requested(&p));
    // It fails: the normal close goes on (claim, request).
    p.seller.on_close_cooperatively_failed(T0, id);
    p.exchange();
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Claim { ack, .. } if ack.seq == 2))
    );
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::RequestClose { .. }))
    );
}

#[test]
fn close_claims_ack_then_posted_messages() {
    let scfg = SellerConfig {
        delta_onchain_ms: 3_000,
        ..Default::default()
    };
    let mut p = Pair::new(
        8,
        scfg,
        BuyerConfig {
            ack_every: 1,
            ..Default::default()
        },
    );
    let id = p.buyer.id();
    p.seller.publish(T0, &payload(0)).unwrap();
    p.exchange();
    // 1 and 2 are lost and get posted.
    p.seller.publish(T0, &payload(1)).unwrap();
    p.seller.publish(T0, &payload(2)).unwrap();
    p.seller_out();
    p.advance(7_000);
    p.seller_out();
    for seq in [1, 2] {
        p.seller.on_posted(p.now, seq);
    }
    p.advance(1);
    p.seller.on_close_requested(p.now, id, p.now / 1000);
    p.seller_out();
    let claim = p
        .other
        .iter()
        .position(|a| matches!(a, SellerAction::Claim { ack, .. } if ack.seq == 0))
        .expect("claim");
    let cp = p
        .other
        .iter()
        .position(|a| matches!(a, SellerAction::ClaimPosted { upto: 2, .. }))
        .expect("claimPosted");
    assert!(claim < cp);
    p.advance(50_000);
    p.seller_out();
    assert!(
        !p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Settle { .. })),
        "not before T_closure"
    );
    p.advance(13_000);
    p.seller_out();
    assert!(
        p.other
            .iter()
            .any(|a| matches!(a, SellerAction::Settle { .. }))
    );
}

#[test]
fn departed_buyer_cannot_read_later_messages() {
    let skey = test_key("s", 1);
    let (b1, b2) = (test_key("b", 1), test_key("b", 2));
    let sid = StreamId::new(skey.address(), 7).unwrap();
    let mut seller = Stream::new(domain(), skey, sid, terms(8), SellerConfig::default()).unwrap();
    let mut chans = vec![];
    for b in [&b1, &b2] {
        let (offer, sig) = seller.make_offer(T0, *b.public(), "t").unwrap();
        let c =
            BuyerChannel::new(domain(), b.clone(), offer, sig, BuyerConfig::default(), T0).unwrap();
        seller
            .open_channel(T0, c.id(), U256::from(1000u64))
            .unwrap();
        chans.push(c);
    }
    seller.publish(T0, b"for both").unwrap();
    seller.drain_actions();
    let m0 = seller.message(0).unwrap().clone();
    for c in chans.iter_mut() {
        c.on_posted(T0, m0.message.clone(), m0.proof.clone(), m0.payload.clone())
            .unwrap();
        assert!(
            c.drain_actions()
                .any(|a| matches!(a, BuyerAction::Deliver { seq: 0, .. }))
        );
    }
    // b2 stops; the next message starts a new epoch without it.
    chans[1].stop(T0).unwrap();
    let stop = chans[1].drain_actions().find_map(|a| match a {
        BuyerAction::Send(f) => match Frame::decode(&f).unwrap() {
            f @ Frame::Stop { .. } => Some(f),
            _ => None,
        },
        _ => None,
    });
    seller
        .handle_frame(T0, b2.address(), stop.unwrap())
        .unwrap();
    seller.publish(T0, b"only b1").unwrap();
    seller.drain_actions();
    let m1 = seller.message(1).unwrap().clone();
    assert_eq!(seller.epoch(), 2);
    chans[0]
        .on_posted(T0, m1.message.clone(), m1.proof.clone(), m1.payload.clone())
        .unwrap();
    assert!(chans[0].drain_actions().any(
        |a| matches!(a, BuyerAction::Deliver { seq: 1, ref payload } if payload == b"only b1")
    ));
    // b2, with every key it ever learned, cannot open message 1.
    let mut o = Opener::new();
    for r in chans[1].snapshot() {
        if let BuyerRecord::EpochKey { epoch, key } = r {
            o.insert_key(epoch, EpochKey(key));
        }
    }
    assert_eq!(o.keys().len(), 1);
    assert_eq!(
        o.open(&b2, &sid, 1, &m1.payload).unwrap_err(),
        SealError::NoKey(2)
    );
}

#[test]
fn records_round_trip() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    for i in 0..5 {
        p.seller.publish(T0, &payload(i)).unwrap();
        p.exchange();
    }
    // One reused buffer, as the broker's commit thread encodes: each record's bytes replace the
    // previous record's, whatever their lengths.
    let mut buf = vec![0xaa; 4096];
    for r in p.store.iter().chain(p.seller.snapshot().iter()) {
        assert_eq!(&SellerRecord::decode(&r.encode().unwrap()).unwrap(), r);
        r.encode_into(&mut buf).unwrap();
        assert_eq!(buf, r.encode().unwrap());
    }
    for r in p.bstore.iter() {
        assert_eq!(&BuyerRecord::decode(&r.encode().unwrap()).unwrap(), r);
        r.encode_into(&mut buf).unwrap();
        assert_eq!(buf, r.encode().unwrap());
    }
    assert!(SellerRecord::decode(&[0xff; 10]).is_err());
}

#[test]
fn extreme_values_do_not_panic() {
    let mut p = Pair::new(8, SellerConfig::default(), BuyerConfig::default());
    let skey = test_key("s", 1);
    let id = p.buyer.id();
    // Seller-signed messages at the end of the seq space, with and without valid links.
    for seq in [u64::MAX, u64::MAX - 1, u64::MAX / 2] {
        let payload = vec![1u8; 3];
        let m = Message {
            streamId: p.buyer.stream().0,
            seq,
            timestamp: u64::MAX,
            payloadHash: keccak256(&payload),
            prev: Default::default(),
        };
        let proof = MessageProof::sign_single(&domain(), &skey, &m, domain().digest(&m));
        let _ = p.buyer.handle_frame(
            u64::MAX,
            Frame::Data(supra_channel::wire::Data {
                message: m.clone(),
                proof: proof.clone(),
                payload: payload.clone(),
            }),
        );
        let _ = p.buyer.on_posted(0, m, proof, payload);
    }
    let _ = p.buyer.handle_timeout(u64::MAX);
    p.buyer.on_accusation_opened(u64::MAX, u64::MAX);
    p.buyer.on_close_requested(u64::MAX, u64::MAX);
    let _ = p.buyer.handle_timeout(u64::MAX);
    // Acks, resumes and stops with extreme fields.
    for seq in [u64::MAX, u64::MAX - 1, 0] {
        let ack = Ack {
            channelId: id.0,
            seq,
            digest: Default::default(),
            cost: U256::MAX,
            timestamp: u64::MAX,
        };
        let sig = p.bkey.sign(&domain().digest(&ack));
        let _ = p
            .seller
            .handle_frame(u64::MAX, p.bkey.address(), Frame::Ack { ack, sig });
        let _ = p.seller.handle_frame(
            u64::MAX,
            p.bkey.address(),
            Frame::Resume {
                channel_id: id,
                next_seq: seq,
            },
        );
        let stop = Stop {
            channelId: id.0,
            seq,
            timestamp: u64::MAX,
        };
        let sig = p.bkey.sign(&domain().digest(&stop));
        let _ = p
            .seller
            .handle_frame(u64::MAX, p.bkey.address(), Frame::Stop { stop, sig });
    }
    p.seller.on_close_requested(u64::MAX, id, u64::MAX);
    p.seller.on_accused(u64::MAX, id, u64::MAX);
    p.seller.on_posted(u64::MAX, u64::MAX);
    p.seller.handle_timeout(u64::MAX);
    let _ = p.seller.publish(u64::MAX, b"late");
    p.seller.drain_actions().for_each(drop);
}
