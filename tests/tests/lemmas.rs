//! The paper's Lemmas 1-4 and the missing-message dispute, as proptest properties against a real
//! judge on a real Anvil (one Anvil for this whole test binary, one judge per property, fresh
//! accounts per case). Time moves only through Anvil's `evm_increaseTime` / `evm_mine`.
//!
//! Every case also checks conservation: what the judge paid the seller and the buyer (from its
//! events, and from their balances net of gas) adds up to the deposit, and the judge's balance is
//! back to what it was before the case (nothing stuck after settle).

#[path = "lemmas/world.rs"]
mod world;

use alloy::primitives::U256;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use supra_channel::buyer::BuyerConfig;
use supra_channel::seller::{SellerConfig, Terms};
use supra_judge::{ChannelStatus, Judge};
use supra_tests::{Party, payouts, property, to_i128};
use world::{AckPolicy, BuyerPlan, LinkPlan, Scenario, SellerPlan, World};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// A property's chain: a judge deployed for it on the binary's shared Anvil, and the runtime its
/// clients live on.
struct Bench {
    rt: tokio::runtime::Runtime,
    judge: Judge,
}

impl Bench {
    fn new() -> Bench {
        let rt = runtime();
        let judge = rt.block_on(supra_tests::deploy_judge());
        Bench { rt, judge }
    }

    /// Runs one case and checks that the judge holds what it held before (nothing stuck).
    fn case(&self, run: impl AsyncFnOnce(&Judge) -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
        self.rt.block_on(async {
            let before = self.judge.balance(self.judge.address()).await.expect("judge balance");
            run(&self.judge).await?;
            let after = self.judge.balance(self.judge.address()).await.expect("judge balance");
            prop_assert_eq!(after, before, "the judge keeps funds after the case");
            Ok(())
        })
    }
}

/// Conservation on a settled channel: the judge's events, its `channel()` view and the parties'
/// balances (net of gas) agree, and seller + buyer payouts = deposit. Returns (seller, buyer) payouts.
async fn settled_conservation(
    judge: &Judge,
    channel: supra_channel::types::ChannelId,
    from_block: u64,
    seller: &Party,
    buyer: &Party,
    deposit: U256,
) -> Result<(U256, U256), TestCaseError> {
    let info = judge.channel(channel).await.expect("channel view");
    prop_assert_eq!(info.status, ChannelStatus::Settled, "the channel ends settled");
    prop_assert_eq!(info.deposit, deposit);
    let (to_seller, to_buyer) = payouts(judge, channel, from_block).await;
    prop_assert_eq!(to_seller, info.claimed, "events and channel() agree on R");
    prop_assert_eq!(to_seller + to_buyer, deposit, "seller + buyer payouts = deposit");
    prop_assert_eq!(seller.net_gain().await, to_i128(to_seller), "seller's balance net of gas");
    prop_assert_eq!(buyer.net_gain().await, to_i128(to_buyer) - to_i128(deposit), "buyer's balance net of gas");
    Ok((to_seller, to_buyer))
}

// ---- Lemma 2 --------------------------------------------------------------------------------------

prop_compose! {
    fn buyer_plan()(
        acks in prop_oneof![Just(AckPolicy::All), Just(AckPolicy::Withhold), (0u64..=10).prop_map(AckPolicy::Below)],
        leave_at in proptest::option::of(0u64..=40_000),
        leave_silently in any::<bool>(),
        close_at in proptest::option::of(0u64..=40_000),
        close_with_stop in any::<bool>(),
        accuse_at in proptest::option::of(0u64..=40_000),
        accuse_acked in any::<bool>(),
        settle_asap in any::<bool>(),
    ) -> BuyerPlan {
        BuyerPlan { acks, leave_at, leave_silently, close_at, close_with_stop, accuse_at, accuse_acked, settle_asap }
    }
}

prop_compose! {
    fn lemma2_scenario()(
        (price, window, start_seq, t_ack, closure_extra) in (1u64..=1_000_000_000_000, 1u64..=8, 0u64..=5, 6u32..=40, 0u32..=90),
        gaps_ms in proptest::collection::vec(0u64..=4_000, 1..=14),
        extra_messages in 0u64..=14,
        (delta_pct, latency_pct, threshold, rto) in (1u64..=33, 0u64..=50, proptest::option::of(1u64..=8), 300u64..=3_000),
        (ack_every, ack_delay_ms) in (1u64..=4, 0u64..=500),
        (delay_ms, data_loss, ack_loss, seed) in (1u64..=300, prop_oneof![Just(0u32), Just(100), Just(300)], prop_oneof![Just(0u32), Just(100), Just(300)], any::<u64>()),
        buyer in buyer_plan(),
        seller_stop_after_ms in 0u64..=5_000,
    ) -> Scenario {
        let delta_onchain_ms = (u64::from(t_ack) * 10 * delta_pct).max(1_000);
        // The seller's own terms leave it time to post and claim after a close request:
        // T_closure >= 2 Δ + grace (any T_closure vs T_ack).
        let t_closure = u32::try_from((2 * delta_onchain_ms + 2_000).div_ceil(1000)).expect("small") + 1 + closure_extra;
        Scenario {
            terms: Terms {
                price: U256::from(price),
                window,
                t_ack_secs: t_ack,
                t_closure_secs: t_closure,
                offer_validity_secs: 600,
            },
            seller_cfg: SellerConfig {
                delta_onchain_ms,
                retransmit_timeout_ms: rto,
                claim_threshold: threshold.map(|k| U256::from(price) * U256::from(k)),
                ..SellerConfig::default()
            },
            buyer_cfg: BuyerConfig { ack_every, ack_delay_ms, ..BuyerConfig::default() },
            start_seq,
            gaps_ms,
            deposit: U256::from(price) * U256::from(window + extra_messages),
            link: LinkPlan { delay_ms, data_loss, ack_loss, always_lose: None, seed },
            buyer,
            seller: SellerPlan { chain_latency_ms: delta_onchain_ms * latency_pct / 100, withhold: None },
            seller_stop_after_ms,
        }
    }
}

/// Lemma 2: an honest seller is paid for every message it delivered to the buyer (received over
/// the link or posted on-chain), up to the deposit, whatever the buyer does: withholds acks,
/// closes early, leaves, accuses falsely.
///
/// The seller is the real `supra_channel::seller::Stream` engine: the test only carries its actions
/// to the judge (Post, Claim, ClaimPosted, Defend, DefendWithAck, RequestClose, Settle) and feeds
/// the judge's events back to it.
#[test]
fn lemma_2_honest_seller_is_paid_for_every_delivered_message() {
    let bench = Bench::new();
    property(
        "lemma 2",
        "an honest seller is paid (delivered messages) x P, capped by the deposit, whatever the buyer does",
        supra_tests::cases(24),
        lemma2_scenario(),
        |sc| {
            bench.case(async |judge: &Judge| {
                let price = sc.terms.price;
                let mut w = World::open(judge, sc).await;
                w.run().await;
                let delivered = w.delivered().len() as u64;
                let (to_seller, _) = settled_conservation(judge, w.id, w.open_block, &w.seller, &w.buyer, w.deposit).await?;
                let owed = (price * U256::from(delivered)).min(w.deposit);
                prop_assert_eq!(
                    to_seller,
                    owed,
                    "seller paid for {} delivered messages at {}: {}",
                    delivered,
                    price,
                    w.describe()
                );
                prop_assert_eq!(w.out.upheld, 0, "an accusation was upheld against an honest seller");
                if std::env::var_os("SUPRA_LEMMAS_VERBOSE").is_some() {
                    eprintln!("case: delivered {delivered} paid {to_seller} deposit {} | {}", w.deposit, w.describe());
                }
                Ok(())
            })
        },
    );
}
