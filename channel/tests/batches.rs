//! Amortised signatures (issue 11): one seller signature per batch of messages, one buyer
//! verification per batch, and every proof of a single message still possible.

use alloy_primitives::{B256, U256, keccak256};
use supra_channel::proof::MAX_PROOF_DEPTH;
use supra_channel::seller::SellerConfig;
use supra_channel::testkit::test_key;
use supra_channel::wire::Data;
use supra_channel::*;

mod common;
use common::*;

fn payloads(from: u64, n: u64) -> Vec<Vec<u8>> {
    (from..from + n).map(payload).collect()
}

fn publish(p: &mut Pair, plaintexts: &[Vec<u8>]) -> std::ops::Range<u64> {
    p.now += 1;
    let refs: Vec<&[u8]> = plaintexts.iter().map(Vec::as_slice).collect();
    p.seller.publish_batch(p.now, &refs).unwrap()
}

fn data_frames(frames: Vec<Frame>) -> Vec<Data> {
    frames
        .into_iter()
        .filter_map(|f| match f {
            Frame::Data(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_costs_the_seller_one_signature_and_the_buyer_one_verification() {
    let mut p = Pair::new(256, SellerConfig::default(), BuyerConfig::default());
    let seqs = publish(&mut p, &payloads(0, 50));
    assert_eq!(seqs, 0..50);
    p.exchange();
    assert_eq!(p.delivered.len(), 50);
    assert!(p.delivered.iter().enumerate().all(|(i, (seq, pl))| *seq == i as u64 && *pl == payload(i as u64)));
    assert_eq!((p.seller.stats().batches, p.seller.stats().signed), (1, 50));
    assert_eq!(p.buyer.stats().sigs_verified, 1);
    // The (delayed) ack covers the batch and costs what 50 messages cost.
    p.advance(1_000);
    p.exchange();
    let (ack, _) = p.buyer.last_ack().unwrap();
    assert_eq!((ack.seq, ack.cost), (49, U256::from(500u64)));
    // The next turn's batch is one more signature.
    publish(&mut p, &payloads(50, 7));
    p.exchange();
    assert_eq!(p.delivered.len(), 57);
    assert_eq!(p.seller.stats().batches, 2);
    assert_eq!(p.buyer.stats().sigs_verified, 2);
}

#[test]
fn max_batch_bounds_what_one_signature_covers_and_the_path_length() {
    let cfg = SellerConfig {
        max_batch: 16,
        ..SellerConfig::default()
    };
    let mut p = Pair::new(256, cfg, BuyerConfig::default());
    publish(&mut p, &payloads(0, 40));
    let frames = data_frames(p.seller_out());
    assert_eq!(frames.len(), 40);
    assert_eq!(p.seller.stats().batches, 3, "16 + 16 + 8");
    let skey = test_key("s", 1);
    for d in &frames {
        let b = &d.proof.batch;
        assert!(b.lastSeq - b.firstSeq < 16 && d.proof.path.len() <= 4);
        let digest = domain().digest(&d.message);
        d.proof.verify(&domain(), skey.public(), &d.message, digest).unwrap();
    }
    assert!(MAX_PROOF_DEPTH >= 8, "the judge's bound covers the engine's largest batch");
}

#[test]
fn a_message_of_a_batch_posted_on_chain_fills_the_gap() {
    let mut p = Pair::new(256, SellerConfig::default(), BuyerConfig::default());
    publish(&mut p, &payloads(0, 8));
    // The link loses message 3.
    for d in data_frames(p.seller_out()) {
        if d.message.seq != 3 {
            let _ = p.buyer.handle_frame(p.now, Frame::Data(d));
        }
    }
    p.buyer_out();
    assert_eq!(p.delivered.len(), 3);
    // The seller posts it with its batch proof; the judge's event hands the buyer the same.
    let m = p.seller.message(3).unwrap().clone();
    p.buyer
        .on_posted(p.now, m.message.clone(), m.proof.clone(), m.payload.clone())
        .unwrap();
    p.buyer_out();
    let seqs: Vec<u64> = p.delivered.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());
    assert_eq!(p.buyer.stats().sigs_verified, 1, "the posted message's batch was checked already");
}

#[test]
fn a_restored_seller_retransmits_with_proofs_the_buyer_accepts() {
    let mut p = Pair::new(256, SellerConfig::default(), BuyerConfig::default());
    publish(&mut p, &payloads(0, 4));
    p.exchange();
    // A batch persisted but never sent: the seller crashes right after its commit.
    publish(&mut p, &payloads(4, 10));
    p.seller_out();
    let mut restored = Stream::restore(
        domain(),
        test_key("s", 1),
        p.seller.id(),
        terms(256),
        SellerConfig::default(),
        p.store.clone(),
        p.now,
    )
    .unwrap();
    assert_eq!(restored.next_seq(), 14, "never re-signs a persisted seq");
    restored.link_up(p.now, p.bkey.address());
    p.seller = restored;
    p.buyer.link_up(p.now).unwrap();
    p.exchange();
    p.advance(2_000);
    p.exchange();
    let seqs: Vec<u64> = p.delivered.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..14).collect::<Vec<_>>());
    assert_eq!(p.buyer.stats().sigs_verified, 2, "two batches, each checked once");
}

#[test]
fn a_proof_from_another_message_or_a_forged_batch_changes_nothing() {
    let mut p = Pair::new(256, SellerConfig::default(), BuyerConfig::default());
    publish(&mut p, &payloads(0, 8));
    let frames = data_frames(p.seller_out());
    // Message 0 under message 1's path.
    let mut swapped = frames[0].clone();
    swapped.proof = frames[1].proof.clone();
    assert!(matches!(
        p.buyer.handle_frame(p.now, Frame::Data(swapped)),
        Err(BuyerError::Proof(ProofError::WrongRoot))
    ));
    // A batch root the seller never signed (the path made to fold onto it).
    let mut forged = frames[0].clone();
    forged.proof.batch.root = B256::repeat_byte(9);
    assert!(matches!(
        p.buyer.handle_frame(p.now, Frame::Data(forged)),
        Err(BuyerError::Proof(_))
    ));
    // Someone else's batch signature over the genuine root.
    let mut other = frames[0].clone();
    let mallory = test_key("m", 1);
    other.proof.sig = mallory.sign(&domain().digest(&other.proof.batch));
    assert!(p.buyer.handle_frame(p.now, Frame::Data(other)).is_err());
    assert!(p.buyer_out().is_empty() && p.delivered.is_empty());
    assert_eq!(p.buyer.next_seq(), 0);
    // The genuine frames still go through.
    for d in frames {
        p.buyer.handle_frame(p.now, Frame::Data(d)).unwrap();
    }
    p.buyer_out();
    assert_eq!(p.delivered.len(), 8);
}

#[test]
fn two_batches_with_different_messages_for_one_seq_are_proven_equivocation() {
    let mut p = Pair::new(256, SellerConfig::default(), BuyerConfig::default());
    publish(&mut p, &payloads(0, 4));
    p.exchange();
    // The seller's key signs a second batch over a fork from seq 2 on.
    let skey = test_key("s", 1);
    let first = p.seller.message(1).unwrap().clone();
    let mut prev = first.digest;
    let fork: Vec<(Message, B256)> = (2..4u64)
        .map(|seq| {
            let m = Message {
                streamId: first.message.streamId,
                seq,
                timestamp: first.message.timestamp,
                payloadHash: keccak256(format!("evil {seq}")),
                prev,
            };
            prev = domain().digest(&m);
            (m, prev)
        })
        .collect();
    let leaves: Vec<(&Message, B256)> = fork.iter().map(|(m, d)| (m, *d)).collect();
    let proofs = MessageProof::sign_batch(&domain(), &skey, &leaves);
    p.bother.clear();
    // It reaches the buyer, say posted on-chain, after the genuine message 2 was delivered.
    p.buyer
        .on_posted(p.now, fork[0].0.clone(), proofs[0].clone(), b"evil 2".to_vec())
        .unwrap();
    let _ = p.buyer_out();
    let evidence: Vec<_> = p
        .bother
        .iter()
        .filter_map(|a| match a {
            BuyerAction::ProveEquivocation { a, proof_a, b, proof_b, .. } => {
                Some((a.clone(), proof_a.clone(), b.clone(), proof_b.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1, "{:?}", p.bother);
    let (a, pa, b, pb) = &evidence[0];
    assert_eq!((a.seq, b.seq), (2, 2));
    assert_ne!(pa.batch, pb.batch, "the two messages come from two batches");
    for (m, proof) in [(a, pa), (b, pb)] {
        proof.verify(&domain(), skey.public(), m, domain().digest(m)).unwrap();
    }
}

/// With many buyers a batch costs each channel one action sharing the batch's frames (issue 11's
/// fan-out); a channel that may send only part of it (its window is nearly full) gets its own.
#[test]
fn channels_in_step_share_one_run_of_frames_and_a_window_cuts_its_own() {
    let skey = test_key("s", 3);
    let sid = StreamId::new(skey.address(), 9).unwrap();
    let mut seller = Stream::new(domain(), skey, sid, terms(8), SellerConfig::default()).unwrap();
    let mut peers = Vec::new();
    for i in 0..3 {
        let bkey = test_key("b", 10 + i);
        let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
        let buyer = BuyerChannel::new(domain(), bkey.clone(), offer, sig, BuyerConfig::default(), T0).unwrap();
        seller.open_channel(T0, buyer.id(), U256::from(10_000u64)).unwrap();
        peers.push(bkey.address());
    }
    // The first message starts the buyers' sealing epoch (a key grant each).
    seller.publish(T0 + 1, b"first").unwrap();
    seller.drain_actions().for_each(drop);
    let sends = |seller: &mut Stream| -> Vec<(alloy_primitives::Address, supra_channel::wire::FrameRun)> {
        seller
            .drain_actions()
            .filter_map(|a| match a {
                SellerAction::Send { peer, frames } => Some((peer, frames)),
                _ => None,
            })
            .collect()
    };
    let four = payloads(1, 4);
    let refs: Vec<&[u8]> = four.iter().map(Vec::as_slice).collect();
    seller.publish_batch(T0 + 2, &refs).unwrap();
    let runs = sends(&mut seller);
    let mut to: Vec<_> = runs.iter().map(|(p, _)| *p).collect();
    to.sort();
    peers.sort();
    assert_eq!(to, peers, "one action per channel");
    assert!(runs.iter().all(|(_, f)| f.len() == 4 && std::sync::Arc::ptr_eq(f, &runs[0].1)), "the same run for all");
    // 5 of the window's 8 are out, unacked: 3 more may go, of the next 6.
    let six = payloads(5, 6);
    let refs: Vec<&[u8]> = six.iter().map(Vec::as_slice).collect();
    seller.publish_batch(T0 + 3, &refs).unwrap();
    let runs = sends(&mut seller);
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|(_, f)| f.len() == 3), "cut at the window");
    let seqs: Vec<u64> = runs[0]
        .1
        .iter()
        .map(|f| match Frame::decode(f).unwrap() {
            Frame::Data(d) => d.message.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, vec![5, 6, 7]);
    assert!(!std::sync::Arc::ptr_eq(&runs[0].1, &runs[1].1), "each its own");
}
