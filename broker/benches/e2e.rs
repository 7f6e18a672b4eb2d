//! End-to-end bench: publisher on seller A -> Supra channel -> subscriber on buyer B, 256-byte
//! payloads, QoS 1 clients. Printed beside, measured in the same run:
//!   (1) the raw k256 bound: one signature (seller) + one verification (buyer) per message;
//!   (2) a mosquitto -> mosquitto bridge at QoS 1 (Debian's mosquitto), same clients, same load.
//! Targets: throughput >= 60% of the sign+verify bound; p99 latency < 20 ms at 1,000 msg/s.
//!
//! Run: `cargo bench -p supra-broker --bench e2e` (needs scripts/install-tools for Anvil and
//! mosquitto). SUPRA_BENCH_MESSAGES sets the throughput run's size (default 20000).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use supra_broker::config::{BuyConfig, ChainConfig, ChainEndpoint, Config, HttpConfig, MqttConfig, NodeConfig, PeerConfig, SellConfig};
use supra_broker::probe::{Publisher, Subscriber, free_port};
use supra_broker::status::ChannelRole;
use supra_broker::{Broker, devnet_with_judge, keys};
use supra_channel::sign::Keypair;

const PAYLOAD: usize = 256;
const LATENCY_RATE: u64 = 1_000;
const LATENCY_MESSAGES: u64 = 5_000;

fn payload(base: Instant, i: u64) -> Vec<u8> {
    let mut p = vec![0x5a; PAYLOAD];
    p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    p[8..16].copy_from_slice(&i.to_le_bytes());
    p
}

fn sent_at(p: &[u8]) -> u64 {
    p.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn sign_verify_bound() -> (f64, f64, f64) {
    let key = Keypair::from_secret_bytes(&[7u8; 32]).expect("key");
    let digests: Vec<_> = (0..2_000u64).map(|i| alloy_primitives::keccak256(i.to_le_bytes())).collect();
    let start = Instant::now();
    let sigs: Vec<_> = digests.iter().map(|d| key.sign(d)).collect();
    let sign = start.elapsed().as_secs_f64() / digests.len() as f64;
    let start = Instant::now();
    for (d, s) in digests.iter().zip(&sigs) {
        key.public().verify(d, s).expect("valid");
    }
    let verify = start.elapsed().as_secs_f64() / digests.len() as f64;
    (sign * 1e6, verify * 1e6, 1.0 / (sign + verify))
}

/// Latency rounds at the paced rate; the verdict takes the median round (the machine is shared
/// and a single round can catch an unrelated stall).
const LATENCY_ROUNDS: usize = 3;

struct Figures {
    throughput: f64,
    /// (p50, p99) in ms per latency round.
    rounds: Vec<(f64, f64)>,
}

impl Figures {
    /// The round with the median p99.
    fn median(&self) -> (f64, f64) {
        let mut rounds = self.rounds.clone();
        rounds.sort_by(|a, b| a.1.total_cmp(&b.1));
        rounds[rounds.len() / 2]
    }
}

/// Throughput (as fast as QoS 1 allows) then latency rounds at a paced rate, from `publish_to`
/// to `subscribe_at`.
async fn measure(publish_to: SocketAddr, subscribe_at: SocketAddr, topic_in: &str, filter_out: &str, n: u64) -> Figures {
    let mut subscriber = Subscriber::connect(subscribe_at, "bench-sub", filter_out, Duration::from_secs(10)).await.expect("subscriber");
    let publisher = Publisher::connect(publish_to, "bench-pub", Duration::from_secs(10)).await.expect("publisher");
    let base = Instant::now();

    // Throughput: everything at once (the clients keep up to 1000 QoS 1 publishes in flight).
    let start = Instant::now();
    let feeder = {
        let topic = topic_in.to_owned();
        async move {
            for i in 0..n {
                publisher.publish(&topic, payload(base, i)).await.expect("publish");
            }
            publisher
        }
    };
    let receiving = async {
        let mut got = 0;
        while got < n {
            match subscriber.next(Duration::from_secs(60)).await {
                Some(_) => got += 1,
                None => panic!("throughput run stalled at {got}/{n}"),
            }
        }
    };
    let (publisher, ()) = tokio::join!(feeder, receiving);
    let throughput = n as f64 / start.elapsed().as_secs_f64();

    // Latency at a fixed rate, in rounds.
    let interval = Duration::from_micros(1_000_000 / LATENCY_RATE);
    let mut publisher = publisher;
    let mut rounds = Vec::new();
    for _ in 0..LATENCY_ROUNDS {
        let start = Instant::now();
        let topic = topic_in.to_owned();
        let feeder = async move {
            for i in 0..LATENCY_MESSAGES {
                tokio::time::sleep_until((start + interval * i as u32).into()).await;
                publisher.publish(&topic, payload(base, i)).await.expect("publish");
            }
            publisher
        };
        let receiving = async {
            let mut latencies = Vec::with_capacity(LATENCY_MESSAGES as usize);
            while (latencies.len() as u64) < LATENCY_MESSAGES {
                let r = subscriber.next(Duration::from_secs(60)).await.expect("latency run stalled");
                let now = r.at.duration_since(base).as_nanos() as u64;
                latencies.push(now.saturating_sub(sent_at(&r.payload)));
            }
            latencies
        };
        let (back, mut latencies) = tokio::join!(feeder, receiving);
        publisher = back;
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1e6;
        rounds.push((pct(0.50), pct(0.99)));
    }
    Figures { throughput, rounds }
}

fn broker_config(dir: &std::path::Path, name: &str, rpc: &str, judge: alloy_primitives::Address) -> Config {
    Config {
        data_dir: dir.join(name).join("data"),
        key_file: dir.join(name).join("broker.key"),
        key_password: Default::default(),
        mqtt: MqttConfig { restart_hold_ms: 0, sys_interval_secs: 0, ..MqttConfig::listening_on(free_port().unwrap()) },
        external_mqtt: None,
        chain: ChainConfig {
            endpoint: ChainEndpoint::Rpc { url: rpc.into(), judge },
            onchain_delay_secs: 5,
            poll_interval_ms: 500,
            claim_threshold_wei: U256::from(10u64).pow(U256::from(15)),
            confirmations: None,
            replace_after_secs: 30,
            cooperative_close: true,
        },
        peer: PeerConfig::default(),
        node: NodeConfig::default(),
        // Off: the bench measures the message path alone.
        http: HttpConfig { listen: None, ..HttpConfig::default() },
        sell: Vec::new(),
        buy: Vec::new(),
    }
}

async fn supra(n: u64) -> Figures {
    let dir = std::env::temp_dir().join(format!("supra-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (seller_secret, seller_key) = keys::generate();
    let (buyer_secret, buyer_key) = keys::generate();
    let (devnet, judge) = devnet_with_judge(&[seller_key.address(), buyer_key.address()]).await.expect("devnet");
    let price = U256::from(1_000u64);
    let window = 4_096;
    let mut a = broker_config(&dir, "a", devnet.endpoint(), judge);
    let peer = free_port().unwrap();
    a.peer.listen = Some(peer);
    a.sell.push(SellConfig { topic: "bench/#".into(), price_wei: price, window, t_ack_secs: 120, t_closure_secs: 10 });
    let mut b = broker_config(&dir, "b", devnet.endpoint(), judge);
    b.buy.push(BuyConfig {
        seller: seller_key.address(),
        endpoint: peer.to_string(),
        topic: "bench/#".into(),
        deposit_wei: price * U256::from(10 * (n + LATENCY_MESSAGES) + window),
        max_price_wei: price,
        local_prefix: "in/".into(),
        top_up: None,
    });
    for (config, secret) in [(&a, &seller_secret), (&b, &buyer_secret)] {
        std::fs::create_dir_all(config.key_file.parent().unwrap()).unwrap();
        keys::write(&config.key_file, secret, true).unwrap();
    }
    let (a_mqtt, b_mqtt) = (a.mqtt.listen, b.mqtt.listen);
    let seller = Broker::start(a).await.expect("seller");
    let _buyer = Broker::start(b).await.expect("buyer");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = supra_broker::admin::channels(&seller.commands, &seller.judge).await.unwrap_or_default();
        if lines.iter().any(|l| l.role == ChannelRole::Seller && l.phase == "open") {
            break;
        }
        assert!(Instant::now() < deadline, "channel did not open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let figures = measure(a_mqtt, b_mqtt, "bench/x", "in/bench/#", n).await;
    drop(devnet);
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

struct Mosquitto(Child, std::path::PathBuf);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn mosquitto(port: u16, extra: &str) -> Mosquitto {
    let conf = std::env::temp_dir().join(format!("supra-bench-mosquitto-{port}.conf"));
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 100000\n{extra}")).unwrap();
    let child = Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("mosquitto (Debian's package) runs");
    Mosquitto(child, conf)
}

async fn mosquitto_bridge(n: u64) -> Figures {
    let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
    let _receiver = mosquitto(p2.port(), "");
    let _sender = mosquitto(
        p1.port(),
        &format!("connection bench-bridge\naddress {p2}\ntopic bench/# out 1\ncleansession true\nbridge_protocol_version mqttv311\nbridge_max_packet_size 0\n"),
    );
    // Wait until the bridge carries a message.
    let mut probe = loop {
        if let Ok(s) = Subscriber::connect(p2, "bench-probe", "bench/#", Duration::from_secs(2)).await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let publisher = Publisher::connect(p1, "bench-probe-pub", Duration::from_secs(10)).await.expect("mosquitto publisher");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        publisher.publish("bench/probe", vec![0]).await.unwrap();
        if probe.next(Duration::from_millis(200)).await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "mosquitto bridge did not come up");
    }
    drop((probe, publisher));
    measure(p1, p2, "bench/x", "bench/#", n).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("SUPRA_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let (sign, verify, bound) = sign_verify_bound();
    println!("k256: sign {sign:.1} us, verify {verify:.1} us -> sign+verify bound {bound:.0} msg/s");
    let bridge = mosquitto_bridge(n).await;
    let ours = supra(n).await;
    println!("{:<28} {:>12} {:>10} {:>10}   {}", "path (256-byte payloads)", "msg/s", "p50 ms", "p99 ms", "p99 of each latency round");
    println!("{:<28} {:>12.0} {:>10} {:>10}", "k256 sign+verify bound", bound, "-", "-");
    for (name, f) in [("mosquitto bridge QoS 1", &bridge), ("supra A -> B", &ours)] {
        let (p50, p99) = f.median();
        let each: Vec<String> = f.rounds.iter().map(|r| format!("{:.2}", r.1)).collect();
        println!("{name:<28} {:>12.0} {p50:>10.2} {p99:>10.2}   {}", f.throughput, each.join(" "));
    }
    println!("(throughput over {n} messages; latency at {LATENCY_RATE} msg/s, {LATENCY_ROUNDS} rounds of {LATENCY_MESSAGES} messages, median round shown)");
    let share = ours.throughput / bound;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let p99 = ours.median().1;
    println!("{}: supra throughput {:.0}% of the sign+verify bound (target >= 60%)", verdict(share >= 0.6), share * 100.0);
    println!("{}: supra p99 {p99:.2} ms at {LATENCY_RATE} msg/s, median of {LATENCY_ROUNDS} rounds (target < 20 ms)", verdict(p99 < 20.0));
}
