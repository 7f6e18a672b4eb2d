//! Crash at any moment: a seller and a buyer broker, each beside its own mosquitto (external
//! mode), stream while the test SIGKILLs either broker at random moments (mid-commit and
//! mid-transaction included, since the stream never pauses), cuts the link between them, and
//! cuts either broker's connection to the chain (through TCP proxies it controls). Then it lets
//! everything recover and checks, message by message, that every message the publisher was told
//! was received reached the subscriber, that the buyer acknowledged everything the seller sold,
//! that the judge paid exactly sold x price, and that the judge holds no wei of the channel after
//! it settled.
//!
//! The faults come from a seed, printed first: `SUPRA_CHAOS_SEED=<seed> SUPRA_CHAOS_SECS=<s>
//! cargo test -p supra-tests --test chaos -- --nocapture` runs the same schedule again (the
//! timing of the processes themselves differs from run to run). CI runs 45 s;
//! `scripts/chaos` runs long ones.

#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use harness::*;
use supra_broker::probe::{Publisher, Subscriber};
use supra_broker::status::ChannelRole;
use supra_channel::testkit::Rng;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_killed_links_cut_and_rpc_lost_at_random_lose_nothing_and_every_wei_is_accounted_for() {
    let _serial = serial().await;
    let seed = env_u64("SUPRA_CHAOS_SEED").unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let secs = env_u64("SUPRA_CHAOS_SECS").unwrap_or(45);
    eprintln!("chaos: seed {seed}, {secs} s of faults (replay: SUPRA_CHAOS_SEED={seed} SUPRA_CHAOS_SECS={secs})");
    // The fault schedule replays from its seed alone.
    let mut schedule = Rng::new(seed);

    let chain = chain().await;
    let judge = chain.reader().await;
    let held_before = judge.balance(judge.address()).await.expect("judge balance");
    let dir = TempDir::new("chaos");
    let mosquitto_a = Mosquitto::start(&dir.0.join("mosquitto-a"), true);
    let mosquitto_b = Mosquitto::start(&dir.0.join("mosquitto-b"), true);
    mosquitto_a.wait_listening(SECS(10)).await;
    mosquitto_b.wait_listening(SECS(10)).await;
    let anvil: std::net::SocketAddr = chain.rpc().trim_start_matches("http://").parse().expect("anvil address");
    let (rpc_a, rpc_b) = (CuttableLink::to(anvil).await, CuttableLink::to(anvil).await);

    let mut a = BrokerProc::external_seller(&dir.0, chain, &format!("http://{}", rpc_a.addr), chain.fresh_key().await, &format!("mqtt://{}", mosquitto_a.addr), "");
    a.wait_ready(SECS(30)).await;
    let link = CuttableLink::to(a.peer).await;
    // The buyer tops its deposit up by 10 000 messages whenever fewer than 5 000 are left (the
    // stream outruns the first deposit within the run: top-ups happen under faults too).
    let top_ups = format!("top_up_messages = 10000\ntop_up_below_messages = 5000\nmax_deposit_wei = {}", 10_000_000 * PRICE_WEI);
    let mut b = BrokerProc::external_buyer(&dir.0, chain, &format!("http://{}", rpc_b.addr), chain.fresh_key().await, (a.address, link.addr), mosquitto_b.addr, &top_ups);
    b.wait_ready(SECS(30)).await;
    let mut subscriber = Subscriber::connect_persistent(mosquitto_b.addr, "sub", "market/sensors/#", SECS(10)).await.expect("subscribe at mosquitto B");
    let channel = a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await.channel;
    let publisher = Arc::new(Publisher::connect(mosquitto_a.addr, "pub", SECS(10)).await.expect("connect to mosquitto A"));

    // The stream never pauses: about 400 messages a second, numbered.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let streaming = {
        let (publisher, stop, published) = (publisher.clone(), stop.clone(), published.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                publisher.publish(&format!("sensors/room{}/t", i % 4), payload(i)).await.expect("publish to mosquitto A");
                i += 1;
                published.store(i, Ordering::Relaxed);
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };

    let deadline = Instant::now() + SECS(secs);
    let mut faults = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(schedule.range(100, 1_500))).await;
        let at = published.load(Ordering::Relaxed);
        let fault = match schedule.below(5) {
            0 => {
                a.kill();
                tokio::time::sleep(Duration::from_millis(schedule.range(0, 1_000))).await;
                a.start();
                "kill -9 seller"
            }
            1 => {
                b.kill();
                tokio::time::sleep(Duration::from_millis(schedule.range(0, 1_000))).await;
                b.start();
                "kill -9 buyer"
            }
            2 => {
                link.set_cut(true);
                tokio::time::sleep(Duration::from_millis(schedule.range(300, 3_000))).await;
                link.set_cut(false);
                "link cut"
            }
            3 => {
                rpc_a.set_cut(true);
                tokio::time::sleep(Duration::from_millis(schedule.range(500, 4_000))).await;
                rpc_a.set_cut(false);
                "seller's RPC cut"
            }
            _ => {
                rpc_b.set_cut(true);
                tokio::time::sleep(Duration::from_millis(schedule.range(500, 4_000))).await;
                rpc_b.set_cut(false);
                "buyer's RPC cut"
            }
        };
        faults.push(format!("{fault} at message {at}"));
    }
    stop.store(true, Ordering::Relaxed);
    streaming.await.expect("stream task");
    let published = published.load(Ordering::Relaxed);
    eprintln!("chaos: {} faults over {published} messages: {faults:?}", faults.len());
    publisher.wait_acked(published, SECS(30)).await.expect("mosquitto A acknowledged every publish");
    a.wait_ready(SECS(30)).await;
    b.wait_ready(SECS(30)).await;

    // Every published message reaches the subscriber.
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, published as usize, SECS(120)).await;
    collect(&mut subscriber, &mut seen, published as usize + 1, Duration::from_millis(500)).await;
    let missing: Vec<u64> = (0..published).filter(|i| !seen.contains_key(i)).collect();
    let repeated = seen.values().filter(|n| **n > 1).count();
    assert!(missing.is_empty(), "seed {seed}: lost {} messages: {missing:?}\nfaults: {faults:?}", missing.len());

    // The buyer acknowledged everything the seller sold; what the seller sold beyond what was
    // published is what it sold twice after a crash between its commit and its PUBACK.
    let sold = a.wait_channel(ChannelRole::Seller, SECS(60), |l| l.channel == channel && l.acked == l.messages && l.messages >= published).await.messages;
    eprintln!("chaos: {published} published, {sold} sold, {repeated} received more than once");

    // Settlement: exactly sold x price to the seller, the rest back to the buyer.
    b.close(channel);
    let info = wait_settled(&judge, channel, SECS(90)).await;
    assert_eq!(info.acked, sold, "seed {seed}: the judge's last ack covers every sold message");
    assert_eq!(info.claimed, U256::from(sold * PRICE_WEI), "seed {seed}: seller paid sold x price");
    assert_eq!(judge.balance(judge.address()).await.expect("judge balance"), held_before, "seed {seed}: the judge keeps no wei of a settled channel");
}
