//! End-to-end harness: one Anvil with the judge per test binary, brokers as real `supra` processes
//! (so they can be killed and restarted), their configs and keys in temporary directories.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use alloy::primitives::Address;
use supra_broker::admin::{self, Answer, Request};
use supra_broker::probe::{Publisher, Subscriber, free_port};
use supra_broker::status::{ChannelRole, ChannelStatusLine};
use supra_channel::types::ChannelId;
use supra_judge::{ChannelInfo, ChannelStatus, Judge};

pub const PRICE_WEI: u64 = 1_000_000_000;

/// The chain shared by the tests of this binary: the crate's Anvil (killed when the test binary
/// exits) with one judge.
pub struct Chain {
    pub judge: Address,
    reader: Judge,
}

static CHAIN: tokio::sync::OnceCell<Chain> = tokio::sync::OnceCell::const_new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// End-to-end tests run one at a time: each starts several processes on a 2-core machine.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub async fn chain() -> &'static Chain {
    CHAIN
        .get_or_init(|| async {
            let reader = supra_tests::deploy_judge().await;
            Chain { judge: reader.address(), reader }
        })
        .await
}

impl Chain {
    pub fn rpc(&self) -> &str {
        supra_tests::anvil()
    }

    /// A judge client (reads, and tests' own transactions).
    pub async fn reader(&self) -> Judge {
        self.reader.clone()
    }

    /// A fresh funded broker key.
    pub async fn fresh_key(&self) -> ([u8; 32], Address) {
        let secret = supra_tests::fresh_secret();
        let address = supra_channel::sign::Keypair::from_secret_bytes(&secret.0).expect("valid secret").address();
        supra_tests::fund(address, 100).await;
        (secret.0, address)
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("supra-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // SUPRA_KEEP_TEST_DIRS=1 keeps the brokers' logs and state for a post-mortem.
        if std::env::var_os("SUPRA_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A broker process.
pub struct BrokerProc {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub mqtt: SocketAddr,
    pub mqtt_v5: SocketAddr,
    pub peer: SocketAddr,
    /// The HTTP server: /metrics, the dashboard and its API (read by tests/observe.rs).
    #[allow(dead_code)]
    pub http: SocketAddr,
    pub address: Address,
    child: Option<Child>,
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Terms of the stream a seller sells in these tests.
#[derive(Clone, Copy)]
pub struct SellTerms {
    pub window: u64,
    pub t_ack_secs: u32,
    pub t_closure_secs: u32,
    pub onchain_delay_secs: u32,
    /// The seller claims once this much is unclaimed (0: every new ack batch; always at close).
    pub claim_threshold_wei: u64,
    /// More lines for the seller's `[chain]` section.
    pub chain_extra: &'static str,
}

impl Default for SellTerms {
    fn default() -> Self {
        SellTerms { window: 64, t_ack_secs: 60, t_closure_secs: 3, onchain_delay_secs: 2, claim_threshold_wei: 0, chain_extra: "" }
    }
}

impl BrokerProc {
    /// A broker with the configuration `toml` makes of its MQTT, MQTT 5 and peer addresses.
    pub fn spawn_with(name: &str, root: &Path, secret: &[u8; 32], address: Address, toml: impl FnOnce(SocketAddr, SocketAddr, SocketAddr) -> String) -> BrokerProc {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("broker dir");
        supra_broker::keys::write(&dir.join("broker.key"), secret, true).expect("key");
        let (mqtt, mqtt_v5, peer, http) = (free_port().unwrap(), free_port().unwrap(), free_port().unwrap(), free_port().unwrap());
        let config = dir.join("supra.toml");
        // Every broker its own HTTP port (the default one would be shared), $SYS every second and
        // a dashboard sample every 0.5 s so that tests see them move.
        let text = toml(mqtt, mqtt_v5, peer).replacen("[mqtt]\n", "[mqtt]\nsys_interval_secs = 1\n", 1);
        std::fs::write(&config, format!("{text}\n[http]\nlisten = \"{http}\"\nsample_interval_ms = 500\n")).expect("config");
        let mut broker = BrokerProc { name: name.into(), dir, config, mqtt, mqtt_v5, peer, http, address, child: None };
        broker.start();
        broker
    }

    /// A seller of `sensors/#` (and whatever `extra` adds to its `[peer]` section).
    pub fn seller(root: &Path, chain: &Chain, key: ([u8; 32], Address), terms: SellTerms, extra: &str) -> BrokerProc {
        BrokerProc::seller_via(root, chain, chain.rpc(), key, terms, extra)
    }

    /// A seller that reaches the chain through `rpc` (e.g. a proxy the test can cut).
    pub fn seller_via(root: &Path, chain: &Chain, rpc: &str, key: ([u8; 32], Address), terms: SellTerms, extra: &str) -> BrokerProc {
        let (rpc, judge) = (rpc.to_owned(), chain.judge);
        BrokerProc::spawn_with("seller", root, &key.0, key.1, |mqtt, v5, peer| {
            format!(
                "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n\
                 [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\nonchain_delay_secs = {}\npoll_interval_ms = 100\nclaim_threshold_wei = {}\n{}\n\
                 [peer]\nlisten = \"{peer}\"\n{extra}\n\
                 [[sell]]\ntopic = \"sensors/#\"\nprice_wei = {PRICE_WEI}\nwindow = {}\nt_ack_secs = {}\nt_closure_secs = {}\n",
                terms.onchain_delay_secs,
                terms.claim_threshold_wei,
                terms.chain_extra,
                terms.window, terms.t_ack_secs, terms.t_closure_secs
            )
        })
    }

    /// A buyer of the seller's `sensors/#`, republished under `market/`, reaching it at `endpoint`.
    pub fn buyer(root: &Path, chain: &Chain, key: ([u8; 32], Address), seller: Address, endpoint: SocketAddr, deposit_wei: u64, hold_ms: u64) -> BrokerProc {
        BrokerProc::buyer_with_chain(root, chain, key, seller, endpoint, deposit_wei, hold_ms, "")
    }

    /// A buyer with `chain_extra` (lines) added to its `[chain]` section.
    #[allow(clippy::too_many_arguments)]
    pub fn buyer_with_chain(
        root: &Path,
        chain: &Chain,
        key: ([u8; 32], Address),
        seller: Address,
        endpoint: SocketAddr,
        deposit_wei: u64,
        hold_ms: u64,
        chain_extra: &str,
    ) -> BrokerProc {
        let (rpc, judge) = (chain.rpc().to_owned(), chain.judge);
        BrokerProc::spawn_with("buyer", root, &key.0, key.1, |mqtt, v5, _| {
            format!(
                "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\nrestart_hold_ms = {hold_ms}\n\
                 [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\npoll_interval_ms = 100\n{chain_extra}\n\
                 [[buy]]\nseller = \"{seller}\"\nendpoint = \"{endpoint}\"\ntopic = \"sensors/#\"\n\
                 deposit_wei = {deposit_wei}\nmax_price_wei = {PRICE_WEI}\nlocal_prefix = \"market/\"\n"
            )
        })
    }

    /// A seller of `sensors/#` beside the MQTT broker at `url` (external mode; `external_extra`:
    /// more `[mqtt.external]` lines), reaching the chain through `rpc`.
    pub fn external_seller(root: &Path, chain: &Chain, rpc: &str, key: ([u8; 32], Address), url: &str, external_extra: &str) -> BrokerProc {
        let judge = chain.judge;
        BrokerProc::spawn_with("seller", root, &key.0, key.1, |_, _, peer| {
            format!(
                "[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"{url}\"\n{external_extra}\n\
                 [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\nonchain_delay_secs = 2\npoll_interval_ms = 100\nclaim_threshold_wei = 0\n\
                 [peer]\nlisten = \"{peer}\"\n\
                 [[sell]]\ntopic = \"sensors/#\"\nprice_wei = {PRICE_WEI}\nwindow = 64\nt_ack_secs = 60\nt_closure_secs = 3\n"
            )
        })
    }

    /// A buyer of `(seller, endpoint)`'s `sensors/#` beside the MQTT broker at `mqtt`, republished
    /// there under `market/`, with a deposit of 10 000 messages (and `buy_extra` in its `[[buy]]`).
    pub fn external_buyer(root: &Path, chain: &Chain, rpc: &str, key: ([u8; 32], Address), (seller, endpoint): (Address, SocketAddr), mqtt: SocketAddr, buy_extra: &str) -> BrokerProc {
        let judge = chain.judge;
        BrokerProc::spawn_with("buyer", root, &key.0, key.1, |_, _, _| {
            format!(
                "[mqtt]\nmode = \"external\"\nrestart_hold_ms = 0\n[mqtt.external]\nurl = \"mqtt://{mqtt}\"\n\
                 [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\npoll_interval_ms = 100\n\
                 [[buy]]\nseller = \"{seller}\"\nendpoint = \"{endpoint}\"\ntopic = \"sensors/#\"\n\
                 deposit_wei = {}\nmax_price_wei = {PRICE_WEI}\nlocal_prefix = \"market/\"\n{buy_extra}\n",
                10_000 * PRICE_WEI
            )
        })
    }

    /// Whether the process is running (not killed, not exited).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts (or restarts) the process.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("broker.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info,rmqtt=warn,rmqtt_retainer=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("supra starts");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to save anything that was not already durable.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a service manager stops it; waits for the process to exit and returns how.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} still running {within:?} after SIGTERM:\n{}", self.name, self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Freezes (`SIGSTOP`) or resumes (`SIGCONT`) the process, as `kill -STOP` / `kill -CONT`:
    /// its sockets stay open while it runs nothing.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([sig, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// Waits until the process exits by itself, and returns its status (mqtt_access.rs).
    #[allow(dead_code)]
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "{} still runs after {within:?}:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Waits until the operator socket answers (the broker is fully up).
    pub async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Answer::Channels(_)) = admin::ask(&self.data_dir(), &Request::Channels).await {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(Instant::now() < deadline, "{} not ready within {within:?}:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn channels(&self) -> Vec<ChannelStatusLine> {
        match admin::ask(&self.data_dir(), &Request::Channels).await {
            Ok(Answer::Channels(lines)) => lines,
            other => panic!("{}: channels: {other:?}", self.name),
        }
    }

    /// Waits until a channel line satisfies `ready`, and returns it.
    pub async fn wait_channel(&self, role: ChannelRole, within: Duration, ready: impl Fn(&ChannelStatusLine) -> bool) -> ChannelStatusLine {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Answer::Channels(lines)) = admin::ask(&self.data_dir(), &Request::Channels).await
                && let Some(line) = lines.into_iter().find(|l| l.role == role && ready(l))
            {
                return line;
            }
            assert!(Instant::now() < deadline, "{}: channel condition not met within {within:?}:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this broker's log contains `text`.
    pub async fn wait_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "{}: `{text}` not in the log within {within:?}:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `supra close` through the real command line, naming the channel by the short id that the
    /// table of `supra channels` shows (what an operator copies).
    pub fn close(&self, channel: ChannelId) {
        let table = self.cli(&["channels"]);
        let short = supra_broker::status::short_id(channel);
        assert!(table.contains(&short), "`supra channels` shows {short}:\n{table}");
        let said = self.cli(&["close", &short]);
        assert!(said.contains(&channel.to_string()), "supra close names the full id {channel}: {said}");
    }

    /// Runs `supra <command> --config <this broker's config> <args>` and returns its output.
    pub fn cli(&self, command: &[&str]) -> String {
        let out = self.run_cli(command);
        assert!(out.status.success(), "supra {command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `supra <command> --config <this broker's config> <args>`, which must fail, and returns
    /// what it said on standard error.
    pub fn cli_fails(&self, command: &[&str]) -> String {
        let out = self.run_cli(command);
        assert!(!out.status.success(), "supra {command:?} should have failed; it said: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn run_cli(&self, command: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
            .arg(command[0])
            .arg("--config")
            .arg(&self.config)
            .args(&command[1..])
            .output()
            .expect("supra runs")
    }
}

/// Once `b` is up and buying from `a`: a QoS 1 subscriber on B's `market/sensors/#`, a QoS 1
/// publisher on A, and the open channel.
pub async fn trading(a: &BrokerProc, b: &mut BrokerProc) -> (Subscriber, Publisher, ChannelId) {
    b.wait_ready(Duration::from_secs(30)).await;
    let subscriber = Subscriber::connect(b.mqtt, "sub", "market/sensors/#", Duration::from_secs(10)).await.expect("subscribe at B");
    let channel = a.wait_channel(ChannelRole::Seller, Duration::from_secs(30), |l| l.phase == "open").await.channel;
    let publisher = Publisher::connect(a.mqtt, "pub", Duration::from_secs(10)).await.expect("connect to A");
    (subscriber, publisher, channel)
}

/// Waits until the judge says the channel is settled.
pub async fn wait_settled(judge: &Judge, channel: ChannelId, within: Duration) -> ChannelInfo {
    let deadline = Instant::now() + within;
    loop {
        let info = judge.channel(channel).await.expect("channel view");
        if info.status == ChannelStatus::Settled {
            return info;
        }
        assert!(Instant::now() < deadline, "channel {channel} not settled within {within:?}: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Seqs of the messages `seller` posted, in the whole chain history.
pub async fn posted_seqs(judge: &Judge, seller: Address) -> Vec<u64> {
    let latest = judge.block_number().await.expect("block number");
    judge
        .events(0, latest)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.event {
            supra_judge::JudgeEvent::Posted { message, .. } if message.stream().seller() == seller => Some(message.seq),
            _ => None,
        })
        .collect()
}

/// Publishes `range` at A with QoS 1 and waits for every PUBACK.
pub async fn publish(publisher: &Publisher, range: std::ops::Range<u64>) {
    let before = publisher.acked();
    for i in range.clone() {
        publisher.publish(&format!("sensors/room{}/t", i % 4), payload(i)).await.expect("publish");
    }
    publisher.wait_acked(before + range.end - range.start, Duration::from_secs(30)).await.expect("pubacks");
}

/// Every index of `expected` seen exactly once, and nothing else.
pub fn assert_exactly_once(seen: &std::collections::BTreeMap<u64, u32>, expected: std::ops::Range<u64>) {
    let missing: Vec<u64> = expected.clone().filter(|i| !seen.contains_key(i)).collect();
    let duplicated: Vec<(u64, u32)> = seen.iter().filter(|(_, n)| **n > 1).map(|(i, n)| (*i, *n)).collect();
    let unexpected: Vec<u64> = seen.keys().copied().filter(|i| !expected.contains(i)).collect();
    assert!(missing.is_empty() && duplicated.is_empty() && unexpected.is_empty(), "missing {missing:?}, duplicated {duplicated:?}, unexpected {unexpected:?}");
}

/// The payload of message `i` in these tests, and back.
pub fn payload(i: u64) -> Vec<u8> {
    format!("reading {i:06}").into_bytes()
}

pub fn index_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.strip_prefix("reading ")?.parse().ok()
}

/// Collects messages from a subscriber until `count` distinct indices arrived or `within` passed;
/// returns how many times each index arrived.
pub async fn collect(subscriber: &mut supra_broker::probe::Subscriber, seen: &mut std::collections::BTreeMap<u64, u32>, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while seen.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(r) = subscriber.next(left).await {
            let i = index_of(&r.payload).unwrap_or_else(|| panic!("unexpected payload on {}: {:?}", r.topic, r.payload));
            *seen.entry(i).or_insert(0) += 1;
        }
    }
}

/// What a [`CuttableLink`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    /// Drops every connection and refuses new ones.
    Cut,
    /// Keeps connections open but forwards nothing (a network that silently lost them).
    Stalled,
}

/// A TCP proxy between two parties that the test can cut or stall.
pub struct CuttableLink {
    pub addr: std::net::SocketAddr,
    mode: tokio::sync::watch::Sender<Mode>,
}

impl CuttableLink {
    pub async fn to(target: std::net::SocketAddr) -> CuttableLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watch) = tokio::sync::watch::channel(Mode::Open);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                if *watch.borrow() != Mode::Open {
                    continue; // dropped: refused while cut or stalled
                }
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let (w1, w2) = (watch.clone(), watch.clone());
                let mut cut = watch.clone();
                let pumps = async move {
                    tokio::select! { _ = pump(ri, wo, w1) => {}, _ = pump(ro, wi, w2) => {} }
                };
                tokio::spawn(async move {
                    tokio::select! { _ = pumps => {}, _ = cut.wait_for(|m| *m == Mode::Cut) => {} }
                });
            }
        });
        CuttableLink { addr, mode }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn set_cut(&self, cut: bool) {
        self.set(if cut { Mode::Cut } else { Mode::Open });
    }
}

/// Copies bytes one way while the link is open; holds them while it is stalled.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut mode: tokio::sync::watch::Receiver<Mode>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536];
    loop {
        if mode.wait_for(|m| *m != Mode::Stalled).await.is_err() {
            return Ok(());
        }
        let n = tokio::select! {
            n = from.read(&mut buf) => n?,
            _ = mode.wait_for(|m| *m == Mode::Stalled) => continue,
        };
        match *mode.borrow() {
            // Bytes read just as the link stalled are lost, as on a dead network; so is the end
            // of a peer killed just after the stall (the read may see its EOF before this task
            // sees the stall: checked first, the other side never learns of it).
            Mode::Stalled => continue,
            // Cut: nothing read after `set_cut` returned goes through. The connection's task
            // drops it when it next runs, and that can be milliseconds later on a busy machine:
            // a whole batch of frames sent meanwhile once crossed a link the test had cut.
            Mode::Cut => return Ok(()),
            Mode::Open => {}
        }
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// A Debian mosquitto on a loopback port of its own, stopped on drop. With `persistent`, it keeps
/// sessions and queued messages across [`Mosquitto::restart`] (saved at a clean stop).
pub struct Mosquitto {
    pub addr: SocketAddr,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path, persistent: bool) -> Mosquitto {
        Mosquitto::start_with(dir, persistent, "allow_anonymous true\n")
    }

    /// With `settings` (mosquitto.conf lines) instead of `allow_anonymous true`.
    pub fn start_with(dir: &Path, persistent: bool, settings: &str) -> Mosquitto {
        std::fs::create_dir_all(dir).expect("mosquitto dir");
        let addr = free_port().expect("a free port");
        let conf = dir.join("mosquitto.conf");
        let mut text = format!("listener {} 127.0.0.1\n{settings}max_queued_messages 0\n", addr.port());
        if persistent {
            text += &format!("persistence true\npersistence_location {}/\n", dir.display());
            // Started as root, mosquitto runs as the `mosquitto` user: it must be able to save there.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        std::fs::write(&conf, text).expect("mosquitto.conf");
        let mut mosquitto = Mosquitto { addr, conf, child: None };
        mosquitto.spawn();
        mosquitto
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/install-tools installs Debian's mosquitto)");
        self.child = Some(child);
    }

    /// SIGTERM (mosquitto saves its sessions), then the same broker again on the same port.
    pub async fn restart(&mut self, within: Duration) {
        self.stop();
        self.spawn();
        self.wait_listening(within).await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn wait_listening(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(Instant::now() < deadline, "mosquitto at {} does not listen", self.addr);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a CA (`ca.crt`), a server certificate for 127.0.0.1 (`server.crt`, `server.key`) and a
/// client certificate (`client.crt`, `client.key`) in `dir`, with the openssl CLI. Test keys only:
/// readable by everyone, so that a mosquitto running as its own user can load them.
pub fn make_pki(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Extensions make X.509 v3 certificates (webpki refuses v1).
    std::fs::write(dir.join("server.ext"), "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    run(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=supra test CA"]);
    for name in ["server", "client"] {
        run(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}")]);
        let (csr, crt, ext) = (format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        run(&["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", &crt, "-days", "2", "-extfile", &ext]);
    }
    use std::os::unix::fs::PermissionsExt;
    for name in ["server.key", "client.key"] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
}
