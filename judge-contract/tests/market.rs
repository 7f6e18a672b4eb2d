//! Issue 14 against a real Anvil: a channel priced and funded in a test stablecoin (OpenZeppelin
//! ERC-20 with permit) opened in one transaction, claimed, topped up, closed and settled with every
//! balance checked; the offer catalogue announced, updated, listed, filtered and withdrawn.

use alloy::primitives::{Address, B256, U256};
use supra_channel::sign::Keypair;
use supra_channel::types::{Ack, ChannelId, Offer, StreamId, ack_cost};
use supra_judge::devnet::{Devnet, deploy_catalogue, deploy_test_token};
use supra_judge::market::{Ad, Catalogue, OfferFilter};
use supra_judge::{ChannelStatus, Judge, JudgeError};

const PRICE: u64 = 1_000; // 0.001 tUSD per message (6 decimals)
const WINDOW: u64 = 8;

struct Parties {
    devnet: Devnet,
    seller: (Keypair, Judge),
    buyer: (Keypair, Judge),
    other: (Keypair, Judge),
}

async fn parties() -> Parties {
    let devnet = Devnet::spawn().expect("anvil starts");
    let deployer = devnet.keys()[0];
    let judge = Judge::deploy(devnet.endpoint(), &deployer).await.expect("judge deploys");
    let mut party = Vec::new();
    for index in 1..=3 {
        let key = devnet.keys()[index];
        let client = Judge::connect(devnet.endpoint(), &key, judge.address()).await.expect("connect");
        party.push((Keypair::from_secret_bytes(&key.0).expect("dev key"), client));
    }
    let other = party.pop().unwrap();
    let buyer = party.pop().unwrap();
    let seller = party.pop().unwrap();
    Parties { devnet, seller, buyer, other }
}

fn offer(seller: Address, buyer: Address, token: Address, valid_until: u64, nonce: u64) -> Offer {
    Offer {
        streamId: StreamId::new(seller, 7).expect("small number").as_b256(),
        seller,
        buyer,
        price: U256::from(PRICE),
        token,
        window: WINDOW,
        startSeq: 0,
        tAck: 30,
        tClosure: 60,
        validUntil: valid_until,
        nonce: U256::from(nonce),
    }
}

#[tokio::test]
async fn a_token_channel_opens_with_permit_claims_tops_up_and_settles_in_tokens() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let (buyer_addr, seller_addr) = (buyer_key.address(), seller_key.address());
    let minted = U256::from(1_000_000_000u64); // 1 000 tUSD
    let usd = deploy_test_token(seller, &[buyer_addr], minted).await.expect("test token deploys and mints");
    assert_eq!(usd.balance_of(buyer_addr).await.unwrap(), minted);
    let token = usd.address();
    let domain = seller.domain();
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_addr, buyer_addr, token, now + 600, 1);
    let sig = seller_key.sign(&domain.digest(&o));
    let deposit = U256::from(10 * WINDOW * PRICE);

    // ETH cannot open a token offer (the judge's CurrencyMismatch), nor the token path an ETH one.
    let refused = buyer.open(&o, sig.as_bytes(), deposit).await.unwrap_err();
    assert_eq!(refused.refusal_name(), Some("CurrencyMismatch"), "{refused}");
    let eth_offer = offer(seller_addr, buyer_addr, Address::ZERO, now + 600, 2);
    let eth_sig = seller_key.sign(&domain.digest(&eth_offer));
    assert!(buyer.open_with_permit(&eth_offer, eth_sig.as_bytes(), deposit).await.is_err());

    // One transaction: the buyer's permit, then transferFrom.
    let eth_before = buyer.balance(buyer_addr).await.unwrap();
    let (channel, opened) = buyer.open_with_permit(&o, sig.as_bytes(), deposit).await.expect("open with permit");
    assert_eq!(channel, ChannelId::from_offer_digest(domain.digest(&o)));
    println!("openWithPermit on Anvil: {} gas", opened.gas_used);
    assert_eq!(usd.balance_of(buyer_addr).await.unwrap(), minted - deposit, "the buyer paid in tokens");
    assert_eq!(usd.balance_of(buyer.address()).await.unwrap(), deposit, "the judge holds the deposit");
    assert_eq!(buyer.balance(buyer.address()).await.unwrap(), U256::ZERO, "no ether in the judge");
    assert!(buyer.balance(buyer_addr).await.unwrap() < eth_before, "the buyer's ether paid only gas");
    assert_eq!(buyer.channel_token(channel).await.unwrap(), token);
    let info = seller.channel(channel).await.unwrap();
    assert_eq!((info.status, info.deposit, info.price), (ChannelStatus::Open, deposit, U256::from(PRICE)));

    // The seller claims an ack of 10 messages: paid in tokens.
    let ack = Ack {
        channelId: channel.as_u256(),
        seq: 9,
        digest: B256::repeat_byte(9),
        cost: ack_cost(0, 9, U256::from(PRICE)).unwrap(),
        timestamp: 1,
    };
    let claimed = seller.claim(&ack, buyer_key.sign(&domain.digest(&ack)).as_bytes()).await.expect("claim");
    println!("claim of a token channel on Anvil: {} gas", claimed.gas_used);
    assert_eq!(usd.balance_of(seller_addr).await.unwrap(), U256::from(10 * PRICE), "seller paid 10 messages");

    // A top-up with permit, one transaction.
    let extra = U256::from(5 * PRICE);
    buyer.top_up_with_permit(channel, extra).await.expect("top up with permit");
    assert_eq!(seller.channel(channel).await.unwrap().deposit, deposit + extra);
    assert_eq!(usd.balance_of(buyer.address()).await.unwrap(), deposit + extra - U256::from(10 * PRICE));

    // Close and settle: the buyer gets F - R in tokens, the judge keeps nothing.
    buyer.request_close(channel).await.expect("close");
    buyer.increase_time(61).await.unwrap();
    seller.settle(channel).await.expect("settle");
    let refund = deposit + extra - U256::from(10 * PRICE);
    assert_eq!(usd.balance_of(buyer_addr).await.unwrap(), minted - deposit - extra + refund);
    assert_eq!(usd.balance_of(buyer.address()).await.unwrap(), U256::ZERO, "nothing locked");
    let info = seller.channel(channel).await.unwrap();
    assert_eq!((info.status, info.claimed), (ChannelStatus::Settled, U256::from(10 * PRICE)));
    drop(p.devnet);
}

#[tokio::test]
async fn a_permit_signed_by_someone_else_opens_nothing() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (buyer_key, buyer) = &p.buyer;
    let (_, other) = &p.other;
    let usd = deploy_test_token(seller, &[buyer_key.address()], U256::from(1_000_000u64)).await.unwrap();
    let now = seller.block_timestamp().await.unwrap();
    let o = offer(seller_key.address(), buyer_key.address(), usd.address(), now + 600, 1);
    let sig = seller_key.sign(&seller.domain().digest(&o));
    // `other` signs a permit as if it were the buyer's and the buyer submits it: the permit fails,
    // no allowance, the token refuses the transfer.
    let amount = U256::from(WINDOW * PRICE);
    let forged = other.sign_permit(usd.address(), amount, now + 600).await.unwrap();
    assert_ne!(forged, buyer.sign_permit(usd.address(), amount, now + 600).await.unwrap());
    let err = buyer.open_with_token(&o, sig.as_bytes(), amount).await.unwrap_err();
    assert!(matches!(&err, JudgeError::Refused(r) if r.contains("ERC20InsufficientAllowance")), "{err}");
    assert_eq!(usd.balance_of(buyer.address()).await.unwrap(), U256::ZERO);
    drop(p.devnet);
}

fn ad(stream: StreamId, topic: &str, price: u64, token: Address) -> Ad {
    Ad {
        stream,
        topic_filter: topic.into(),
        price: U256::from(price),
        token,
        window: WINDOW,
        t_ack_secs: 30,
        t_closure_secs: 60,
        endpoint: "127.0.0.1:7883".into(),
        description: "test stream".into(),
    }
}

#[tokio::test]
async fn the_catalogue_lists_live_offers_from_chain_events() {
    let p = parties().await;
    let (seller_key, seller) = &p.seller;
    let (other_key, other) = &p.other;
    let cat = deploy_catalogue(seller).await.expect("catalogue deploys");
    assert_eq!(cat.judge_address().await.unwrap(), seller.address());
    let usd = Address::repeat_byte(0x05);

    let temp = StreamId::new(seller_key.address(), 1).unwrap();
    let hum = StreamId::new(seller_key.address(), 2).unwrap();
    let video = StreamId::new(other_key.address(), 1).unwrap();
    let announced = cat.announce(&ad(temp, "sensors/+/temperature", 1_000, usd)).await.expect("announce");
    println!("catalogue announce on Anvil: {} gas", announced.gas_used);
    cat.announce(&ad(hum, "sensors/+/humidity", 500, usd)).await.unwrap();
    let other_cat = Catalogue::connect(other, cat.address()).await.unwrap();
    other_cat.announce(&ad(video, "video/cam1", 9, Address::ZERO)).await.unwrap();

    // Nobody announces or withdraws someone else's stream.
    let squat = other_cat.announce(&ad(temp, "sensors/+/temperature", 1, usd)).await.unwrap_err();
    assert!(matches!(&squat, JudgeError::Refused(r) if r.contains("NotSeller")), "{squat}");
    let pull = other_cat.withdraw(temp).await.unwrap_err();
    assert!(matches!(&pull, JudgeError::Refused(r) if r.contains("NotSeller")), "{pull}");

    // An update replaces the ad.
    let updated = cat.announce(&ad(temp, "sensors/+/temperature", 1_200, usd)).await.expect("update");
    println!("catalogue update on Anvil: {} gas", updated.gas_used);

    // Any client reads the live offers from the events (here: a third party's).
    let reader = Catalogue::connect(&p.buyer.1, cat.address()).await.unwrap();
    let all = reader.offers(&OfferFilter::default()).await.unwrap();
    let listed: Vec<(String, U256)> = all.iter().map(|l| (l.ad.topic_filter.clone(), l.ad.price)).collect();
    assert_eq!(
        listed,
        vec![
            ("sensors/+/humidity".to_owned(), U256::from(500u64)),
            ("sensors/+/temperature".to_owned(), U256::from(1_200u64)),
            ("video/cam1".to_owned(), U256::from(9u64)),
        ]
    );
    assert_eq!(all[1].ad, ad(temp, "sensors/+/temperature", 1_200, usd), "the whole ad round-trips");
    let kitchen = reader
        .offers(&OfferFilter { topic: Some("sensors/kitchen/#".into()), max_price: Some(U256::from(1_000u64)), token: Some(usd), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(kitchen.iter().map(|l| l.ad.stream).collect::<Vec<_>>(), vec![hum], "topic, price and currency filters");

    // Withdrawn: no longer listed.
    let withdrawn = cat.withdraw(hum).await.expect("withdraw");
    println!("catalogue withdraw on Anvil: {} gas", withdrawn.gas_used);
    let all = reader.offers(&OfferFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|l| l.ad.stream).collect::<Vec<_>>(), vec![temp, video]);
    let bad = cat.announce(&ad(temp, "", 1, usd)).await.unwrap_err();
    assert!(matches!(&bad, JudgeError::Refused(r) if r.contains("BadTopicFilter")), "{bad}");
    drop(p.devnet);
}
