//! The `testkit` fast simulation keys (see the `sign` module docs): they run the engines like
//! real keys, and they can never meet a real key, a key parsed from bytes, or the broker.

use std::path::Path;

use alloy_primitives::U256;
use supra_channel::records::SellerRecord;
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::sign::{SigError, recover, verify};
use supra_channel::testkit::{fast_test_key, test_key};
use supra_channel::*;

const T0: u64 = 1_700_000_000_000;

fn domain() -> Domain {
    Domain::new(31337, alloy_primitives::Address::repeat_byte(0x42))
}

fn terms() -> Terms {
    Terms {
        price: U256::from(10u64),
        token: Default::default(),
        window: 8,
        t_ack_secs: 10,
        t_closure_secs: 60,
        offer_validity_secs: 600,
    }
}

fn stream(key: &Keypair) -> Stream {
    let sid = StreamId::new(key.address(), 7).unwrap();
    Stream::new(domain(), key.clone(), sid, terms(), SellerConfig::default()).unwrap()
}

/// Carries frames both ways until quiet; returns the buyer's deliveries and the seller's events.
fn exchange(
    seller: &mut Stream,
    buyer: &mut BuyerChannel,
    peer: alloy_primitives::Address,
    now: u64,
) -> (Vec<u64>, Vec<SellerEvent>) {
    let (mut delivered, mut events) = (vec![], vec![]);
    loop {
        let mut quiet = true;
        for a in seller.drain_actions().collect::<Vec<_>>() {
            match a {
                SellerAction::Send { frames, .. } => {
                    quiet = false;
                    for frame in frames.iter().cloned() {
                        let f = Frame::decode(&frame).unwrap();
                        if !matches!(f, Frame::Offer { .. }) {
                            let _ = buyer.handle_frame(now, f);
                        }
                    }
                }
                SellerAction::Event(e) => events.push(e),
                _ => {}
            }
        }
        for a in buyer.drain_actions().collect::<Vec<_>>() {
            match a {
                BuyerAction::Send(f) => {
                    quiet = false;
                    let _ = seller.handle_frame(now, peer, Frame::decode(&f).unwrap());
                }
                BuyerAction::Deliver { seq, .. } => delivered.push(seq),
                _ => {}
            }
        }
        if quiet {
            return (delivered, events);
        }
    }
}

#[test]
fn fast_keys_run_a_channel_like_real_keys() {
    let mut runs = vec![];
    for fast in [false, true] {
        let key = |l, i| if fast { fast_test_key(l, i) } else { test_key(l, i) };
        let (skey, bkey) = (key("s", 1), key("b", 1));
        assert_eq!(skey.is_fast(), fast);
        let mut seller = stream(&skey);
        let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
        let mut buyer = BuyerChannel::with_seller_key(
            domain(),
            bkey.clone(),
            *skey.public(),
            offer,
            sig,
            BuyerConfig::default(),
            T0,
        )
        .unwrap();
        seller
            .open_channel(T0, buyer.id(), U256::from(1_000u64))
            .unwrap();
        for i in 0..40u64 {
            seller.publish(T0 + i, format!("m{i}").as_bytes()).unwrap();
        }
        let (delivered, events) = exchange(&mut seller, &mut buyer, bkey.address(), T0 + 100);
        seller.handle_timeout(T0 + 10_000);
        let (_, more) = exchange(&mut seller, &mut buyer, bkey.address(), T0 + 10_000);
        assert_eq!(delivered, (0..40).collect::<Vec<_>>());
        assert!(events.is_empty() && more.is_empty(), "{events:?} {more:?}");
        assert_eq!(seller.verified_ack(&buyer.id()).unwrap().ack.seq, 39);
        // Same key material, same digests: the same channel and sealed payloads either way.
        runs.push((buyer.id(), seller.message(39).unwrap().payload.clone()));
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn keys_from_bytes_are_always_real() {
    let fast = fast_test_key("b", 1);
    let real = test_key("b", 1);
    let parsed = PublicKey::from_sec1(&fast.public().to_sec1_compressed()).unwrap();
    assert!(!parsed.is_fast());
    assert_eq!(parsed, *real.public());
    let d = alloy_primitives::keccak256(b"d");
    assert!(!recover(&d, &real.sign(&d)).unwrap().is_fast());
    assert_eq!(recover(&d, &fast.sign(&d)).unwrap_err(), SigError::BadV(0));
    assert_eq!(
        verify(&d, &fast.sign(&d), fast.address()).unwrap_err(),
        SigError::BadV(0)
    );
    // A restored seller reads its buyers' keys from records: real keys.
    let skey = test_key("s", 1);
    let mut seller = stream(&skey);
    seller.make_offer(T0, *fast.public(), "t").unwrap();
    let records: Vec<SellerRecord> = seller
        .drain_actions()
        .filter_map(|a| match a {
            SellerAction::Persist(r) => Some(r),
            _ => None,
        })
        .collect();
    for r in &records {
        if let SellerRecord::Offer { buyer_key, .. } = r {
            assert!(!PublicKey::from_sec1(buyer_key).unwrap().is_fast());
        }
    }
}

#[test]
fn real_engines_never_accept_fast_signatures() {
    // A fast seller's offer is refused by a buyer that recovers the seller from the signature.
    let fast_seller = fast_test_key("s", 1);
    let mut s = stream(&fast_seller);
    let (offer, sig) = s.make_offer(T0, *test_key("b", 1).public(), "t").unwrap();
    let b = BuyerChannel::new(
        domain(),
        test_key("b", 1),
        offer.clone(),
        sig,
        BuyerConfig::default(),
        T0,
    );
    assert!(matches!(
        b.unwrap_err(),
        BuyerError::Signature(SigError::BadV(0))
    ));
    // ... and by one that knows the seller's real key (as the handshake gives it).
    let real_seller = *test_key("s", 1).public();
    let b = BuyerChannel::with_seller_key(
        domain(),
        test_key("b", 1),
        real_seller,
        offer,
        sig,
        BuyerConfig::default(),
        T0,
    );
    assert!(matches!(
        b.unwrap_err(),
        BuyerError::Signature(SigError::BadV(0))
    ));

    // A fast buyer's acks reach a real seller that knows the buyer's key from the network (its
    // SEC1 bytes, hence a real key): every ack fails its check, none is ever verified.
    let skey = test_key("s", 1);
    let fast_buyer = fast_test_key("b", 1);
    let mut seller = stream(&skey);
    let network_key = PublicKey::from_sec1(&fast_buyer.public().to_sec1_compressed()).unwrap();
    let (offer, sig) = seller.make_offer(T0, network_key, "t").unwrap();
    let mut buyer = BuyerChannel::with_seller_key(
        domain(),
        fast_buyer.clone(),
        *skey.public(),
        offer,
        sig,
        BuyerConfig {
            ack_every: 1,
            ..BuyerConfig::default()
        },
        T0,
    )
    .unwrap();
    seller
        .open_channel(T0, buyer.id(), U256::from(1_000u64))
        .unwrap();
    for i in 0..4u64 {
        seller.publish(T0, format!("m{i}").as_bytes()).unwrap();
    }
    let (delivered, _) = exchange(&mut seller, &mut buyer, fast_buyer.address(), T0 + 1);
    assert_eq!(delivered, vec![0, 1, 2, 3]);
    seller.handle_timeout(T0 + 10_000);
    let (_, events) = exchange(&mut seller, &mut buyer, fast_buyer.address(), T0 + 10_000);
    assert!(seller.verified_ack(&buyer.id()).is_none());
    assert!(events.iter().any(|e| matches!(
        e,
        SellerEvent::InvalidAck {
            error: SigError::BadV(0),
            ..
        }
    )));
}

/// Property 3 of the `sign` docs, kept true by a check rather than by care: the broker is built
/// in the same workspace as the simulator (so `testkit` may be on in its build), and its sources
/// never name the fast constructors or the testkit.
#[test]
fn the_broker_never_names_fast_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![];
    for dir in ["broker", "judge-contract/src"] {
        collect(&root.join(dir), &mut files);
    }
    assert!(
        files.iter().any(|f| f.ends_with("broker/src/node/mod.rs")),
        "broker sources not found under {}",
        root.display()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for needle in [
            "fast_for_simulation",
            "fast_test_key",
            "testkit",
            "features = [\"testkit\"]",
        ] {
            assert!(!text.contains(needle), "{} names {needle}", f.display());
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") {
                collect(&p, out);
            }
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "toml")
        {
            out.push(p);
        }
    }
}
