//! Running many configurations (on every core, deterministically), Table I, sweeps and CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics::RunResult;
use crate::params::{Protocol, RunConfig, Scenario};

/// Runs one subscription of `protocol`.
pub fn run_one(protocol: Protocol, cfg: &RunConfig) -> RunResult {
    match protocol {
        Protocol::Supra => crate::supra::run(cfg),
        p => crate::baseline::run(cfg, p),
    }
}

/// Runs every job on `threads` worker threads. Each run is a deterministic function of its
/// configuration, so the results (returned in job order) do not depend on the thread count.
pub fn run_all(jobs: &[(Protocol, RunConfig)], threads: usize) -> Vec<RunResult> {
    let threads = threads.clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((p, cfg)) = jobs.get(i) else { break };
                    let r = run_one(*p, cfg);
                    if let Ok(mut v) = slots.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Default number of worker threads: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Each of `protocols` in each of `scenarios` (in that order), at `base`'s other settings.
fn grid(
    base: &RunConfig,
    protocols: &[Protocol],
    scenarios: &[Scenario],
) -> Vec<(Protocol, RunConfig)> {
    let mut jobs = Vec::new();
    for &p in protocols {
        for &s in scenarios {
            jobs.push((
                p,
                RunConfig {
                    scenario: s,
                    ..base.clone()
                },
            ));
        }
    }
    jobs
}

/// Every protocol in every scenario, at `base`'s settings.
pub fn table_jobs(base: &RunConfig) -> Vec<(Protocol, RunConfig)> {
    grid(base, &Protocol::ALL, &Scenario::ALL)
}

/// One line of Table I.
#[derive(Clone, Debug)]
pub struct TableRow {
    /// Protocol.
    pub protocol: Protocol,
    /// On-chain transactions of the honest subscription.
    pub txs: u64,
    /// Max over the runs with an honest seller of messages delivered and never paid.
    pub max_unpaid: u64,
    /// The scenario reaching it.
    pub unpaid_worst: Scenario,
    /// Max over the runs with an honest buyer of messages paid and never delivered.
    pub max_excess: u64,
    /// The scenario reaching it.
    pub excess_worst: Scenario,
    /// Honest run latency p50 (ms).
    pub p50: Option<u64>,
    /// Honest run latency p99 (ms).
    pub p99: Option<u64>,
    /// Honest run gas per delivered message.
    pub gas_per_msg: Option<f64>,
}

/// Table I from the runs of [`table_jobs`] (or any set with an honest run per protocol).
pub fn table1(results: &[RunResult]) -> Vec<TableRow> {
    let mut rows = Vec::new();
    for p in Protocol::ALL {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.protocol == p).collect();
        let Some(honest) = runs.iter().find(|r| r.scenario == Scenario::Honest) else {
            continue;
        };
        let (max_unpaid, unpaid_worst) = runs
            .iter()
            .filter(|r| r.scenario.honest_seller())
            .map(|r| (r.unpaid(), r.scenario))
            .max_by_key(|x| x.0)
            .unwrap_or((0, Scenario::Honest));
        let (max_excess, excess_worst) = runs
            .iter()
            .filter(|r| r.scenario.honest_buyer())
            .map(|r| (r.excess(), r.scenario))
            .max_by_key(|x| x.0)
            .unwrap_or((0, Scenario::Honest));
        rows.push(TableRow {
            protocol: p,
            txs: honest.ledger.txs,
            max_unpaid,
            unpaid_worst,
            max_excess,
            excess_worst,
            p50: honest.latency(0.5),
            p99: honest.latency(0.99),
            gas_per_msg: honest.gas_per_msg(),
        });
    }
    rows
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

/// Table I as a Markdown table.
pub fn format_table1(rows: &[TableRow], cfg: &RunConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Table I (measured): N = {}, loss = {}, W = {}, K = {}, seed = {}, crypto = {}",
        cfg.n, cfg.link.loss, cfg.window, cfg.k, cfg.seed, cfg.crypto
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| protocol | on-chain txs / subscription | max unpaid (msgs) | max paid in excess (msgs) | latency p50 / p99 (ms) | gas / delivered msg |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} ({}) | {} / {} | {} |",
            r.protocol,
            r.txs,
            r.max_unpaid,
            r.unpaid_worst,
            r.max_excess,
            r.excess_worst,
            opt(r.p50),
            opt(r.p99),
            r.gas_per_msg.map_or("-".into(), |g| format!("{g:.1}")),
        );
    }
    s
}

/// Every run as a Markdown table.
pub fn format_runs(results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| protocol | scenario | txs (reverted) | gas | delivered | paid | unpaid | excess | p50 ms | p99 ms | gas/msg | posted | wall ms |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            r.protocol,
            r.scenario,
            r.ledger.txs,
            r.ledger.reverted,
            r.ledger.gas,
            r.delivered,
            r.paid,
            r.unpaid(),
            r.excess(),
            opt(r.latency(0.5)),
            opt(r.latency(0.99)),
            r.gas_per_msg().map_or("-".into(), |g| format!("{g:.1}")),
            r.posted,
            r.wall_ms
        );
    }
    s
}

/// CSV header (see the README for the columns).
pub const CSV_HEADER: &str = "sweep,protocol,scenario,seed,n,loss,window,k,block_ms,crypto,txs,reverted,gas,delivered,paid,unpaid,excess,lat_p50_ms,lat_p99_ms,gas_per_msg,posted,accusations,data_frames,published,sim_ms,wall_ms,calls";

/// One CSV line for a run.
pub fn csv_row(sweep: &str, r: &RunResult) -> String {
    let c = &r.cfg;
    format!(
        "{sweep},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{}",
        r.protocol,
        r.scenario,
        c.seed,
        c.n,
        c.link.loss,
        c.window,
        c.k,
        c.chain.block_ms,
        c.crypto,
        r.ledger.txs,
        r.ledger.reverted,
        r.ledger.gas,
        r.delivered,
        r.paid,
        r.unpaid(),
        r.excess(),
        opt(r.latency(0.5)),
        opt(r.latency(0.99)),
        r.gas_per_msg().map_or(String::new(), |g| format!("{g:.2}")),
        r.posted,
        r.accusations,
        r.data_frames,
        r.published,
        r.sim_ms,
        r.wall_ms,
        r.ledger.summary(),
    )
}

/// Writes `results` as one CSV file.
pub fn write_csv(path: &Path, sweep: &str, results: &[RunResult]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{CSV_HEADER}")?;
    for r in results {
        writeln!(f, "{}", csv_row(sweep, r))?;
    }
    f.flush()
}

/// Scenarios whose seller is honest but whose buyer is not (the seller's exposure).
pub const BUYER_ATTACKS: [Scenario; 2] = [Scenario::Withhold, Scenario::Leave];

/// Loss sweep: every protocol, honest and both buyer attacks, at each loss rate.
pub fn loss_jobs(base: &RunConfig, losses: &[f64]) -> Vec<(Protocol, RunConfig)> {
    let scenarios = [Scenario::Honest, Scenario::Withhold, Scenario::Leave];
    losses
        .iter()
        .flat_map(|&loss| {
            let mut c = base.clone();
            c.link.loss = loss;
            grid(&c, &Protocol::ALL, &scenarios)
        })
        .collect()
}

/// N sweep: every protocol, honest, at each N.
pub fn n_jobs(base: &RunConfig, ns: &[u64]) -> Vec<(Protocol, RunConfig)> {
    ns.iter()
        .flat_map(|&n| {
            let c = RunConfig { n, ..base.clone() };
            grid(&c, &Protocol::ALL, &[Scenario::Honest])
        })
        .collect()
}

/// K sweep: the baselines (SUPRA has no K: its runs do not depend on it), honest and every
/// attack, at each K.
pub fn k_jobs(base: &RunConfig, ks: &[u64]) -> Vec<(Protocol, RunConfig)> {
    ks.iter()
        .flat_map(|&k| {
            let c = RunConfig { k, ..base.clone() };
            grid(&c, &[Protocol::Sdpp, Protocol::Ppsp], &Scenario::ALL)
        })
        .collect()
}
