//! The simulator's own models: the judge's rules, the link, the chain.

use alloy_primitives::{Address, B256, U256, keccak256};
use supra_channel::proof::MessageProof;
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
    /// The stream's messages 0..40, signed in batches of 8, each with its proof.
    msgs: Vec<(Message, MessageProof, Vec<u8>)>,
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
        token: Default::default(),
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
    let mut chain = Vec::new();
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
        chain.push((m, prev, payload));
    }
    let mut msgs = Vec::new();
    for batch in chain.chunks(8) {
        let refs: Vec<_> = batch.iter().map(|(m, d, _)| (m, *d)).collect();
        let proofs = MessageProof::sign_batch(&domain, &seller, &refs);
        for ((m, _, payload), proof) in batch.iter().zip(proofs) {
            msgs.push((m.clone(), proof, payload.clone()));
        }
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

/// The refusal's error name (`NotPosted` for `NotPosted(3)`), or the outcome.
fn name<T>(r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| supra_sim::judge::refusal_name(&e).to_string())
}

fn refused(name: &str) -> Result<Outcome, String> {
    Err(name.to_string())
}

const T0: u64 = 1_700_000_000;

#[test]
fn judge_claims_pay_the_difference_capped_by_the_deposit() {
    let mut f = fixture(8, 12);
    let (a, s) = ack(&f, 4);
    assert_eq!(
        f.judge.claim(&a, &s, T0),
        Ok(Outcome::Claimed {
            amount: U256::from(5 * P),
            total: U256::from(5 * P)
        })
    );
    // Replayed: nothing more to pay.
    assert_eq!(name(f.judge.claim(&a, &s, T0)), refused("NothingToClaim"));
    // Beyond the deposit (12 messages): capped.
    let (a, s) = ack(&f, 19);
    assert_eq!(
        f.judge.claim(&a, &s, T0),
        Ok(Outcome::Claimed {
            amount: U256::from(7 * P),
            total: U256::from(12 * P)
        })
    );
    // Signed by the seller instead of the buyer.
    let (a, _) = ack(&f, 3);
    let forged = f.seller.sign(&f.domain.digest(&a));
    assert_eq!(name(f.judge.claim(&a, &forged, T0)), refused("WrongSigner"));
    // A wrong cost is refused by claim and proven by proveWrongCost.
    let mut bad = ack(&f, 5).0;
    bad.cost = U256::from(1u64);
    let sig = f.buyer.sign(&f.domain.digest(&bad));
    assert_eq!(name(f.judge.claim(&bad, &sig, T0)), refused("WrongCost"));
    assert!(matches!(
        f.judge.prove_wrong_cost(&bad, &sig),
        Ok(Outcome::Settled { .. })
    ));
}

#[test]
fn judge_posted_claims_stay_within_w_of_the_last_ack_and_before_the_close() {
    let mut f = fixture(8, 40);
    let seller = f.seller.address();
    let (a, s) = ack(&f, 9);
    f.judge.claim(&a, &s, T0).unwrap();
    for i in 10..=20usize {
        let (m, sig, p) = f.msgs[i].clone();
        assert_eq!(f.judge.post(&m, &p, &sig, T0), Ok(Outcome::Posted(true)));
    }
    let (m, sig, p) = f.msgs[10].clone();
    assert_eq!(f.judge.post(&m, &p, &sig, T0), Ok(Outcome::Posted(false)));
    let buyer = f.buyer.address();
    assert_eq!(
        name(f.judge.claim_posted(buyer, f.id, 17)),
        refused("NotSeller")
    );
    for upto in [9, 18, 21] {
        assert_eq!(
            name(f.judge.claim_posted(seller, f.id, upto)),
            refused("ClaimOutOfWindow")
        );
    }
    assert_eq!(
        f.judge.claim_posted(seller, f.id, 17),
        Ok(Outcome::PostedClaimRecorded)
    );
    assert_eq!(
        name(f.judge.claim_posted(seller, f.id, 15)),
        refused("NothingToClaim")
    );
    // Not posted.
    let mut g = fixture(8, 40);
    assert_eq!(
        g.judge.claim_posted(seller, g.id, 3),
        Err("NotPosted(0)".into())
    );
    // Paid only at settle, after T_closure.
    f.judge.request_close(buyer, f.id, T0 + 100).unwrap();
    assert_eq!(
        name(f.judge.settle(f.id, T0 + 399)),
        refused("ClosureNotElapsed")
    );
    assert_eq!(
        f.judge.settle(f.id, T0 + 400),
        Ok(Outcome::Settled {
            to_seller: U256::from(8 * P),
            to_buyer: U256::from(22 * P)
        })
    );
    assert_eq!(f.judge.channel(f.id).unwrap().status, Status::Settled);
    assert_eq!(f.judge.channel(f.id).unwrap().to_seller, U256::from(18 * P));
    // Messages stamped after the close request cannot be claimed, nor ones mined more than
    // T_ack after it.
    g.judge.request_close(seller, g.id, T0).unwrap();
    let late = {
        let (mut m, _, p) = g.msgs[0].clone();
        m.timestamp = (T0 + 1) * 1000;
        let s = MessageProof::sign_single(&g.domain, &g.seller, &m, g.domain.digest(&m));
        (m, s, p)
    };
    g.judge.post(&late.0, &late.2, &late.1, T0 + 12).unwrap();
    assert_eq!(
        name(g.judge.claim_posted(seller, g.id, 0)),
        refused("PostedAfterClose")
    );
    let (m, sig, p) = g.msgs[1].clone();
    g.judge.post(&m, &p, &sig, T0 + 61).unwrap();
    let _ = g.stream;
}

#[test]
fn judge_accusations_are_defended_by_a_posting_in_time_or_upheld_after_t_ack() {
    let mut f = fixture(8, 40);
    let buyer = f.buyer.address();
    let (seen, sig, _) = f.msgs[6].clone();
    // Only the buyer accuses, and only about an owed seq (acked + W = 8 here).
    assert_eq!(
        name(
            f.judge
                .accuse(f.seller.address(), f.id, &seen, &sig, 3, T0 + 10)
        ),
        refused("NotBuyer")
    );
    let (far, far_sig, _) = f.msgs[12].clone();
    assert_eq!(
        name(f.judge.accuse(buyer, f.id, &far, &far_sig, 9, T0 + 10)),
        refused("NotOwed")
    );
    assert_eq!(
        f.judge.accuse(buyer, f.id, &seen, &sig, 3, T0 + 10),
        Ok(Outcome::Accused(T0 + 70))
    );
    assert_eq!(
        name(f.judge.accuse(buyer, f.id, &seen, &sig, 3, T0 + 11)),
        refused("AccusationOpen")
    );
    assert_eq!(name(f.judge.defend(f.id)), refused("NotPosted"));
    // postBy = min(max(seen.timestamp, openedAt, extendedAt), now) + T_ack = T0 + 60.
    let (m, s, p) = f.msgs[3].clone();
    f.judge.post(&m, &p, &s, T0 + 60).unwrap();
    assert!(matches!(f.judge.defend(f.id), Ok(Outcome::Defended { .. })));
    // Posted after its limit: no defence, and the accusation is upheld: refund F - R.
    let (a, s) = ack(&f, 1);
    f.judge.claim(&a, &s, T0 + 100).unwrap();
    f.judge
        .accuse(buyer, f.id, &seen, &sig, 4, T0 + 200)
        .unwrap();
    let (m, s, p) = f.msgs[4].clone();
    f.judge.post(&m, &p, &s, T0 + 161).unwrap();
    assert_eq!(name(f.judge.defend(f.id)), refused("DeadlinePassed"));
    assert_eq!(
        name(f.judge.resolve(f.id, T0 + 260)),
        refused("DeadlineNotPassed")
    );
    assert_eq!(
        f.judge.resolve(f.id, T0 + 261),
        Ok(Outcome::Settled {
            to_seller: U256::ZERO,
            to_buyer: U256::from(38 * P)
        })
    );
}

#[test]
fn judge_top_ups_stops_and_cooperative_closes() {
    let mut f = fixture(8, 8);
    let (buyer, seller) = (f.buyer.address(), f.seller.address());
    assert_eq!(
        name(f.judge.top_up(seller, f.id, U256::from(P), T0)),
        refused("NotBuyer")
    );
    assert_eq!(
        name(f.judge.top_up(buyer, f.id, U256::ZERO, T0)),
        refused("ZeroAmount")
    );
    assert_eq!(
        f.judge.top_up(buyer, f.id, U256::from(4 * P), T0 + 5),
        Ok(Outcome::ToppedUp(U256::from(12 * P)))
    );
    assert_eq!(f.judge.channel(f.id).unwrap().extended_at, T0 + 5);
    // A seller's Stop at seq 5 bounds what is owed: 6 messages.
    let stop = supra_channel::Stop {
        channelId: f.id.0,
        seq: 5,
        timestamp: 0,
    };
    let stop_sig = f.seller.sign(&f.domain.digest(&stop));
    assert_eq!(
        f.judge.submit_stop(&stop, &stop_sig, T0 + 6),
        Ok(Outcome::StopRecorded { answered: false })
    );
    let (seen, sig, _) = f.msgs[9].clone();
    assert_eq!(
        name(f.judge.accuse(buyer, f.id, &seen, &sig, 6, T0 + 7)),
        refused("NotOwed")
    );
    // Cooperative close: the ack and the Stop must match; pays both sides at once.
    let (a, s) = ack(&f, 4);
    assert_eq!(
        name(
            f.judge
                .close_cooperatively(&a, &s, &stop, &stop_sig, T0 + 8)
        ),
        refused("StopMismatch")
    );
    let (a, s) = ack(&f, 5);
    assert_eq!(
        f.judge
            .close_cooperatively(&a, &s, &stop, &stop_sig, T0 + 8),
        Ok(Outcome::Settled {
            to_seller: U256::from(6 * P),
            to_buyer: U256::from(6 * P)
        })
    );
    assert_eq!(
        name(f.judge.top_up(buyer, f.id, U256::from(P), T0 + 9)),
        refused("WrongStatus")
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
    assert_eq!(gas::post(64, 0), gas::POST_64B);
    assert_eq!(gas::post(256, 0), gas::POST_256B);
    assert!(gas::post(100, 0) > gas::POST_64B && gas::post(100, 0) < gas::POST_256B);
    assert_eq!(gas::claim_posted(2), gas::CLAIM_POSTED_2);
    assert_eq!(gas::claim_posted(3), gas::CLAIM_POSTED_3);
}

#[test]
fn judge_checks_batch_proofs_as_the_contract_does() {
    let mut f = fixture(8, 40);
    let (m, proof, p) = f.msgs[10].clone();
    // Another message of the batch under this proof: its digest is not on the path.
    let (m11, _, p11) = f.msgs[11].clone();
    assert_eq!(
        name(f.judge.post(&m11, &p11, &proof, T0)),
        refused("WrongRoot")
    );
    // A forged sibling.
    let mut forged = proof.clone();
    forged.path[0] = B256::repeat_byte(9);
    assert_eq!(
        name(f.judge.post(&m, &p, &forged, T0)),
        refused("WrongRoot")
    );
    // Outside the batch's range (batch 8..=15), another stream's batch, a batch of 257, a path of 9.
    let (m20, _, p20) = f.msgs[20].clone();
    assert_eq!(
        name(f.judge.post(&m20, &p20, &proof, T0)),
        refused("NotInBatch")
    );
    let mut elsewhere = proof.clone();
    elsewhere.batch.streamId = StreamId::new(f.seller.address(), 2).unwrap().0;
    assert_eq!(
        name(f.judge.post(&m, &p, &elsewhere, T0)),
        refused("WrongStream")
    );
    let mut wide = proof.clone();
    wide.batch.lastSeq = wide.batch.firstSeq + 256;
    assert_eq!(
        name(f.judge.post(&m, &p, &wide, T0)),
        refused("BatchTooLarge")
    );
    let mut deep = proof.clone();
    deep.path = vec![B256::repeat_byte(1); 9];
    assert_eq!(
        name(f.judge.post(&m, &p, &deep, T0)),
        refused("BatchTooLarge")
    );
    // A stage-1 signature of the message digest itself, as a batch of one.
    let mut stage1 = MessageProof::sign_single(&f.domain, &f.seller, &m, f.domain.digest(&m));
    stage1.sig = f.seller.sign(&f.domain.digest(&m));
    assert_eq!(
        name(f.judge.post(&m, &p, &stage1, T0)),
        refused("WrongSigner")
    );
    // The real proof posts; a twin of seq 10 in a batch of its own proves the equivocation.
    assert_eq!(f.judge.post(&m, &p, &proof, T0), Ok(Outcome::Posted(true)));
    let mut twin = m.clone();
    twin.payloadHash = B256::repeat_byte(7);
    let twin_proof = MessageProof::sign_single(&f.domain, &f.seller, &twin, f.domain.digest(&twin));
    assert!(matches!(
        f.judge
            .prove_equivocation(f.id, &m, &proof, &twin, &twin_proof),
        Ok(Outcome::Settled { .. })
    ));
}
