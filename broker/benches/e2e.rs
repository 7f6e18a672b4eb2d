//! End-to-end bench: publisher on seller A -> Supra channel -> subscriber on buyer B, 256-byte
//! payloads, QoS 1 clients, durable state (redb, fsync'd per node turn). Measured in the same run,
//! with the same clients and the same load:
//!   - a mosquitto -> mosquitto bridge at QoS 1 (Debian's mosquitto, no persistence): the peer;
//!   - the cost of one durable commit on this disk (redb, a small record, fsync'd): the floor that
//!     persist-before-act imposes on Supra's latency (a message is committed on A before it
//!     leaves, and on B before it is acked and delivered);
//!   - during every latency round, the disk itself: a thread commits one small record every 10 ms
//!     in a database of its own, so a stall of the disk shows beside the round it hurt, with
//!     the latency of the round's messages that were not in flight during one (context only:
//!     the verdict counts every message);
//!   - k256 sign and verify, for context.
//!
//! The brokers' warnings go to stderr (RUST_LOG to change): a node turn over 20 ms, or a commit,
//! is reported with where its time went.
//!
//! Targets (issue 11), every one printed with PASS/FAIL; the process exits 1 if any is missed:
//!   - throughput: Supra >= 50% of the bridge's;
//!   - latency at 1,000 msg/s: p50 <= 2 ms and p99 <= 5 ms in EVERY round (each round printed);
//!   - latency at 10 msg/s (nothing may wait for a batch): Supra's p50 <= the bridge's p50 + 2 ms,
//!     and no worse than on main before issue 11 (`SLOW_P50_ON_MAIN_MS`).
//!
//! Every result line is also printed as `SUMMARY\t<figure>\t<value>\t<target>\t<PASS|FAIL>` for
//! `scripts/bench`.
//!
//! Run: `cargo bench -p supra-broker --bench e2e` (needs scripts/install-tools for Anvil and
//! mosquitto). SUPRA_BENCH_MESSAGES sets the throughput run's size (default 20000);
//! SUPRA_BENCH_ONLY=supra skips the bridge (for profiling; targets against the bridge are then not
//! judged and the bench exits 1). SUPRA_BENCH_SAMPLES=<dir> writes every latency round's messages
//! there (`<name>-<round>.tsv`: publish time and latency in ns since `<name>-base.txt`, the run's
//! start in Unix microseconds), to line a tail up with the brokers' logs.

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
const LATENCY_ROUNDS: usize = 3;
/// The low-rate round: 10 msg/s for 6 s.
const SLOW_RATE: u64 = 10;
const SLOW_MESSAGES: u64 = 60;

const TARGET_THROUGHPUT_SHARE: f64 = 0.5;
const TARGET_P50_MS: f64 = 2.0;
const TARGET_P99_MS: f64 = 5.0;
const TARGET_SLOW_P50_OVER_BRIDGE_MS: f64 = 2.0;
/// Supra's p50 at 10 msg/s before issue 11's work: 6.86 ms, measured with this bench on main at
/// bd71b30 on 2026-12-03 (2-core VM, shared with two builds, load average 4.5; the durable commit
/// measured 1.23 ms p50 in that run). The low rate must not get worse than that.
const SLOW_P50_ON_MAIN_MS: f64 = 6.86;

fn payload(base: Instant, i: u64) -> Vec<u8> {
    let mut p = vec![0x5a; PAYLOAD];
    p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    p[8..16].copy_from_slice(&i.to_le_bytes());
    p
}

fn sent_at(p: &[u8]) -> u64 {
    p.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Percentiles of a set of durations in ns, in ms.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    /// Samples above the p99 target.
    over: usize,
    n: usize,
}

impl Latency {
    fn of(mut ns: Vec<u64>) -> Latency {
        ns.sort_unstable();
        let pct = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1e6;
        let over = ns.iter().filter(|&&v| v as f64 / 1e6 > TARGET_P99_MS).count();
        Latency { p50: pct(0.50), p99: pct(0.99), max: *ns.last().unwrap() as f64 / 1e6, over, n: ns.len() }
    }
}

fn sign_verify() -> (f64, f64) {
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
    (sign * 1e6, verify * 1e6)
}

const FLOOR_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("floor");

/// A redb database of its own for measuring the disk, in the same directory tree as the brokers'
/// state; removed on drop.
struct FloorDb {
    dir: std::path::PathBuf,
    db: Option<redb::Database>,
    next: u64,
}

impl FloorDb {
    fn new(label: &str) -> FloorDb {
        let dir = std::env::temp_dir().join(format!("supra-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = redb::Database::create(dir.join("floor.redb")).expect("redb");
        FloorDb { dir, db: Some(db), next: 0 }
    }

    /// One durable commit of one small record (about the size of a signed message record), with
    /// redb's default durability as the broker's store uses; returns its time in ns.
    fn commit(&mut self) -> u64 {
        let record = [0x5au8; 400];
        let start = Instant::now();
        let txn = self.db.as_ref().expect("open").begin_write().unwrap();
        txn.open_table(FLOOR_TABLE).unwrap().insert(self.next, record.as_slice()).unwrap();
        txn.commit().unwrap();
        self.next += 1;
        start.elapsed().as_nanos() as u64
    }
}

impl Drop for FloorDb {
    fn drop(&mut self) {
        drop(self.db.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cost of one durable commit on this disk, `n` times in a row: the floor that
/// persist-before-act imposes on Supra's latency.
fn commit_floor(n: usize) -> Latency {
    let mut db = FloorDb::new("floor");
    Latency::of((0..n).map(|_| db.commit()).collect())
}

/// The disk while a round runs: a thread commits one small record every `DISK_PROBE_EVERY` in a
/// database of its own, so a stall of the disk itself shows beside the round's latency (every
/// message waits for a commit on A and one on B, so no design that persists before it acts can
/// be faster than the disk at that moment).
struct DiskProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Each commit: when it began (ns since the round's `base`) and how long it took.
    thread: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

const DISK_PROBE_EVERY: Duration = Duration::from_millis(10);

impl DiskProbe {
    fn start(base: Instant) -> DiskProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut db = FloorDb::new("probe");
            let mut took = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let at = base.elapsed().as_nanos() as u64;
                took.push((at, db.commit()));
                std::thread::sleep(DISK_PROBE_EVERY);
            }
            took
        });
        DiskProbe { stop, thread }
    }

    /// The probe's commits, and the stalls among them: (start, end) of every commit over the
    /// p99 target, in ns since `base`.
    fn finish(self) -> (Latency, Vec<(u64, u64)>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = self.thread.join().expect("disk probe");
        let stalls = commits.iter().filter(|(_, d)| *d as f64 / 1e6 > TARGET_P99_MS).map(|(at, d)| (*at, at + d)).collect();
        (Latency::of(commits.into_iter().map(|(_, d)| d).collect()), stalls)
    }
}

/// The messages of a round that were not in flight while the disk stalled (see `DiskProbe`):
/// what Supra does beside the floor the disk imposes at that moment. None when a stall held no
/// message (the figure would be the round's own) or every one.
fn clear_of(samples: &Samples, stalls: &[(u64, u64)]) -> Option<Latency> {
    let clear: Vec<u64> = samples
        .iter()
        .filter(|(sent, l)| !stalls.iter().any(|(from, to)| *sent <= *to && sent + l >= *from))
        .map(|(_, l)| *l)
        .collect();
    (!clear.is_empty() && clear.len() < samples.len()).then(|| Latency::of(clear))
}

struct Figures {
    throughput: f64,
    /// Every round at `LATENCY_RATE`, with the disk probe's commits during it.
    rounds: Vec<(Latency, Latency, Option<Latency>)>,
    /// The round at `SLOW_RATE`.
    slow: Latency,
}

/// Each message of a paced round: when it was published and how long it took (ns since `base`).
type Samples = Vec<(u64, u64)>;

/// One paced round: `count` messages at `rate` msg/s; the latency of each, publish to delivery.
async fn paced(publisher: Publisher, subscriber: &mut Subscriber, topic: &str, base: Instant, rate: u64, count: u64) -> (Publisher, Latency, Samples) {
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let topic = topic.to_owned();
    let feeder = async move {
        for i in 0..count {
            tokio::time::sleep_until((start + interval * i as u32).into()).await;
            publisher.publish(&topic, payload(base, i)).await.expect("publish");
        }
        publisher
    };
    let receiving = async {
        let mut samples = Vec::with_capacity(count as usize);
        while (samples.len() as u64) < count {
            let r = subscriber.next(Duration::from_secs(60)).await.expect("latency run stalled");
            let now = r.at.duration_since(base).as_nanos() as u64;
            let sent = sent_at(&r.payload);
            samples.push((sent, now.saturating_sub(sent)));
        }
        samples
    };
    let (publisher, samples) = tokio::join!(feeder, receiving);
    let latency = Latency::of(samples.iter().map(|(_, l)| *l).collect());
    (publisher, latency, samples)
}

/// Throughput (as fast as QoS 1 allows), then latency rounds at the paced rate and one at the low
/// rate, from `publish_to` to `subscribe_at`. Each result is printed as it comes.
async fn measure(name: &str, publish_to: SocketAddr, subscribe_at: SocketAddr, topic_in: &str, filter_out: &str, n: u64) -> Figures {
    let mut subscriber = Subscriber::connect(subscribe_at, "bench-sub", filter_out, Duration::from_secs(10)).await.expect("subscriber");
    let publisher = Publisher::connect(publish_to, "bench-pub", Duration::from_secs(10)).await.expect("publisher");
    let base = Instant::now();
    let samples_dir = std::env::var_os("SUPRA_BENCH_SAMPLES").map(std::path::PathBuf::from);
    if let Some(dir) = &samples_dir {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
        let _ = std::fs::write(dir.join(format!("{name}-base.txt")), unix.to_string());
    }

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
                None => panic!("{name}: throughput run stalled at {got}/{n}"),
            }
        }
    };
    let (mut publisher, ()) = tokio::join!(feeder, receiving);
    let throughput = n as f64 / start.elapsed().as_secs_f64();
    println!("  {name}: throughput {throughput:.0} msg/s over {n} messages");

    let mut rounds = Vec::new();
    for r in 0..LATENCY_ROUNDS {
        let probe = DiskProbe::start(base);
        let (back, l, samples) = paced(publisher, &mut subscriber, topic_in, base, LATENCY_RATE, LATENCY_MESSAGES).await;
        let (disk, stalls) = probe.finish();
        let clear = clear_of(&samples, &stalls);
        if let Some(dir) = &samples_dir {
            let lines: String = samples.iter().map(|(sent, l)| format!("{sent}\t{l}\n")).collect();
            let _ = std::fs::write(dir.join(format!("{name}-{}.tsv", r + 1)), lines);
        }
        publisher = back;
        println!(
            "  {name}: round {} at {LATENCY_RATE} msg/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} of {} over {TARGET_P99_MS} ms | the disk meanwhile (one commit every {} ms): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} of {} over {TARGET_P99_MS} ms",
            r + 1,
            l.p50,
            l.p99,
            l.max,
            l.over,
            l.n,
            DISK_PROBE_EVERY.as_millis(),
            disk.p50,
            disk.p99,
            disk.max,
            disk.over,
            disk.n
        );
        if let Some(c) = &clear {
            println!(
                "  {name}: round {}: the {} messages not in flight while the disk stalled ({} probe commits over {TARGET_P99_MS} ms): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r + 1,
                c.n,
                stalls.len(),
                c.p50,
                c.p99,
                c.max
            );
        }
        rounds.push((l, disk, clear));
    }
    let (_, slow, _) = paced(publisher, &mut subscriber, topic_in, base, SLOW_RATE, SLOW_MESSAGES).await;
    println!("  {name}: round at {SLOW_RATE} msg/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} messages)", slow.p50, slow.p99, slow.max, slow.n);
    Figures { throughput, rounds, slow }
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
            catalogue: None,
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
    a.sell.push(SellConfig { topic: "bench/#".into(), price_wei: price, window, t_ack_secs: 120, t_closure_secs: 10, selling: true, description: String::new(), token: Default::default() });
    let mut b = broker_config(&dir, "b", devnet.endpoint(), judge);
    b.buy.push(BuyConfig {
        seller: seller_key.address(),
        endpoint: peer.to_string(),
        topic: "bench/#".into(),
        deposit_wei: price * U256::from(10 * (n + LATENCY_ROUNDS as u64 * LATENCY_MESSAGES + SLOW_MESSAGES) + window),
        max_price_wei: price,
        local_prefix: "in/".into(),
        top_up: None,
        token: Default::default(),
    });
    a.node.max_backlog = queue_limit(n);
    b.mqtt.max_queued_messages = queue_limit(n) as usize;
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
    let figures = measure("supra", a_mqtt, b_mqtt, "bench/x", "in/bench/#", n).await;
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

/// What each broker under test holds for a receiver that is behind, the same for both: the
/// bridge's mosquitto `max_queued_messages`, Supra's `[node] max_backlog` (the seller keeps every
/// message its buyer has not acked, and stops a buyer further behind) and the buyer broker's
/// `max_queued_messages`. The throughput run publishes all `n` messages at once, faster than the
/// far side takes them, so neither may drop or stop at that size.
fn queue_limit(n: u64) -> u64 {
    n.max(100_000)
}

fn mosquitto(port: u16, queue: u64, extra: &str) -> Mosquitto {
    let conf = std::env::temp_dir().join(format!("supra-bench-mosquitto-{port}.conf"));
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages {queue}\n{extra}")).unwrap();
    let child = Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("mosquitto (Debian's package) runs");
    Mosquitto(child, conf)
}

async fn mosquitto_bridge(n: u64) -> Figures {
    let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
    let _receiver = mosquitto(p2.port(), queue_limit(n), "");
    let _sender = mosquitto(
        p1.port(),
        queue_limit(n),
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
    measure("bridge", p1, p2, "bench/x", "bench/#", n).await
}


/// Verdicts, printed as they are judged and once more as `SUMMARY` lines.
#[derive(Default)]
struct Verdicts(Vec<(String, String, String, bool)>);

impl Verdicts {
    fn judge(&mut self, figure: &str, value: String, target: &str, ok: bool) {
        println!("{}: {figure} = {value} (target {target})", if ok { "PASS" } else { "FAIL" });
        self.0.push((figure.to_owned(), value, target.to_owned(), ok));
    }
    fn info(&mut self, figure: &str, value: String) {
        println!("      {figure} = {value}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("SUPRA_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let only_supra = std::env::var("SUPRA_BENCH_ONLY").is_ok_and(|v| v == "supra");
    // The brokers' warnings (a slow turn says where its time went) on stderr; RUST_LOG for more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).try_init();
    let (sign, verify) = sign_verify();
    println!("k256 (context): sign {sign:.1} us, verify {verify:.1} us -> one of each per message bounds a single core at {:.0} msg/s", 1e6 / (sign + verify));
    let floor = commit_floor(1_000);
    println!(
        "durable commit on this disk (redb, one small record, 1000 commits): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        floor.p50, floor.p99, floor.max
    );
    let bridge = if only_supra {
        None
    } else {
        println!("mosquitto -> mosquitto bridge, QoS 1 (no persistence):");
        Some(mosquitto_bridge(n).await)
    };
    println!("supra A -> B, QoS 1 clients, durable state:");
    let ours = supra(n).await;

    println!();
    let mut v = Verdicts::default();
    v.info("k256 sign / verify (context)", format!("{sign:.1} us / {verify:.1} us"));
    v.info("durable commit p50 / p99 (the floor persist-before-act imposes, paid on A and again on B)", format!("{:.2} ms / {:.2} ms", floor.p50, floor.p99));
    match &bridge {
        Some(bridge) => {
            let share = ours.throughput / bridge.throughput;
            v.judge(
                "e2e throughput, supra / mosquitto bridge",
                format!("{:.0} / {:.0} msg/s = {:.0}%", ours.throughput, bridge.throughput, share * 100.0),
                &format!(">= {:.0}%", TARGET_THROUGHPUT_SHARE * 100.0),
                share >= TARGET_THROUGHPUT_SHARE,
            );
        }
        None => v.judge("e2e throughput, supra / mosquitto bridge", format!("{:.0} msg/s / (bridge not run)", ours.throughput), ">= 50%", false),
    }
    if let Some(bridge) = &bridge {
        for (i, (l, ..)) in bridge.rounds.iter().enumerate() {
            v.info(&format!("bridge latency at {LATENCY_RATE} msg/s, round {}", i + 1), format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", l.p50, l.p99, l.max));
        }
    }
    for (i, (l, disk, clear)) in ours.rounds.iter().enumerate() {
        v.judge(
            &format!("supra latency at {LATENCY_RATE} msg/s, round {} p50 / p99 (max {:.2} ms; the disk meanwhile: commit p99 {:.2} ms, max {:.2} ms)", i + 1, l.max, disk.p99, disk.max),
            format!("{:.2} / {:.2} ms", l.p50, l.p99),
            &format!("<= {TARGET_P50_MS} / <= {TARGET_P99_MS} ms"),
            l.p50 <= TARGET_P50_MS && l.p99 <= TARGET_P99_MS,
        );
        if let Some(c) = clear {
            // Context, not a verdict: the round's judged p99 above counts every message.
            v.info(
                &format!("supra latency at {LATENCY_RATE} msg/s, round {}, the messages not in flight while the disk stalled (context)", i + 1),
                format!("{} of {}: p50 {:.2} ms, p99 {:.2} ms", c.n, l.n, c.p50, c.p99),
            );
        }
    }
    match &bridge {
        Some(bridge) => v.judge(
            &format!("supra latency p50 at {SLOW_RATE} msg/s vs bridge"),
            format!("{:.2} ms (bridge {:.2} ms)", ours.slow.p50, bridge.slow.p50),
            &format!("<= bridge + {TARGET_SLOW_P50_OVER_BRIDGE_MS} ms = {:.2} ms", bridge.slow.p50 + TARGET_SLOW_P50_OVER_BRIDGE_MS),
            ours.slow.p50 <= bridge.slow.p50 + TARGET_SLOW_P50_OVER_BRIDGE_MS,
        ),
        None => v.judge(&format!("supra latency p50 at {SLOW_RATE} msg/s vs bridge"), format!("{:.2} ms (bridge not run)", ours.slow.p50), "<= bridge + 2 ms", false),
    }
    v.judge(
        &format!("supra latency p50 at {SLOW_RATE} msg/s vs main before issue 11"),
        format!("{:.2} ms", ours.slow.p50),
        &format!("<= {SLOW_P50_ON_MAIN_MS} ms (bd71b30)"),
        ours.slow.p50 <= SLOW_P50_ON_MAIN_MS,
    );
    v.info(
        "two durable commits p50 (A's before sending, B's before delivering: the low rate's floor)",
        format!("{:.2} ms", 2.0 * floor.p50),
    );
    println!();
    for (figure, value, target, ok) in &v.0 {
        println!("SUMMARY\t{figure}\t{value}\t{target}\t{}", if *ok { "PASS" } else { "FAIL" });
    }
    println!("SUMMARY\tdurable commit p50 / p99 (context)\t{:.2} / {:.2} ms\t-\tINFO", floor.p50, floor.p99);
    println!("SUMMARY\tk256 sign / verify (context)\t{sign:.1} / {verify:.1} us\t-\tINFO");
    if v.0.iter().any(|(.., ok)| !ok) {
        std::process::exit(1);
    }
}
