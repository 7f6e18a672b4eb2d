//! Many streams on many cores (issue 15): `cargo bench -p supra-broker --bench streams`.
//!
//! One seller broker sells 100 streams, each bought by the same 5 buyer brokers (500 channels on
//! each side). An in-process harness runs the brokers' turns the way the node does
//! (`broker/src/node/flush.rs`): real engines, real k256 keys, a real redb store per broker, and
//! the node's [`Workers`] and `CommitQueue`:
//! - a turn's engine work runs on the workers, every engine at once, each with its own inputs:
//!   a seller stream decodes and takes the acks that reached it and signs 5 publications (encoded
//!   as the node encodes them) as one batch; a buyer channel decodes and takes its data frames
//!   (proofs, one batch-signature check per batch, decryption, acks); each drains its actions,
//!   deliveries decoded as publications;
//! - the broker's thread merges the records into one batch (a buyer's deliveries into its outbox,
//!   the previous turn's deliveries out of it), plans the commit and queues it: the store's
//!   commit thread writes it while the next turns run, and the turn's frames and deliveries are
//!   carried out once it is durable (persist before act), as in the node.
//!
//! The brokers share this process (and its 2 cores): aggregate throughput is publications sold
//! (delivered to a buyer) per second, for the whole system, in three configurations measured
//! on the same system, every round printed (a round cuts each configuration's turns in 6 slices
//! and runs them interleaved, so that a slow moment of the shared machine falls on all three
//! alike): one thread (1 worker, commits written
//! inline: a broker on one core, as the node was before issue 15), 1 worker with the commit
//! thread, and 2 workers with the commit thread; each with the cores it kept busy (process CPU
//! time over wall time). Beside them, measured in the same run: the single-stream figure (1 stream
//! x 5 buyers, 200 publications per turn on that stream, 1 worker), what the machine gives two
//! threads of pure signing work at the moment (the ceiling of any speed-up on a shared machine),
//! and where the time goes (parallel engine work vs. the broker's thread: merging, routing,
//! commits written inline or waited for). A warm-up of each configuration runs first (printed,
//! not judged).
//!
//! Target: aggregate on every core (2 workers and the commit thread) >= 1.7 x aggregate on one
//! thread, judged in every round; exit 1 on a miss. Every verdict is also printed as
//! `SUMMARY\t<figure>\t<value>\t<target>\t<PASS|FAIL>` (as `scripts/bench` collects).
//! SUPRA_BENCH_TURNS sets each configuration's turns per round (default 60), SUPRA_BENCH_ROUNDS the rounds (default 3).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, keccak256};
use supra_broker::node::{now_ms, persist_coalesced};
use supra_broker::publication::Publication;
use supra_broker::store::{Batch, CommitQueue, Committed, Pushed, Store};
use supra_broker::workers::Workers;
use supra_channel::buyer::{BuyerAction, BuyerChannel, BuyerConfig};
use supra_channel::seller::{SellerAction, SellerConfig, Stream, Terms};
use supra_channel::sign::Keypair;
use supra_channel::types::{Domain, StreamId};
use supra_channel::wire::{Frame, FrameBytes};

const STREAMS: usize = 100;
const BUYERS: usize = 5;
/// Publications per stream per turn: 500 per turn in all, as a node's burst of 512 inputs.
const PER_STREAM: usize = 5;
const PAYLOAD: usize = 256;
const TARGET: f64 = 1.7;
/// Publications per turn of the single-stream run (within the window of 256 unacked messages).
const SINGLE_PER_TURN: usize = 200;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Slices per round (see `interleaved`).
const SLICES: usize = 6;
/// Turns run before a measurement, not counted (see `measure`).
const LEAD_IN_TURNS: usize = 3;

/// Time spent per phase of the turns (summed over every broker).
#[derive(Default, Clone, Copy)]
struct Phases {
    /// Engine work the workers run in parallel (signing, frame handling).
    parallel: Duration,
    /// Draining actions, routing, timers: the node's thread alone.
    sequential: Duration,
    /// Routing frames off the links to their engines' inboxes. Each link decodes its frames on
    /// a task of its own in a broker (`peer`), beside the node's thread: here each engine's
    /// frames are decoded with its engine work, on the workers.
    links: Duration,
    /// Waiting for a commit the broker cannot go on without (its previous turn's, when a
    /// second one is already waiting behind it): the commits themselves run on each store's
    /// commit thread, overlapping the brokers' engine work, as in the node.
    commit: Duration,
}

/// What a seller's turn carries out once committed: frames for the buyers (buyer, stream).
type SellerTurn = Vec<(usize, usize, FrameBytes)>;

/// What a buyer's turn carries out once committed: acks for the seller, and deliveries.
struct BuyerTurn {
    /// (buyer, stream, frame).
    acks: Vec<(Address, usize, FrameBytes)>,
    delivered: Vec<(u64, u64)>,
}

struct Sold {
    number: u64,
    engine: Stream,
    inbox: Vec<(Address, FrameBytes)>,
}

struct SellerNode {
    store: Store,
    commits: Option<Pipe<SellerTurn>>,
    streams: Vec<Sold>,
    /// Buyer address -> buyer index.
    buyers: HashMap<Address, usize>,
}

struct Bought {
    index: u64,
    engine: BuyerChannel,
    inbox: Vec<FrameBytes>,
}

struct BuyerNode {
    store: Store,
    commits: Option<Pipe<BuyerTurn>>,
    chans: Vec<Bought>,
    /// Outbox entries committed last turn: removed on this turn's commit (the node's removals
    /// ride on the next commit).
    handed_over: Vec<(u64, u64)>,
    /// Frames from the seller, as bytes on the link, with the stream they belong to (channel
    /// `j` of a buyer is stream `j`'s).
    link: Vec<(usize, FrameBytes)>,
    address: Address,
}

/// A broker's commit queue and its committer's reports.
struct Pipe<T> {
    queue: CommitQueue<T>,
    reports: tokio::sync::mpsc::UnboundedReceiver<Committed>,
}

impl<T> Pipe<T> {
    fn new(store: &Store) -> Pipe<T> {
        let (committer, reports) = store.committer().expect("commit thread");
        Pipe { queue: CommitQueue::new(committer), reports }
    }

    /// Turns whose commits are reported by now; with `block`, waits for one report first.
    fn ready(&mut self, block: bool) -> Vec<T> {
        let mut out = Vec::new();
        if block && !self.queue.is_idle() {
            let done = self.reports.blocking_recv().expect("commit thread");
            out.extend(self.queue.committed(done).expect("commit"));
        }
        while let Ok(done) = self.reports.try_recv() {
            out.extend(self.queue.committed(done).expect("commit"));
        }
        out
    }
}

struct System {
    seller: SellerNode,
    buyers: Vec<BuyerNode>,
    to_seller: Vec<(Address, usize, FrameBytes)>,
    delivered: u64,
    published: u64,
    phases: Phases,
    /// Commits written inline, on the broker's own thread, and the turn carried out after: the
    /// broker on one thread (the node before issue 15), the baseline of the speed-up.
    inline: bool,
    _dirs: Vec<TempDir>,
}

/// Commits a turn's plan and returns the turn if it may be carried out now: inline, or through
/// the broker's commit queue (see `System::inline`).
fn commit<T>(store: &mut Store, pipe: &mut Pipe<T>, inline: bool, planned: supra_broker::store::Planned, turn: T, phases: &mut Phases) -> Option<T> {
    if inline {
        let t = Instant::now();
        store.write(planned).expect("commit");
        phases.commit += t.elapsed();
        Some(turn)
    } else {
        match pipe.queue.push(planned, turn).expect("commit") {
            Pushed::Ready(turn, took) => {
                phases.commit += took.unwrap_or_default();
                Some(turn)
            }
            Pushed::Queued => None,
        }
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "supra-streams-bench-{}-{label}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic real k256 key.
fn test_key(label: &str, i: u64) -> Keypair {
    Keypair::from_secret_bytes(&keccak256(format!("{label}/{i}")).0).expect("key")
}

fn publication(stream: usize, i: u64) -> Vec<u8> {
    let mut payload = vec![0x5a; PAYLOAD];
    payload[..8].copy_from_slice(&i.to_le_bytes());
    Publication {
        topic: format!("s/{stream}"),
        payload,
        retain: false,
        qos: 1,
        properties: None,
        received_at_ms: now_ms(),
    }
    .encode()
}

impl System {
    fn new(streams: usize, buyers: usize, label: &str) -> System {
        let domain = Domain::new(31337, Address::repeat_byte(0x42));
        let skey = test_key("seller", 0);
        let bkeys: Vec<_> = (0..buyers).map(|i| test_key("buyer", i as u64)).collect();
        let terms = Terms {
            price: U256::from(1_000u64),
            token: Default::default(),
            window: 256,
            t_ack_secs: 60,
            t_closure_secs: 600,
            offer_validity_secs: 600,
        };
        let deposit = U256::from(10u64).pow(U256::from(18u64));
        let now = now_ms();
        let dirs: Vec<TempDir> = (0..=buyers)
            .map(|i| TempDir::new(&format!("{label}-{i}")))
            .collect();
        let mut seller = SellerNode {
            store: Store::open(&dirs[0].0).expect("seller store"),
            commits: None,
            streams: Vec::new(),
            buyers: bkeys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.address(), i))
                .collect(),
        };
        let mut buyer_nodes: Vec<BuyerNode> = (0..buyers)
            .map(|i| BuyerNode {
                store: Store::open(&dirs[i + 1].0).expect("buyer store"),
                commits: None,
                chans: Vec::new(),
                handed_over: Vec::new(),
                link: Vec::new(),
                address: bkeys[i].address(),
            })
            .collect();
        let mut sbatch = Batch::default();
        for j in 0..streams {
            let topic = format!("s/{j}");
            let number = seller.store.stream_number(&topic).expect("stream number");
            let id = StreamId::new(skey.address(), u128::from(number)).expect("stream id");
            let mut engine = Stream::new(
                domain,
                skey.clone(),
                id,
                terms.clone(),
                SellerConfig::default(),
            )
            .expect("stream");
            for (i, bkey) in bkeys.iter().enumerate() {
                let (offer, sig) = engine
                    .make_offer(now, *bkey.public(), &topic)
                    .expect("offer");
                let mut c = BuyerChannel::new(
                    domain,
                    bkey.clone(),
                    offer,
                    sig,
                    BuyerConfig::default(),
                    now,
                )
                .expect("channel");
                c.on_deposit(now, deposit);
                engine.open_channel(now, c.id(), deposit).expect("open");
                let node = &mut buyer_nodes[i];
                let index = node
                    .store
                    .add_buyer_channel(c.id(), &topic)
                    .expect("buyer channel");
                let mut batch = Batch::default();
                for a in c.drain_actions() {
                    if let BuyerAction::Persist(r) = a {
                        batch.buyer(index, r);
                    }
                }
                node.store.commit(batch).expect("commit");
                assert_eq!(node.chans.len(), j, "a buyer's channel j is stream j's");
                node.chans.push(Bought {
                    index,
                    engine: c,
                    inbox: Vec::new(),
                });
            }
            for a in engine.drain_actions() {
                if let SellerAction::Persist(r) = a {
                    sbatch.seller(number, r);
                }
            }
            seller.streams.push(Sold {
                number,
                engine,
                inbox: Vec::new(),
            });
        }
        seller.store.commit(sbatch).expect("commit");
        // From here on, commits go through each broker's commit thread, as in the node.
        seller.commits = Some(Pipe::new(&seller.store));
        for b in &mut buyer_nodes {
            b.commits = Some(Pipe::new(&b.store));
        }
        System {
            seller,
            buyers: buyer_nodes,
            to_seller: Vec::new(),
            delivered: 0,
            published: 0,
            phases: Phases::default(),
            inline: false,
            _dirs: dirs,
        }
    }

    /// One turn of every broker, as the node turns (`broker/src/node/flush.rs`): each engine
    /// takes its inputs and drains its actions on the workers, in parallel; the broker plans
    /// the commit of the records and hands it to its commit thread; what the turn sends waits
    /// for that commit, while the next turn's engine work goes on. The seller takes the acks
    /// that reached it and signs `per_stream` publications on each stream; each buyer takes the
    /// frames that reached it.
    fn turn(&mut self, workers: Workers, per_stream: usize) {
        self.seller_turn(workers, per_stream);
        for b in 0..self.buyers.len() {
            self.buyer_turn(workers, b);
        }
        self.carry_out();
    }

    fn seller_turn(&mut self, workers: Workers, per_stream: usize) {
        let t = Instant::now();
        let base = self.published;
        let pending: Vec<Vec<Vec<u8>>> = (0..self.seller.streams.len())
            .map(|j| {
                (0..per_stream)
                    .map(|k| publication(j, base + k as u64))
                    .collect()
            })
            .collect();
        for (peer, j, bytes) in std::mem::take(&mut self.to_seller) {
            self.seller.streams[j].inbox.push((peer, bytes));
        }
        self.phases.links += t.elapsed();
        let t = Instant::now();
        let now = now_ms();
        let tasks: Vec<(usize, &mut Sold, Vec<Vec<u8>>)> =
            self.seller.streams.iter_mut().zip(pending).enumerate().map(|(j, (s, p))| (j, s, p)).collect();
        let drained = workers.run(tasks, |(j, s, pending)| {
            for (peer, bytes) in std::mem::take(&mut s.inbox) {
                let frame = Frame::decode(&bytes).expect("frame");
                assert!(matches!(frame, Frame::Ack { .. }), "unexpected frame {frame:?}");
                s.engine.handle_frame(now, peer, frame).expect("ack");
            }
            let plaintexts: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
            let seqs = s.engine.publish_batch(now, &plaintexts).expect("publish");
            if s.engine.poll_timeout().is_some_and(|t| t <= now) {
                s.engine.handle_timeout(now);
            }
            let (mut records, mut sends) = (Vec::new(), Vec::new());
            for a in s.engine.drain_actions() {
                match a {
                    SellerAction::Persist(r) => records.push(r),
                    SellerAction::Send { peer, frames } => sends.push((peer, frames)),
                    _ => {}
                }
            }
            (j, s.number, seqs.end - seqs.start, records, sends)
        });
        self.phases.parallel += t.elapsed();
        let t = Instant::now();
        let mut batch = Batch::default();
        let mut frames = Vec::new();
        for (j, number, signed, records, sends) in drained {
            self.published += signed;
            for r in records {
                batch.seller(number, r);
            }
            for (peer, fs) in sends {
                let buyer = self.seller.buyers[&peer];
                frames.extend(fs.iter().map(|f| (buyer, j, f.clone())));
            }
        }
        let planned = self.seller.store.plan(batch);
        self.phases.sequential += t.elapsed();
        let pipe = self.seller.commits.as_mut().expect("pipe");
        if let Some(frames) = commit(&mut self.seller.store, pipe, self.inline, planned, frames, &mut self.phases) {
            send_to_buyers(&mut self.buyers, frames);
        }
    }

    fn buyer_turn(&mut self, workers: Workers, b: usize) {
        let node = &mut self.buyers[b];
        let t = Instant::now();
        for (j, bytes) in std::mem::take(&mut node.link) {
            node.chans[j].inbox.push(bytes);
        }
        self.phases.links += t.elapsed();
        let t = Instant::now();
        let now = now_ms();
        let tasks: Vec<(usize, &mut Bought)> = node.chans.iter_mut().enumerate().collect();
        let drained = workers.run(tasks, |(j, c)| {
            for bytes in std::mem::take(&mut c.inbox) {
                let frame = Frame::decode(&bytes).expect("frame");
                match &frame {
                    Frame::Data(data) => assert_eq!(data.message.streamId, c.engine.stream().as_b256(), "routed to its channel"),
                    other => panic!("unexpected frame {other:?}"),
                }
                c.engine.handle_frame(now, frame).expect("data");
            }
            if c.engine.poll_timeout().is_some_and(|t| t <= now) {
                c.engine.handle_timeout(now).expect("timeout");
            }
            let (mut records, mut outbox, mut sends) = (Vec::new(), Vec::new(), Vec::new());
            for a in c.engine.drain_actions() {
                match a {
                    BuyerAction::Persist(r) => persist_coalesced(&mut records, r),
                    BuyerAction::Deliver { seq, payload } => {
                        outbox.push((seq, Publication::decode(&payload).expect("publication")))
                    }
                    BuyerAction::Send(frame) => sends.push(frame),
                    _ => {}
                }
            }
            (j, c.index, records, outbox, sends)
        });
        self.phases.parallel += t.elapsed();
        let t = Instant::now();
        let mut batch = Batch::default();
        let mut turn = BuyerTurn { acks: Vec::new(), delivered: Vec::new() };
        for (j, index, records, outbox, sends) in drained {
            for r in records {
                batch.buyer(index, r);
            }
            for (seq, p) in outbox {
                batch.outbox(index, seq, p);
                turn.delivered.push((index, seq));
            }
            turn.acks.extend(sends.into_iter().map(|f| (node.address, j, f)));
        }
        // What the local MQTT broker took leaves the outbox on this commit.
        for (channel, seq) in std::mem::take(&mut node.handed_over) {
            batch.outbox_done(channel, seq);
        }
        let planned = node.store.plan(batch);
        self.phases.sequential += t.elapsed();
        let pipe = node.commits.as_mut().expect("pipe");
        if let Some(turn) = commit(&mut node.store, pipe, self.inline, planned, turn, &mut self.phases) {
            self.delivered += node.carry_out(turn, &mut self.to_seller);
        }
    }

    /// Carries out every turn whose commit is reported, waiting only where a broker has a turn
    /// waiting behind its commit (the node's depth: one commit written while the next turns
    /// gather).
    fn carry_out(&mut self) {
        let t = Instant::now();
        let pipe = self.seller.commits.as_mut().expect("pipe");
        let ready = pipe.ready(pipe.queue.is_backed_up());
        self.phases.commit += t.elapsed();
        for frames in ready {
            send_to_buyers(&mut self.buyers, frames);
        }
        for node in &mut self.buyers {
            let t = Instant::now();
            let pipe = node.commits.as_mut().expect("pipe");
            let ready = pipe.ready(pipe.queue.is_backed_up());
            self.phases.commit += t.elapsed();
            for turn in ready {
                self.delivered += node.carry_out(turn, &mut self.to_seller);
            }
        }
    }
}

/// Carries out a committed seller turn: its frames reach the buyers' links.
fn send_to_buyers(buyers: &mut [BuyerNode], frames: SellerTurn) {
    for (b, j, frame) in frames {
        buyers[b].link.push((j, frame));
    }
}

impl BuyerNode {
    /// Carries out a committed turn: its deliveries leave the outbox on the next commit, its acks
    /// reach the seller. Returns how many it delivered.
    fn carry_out(&mut self, turn: BuyerTurn, to_seller: &mut Vec<(Address, usize, FrameBytes)>) -> u64 {
        let delivered = turn.delivered.len() as u64;
        self.handed_over.extend(turn.delivered);
        to_seller.extend(turn.acks);
        delivered
    }
}

/// What a configuration did over its measured turns (one slice, or the sum of a round's slices).
#[derive(Default, Clone, Copy)]
struct Measure {
    turns: usize,
    delivered: u64,
    published: u64,
    phases: Phases,
    wall: Duration,
    /// The process's CPU time over `wall`.
    cpu: Duration,
}

impl Measure {
    fn deliveries_per_s(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }

    fn published_per_s(&self) -> f64 {
        self.published as f64 / self.wall.as_secs_f64()
    }

    /// How many cores were busy: CPU time over wall time.
    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    fn add(&mut self, slice: Measure) {
        self.turns += slice.turns;
        self.delivered += slice.delivered;
        self.published += slice.published;
        self.wall += slice.wall;
        self.cpu += slice.cpu;
        let (p, q) = (&mut self.phases, slice.phases);
        p.parallel += q.parallel;
        p.sequential += q.sequential;
        p.links += q.links;
        p.commit += q.commit;
    }
}

/// This process's CPU time (user and system, every thread), from /proc (10 ms ticks).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th
    // and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn measure(sys: &mut System, workers: Workers, inline: bool, turns: usize, per_stream: usize) -> Measure {
    sys.inline = inline;
    // A few turns first, not counted: the pipeline the previous configuration left (commits in
    // flight, frames not yet carried out; a pipelined broker runs a turn or two behind an inline
    // one) settles into this configuration's steady state, where each turn delivers what one
    // turn publishes. Counting from the switch itself, or draining the pipeline at either end,
    // credits a configuration with a turn or two of deliveries that the one before it had
    // started (5 % of a 20-turn run).
    for _ in 0..LEAD_IN_TURNS {
        sys.turn(workers, per_stream);
    }
    let (d0, p0) = (sys.delivered, sys.published);
    sys.phases = Phases::default();
    let cpu = process_cpu();
    let start = Instant::now();
    for _ in 0..turns {
        sys.turn(workers, per_stream);
    }
    Measure {
        turns,
        delivered: sys.delivered - d0,
        published: sys.published - p0,
        phases: sys.phases,
        wall: start.elapsed(),
        cpu: process_cpu() - cpu,
    }
}

/// A round: each configuration's turns, cut in `SLICES` slices taken in turn (the order rotating
/// from one slice to the next), so that a slow moment of this shared machine falls on every
/// configuration alike instead of on whichever one it happened to run in.
fn interleaved(sys: &mut System, configs: &[(Workers, bool)], turns: usize) -> Vec<Measure> {
    let mut sums = vec![Measure::default(); configs.len()];
    let per_slice = turns.div_ceil(SLICES).max(1);
    for slice in 0..SLICES {
        for k in 0..configs.len() {
            let c = (slice + k) % configs.len();
            let (workers, inline) = configs[c];
            sums[c].add(measure(sys, workers, inline, per_slice, PER_STREAM));
        }
    }
    sums
}

/// What two threads of pure signing work get over one on this machine right now (other processes
/// share its cores): the ceiling of any speed-up measured beside it.
fn machine_ceiling() -> f64 {
    let key = test_key("ceiling", 0);
    let digests: Vec<B256> = (0..200u64).map(|i| keccak256(i.to_le_bytes())).collect();
    let work = |d: &[B256]| {
        for x in d {
            std::hint::black_box(key.sign(x));
        }
    };
    let t = Instant::now();
    work(&digests);
    let one = t.elapsed();
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| work(&digests[..100]));
        work(&digests[100..]);
    });
    let two = t.elapsed();
    one.as_secs_f64() / two.as_secs_f64()
}

fn print_phases(label: &str, m: &Measure) {
    let p = m.phases;
    let total = m.wall.as_secs_f64();
    println!(
        "    {label}: {} deliveries in {} turns ({:.0} per turn), wall {:.0} ms = parallel engine work {:.0} ms ({:.0} %) + sequential {:.0} ms ({:.0} %) + frame decoding {:.0} ms ({:.0} %) + commits written inline or waited for {:.0} ms ({:.0} %)",
        m.delivered,
        m.turns,
        m.delivered as f64 / m.turns.max(1) as f64,
        total * 1e3,
        p.parallel.as_secs_f64() * 1e3,
        100.0 * p.parallel.as_secs_f64() / total,
        p.sequential.as_secs_f64() * 1e3,
        100.0 * p.sequential.as_secs_f64() / total,
        p.links.as_secs_f64() * 1e3,
        100.0 * p.links.as_secs_f64() / total,
        p.commit.as_secs_f64() * 1e3,
        100.0 * p.commit.as_secs_f64() / total,
    );
}

fn main() {
    let turns = env("SUPRA_BENCH_TURNS", 60);
    let rounds = env("SUPRA_BENCH_ROUNDS", 3);
    let one = Workers::new(NonZeroUsize::MIN);
    let two = Workers::new(NonZeroUsize::new(2).expect("2"));
    println!(
        "streams bench: {STREAMS} streams x {BUYERS} buyers ({} channels per side), {PER_STREAM} publications of {PAYLOAD} bytes per stream per turn, {turns} turns per round, {rounds} rounds; {} cores available",
        STREAMS * BUYERS,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Single stream: 1 stream x 5 buyers, SINGLE_PER_TURN publications per turn on it.
    let mut single = System::new(1, BUYERS, "single");
    measure(&mut single, one, false, 2, SINGLE_PER_TURN);
    let s = measure(&mut single, one, false, turns, SINGLE_PER_TURN);
    println!(
        "single stream (1 x {BUYERS}, 1 worker): {:.0} deliveries/s ({:.0} publications/s)",
        s.deliveries_per_s(),
        s.published_per_s()
    );
    print_phases("single", &s);
    drop(single);

    let t = Instant::now();
    let mut sys = System::new(STREAMS, BUYERS, "many");
    println!(
        "set-up: {STREAMS} streams, {} channels on each side in {:.1} s",
        STREAMS * BUYERS,
        t.elapsed().as_secs_f64()
    );
    // Warm-up, printed but not judged: each stream's first message grants its sealing key to its
    // buyers, and the stores' files grow to their working size (a file that grows makes slower
    // commits) in each configuration.
    measure(&mut sys, one, false, 2, PER_STREAM);
    let configs = [(one, true), (one, false), (two, false)];
    let warm: Vec<Measure> = configs.iter().map(|&(w, inline)| measure(&mut sys, w, inline, turns / SLICES, PER_STREAM)).collect();
    println!(
        "warm-up (not judged): one thread {:.0} deliveries/s | 1 worker + commit thread {:.0} | 2 workers + commit thread {:.0}",
        warm[0].deliveries_per_s(),
        warm[1].deliveries_per_s(),
        warm[2].deliveries_per_s()
    );

    let mut verdicts: Vec<(String, String, String, bool)> = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let ceiling = machine_ceiling();
        let [m0, m1, m2]: [Measure; 3] = interleaved(&mut sys, &configs, turns).try_into().unwrap_or_else(|_| unreachable!("three configurations"));
        let ratio = m2.deliveries_per_s() / m0.deliveries_per_s();
        let ok = ratio >= TARGET;
        println!(
            "round {round}: one thread {:.0} deliveries/s ({:.2} cores busy) | 1 worker + commit thread {:.0} ({:.2} cores) | 2 workers + commit thread {:.0} ({:.2} cores) | every core / one thread x{ratio:.2} (target x{TARGET}) {} | 2 workers / 1 worker x{:.2} | machine: 2 threads of signing get x{ceiling:.2} | single stream {:.0} deliveries/s",
            m0.deliveries_per_s(),
            m0.cores(),
            m1.deliveries_per_s(),
            m1.cores(),
            m2.deliveries_per_s(),
            m2.cores(),
            if ok { "PASS" } else { "FAIL" },
            m2.deliveries_per_s() / m1.deliveries_per_s(),
            s.deliveries_per_s()
        );
        print_phases("one thread      ", &m0);
        print_phases("1 worker + commit", &m1);
        print_phases("2 workers + commit", &m2);
        let p0 = m0.phases;
        let serial = (p0.sequential + p0.links + p0.commit).as_secs_f64() / m0.wall.as_secs_f64();
        println!(
            "    Amdahl with one thread's split, commits left serial: at most x{:.2} on 2 free cores; the parallel part itself went x{:.2} faster (the machine gave two threads of signing x{ceiling:.2})",
            1.0 / (serial + (1.0 - serial) / 2.0),
            p0.parallel.as_secs_f64() / m2.phases.parallel.as_secs_f64()
        );
        ratios.push((ratio, ceiling));
        verdicts.push((
            format!("round {round}: 100 streams x 5 buyers, every core (2 workers + commit thread) / one thread"),
            format!(
                "x{ratio:.2} ({:.0} / {:.0} deliveries/s; 1 worker + commit thread {:.0})",
                m2.deliveries_per_s(),
                m0.deliveries_per_s(),
                m1.deliveries_per_s()
            ),
            format!(">= x{TARGET}"),
            ok,
        ));
    }
    println!();
    for (figure, value, target, ok) in &verdicts {
        println!(
            "SUMMARY\t{figure}\t{value}\t{target}\t{}",
            if *ok { "PASS" } else { "FAIL" }
        );
    }
    println!(
        "SUMMARY\tsingle stream 1 x 5, 1 worker (context)\t{:.0} deliveries/s\t-\tINFO",
        s.deliveries_per_s()
    );
    let ceilings: Vec<String> = ratios.iter().map(|(_, c)| format!("x{c:.2}")).collect();
    println!(
        "SUMMARY\tmachine: 2 threads of k256 signing / 1 (context)\t{}\t-\tINFO",
        ceilings.join(" ")
    );
    // Its stores' directories go before `exit`, which runs no destructor.
    drop(sys);
    if verdicts.iter().any(|v| !v.3) {
        println!("streams bench: a target was missed");
        std::process::exit(1);
    }
    println!("streams bench: every target met");
}
