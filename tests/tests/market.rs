//! The runtime market (issue 14): `supra sell`, `supra buy`, `supra stop-buying` and
//! `supra stop-selling` act on running `supra` processes whose config files sell and buy nothing,
//! through their operator sockets; what they start survives restarts with no config edit, and what
//! they stop settles with the seller paid exactly delivered x price.

#[path = "e2e/harness.rs"]
#[allow(dead_code)] // what the other end-to-end tests use
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use supra_judge::Judge;
use harness::*;
use supra_broker::probe::{Publisher, Subscriber};
use supra_broker::status::ChannelRole;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A broker whose config sells nothing (but listens for buyers) and one that buys nothing, both
/// pointed at the offer `catalogue`.
fn bare_brokers(dir: &TempDir, chain: &Chain, catalogue: Address, a: ([u8; 32], Address), b: ([u8; 32], Address)) -> (BrokerProc, BrokerProc) {
    let (rpc, judge) = (chain.rpc().to_owned(), chain.judge);
    let seller = BrokerProc::spawn_with("seller", &dir.0, &a.0, a.1, |mqtt, v5, peer| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\ncatalogue = \"{catalogue}\"\nonchain_delay_secs = 2\npoll_interval_ms = 100\nclaim_threshold_wei = 0\n\
             [peer]\nlisten = \"{peer}\"\n"
        )
    });
    let buyer = BrokerProc::spawn_with("buyer", &dir.0, &b.0, b.1, |mqtt, v5, _| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\nrestart_hold_ms = 0\n\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\ncatalogue = \"{catalogue}\"\npoll_interval_ms = 100\n"
        )
    });
    (seller, buyer)
}

/// Runs `supra offers` at `broker` until its output satisfies `done`.
async fn offers_until(broker: &BrokerProc, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + SECS(30);
    loop {
        let said = broker.cli(&["offers"]);
        if done(&said) {
            return said;
        }
        assert!(std::time::Instant::now() < deadline, "`supra offers` never got there; it says:\n{said}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops both gracefully (the buyer first) and starts them again, with the same config files.
async fn restart(a: &mut BrokerProc, b: &mut BrokerProc) {
    b.terminate(SECS(30)).await;
    a.terminate(SECS(30)).await;
    a.start();
    b.start();
    a.wait_ready(SECS(30)).await;
    b.wait_ready(SECS(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_sold_and_bought_at_runtime_flow_survive_restarts_and_stop_cleanly() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("market");
    let deployer = chain.fresh_key().await;
    let deployer = Judge::connect(chain.rpc(), &B256::from(deployer.0), chain.judge).await.expect("deployer");
    let catalogue = supra_judge::devnet::deploy_catalogue(&deployer).await.expect("catalogue").address();
    let (mut a, mut b) = bare_brokers(&dir, chain, catalogue, chain.fresh_key().await, chain.fresh_key().await);
    a.wait_ready(SECS(30)).await;
    b.wait_ready(SECS(30)).await;
    let price = PRICE_WEI.to_string();

    // Bad orders are refused with their reason, and change nothing.
    let said = a.cli_fails(&["sell", "sensors/#", "--price", "0"]);
    assert!(said.contains("price_wei") && said.contains("must be positive"), "{said}");
    let said = a.cli_fails(&["sell", "sensors/#/x", "--price", &price]);
    assert!(said.contains("topic"), "{said}");
    let said = a.cli_fails(&["sell", "sensors/#", "--price", &price, "--t-ack", "1"]);
    assert!(said.contains("t_ack_secs"), "T_ack must exceed the posting delay: {said}");
    let said = b.cli_fails(&["stop-buying", "sensors/#"]);
    assert!(said.contains("not bought here"), "{said}");

    // Sold at runtime, and listed in the catalogue: the buyer finds it there, with no peer link.
    assert!(b.cli(&["offers"]).contains("no live offer"));
    let said = a.cli(&["sell", "sensors/#", "--price", &price, "--window", "64", "--t-ack", "60", "--t-closure", "3", "--description", "room readings"]);
    assert!(said.contains("selling `sensors/#`"), "{said}");
    let said = a.cli_fails(&["sell", "sensors/#", "--price", &price]);
    assert!(said.contains("sold already"), "{said}");
    let listed = offers_until(&b, |s| s.contains("sensors/#")).await;
    let (seller, endpoint) = (a.address.to_string(), a.peer.to_string());
    assert!(listed.contains("room readings") && listed.contains(&seller) && listed.contains(&endpoint) && listed.contains(&format!("price {price} wei")), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&b.cli(&["offers", "--json", "--topic", "sensors/room1/t"])).expect("JSON");
    let stream = json[0]["stream"].as_str().expect("a stream id").to_owned();
    assert!(b.cli(&["offers", "--topic", "other/#"]).contains("no live offer"), "the topic filter filters");
    // Bought at runtime, by its catalogue entry.
    let deposit = (10_000 * PRICE_WEI).to_string();
    let said = b.cli(&["buy", "--stream", &stream, "--deposit", &deposit, "--local-prefix", "market/"]);
    assert!(said.contains("buying `sensors/#`") && said.contains(&seller), "{said}");
    let by_hand = ["buy", "sensors/#", "--seller", &seller, "--endpoint", &endpoint, "--deposit", &deposit, "--max-price", &price, "--local-prefix", "market/"];
    let said = b.cli_fails(&by_hand);
    assert!(said.contains("already"), "{said}");

    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    publish(&publisher, 0..40).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, 40, SECS(30)).await;
    assert_exactly_once(&seen, 0..40);
    drop((subscriber, publisher));

    // Both restart with their config files unchanged: the store brings the stream and the buy
    // back, and the same channel goes on.
    restart(&mut a, &mut b).await;
    let line = b.wait_channel(ChannelRole::Buyer, SECS(30), |l| l.phase == "open" && l.link_up).await;
    assert_eq!(line.channel, channel, "the channel bought at runtime resumes after the restart");
    let mut subscriber = Subscriber::connect(b.mqtt, "sub-2", "market/sensors/#", SECS(10)).await.expect("subscribe at B");
    let publisher = Publisher::connect(a.mqtt, "pub-2", SECS(10)).await.expect("connect to A");
    publish(&publisher, 40..80).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, 40, SECS(30)).await;
    assert_exactly_once(&seen, 40..80);

    // Stopping the buy closes the channel: the seller is paid exactly what was delivered.
    let said = b.cli(&["stop-buying", "sensors/#"]);
    assert!(said.contains("closing"), "{said}");
    let judge = chain.reader().await;
    let info = wait_settled(&judge, channel, SECS(90)).await;
    assert_eq!(info.claimed, U256::from(80 * PRICE_WEI), "seller paid delivered x price");
    assert_eq!(info.acked, 80);

    // Stopping the sale: no new buyer; it stays stopped across a restart, and can sell again.
    let said = a.cli(&["stop-selling", "sensors/#"]);
    assert!(said.contains("stopped selling `sensors/#`"), "{said}");
    offers_until(&b, |s| s.contains("no live offer")).await;
    restart(&mut a, &mut b).await;
    let said = b.cli_fails(&["stop-buying", "sensors/#"]);
    assert!(said.contains("not bought here"), "a stopped buy stays stopped after a restart: {said}");
    let said = a.cli_fails(&["stop-selling", "sensors/#"]);
    assert!(said.contains("stopped already"), "a stopped sale stays stopped after a restart: {said}");
    let said = a.cli(&["sell", "sensors/#", "--price", &price]);
    assert!(said.contains("selling `sensors/#` again"), "{said}");
    offers_until(&b, |s| s.contains("sensors/#")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_priced_in_a_stablecoin_is_bought_with_a_permit_and_paid_in_it() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("market-token");
    let deployer = chain.fresh_key().await;
    let deployer = Judge::connect(chain.rpc(), &B256::from(deployer.0), chain.judge).await.expect("deployer");
    let catalogue = supra_judge::devnet::deploy_catalogue(&deployer).await.expect("catalogue").address();
    let (ka, kb) = (chain.fresh_key().await, chain.fresh_key().await);
    // 10 test dollars (6 decimals) for the buyer; a message costs 0.001 of them.
    let minted = U256::from(10_000_000u64);
    let token = supra_judge::devnet::deploy_test_token(&deployer, &[kb.1], minted).await.expect("token");
    let (mut a, mut b) = bare_brokers(&dir, chain, catalogue, ka, kb);
    a.wait_ready(SECS(30)).await;
    b.wait_ready(SECS(30)).await;
    let (price, token_text) = (1_000u64, token.address().to_string());
    let said = a.cli(&["sell", "sensors/#", "--price", &price.to_string(), "--token", &token_text, "--window", "64", "--t-ack", "60", "--t-closure", "3"]);
    assert!(said.contains("selling `sensors/#`"), "{said}");
    let listed = offers_until(&b, |s| s.contains("sensors/#")).await;
    assert!(listed.contains(&format!("price {price} of token {token_text}")), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&b.cli(&["offers", "--json"])).expect("JSON");
    let stream = json[0]["stream"].as_str().expect("a stream id").to_owned();
    // A buyer set on another currency is refused before it pays anything.
    let said = b.cli_fails(&["buy", "--stream", &stream, "--deposit", "1000000", "--token", "0x0000000000000000000000000000000000000001"]);
    assert!(said.contains("priced in"), "{said}");
    // One transaction opens it: the broker's key signs the permit, the judge pulls the deposit.
    let said = b.cli(&["buy", "--stream", &stream, "--deposit", "1000000", "--local-prefix", "market/"]);
    assert!(said.contains("buying `sensors/#`"), "{said}");
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    let judge = chain.reader().await;
    assert_eq!(judge.channel_token(channel).await.expect("channelToken"), token.address(), "a token channel");
    assert_eq!(token.balance_of(kb.1).await.unwrap(), minted - U256::from(1_000_000u64), "the deposit left the buyer");
    publish(&publisher, 0..30).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, 30, SECS(30)).await;
    assert_exactly_once(&seen, 0..30);
    let said = b.cli(&["stop-buying", "sensors/#"]);
    assert!(said.contains("closing"), "{said}");
    let info = wait_settled(&judge, channel, SECS(90)).await;
    let paid = U256::from(30 * price);
    assert_eq!(info.claimed, paid, "seller paid delivered x price, in the token");
    assert_eq!(token.balance_of(ka.1).await.unwrap(), paid, "the seller holds what it was paid");
    assert_eq!(token.balance_of(kb.1).await.unwrap(), minted - paid, "the buyer got the rest of its deposit back");
    assert_eq!(token.balance_of(chain.judge).await.unwrap(), U256::ZERO, "the judge keeps nothing");
}
