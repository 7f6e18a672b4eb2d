//! Engine benchmark (`cargo bench -p supra-channel --bench engine`).
//!
//! Prints k256 sign/verify times, the raw bound `1 / (sign + verify)` measured in the same run,
//! then end-to-end engine throughput for one stream with 1 and with 50 buyers (zero-latency
//! in-process link: frames are encoded, decoded and handled on both sides, real k256 keys), the
//! seller's CPU per message in both cases (the thread's CPU clock), and the memory the engines hold (a counting global
//! allocator: bytes requested and not yet freed). Targets, judged in EVERY round (each printed);
//! the process exits 1 if any is missed:
//! - engine (1 buyer) >= 80% of the raw sign+verify bound;
//! - fan-out (issue 11): the seller's CPU per message with 50 buyers <= 1.5x with 1 buyer, beyond
//!   the checks of the buyers' ack signatures that the window requires (one per buyer per W
//!   messages: a floor of the protocol, printed beside, with the all-included ratio); and no more
//!   checks than that. Measured at the engine level (the seller `Stream` with 1 and with 50
//!   channels, messages published `TURN_BATCH` at a time, one batch signature each); the broker's
//!   link writes are not counted;
//! - memory: a seller's idle channel <= 64 KiB, a buyer's idle channel <= 256 KiB, a stream <= 256
//!   KiB (see `MEMORY_*` for why these bounds). Idle: 300 messages of 256 bytes sent, every one
//!   acked, then quiet.
//!
//! Every verdict is also printed as `SUMMARY\t<figure>\t<value>\t<target>\t<PASS|FAIL>` for
//! `scripts/bench`.

/// Messages published per turn, as one batch under one signature (issue 11): what a broker's node
/// takes from its MQTT clients in one turn at a high rate (the e2e bench sees 20-60).
const TURN_BATCH: u64 = 32;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, keccak256};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::testkit::test_key;
use supra_channel::*;

/// Counts the bytes the program holds (requested and not yet freed; the allocator's own overhead
/// is not counted).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Bytes freed by dropping `x`: what it held.
fn held<T>(x: T) -> isize {
    let before = live();
    drop(x);
    before - live()
}

/// Bounds on memory. A broker selling to thousands of buyers holds one channel per buyer: at 64
/// KiB each, 10 000 idle channels take 640 MiB, the most a small VM can spare; the seller channel
/// keeps a few scalars, the buyer's latest signed statements and ack state, so anything near the
/// bound would mean a buffer kept per idle channel (a window of messages, a reorder buffer). A
/// stream with no channel holds its sealer and an empty log: 256 KiB leaves room for buffers
/// sized to the window, never for messages of an idle stream.
const MEMORY_SELLER_CHANNEL: isize = 64 * 1024;
/// A buyer's channel keeps, as evidence against equivocation, its last `equivocation_memory` (256)
/// delivered messages with their batch proofs (message 112 B, batch and signature 145 B, a path of
/// up to 8 hashes, ~650 B in all with their bookkeeping): ~170 KiB, bounded at 256 KiB. A buyer
/// broker holds one channel per stream it buys (hundreds, not the seller's thousands).
const MEMORY_BUYER_CHANNEL: isize = 256 * 1024;
const MEMORY_STREAM: isize = 256 * 1024;
/// Fan-out target: seller CPU per message with 50 buyers over 1 buyer, beyond the acks'
/// signature checks that the window requires (see `main`).
const FANOUT_TARGET: f64 = 1.5;
/// Interleaved pairs of runs (1 buyer, 50 buyers) behind each round's fan-out verdict.
const FANOUT_PAIRS: usize = 5;
/// The channels' window W (the broker's default).
const WINDOW: u64 = 256;
/// A window no run fills, with no verification interval, so that no ack check is due: the
/// fan-out beyond the checks the window and the interval require.
const NO_CHECK_WINDOW: u64 = 1 << 20;
/// Engine (1 buyer) throughput over the sign+verify bound.
const ENGINE_SHARE_TARGET: f64 = 0.8;

const T0: u64 = 1_700_000_000_000;
/// Virtual publication rate of the engine runs (5 msgs per ms = 5000 msgs/s).
const VIRTUAL_MSGS_PER_MS: u64 = 5;

/// This thread's CPU clock: the seller's cost is timed with it, so that other processes of a
/// shared machine (builds, other benches) running meanwhile are not counted as the seller's.
#[derive(Clone, Copy)]
struct CpuInstant(Duration);

impl CpuInstant {
    fn now() -> CpuInstant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to write.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        CpuInstant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(&self) -> Duration {
        CpuInstant::now().0.saturating_sub(self.0)
    }
}

fn per_op(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn crypto() -> (f64, f64, f64, f64) {
    let key = test_key("bench", 0);
    let sk = k256::ecdsa::SigningKey::from_slice(&keccak256(b"bench key").0).unwrap();
    let vk = *sk.verifying_key();
    let n = 1000u64;
    let digests: Vec<B256> = (0..n).map(|i| keccak256(i.to_be_bytes())).collect();
    // warm-up
    for d in digests.iter().take(200) {
        black_box(sk.sign_prehash_recoverable(d.as_slice()));
    }
    let t = Instant::now();
    let sigs: Vec<_> = digests
        .iter()
        .map(|d| sk.sign_prehash_recoverable(d.as_slice()).0)
        .collect();
    let sign = per_op(t.elapsed(), n);
    let t = Instant::now();
    for (d, s) in digests.iter().zip(&sigs) {
        vk.verify_prehash(d.as_slice(), s).unwrap();
    }
    let verify = per_op(t.elapsed(), n);
    // Our paths: Keypair::sign, PublicKey::verify (known key), sign::verify (recovery).
    let ours: Vec<Signature> = digests.iter().map(|d| key.sign(d)).collect();
    let t = Instant::now();
    for (d, s) in digests.iter().zip(&ours) {
        key.public().verify(d, s).unwrap();
    }
    let fast = per_op(t.elapsed(), n);
    let t = Instant::now();
    for (d, s) in digests.iter().zip(&ours) {
        supra_channel::sign::verify(d, s, key.address()).unwrap();
    }
    let recover = per_op(t.elapsed(), n);
    (sign, verify, fast, recover)
}

#[derive(Clone, Copy)]
struct Run {
    msgs_per_s: f64,
    seller_us_per_msg: f64,
    acks: u64,
    verified: u64,
    ack_us_per_msg: f64,
    publish_us_per_msg: f64,
    rotation_ms: f64,
}

/// A stream with `buyers` open channels (real k256 keys, deposits of 1 ether), the handshake's
/// frames (offer, opened) exchanged by the calls themselves and their actions drained: the
/// stream, its buyers' channels, and their addresses.
fn stream_with_buyers(buyers: usize, window: u64) -> (Stream, Vec<BuyerChannel>, Vec<Address>) {
    let domain = Domain::new(31337, Address::repeat_byte(0x42));
    let skey = test_key("s", 0);
    let sid = StreamId::new(skey.address(), 1).unwrap();
    let terms = Terms {
        price: U256::from(1_000u64),
        token: Default::default(),
        window,
        t_ack_secs: 60,
        t_closure_secs: 600,
        offer_validity_secs: 600,
    };
    // With the window no run fills, no check is due by time either (the seller verifies a pending
    // ack at least every `ack_verify_interval_ms`, 250 ms by default).
    let cfg = if window == NO_CHECK_WINDOW {
        SellerConfig { ack_verify_interval_ms: u64::MAX / 4, ..SellerConfig::default() }
    } else {
        SellerConfig::default()
    };
    let mut seller = Stream::new(domain, skey, sid, terms, cfg).unwrap();
    let mut chans = Vec::new();
    let mut peers = Vec::new();
    for i in 0..buyers {
        let bkey = test_key("b", i as u64);
        let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
        let c = BuyerChannel::new(domain, bkey.clone(), offer, sig, BuyerConfig::default(), T0)
            .unwrap();
        seller
            .open_channel(T0, c.id(), U256::from(10u64).pow(U256::from(18u64)))
            .unwrap();
        peers.push(bkey.address());
        chans.push(c);
    }
    seller.drain_actions();
    for c in chans.iter_mut() {
        c.drain_actions();
    }
    (seller, chans, peers)
}

fn engine(buyers: usize, n: u64, payload_len: usize, window: u64) -> Run {
    let (mut seller, mut chans, peers) = stream_with_buyers(buyers, window);
    // The first message of the stream starts the sealing epoch of its members and carries one
    // key grant (ECDH) per buyer: a membership event, measured apart.
    let t = Instant::now();
    seller.publish(T0, &[0u8; 8]).unwrap();
    let rotation = t.elapsed();
    for a in seller.drain_actions() {
        if let SellerAction::Send { peer, frames } = a {
            let i = peers.iter().position(|p| *p == peer).unwrap();
            for frame in frames.iter().cloned() {
                chans[i]
                    .handle_frame(T0, Frame::decode(&frame).unwrap())
                    .unwrap();
            }
            chans[i].drain_actions().for_each(drop);
        }
    }
    let index: std::collections::HashMap<Address, usize> =
        peers.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let payload = vec![0x5au8; payload_len];
    let mut seller_time = Duration::ZERO;
    let mut ack_time = Duration::ZERO;
    let mut publish_time = Duration::ZERO;
    let mut to_buyers: Vec<(usize, FrameBytes)> = Vec::new();
    let mut actions: Vec<SellerAction> = Vec::with_capacity(4 * buyers + 16);
    // The buyers run on a thread of their own, in lockstep with the seller, as they would on
    // machines of their own: their work is neither timed as the seller's (the seller is timed on
    // its thread's CPU clock) nor evicts the seller's state from its core's caches.
    type Turn = (UnixMs, Vec<(usize, FrameBytes)>);
    let (frames_tx, frames_rx) = std::sync::mpsc::channel::<Turn>();
    let (acks_tx, acks_rx) = std::sync::mpsc::channel::<Vec<(Address, FrameBytes)>>();
    let buyers_thread = std::thread::spawn(move || {
        let mut delivered = 0u64;
        for (now, frames) in frames_rx {
            let mut to_seller = Vec::new();
            for (i, frame) in frames {
                let c = &mut chans[i];
                c.handle_frame(now, Frame::decode(&frame).unwrap()).unwrap();
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now).unwrap();
                }
                for a in c.drain_actions() {
                    match a {
                        BuyerAction::Send(f) => to_seller.push((peers[i], f)),
                        BuyerAction::Deliver { payload, .. } => {
                            delivered += 1;
                            black_box(payload);
                        }
                        other => {
                            black_box(other);
                        }
                    }
                }
            }
            if acks_tx.send(to_seller).is_err() {
                break;
            }
        }
        delivered
    });
    let start = Instant::now();
    // Virtual clock at a fixed publication rate, the same for every run: as if each buyer ran on
    // its own machine, so ack delays and timers fire at the pace of the stream, not of this
    // simulation of 50 buyers on one thread.
    let mut msg_index = 0u64;
    let clock = |i: &u64| T0 + 1 + i / VIRTUAL_MSGS_PER_MS;
    let batch: Vec<&[u8]> = vec![payload.as_slice(); TURN_BATCH as usize];
    let route = |actions: &mut Vec<SellerAction>, to_buyers: &mut Vec<(usize, FrameBytes)>| {
        // Routing frames to links is the broker's job: not counted as seller cost.
        for a in actions.drain(..) {
            match a {
                SellerAction::Send { peer, frames } => {
                    let i = index[&peer];
                    to_buyers.extend(frames.iter().map(|f| (i, f.clone())));
                }
                other => {
                    black_box(other);
                }
            }
        }
    };
    while msg_index < n {
        let k = TURN_BATCH.min(n - msg_index);
        msg_index += k;
        // Seller: publish what one turn of a broker brings (one batch signature), hand out frames.
        let t = CpuInstant::now();
        let now = clock(&msg_index);
        let tp = Instant::now();
        seller.publish_batch(now, &batch[..k as usize]).unwrap();
        publish_time += tp.elapsed();
        if seller.poll_timeout().is_some_and(|t| t <= now) {
            seller.handle_timeout(now);
        }
        actions.extend(seller.drain_actions());
        seller_time += t.elapsed();
        route(&mut actions, &mut to_buyers);
        // Buyers.
        frames_tx.send((now, std::mem::take(&mut to_buyers))).unwrap();
        let to_seller = wait_spinning(&acks_rx);
        // Seller: acks.
        let t = CpuInstant::now();
        for (peer, frame) in to_seller {
            let f = Frame::decode(&frame).unwrap();
            seller.handle_frame(now, peer, f).unwrap();
        }
        actions.extend(seller.drain_actions());
        seller_time += t.elapsed();
        ack_time += t.elapsed();
        route(&mut actions, &mut to_buyers);
    }
    // What the last acks released (nothing when every window is open) reaches the buyers too.
    frames_tx.send((clock(&msg_index), std::mem::take(&mut to_buyers))).unwrap();
    drop(frames_tx);
    let delivered = buyers_thread.join().unwrap();
    let total = start.elapsed();
    assert_eq!(
        delivered,
        n * buyers as u64,
        "every message delivered to every buyer"
    );
    let st = seller.stats();
    Run {
        msgs_per_s: n as f64 / total.as_secs_f64(),
        seller_us_per_msg: per_op(seller_time, n),
        acks: st.acks_received,
        verified: st.acks_verified,
        ack_us_per_msg: per_op(ack_time, n),
        publish_us_per_msg: per_op(publish_time, n),
        rotation_ms: rotation.as_secs_f64() * 1e3,
    }
}

/// Waits for the buyers' thread without sleeping (its spin is not timed). A seller that blocks
/// lets its vCPU halt, and the wakeup and the caches cooled meanwhile were charged to its next
/// turn, in proportion to how long the lockstep simulation of the buyers took: 50 buyers on one
/// thread take 50 times longer than one, which real buyers on machines of their own do not. It
/// moved the 1-buyer seller by +-30 % run to run and the fan-out ratio with it.
fn wait_spinning<T>(rx: &std::sync::mpsc::Receiver<T>) -> T {
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
            Err(e) => panic!("the buyers' thread stopped: {e}"),
        }
    }
}

/// Memory held by a stream with `buyers` channels once traffic is over and every message is
/// acked: (the stream's bytes, each buyer channel's bytes).
fn memory(buyers: usize, msgs: u64) -> (isize, Vec<isize>) {
    let (mut seller, mut chans, peers) = stream_with_buyers(buyers, WINDOW);
    let mut now = T0;
    let payload = vec![0x5au8; 256];
    // Publish `msgs` messages, then let time pass (acks flushed by their timers) until the links
    // are quiet.
    for step in 0..msgs + 20 {
        if step < msgs {
            now += 1;
            seller.publish(now, &payload).unwrap();
        } else {
            now += 1_000;
        }
        let mut quiet = false;
        while !quiet {
            quiet = true;
            if seller.poll_timeout().is_some_and(|t| t <= now) {
                seller.handle_timeout(now);
            }
            let to_buyers: Vec<SellerAction> = seller.drain_actions().collect();
            for a in to_buyers {
                if let SellerAction::Send { peer, frames } = a {
                    quiet = false;
                    let i = peers.iter().position(|p| *p == peer).unwrap();
                    for frame in frames.iter().cloned() {
                        chans[i].handle_frame(now, Frame::decode(&frame).unwrap()).unwrap();
                    }
                }
            }
            for (i, c) in chans.iter_mut().enumerate() {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now).unwrap();
                }
                let acts: Vec<BuyerAction> = c.drain_actions().collect();
                for a in acts {
                    if let BuyerAction::Send(f) = a {
                        quiet = false;
                        seller.handle_frame(now, peers[i], Frame::decode(&f).unwrap()).unwrap();
                    }
                }
            }
        }
    }
    for c in &chans {
        assert_eq!(c.pending_actions(), 0);
    }
    let buyer_bytes = chans.into_iter().map(held).collect();
    (held(seller), buyer_bytes)
}

/// Verdicts, printed when judged and again as `SUMMARY` lines.
#[derive(Default)]
struct Verdicts(Vec<(String, String, String, bool)>);

impl Verdicts {
    fn judge(&mut self, figure: String, value: String, target: String, ok: bool) {
        println!(
            "{}: {figure} = {value} (target {target})",
            if ok { "PASS" } else { "FAIL" }
        );
        self.0.push((figure, value, target, ok));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--only50") {
        for b in [1, 50] {
            let r = engine(b, 600, 64, WINDOW);
            println!(
                "{b} buyers: seller {:.1} us/msg, publish {:.1}, acks {:.1}, verified {}",
                r.seller_us_per_msg, r.publish_us_per_msg, r.ack_us_per_msg, r.verified
            );
        }
        return;
    }
    let mut v = Verdicts::default();
    // Three rounds; within a round the bound is measured right before and right after the
    // 1-buyer run (the machine is shared: load changes between rounds). Every round is judged.
    let (n1, n50) = if quick { (1_000, 100) } else { (6_000, 2_000) };
    let mut first = None;
    // Warm-up, printed but not judged: the first runs of a fresh process pay for growing its
    // heap (page faults), 50 buyers' worth more than one buyer's.
    let (warm_one, warm_fifty) = (engine(1, n1, 64, NO_CHECK_WINDOW), engine(50, n50, 64, NO_CHECK_WINDOW));
    println!(
        "warm-up (not judged): seller with no check due, 1 buyer {:.1} us/msg, 50 buyers {:.1} us/msg",
        warm_one.seller_us_per_msg, warm_fifty.seller_us_per_msg
    );
    for r in 0..3 {
        let c1 = crypto();
        let one = engine(1, n1, 64, WINDOW);
        let c2 = crypto();
        let fifty = engine(50, n50, 64, WINDOW);
        // The fan-out beyond the checks is the ratio of two CPU times of a few milliseconds
        // each: one pair of runs moved by +-0.2 between rounds on a shared 2-core VM. So each
        // round takes FANOUT_PAIRS pairs, interleaved (a slow moment falls on both sides alike),
        // prints every pair, and judges their mean.
        let mut pairs = Vec::new();
        for _ in 0..FANOUT_PAIRS {
            pairs.push((engine(1, n1, 64, NO_CHECK_WINDOW), engine(50, n50, 64, NO_CHECK_WINDOW)));
        }
        let mean_us = |pick: fn(&(Run, Run)) -> &Run| pairs.iter().map(|p| pick(p).seller_us_per_msg).sum::<f64>() / pairs.len() as f64;
        let (one_free_us, fifty_free_us) = (mean_us(|p| &p.0), mean_us(|p| &p.1));
        let (one_free_verified, fifty_free_verified): (u64, u64) = (pairs.iter().map(|p| p.0.verified).sum(), pairs.iter().map(|p| p.1.verified).sum());
        let each: Vec<String> = pairs.iter().map(|(o, f)| format!("x{:.2}", f.seller_us_per_msg / o.seller_us_per_msg)).collect();
        let sign = (c1.0 + c2.0) / 2.0;
        let verify = (c1.1 + c2.1) / 2.0;
        let bound = 1e6 / (sign + verify);
        println!(
            "round {}: sign {sign:.1} us, verify {verify:.1} us (fast path {:.1}, recover {:.1}), bound {bound:.0} msgs/s",
            r + 1,
            (c1.2 + c2.2) / 2.0,
            (c1.3 + c2.3) / 2.0
        );
        println!(
            "  engine, 1 buyer:   {:7.0} msgs/s end-to-end ({:.0}% of bound), seller {:.1} us/msg (acks {:.1}), acks {} verified {}",
            one.msgs_per_s,
            100.0 * one.msgs_per_s / bound,
            one.seller_us_per_msg,
            one.ack_us_per_msg,
            one.acks,
            one.verified
        );
        let ratio = fifty.seller_us_per_msg / one.seller_us_per_msg;
        println!(
            "  engine, 50 buyers: {:7.0} msgs/s end-to-end ({:.0} deliveries/s), seller {:.1} us/msg (acks {:.1}), acks {} verified {} -> x{ratio:.2} of 1 buyer",
            fifty.msgs_per_s,
            fifty.msgs_per_s * 50.0,
            fifty.seller_us_per_msg,
            fifty.ack_us_per_msg,
            fifty.acks,
            fifty.verified,
        );
        let share = one.msgs_per_s / bound;
        v.judge(
            format!("engine throughput (1 buyer) / sign+verify bound, round {}", r + 1),
            format!("{:.0} / {bound:.0} msgs/s = {:.0}%", one.msgs_per_s, 100.0 * share),
            format!(">= {:.0}%", 100.0 * ENGINE_SHARE_TARGET),
            share >= ENGINE_SHARE_TARGET,
        );
        // Fan-out. Every buyer signs its own acks, and the seller must hold a verified ack of each
        // buyer at least once per window W (its risk bound: never more than W messages without
        // proof of payment). So 50 buyers cost at least 49 more checks per W messages: with
        // W = 256 and a ~55 us check, ~10 us a message, about twice one buyer's whole cost. That
        // floor is the protocol's, not overhead; what is judged is (1) that the seller verifies
        // no more than the window requires (at most one check per buyer per W messages, plus one),
        // and (2) everything else it does, measured with a window no run fills (no check due),
        // which must stay within x1.5 of one buyer.
        let check_us = (c1.2 + c2.2) / 2.0;
        let floor_us = 49.0 * check_us / WINDOW as f64;
        let rest_ratio = fifty_free_us / one_free_us;
        println!(
            "  fan-out: all included x{ratio:.2}, of which the window's floor alone (49 x {check_us:.1} us / W = {WINDOW}) is {floor_us:.1} us/msg = x{:.2}",
            (one.seller_us_per_msg + floor_us) / one.seller_us_per_msg,
        );
        println!(
            "  fan-out with no check due (W = {NO_CHECK_WINDOW}), {FANOUT_PAIRS} pairs of runs: 1 buyer {:.2} us/msg (verified {}), 50 buyers {:.2} us/msg (verified {}) -> x{rest_ratio:.2} (each pair: {})",
            one_free_us, one_free_verified, fifty_free_us, fifty_free_verified, each.join(" "),
        );
        // One check per buyer per window, one per verification interval of (virtual) time, and
        // one more.
        let interval = SellerConfig::default().ack_verify_interval_ms;
        let allowed = 50 * (n50.div_ceil(WINDOW) + (n50 / VIRTUAL_MSGS_PER_MS).div_ceil(interval) + 1);
        v.judge(
            format!("fan-out: acks verified by the seller, 50 buyers x {n50} msgs, W = {WINDOW}, round {}", r + 1),
            format!("{}", fifty.verified),
            format!("<= {allowed} (one per buyer per W and per {interval} ms, plus one)"),
            fifty.verified <= allowed,
        );
        v.judge(
            format!("fan-out: seller CPU/msg with no ack check due, 50 buyers / 1 buyer, round {}", r + 1),
            format!(
                "{:.1} / {:.1} us = x{rest_ratio:.2}",
                fifty_free_us, one_free_us
            ),
            format!("<= x{FANOUT_TARGET}"),
            rest_ratio <= FANOUT_TARGET && fifty_free_verified == 0,
        );
        first.get_or_insert((one, fifty));
    }
    let (one, fifty) = first.unwrap();
    println!(
        "epoch start with key grants: {:.2} ms for 1 member, {:.2} ms for 50 members",
        one.rotation_ms, fifty.rotation_ms
    );
    // Memory: a stream with no channel, then with 1 and 50 idle channels (300 messages of 256
    // bytes sent and acked by all, then quiet).
    let (stream0, _) = memory(0, 0);
    let (stream1, buyer1) = memory(1, 300);
    let (stream50, buyer50) = memory(50, 300);
    let per_seller_channel = (stream50 - stream1) / 49;
    // A stream's own share: with its one channel's share taken off.
    let per_stream = stream1 - per_seller_channel;
    let buyers: Vec<isize> = buyer1.iter().chain(&buyer50).copied().collect();
    let per_buyer = buyers.iter().sum::<isize>() / buyers.len() as isize;
    let max_buyer = *buyers.iter().max().unwrap();
    println!(
        "memory held: stream with 0 channels {stream0} B, with 1 idle channel {stream1} B, with 50 {stream50} B; buyer channel mean {per_buyer} B, max {max_buyer} B"
    );
    v.judge(
        "memory per stream (after traffic, all acked; one idle channel's share taken off)".into(),
        format!("{:.1} KiB", per_stream as f64 / 1024.0),
        format!("<= {} KiB", MEMORY_STREAM / 1024),
        per_stream <= MEMORY_STREAM && stream0 <= MEMORY_STREAM,
    );
    v.judge(
        "memory per idle channel, seller side ((50 - 1 channels) / 49)".into(),
        format!("{:.1} KiB", per_seller_channel as f64 / 1024.0),
        format!("<= {} KiB", MEMORY_SELLER_CHANNEL / 1024),
        per_seller_channel <= MEMORY_SELLER_CHANNEL,
    );
    v.judge(
        "memory per idle channel, buyer side (largest BuyerChannel)".into(),
        format!("{:.1} KiB", max_buyer as f64 / 1024.0),
        format!("<= {} KiB", MEMORY_BUYER_CHANNEL / 1024),
        max_buyer <= MEMORY_BUYER_CHANNEL,
    );
    println!();
    for (figure, value, target, ok) in &v.0 {
        println!(
            "SUMMARY\t{figure}\t{value}\t{target}\t{}",
            if *ok { "PASS" } else { "FAIL" }
        );
    }
    if v.0.iter().any(|(.., ok)| !ok) {
        std::process::exit(1);
    }
}
