//! End to end: a real Anvil with the judge, two `supra` broker processes, real MQTT clients
//! (rumqttc, mosquitto_pub, mosquitto_sub). Every message published at seller A must reach the
//! subscriber at buyer B exactly once, across link cuts and restarts, and the judge must pay the
//! seller exactly delivered x price.

#[path = "e2e/harness.rs"]
#[allow(dead_code)] // what the other end-to-end tests use
mod harness;
#[path = "e2e/clients.rs"]
#[allow(dead_code)]
mod clients;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use alloy::primitives::U256;
use harness::*;
use supra_broker::probe::{Publisher, Subscriber};
use supra_broker::status::ChannelRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Closes the channel from the buyer with `supra close` and checks the judge's settlement:
/// the seller got exactly `delivered * price`, the buyer the rest, nothing stays locked.
async fn close_and_check_settlement(buyer: &BrokerProc, delivered: u64) {
    let chain = chain().await;
    let judge = chain.reader().await;
    let line = buyer.wait_channel(ChannelRole::Buyer, SECS(10), |_| true).await;
    buyer.close(line.channel);
    let info = wait_settled(&judge, line.channel, SECS(60)).await;
    assert_eq!(info.claimed, U256::from(delivered * PRICE_WEI), "seller paid delivered x price");
    assert_eq!(info.acked, delivered, "the last claimed ack covers every delivered message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_at_a_arrive_exactly_once_at_b_and_are_paid() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("basic");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, _) = trading(&a, &mut b).await;
    let n = 300;
    publish(&publisher, 0..n).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, n as usize, SECS(30)).await;
    // Nothing more arrives: no duplicates trickle in late.
    collect(&mut subscriber, &mut seen, n as usize + 1, Duration::from_millis(500)).await;
    assert_exactly_once(&seen, 0..n);

    // A message on a topic A does not sell never reaches B.
    publisher.publish("weather/paris", payload(9_999)).await.unwrap();
    assert!(subscriber.next(Duration::from_millis(500)).await.is_none());

    let seller_line = a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == n).await;
    assert_eq!(seller_line.cost, U256::from(n * PRICE_WEI), "ack cost = (n - startSeq + 1) x P");
    // `supra channels --json` prints the id as `0x` and 64 hex digits, as the logs do.
    let json = a.cli(&["channels", "--json"]);
    assert!(json.contains(&format!("\"channel\": \"{}\"", seller_line.channel)), "{json}");
    assert!(a.log().contains(&seller_line.channel.to_string()), "the logs print the id the same way");
    close_and_check_settlement(&b, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_publish_and_subscribe_over_mqtt_3_and_5() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("mosquitto");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    b.wait_ready(SECS(30)).await;
    a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await;

    let n = 50u64;
    // Two subscribers on B: MQTT 3.1.1 and MQTT 5, each exits after n messages.
    let sub = |port: u16, version: &str| {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version, "-q", "1", "-t", "market/sensors/#", "-v", "-C", &n.to_string(), "-W", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (Debian's mosquitto-clients) runs")
    };
    let sub3 = sub(b.mqtt.port(), "mqttv311");
    let sub5 = sub(b.mqtt_v5.port(), "mqttv5");
    // mosquitto_sub prints nothing once subscribed: give it a moment, then check it is still up.
    tokio::time::sleep(Duration::from_millis(500)).await;

    mosquitto_publish(a.mqtt.port(), "sensors/lab/t", 0..n);
    for (name, child) in [("MQTT 3.1.1", sub3), ("MQTT 5", sub5)] {
        let seen = mosquitto_received(name, child, "market/sensors/lab/t").await;
        assert_exactly_once(&seen, 0..n);
    }
    close_and_check_settlement(&b, n).await;
}

/// The paid stream carries the MQTT message, not only its topic and payload: retain flag, QoS and
/// the MQTT 5 properties that belong to the message are signed and sealed at A and reproduced at B
/// (message expiry counted down by the time in transit), and a late subscriber at B gets the
/// retained last value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_qos_and_mqtt5_properties_cross_the_paid_link() {
    use bytes::Bytes;
    use clients::{check, filter, text, v5};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("properties");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    b.wait_ready(SECS(30)).await;
    a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await;

    let mut live = v5(b.mqtt_v5, "live", |_| {}).await.expect("subscriber at B");
    live.subscribe(filter("market/sensors/#", QoS::AtLeastOnce), None).await.expect("subscribe at B");
    let mut publisher = v5(a.mqtt_v5, "pub5", |_| {}).await.expect("publisher at A");
    let properties = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(600),
        response_topic: Some("sensors/lab/reply".into()),
        correlation_data: Some(Bytes::from_static(b"req-42")),
        user_properties: vec![("unit".into(), "C".into()), ("site".into(), "lab".into())],
        content_type: Some("text/plain".into()),
        ..PublishProperties::default()
    };
    publisher.send("sensors/lab/t", QoS::AtLeastOnce, true, "21.5", Some(properties.clone())).await.expect("publish at A");
    publisher.send("sensors/lab/q0", QoS::AtMostOnce, false, "at most once", None).await.expect("publish at A");

    let first = live.publish(SECS(30)).await.expect("the retained message reaches B");
    let second = live.publish(SECS(30)).await.expect("the QoS 0 message reaches B");
    let got = first.properties.clone().unwrap_or_default();
    let expiry = got.message_expiry_interval.unwrap_or(0);
    assert_eq!((String::from_utf8_lossy(&first.topic).as_ref(), text(&first).as_str(), first.qos), ("market/sensors/lab/t", "21.5", QoS::AtLeastOnce));
    assert_eq!(
        (&got.payload_format_indicator, &got.content_type, &got.response_topic, &got.correlation_data, &got.user_properties),
        (&properties.payload_format_indicator, &properties.content_type, &properties.response_topic, &properties.correlation_data, &properties.user_properties),
        "the message's MQTT 5 properties reach B's subscriber"
    );
    assert!((540..=600).contains(&expiry), "message expiry counted down in transit, not reset or lost: {expiry}");
    assert_eq!((text(&second).as_str(), second.qos), ("at most once", QoS::AtMostOnce), "QoS as published (the subscriber asked for 1)");

    // A late subscriber at B gets the retained last value, flagged retained.
    let mut late = v5(b.mqtt_v5, "late", |_| {}).await.expect("late subscriber at B");
    late.subscribe(filter("market/sensors/lab/t", QoS::AtLeastOnce), None).await.expect("subscribe at B");
    let retained = late.publish(SECS(10)).await.expect("B retained the bought message");
    check(text(&retained) == "21.5" && retained.retain, || format!("late subscriber got {:?} retain={}", text(&retained), retained.retain)).unwrap();
    close_and_check_settlement(&b, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_falls_back_to_the_chain_and_loses_nothing() {
    let _serial = serial().await;
    let chain = chain().await;
    let judge = chain.reader().await;
    let dir = TempDir::new("linkcut");
    // T_ack 6 s, Δ 2 s: an unacked message is posted 4 s after it was first sent.
    let terms = SellTerms { window: 32, t_ack_secs: 6, t_closure_secs: 3, onchain_delay_secs: 2, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "");
    a.wait_ready(SECS(30)).await;
    let link = CuttableLink::to(a.peer).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, link.addr, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, _) = trading(&a, &mut b).await;
    let posted_before = posted_seqs(&judge, a.address).await.len();

    let mut seen = BTreeMap::new();
    publish(&publisher, 0..40).await;
    collect(&mut subscriber, &mut seen, 40, SECS(20)).await;

    // Cut the link mid-stream: what A publishes now can only reach B through the chain.
    link.set_cut(true);
    publish(&publisher, 40..60).await;
    collect(&mut subscriber, &mut seen, 60, SECS(45)).await;
    let posted = posted_seqs(&judge, a.address).await.len() - posted_before;
    assert!(posted > 0, "messages reached B while the link was cut, so A posted them on-chain");

    // Heal the link: the stream goes on over it.
    link.set_cut(false);
    publish(&publisher, 60..100).await;
    collect(&mut subscriber, &mut seen, 100, SECS(45)).await;
    collect(&mut subscriber, &mut seen, 101, Duration::from_millis(500)).await;
    assert_exactly_once(&seen, 0..100);
    close_and_check_settlement(&b, 100).await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_outage_delays_claims_but_loses_no_money() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("rpc-outage");
    let anvil: std::net::SocketAddr = chain.rpc().trim_start_matches("http://").parse().unwrap();
    let rpc = CuttableLink::to(anvil).await;
    let mut a = BrokerProc::seller_via(&dir.0, chain, &format!("http://{}", rpc.addr), chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    let judge = chain.reader().await;

    let mut seen = BTreeMap::new();
    publish(&publisher, 0..100).await;
    collect(&mut subscriber, &mut seen, 100, SECS(30)).await;
    // A claims as acks come (claim threshold 0).
    let deadline = std::time::Instant::now() + SECS(20);
    while judge.channel(channel).await.unwrap().claimed < U256::from(100 * PRICE_WEI) {
        assert!(std::time::Instant::now() < deadline, "A claimed the first 100 messages");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A's node becomes unreachable: its claims fail and are retried; the stream goes on.
    rpc.set_cut(true);
    publish(&publisher, 100..200).await;
    collect(&mut subscriber, &mut seen, 200, SECS(30)).await;
    a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 200).await;
    tokio::time::sleep(SECS(2)).await; // a few failed attempts
    assert_eq!(judge.channel(channel).await.unwrap().claimed, U256::from(100 * PRICE_WEI), "nothing claimed during the outage");
    assert!(a.log().contains("retrying"), "A retried its chain calls");

    // The node is back: the pending claim goes through, then the close settles exactly.
    rpc.set_cut(false);
    assert_exactly_once(&seen, 0..200);
    close_and_check_settlement(&b, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_that_vanishes_still_pays_for_everything_it_was_sent() {
    let _serial = serial().await;
    let chain = chain().await;
    let judge = chain.reader().await;
    let dir = TempDir::new("vanish");
    // Unacked messages are posted 4 s after they were sent; a buyer away for 3 s is closed on.
    let terms = SellTerms { window: 16, t_ack_secs: 6, t_closure_secs: 3, onchain_delay_secs: 2, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "idle_close_secs = 3");
    a.wait_ready(SECS(30)).await;
    let link = CuttableLink::to(a.peer).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, link.addr, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    let mut seen = BTreeMap::new();
    publish(&publisher, 0..30).await;
    collect(&mut subscriber, &mut seen, 30, SECS(20)).await;
    a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 30).await;

    // The buyer vanishes: the network silently stops carrying the link, and the buyer broker
    // dies. A notices only because the link goes silent (no keepalive answers).
    link.set(Mode::Stalled);
    b.kill();
    // What A sends into the dead link in the meantime is unacked: A must post it to be paid.
    publish(&publisher, 30..40).await;
    // The window (16) lets A send all ten into the dead link.
    let sent = a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.messages == 40).await.messages;

    let info = wait_settled(&judge, channel, SECS(90)).await;
    let posted = posted_seqs(&judge, a.address).await.into_iter().filter(|s| *s >= 30).count() as u64;
    assert_eq!(posted, sent - 30, "every message A sent unacked was posted on-chain");
    assert_eq!(info.claimed, U256::from(sent * PRICE_WEI), "A is paid for every message sent: 30 acked + {posted} posted");
    assert_eq!(info.deposit - info.claimed, U256::from((1_000 - sent) * PRICE_WEI), "the buyer gets the rest back");
    assert!(a.log().contains("away for 3 s"), "A closed on the absent buyer");
}

/// A buyer that falls behind: the seller keeps at most `[node] max_backlog` messages for it, then
/// stops the channel and says why; the buyer's broker says the seller stopped it, and the
/// settlement pays exactly what the buyer received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_too_far_behind_is_stopped_and_pays_exactly_what_it_received() {
    let _serial = serial().await;
    let chain = chain().await;
    let judge = chain.reader().await;
    let dir = TempDir::new("backlog");
    let terms = SellTerms { window: 8, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "[node]\nmax_backlog = 16");
    a.wait_ready(SECS(30)).await;
    let link = CuttableLink::to(a.peer).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, link.addr, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    let mut seen = BTreeMap::new();
    publish(&publisher, 0..10).await;
    collect(&mut subscriber, &mut seen, 10, SECS(20)).await;
    // B falls behind: the link carries nothing for a while, and A's publishers go on.
    link.set(Mode::Stalled);
    publish(&publisher, 10..60).await;
    a.wait_log(&format!("channel {channel} stopped: its buyer is"), SECS(20)).await;
    assert!(a.log().contains("max_backlog (16)"), "A says which limit:\n{}", a.log());
    link.set(Mode::Open);
    let info = wait_settled(&judge, channel, SECS(60)).await;
    collect(&mut subscriber, &mut seen, 60, SECS(2)).await;
    let received = seen.len() as u64;
    assert!((10..60).contains(&received), "B got what A sent before its stop, not the rest: {received}");
    assert_exactly_once(&seen, 0..received);
    assert_eq!(info.claimed, U256::from(received * PRICE_WEI), "the seller is paid for exactly what B received");
    assert_eq!(info.deposit - info.claimed, U256::from((1_000 - received) * PRICE_WEI), "the buyer gets the rest back");
    assert!(b.log().contains(&format!("channel {channel}: the seller stopped it")), "B says the seller stopped it:\n{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_restart_loses_nothing_and_duplicates_nothing() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("seller-restart");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, _) = trading(&a, &mut b).await;

    let mut seen = BTreeMap::new();
    {
        publish(&publisher, 0..150).await;
        // Every publish is signed and durable at A (its channel counts it as sent)...
        a.wait_channel(ChannelRole::Seller, SECS(20), |l| l.messages == 150).await;
        drop(publisher);
    }
    // ...then A dies without warning, possibly with messages in flight and acks unclaimed.
    a.kill();
    a.start();
    a.wait_ready(SECS(30)).await;
    let publisher = Publisher::connect(a.mqtt, "pub2", SECS(10)).await.unwrap();
    publish(&publisher, 150..250).await;
    collect(&mut subscriber, &mut seen, 250, SECS(45)).await;
    collect(&mut subscriber, &mut seen, 251, Duration::from_millis(500)).await;
    assert_exactly_once(&seen, 0..250);
    close_and_check_settlement(&b, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_restart_neither_duplicates_nor_loses() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("buyer-restart");
    let terms = SellTerms { window: 256, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 2_000 * PRICE_WEI, 3_000);
    let (mut subscriber, publisher, _) = trading(&a, &mut b).await;

    let mut seen = BTreeMap::new();
    publish(&publisher, 0..100).await;
    collect(&mut subscriber, &mut seen, 100, SECS(30)).await;
    assert_eq!(seen.len(), 100);
    // B has acked all of it (so its delivery bookkeeping is durable) and its outbox is empty
    // (its MQTT broker took every message: a crash before that durable removal replays them, the
    // documented duplicate window, which the node closes within a commit of each hand-over), then
    // dies; A goes on publishing into the channel (the messages wait at A, unacked).
    a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 100).await;
    b.wait_channel(ChannelRole::Buyer, SECS(10), |l| l.messages == 100 && l.outbox == 0).await;
    b.kill();
    drop(subscriber);
    publish(&publisher, 100..200).await;
    b.start();
    // The subscriber reconnects within B's restart hold; then the backlog arrives, once.
    let mut subscriber = loop {
        match Subscriber::connect(b.mqtt, "sub", "market/sensors/#", SECS(1)).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    collect(&mut subscriber, &mut seen, 200, SECS(45)).await;
    publish(&publisher, 200..250).await;
    collect(&mut subscriber, &mut seen, 250, SECS(30)).await;
    collect(&mut subscriber, &mut seen, 251, Duration::from_millis(500)).await;
    assert_exactly_once(&seen, 0..250);
    b.wait_ready(SECS(5)).await;
    close_and_check_settlement(&b, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_unauthorised_peers_are_refused() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("hostile");
    let buyer_key = chain.fresh_key().await;
    // A sells only to this buyer.
    let allow = format!("allow = [\"{}\"]", buyer_key.1);
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), &allow);
    a.wait_ready(SECS(30)).await;

    // Garbage, an oversized length prefix, and a truncated frame: the link is closed each time.
    for bytes in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0xff, 0xff, 0xff, 0xff, 1], vec![0, 0, 0, 9, 1, 2]] {
        let mut stream = tokio::net::TcpStream::connect(a.peer).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(SECS(15), stream.read(&mut buf)).await.expect("A answers or closes");
        assert!(matches!(closed, Ok(0) | Err(_)), "A closed the connection on {bytes:?}");
    }

    // A broker that is not on the allow-list authenticates but is refused.
    let mut intruder = BrokerProc::buyer(&dir.0.join("intruder"), chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    intruder.wait_ready(SECS(30)).await;
    // The allowed buyer still buys normally.
    let mut b = BrokerProc::buyer(&dir.0, chain, buyer_key, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    b.wait_ready(SECS(30)).await;
    let line = a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await;
    assert_eq!(line.peer, buyer_key.1);
    assert_eq!(a.channels().await.len(), 1, "no channel for the intruder");
    assert!(intruder.channels().await.is_empty(), "the intruder bought nothing");
    assert!(a.log().contains("not allowed"), "A logged the refusal");
    // A is still healthy after all this.
    let mut subscriber = Subscriber::connect(b.mqtt, "sub", "market/sensors/#", SECS(10)).await.unwrap();
    let publisher = Publisher::connect(a.mqtt, "pub", SECS(10)).await.unwrap();
    publish(&publisher, 0..10).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, 10, SECS(20)).await;
    assert_exactly_once(&seen, 0..10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_with_the_key_it_concerns() {
    let dir = TempDir::new("badconfig");
    let config = dir.0.join("bad.toml");
    std::fs::write(&config, "[mqtt]\nlisten = \"127.0.0.1:1\"\n[chain]\nrpc = \"http://127.0.0.1:9\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_supra-e2e")).args(["run", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chain.judge"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_supra-e2e")).args(["run", "--config"]).arg(dir.0.join("missing.toml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}

/// `mosquitto_pub -q 1` publishes `range` at `port` (one connection, every PUBACK awaited).
fn mosquitto_publish(port: u16, topic: &str, range: std::ops::Range<u64>) {
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    {
        let stdin = publisher.stdin.as_mut().unwrap();
        for i in range {
            stdin.write_all(&payload(i)).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    drop(publisher.stdin.take());
    assert!(publisher.wait().unwrap().success(), "mosquitto_pub succeeded");
}

/// Waits for a `mosquitto_sub -v -C N` to exit after its N messages; returns how many times each
/// reading arrived, all on `topic`.
async fn mosquitto_received(name: &str, child: std::process::Child, topic: &str) -> BTreeMap<u64, u32> {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{name} subscriber: {}", String::from_utf8_lossy(&out.stderr));
    let mut seen = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (t, body) = line.split_once(' ').expect("-v prints `topic payload`");
        assert_eq!(t, topic);
        *seen.entry(index_of(body.as_bytes()).expect("a reading")).or_insert(0) += 1;
    }
    seen
}

/// Issue 17, the stalled stream, as a user met it: W = 16, T_ack 8 s, Δ 2 s; ten messages
/// delivered and acked; the buyer broker is frozen (`kill -STOP`) while twenty more are
/// published, so A fills the window and posts those sixteen on-chain at T_off-ack; the buyer
/// resumes, takes them from the chain and acks them. A must take that ack (before the fix it
/// ignored it, its view stayed at 10 and the window full for good), send the four it held
/// back, and go on with what is published later. Every message arrives once; settlement =
/// delivered x price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_paused_past_t_off_ack_with_a_full_window_catches_up_and_the_stream_goes_on() {
    let _serial = serial().await;
    let chain = chain().await;
    let judge = chain.reader().await;
    let dir = TempDir::new("pause");
    let terms = SellTerms { window: 16, t_ack_secs: 8, t_closure_secs: 10, onchain_delay_secs: 2, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    b.wait_ready(SECS(30)).await;
    a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await;
    let n = 32u64;
    let subscriber = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &b.mqtt.port().to_string(), "-q", "1", "-t", "market/#", "-v", "-C", &n.to_string(), "-W", "180"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    // mosquitto_sub prints nothing once subscribed: wait for B to count its subscription.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_port = a.mqtt.port();
    let posted_before = posted_seqs(&judge, a.address).await.len();

    mosquitto_publish(a_port, "sensors/lab/t", 0..10);
    a.wait_channel(ChannelRole::Seller, SECS(20), |l| l.acked == 10).await;

    b.freeze(true);
    let frozen_at = tokio::time::Instant::now();
    mosquitto_publish(a_port, "sensors/lab/t", 10..30);
    // A sends the sixteen the window allows and, unacked, posts them at T_off-ack (6 s).
    let deadline = std::time::Instant::now() + SECS(60);
    while posted_seqs(&judge, a.address).await.len() - posted_before < 16 {
        assert!(std::time::Instant::now() < deadline, "A posted its full window while B was frozen:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let line = a.wait_channel(ChannelRole::Seller, SECS(5), |_| true).await;
    assert_eq!((line.messages, line.acked), (26, 10), "window full, nothing acked since the pause");
    // The pause itself lasts 25 s, as in the report (the input of the scenario, not a wait for
    // an outcome): long past T_ack, the seller has long settled its view of the postings.
    tokio::time::sleep_until(frozen_at + SECS(25)).await;
    b.freeze(false);

    // B takes the postings from the chain and acks them; A takes that ack and sends the rest.
    a.wait_channel(ChannelRole::Seller, SECS(60), |l| l.acked == 30).await;
    mosquitto_publish(a_port, "sensors/lab/t", 30..n);
    a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.acked == n).await;

    let seen = mosquitto_received("mosquitto_sub", subscriber, "market/sensors/lab/t").await;
    assert_exactly_once(&seen, 0..n);
    close_and_check_settlement(&b, n).await;
}

/// Issue 10, the cooperative close: everything delivered is acked, the buyer runs `supra close`;
/// the seller answers its Stop with its own at the last message, and the channel is settled by
/// `closeCooperatively` at once: `T_closure` is an hour, the test gives it 30 s. The seller is
/// paid delivered x price, the buyer gets the rest. Before, every close waited `T_closure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supra_close_of_a_fully_acked_channel_settles_at_once_cooperatively() {
    let _serial = serial().await;
    let chain = chain().await;
    let judge = chain.reader().await;
    let dir = TempDir::new("cooperative");
    let terms = SellTerms { t_closure_secs: 3_600, ..SellTerms::default() };
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, terms, "");
    a.wait_ready(SECS(30)).await;
    let deposit = 1_000 * PRICE_WEI;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, deposit, 0);
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;
    let from_block = judge.block_number().await.expect("block number");
    let n = 20;
    publish(&publisher, 0..n).await;
    let mut seen = BTreeMap::new();
    collect(&mut subscriber, &mut seen, n as usize, SECS(30)).await;
    assert_exactly_once(&seen, 0..n);
    a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == n).await;

    let asked = std::time::Instant::now();
    let close_block = judge.block_number().await.expect("block number");
    b.close(channel);
    let info = wait_settled(&judge, channel, SECS(30)).await;
    eprintln!("settled {:?} after `supra close` (T_closure: 3600 s)", asked.elapsed());
    let (to_seller, to_buyer) = supra_tests::payouts(&judge, channel, from_block).await;
    assert_eq!(to_seller, U256::from(n * PRICE_WEI), "seller paid delivered x price");
    assert_eq!(to_buyer, U256::from(deposit - n * PRICE_WEI), "the buyer gets the rest");
    assert_eq!(info.claimed, to_seller);
    let latest = judge.block_number().await.expect("block number");
    let events = judge.events(from_block, latest).await.expect("events");
    let cooperative = events.iter().find_map(|e| match e.event {
        supra_judge::JudgeEvent::ClosedCooperatively { channel: c, seq } if c == channel => Some(seq),
        _ => None,
    });
    assert_eq!(cooperative, Some(n - 1), "closed cooperatively at the last message");
    // The close took one transaction, the seller's `closeCooperatively`: no `requestClose` (the
    // buyer holds it back), no claim of the final ack (the close pays it). A refused call leaves
    // no event; the buyer's own fallback comes only after its grace period, with nothing to do.
    use supra_judge::JudgeEvent as E;
    let close_events: Vec<&'static str> = judge
        .events(close_block + 1, latest)
        .await
        .expect("events")
        .iter()
        .filter_map(|e| match &e.event {
            E::Claimed { channel: c, .. } if *c == channel => Some("Claimed"),
            E::CloseRequested { channel: c, .. } if *c == channel => Some("CloseRequested"),
            E::ClosedCooperatively { channel: c, .. } if *c == channel => Some("ClosedCooperatively"),
            E::Settled { channel: c, .. } if *c == channel => Some("Settled"),
            E::PostedClaimRecorded { channel: c, .. } if *c == channel => Some("PostedClaimRecorded"),
            _ => None,
        })
        .collect();
    assert_eq!(close_events, ["ClosedCooperatively", "Settled"], "the close's judge events");
}

/// Four streams sold by A and bought by B, both brokers running their engines on `workers`
/// threads: every message of every stream arrives once and in order, and each channel settles
/// at delivered x price.
async fn several_streams_on_workers(workers: u32) {
    const STREAMS: u64 = 4;
    const PER_STREAM: u64 = 150;
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new(&format!("workers{workers}"));
    let judge_addr = chain.judge;
    let rpc = chain.rpc().to_owned();
    let sells: String = (0..STREAMS)
        .map(|k| format!("[[sell]]\ntopic = \"s{k}/#\"\nprice_wei = {PRICE_WEI}\nwindow = 64\nt_ack_secs = 60\nt_closure_secs = 3\n"))
        .collect();
    let key_a = chain.fresh_key().await;
    let mut a = BrokerProc::spawn_with("seller", &dir.0, &key_a.0, key_a.1, |mqtt, v5, peer| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge_addr}\"\nonchain_delay_secs = 2\npoll_interval_ms = 100\n\
             [peer]\nlisten = \"{peer}\"\n[node]\nworkers = {workers}\n{sells}"
        )
    });
    a.wait_ready(SECS(30)).await;
    let (seller, endpoint) = (a.address, a.peer);
    let buys: String = (0..STREAMS)
        .map(|k| {
            format!(
                "[[buy]]\nseller = \"{seller}\"\nendpoint = \"{endpoint}\"\ntopic = \"s{k}/#\"\n\
                 deposit_wei = {}\nmax_price_wei = {PRICE_WEI}\nlocal_prefix = \"market/\"\n",
                1_000 * PRICE_WEI
            )
        })
        .collect();
    let key_b = chain.fresh_key().await;
    let mut b = BrokerProc::spawn_with("buyer", &dir.0, &key_b.0, key_b.1, |mqtt, v5, _| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge_addr}\"\npoll_interval_ms = 100\n[node]\nworkers = {workers}\n{buys}"
        )
    });
    b.wait_ready(SECS(30)).await;
    let mut subscriber = Subscriber::connect(b.mqtt, "sub", "market/#", SECS(10)).await.expect("subscribe at B");
    let deadline = std::time::Instant::now() + SECS(60);
    while b.channels().await.iter().filter(|l| l.role == ChannelRole::Buyer && l.phase == "open").count() < STREAMS as usize {
        assert!(std::time::Instant::now() < deadline, "{STREAMS} channels not open in time:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.phase == "open").await;
    let publisher = Publisher::connect(a.mqtt, "pub", SECS(10)).await.expect("connect to A");
    // Interleaved across the streams, so that turns carry work for several engines at once.
    for i in 0..PER_STREAM {
        for k in 0..STREAMS {
            publisher.publish(&format!("s{k}/x"), payload(i)).await.expect("publish");
        }
    }
    publisher.wait_acked(STREAMS * PER_STREAM, SECS(30)).await.expect("pubacks");
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let total = (STREAMS * PER_STREAM) as usize;
    let deadline = std::time::Instant::now() + SECS(60);
    let mut received = 0;
    while received < total + 1 {
        // One more than expected, within 500 ms of the last: nothing arrives twice, late.
        let left = if received < total { deadline.saturating_duration_since(std::time::Instant::now()) } else { Duration::from_millis(500) };
        let Some(r) = subscriber.next(left).await else { break };
        per_stream.entry(r.topic.clone()).or_default().push(index_of(&r.payload).expect("payload"));
        received += 1;
    }
    for k in 0..STREAMS {
        let got = per_stream.remove(&format!("market/s{k}/x")).unwrap_or_default();
        assert_eq!(got, (0..PER_STREAM).collect::<Vec<_>>(), "stream s{k}: every message once, in order");
    }
    assert!(per_stream.is_empty(), "unexpected topics {:?}", per_stream.keys());
    // Every channel acked in full at the seller, then settled at delivered x price.
    let lines = b.channels().await;
    let bought: Vec<_> = lines.iter().filter(|l| l.role == ChannelRole::Buyer).collect();
    assert_eq!(bought.len(), STREAMS as usize);
    for line in &bought {
        a.wait_channel(ChannelRole::Seller, SECS(30), |l| l.channel == line.channel && l.acked == PER_STREAM).await;
    }
    let judge = chain.reader().await;
    for line in &bought {
        b.close(line.channel);
    }
    for line in &bought {
        let info = wait_settled(&judge, line.channel, SECS(60)).await;
        assert_eq!(info.claimed, U256::from(PER_STREAM * PRICE_WEI), "channel {}: seller paid delivered x price", line.channel);
        assert_eq!(info.acked, PER_STREAM);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_streams_on_two_workers_arrive_once_in_order_and_are_paid() {
    several_streams_on_workers(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_streams_on_one_worker_arrive_once_in_order_and_are_paid() {
    several_streams_on_workers(1).await;
}
