//! Fast simulation crypto changes wall-clock timings only: the same seeded SUPRA runs, with real
//! k256 and with the engine's `testkit` fast keys, give identical protocol metrics.

use supra_sim::metrics::RunResult;
use supra_sim::params::{Crypto, Protocol, RunConfig, Scenario};
use supra_sim::sweep::run_one;

/// Everything a run measures except wall time.
fn metrics(r: &RunResult) -> impl PartialEq + std::fmt::Debug {
    (
        (r.protocol, r.scenario),
        r.ledger.clone(),
        (r.delivered, r.paid, r.unpaid(), r.excess()),
        (r.posted, r.accusations, r.upheld),
        (r.published, r.data_frames, r.sim_ms),
        (r.signatures, r.verifications),
        r.latencies.clone(),
        r.notes.clone(),
    )
}

#[test]
fn fast_crypto_gives_the_same_metrics_as_real_crypto() {
    for loss in [0.0, 0.05] {
        for scenario in Scenario::ALL {
            let real = RunConfig {
                seed: 11,
                n: 1_000,
                window: 32,
                scenario,
                crypto: Crypto::Real,
                ..RunConfig::default()
            };
            let mut real = real;
            real.link.loss = loss;
            let fast = RunConfig {
                crypto: Crypto::Fast,
                ..real.clone()
            };
            let (r, f) = (
                run_one(Protocol::Supra, &real),
                run_one(Protocol::Supra, &fast),
            );
            assert_eq!(r.cfg.crypto, Crypto::Real);
            assert_eq!(f.cfg.crypto, Crypto::Fast);
            assert_eq!(
                metrics(&r),
                metrics(&f),
                "{scenario} at loss {loss}: real {} vs fast {}",
                r.ledger.summary(),
                f.ledger.summary()
            );
            // Not vacuous: the runs did what the scenario is about.
            assert!(r.delivered > 0 && r.paid > 0, "{scenario}");
            match scenario {
                Scenario::Withhold | Scenario::Overclaim => assert!(r.posted > 0, "{scenario}"),
                Scenario::Drop => assert_eq!(r.accusations, 1, "{scenario}"),
                _ => {}
            }
        }
    }
}

#[test]
fn crypto_modes_parse_and_name_themselves() {
    for c in Crypto::ALL {
        assert_eq!(c.name().parse::<Crypto>(), Ok(c));
        assert!(c.describe().to_lowercase().starts_with(c.name()));
    }
    assert_eq!(RunConfig::default().crypto, Crypto::Real);
    assert!("slow".parse::<Crypto>().is_err());
}
