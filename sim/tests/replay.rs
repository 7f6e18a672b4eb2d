//! The simulator's judge model against the real judge: simulated runs (honest, the malicious
//! scenarios, the buyer's pauses, a small deposit with top-ups) are recorded call by call, then
//! every call is replayed in the same order, from the same sender, at the same block time
//! (`evm_setNextBlockTimestamp`) and with the same signatures on `SupraJudge` deployed on a fresh
//! Anvil. Every call must have the same outcome (success, or a refusal with the same error
//! name), every payout the same amount to the same party (the judge's events, and each party's
//! balance net of its gas), and the channel the same final record.
//!
//! A refused call is refused at gas estimation and never sent (the judge client's behaviour),
//! which changes nothing on-chain, as a reverted transaction would.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use supra_channel::Keypair;
use supra_judge::devnet::{Devnet, DevnetOptions};
use supra_judge::{ChannelStatus, Judge, JudgeError, JudgeEvent, Receipt};
use supra_sim::judge::{Status, refusal_name};
use supra_sim::params::{RunConfig, Scenario};
use supra_sim::supra::{Setup, Tx, run_recorded};

/// A small run: quick to simulate with real k256 and to replay (tens of calls).
fn config(scenario: Scenario) -> RunConfig {
    RunConfig {
        seed: 7,
        n: 150,
        window: 16,
        publish_every_ms: 50,
        ack_every: 8,
        scenario,
        ..RunConfig::default()
    }
}

/// One party on the real chain: its key, and a judge client sending from its account.
struct Party {
    key: Keypair,
    judge: Judge,
}

/// What a replayed call cost its sender (wei), for the balance check.
fn fee(receipt: &alloy::rpc::types::TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

async fn set_next_timestamp(judge: &Judge, secs: u64) {
    let _: serde_json::Value = judge
        .provider()
        .raw_request("evm_setNextBlockTimestamp".into(), (secs,))
        .await
        .expect("evm_setNextBlockTimestamp");
}

/// Sends `tx` from `party`; the refusal's error name if the judge refuses it.
async fn send(party: &Judge, tx: &Tx) -> Result<Receipt, String> {
    let r: Result<Receipt, JudgeError> = match tx {
        Tx::Open(o, value) => party
            .open(&o.0, o.1.as_bytes(), *value)
            .await
            .map(|(_, r)| r),
        Tx::TopUp(id, value) => party.top_up(*id, *value).await,
        Tx::Post(m) => party.post(&m.message, &m.payload, m.sig.as_bytes()).await,
        Tx::Claim(a, s) => party.claim(a, s.as_bytes()).await,
        Tx::ClaimPosted(id, upto) => party.claim_posted(*id, *upto).await,
        Tx::RequestClose(id) => party.request_close(*id).await,
        Tx::Settle(id) => party.settle(*id).await,
        Tx::Accuse(id, m, s, missing) => party.accuse(*id, m, s.as_bytes(), *missing).await,
        Tx::Defend(id) => party.defend(*id).await,
        Tx::DefendWithAck(a, s) => party.defend_with_ack(a, s.as_bytes()).await,
        Tx::Resolve(id) => party.resolve(*id).await,
        Tx::ProveWrongCost(a, s) => party.prove_wrong_cost(a, s.as_bytes()).await,
        Tx::ProveEquivocation(id, ms, sa, sb) => {
            party
                .prove_equivocation(*id, (&ms.0, sa.as_bytes()), (&ms.1, sb.as_bytes()))
                .await
        }
    };
    r.map_err(|e| match e.refusal_name() {
        Some(name) => name.to_string(),
        None => format!("not a refusal: {e}"),
    })
}

fn call_name(tx: &Tx) -> &'static str {
    match tx {
        Tx::Open(..) => "open",
        Tx::TopUp(..) => "topUp",
        Tx::Post(..) => "post",
        Tx::Claim(..) => "claim",
        Tx::ClaimPosted(..) => "claimPosted",
        Tx::RequestClose(..) => "requestClose",
        Tx::Settle(..) => "settle",
        Tx::Accuse(..) => "accuse",
        Tx::Defend(..) => "defend",
        Tx::DefendWithAck(..) => "defendWithAck",
        Tx::Resolve(..) => "resolve",
        Tx::ProveWrongCost(..) => "proveWrongCost",
        Tx::ProveEquivocation(..) => "proveEquivocation",
    }
}

/// Runs `cfg` recorded, replays it, and returns the differences (empty: the model agrees).
async fn replay(
    name: &str,
    cfg: &RunConfig,
    seller: &Party,
    buyer: &Party,
    gas_report: &mut Vec<(String, u64, u64)>,
) -> Vec<String> {
    let chain = &seller.judge;
    let now = chain.block_timestamp().await.expect("block time");
    let block_secs = cfg.chain.block_ms / 1000;
    let start_secs = (now + 60).div_ceil(block_secs) * block_secs;
    let setup = Setup {
        domain: chain.domain(),
        seller: seller.key.clone(),
        buyer: buyer.key.clone(),
        start_ms: start_secs * 1000,
    };
    let (result, rec) = run_recorded(cfg, setup);
    let mut diffs = Vec::new();
    let Some(id) = rec.channel else {
        return vec![format!("{name}: the run opened no channel")];
    };
    let provider = chain.provider();
    let balance = |a: Address| async move { provider.get_balance(a).await.expect("balance") };
    let (seller_at_start, buyer_at_start) = (
        balance(seller.key.address()).await,
        balance(buyer.key.address()).await,
    );
    let first_block = chain.block_number().await.expect("block number") + 1;
    let (mut seller_fees, mut buyer_fees, mut locked) = (U256::ZERO, U256::ZERO, U256::ZERO);
    for (i, call) in rec.calls.iter().enumerate() {
        let party = if call.from == seller.key.address() {
            &seller.judge
        } else {
            &buyer.judge
        };
        set_next_timestamp(chain, call.at_secs).await;
        let real = send(party, &call.tx).await;
        let what = format!(
            "{name}: call {i} {} at {}",
            call_name(&call.tx),
            call.at_secs
        );
        let model = call
            .outcome
            .as_ref()
            .map_err(|e| refusal_name(e).to_string());
        match (&model, &real) {
            (Ok(_), Ok(receipt)) => {
                let full = provider
                    .get_transaction_receipt(receipt.tx_hash)
                    .await
                    .expect("receipt")
                    .expect("mined");
                let block = provider
                    .get_block_by_number(receipt.block.into())
                    .await
                    .expect("block")
                    .expect("exists");
                if block.header.timestamp != call.at_secs {
                    diffs.push(format!("{what}: mined at {}", block.header.timestamp));
                }
                let f = fee(&full);
                if call.from == seller.key.address() {
                    seller_fees += f;
                } else {
                    buyer_fees += f;
                }
                if let Tx::Open(_, v) | Tx::TopUp(_, v) = &call.tx {
                    locked += *v;
                }
                gas_report.push((call_name(&call.tx).to_string(), call.gas, receipt.gas_used));
                // Per call: the figures come from the gas table's calls, whose calldata
                // (signatures, payloads, zero bytes) differs a little from these.
                let (m, r) = (call.gas as f64, receipt.gas_used as f64);
                if (m - r).abs() > 0.05 * r {
                    diffs.push(format!(
                        "{what}: gas model {} vs judge {}",
                        call.gas, receipt.gas_used
                    ));
                }
            }
            (Err(m), Err(r)) if m == r => {}
            _ => diffs.push(format!("{what}: model {model:?}, judge {real:?}")),
        }
    }
    // Payouts, from the judge's events.
    let last_block = chain.block_number().await.expect("block number");
    let events = chain.events(first_block, last_block).await.expect("events");
    let (mut to_seller, mut to_buyer) = (U256::ZERO, U256::ZERO);
    for e in events.iter().map(|e| &e.event) {
        match e {
            JudgeEvent::Claimed { amount, .. } => to_seller += *amount,
            JudgeEvent::Settled {
                to_seller: s,
                to_buyer: b,
                ..
            } => {
                to_seller += *s;
                to_buyer += *b;
            }
            JudgeEvent::PayoutDeferred { .. } => diffs.push(format!("{name}: {e:?}")),
            _ => {}
        }
    }
    let Some(model) = rec.judge.channel(id) else {
        return vec![format!("{name}: the model has no channel {id}")];
    };
    if (to_seller, to_buyer) != (model.to_seller, model.to_buyer) {
        diffs.push(format!(
            "{name}: judge paid seller {to_seller} buyer {to_buyer}, model {} / {}",
            model.to_seller, model.to_buyer
        ));
    }
    // Balances: each party's change is its payouts, less what it locked and its gas.
    let seller_now = balance(seller.key.address()).await;
    let buyer_now = balance(buyer.key.address()).await;
    if seller_now + seller_fees != seller_at_start + model.to_seller {
        diffs.push(format!(
            "{name}: seller balance {seller_now} (+ fees {seller_fees}) vs {seller_at_start} + {}",
            model.to_seller
        ));
    }
    if buyer_now + buyer_fees + locked != buyer_at_start + model.to_buyer {
        diffs.push(format!(
            "{name}: buyer balance {buyer_now} (+ fees {buyer_fees} + locked {locked}) vs {buyer_at_start} + {}",
            model.to_buyer
        ));
    }
    // The final record.
    let info = chain.channel(id).await.expect("channel");
    let timing = chain.channel_timing(id).await.expect("timing");
    let status = match model.status {
        Status::Open => ChannelStatus::Open,
        Status::Closing => ChannelStatus::Closing,
        Status::Settled => ChannelStatus::Settled,
    };
    let want = (
        status,
        model.deposit,
        model.claimed,
        model.acked as u64,
        model.posted_claim as u64,
        model.close_at.unwrap_or(0),
        model.dispute.map(|d| (d.missing, d.deadline)),
    );
    let got = (
        info.status,
        info.deposit,
        info.claimed,
        info.acked,
        info.posted_claim,
        info.close_requested_at,
        info.dispute,
    );
    if want != got {
        diffs.push(format!(
            "{name}: final record: model {want:?}, judge {got:?}"
        ));
    }
    let want_t = (
        model.opened_at,
        model.extended_at,
        model.dispute.map(|d| d.post_by),
        model.seller_stop.map(|s| s as u64),
    );
    let got_t = (
        timing.opened_at,
        timing.extended_at,
        timing.dispute_post_by,
        timing.seller_stop_count,
    );
    if want_t != got_t {
        diffs.push(format!(
            "{name}: final timing: model {want_t:?}, judge {got_t:?}"
        ));
    }
    eprintln!(
        "{name}: {} calls replayed ({} refused), {}, seller paid {to_seller} wei, buyer refunded {to_buyer} wei",
        rec.calls.len(),
        rec.calls.iter().filter(|c| c.outcome.is_err()).count(),
        result.ledger.summary(),
    );
    diffs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_model_agrees_with_the_real_judge_call_by_call() {
    let t0 = std::time::Instant::now();
    let devnet = Devnet::spawn_with(&DevnetOptions {
        accounts: 16,
        ..DevnetOptions::default()
    })
    .expect("anvil (scripts/install-tools)");
    let url = devnet.endpoint().to_string();
    let keys: Vec<B256> = devnet.keys().to_vec();
    let deployer = Judge::deploy(&url, &keys[0]).await.expect("deploy");
    let party = |i: usize| {
        let url = url.clone();
        let key = keys[i];
        let at = deployer.address();
        async move {
            Party {
                key: Keypair::from_secret_bytes(&key.0).expect("dev key"),
                judge: Judge::connect(&url, &key, at).await.expect("connect"),
            }
        }
    };
    let mut runs: Vec<(String, RunConfig)> = [
        Scenario::Honest,
        Scenario::Withhold,
        Scenario::Leave,
        Scenario::Drop,
        Scenario::Overclaim,
        Scenario::Pause,
    ]
    .into_iter()
    .map(|s| (s.name().to_string(), config(s)))
    .collect();
    // A small deposit (2W) and top-ups of 2W: the engines' flow control and topUp.
    runs.push((
        "honest, deposit 2W + top-ups".into(),
        RunConfig {
            deposit_msgs: Some(32),
            top_up_msgs: Some(32),
            ..config(Scenario::Honest)
        },
    ));
    let mut diffs = Vec::new();
    let mut gas_report = Vec::new();
    for (i, (name, cfg)) in runs.iter().enumerate() {
        // Each run its own seller (hence stream) and buyer.
        let seller = party(1 + 2 * i).await;
        let buyer = party(2 + 2 * i).await;
        diffs.extend(replay(name, cfg, &seller, &buyer, &mut gas_report).await);
    }
    // The model's gas against the receipts, per function (for the report).
    let mut by_call: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for (call, model, real) in &gas_report {
        let e = by_call.entry(call.clone()).or_default();
        e.0 += 1;
        e.1 += model;
        e.2 += real;
    }
    for (call, (n, model, real)) in &by_call {
        eprintln!(
            "gas {call}: {n} calls, model {} vs judge {} on average",
            model / n,
            real / n
        );
    }
    eprintln!("replay took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        diffs.is_empty(),
        "the judge model and SupraJudge disagree:\n{}",
        diffs.join("\n")
    );
}
