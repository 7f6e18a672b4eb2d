//! The simulator's own models: the judge's rules, the link, the chain.

use alloy_primitives::{Address, B256, U256, keccak256};
use supra_channel::testkit::test_key;
use supra_channel::{Ack, ChannelId, Domain, Message, Offer, StreamId, ack_cost};
use supra_sim::chain::{Mempool, gas};
use supra_sim::judge::{Judge, Outcome, Status};
use supra_sim::net::{Connection, Dir};
use supra_sim::params::{ChainParams, DelayDist, LinkParams};

const P: u64 = 10;

struct Fixture {
    judge: Judge,
    domain: Domain,
    seller: supra_channel::Keypair,
    buyer: supra_channel::Keypair,
    id: ChannelId,
    stream: StreamId,
    msgs: Vec<(Message, supra_channel::Signature, Vec<u8>)>,
}

fn fixture(window: u64, deposit_msgs: u64) -> Fixture {
    let domain = Domain::new(31337, Address::repeat_byte(0x42));
    let seller = test_key("judge-seller", 1);
    let buyer = test_key("judge-buyer", 1);
    let stream = StreamId::new(seller.address(), 1).unwrap();
    let offer = Offer {
        streamId: stream.0,
        seller: seller.address(),
        buyer: buyer.address(),
        price: U256::from(P),
        window,
        startSeq: 0,
        tAck: 60,
        tClosure: 300,
        validUntil: 2_000_000_000,
        nonce: U256::from(1u64),
    };
    let sig = seller.sign(&domain.digest(&offer));
    let mut judge = Judge::new(domain);
    let Ok(Outcome::Opened(id)) = judge.open(
        buyer.address(),
        &offer,
        &sig,
        U256::from(P * deposit_msgs),
        1_700_000_000,
    ) else {
        panic!("open failed")
    };
    let mut msgs = Vec::new();
    let mut prev = B256::ZERO;
    for seq in 0..40u64 {
        let payload = seq.to_be_bytes().to_vec();
        let m = Message {
            streamId: stream.0,
            seq,
            timestamp: 1_700_000_000_000 + seq,
            payloadHash: keccak256(&payload),
            prev,
        };
        prev = domain.digest(&m);
        let s = seller.sign(&prev);
        msgs.push((m, s, payload));
    }
    Fixture {
        judge,
        domain,
        seller,
        buyer,
        id,
        stream,
        msgs,
    }
}

fn ack(f: &Fixture, seq: u64) -> (Ack, supra_channel::Signature) {
    let a = Ack {
        channelId: f.id.0,
        seq,
        digest: f.domain.digest(&f.msgs[seq as usize].0),
        cost: ack_cost(0, seq, U256::from(P)).unwrap(),
        timestamp: 0,
    };
    let s = f.buyer.sign(&f.domain.digest(&a));
    (a, s)
}

#[test]
fn judge_claims_pay_the_difference_capped_by_the_deposit() {
    let mut f = fixture(8, 12);
    let (a, s) = ack(&f, 4);
    assert_eq!(
        f.judge.claim(&a, &s),
        Ok(Outcome::Claimed {
            amount: U256::from(5 * P),
            total: U256::from(5 * P)
        })
    );
    // Replayed: nothing more to pay.
    assert_eq!(f.judge.claim(&a, &s), Err("NothingToClaim".into()));
    // Beyond the deposit (12 messages): capped.
    let (a, s) = ack(&f, 19);
    assert_eq!(
        f.judge.claim(&a, &s),
        Ok(Outcome::Claimed {
            amount: U256::from(7 * P),
            total: U256::from(12 * P)
        })
    );
    // Signed by the seller instead of the buyer.
    let (mut a, _) = ack(&f, 3);
    a.seq = 3;
    let forged = f.seller.sign(&f.domain.digest(&a));
    assert!(
        f.judge
            .claim(&a, &forged)
            .unwrap_err()
            .starts_with("WrongSigner")
    );
    // A wrong cost is refused by claim and proven by proveWrongCost.
    let mut bad = ack(&f, 5).0;
    bad.cost = U256::from(1u64);
    let sig = f.buyer.sign(&f.domain.digest(&bad));
    assert_eq!(f.judge.claim(&bad, &sig), Err("WrongCost".into()));
    assert!(matches!(
        f.judge.prove_wrong_cost(&bad, &sig),
        Ok(Outcome::Settled { .. })
    ));
}

#[test]
fn judge_posted_claims_stay_within_w_of_the_last_ack_and_before_the_close() {
    let mut f = fixture(8, 40);
    let (a, s) = ack(&f, 9);
    f.judge.claim(&a, &s).unwrap();
    for i in 10..=20usize {
        let (m, sig, p) = f.msgs[i].clone();
        assert_eq!(f.judge.post(&m, &p, &sig), Ok(Outcome::Posted(true)));
    }
    let (m, sig, p) = f.msgs[10].clone();
    assert_eq!(f.judge.post(&m, &p, &sig), Ok(Outcome::Posted(false)));
    assert_eq!(
        f.judge.claim_posted(f.id, 9),
        Err("ClaimOutOfWindow".into())
    );
    assert_eq!(
        f.judge.claim_posted(f.id, 18),
        Err("ClaimOutOfWindow".into())
    );
    assert_eq!(
        f.judge.claim_posted(f.id, 21),
        Err("ClaimOutOfWindow".into())
    );
    assert_eq!(
        f.judge.claim_posted(f.id, 17),
        Ok(Outcome::PostedClaimRecorded)
    );
    assert_eq!(f.judge.claim_posted(f.id, 15), Err("NothingToClaim".into()));
    // Not posted.
    let mut g = fixture(8, 40);
    assert_eq!(g.judge.claim_posted(g.id, 3), Err("NotPosted(0)".into()));
    // Paid only at settle, after T_closure.
    f.judge.request_close(f.id, 1_700_000_100).unwrap();
    assert_eq!(
        f.judge.settle(f.id, 1_700_000_399),
        Err("ClosureNotElapsed".into())
    );
    assert_eq!(
        f.judge.settle(f.id, 1_700_000_400),
        Ok(Outcome::Settled {
            to_seller: U256::from(8 * P),
            to_buyer: U256::from(22 * P)
        })
    );
    assert_eq!(f.judge.channel(f.id).unwrap().status, Status::Settled);
    assert_eq!(f.judge.channel(f.id).unwrap().to_seller, U256::from(18 * P));
    // Messages stamped after the close request cannot be claimed.
    g.judge.request_close(g.id, 1_700_000_000).unwrap();
    let late = {
        let (mut m, _, p) = g.msgs[0].clone();
        m.timestamp = 1_700_000_000_500;
        let s = g.seller.sign(&g.domain.digest(&m));
        (m, s, p)
    };
    g.judge.post(&late.0, &late.2, &late.1).unwrap();
    assert_eq!(
        g.judge.claim_posted(g.id, 0),
        Err("PostedAfterClose(0)".into())
    );
    let _ = g.stream;
}

#[test]
fn judge_accusations_are_defended_by_a_posting_or_upheld_after_t_ack() {
    let mut f = fixture(8, 40);
    let (seen, sig, _) = f.msgs[6].clone();
    assert_eq!(
        f.judge.accuse(f.id, &seen, &sig, 3, 1_000),
        Ok(Outcome::Accused(1_060))
    );
    assert_eq!(
        f.judge.accuse(f.id, &seen, &sig, 3, 1_001),
        Err("AccusationOpen".into())
    );
    assert_eq!(f.judge.defend(f.id, 1_010), Err("NotPosted".into()));
    let (m, s, p) = f.msgs[3].clone();
    f.judge.post(&m, &p, &s).unwrap();
    assert!(matches!(
        f.judge.defend(f.id, 1_060),
        Ok(Outcome::Defended { .. })
    ));
    // Upheld: refund F - R.
    let (a, s) = ack(&f, 1);
    f.judge.claim(&a, &s).unwrap();
    f.judge.accuse(f.id, &seen, &sig, 4, 2_000).unwrap();
    assert_eq!(
        f.judge.resolve(f.id, 2_060),
        Err("DeadlineNotPassed".into())
    );
    assert_eq!(
        f.judge.resolve(f.id, 2_061),
        Ok(Outcome::Settled {
            to_seller: U256::ZERO,
            to_buyer: U256::from(38 * P)
        })
    );
}

#[test]
fn link_loses_the_configured_fraction_and_outages_cut_everything() {
    let params = LinkParams {
        loss: 0.2,
        delay: DelayDist::ShiftedExp {
            min_ms: 5,
            mean_extra_ms: 10,
        },
        ..LinkParams::default()
    };
    let mut c: Connection<u64> = Connection::new(params, 3, 0);
    let mut arrived = 0;
    for i in 0..20_000u64 {
        if c.send(i, Dir::ToBuyer, i) {
            arrived += 1;
        }
    }
    assert_eq!(c.stats.lost + arrived, 20_000);
    let rate = c.stats.lost as f64 / 20_000.0;
    assert!((0.18..0.22).contains(&rate), "loss rate {rate}");
    let mut last = 0;
    let mut reordered = false;
    while let Some((_, v)) = c.pop_due(u64::MAX) {
        reordered |= v < last;
        last = v;
    }
    assert!(reordered, "jitter reorders frames");
    // Outages: nothing sent while down arrives.
    let params = LinkParams {
        outage_every_ms: Some(1_000),
        outage_ms: (500, 500),
        ..LinkParams::default()
    };
    let mut c: Connection<u64> = Connection::new(params, 4, 0);
    let mut down = 0;
    for t in 0..100_000u64 {
        let was_down = !c.up_at(t);
        let ok = c.send(t, Dir::ToSeller, t);
        if was_down {
            down += 1;
            assert!(!ok);
        }
    }
    assert!(
        (25_000..40_000).contains(&down),
        "down {down} ms of 100 000"
    );
    assert_eq!(c.outages.down_time(0, 100_000), down);
}

#[test]
fn chain_mines_in_the_next_block_in_submission_order_and_gas_matches_the_table() {
    let mut m: Mempool<&str> = Mempool::new(ChainParams {
        block_ms: 12_000,
        delta_onchain_ms: 24_000,
    });
    assert_eq!(m.submit(11_999, "a"), 12_000);
    assert_eq!(m.submit(12_000, "b"), 24_000);
    assert_eq!(m.submit(5, "c"), 12_000);
    assert_eq!(m.pop_due(11_999), None);
    assert_eq!(m.pop_due(12_000), Some((12_000, "a")));
    assert_eq!(m.pop_due(12_000), Some((12_000, "c")));
    assert_eq!(m.pop_due(30_000), Some((24_000, "b")));
    assert!(m.is_empty());
    assert_eq!(gas::post(64), gas::POST_64B);
    assert_eq!(gas::post(256), gas::POST_256B);
    assert!(gas::post(100) > gas::POST_64B && gas::post(100) < gas::POST_256B);
}
