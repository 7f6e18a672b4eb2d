//! The typed client against a real Anvil it spawns: deploy, open, post, claim, close, settle, the
//! judge's refusals, events, and the EIP-712 digests of Rust against the judge's own views.

use alloy::primitives::{Address, B256, U256};
use supra_channel::proof::{MAX_PROOF_DEPTH, MessageProof};
use supra_channel::sign::Keypair;
use supra_channel::types::{Ack, Batch, ChannelId, Message, Offer, PeerAuth, Stop, StreamId, ack_cost};
use supra_judge::devnet::Devnet;
use supra_judge::{ChannelStatus, Judge, JudgeError, JudgeEvent, JudgeLimits};

const PRICE: u64 = 1_000_000_000; // 1 gwei
const WINDOW: u64 = 8;

struct Parties {
    devnet: Devnet,
    seller: (Keypair, Judge),
    buyer: (Keypair, Judge),
}

async fn parties() -> Parties {
    let devnet = Devnet::spawn().expect("anvil starts");
    let deployer = devnet.keys()[0];
    let judge = Judge::deploy(devnet.endpoint(), &deployer).await.expect("judge deploys");
    let party = |index: usize| {
        let key = devnet.keys()[index];
        (Keypair::from_secret_bytes(&key.0).expect("dev key"), key)
    };
    let (seller_key, seller_secret) = party(1);
    let (buyer_key, buyer_secret) = party(2);
    let seller = Judge::connect(devnet.endpoint(), &seller_secret, judge.address()).await.expect("connect");
    let buyer = Judge::connect(devnet.endpoint(), &buyer_secret, judge.address()).await.expect("connect");
    Parties { devnet, seller: (seller_key, seller), buyer: (buyer_key, buyer) }
}

fn offer(seller: Address, buyer: Address, valid_until: u64, nonce: u64) -> Offer {
    Offer {
        streamId: StreamId::new(seller, 7).expect("small number").as_b256(),
        seller,
        buyer,
        price: U256::from(PRICE),
        token: Default::default(),
        window: WINDOW,
        startSeq: 0,
        tAck: 30,
        tClosure: 60,
        validUntil: valid_until,
        nonce: U256::from(nonce),
    }
}

fn message(stream: StreamId, seq: u64, prev: B256, payload: &[u8]) -> Message {
    Message {
        streamId: stream.as_b256(),
        seq,
        timestamp: 1_700_000_000_000 + seq,
        payloadHash: alloy::primitives::keccak256(payload),
        prev,
    }
}

#[tokio::test]
async fn rust_digests_equal_the_judge_views() {
    let p = parties().await;
    let judge = &p.seller.1;
    let domain = judge.domain();
    let seller = p.seller.0.address();
    let o = offer(seller, p.buyer.0.address(), u64::MAX, 0xdead_beef);
    assert_eq!(domain.digest(&o), judge.hash_offer(&o).await.unwrap());
    // Issue 14: an offer priced in a token (its `token` field right after `price`).
    let mut in_token = o.clone();
    in_token.token = Address::repeat_byte(0x55);
    assert_eq!(domain.digest(&in_token), judge.hash_offer(&in_token).await.unwrap());
    assert_ne!(domain.digest(&in_token), domain.digest(&o), "the currency is signed");
    let m = message(o.stream(), 42, B256::repeat_byte(7), b"payload");
    assert_eq!(domain.digest(&m), judge.hash_message(&m).await.unwrap());
    let a = Ack { channelId: U256::MAX - U256::from(5), seq: 42, digest: B256::repeat_byte(9), cost: U256::from(43u64 * PRICE), timestamp: 1 };
    assert_eq!(domain.digest(&a), judge.hash_ack(&a).await.unwrap());
    let s = Stop { channelId: U256::from(3), seq: u64::MAX, timestamp: 2 };
    assert_eq!(domain.digest(&s), judge.hash_stop(&s).await.unwrap());
    let auth = PeerAuth { from: seller, to: p.buyer.0.address(), nonceFrom: B256::repeat_byte(1), nonceTo: B256::repeat_byte(2) };
    assert_eq!(domain.digest(&auth), judge.hash_peer_auth(&auth).await.unwrap());
    let b = Batch { streamId: o.streamId, firstSeq: 40, lastSeq: u64::MAX, root: B256::repeat_byte(3) };
    assert_eq!(domain.digest(&b), judge.hash_batch(&b).await.unwrap());
    // A different domain (another chain id) gives another digest: signatures do not travel.
    let other = supra_channel::types::Domain::new(domain.chain_id() + 1, domain.judge());
    assert_ne!(other.digest(&o), judge.hash_offer(&o).await.unwrap());
}

#[tokio::test]
async fn a_channel_lives_opens_streams_claims_closes_and_settles() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let domain = seller.domain();
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_key.address(), buyer_key.address(), now + 600, 1);
    let offer_sig = seller_key.sign(&domain.digest(&o));
    let deposit = U256::from(10 * WINDOW * PRICE);

    let (channel, opened) = buyer.open(&o, offer_sig.as_bytes(), deposit).await.expect("open");
    assert_eq!(channel, ChannelId::from_offer_digest(domain.digest(&o)));
    let info = seller.channel(channel).await.unwrap();
    assert_eq!(info.status, ChannelStatus::Open);
    assert_eq!((info.buyer, info.seller, info.deposit), (buyer_key.address(), seller_key.address(), deposit));

    // The same offer cannot open a second channel.
    let again = buyer.open(&o, offer_sig.as_bytes(), deposit).await.unwrap_err();
    assert!(matches!(&again, JudgeError::Refused(r) if r.contains("ChannelExists")), "{again}");

    // Three messages; the third is posted on-chain.
    let mut prev = B256::ZERO;
    let mut chain = Vec::new();
    for seq in 0..3 {
        let payload = format!("sealed {seq}").into_bytes();
        let m = message(o.stream(), seq, prev, &payload);
        prev = domain.digest(&m);
        chain.push((m, payload));
    }
    let (m2, payload2) = &chain[2];
    let proof2 = MessageProof::sign_single(&domain, seller_key, m2, domain.digest(m2));
    seller.post(m2, payload2, &proof2).await.expect("post");
    let posting = seller.posting(o.stream(), 2).await.unwrap().expect("posted");
    assert_eq!(&posting.0[..], &domain.digest(m2)[..24]);
    assert_eq!(posting.1, seller.block_timestamp().await.unwrap(), "a posting's time is its block time");
    assert_eq!(seller.posting(o.stream(), 1).await.unwrap(), None);

    // The buyer acks message 1 (two messages); the seller claims it.
    let ack = Ack {
        channelId: channel.as_u256(),
        seq: 1,
        digest: domain.digest(&chain[1].0),
        cost: ack_cost(0, 1, U256::from(PRICE)).unwrap(),
        timestamp: 5,
    };
    let ack_sig = buyer_key.sign(&domain.digest(&ack));
    let seller_before = seller.balance(seller_key.address()).await.unwrap();
    let claimed = seller.claim(&ack, ack_sig.as_bytes()).await.expect("claim");
    let gas_paid = U256::from(claimed.gas_used) * U256::from(gas_price(seller, claimed.tx_hash).await);
    assert_eq!(seller.balance(seller_key.address()).await.unwrap(), seller_before + U256::from(2 * PRICE) - gas_paid);

    // A replayed ack pays nothing and is refused with the judge's own error.
    let replay = seller.claim(&ack, ack_sig.as_bytes()).await.unwrap_err();
    assert!(matches!(&replay, JudgeError::Refused(r) if r.contains("NothingToClaim")), "{replay}");
    assert!(!replay.is_transient());

    // Close, let T_closure pass on Anvil's clock, settle: the buyer gets the rest.
    buyer.request_close(channel).await.expect("close");
    let closing = buyer.channel(channel).await.unwrap();
    // Refused for now, with the chain time at which it passes (so a broker can try again then).
    let early = buyer.settle(channel).await.unwrap_err();
    let settle_after = closing.close_requested_at + u64::from(closing.t_closure);
    assert!(matches!(&early, JudgeError::TooEarly { until, refusal } if *until == settle_after && refusal.contains("ClosureNotElapsed")), "{early}");
    assert_eq!(early.refusal_name(), Some("ClosureNotElapsed"));
    assert!(!early.is_transient());
    buyer.increase_time(61).await.unwrap();
    let buyer_before = buyer.balance(buyer_key.address()).await.unwrap();
    let settled = seller.settle(channel).await.expect("settle");
    assert_eq!(buyer.balance(buyer_key.address()).await.unwrap(), buyer_before + deposit - U256::from(2 * PRICE));
    let info = seller.channel(channel).await.unwrap();
    assert_eq!((info.status, info.claimed, info.acked), (ChannelStatus::Settled, U256::from(2 * PRICE), 2));

    // Every step left its event, in order.
    let events = seller.events(opened.block, settled.block).await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match &e.event {
            JudgeEvent::ChannelOpened { .. } => "opened",
            JudgeEvent::Posted { .. } => "posted",
            JudgeEvent::Claimed { .. } => "claimed",
            JudgeEvent::CloseRequested { .. } => "close",
            JudgeEvent::Settled { .. } => "settled",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["opened", "posted", "claimed", "close", "settled"]);
    // The posted event carries the complete message and its proof: a buyer can verify and take it.
    let posted = events.iter().find_map(|e| match &e.event {
        JudgeEvent::Posted { message, payload, proof, .. } => Some((message.clone(), payload.clone(), proof.clone())),
        _ => None,
    });
    let (message, payload, proof) = posted.unwrap();
    assert_eq!(message, *m2);
    assert_eq!(&payload[..], &payload2[..]);
    assert_eq!(proof, proof2);
    proof.verify(&domain, seller_key.public(), &message, domain.digest(&message)).expect("the posting verifies");
    drop(p.devnet);
}

#[tokio::test]
async fn the_judge_limits_are_the_exported_constants() {
    let p = parties().await;
    let limits = p.seller.1.limits().await.unwrap();
    assert_eq!(
        limits,
        JudgeLimits {
            max_payload_bytes: supra_judge::MAX_PAYLOAD_BYTES,
            max_t_ack_secs: supra_judge::MAX_T_ACK_SECS,
            max_t_closure_secs: supra_judge::MAX_T_CLOSURE_SECS,
            max_price_wei: supra_judge::MAX_PRICE_WEI,
        }
    );
    // An offer past the maxima is refused at open.
    let (seller_key, _) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let now = buyer.block_timestamp().await.unwrap();
    let mut o = offer(seller_key.address(), buyer_key.address(), now + 600, 9);
    o.tClosure = u32::MAX;
    let sig = seller_key.sign(&buyer.domain().digest(&o));
    let err = buyer.open(&o, sig.as_bytes(), U256::from(10 * WINDOW * PRICE)).await.unwrap_err();
    assert!(matches!(&err, JudgeError::Refused(r) if r.contains("TermsTooLong")), "{err}");
    drop(p.devnet);
}

#[tokio::test]
async fn a_stop_bounds_the_channel_and_a_cooperative_close_settles_at_once() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let domain = seller.domain();
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_key.address(), buyer_key.address(), now + 600, 2);
    let deposit = U256::from(10 * WINDOW * PRICE);
    let (channel, _) = buyer.open(&o, seller_key.sign(&domain.digest(&o)).as_bytes(), deposit).await.expect("open");
    let timing = buyer.channel_timing(channel).await.unwrap();
    assert!(timing.opened_at >= now && timing.dispute_post_by.is_none() && timing.seller_stop_count.is_none());

    // The seller's Stop at 4, submitted by the buyer: five messages owed at most.
    let stop = Stop { channelId: channel.as_u256(), seq: 4, timestamp: 7 };
    let stop_sig = seller_key.sign(&domain.digest(&stop));
    let recorded = buyer.submit_stop(&stop, stop_sig.as_bytes()).await.expect("stop");
    assert_eq!(buyer.channel_timing(channel).await.unwrap().seller_stop_count, Some(5));

    // Final ack at 4 and the Stop at 4: settled without waiting T_closure.
    let ack = Ack { channelId: channel.as_u256(), seq: 4, digest: B256::repeat_byte(4), cost: ack_cost(0, 4, U256::from(PRICE)).unwrap(), timestamp: 8 };
    let ack_sig = buyer_key.sign(&domain.digest(&ack));
    let closed = seller.close_cooperatively(&ack, ack_sig.as_bytes(), &stop, stop_sig.as_bytes()).await.expect("cooperative close");
    let info = seller.channel(channel).await.unwrap();
    assert_eq!((info.status, info.claimed), (ChannelStatus::Settled, U256::from(5 * PRICE)));
    let events = seller.events(recorded.block, closed.block).await.unwrap();
    assert!(events.iter().any(|e| e.event == JudgeEvent::StopRecorded { channel, seq: 4, stop_count: 5 }));
    assert!(events.iter().any(|e| e.event == JudgeEvent::ClosedCooperatively { channel, seq: 4 }));
    assert!(events.iter().any(|e| e.event
        == JudgeEvent::Settled { channel, to_seller: U256::from(5 * PRICE), to_buyer: deposit - U256::from(5 * PRICE) }));
    drop(p.devnet);
}

/// T_ack on block time, on a real chain: the posting mined in time answers the accusation even though
/// the separate `defend` lands after the deadline; a posting mined after the limit does not.
#[tokio::test]
async fn a_posting_in_time_answers_even_when_defend_lands_late() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let domain = seller.domain();
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_key.address(), buyer_key.address(), now + 600, 3);
    let deposit = U256::from(10 * WINDOW * PRICE);
    let (channel, _) = buyer.open(&o, seller_key.sign(&domain.digest(&o)).as_bytes(), deposit).await.expect("open");

    // Messages 0..=3 signed now; the buyer misses 1 and 2 and holds 3.
    let mut prev = B256::ZERO;
    let mut chain = Vec::new();
    for seq in 0..4 {
        let payload = format!("sealed {seq}").into_bytes();
        let mut m = message(o.stream(), seq, prev, &payload);
        m.timestamp = now * 1000;
        prev = domain.digest(&m);
        chain.push((m, payload, prev));
    }
    // One batch of the four messages (the engine's way): each travels with its path.
    let refs: Vec<_> = chain.iter().map(|(m, _, d)| (m, *d)).collect();
    let proofs = MessageProof::sign_batch(&domain, seller_key, &refs);
    let chain: Vec<_> = chain.into_iter().zip(proofs).map(|((m, payload, _), proof)| (m, payload, proof)).collect();
    let (seen, _, seen_proof) = &chain[3];
    buyer.accuse(channel, seen, seen_proof, 1).await.expect("accuse");
    let timing = buyer.channel_timing(channel).await.unwrap();
    let post_by = timing.dispute_post_by.expect("open accusation");
    let (_, deadline) = buyer.channel(channel).await.unwrap().dispute.expect("open accusation");
    assert!(post_by <= deadline);

    // Mined at the posting limit; the defence is sent after the answer deadline.
    let at = seller.block_timestamp().await.unwrap();
    if post_by > at + 1 {
        seller.increase_time(post_by - at - 1).await.unwrap();
    }
    let (m1, payload1, proof1) = &chain[1];
    let posted = seller.post(m1, payload1, proof1).await.expect("post");
    let (_, posted_at) = seller.posting(o.stream(), 1).await.unwrap().expect("posted");
    assert!(posted_at <= post_by, "mined in time: {posted_at} <= {post_by} (block {})", posted.block);
    seller.increase_time(deadline + 5 - posted_at).await.unwrap();
    let late_call = buyer.resolve(channel).await.expect("resolve honours the posting");
    let events = buyer.events(late_call.block, late_call.block).await.unwrap();
    assert!(events.iter().any(|e| e.event == JudgeEvent::Defended { channel, missing_seq: 1 }), "{events:?}");
    assert_eq!(buyer.channel(channel).await.unwrap().status, ChannelStatus::Open);

    // Message 2 is then posted far too late: a new accusation about it is upheld.
    let (m2, payload2, proof2) = &chain[2];
    seller.post(m2, payload2, proof2).await.expect("late post");
    buyer.accuse(channel, seen, seen_proof, 2).await.expect("a late posting does not shield the seller");
    let refused = seller.defend(channel).await.unwrap_err();
    assert!(matches!(&refused, JudgeError::Refused(r) if r.contains("DeadlinePassed")), "{refused}");
    buyer.increase_time(u64::from(o.tAck) + 1).await.unwrap();
    buyer.resolve(channel).await.expect("upheld");
    assert_eq!(buyer.channel(channel).await.unwrap().status, ChannelStatus::Settled);
    drop(p.devnet);
}

/// A settle sent while the chain allowed it, then the chain's time goes back before
/// `T_closure` elapsed (a reorganisation rewinds it to the common block's time) while the settle
/// waits in the pool; with `dropped`, the pool loses it too. Returns what `settle` answered and
/// how many transactions of the buyer's were mined meanwhile.
async fn settle_when_time_goes_back(dropped: bool) -> (Result<supra_judge::Receipt, JudgeError>, u64) {
    use alloy::providers::Provider;
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_key.address(), buyer_key.address(), now + 600, 1);
    let offer_sig = seller_key.sign(&seller.domain().digest(&o));
    let (channel, _) = buyer.open(&o, offer_sig.as_bytes(), U256::from(10 * PRICE)).await.expect("open");
    buyer.request_close(channel).await.expect("close");
    let closing = buyer.channel(channel).await.unwrap();
    let settle_after = closing.close_requested_at + u64::from(closing.t_closure);
    buyer.increase_time(u64::from(closing.t_closure) + 1).await.unwrap();

    let rpc = buyer.provider().clone();
    let dev = |method: &'static str, params: serde_json::Value| {
        let rpc = rpc.clone();
        async move {
            let _: serde_json::Value = rpc.raw_request(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"));
        }
    };
    // The buyer's transactions waiting in the pool.
    let pooled = |rpc: alloy::providers::DynProvider, from: Address| async move {
        let pool: serde_json::Value = rpc.raw_request("txpool_content".into(), ()).await.expect("txpool_content");
        let by_sender = pool["pending"].as_object().cloned().unwrap_or_default();
        let ours = by_sender.into_iter().find(|(sender, _)| sender.eq_ignore_ascii_case(&from.to_string()));
        ours.and_then(|(_, txs)| txs.as_object().cloned()).unwrap_or_default().into_values().map(|tx| tx["hash"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let nonce_before = rpc.get_transaction_count(buyer_key.address()).await.unwrap();
    dev("evm_setAutomine", serde_json::json!([false])).await;
    let quick = buyer.clone().with_policy(supra_judge::TxPolicy { poll: std::time::Duration::from_millis(20), ..Default::default() });
    let settling = tokio::spawn(async move { quick.settle(channel).await });
    let start = std::time::Instant::now();
    let sent = loop {
        if let Some(hash) = pooled(rpc.clone(), buyer_key.address()).await.pop() {
            break hash;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the settle reached the pool");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    dev("evm_setTime", serde_json::json!([settle_after - 30])).await;
    if dropped {
        dev("anvil_dropTransaction", serde_json::json!([sent])).await;
    } else {
        dev("evm_mine", serde_json::json!([])).await;
    }
    // Whatever the buyer sends from now on is mined, until `settle` answers.
    while !settling.is_finished() {
        if !pooled(rpc.clone(), buyer_key.address()).await.is_empty() {
            dev("evm_mine", serde_json::json!([])).await;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "settle answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    dev("evm_setAutomine", serde_json::json!([true])).await;
    let mined = rpc.get_transaction_count(buyer_key.address()).await.unwrap() - nonce_before;
    let answer = settling.await.unwrap();
    if let Err(JudgeError::TooEarly { until, .. }) = &answer {
        assert_eq!(*until, settle_after, "the refusal says when the settle passes");
    }
    drop(p.devnet);
    (answer, mined)
}

#[tokio::test]
async fn a_dropped_transaction_is_checked_again_before_it_is_sent_again() {
    // Sent again as it was, the settle would be mined and revert: gas spent, and an opaque
    // `Reverted` the broker takes as final. Checked first, it is refused for now, with the
    // time at which it passes, and nothing is mined.
    let (answer, mined) = settle_when_time_goes_back(true).await;
    assert!(matches!(&answer, Err(JudgeError::TooEarly { refusal, .. }) if refusal.contains("ClosureNotElapsed")), "{answer:?}");
    assert_eq!(mined, 0, "no transaction bound to revert was mined");
}

#[tokio::test]
async fn a_transaction_mined_and_reverted_says_why_when_the_judge_still_refuses_it() {
    let (answer, mined) = settle_when_time_goes_back(false).await;
    assert_eq!(mined, 1, "the settle was mined (and reverted)");
    assert!(matches!(&answer, Err(JudgeError::TooEarly { refusal, .. }) if refusal.contains("ClosureNotElapsed")), "{answer:?}");
}

async fn gas_price(judge: &Judge, tx: B256) -> u128 {
    use alloy::providers::Provider;
    let receipt = judge.provider().get_transaction_receipt(tx).await.unwrap().unwrap();
    receipt.effective_gas_price
}

#[tokio::test]
async fn rpc_outage_is_a_transient_error() {
    let p = parties().await;
    let judge = p.seller.1.clone();
    drop(p.devnet); // the node goes away
    let err = judge.block_number().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = judge.request_close(ChannelId(U256::from(1))).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

/// A batch the engine signs (64 messages, the default `max_batch`, and a full one of 256): every
/// message's proof is accepted by the judge on Anvil, its `Posted` event decodes into the same
/// proof, which verifies as a `Data` frame's would; a tampered path, a message swapped under
/// another's proof, and the judge's batch bounds are refused with its own errors.
#[tokio::test]
async fn a_rust_built_batch_posts_on_anvil_and_its_events_verify() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let domain = seller.domain();
    let stream = StreamId::new(seller_key.address(), 9).expect("small number");
    assert_eq!(seller.batch_limits().await.unwrap(), (supra_judge::MAX_BATCH, supra_judge::MAX_PROOF_DEPTH));
    let mut prev = B256::ZERO;
    let mut chain = Vec::new();
    for seq in 0..320u64 {
        let payload = format!("sealed {seq}").into_bytes();
        let m = message(stream, seq, prev, &payload);
        prev = domain.digest(&m);
        chain.push((m, payload, prev));
    }
    let sign = |range: std::ops::Range<usize>| {
        let refs: Vec<_> = chain[range].iter().map(|(m, _, d)| (m, *d)).collect();
        MessageProof::sign_batch(&domain, seller_key, &refs)
    };
    let small = sign(0..64);
    let full = sign(64..320);
    assert_eq!(full[0].path.len(), MAX_PROOF_DEPTH);
    // Posted: from the batch of 64, the first, a middle one and the last; from the full batch,
    // its first and last (the longest paths).
    let picks = [(0usize, &small[0]), (37, &small[37]), (63, &small[63]), (64, &full[0]), (319, &full[255])];
    let first_block = seller.block_number().await.unwrap() + 1;
    for (seq, proof) in picks {
        let (m, payload, _) = &chain[seq];
        seller.post(m, payload, proof).await.unwrap_or_else(|e| panic!("post {seq}: {e}"));
    }
    let last_block = seller.block_number().await.unwrap();
    let events = seller.events(first_block, last_block).await.unwrap();
    let posted: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            JudgeEvent::Posted { message, digest, proof, .. } => Some((message.clone(), *digest, proof.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(posted.len(), picks.len());
    for ((message, digest, proof), (seq, sent)) in posted.iter().zip(picks) {
        assert_eq!(message, &chain[seq].0);
        assert_eq!(*digest, domain.digest(message));
        assert_eq!(proof, sent);
        proof.verify(&domain, seller_key.public(), message, *digest).expect("a posted message verifies");
    }
    // Refusals, by the judge's error names.
    let refused = |r: Result<supra_judge::Receipt, JudgeError>| r.unwrap_err().refusal_name().map(str::to_owned);
    let (m5, p5, _) = &chain[5];
    let (m6, p6, _) = &chain[6];
    assert_eq!(refused(seller.post(m6, p6, &small[5]).await).as_deref(), Some("WrongRoot"));
    let mut forged = small[5].clone();
    forged.path[2] = B256::repeat_byte(0x55);
    assert_eq!(refused(seller.post(m5, p5, &forged).await).as_deref(), Some("WrongRoot"));
    let (m100, p100, _) = &chain[100];
    assert_eq!(refused(seller.post(m100, p100, &small[5]).await).as_deref(), Some("NotInBatch"));
    let mut deep = small[5].clone();
    deep.path.extend([B256::repeat_byte(1); 3]);
    assert_eq!(refused(seller.post(m5, p5, &deep).await).as_deref(), Some("BatchTooLarge"));
    let mut stage1 = MessageProof::sign_single(&domain, seller_key, m5, domain.digest(m5));
    stage1.sig = seller_key.sign(&domain.digest(m5));
    assert_eq!(refused(seller.post(m5, p5, &stage1).await).as_deref(), Some("WrongSigner"));
    drop(p.devnet);
}
