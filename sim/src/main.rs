//! `supra-sim`: the paper's Table I, measured. See `sim/README.md`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use supra_sim::params::{Crypto, DelayDist, Protocol, RunConfig, Scenario};
use supra_sim::sweep::{self, default_threads};
use supra_sim::{capacity, crypto, plot};

/// Discrete-event simulator: the real supra-channel engine (SUPRA hybrid channels) against SDPP
/// and pay-before-delivery (PPSP) over lossy links and a block-time chain.
#[derive(Parser, Debug)]
#[command(name = "supra-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print Table I: every protocol in every scenario at the given settings (the default).
    Table {
        /// Also write the runs to this CSV file.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Print every run, not only the summary.
        #[arg(long)]
        runs: bool,
    },
    /// One run of one protocol in one scenario, with its ledger and notes.
    Run {
        /// supra, sdpp or ppsp.
        #[arg(long, default_value = "supra")]
        protocol: Protocol,
        /// Also measure sign/verify (of the --crypto mode) here and estimate the crypto share of
        /// the wall time.
        #[arg(long)]
        crypto_cost: bool,
    },
    /// How far one judge on one chain goes: subscriptions, fallback posts, claims, top-ups and
    /// disputes per second, from the simulated gas of an honest subscription and the judge's gas
    /// table, for Ethereum L1 and an L2 (assumed gas limits) or the chain you give.
    Capacity {
        /// Your chain's gas limit per block (with --block-secs): replaces the default chains.
        #[arg(long, requires = "block_secs")]
        gas_per_block: Option<u64>,
        /// Your chain's block time in seconds.
        #[arg(long, requires = "gas_per_block")]
        block_secs: Option<f64>,
    },
    /// Sweeps over loss rate, N and K: one CSV per sweep and PNG plots in --out.
    Sweep {
        /// Loss rates of the loss sweep.
        #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.05,0.1,0.2,0.3")]
        losses: Vec<f64>,
        /// N values of the N sweep.
        #[arg(long, value_delimiter = ',', default_value = "1000,3000,10000,30000")]
        ns: Vec<u64>,
        /// K values of the K sweep.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "10,20,50,100,200,500,1000"
        )]
        ks: Vec<u64>,
        /// Output directory for CSV and PNG files.
        #[arg(long, default_value = "sim-out")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
struct Opts {
    /// PRNG seed (link loss, delays, outages, payloads).
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Messages per subscription (N).
    #[arg(short = 'n', long = "n", global = true, default_value_t = 10_000)]
    n: u64,
    /// Frame loss probability on the link, in [0, 1).
    #[arg(long, global = true, default_value_t = 0.0)]
    loss: f64,
    /// SUPRA window W (also the baselines' transport window).
    #[arg(short = 'w', long = "w", global = true, default_value_t = 64)]
    w: u64,
    /// SDPP invoice period / PPSP chunk size K.
    #[arg(short = 'k', long = "k", global = true, default_value_t = 100)]
    k: u64,
    /// Scenario of `run`: honest, withhold, leave, drop, overclaim; or, SUPRA only, pause.
    #[arg(long, global = true, default_value = "honest")]
    scenario: Scenario,
    /// Where the misbehaviour starts, in messages (default N/2).
    #[arg(long, global = true)]
    malice_at: Option<u64>,
    /// Interval between two messages of the stream (ms).
    #[arg(long, global = true, default_value_t = 10)]
    publish_every_ms: u64,
    /// Messages the stream publishes after the subscription's N-th (shows the engine's
    /// stop-tail issue, see the README); overclaim always uses at least 2W.
    #[arg(long, global = true, default_value_t = 0)]
    tail: u64,
    /// Plaintext size of a message (bytes).
    #[arg(long, global = true, default_value_t = 64)]
    payload: usize,
    /// One-way delay range MIN..MAX in ms (uniform), or MIN..MEAN with --delay-dist exp.
    #[arg(long, global = true, default_value = "5..40")]
    delay: String,
    /// Delay distribution: uniform (MIN..MAX) or exp (MIN + exponential of mean MEAN).
    #[arg(long, global = true, default_value = "uniform")]
    delay_dist: String,
    /// Mean time between link outages in seconds (exponential); none by default.
    #[arg(long, global = true)]
    outage_every_s: Option<f64>,
    /// Outage duration range LO..HI in seconds.
    #[arg(long, global = true, default_value = "5..60")]
    outage_s: String,
    /// Block time (ms).
    #[arg(long, global = true, default_value_t = 12_000)]
    block_ms: u64,
    /// Δ_on-chain (ms): the seller's bound on mining time.
    #[arg(long, global = true, default_value_t = 24_000)]
    delta_ms: u64,
    /// T_ack (s).
    #[arg(long, global = true, default_value_t = 60)]
    t_ack: u32,
    /// T_closure (s).
    #[arg(long, global = true, default_value_t = 300)]
    t_closure: u32,
    /// Retransmission timeout (ms), all protocols.
    #[arg(long, global = true, default_value_t = 300)]
    rto_ms: u64,
    /// Receiver acks every this many messages (SUPRA clamps it to W/2).
    #[arg(long, global = true, default_value_t = 16)]
    ack_every: u64,
    /// SDPP: items the seller streams past an unpaid invoice.
    #[arg(long, global = true, default_value_t = 0)]
    sdpp_credit: u64,
    /// Seller broker policy: give up on (SUPRA: stop) a buyer silent this long while something is
    /// outstanding (s).
    #[arg(long, global = true, default_value_t = 90)]
    idle_stop_s: u64,
    /// SUPRA: messages the opening deposit pays for (default N + 2W: the whole subscription).
    #[arg(long, global = true)]
    deposit_msgs: Option<u64>,
    /// SUPRA: the buyer tops up by this many messages' worth when its deposit covers at most
    /// half of that beyond what it received (default: no top-ups).
    #[arg(long, global = true)]
    top_up_msgs: Option<u64>,
    /// SUPRA: the engines do not close cooperatively (a broker's `chain.cooperative_close =
    /// false`): every close is `requestClose`, claims and `settle` after `T_closure`.
    #[arg(long, global = true)]
    no_cooperative_close: bool,
    /// Worker threads for tables and sweeps (runs are independent and deterministic).
    #[arg(long, global = true, default_value_t = default_threads())]
    threads: usize,
    /// SUPRA signatures: real (k256 ECDSA, the default) or fast (the engine's simulation-only
    /// keyed hash: same protocol metrics, a fraction of the wall time).
    #[arg(long, global = true, default_value = "real")]
    crypto: Crypto,
}

fn range(s: &str) -> anyhow::Result<(f64, f64)> {
    let (a, b) = s
        .split_once("..")
        .with_context(|| format!("expected LO..HI, got {s:?}"))?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

impl Opts {
    fn config(&self) -> anyhow::Result<RunConfig> {
        let (a, b) = range(&self.delay)?;
        let delay = match self.delay_dist.as_str() {
            "uniform" => DelayDist::Uniform {
                min_ms: a as u64,
                max_ms: b as u64,
            },
            "exp" => DelayDist::ShiftedExp {
                min_ms: a as u64,
                mean_extra_ms: b as u64,
            },
            d => bail!("unknown delay distribution {d:?} (uniform, exp)"),
        };
        let (lo, hi) = range(&self.outage_s)?;
        let mut cfg = RunConfig {
            seed: self.seed,
            n: self.n,
            publish_every_ms: self.publish_every_ms,
            payload_len: self.payload,
            tail: self.tail,
            window: self.w,
            k: self.k,
            sdpp_credit: self.sdpp_credit,
            t_ack_secs: self.t_ack,
            t_closure_secs: self.t_closure,
            retransmit_timeout_ms: self.rto_ms,
            ack_every: self.ack_every,
            scenario: self.scenario,
            malice_at: self.malice_at,
            idle_stop_ms: self.idle_stop_s.saturating_mul(1000),
            crypto: self.crypto,
            deposit_msgs: self.deposit_msgs,
            top_up_msgs: self.top_up_msgs,
            cooperative_close: !self.no_cooperative_close,
            ..RunConfig::default()
        };
        cfg.link.loss = self.loss;
        cfg.link.delay = delay;
        cfg.link.outage_every_ms = self.outage_every_s.map(|s| (s * 1000.0) as u64);
        cfg.link.outage_ms = ((lo * 1000.0) as u64, (hi * 1000.0) as u64);
        cfg.chain.block_ms = self.block_ms;
        cfg.chain.delta_onchain_ms = self.delta_ms;
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let base = cli.opts.config()?;
    let threads = cli.opts.threads.max(1);
    println!("crypto: {}", base.crypto.describe());
    match cli.cmd.unwrap_or(Cmd::Table {
        csv: None,
        runs: false,
    }) {
        Cmd::Table { csv, runs } => {
            let t = Instant::now();
            let results = sweep::run_all(&sweep::table_jobs(&base), threads);
            if runs {
                println!("{}", sweep::format_runs(&results));
            }
            println!("{}", sweep::format_table1(&sweep::table1(&results), &base));
            println!(
                "unpaid: max over the runs with an honest seller (honest, withhold, leave); \
                 excess: max over the runs with an honest buyer (honest, drop, overclaim); \
                 latency and gas: the honest run. {} runs in {:.1} s on {threads} thread(s).",
                results.len(),
                t.elapsed().as_secs_f64()
            );
            if let Some(p) = csv {
                sweep::write_csv(&p, "table", &results)?;
                println!("wrote {}", p.display());
            }
        }
        Cmd::Capacity { gas_per_block, block_secs } => {
            let chains = match (gas_per_block, block_secs) {
                (Some(gas_per_block), Some(block_secs)) if gas_per_block > 0 && block_secs > 0.0 => vec![capacity::ChainProfile {
                    name: format!("{gas_per_block} gas / {block_secs} s"),
                    gas_per_block,
                    block_secs,
                }],
                (Some(_), Some(_)) => bail!("--gas-per-block and --block-secs must be positive"),
                _ => capacity::ChainProfile::defaults(),
            };
            let costs = capacity::measure(base.n);
            println!(
                "an honest subscription of {} messages: {} transactions, {} gas ({} without cooperative close)\n",
                base.n, costs.subscription_txs, costs.subscription, costs.subscription_without_cooperative
            );
            print!("{}", capacity::format(&costs, &chains));
        }
        Cmd::Run {
            protocol,
            crypto_cost,
        } => {
            if protocol != Protocol::Supra && Scenario::SUPRA_ONLY.contains(&base.scenario) {
                bail!(
                    "scenario {} exercises SUPRA's on-chain fallback: run it with --protocol supra",
                    base.scenario
                );
            }
            let r = sweep::run_one(protocol, &base);
            println!("{}", sweep::format_runs(std::slice::from_ref(&r)));
            println!("calls: {}", r.ledger.summary());
            println!(
                "published {} delivered {} paid {} posted {} accusations {} upheld {} data frames {}",
                r.published, r.delivered, r.paid, r.posted, r.accusations, r.upheld, r.data_frames
            );
            println!(
                "simulated {:.1} s in {:.2} s wall ({:.0} simulated msgs/s of wall time)",
                r.sim_ms as f64 / 1e3,
                r.wall_ms / 1e3,
                r.published as f64 / (r.wall_ms / 1e3)
            );
            for n in &r.notes {
                println!("note: {n}");
            }
            if crypto_cost && protocol == Protocol::Supra {
                let c = crypto::calibrate(400, base.crypto);
                let est = c.estimate_ms(r.signatures, r.verifications);
                println!(
                    "crypto cost ({}): sign {:.2} us, verify {:.2} us here; {} signatures + {} verifications = {:.2} s, {:.0}% of the wall time",
                    base.crypto,
                    c.sign_us,
                    c.verify_us,
                    r.signatures,
                    r.verifications,
                    est / 1e3,
                    100.0 * est / r.wall_ms
                );
            }
        }
        Cmd::Sweep {
            losses,
            ns,
            ks,
            out,
        } => {
            std::fs::create_dir_all(&out)?;
            let t = Instant::now();
            let loss = sweep::run_all(&sweep::loss_jobs(&base, &losses), threads);
            sweep::write_csv(&out.join("sweep_loss.csv"), "loss", &loss)?;
            println!("loss sweep ({} runs):", loss.len());
            println!("{}", sweep::format_runs(&loss));
            let nres = sweep::run_all(&sweep::n_jobs(&base, &ns), threads);
            sweep::write_csv(&out.join("sweep_n.csv"), "n", &nres)?;
            println!("N sweep ({} runs):", nres.len());
            println!("{}", sweep::format_runs(&nres));
            let mut kres = sweep::run_all(&sweep::k_jobs(&base, &ks), threads);
            // SUPRA has no K: one honest run at the base settings stands for every K.
            let supra = sweep::run_one(
                Protocol::Supra,
                &RunConfig {
                    scenario: Scenario::Honest,
                    ..base.clone()
                },
            );
            kres.push(supra);
            sweep::write_csv(&out.join("sweep_k.csv"), "k", &kres)?;
            println!("K sweep ({} runs):", kres.len());
            println!("{}", sweep::format_runs(&kres));
            plot::txs_vs_loss(&out.join("txs_vs_loss.png"), &loss)?;
            plot::txs_vs_k(&out.join("txs_vs_k.png"), &kres, &ks)?;
            plot::unpaid_vs_loss(&out.join("unpaid_vs_loss.png"), &loss)?;
            plot::overview(&out.join("overview.png"), &loss, &kres, &ks, &base)?;
            println!(
                "wrote sweep_loss.csv sweep_n.csv sweep_k.csv txs_vs_loss.png txs_vs_k.png \
                 unpaid_vs_loss.png overview.png to {} in {:.1} s",
                out.display(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
