//! The broker's life as an operator sees it: `supra check` validates a configuration without
//! starting anything, and `supra run` stops gracefully on SIGTERM: it finishes its last commit,
//! closes its links, stops the Anvil it started for `rpc = "auto"`, and loses nothing that a
//! publisher was told was received.

#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use alloy::primitives::U256;
use harness::*;
use supra_broker::probe::Publisher;
use supra_broker::status::ChannelRole;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn supra(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_supra-e2e")).args(args).output().expect("supra runs")
}

#[test]
fn supra_check_validates_a_configuration_without_starting_anything() {
    let dir = TempDir::new("check");
    let key = dir.0.join("broker.key");
    supra_broker::keys::write(&key, &[7u8; 32], true).expect("key");
    let address = supra_broker::keys::load(&key).expect("key loads").0.address();
    let good = "data_dir = \"data\"\nkey_file = \"broker.key\"\n[mqtt]\nlisten = \"127.0.0.1:1\"\n[chain]\nrpc = \"auto\"\n\
                [peer]\nlisten = \"127.0.0.1:2\"\n[[sell]]\ntopic = \"sensors/#\"\nprice_wei = 5\nwindow = 8\nt_ack_secs = 30\nt_closure_secs = 60\n";
    let config = dir.0.join("good.toml");
    std::fs::write(&config, good).unwrap();
    let out = supra(&["check", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": OK") && stdout.contains(&address.to_string()) && stdout.contains("sells `sensors/#` at 5 wei"), "{stdout}");
    // Nothing was started or created: no state directory, and port 1 was never bound.
    assert!(!dir.0.join("data").exists(), "check created the state directory");

    // Each broken configuration: a non-zero exit and an error naming what is wrong.
    let broken = [
        (good.replace("key_file = \"broker.key\"", "key_file = \"missing.key\""), "missing.key"),
        (good.replace("t_ack_secs = 30", "t_ack_secs = 99999999"), "t_ack_secs"),
        (good.replace("listen = \"127.0.0.1:1\"", "listen = \"nowhere\""), "listen"),
        (good.replace("rpc = \"auto\"", "rpc = \"ftp://x\""), "chain.rpc"),
        (format!("{good}\nsurprise = 1\n"), "surprise"),
    ];
    for (i, (text, named)) in broken.iter().enumerate() {
        let config = dir.0.join(format!("broken-{i}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = supra(&["check", "--config", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "broken config {i} passed the check");
        assert!(stderr.contains(named) && !stderr.contains("panicked"), "config {i}: the error should name `{named}`: {stderr}");
    }
}

/// The endpoint of the Anvil a `rpc = "auto"` broker started, read from its log.
fn anvil_endpoint(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("started a private Anvil at "))?;
    let rest = line.split("started a private Anvil at ").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_start_matches("http://").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_broker_and_the_anvil_it_started() {
    let dir = TempDir::new("sigterm-auto");
    let mut broker = BrokerProc::spawn_with("auto", &dir.0, &[9u8; 32], alloy::primitives::Address::ZERO, |mqtt, _, _| {
        format!("data_dir = \"data\"\nkey_file = \"broker.key\"\n[mqtt]\nlisten = \"{mqtt}\"\n[chain]\nrpc = \"auto\"\n")
    });
    broker.wait_ready(SECS(60)).await;
    let anvil = anvil_endpoint(&broker.log()).unwrap_or_else(|| panic!("no Anvil in the log:\n{}", broker.log()));
    assert!(std::net::TcpStream::connect(&anvil).is_ok(), "the broker's Anvil at {anvil} answers while it runs");

    let status = broker.terminate(SECS(20)).await;
    let log = broker.log();
    assert!(status.success(), "SIGTERM should be a clean stop, got {status}:\n{log}");
    assert!(log.contains("SIGTERM: stopping gracefully") && log.contains("stopped cleanly"), "{log}");
    // The Anvil went with it (before, SIGTERM left it running as an orphan).
    assert!(std::net::TcpStream::connect(&anvil).is_err(), "Anvil at {anvil} still runs after the broker stopped:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_loses_nothing_a_publisher_was_told_was_received() {
    let _serial = serial().await;
    let chain = chain().await;
    let dir = TempDir::new("sigterm-stream");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 10_000 * PRICE_WEI, 0);
    let (mut subscriber, publisher, channel) = trading(&a, &mut b).await;

    // A publisher streams at full speed; A is stopped in the middle of it.
    const STREAM: u64 = 50_000;
    let publisher = std::sync::Arc::new(publisher);
    let publishing = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for i in 0..STREAM {
                if publisher.publish(&format!("sensors/room{}/t", i % 4), payload(i)).await.is_err() {
                    break;
                }
            }
        })
    };
    publisher.wait_acked(500, SECS(30)).await.expect("A acknowledges the stream");
    let status = a.terminate(SECS(20)).await;
    publishing.abort();
    // PUBACKs come in publish order: the first `acked` publishes were acknowledged by A.
    let acked = publisher.acked();
    drop(publisher);
    assert!(status.success(), "SIGTERM should be a clean stop, got {status}:\n{}", a.log());
    assert!(a.log().contains("stopped cleanly"), "{}", a.log());
    assert!(acked >= 500 && acked < STREAM, "the stop should fall mid-stream (acked {acked})");

    // Restarted, A sells on; B receives every acknowledged publish, and nothing twice.
    a.start();
    a.wait_ready(SECS(30)).await;
    let publisher = Publisher::connect(a.mqtt, "pub2", SECS(10)).await.unwrap();
    for i in STREAM..STREAM + 100 {
        publisher.publish(&format!("sensors/room{}/t", i % 4), payload(i)).await.expect("publish");
    }
    publisher.wait_acked(100, SECS(60)).await.expect("pubacks after the restart");
    let mut seen = BTreeMap::new();
    // A loaded machine restarts slowly, and the buyer redials with a back-off of up to 10 s.
    let sold = a.wait_channel(ChannelRole::Seller, SECS(60), |l| l.channel == channel && l.acked == l.messages && l.messages >= acked + 100).await.messages;
    collect(&mut subscriber, &mut seen, sold as usize, SECS(45)).await;
    collect(&mut subscriber, &mut seen, sold as usize + 1, Duration::from_millis(500)).await;
    let lost: Vec<u64> = (0..acked).chain(STREAM..STREAM + 100).filter(|i| !seen.contains_key(i)).collect();
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();
    assert!(lost.is_empty() && twice.is_empty(), "lost {lost:?}, twice {twice:?} (acked {acked})");
    assert_eq!(seen.len() as u64, sold, "B got exactly what A sold");
    eprintln!("acked {acked} before the stop; A sold {sold} in all");

    // And B pays exactly what it received.
    let line = b.wait_channel(ChannelRole::Buyer, SECS(10), |l| l.channel == channel).await;
    b.close(line.channel);
    let info = wait_settled(&chain.reader().await, channel, SECS(60)).await;
    assert_eq!(info.claimed, U256::from(sold * PRICE_WEI), "seller paid delivered x price");
}

/// The README's main job: `supra demo` starts its own Anvil, judge, catalogue and test stablecoin, two
/// brokers and real clients; the buyer finds the offer in the catalogue and buys it at runtime; it
/// streams, settles, and checks that the seller was paid exactly delivered x price, in the token.
#[test]
fn the_demo_runs_end_to_end_and_pays_delivered_times_price() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
        .args(["demo", "--messages", "60", "--rate", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("supra demo starts");
    let deadline = std::time::Instant::now() + SECS(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("supra demo did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "supra demo failed ({status}):\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("messages delivered to B's subscriber: 60"), "{stdout}");
    assert!(stdout.contains("B finds in the catalogue: `sensors/#`"), "the buyer discovers the offer: {stdout}");
    assert!(stdout.contains("OK: paid = messages delivered x price (tUSD)"), "{stdout}");
}
