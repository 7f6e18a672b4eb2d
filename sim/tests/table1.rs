//! The paper's Table I claims, pinned on deterministic seeds. SUPRA runs drive the real engine
//! with real k256 signatures, so N stays in the low thousands here.

use supra_sim::chain::Call;
use supra_sim::metrics::RunResult;
use supra_sim::params::{Protocol, RunConfig, Scenario};
use supra_sim::sweep::{self, run_one};

fn cfg(n: u64, loss: f64, scenario: Scenario) -> RunConfig {
    let mut c = RunConfig {
        seed: 7,
        n,
        window: 32,
        k: 50,
        scenario,
        ..RunConfig::default()
    };
    c.link.loss = loss;
    c.validate().expect("valid test config");
    c
}

fn describe(r: &RunResult) -> String {
    format!(
        "{} {} N={} loss={}: txs {} [{}] delivered {} paid {} notes {:?}",
        r.protocol,
        r.scenario,
        r.cfg.n,
        r.cfg.link.loss,
        r.ledger.txs,
        r.ledger.summary(),
        r.delivered,
        r.paid,
        r.notes
    )
}

#[test]
fn supra_uses_a_constant_number_of_transactions_whatever_n() {
    for cooperative_close in [true, false] {
        let mut txs = Vec::new();
        for n in [300, 1_200, 4_800] {
            let c = RunConfig {
                cooperative_close,
                ..cfg(n, 0.0, Scenario::Honest)
            };
            let r = run_one(Protocol::Supra, &c);
            assert_eq!(r.delivered, n, "{}", describe(&r));
            assert_eq!(r.paid, n, "{}", describe(&r));
            assert_eq!(r.ledger.count(Call::Open), 1, "{}", describe(&r));
            if cooperative_close {
                // `open` and the seller's `closeCooperatively`, nothing else.
                honest_cooperative_close(&r);
            } else {
                // The buyer's `requestClose` goes out with its Stop, once.
                assert_eq!(r.ledger.count(Call::RequestClose), 1, "{}", describe(&r));
                // `settle` after T_closure; the buyer's last ack claimed (the engine claims each
                // better ack that arrives after the close is mined: at most the two acks the
                // buyer sends as it stops can race the block).
                assert_eq!(r.ledger.count(Call::Settle), 1, "{}", describe(&r));
                assert_eq!(r.ledger.reverted, 0, "{}", describe(&r));
                assert!(
                    (1..=3).contains(&r.ledger.count(Call::Claim)),
                    "{}",
                    describe(&r)
                );
            }
            // Nothing posted, nothing depends on N.
            assert_eq!(r.posted, 0, "{}", describe(&r));
            txs.push(r.ledger.txs);
        }
        if cooperative_close {
            assert!(txs.iter().all(|t| *t == 2), "{txs:?}");
        } else {
            assert!(txs.iter().all(|t| (4..=6).contains(t)), "{txs:?}");
        }
        // 16x more messages, no more transactions.
        assert!(txs[2] <= txs[0].max(4), "{txs:?}");
    }
}

/// Issue 10's check at the sizes of the README: N = 1 000, 10 000 and 100 000 with the default
/// deposit (covering the stream), the engine's fast simulation keys (same protocol, a fraction
/// of the wall time; `tests/crypto.rs` shows the metrics are identical). The same transactions
/// at every size, with the cooperative close (`open` and the seller's `closeCooperatively`: the
/// buyer holds back its `requestClose`, the seller does not claim the ack the close pays) and
/// without it (`open`, `requestClose`, `claim`, `settle`).
#[test]
fn supra_honest_transactions_are_the_same_at_1k_10k_and_100k_messages() {
    for (cooperative_close, expected, reverted) in [(true, 2, 0), (false, 4, 0)] {
        let mut runs = Vec::new();
        for n in [1_000, 10_000, 100_000] {
            let c = RunConfig {
                seed: 1,
                n,
                crypto: supra_sim::params::Crypto::Fast,
                cooperative_close,
                ..RunConfig::default()
            };
            let r = run_one(Protocol::Supra, &c);
            assert_eq!((r.delivered, r.paid), (n, n), "{}", describe(&r));
            assert_eq!(r.ledger.reverted, reverted, "{}", describe(&r));
            runs.push((r.ledger.txs, r.ledger.summary(), r.ledger.gas, describe(&r)));
        }
        for (txs, summary, gas, what) in &runs {
            assert_eq!(*txs, expected, "{what}");
            assert_eq!(summary, &runs[0].1, "{what}");
            assert_eq!(*gas, runs[0].2, "{what}");
        }
    }
}

#[test]
fn baselines_use_one_transaction_per_k() {
    for n in [300, 1_200, 2_525] {
        for p in [Protocol::Sdpp, Protocol::Ppsp] {
            let c = cfg(n, 0.0, Scenario::Honest);
            let r = run_one(p, &c);
            assert_eq!(r.delivered, n, "{}", describe(&r));
            assert_eq!(r.paid, n, "{}", describe(&r));
            assert_eq!(r.ledger.txs, n.div_ceil(c.k), "{}", describe(&r));
            assert_eq!(r.ledger.count(Call::Pay), r.ledger.txs);
        }
    }
}

#[test]
fn supra_transactions_do_not_grow_with_loss() {
    // Retransmissions recover losses long before T_off-ack: no posting, still four transactions.
    for (loss, cooperative_close) in [(0.05, false), (0.2, false), (0.05, true), (0.2, true)] {
        let c = RunConfig {
            cooperative_close,
            ..cfg(1_500, loss, Scenario::Honest)
        };
        let r = run_one(Protocol::Supra, &c);
        assert_eq!(r.delivered, 1_500, "{}", describe(&r));
        if cooperative_close {
            honest_cooperative_close(&r);
        } else {
            assert_eq!(r.ledger.txs, 4, "{}", describe(&r));
        }
        assert_eq!(r.posted, 0, "{}", describe(&r));
        assert!(
            r.data_frames > 1_500,
            "a lossy link needs retransmissions: {}",
            describe(&r)
        );
    }
}

#[test]
fn supra_seller_is_never_left_unpaid() {
    for loss in [0.0, 0.1] {
        for scenario in [Scenario::Withhold, Scenario::Leave] {
            for malice_at in [100, 333, 777] {
                let c = RunConfig {
                    malice_at: Some(malice_at),
                    ..cfg(1_000, loss, scenario)
                };
                let r = run_one(Protocol::Supra, &c);
                // (`leave` rounds the moment down to the buyer's next ack.)
                assert!(r.delivered + c.ack_every >= malice_at, "{}", describe(&r));
                assert_eq!(r.unpaid(), 0, "{}", describe(&r));
                assert!(r.excess() <= c.window, "{}", describe(&r));
            }
        }
    }
}

#[test]
fn supra_withholding_buyer_pays_for_what_the_seller_posted() {
    let c = cfg(1_000, 0.0, Scenario::Withhold);
    let r = run_one(Protocol::Supra, &c);
    // The seller stops W messages past the last ack, posts them, and claims them.
    assert_eq!(r.posted, c.window, "{}", describe(&r));
    assert_eq!(r.ledger.count(Call::ClaimPosted), 1, "{}", describe(&r));
    assert_eq!(r.unpaid(), 0, "{}", describe(&r));
    assert_eq!(r.excess(), 0, "{}", describe(&r));
}

#[test]
fn supra_buyer_overpays_at_most_w() {
    for loss in [0.0, 0.1] {
        for scenario in Scenario::ALL {
            let c = cfg(1_000, loss, scenario);
            let r = run_one(Protocol::Supra, &c);
            assert!(r.excess() <= c.window, "{}", describe(&r));
            if scenario.honest_seller() {
                assert_eq!(r.unpaid(), 0, "{}", describe(&r));
            }
        }
    }
}

#[test]
fn supra_overclaim_is_capped_by_the_judge_at_w() {
    let c = cfg(1_000, 0.0, Scenario::Overclaim);
    let r = run_one(Protocol::Supra, &c);
    // The bound holds: the seller gets at most W messages the buyer never received (W exactly
    // when the buyer requests the close with its Stop; the buyer's grace period for a
    // cooperative close, which this seller withholds, leaves it a few less) ...
    assert!((1..=c.window).contains(&r.excess()), "{}", describe(&r));
    // ... and nothing more: the forged ack and the claim past the window revert.
    let reverts: Vec<&String> = r.ledger.reverts.keys().collect();
    assert!(
        reverts.iter().any(|k| k.starts_with("claim: WrongSigner")),
        "{reverts:?}"
    );
    assert!(
        reverts
            .iter()
            .any(|k| k.starts_with("claimPosted: ClaimOutOfWindow")),
        "{reverts:?}"
    );
    // The buyer got its N, plus what was in flight when its Stop arrived (owed and paid).
    assert!(
        (c.n..=c.n + c.window).contains(&r.delivered),
        "{}",
        describe(&r)
    );
}

/// Lemma 3 in the simulator: a cheating seller whose `Stop` reached the buyer posts and claims
/// `W` messages past it. Without the cooperative close the claim is recorded and the buyer's
/// engine submits the seller's Stop (`submitStop`): the judge gives the buyer `F - R`, and the
/// seller is paid exactly what was delivered. With it, the buyer closes cooperatively once its
/// grace period is over (this seller withholds its own `closeCooperatively`), before the seller
/// can record its claim: any cheating call is refused. (Withholding its Stop, the `overclaim` seller gets `W`.)
#[test]
fn supra_overclaim_past_its_own_stop_is_punished_or_preempted() {
    for cooperative_close in [false, true] {
        let c = RunConfig {
            cooperative_close,
            ..cfg(1_000, 0.0, Scenario::OverclaimPastStop)
        };
        let r = run_one(Protocol::Supra, &c);
        assert_eq!(r.excess(), 0, "{}", describe(&r));
        assert_eq!(r.unpaid(), 0, "{}", describe(&r));
        assert_eq!(r.ledger.count(Call::Settle), 0, "{}", describe(&r));
        if cooperative_close {
            assert_eq!(r.ledger.count(Call::SubmitStop), 0, "{}", describe(&r));
            assert_eq!(
                r.ledger.count(Call::CloseCooperatively),
                1,
                "{}",
                describe(&r)
            );
            assert_eq!(r.ledger.count(Call::RequestClose), 0, "{}", describe(&r));
            assert!(
                r.ledger
                    .reverts
                    .keys()
                    .filter(|k| k.starts_with("claimPosted"))
                    .all(|k| k.contains("WrongStatus")),
                "{}",
                describe(&r)
            );
        } else {
            assert_eq!(r.ledger.count(Call::SubmitStop), 1, "{}", describe(&r));
            assert!(
                r.notes
                    .iter()
                    .any(|n| n.starts_with("submitStop proved a posted claim")),
                "{}",
                describe(&r)
            );
            // The posted claim past the Stop was recorded (the penalty needs it).
            let (mined, reverted, _) = r.ledger.by_call[&Call::ClaimPosted];
            assert_eq!(mined - reverted, 1, "{}", describe(&r));
        }
    }
}

#[test]
fn supra_seller_dropping_a_message_is_refunded_to_the_buyer() {
    let c = RunConfig {
        malice_at: Some(400),
        ..cfg(1_000, 0.0, Scenario::Drop)
    };
    let r = run_one(Protocol::Supra, &c);
    assert_eq!(r.accusations, 1, "{}", describe(&r));
    assert_eq!(r.upheld, 1, "{}", describe(&r));
    assert_eq!(r.ledger.count(Call::Resolve), 1, "{}", describe(&r));
    // Delivery stops at the gap; the buyer paid for exactly what it got before it.
    assert_eq!(r.delivered, 400, "{}", describe(&r));
    assert_eq!(r.excess(), 0, "{}", describe(&r));
}

#[test]
fn sdpp_leaves_k_minus_1_unpaid_when_the_buyer_leaves_before_an_invoice() {
    for k in [10, 50, 100] {
        let c = RunConfig {
            k,
            ..cfg(1_000, 0.0, Scenario::Leave)
        };
        let r = run_one(Protocol::Sdpp, &c);
        assert_eq!(r.unpaid(), k - 1, "{}", describe(&r));
        assert_eq!(r.excess(), 0, "{}", describe(&r));
        // Withholding the payment of a delivered batch costs the seller the whole batch.
        let c = RunConfig {
            scenario: Scenario::Withhold,
            ..c
        };
        let r = run_one(Protocol::Sdpp, &c);
        assert_eq!(r.unpaid(), k, "{}", describe(&r));
    }
}

#[test]
fn sdpp_buyer_never_pays_for_undelivered_items() {
    for scenario in [Scenario::Drop, Scenario::Overclaim] {
        let c = RunConfig {
            malice_at: Some(525),
            ..cfg(1_000, 0.05, scenario)
        };
        let r = run_one(Protocol::Sdpp, &c);
        assert_eq!(r.excess(), 0, "{}", describe(&r));
    }
}

#[test]
fn ppsp_buyer_loses_a_chunk_to_a_cheating_seller_and_seller_loses_nothing() {
    let c = cfg(1_000, 0.0, Scenario::Drop);
    let r = run_one(Protocol::Ppsp, &c);
    assert_eq!(r.excess(), c.k, "{}", describe(&r));
    for scenario in [Scenario::Withhold, Scenario::Leave] {
        let r = run_one(Protocol::Ppsp, &cfg(1_000, 0.1, scenario));
        assert_eq!(r.unpaid(), 0, "{}", describe(&r));
    }
}

#[test]
fn table1_summary_orders_the_protocols_as_the_paper_does() {
    let base = cfg(1_000, 0.05, Scenario::Honest);
    let results = sweep::run_all(&sweep::table_jobs(&base), 2);
    let rows = sweep::table1(&results);
    let row = |p| rows.iter().find(|r| r.protocol == p).expect("row");
    let (s, d, p) = (
        row(Protocol::Supra),
        row(Protocol::Sdpp),
        row(Protocol::Ppsp),
    );
    // The honest run closes cooperatively (the default): see `honest_cooperative_close`.
    assert_eq!(s.txs, 2, "{}", s.txs);
    assert_eq!(d.txs, 20);
    assert_eq!(p.txs, 20);
    assert_eq!(s.max_unpaid, 0);
    // At most W. (Here 0: the `overclaim` seller's postings are within the W past its Stop
    // that the buyer still accepts, which it takes from the chain, so it gets what it pays
    // for; `supra_overclaim_is_capped_by_the_judge_at_w` shows the bound reached.)
    assert!(s.max_excess <= base.window);
    assert_eq!(d.max_unpaid, base.k);
    assert_eq!(d.max_excess, 0);
    assert_eq!(p.max_unpaid, 0);
    assert_eq!(p.max_excess, base.k);
    // Off-chain payments: SUPRA delivers at link speed, the baselines wait for blocks.
    assert!(s.p99.unwrap() < d.p50.unwrap() && s.p99.unwrap() < p.p50.unwrap());
    let text = sweep::format_table1(&rows, &base);
    assert!(
        text.contains(&format!("| supra | {} | 0 (", s.txs)),
        "{text}"
    );
}

#[test]
fn runs_are_deterministic_and_thread_count_does_not_matter() {
    let c = cfg(800, 0.1, Scenario::Honest);
    let a = run_one(Protocol::Supra, &c);
    let b = run_one(Protocol::Supra, &c);
    assert_eq!(a.latencies, b.latencies);
    assert_eq!(
        (a.ledger.clone(), a.paid, a.data_frames),
        (b.ledger.clone(), b.paid, b.data_frames)
    );
    let other = run_one(
        Protocol::Supra,
        &RunConfig {
            seed: 8,
            ..c.clone()
        },
    );
    assert_ne!(a.latencies, other.latencies, "the seed drives the link");
    let jobs: Vec<(Protocol, RunConfig)> = Protocol::ALL
        .iter()
        .map(|p| {
            (
                *p,
                RunConfig {
                    n: 300,
                    ..c.clone()
                },
            )
        })
        .collect();
    let one = sweep::run_all(&jobs, 1);
    let two = sweep::run_all(&jobs, 2);
    for (x, y) in one.iter().zip(&two) {
        assert_eq!(x.protocol, y.protocol);
        assert_eq!(x.latencies, y.latencies);
        assert_eq!(x.ledger, y.ledger);
    }
}

#[test]
fn csv_and_png_outputs() {
    let dir = std::env::temp_dir().join(format!("supra-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = RunConfig {
        n: 300,
        ..cfg(300, 0.0, Scenario::Honest)
    };
    let loss = sweep::run_all(&sweep::loss_jobs(&base, &[0.0, 0.1]), 2);
    let ks = [10, 50];
    let mut kres = sweep::run_all(&sweep::k_jobs(&base, &ks), 2);
    kres.push(run_one(Protocol::Supra, &base));
    let csv = dir.join("sweep_loss.csv");
    sweep::write_csv(&csv, "loss", &loss).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + loss.len());
    assert!(text.starts_with(sweep::CSV_HEADER));
    let cols = sweep::CSV_HEADER.split(',').count();
    for line in text.lines() {
        assert_eq!(line.split(',').count(), cols, "{line}");
    }
    let png = dir.join("overview.png");
    supra_sim::plot::overview(&png, &loss, &kres, &ks, &base).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 10_000,
        "an empty picture? {} bytes",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Engine fix 1 (sim/README.md): the stream goes on after the buyer's `Stop{seq: s}`, and the
/// seller had already sent messages past `s` when the Stop arrived. Before, the buyer refused them
/// while the seller posted and claimed them: the honest buyer paid for messages it did not take,
/// and the seller paid a `post` for each. Now they stay owed and the buyer takes and acks them:
/// it pays for exactly what it received, nothing is posted, one `settle`.
#[test]
fn honest_buyer_pays_nothing_past_its_stop_when_the_stream_goes_on() {
    for (seed, window) in [(7, 32), (1, 64)] {
        let c = RunConfig {
            seed,
            window,
            tail: 64,
            ..cfg(1_000, 0.0, Scenario::Honest)
        };
        for cooperative_close in [false, true] {
            let c = RunConfig {
                cooperative_close,
                ..c.clone()
            };
            let r = run_one(Protocol::Supra, &c);
            assert_eq!(r.excess(), 0, "{}", describe(&r));
            assert_eq!(r.unpaid(), 0, "{}", describe(&r));
            assert_eq!(r.posted, 0, "{}", describe(&r));
            assert_eq!(r.ledger.count(Call::ClaimPosted), 0, "{}", describe(&r));
            if cooperative_close {
                honest_cooperative_close(&r);
            } else {
                assert_eq!(r.ledger.reverted, 0, "{}", describe(&r));
                assert_eq!(r.ledger.count(Call::Settle), 1, "{}", describe(&r));
            }
        }
    }
}

/// An honest run's cooperative close: one `open` and the seller's `closeCooperatively`, which
/// settles; no `requestClose` (the buyer holds it back), no `claim` (the close pays the final
/// ack), no `settle`, nothing refused.
fn honest_cooperative_close(r: &RunResult) {
    let d = describe(r);
    assert_eq!(r.ledger.count(Call::Open), 1, "{d}");
    assert_eq!(r.ledger.count(Call::CloseCooperatively), 1, "{d}");
    assert_eq!(r.ledger.reverted, 0, "{d}");
    assert_eq!(r.ledger.txs, 2, "{d}");
}

/// Issue 17, liveness after the on-chain fallback: the buyer's broker freezes three times for
/// `T_ack` (longer than `T_off-ack`) with the window full; the seller posts the window each
/// time, and the buyer takes it from the chain when it wakes up. Every published message is
/// delivered and paid, with and without loss. Before the fix the stream stalled at the first
/// pause (the seller ignored the buyer's ack for messages it had posted): 1 062 of 2 000
/// delivered, then the seller's broker stopped the idle channel.
#[test]
fn supra_stream_survives_buyer_pauses_past_t_off_ack() {
    for loss in [0.0, 0.05] {
        let r = run_one(Protocol::Supra, &cfg(2_000, loss, Scenario::Pause));
        let d = describe(&r);
        assert_eq!(r.published, 2_000, "{d}");
        assert_eq!(r.delivered, r.published, "{d}");
        assert_eq!(r.paid, r.delivered, "{d}");
        assert!(
            r.posted >= 32,
            "every pause makes the seller post its window: {d}"
        );
        assert_eq!(r.upheld, 0, "{d}");
        assert!(
            r.notes
                .iter()
                .any(|n| n == "buyer broker paused for T_ack x3"),
            "{d}"
        );
        assert!(
            !r.notes
                .iter()
                .any(|n| n.contains("stopped an idle channel")),
            "{d}"
        );
    }
}
