//! Property tests: the engines over random lossy, duplicating, reordering, flapping links with
//! crashes and restarts; tampered frames; the wire decoder on arbitrary bytes.

use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::testkit::{LinkConfig, PauseConfig, Sim, SimConfig, test_key};
use supra_channel::wire::{Data, Hello};
use supra_channel::*;

const T0: u64 = 1_700_000_000_000;

fn sim_config() -> impl Strategy<Value = SimConfig> {
    (
        any::<u64>(),
        1usize..4,
        (0u32..300, 0u32..200, 1u64..80, 0u32..30),
        (0u32..12, 0u32..12),
        (2u64..33, 1u64..9),
        (20u64..160, 1u64..60, 1u64..40, 1u64..70),
        proptest::collection::vec(0u64..3_000, 0..4),
    )
        .prop_map(
            |(
                seed,
                buyers,
                (loss, dup, delay_max, flap),
                (scrash, bcrash),
                (window, ack_every),
                (messages, every, publish_batch, max_batch),
                join_at,
            )| SimConfig {
                seed,
                buyers,
                join_at,
                terms: Terms {
                    price: U256::from(7u64),
                    token: Default::default(),
                    window,
                    t_ack_secs: 10,
                    t_closure_secs: 60,
                    offer_validity_secs: 600,
                },
                seller: SellerConfig {
                    delta_onchain_ms: 2_000,
                    retransmit_timeout_ms: 200,
                    max_batch,
                    ..SellerConfig::default()
                },
                buyer: BuyerConfig {
                    ack_every,
                    ack_delay_ms: 15,
                    ..BuyerConfig::default()
                },
                link: LinkConfig {
                    loss_permille: loss,
                    dup_permille: dup,
                    delay_min_ms: 1,
                    delay_max_ms: delay_max,
                    flap_permille: flap,
                    outage_ms: (50, 20_000),
                },
                chain_delay_ms: 1_000,
                messages,
                publish_every_ms: every,
                publish_batch,
                payload_len: 24,
                seller_crash_permille: scrash,
                buyer_crash_permille: bcrash,
                start_ms: T0,
                pauses: PauseConfig::default(),
            },
        )
}

/// `sim_config` plus buyer pauses longer than `T_off-ack` (8 s here), so that the seller fills
/// the window, posts it, and the buyer takes it from the chain when it wakes up.
fn paused_sim_config() -> impl Strategy<Value = SimConfig> {
    (sim_config(), 1u32..6, 8_500u64..12_000, 12_000u64..40_000).prop_map(
        |(mut cfg, permille, lo, hi)| {
            cfg.pauses = PauseConfig {
                permille,
                ms: (lo, hi),
            };
            cfg
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Exactly-once in-order delivery; never more than W unacked in flight; every message sent
    /// on a channel acked or posted by max(timestamp, first send) + T_ack; every ack's cost is
    /// (n - startSeq + 1) * P; no equivocation across restarts; no accusation upheld.
    #[test]
    fn protocol_properties_hold_over_faulty_links(cfg in sim_config()) {
        let mut sim = Sim::new(cfg);
        let deadline = sim.now + 6 * 3_600_000;
        let done = sim.run(deadline, true);
        // Let the last acks and postings happen on the calm network.
        sim.run_for(30_000);
        if let Err(e) = sim.check() {
            return Err(TestCaseError::fail(e));
        }
        prop_assert!(done, "not every message was delivered");
        for (i, b) in sim.buyers.iter().enumerate() {
            let start = b.chan.as_ref().map_or(0, |c| c.offer().startSeq);
            prop_assert_eq!(sim.obs.outbox[i].len() as u64, sim.seller.next_seq() - start);
            if start < sim.seller.next_seq() {
                prop_assert!(sim.acked(i, sim.seller.next_seq() - 1), "buyer {}'s last ack never reached the seller", i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Liveness (issue 17): after any mix of losses, duplicates, reordering, link drops, crashes
    /// and buyer pauses longer than `T_off-ack` (so that full windows get posted on-chain and
    /// taken from there), once the network is calm every published message is delivered exactly
    /// once, in order, and acked, and the seller's view of each channel's acks catches up with
    /// the buyer's: nothing is left in flight, the stream never stalls.
    #[test]
    fn streams_never_stall_after_pauses_and_postings(cfg in paused_sim_config()) {
        let mut sim = Sim::new(cfg);
        // Publishing takes at most ~10 s, a pause 40 s, an outage 20 s: half an hour is ample
        // (and a stalled stream, which retransmits its full window forever, fails fast).
        let deadline = sim.now + 1_800_000;
        let done = sim.run(deadline, true);
        sim.run_for(60_000);
        if let Err(e) = sim.check() {
            return Err(TestCaseError::fail(e));
        }
        let head = sim.seller.next_seq();
        prop_assert!(done, "stalled: published {}, delivered {:?} (pauses {})", head,
            sim.buyers.iter().map(|b| b.chan.as_ref().map(|c| c.next_seq())).collect::<Vec<_>>(), sim.obs.pauses);
        for (i, b) in sim.buyers.iter().enumerate() {
            let c = b.chan.as_ref().expect("joined");
            let start = c.offer().startSeq;
            prop_assert_eq!(sim.obs.outbox[i].len() as u64, head - start, "buyer {} delivered", i);
            if start == head {
                continue;
            }
            let buyer_view = c.last_ack().map(|(a, _)| a.seq);
            let seller_view = sim.seller.best_acked_seq(&c.id());
            prop_assert_eq!(buyer_view, Some(head - 1), "buyer {} acked", i);
            prop_assert_eq!(seller_view, buyer_view, "buyer {}: the seller's view of the acks", i);
            prop_assert_eq!(sim.seller.unacked_in_flight(&c.id()), Some(0));
        }
    }
}

/// A seller and one buyer, `n` messages published; returns the encoded Data frames.
fn setup(n: u64) -> (Stream, BuyerChannel, Keypair, Vec<Vec<u8>>) {
    let domain = Domain::new(1, Address::repeat_byte(1));
    let skey = test_key("s", 9);
    let bkey = test_key("b", 9);
    let sid = StreamId::new(skey.address(), 3).unwrap();
    let terms = Terms {
        price: U256::from(5u64),
        token: Default::default(),
        window: 64,
        t_ack_secs: 10,
        t_closure_secs: 60,
        offer_validity_secs: 600,
    };
    let mut seller = Stream::new(domain, skey, sid, terms, SellerConfig::default()).unwrap();
    let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
    let buyer =
        BuyerChannel::new(domain, bkey.clone(), offer, sig, BuyerConfig::default(), T0).unwrap();
    seller
        .open_channel(T0, buyer.id(), U256::from(1000u64))
        .unwrap();
    seller.drain_actions();
    // One batch: every frame's proof carries a Merkle path.
    let plaintexts: Vec<Vec<u8>> = (0..n).map(|i| format!("message {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = plaintexts.iter().map(Vec::as_slice).collect();
    seller.publish_batch(T0, &refs).unwrap();
    let frames = seller
        .drain_actions()
        .flat_map(|a| match a {
            SellerAction::Send { frames, .. } => frames.iter().map(|f| f.to_vec()).collect(),
            _ => vec![],
        })
        .collect();
    (seller, buyer, bkey, frames)
}

fn fingerprint(b: &BuyerChannel) -> (u64, usize, Option<u64>) {
    (b.next_seq(), b.buffered(), b.last_ack().map(|(a, _)| a.seq))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any single bit flip in a Data frame's message, batch signature or root, or payload is
    /// rejected (or ignored) and changes nothing; the genuine frame is then accepted.
    #[test]
    fn tampered_data_frames_change_nothing(which in 0usize..3, bit in any::<prop::sample::Index>(), before in 0usize..3) {
        let (_seller, mut buyer, _bkey, frames) = setup(3);
        for f in &frames[..before] {
            buyer.handle_frame(T0, Frame::decode(f).unwrap()).unwrap();
        }
        buyer.drain_actions();
        let Frame::Data(d) = Frame::decode(&frames[before]).unwrap() else { unreachable!() };
        // Flip one bit in the chosen part.
        let mut d2 = d.clone();
        match which {
            0 => {
                let mut raw = Vec::new();
                raw.extend_from_slice(d2.message.streamId.as_slice());
                raw.extend_from_slice(&d2.message.seq.to_be_bytes());
                raw.extend_from_slice(&d2.message.timestamp.to_be_bytes());
                raw.extend_from_slice(d2.message.payloadHash.as_slice());
                raw.extend_from_slice(d2.message.prev.as_slice());
                let i = bit.index(raw.len() * 8);
                raw[i / 8] ^= 1 << (i % 8);
                d2.message.streamId = B256::from_slice(&raw[0..32]);
                d2.message.seq = u64::from_be_bytes(raw[32..40].try_into().unwrap());
                d2.message.timestamp = u64::from_be_bytes(raw[40..48].try_into().unwrap());
                d2.message.payloadHash = B256::from_slice(&raw[48..80]);
                d2.message.prev = B256::from_slice(&raw[80..112]);
            }
            1 => {
                // The batch's signature or its root.
                let i = bit.index((65 + 32) * 8);
                if i < 65 * 8 {
                    d2.proof.sig.0[i / 8] ^= 1 << (i % 8);
                } else {
                    let j = i - 65 * 8;
                    d2.proof.batch.root.0[j / 8] ^= 1 << (j % 8);
                }
            }
            _ => {
                let i = bit.index(d2.payload.len() * 8);
                d2.payload[i / 8] ^= 1 << (i % 8);
            }
        }
        let fp = fingerprint(&buyer);
        let r = buyer.handle_frame(T0, Frame::Data(d2.clone()));
        let actions: Vec<BuyerAction> = buyer.drain_actions().collect();
        prop_assert!(r.is_err() || d2.message.seq < d.message.seq || d2.message.seq > 2, "accepted a tampered frame: {:?}", r);
        prop_assert!(actions.is_empty(), "tampered frame produced actions: {:?}", actions);
        prop_assert_eq!(fingerprint(&buyer), fp);
        // The genuine frame still goes through.
        buyer.handle_frame(T0, Frame::Data(d)).unwrap();
        prop_assert_eq!(buyer.next_seq(), before as u64 + 1);
    }

    /// A tampered ack never becomes the seller's verified ack.
    #[test]
    fn tampered_acks_never_count(bit in any::<prop::sample::Index>()) {
        let (mut seller, mut buyer, bkey, frames) = setup(2);
        for f in &frames {
            buyer.handle_frame(T0, Frame::decode(f).unwrap()).unwrap();
        }
        buyer.stop(T0).unwrap();
        let ack = buyer.drain_actions().find_map(|a| match a {
            BuyerAction::Send(f) => match Frame::decode(&f).unwrap() {
                Frame::Ack { ack, sig } => Some((ack, sig)),
                _ => None,
            },
            _ => None,
        }).unwrap();
        let (ack, mut sig) = ack;
        let i = bit.index(65 * 8);
        sig.0[i / 8] ^= 1 << (i % 8);
        let _ = seller.handle_frame(T0, bkey.address(), Frame::Ack { ack, sig });
        seller.handle_timeout(T0 + 10_000);
        prop_assert!(seller.verified_ack(&buyer.id()).is_none());
        let claimed = seller.drain_actions().any(|a| matches!(a, SellerAction::Claim { .. }));
        prop_assert!(!claimed);
    }

    /// The decoder never panics and never accepts trailing garbage, whatever the bytes and
    /// however they are chunked.
    #[test]
    fn decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let _ = Frame::decode(&bytes);
        let _ = Frame::decode_body(&bytes);
        let mut dec = FrameDecoder::new();
        for c in bytes.chunks(chunk) {
            if dec.feed(c).is_err() {
                break;
            }
            while let Ok(Some(_)) = dec.next_frame() {}
        }
        let _ = SellerRecord::decode(&bytes);
        let _ = BuyerRecord::decode(&bytes);
    }

    /// Valid frames with arbitrary field values round-trip; a prefix of valid frames followed by
    /// a flipped byte never panics.
    #[test]
    fn frames_round_trip(seq in any::<u64>(), ts in any::<u64>(), h in any::<[u8; 32]>(), payload in proptest::collection::vec(any::<u8>(), 0..600),
                         sig in any::<[u8; 32]>(), cost in any::<[u8; 32]>(), topic in proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect::<String>()), flip in any::<prop::sample::Index>()) {
        let mut s = [0u8; 65];
        s[..32].copy_from_slice(&sig);
        let sig = Signature(s);
        let frames = vec![
            Frame::Data(Data { message: Message { streamId: B256::from(h), seq, timestamp: ts, payloadHash: B256::from(sig.0[..32].try_into().unwrap_or([0; 32])), prev: B256::from(h) }, proof: MessageProof { batch: Batch { streamId: B256::from(h), firstSeq: seq, lastSeq: seq.saturating_add(ts % 256), root: B256::from(cost) }, sig, path: vec![B256::from(h); (ts % 9) as usize] }, payload: payload.clone() }),
            Frame::Ack { ack: Ack { channelId: U256::from_be_bytes(cost), seq, digest: B256::from(h), cost: U256::from_be_bytes(cost), timestamp: ts }, sig },
            Frame::Request { topic: topic.clone() },
            Frame::Hello(Hello { version: 1, from: Address::from_slice(&h[..20]), nonce: B256::from(h), auth: Some(sig) }),
            Frame::Resume { channel_id: ChannelId(U256::from_be_bytes(h)), next_seq: seq },
        ];
        let mut stream = Vec::new();
        for f in &frames {
            let b = f.encode().unwrap();
            prop_assert_eq!(&Frame::decode(&b).unwrap(), f);
            stream.extend(b);
        }
        let mut dec = FrameDecoder::new();
        dec.feed(&stream).unwrap();
        for f in &frames {
            prop_assert_eq!(&dec.next_frame().unwrap().unwrap(), f);
        }
        let i = flip.index(stream.len());
        stream[i] ^= 0xff;
        let mut dec = FrameDecoder::new();
        if dec.feed(&stream).is_ok() {
            while let Ok(Some(_)) = dec.next_frame() {}
        }
    }
}
