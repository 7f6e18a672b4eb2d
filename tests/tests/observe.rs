//! The operator's view of a running pair of brokers with payments flowing: Prometheus metrics that
//! move by exactly what the traffic did, the same figures as retained `$SYS/supra/...` messages
//! (read by Debian's mosquitto_sub), and the dashboard page rendered by a real headless Chromium
//! (Debian's `chromium`), whose figures must be those of `supra channels --json`.

#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use harness::*;
use supra_broker::probe::Publisher;
use supra_broker::status::{ChannelRole, ChannelStatusLine, format_wei};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// `GET path` on the broker's HTTP server: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("HTTP server at {addr}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, body.to_owned())
}

/// The value of the metric `name` whose labels contain every one of `labels` (`key="value"`).
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|want| rest.contains(want))
        })
        .map(|(_, value)| value.parse().expect("a number"))
        .unwrap_or(0.0)
}

async fn scrape(broker: &BrokerProc) -> String {
    let (status, body) = get(broker.http, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the seller has claimed on-chain, and the buyer sees claimed, exactly `n` messages.
async fn wait_paid(a: &BrokerProc, b: &BrokerProc, n: u64) -> (ChannelStatusLine, ChannelStatusLine) {
    let paid = U256::from(n * PRICE_WEI);
    let seller = a.wait_channel(ChannelRole::Seller, SECS(60), |l| l.acked == n && l.claimed == paid).await;
    let buyer = b.wait_channel(ChannelRole::Buyer, SECS(60), |l| l.messages == n && l.claimed == paid).await;
    (seller, buyer)
}

async fn pair(name: &str) -> (TempDir, BrokerProc, BrokerProc, Publisher) {
    let chain = chain().await;
    let dir = TempDir::new(name);
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms::default(), "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0);
    let (_subscriber, publisher, _) = trading(&a, &mut b).await;
    (dir, a, b, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_sys_topics_move_with_real_traffic() {
    let _serial = serial().await;
    let (_dir, a, b, publisher) = pair("metrics").await;
    let warm_up = 5;
    publish(&publisher, 0..warm_up).await;
    let (line, _) = wait_paid(&a, &b, warm_up).await;
    let channel = format!("channel=\"{}\"", line.channel);
    let (a0, b0) = (scrape(&a).await, scrape(&b).await);

    let n = 40;
    publish(&publisher, warm_up..warm_up + n).await;
    wait_paid(&a, &b, warm_up + n).await;
    let (a1, b1) = (scrape(&a).await, scrape(&b).await);
    let moved = |before: &str, after: &str, name: &str, labels: &[&str]| metric(after, name, labels) - metric(before, name, labels);

    // The buyer delivered n more messages, on that channel; the seller published, signed and sent them.
    assert_eq!(moved(&b0, &b1, "supra_channel_messages", &[&channel, "role=\"buyer\""]), n as f64, "{b1}");
    assert_eq!(moved(&b0, &b1, "supra_channel_delivered_total", &[&channel]), n as f64);
    assert_eq!(moved(&a0, &a1, "supra_channel_messages", &[&channel, "role=\"seller\""]), n as f64);
    for name in ["supra_stream_published_total", "supra_stream_messages_signed_total", "supra_stream_frames_sent_total"] {
        assert_eq!(moved(&a0, &a1, name, &["stream=\"sensors/#\""]), n as f64, "{name}\n{a1}");
    }
    // Paid for exactly: n x price more claimed, on both sides' view of the channel.
    let paid = (n * PRICE_WEI) as f64;
    assert_eq!(moved(&a0, &a1, "supra_channel_wei", &[&channel, "kind=\"claimed\""]), paid, "{a1}");
    assert_eq!(moved(&b0, &b1, "supra_channel_wei", &[&channel, "kind=\"claimed\""]), paid);
    assert_eq!(metric(&a1, "supra_channel_wei", &[&channel, "kind=\"owed\""]), 0.0, "everything acked is claimed");
    // The claims were mined, cost gas, took time; commits were timed; the link is up, once.
    assert!(moved(&a0, &a1, "supra_chain_transactions_total", &["call=\"claim\"", "outcome=\"mined\""]) >= 1.0);
    assert!(moved(&a0, &a1, "supra_chain_gas_used_total", &["call=\"claim\""]) > 0.0);
    assert!(metric(&a1, "supra_chain_transaction_seconds_count", &["call=\"claim\""]) >= 1.0);
    assert!(moved(&b0, &b1, "supra_store_commit_seconds_count", &[]) >= 1.0);
    assert!(moved(&a0, &a1, "supra_node_turn_seconds_count", &[]) >= 1.0, "the node's turns are timed");
    assert_eq!(metric(&b1, "supra_link_up", &["role=\"buyer\""]), 1.0);
    assert_eq!(metric(&b1, "supra_link_reconnects_total", &[]), 0.0);
    assert_eq!(metric(&a1, "supra_chain_rpc_errors_total", &[]), 0.0);

    // The same figure, retained under $SYS/supra on the buyer's embedded broker, for a plain
    // mosquitto_sub that connects now.
    let topic = format!("$SYS/supra/channels/{}/messages", line.channel);
    let want = (warm_up + n).to_string();
    let deadline = Instant::now() + SECS(20);
    loop {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &b.mqtt.port().to_string(), "-t", &topic, "-C", "1", "-W", "5"])
            .stderr(Stdio::piped())
            .output()
            .expect("mosquitto_sub (Debian's mosquitto-clients) runs");
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "{topic}: got `{got}`, want {want} ({})", String::from_utf8_lossy(&out.stderr));
    }
    let (status, _) = get(a.http, "/nowhere").await;
    assert_eq!(status, 404);
}

/// Waits until the dashboard's history took `more` samples (so that its charts show the bursts).
async fn wait_samples(broker: &BrokerProc, more: usize) {
    let count = |body: String| body.matches("\"t_ms\"").count();
    let before = count(get(broker.http, "/api/history").await.1);
    let deadline = Instant::now() + SECS(10);
    while count(get(broker.http, "/api/history").await.1) < before + more {
        assert!(Instant::now() < deadline, "{}: the history takes no samples", broker.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs headless Chromium on `url` and returns the DOM once the page's script rendered.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = TempDir::new(&format!("chromium-{}", rand_suffix()));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--window-size=1280,900",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (Debian's package; scripts/install-tools installs it) runs");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The text (and `data-wei`, if any) of the cell `field` in the row of `channel`.
fn cell(dom: &str, channel: &str, field: &str) -> Option<(String, Option<String>)> {
    let row = dom.find(&format!("data-channel=\"{channel}\""))?;
    let row = &dom[row..row + dom[row..].find("</tr>")?];
    let at = row.find(&format!("data-field=\"{field}\""))?;
    let tag = &row[at..at + row[at..].find('>')?];
    let wei = tag.split_once("data-wei=\"").and_then(|(_, rest)| rest.split_once('"')).map(|(w, _)| w.to_owned());
    let text = &row[at + tag.len() + 1..];
    Some((text[..text.find('<')?].to_owned(), wei))
}

/// Loads the dashboard until it shows `line`'s figures, and checks them against it: messages as
/// printed, paid and deposit as `format_wei` prints them and exactly in `data-wei`.
fn check_page(broker: &BrokerProc, line: &ChannelStatusLine) {
    let url = format!("http://{}/", broker.http);
    let id = line.channel.to_string();
    let deadline = Instant::now() + SECS(60);
    let dom = loop {
        let dom = chromium(&url, &["--dump-dom"]);
        if dom.contains("data-ready=\"1\"") && cell(&dom, &id, "messages").is_some_and(|(text, _)| text == line.messages.to_string()) {
            break dom;
        }
        assert!(Instant::now() < deadline, "{}: the page never showed {} messages:\n{dom}", broker.name, line.messages);
    };
    for (field, wei) in [("claimed", line.claimed), ("deposit", line.deposit), ("price", line.price)] {
        let (text, exact) = cell(&dom, &id, field).unwrap_or_else(|| panic!("no {field} cell:\n{dom}"));
        assert_eq!(text, format_wei(wei), "{}: {field} as shown", broker.name);
        assert_eq!(exact, Some(wei.to_string()), "{}: {field} exactly", broker.name);
    }
    assert_eq!(cell(&dom, &id, "acked").map(|c| c.0), Some(line.acked.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_in_chromium_what_supra_channels_prints() {
    let _serial = serial().await;
    let (_dir, a, b, publisher) = pair("dashboard").await;
    // A few bursts, so that the charts have a history to draw.
    let mut sent = 0;
    for burst in [30, 60, 20, 50] {
        publish(&publisher, sent..sent + burst).await;
        sent += burst;
        wait_paid(&a, &b, sent).await;
        wait_samples(&a, 2).await;
    }
    for broker in [&a, &b] {
        let json = broker.cli(&["channels", "--json"]);
        let lines: Vec<ChannelStatusLine> = serde_json::from_str(&json).expect("supra channels --json");
        assert_eq!(lines.len(), 1, "{json}");
        assert_eq!(lines[0].messages, sent);
        check_page(broker, &lines[0]);
    }
    let txs = get(a.http, "/api/transactions").await.1;
    assert!(txs.contains("\"call\":\"claim\"") && txs.contains("\"tx_hash\":\"0x"), "{txs}");

    // The picture a newcomer sees (the seller's page): SUPRA_DASHBOARD_PNG chooses where it goes.
    let shot = std::env::var_os("SUPRA_DASHBOARD_PNG").map_or_else(|| std::env::temp_dir().join(format!("supra-dashboard-{}.png", std::process::id())), Into::into);
    chromium(&format!("http://{}/", a.http), &[&format!("--screenshot={}", std::path::Path::new(&shot).display())]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a real screenshot, {} bytes", png.len());
    eprintln!("dashboard screenshot: {}", std::path::Path::new(&shot).display());
}
