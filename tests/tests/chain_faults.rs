//! The chain is not final: real Anvil reorganisations (`anvil_reorg`) at the dangerous moments of
//! a channel, and a chain whose clock lags the brokers'. Two `supra` broker processes and real
//! MQTT clients, as in `e2e.rs`, but on this binary's own Anvil (a reorganisation would disturb
//! other tests' channels). Every scenario ends settled, with the seller paid exactly delivered x
//! price and both brokers' view of the channel equal to the judge's.

#[path = "e2e/harness.rs"]
#[allow(dead_code)] // what the other end-to-end tests use
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use harness::*;
use supra_broker::probe::Publisher;
use supra_broker::status::ChannelRole;
use supra_channel::types::ChannelId;
use supra_judge::{ChannelInfo, ChannelStatus, Judge, JudgeEvent};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn assert_exactly_once(seen: &BTreeMap<u64, u32>, expected: std::ops::Range<u64>) {
    let missing: Vec<u64> = expected.clone().filter(|i| !seen.contains_key(i)).collect();
    let duplicated: Vec<(u64, u32)> = seen.iter().filter(|(_, n)| **n > 1).map(|(i, n)| (*i, *n)).collect();
    assert!(missing.is_empty() && duplicated.is_empty(), "missing {missing:?}, duplicated {duplicated:?}");
}

/// Anvil RPC the judge client does not wrap (kept here so that these tests also build against
/// a judge client without reorganisation helpers).
async fn anvil(judge: &Judge, method: &'static str, params: impl serde::Serialize + Clone + Send + Sync + std::fmt::Debug + Unpin + 'static) {
    let _: serde_json::Value = judge.provider().raw_request(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"));
}

/// Replaces the blocks from `block` to the head with as many empty blocks: every transaction
/// they held is gone from the chain.
async fn reorg_from(judge: &Judge, block: u64) -> u64 {
    let latest = judge.block_number().await.expect("block number");
    let depth = latest + 1 - block;
    anvil(judge, "anvil_reorg", (depth, Vec::<(serde_json::Value, u64)>::new())).await;
    depth
}

/// Blocks of the judge events that `wanted` accepts, oldest first.
async fn event_blocks(judge: &Judge, wanted: impl Fn(&JudgeEvent) -> bool) -> Vec<u64> {
    let latest = judge.block_number().await.expect("block number");
    judge.events(0, latest).await.expect("events").into_iter().filter(|e| wanted(&e.event)).map(|e| e.block).collect()
}

/// Block of the newest judge event that `wanted` accepts.
async fn event_block(judge: &Judge, wanted: impl Fn(&JudgeEvent) -> bool) -> Option<u64> {
    event_blocks(judge, wanted).await.last().copied()
}

/// The end of every scenario: the channel settles on the judge with the seller paid exactly
/// `delivered` x price, and both brokers come to show the judge's view (settled, same claimed,
/// the same messages acked).
async fn settles_exactly(a: &BrokerProc, b: &BrokerProc, judge: &Judge, channel: ChannelId, delivered: u64) {
    let info = wait_settled(judge, channel, SECS(90)).await;
    assert_eq!(info.claimed, U256::from(delivered * PRICE_WEI), "seller paid delivered x price");
    assert_eq!(info.acked.max(info.posted_claim), delivered, "the claims cover every delivered message");
    let start = Instant::now();
    loop {
        let (sold, bought) = (a.channels().await, b.channels().await);
        let seller = sold.iter().find(|l| l.role == ChannelRole::Seller && l.channel == channel);
        let buyer = bought.iter().find(|l| l.role == ChannelRole::Buyer && l.channel == channel);
        // A seller's engine forgets a channel once it has seen it settled.
        let seller_agrees = seller.is_none_or(|l| l.phase == "settled" && l.claimed == info.claimed && l.acked == delivered);
        let buyer_agrees = buyer.is_some_and(|l| l.phase == "settled" && l.acked == delivered);
        if seller_agrees && buyer_agrees {
            return;
        }
        assert!(start.elapsed() < SECS(20), "the brokers' view differs from the judge's {info:?}:\nseller {seller:?}\nbuyer {buyer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const NO_COOPERATIVE_CLOSE: &str = "cooperative_close = false";

/// A seller and a buyer trading on this binary's chain.
struct Market {
    _dir: TempDir,
    judge: Judge,
    a: BrokerProc,
    b: BrokerProc,
    subscriber: supra_broker::probe::Subscriber,
    publisher: Publisher,
    channel: ChannelId,
    seen: BTreeMap<u64, u32>,
}

impl Market {
    async fn open(name: &str, terms: SellTerms) -> Market {
        Market::start(name, terms, false).await.0
    }

    /// A market whose buyer reaches the seller through a proxy the test can cut or stall.
    async fn open_through_proxy(name: &str, terms: SellTerms) -> (Market, CuttableLink) {
        let (market, link) = Market::start(name, terms, true).await;
        (market, link.expect("a proxy"))
    }

    async fn start(name: &str, terms: SellTerms, proxied: bool) -> (Market, Option<CuttableLink>) {
        let chain = chain().await;
        let dir = TempDir::new(name);
        // Neither side closes cooperatively: every close takes `requestClose` and `settle` after
        // `T_closure`, the calls whose faults these tests inject (e2e.rs covers the cooperative
        // close).
        let seller_chain: &'static str = Box::leak(format!("{}\n{NO_COOPERATIVE_CLOSE}", terms.chain_extra).into_boxed_str());
        let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms { chain_extra: seller_chain, ..terms }, "");
        a.wait_ready(SECS(30)).await;
        let link = if proxied { Some(CuttableLink::to(a.peer).await) } else { None };
        let endpoint = link.as_ref().map_or(a.peer, |l| l.addr);
        let mut b = BrokerProc::buyer_with_chain(&dir.0, chain, chain.fresh_key().await, a.address, endpoint, 1_000 * PRICE_WEI, 0, NO_COOPERATIVE_CLOSE);
        let (subscriber, publisher, channel) = trading(&a, &mut b).await;
        let judge = chain.reader().await;
        (Market { _dir: dir, judge, a, b, subscriber, publisher, channel, seen: BTreeMap::new() }, link)
    }

    /// Publishes `range` at A and waits until B's subscriber got all of it.
    async fn stream(&mut self, range: std::ops::Range<u64>) {
        publish(&self.publisher, range.clone()).await;
        collect(&mut self.subscriber, &mut self.seen, range.end as usize, SECS(45)).await;
    }

    /// Nothing more arrives, and everything arrived once.
    async fn delivered_exactly_once(&mut self, n: u64) {
        collect(&mut self.subscriber, &mut self.seen, n as usize + 1, Duration::from_millis(500)).await;
        assert_exactly_once(&self.seen, 0..n);
    }

    async fn claimed(&self) -> U256 {
        self.judge.channel(self.channel).await.expect("channel view").claimed
    }

    /// Waits until the judge's record of the channel satisfies `ready`; returns how long it took.
    /// On a timeout the failure shows both brokers' chain log: what their chain workers did is
    /// the first thing to read.
    async fn wait_chain(&self, within: Duration, what: &str, ready: impl Fn(&ChannelInfo) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let info = self.judge.channel(self.channel).await.expect("channel view");
            if ready(&info) {
                return start.elapsed();
            }
            let chain_lines = |log: String| log.lines().filter(|l| l.contains("chain")).collect::<Vec<_>>().join("\n");
            assert!(
                start.elapsed() < within,
                "{what} not reached within {within:?}: {info:?}\nseller's chain log:\n{}\nbuyer's chain log:\n{}",
                chain_lines(self.a.log()),
                chain_lines(self.b.log())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the judge has paid the seller for `messages` messages.
    async fn wait_claimed(&self, messages: u64) {
        let paid = U256::from(messages * PRICE_WEI);
        self.wait_chain(SECS(20), &format!("claimed {messages}"), |i| i.claimed == paid).await;
    }

    /// Block of the newest event of this channel that `wanted` accepts.
    async fn newest(&self, what: &str, wanted: impl Fn(&JudgeEvent) -> bool) -> u64 {
        let channel = self.channel;
        let of_channel = |e: &JudgeEvent| match e {
            JudgeEvent::Claimed { channel: c, .. }
            | JudgeEvent::CloseRequested { channel: c, .. }
            | JudgeEvent::Settled { channel: c, .. }
            | JudgeEvent::Accused { channel: c, .. } => *c == channel,
            _ => false,
        };
        event_block(&self.judge, |e| of_channel(e) && wanted(e)).await.unwrap_or_else(|| panic!("no {what} on the chain"))
    }

    /// Reorganises away every block from `block` to the head, checks that `undone` then holds
    /// on the judge, and waits until `redone` holds again (the brokers made again what the
    /// reorganisation removed); prints how long that took.
    async fn reorganise_from(&self, block: u64, what: &str, undone: impl Fn(&ChannelInfo) -> bool, redone: impl Fn(&ChannelInfo) -> bool) {
        let depth = reorg_from(&self.judge, block).await;
        let info = self.judge.channel(self.channel).await.expect("channel view");
        assert!(undone(&info), "the {depth}-block reorganisation took the {what} away: {info:?}");
        let took = self.wait_chain(SECS(30), &format!("{what} again after a {depth}-block reorganisation"), redone).await;
        eprintln!("{what} made again {took:?} after a {depth}-block reorganisation");
    }

    /// `supra close` on the buyer, as an operator would.
    fn close(&self) {
        self.b.close(self.channel);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_tried_before_its_time_on_an_idle_chain_goes_through_when_the_chain_allows_it() {
    let _serial = serial().await;
    let mut m = Market::open("early-settle", SellTerms::default()).await;
    m.stream(0..25).await;
    m.a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 25).await;
    m.wait_claimed(25).await;

    // The chain's clock lags the brokers' by 30 s (skew, slow blocks): the buyer, going by its
    // own clock, settles as soon as it sees the close request, long before the judge allows it.
    let lag = 30;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    anvil(&m.judge, "evm_setTime", (now - lag,)).await;
    m.close();
    // The buyer tries to settle early, and the judge refuses it.
    m.b.wait_log("ClosureNotElapsed", SECS(20)).await;
    // Nothing else happens on the chain from now on: it stays idle until the settle.
    let took = m.wait_chain(SECS(30), "settled", |i| i.status == ChannelStatus::Settled).await;
    eprintln!("settled {took:?} after the early attempt was refused");
    anvil(&m.judge, "evm_setTime", (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),)).await;
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
    m.delivered_exactly_once(25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reorganised_away_mid_stream_is_made_again() {
    let _serial = serial().await;
    let mut m = Market::open("reorg-claim", SellTerms::default()).await;
    m.stream(0..20).await;
    m.wait_claimed(20).await;
    let claim = m.newest("claim", |e| matches!(e, JudgeEvent::Claimed { .. })).await;
    // The seller notices and claims again, without any new ack.
    let paid = U256::from(20 * PRICE_WEI);
    m.reorganise_from(claim, "claim", |i| i.claimed < paid, |i| i.claimed == paid).await;
    m.stream(20..25).await;
    m.delivered_exactly_once(25).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_claim_at_close_reorganised_away_is_made_again() {
    let _serial = serial().await;
    // The seller claims only at close (a high threshold): the final claim is the only one.
    let terms = SellTerms { claim_threshold_wei: 1_000_000 * PRICE_WEI, ..SellTerms::default() };
    let mut m = Market::open("reorg-final-claim", terms).await;
    m.stream(0..25).await;
    m.a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 25).await;
    assert_eq!(m.claimed().await, U256::ZERO, "nothing claimed before the close");
    m.close();
    m.wait_chain(SECS(20), "final claim", |i| i.claimed == U256::from(25 * PRICE_WEI)).await;
    let claim = m.newest("claim", |e| matches!(e, JudgeEvent::Claimed { .. })).await;
    let close = m.newest("close request", |e| matches!(e, JudgeEvent::CloseRequested { .. })).await;
    // Two blocks or more: the final claim and the close request (and whatever came between).
    let paid = U256::from(25 * PRICE_WEI);
    m.reorganise_from(claim.min(close), "final claim", |i| i.claimed < paid, |i| i.claimed == paid).await;
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
    m.delivered_exactly_once(25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_request_reorganised_away_is_made_again() {
    let _serial = serial().await;
    let mut m = Market::open("reorg-close", SellTerms { t_closure_secs: 4, ..SellTerms::default() }).await;
    m.stream(0..25).await;
    m.wait_claimed(25).await;
    m.close();
    m.wait_chain(SECS(20), "closing", |i| i.status == ChannelStatus::Closing).await;
    let close = m.newest("close request", |e| matches!(e, JudgeEvent::CloseRequested { .. })).await;
    m.reorganise_from(close, "close request", |i| i.status == ChannelStatus::Open, |i| i.status != ChannelStatus::Open).await;
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
    m.delivered_exactly_once(25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_reorganised_away_is_made_again() {
    let _serial = serial().await;
    let mut m = Market::open("reorg-settle", SellTerms::default()).await;
    m.stream(0..25).await;
    m.a.wait_channel(ChannelRole::Seller, SECS(10), |l| l.acked == 25).await;
    m.close();
    wait_settled(&m.judge, m.channel, SECS(60)).await;
    let settle = m.newest("settle", |e| matches!(e, JudgeEvent::Settled { .. })).await;
    m.reorganise_from(settle, "settle", |i| i.status == ChannelStatus::Closing, |i| i.status == ChannelStatus::Settled).await;
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
    m.delivered_exactly_once(25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posting_the_buyer_delivered_reorganised_away_is_posted_again_and_not_delivered_twice() {
    let _serial = serial().await;
    // T_ack 6 s, Δ 2 s: an unacked message is posted 4 s after it was sent.
    let terms = SellTerms { window: 32, t_ack_secs: 6, t_closure_secs: 3, onchain_delay_secs: 2, ..SellTerms::default() };
    let (mut m, link) = Market::open_through_proxy("reorg-post", terms).await;
    m.stream(0..10).await;
    // The link goes silent: A sends 10..20 into it, they stay unacked, A posts them, and they
    // reach B only through the chain.
    link.set(Mode::Stalled);
    m.stream(10..20).await;
    let seller = m.a.address;
    let postings = event_blocks(&m.judge, |e| matches!(e, JudgeEvent::Posted { message, .. } if message.stream().seller() == seller && message.seq >= 10)).await;
    // Every posting B delivered goes.
    let first_post = *postings.first().expect("A posted what B could not ack");
    let posted_before = posted_seqs(&m.judge, seller).await;
    let depth = reorg_from(&m.judge, first_post).await;
    assert!(posted_seqs(&m.judge, seller).await.len() < posted_before.len(), "the reorganisation ({depth} blocks) took postings away");
    // A posts them again; B reads the chain again from before the reorganisation and must not
    // hand the re-posted messages to its subscribers a second time.
    let start = Instant::now();
    while posted_seqs(&m.judge, seller).await.len() < posted_before.len() {
        assert!(start.elapsed() < SECS(30), "A posted again what the reorganisation took away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("postings re-mined {:?} after a {depth}-block reorganisation", start.elapsed());
    m.delivered_exactly_once(20).await;
    link.set(Mode::Open);
    m.stream(20..30).await;
    m.delivered_exactly_once(30).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 30).await;
}

/// Mines a block every `interval` (with `base_fee` wei as its base fee, if given) until aborted.
/// A failed request is tried again at the next block: this stands for the chain, and a chain
/// does not stop for a dropped connection.
fn mine_blocks(judge: &Judge, interval: Duration, base_fee: Option<u128>) -> tokio::task::JoinHandle<()> {
    let judge = judge.clone();
    tokio::spawn(async move {
        loop {
            if let Some(fee) = base_fee {
                let _: Result<serde_json::Value, _> = judge.provider().raw_request("anvil_setNextBlockBaseFeePerGas".into(), (format!("{fee:#x}"),)).await;
            }
            let _: Result<serde_json::Value, _> = judge.provider().raw_request("evm_mine".into(), ()).await;
            tokio::time::sleep(interval).await;
        }
    })
}

/// Waits until `sender` has a transaction in the node's pool and returns it (`txpool_content`).
async fn pending_transaction_of(judge: &Judge, sender: alloy::primitives::Address) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let pool: serde_json::Value = judge.provider().raw_request("txpool_content".into(), ()).await.expect("txpool_content");
        let ours = pool["pending"].as_object().and_then(|by_sender| {
            by_sender.iter().find(|(from, _)| from.eq_ignore_ascii_case(&sender.to_string())).map(|(_, txs)| txs.clone())
        });
        if let Some(tx) = ours.and_then(|txs| txs.as_object()?.values().next().cloned()) {
            return tx;
        }
        assert!(start.elapsed() < SECS(20), "{sender} has a transaction in the pool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A market whose seller (with `chain_extra` in its `[chain]`) got 10 messages paid, then, with
/// blocks no longer mined on their own (the caller turns automine on again), has the claim for
/// 10 more waiting in the pool.
async fn claim_waiting_in_the_pool(name: &str, chain_extra: &'static str) -> (Market, serde_json::Value) {
    let mut m = Market::open(name, SellTerms { chain_extra, ..SellTerms::default() }).await;
    m.stream(0..10).await;
    m.wait_claimed(10).await;
    anvil(&m.judge, "evm_setAutomine", (false,)).await;
    m.stream(10..20).await;
    let claim = pending_transaction_of(&m.judge, m.a.address).await;
    (m, claim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_outbid_by_a_fee_spike_is_replaced_with_higher_fees_until_mined() {
    let _serial = serial().await;
    let (mut m, stuck) = claim_waiting_in_the_pool("fee-spike", "replace_after_secs = 1").await;
    // Blocks come on their own from now on, but the base fee of each spikes to three times what
    // the seller's claim offers.
    let offered = u128::from_str_radix(stuck["maxFeePerGas"].as_str().expect("an EIP-1559 fee").trim_start_matches("0x"), 16).expect("hex fee");
    let spike = offered * 3;
    let miner = mine_blocks(&m.judge, Duration::from_millis(250), Some(spike));
    // Anvil drops a transaction its block's base fee exceeds (other nodes keep it pending until
    // `replace_after_secs`): either way A replaces it, each time offering 25 % more, and five
    // replacements outbid the spike.
    let took = m.wait_chain(SECS(30), "claimed 20", |i| i.claimed == U256::from(20 * PRICE_WEI)).await;
    miner.abort();
    anvil(&m.judge, "evm_setAutomine", (true,)).await;
    eprintln!("claim stuck under a fee spike of 3x its max fee mined {took:?} later");
    let replacements = m.a.log().matches(": replacing it with max fee").count();
    assert!(replacements >= 5, "A raised its fees step by step ({replacements} replacements):\n{}", m.a.log());
    m.delivered_exactly_once(20).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_claim_is_sent_again_with_higher_fees() {
    let _serial = serial().await;
    let (mut m, dropped) = claim_waiting_in_the_pool("dropped-claim", "replace_after_secs = 2").await;
    // The pool loses the claim.
    let dropped = dropped["hash"].as_str().expect("a hash").to_owned();
    anvil(&m.judge, "anvil_dropTransaction", (dropped.clone(),)).await;
    anvil(&m.judge, "evm_setAutomine", (true,)).await;
    // Nothing would ever mine the dropped claim: A must send it again (same nonce, higher fees).
    let took = m.wait_chain(SECS(30), "claimed 20", |i| i.claimed == U256::from(20 * PRICE_WEI)).await;
    eprintln!("dropped claim replaced and mined {took:?} after it was dropped");
    assert!(m.a.log().contains("replacing it"), "A replaced the dropped transaction:\n{}", m.a.log());
    m.delivered_exactly_once(20).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waiting_behind_a_reorganised_away_one_is_sent_again_with_the_nonce_the_chain_expects() {
    let _serial = serial().await;
    let (mut m, _waiting) = claim_waiting_in_the_pool("nonce-gap", "").await;
    // The chain loses the first claim while the second waits in the pool: the second's nonce
    // now follows a gap and no block can take it.
    let first = m.newest("claim", |e| matches!(e, JudgeEvent::Claimed { .. })).await;
    let latest = m.judge.block_number().await.unwrap();
    anvil(&m.judge, "anvil_rollback", (Some(latest + 1 - first),)).await;
    assert_eq!(m.claimed().await, U256::ZERO, "the first claim is gone");
    anvil(&m.judge, "evm_setAutomine", (true,)).await;
    anvil(&m.judge, "evm_mine", ()).await;
    let took = m.wait_chain(SECS(30), "claimed 20", |i| i.claimed == U256::from(20 * PRICE_WEI)).await;
    eprintln!("claims made again {took:?} after the gap appeared");
    m.delivered_exactly_once(20).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 20).await;
}

/// A TCP proxy from a buyer to a seller that loses every `Data` frame of one message, however
/// often the seller sends it again: the buyer sees a gap it can only get filled on-chain.
struct LossyLink {
    addr: std::net::SocketAddr,
}

impl LossyLink {
    async fn to(seller: std::net::SocketAddr, lost_seq: u64) -> LossyLink {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            loop {
                let Ok((buyer, _)) = listener.accept().await else { return };
                let Ok(seller) = tokio::net::TcpStream::connect(seller).await else { continue };
                let (mut from_buyer, mut to_buyer) = buyer.into_split();
                let (mut from_seller, mut to_seller) = seller.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_buyer, &mut to_seller).await;
                    let _ = to_seller.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = forward_frames(&mut from_seller, &mut to_buyer, lost_seq).await;
                    let _ = to_buyer.shutdown().await;
                });
            }
        });
        LossyLink { addr }
    }
}

/// Copies link frames (`[u32 length][body]`) one by one, leaving out the `Data` frames of `lost_seq`.
async fn forward_frames(from: &mut tokio::net::tcp::OwnedReadHalf, to: &mut tokio::net::tcp::OwnedWriteHalf, lost_seq: u64) -> std::io::Result<()> {
    use supra_channel::wire::Frame;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut prefix = [0u8; 4];
        from.read_exact(&mut prefix).await?;
        let mut frame = prefix.to_vec();
        frame.resize(4 + u32::from_be_bytes(prefix) as usize, 0);
        from.read_exact(&mut frame[4..]).await?;
        if matches!(Frame::decode(&frame), Ok(Frame::Data(data)) if data.message.seq == lost_seq) {
            continue;
        }
        to.write_all(&frame).await?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accusation_and_its_defence_reorganised_away_end_as_if_defended() {
    let _serial = serial().await;
    // T_ack 20 s, Δ 2 s: A would post a message still unacked 18 s after sending it, B accuses
    // 20 s after it saw a later one, and A then has 20 s to defend.
    let terms = SellTerms { window: 32, t_ack_secs: 20, t_closure_secs: 3, onchain_delay_secs: 2, ..SellTerms::default() };
    let chain = chain().await;
    let dir = TempDir::new("reorg-accusation");
    let anvil_at: std::net::SocketAddr = chain.rpc().trim_start_matches("http://").parse().expect("anvil address");
    let rpc = CuttableLink::to(anvil_at).await;
    let mut a = BrokerProc::seller_via(&dir.0, chain, &format!("http://{}", rpc.addr), chain.fresh_key().await, terms, "");
    a.wait_ready(SECS(30)).await;
    // Message 5 never reaches B over the link.
    let link = LossyLink::to(a.peer, 5).await;
    let mut b = BrokerProc::buyer(&dir.0, chain, chain.fresh_key().await, a.address, link.addr, 1_000 * PRICE_WEI, 0);
    let (subscriber, publisher, channel) = trading(&a, &mut b).await;
    let judge = chain.reader().await;
    let mut m = Market { _dir: dir, judge, a, b, subscriber, publisher, channel, seen: BTreeMap::new() };

    publish(&m.publisher, 0..10).await;
    collect(&mut m.subscriber, &mut m.seen, 5, SECS(10)).await;
    // A cannot reach its node when it should post message 5: B accuses.
    rpc.set_cut(true);
    m.wait_chain(SECS(60), "an accusation", |i| i.dispute.is_some()).await;
    // A's node is back: A posts message 5 and defends; B delivers the rest from the posting.
    rpc.set_cut(false);
    m.wait_chain(SECS(40), "the defence", |i| i.dispute.is_none()).await;
    collect(&mut m.subscriber, &mut m.seen, 10, SECS(20)).await;
    m.delivered_exactly_once(10).await;
    assert_eq!(m.judge.channel(m.channel).await.unwrap().status, ChannelStatus::Open, "the accusation was defended, not upheld");

    // The accusation, the posting, the defence and what followed are reorganised away. Whichever
    // of B's accusation and A's posting comes back first, nothing may be upheld.
    let accused = m.newest("accusation", |e| matches!(e, JudgeEvent::Accused { .. })).await;
    let stream = m.judge.channel(m.channel).await.unwrap().stream;
    let depth = reorg_from(&m.judge, accused).await;
    assert!(m.judge.posting(stream, 5).await.unwrap().is_none(), "the reorganisation ({depth} blocks) took the posting away");
    let start = Instant::now();
    loop {
        let info = m.judge.channel(m.channel).await.unwrap();
        assert_eq!(info.status, ChannelStatus::Open, "the accusation is never upheld: {info:?}");
        if info.dispute.is_none() && m.judge.posting(stream, 5).await.unwrap().is_some() {
            break;
        }
        assert!(start.elapsed() < SECS(40), "A posted message 5 again and no accusation stays open: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("posting and defence made again {:?} after a {depth}-block reorganisation", start.elapsed());
    m.delivered_exactly_once(10).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_confirmations_a_claim_reorganised_away_before_them_is_made_again() {
    let _serial = serial().await;
    let confirming = "confirmations = 2";
    let chain = chain().await;
    let judge = chain.reader().await;
    // Blocks keep coming, as on a real chain (confirmations need blocks on top).
    let miner = mine_blocks(&judge, Duration::from_millis(300), None);
    let dir = TempDir::new("confirmations");
    let mut a = BrokerProc::seller(&dir.0, chain, chain.fresh_key().await, SellTerms { chain_extra: confirming, ..SellTerms::default() }, "");
    a.wait_ready(SECS(30)).await;
    let mut b = BrokerProc::buyer_with_chain(&dir.0, chain, chain.fresh_key().await, a.address, a.peer, 1_000 * PRICE_WEI, 0, confirming);
    let (subscriber, publisher, channel) = trading(&a, &mut b).await;
    let mut m = Market { _dir: dir, judge, a, b, subscriber, publisher, channel, seen: BTreeMap::new() };

    m.stream(0..20).await;
    m.wait_claimed(20).await;
    // The claim is reorganised away at once, before the seller counts it as done.
    let claim = m.newest("claim", |e| matches!(e, JudgeEvent::Claimed { .. })).await;
    let paid = U256::from(20 * PRICE_WEI);
    m.reorganise_from(claim, "unconfirmed claim", |i| i.claimed < paid, |i| i.claimed == paid).await;
    m.stream(20..25).await;
    m.delivered_exactly_once(25).await;
    m.close();
    settles_exactly(&m.a, &m.b, &m.judge, m.channel, 25).await;
    miner.abort();
}
