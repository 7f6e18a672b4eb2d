//! Deterministic end-to-end scenarios through the testkit harness.

use supra_channel::testkit::{LinkConfig, Sim, SimConfig};

fn run(cfg: SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    let deadline = sim.now + 3_600_000;
    let ok = sim.run(deadline, true);
    if let Err(e) = sim.check() {
        panic!("property violated: {e}\nobs: {:?}", summary(&sim));
    }
    assert!(
        ok,
        "did not complete: next_seq {} buyers at {:?}",
        sim.seller.next_seq(),
        sim.buyers
            .iter()
            .map(|b| b.chan.as_ref().map(|c| c.next_seq()))
            .collect::<Vec<_>>()
    );
    sim
}

fn summary(sim: &Sim) -> String {
    format!(
        "published {} acks {} posted {} accusations {} crashes {} max_in_flight {}",
        sim.obs.published.len(),
        sim.obs.acks,
        sim.obs.posted_at.len(),
        sim.obs.accusations,
        sim.obs.crashes,
        sim.obs.max_in_flight
    )
}

#[test]
fn perfect_link_one_buyer() {
    let sim = run(SimConfig::default());
    assert_eq!(sim.obs.outbox[0].len(), 100);
    assert!(
        sim.obs.posted_at.is_empty(),
        "nothing should be posted on a perfect link"
    );
    assert_eq!(sim.obs.accusations, 0);
}

#[test]
fn perfect_link_many_buyers_late_joiners() {
    let cfg = SimConfig {
        buyers: 5,
        join_at: vec![0, 0, 100, 300, 777],
        messages: 200,
        ..Default::default()
    };
    let sim = run(cfg);
    for (i, b) in sim.buyers.iter().enumerate() {
        let start = b.chan.as_ref().unwrap().offer().startSeq;
        assert_eq!(sim.obs.outbox[i].len() as u64, 200 - start, "buyer {i}");
    }
    assert!(sim.seller.epoch() >= 1);
}

#[test]
fn lossy_link() {
    let cfg = SimConfig {
        buyers: 3,
        link: LinkConfig {
            loss_permille: 200,
            dup_permille: 100,
            delay_min_ms: 1,
            delay_max_ms: 50,
            flap_permille: 0,
            outage_ms: (0, 0),
        },
        messages: 300,
        ..Default::default()
    };
    let sim = run(cfg);
    println!("{}", summary(&sim));
}

#[test]
fn outages_force_postings() {
    let cfg = SimConfig {
        buyers: 2,
        link: LinkConfig {
            loss_permille: 50,
            dup_permille: 50,
            delay_min_ms: 1,
            delay_max_ms: 30,
            flap_permille: 20,
            outage_ms: (1_000, 30_000),
        },
        messages: 400,
        publish_every_ms: 50,
        ..Default::default()
    };
    let sim = run(cfg);
    println!("{}", summary(&sim));
    assert!(
        !sim.obs.posted_at.is_empty(),
        "long outages should force postings"
    );
}

#[test]
fn crashes_and_restarts() {
    let cfg = SimConfig {
        buyers: 2,
        link: LinkConfig {
            loss_permille: 50,
            dup_permille: 50,
            delay_min_ms: 1,
            delay_max_ms: 30,
            flap_permille: 5,
            outage_ms: (100, 5_000),
        },
        messages: 300,
        seller_crash_permille: 10,
        buyer_crash_permille: 10,
        ..Default::default()
    };
    let sim = run(cfg);
    println!("{}", summary(&sim));
    assert!(sim.obs.crashes > 0);
}

/// Regression: after a seller crash the buyer's resumed ack was lost while the window was full
/// and every in-flight message posted; without a retransmission timer nothing moved again.
#[test]
fn lost_ack_with_full_window_after_restarts() {
    use alloy_primitives::U256;
    use supra_channel::BuyerConfig;
    use supra_channel::seller::{SellerConfig, Terms};
    let cfg = SimConfig {
        seed: 8621833166423595748,
        buyers: 2,
        join_at: vec![801],
        terms: Terms {
            price: U256::from(7u64),
            token: Default::default(),
            window: 5,
            t_ack_secs: 10,
            t_closure_secs: 60,
            offer_validity_secs: 600,
        },
        seller: SellerConfig {
            delta_onchain_ms: 2000,
            retransmit_timeout_ms: 200,
            ..Default::default()
        },
        buyer: BuyerConfig {
            ack_every: 1,
            ack_delay_ms: 15,
            ..Default::default()
        },
        link: LinkConfig {
            loss_permille: 162,
            dup_permille: 58,
            delay_min_ms: 1,
            delay_max_ms: 11,
            flap_permille: 4,
            outage_ms: (50, 20000),
        },
        chain_delay_ms: 1000,
        messages: 61,
        publish_every_ms: 38,
        publish_batch: 1,
        payload_len: 24,
        seller_crash_permille: 4,
        buyer_crash_permille: 2,
        start_ms: 1_700_000_000_000,
        pauses: Default::default(),
    };
    let mut sim = run(cfg);
    sim.run_for(30_000);
    sim.check().unwrap();
    assert!(sim.acked(0, 60) && sim.acked(1, 60));
}

#[test]
fn log_is_pruned_once_acked() {
    let mut sim = run(SimConfig {
        messages: 1000,
        publish_every_ms: 1,
        ..Default::default()
    });
    sim.run_for(5_000);
    assert!(
        sim.seller.message(0).is_none(),
        "acked messages are not retained"
    );
    assert!(
        sim.seller.message(999).is_some(),
        "the last message is always retained"
    );
}
