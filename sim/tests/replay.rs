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
use std::sync::Arc;

use alloy::primitives::keccak256;
use supra_channel::proof::MessageProof;
use supra_channel::seller::SignedMessage;
use supra_channel::{
    Ack, ChannelId, Domain, FrameBytes, Keypair, Message, Offer, Signature, Stop, StreamId,
    ack_cost,
};
use supra_judge::devnet::{Devnet, DevnetOptions};
use supra_judge::{ChannelStatus, Judge, JudgeError, JudgeEvent, Receipt};
use supra_sim::judge::{ChannelRec, Judge as ModelJudge, Outcome, Status, refusal_name};
use supra_sim::params::{RunConfig, Scenario};
use supra_sim::supra::{JudgeCall, PRICE, Setup, Tx, execute, run_recorded};

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
        Tx::Post(m) => party.post(&m.message, &m.payload, &m.proof).await,
        Tx::Claim(a, s) => party.claim(a, s.as_bytes()).await,
        Tx::ClaimPosted(id, upto) => party.claim_posted(*id, *upto).await,
        Tx::RequestClose(id) => party.request_close(*id).await,
        Tx::Settle(id) => party.settle(*id).await,
        Tx::Accuse(id, m, proof, missing) => party.accuse(*id, m, proof, *missing).await,
        Tx::Defend(id) => party.defend(*id).await,
        Tx::DefendWithAck(a, s) => party.defend_with_ack(a, s.as_bytes()).await,
        Tx::Resolve(id) => party.resolve(*id).await,
        Tx::ProveWrongCost(a, s) => party.prove_wrong_cost(a, s.as_bytes()).await,
        Tx::ProveEquivocation(id, ms, pa, pb) => {
            party.prove_equivocation(*id, &ms.0, pa, &ms.1, pb).await
        }
        Tx::SubmitStop(stop, sig) => party.submit_stop(stop, sig.as_bytes()).await,
        Tx::CloseCooperatively(x, sa, ss) => {
            party
                .close_cooperatively(&x.0, sa.as_bytes(), &x.1, ss.as_bytes())
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
        Tx::SubmitStop(..) => "submitStop",
        Tx::CloseCooperatively(..) => "closeCooperatively",
    }
}

/// Judge calls to replay, the model after them, and the channels they are about.
struct Plan {
    calls: Vec<JudgeCall>,
    model: ModelJudge,
    channels: Vec<ChannelId>,
}

/// A block time after the chain's latest block, a multiple of `block_secs`.
async fn start_secs(chain: &Judge, block_secs: u64) -> u64 {
    let now = chain.block_timestamp().await.expect("block time");
    (now + 60).div_ceil(block_secs) * block_secs
}

/// Runs `cfg` recorded, replays it, and returns the differences (empty: the model agrees).
/// `settled_by`: the call that must settle the channel in the run (the engines' own
/// `closeCooperatively`, `submitStop`, ...), so that the replay covers it.
async fn replay(
    name: &str,
    cfg: &RunConfig,
    settled_by: &str,
    seller: &Party,
    buyer: &Party,
    gas_report: &mut Vec<(String, u64, u64)>,
) -> Vec<String> {
    let chain = &seller.judge;
    let setup = Setup {
        domain: chain.domain(),
        seller: seller.key.clone(),
        buyer: buyer.key.clone(),
        start_ms: start_secs(chain, cfg.chain.block_ms / 1000).await * 1000,
    };
    let (result, rec) = run_recorded(cfg, setup);
    eprintln!(
        "{name}: {} calls ({} refused): {}",
        rec.calls.len(),
        rec.calls.iter().filter(|c| c.outcome.is_err()).count(),
        result.ledger.summary(),
    );
    let Some(id) = rec.channel else {
        return vec![format!("{name}: the run opened no channel")];
    };
    let mut diffs = Vec::new();
    let settling = rec
        .calls
        .iter()
        .find(|c| matches!(c.outcome, Ok(Outcome::Settled { .. })));
    let by = settling.map(|c| call_name(&c.tx));
    if by != Some(settled_by) {
        diffs.push(format!("{name}: settled by {by:?}, expected {settled_by}"));
    }
    let plan = Plan {
        calls: rec.calls,
        model: rec.judge,
        channels: vec![id],
    };
    diffs.extend(check(name, &plan, seller, buyer, gas_report).await);
    diffs
}

/// Replays `plan` on the real judge from `seller`'s and `buyer`'s accounts and returns the
/// differences with the model (empty: it agrees).
async fn check(
    name: &str,
    plan: &Plan,
    seller: &Party,
    buyer: &Party,
    gas_report: &mut Vec<(String, u64, u64)>,
) -> Vec<String> {
    let chain = &seller.judge;
    let mut diffs = Vec::new();
    let provider = chain.provider();
    let balance = |a: Address| async move { provider.get_balance(a).await.expect("balance") };
    let (seller_at_start, buyer_at_start) = (
        balance(seller.key.address()).await,
        balance(buyer.key.address()).await,
    );
    let first_block = chain.block_number().await.expect("block number") + 1;
    let (mut seller_fees, mut buyer_fees, mut locked) = (U256::ZERO, U256::ZERO, U256::ZERO);
    for (i, call) in plan.calls.iter().enumerate() {
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
    // Payouts, from the judge's events, per channel.
    let last_block = chain.block_number().await.expect("block number");
    let events = chain.events(first_block, last_block).await.expect("events");
    let (mut all_to_seller, mut all_to_buyer) = (U256::ZERO, U256::ZERO);
    for id in &plan.channels {
        let Some(model) = plan.model.channel(*id) else {
            diffs.push(format!("{name}: the model has no channel {id}"));
            continue;
        };
        let (mut to_seller, mut to_buyer) = (U256::ZERO, U256::ZERO);
        for e in events.iter().map(|e| &e.event) {
            match e {
                JudgeEvent::Claimed {
                    channel, amount, ..
                } if channel == id => to_seller += *amount,
                JudgeEvent::Settled {
                    channel,
                    to_seller: s,
                    to_buyer: b,
                } if channel == id => {
                    to_seller += *s;
                    to_buyer += *b;
                }
                JudgeEvent::PayoutDeferred { .. } => diffs.push(format!("{name}: {e:?}")),
                _ => {}
            }
        }
        if (to_seller, to_buyer) != (model.to_seller, model.to_buyer) {
            diffs.push(format!(
                "{name}: channel {id}: judge paid seller {to_seller} buyer {to_buyer}, model {} / {}",
                model.to_seller, model.to_buyer
            ));
        }
        all_to_seller += model.to_seller;
        all_to_buyer += model.to_buyer;
        diffs.extend(final_record(name, chain, *id, model).await);
    }
    // Balances: each party's change is its payouts, less what it locked and its gas.
    let seller_now = balance(seller.key.address()).await;
    let buyer_now = balance(buyer.key.address()).await;
    if seller_now + seller_fees != seller_at_start + all_to_seller {
        diffs.push(format!(
            "{name}: seller balance {seller_now} (+ fees {seller_fees}) vs {seller_at_start} + {all_to_seller}"
        ));
    }
    if buyer_now + buyer_fees + locked != buyer_at_start + all_to_buyer {
        diffs.push(format!(
            "{name}: buyer balance {buyer_now} (+ fees {buyer_fees} + locked {locked}) vs {buyer_at_start} + {all_to_buyer}"
        ));
    }
    diffs
}

/// The judge's final record and timing of channel `id` against the model's.
async fn final_record(name: &str, chain: &Judge, id: ChannelId, model: &ChannelRec) -> Vec<String> {
    let mut diffs = Vec::new();
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
            "{name}: channel {id}: final record: model {want:?}, judge {got:?}"
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
            "{name}: channel {id}: final timing: model {want_t:?}, judge {got_t:?}"
        ));
    }
    diffs
}

/// Calls written by hand, for the rules and functions the simulated brokers never reach:
/// refusals of each kind, postings mined too late, a seller's Stop (record and penalty),
/// cooperative close, the two proofs. Each call is mined on the model first ([`execute`]).
struct Script {
    domain: Domain,
    seller: Keypair,
    buyer: Keypair,
    stream: StreamId,
    model: ModelJudge,
    calls: Vec<JudgeCall>,
    channels: Vec<ChannelId>,
    /// Steps whose model outcome is not the one the script expects.
    unexpected: Vec<String>,
}

const P: u64 = PRICE;

impl Script {
    fn new(domain: Domain, seller: &Keypair, buyer: &Keypair) -> Self {
        let mut model = ModelJudge::new(domain);
        model.register(*seller.public());
        model.register(*buyer.public());
        Script {
            domain,
            seller: seller.clone(),
            buyer: buyer.clone(),
            stream: StreamId::new(seller.address(), 2).expect("stream id"),
            model,
            calls: Vec::new(),
            channels: Vec::new(),
            unexpected: Vec::new(),
        }
    }

    /// Mines `tx` (see [`Script::call`]), whose outcome on the model should be `want` (an
    /// error name, or "ok").
    fn check(&mut self, by_seller: bool, at: u64, tx: Tx, want: &str) {
        let out = self.call(by_seller, at, tx);
        if out != want {
            let at = self.calls.len() - 1;
            self.unexpected.push(format!(
                "probes: call {at}: model {out}, script expects {want}"
            ));
        }
    }

    /// Mines `tx` from the seller (`by_seller`) or the buyer at `at` on the model; its outcome's
    /// error name, or "ok".
    fn call(&mut self, by_seller: bool, at: u64, tx: Tx) -> String {
        let from = if by_seller {
            self.seller.address()
        } else {
            self.buyer.address()
        };
        let (_, mined) = execute(&mut self.model, from, at, tx);
        let out = match &mined.outcome {
            Ok(_) => "ok".to_string(),
            Err(e) => refusal_name(e).to_string(),
        };
        self.calls.push(mined);
        out
    }

    /// Opens a channel (W = 4, T_ack 60 s, T_closure 300 s) from `start` with a deposit of
    /// `deposit_msgs` messages.
    fn open(&mut self, at: u64, start: u64, deposit_msgs: u64) -> ChannelId {
        let offer = Offer {
            streamId: self.stream.0,
            seller: self.seller.address(),
            buyer: self.buyer.address(),
            price: U256::from(P),
            token: Default::default(),
            window: 4,
            startSeq: start,
            tAck: 60,
            tClosure: 300,
            validUntil: at + 3_600,
            nonce: U256::from(start),
        };
        let sig = self.seller.sign(&self.domain.digest(&offer));
        let id = ChannelId::from_offer_digest(self.domain.digest(&offer));
        let value = U256::from(P * deposit_msgs);
        assert_eq!(
            self.call(false, at, Tx::Open(Box::new((offer, sig)), value)),
            "ok"
        );
        self.channels.push(id);
        id
    }

    /// Message `seq` stamped at `stamp` (unix seconds), with payload `tag` (not signed).
    fn message(&self, seq: u64, stamp: u64, tag: u8) -> (Message, Vec<u8>) {
        let payload = vec![tag; 8];
        let message = Message {
            streamId: self.stream.0,
            seq,
            timestamp: stamp * 1000,
            payloadHash: keccak256(&payload),
            prev: B256::ZERO,
        };
        (message, payload)
    }

    /// `message` with `payload` under `proof` (whether or not it holds).
    fn signed(
        &self,
        message: Message,
        payload: Vec<u8>,
        proof: MessageProof,
    ) -> Arc<SignedMessage> {
        Arc::new(SignedMessage {
            digest: self.domain.digest(&message),
            message,
            proof,
            payload,
            frame: FrameBytes::from(&[][..]),
        })
    }

    /// Message `seq` stamped at `stamp` (unix seconds), with payload `tag`, signed as a batch of one.
    fn msg(&self, seq: u64, stamp: u64, tag: u8) -> Arc<SignedMessage> {
        let (message, payload) = self.message(seq, stamp, tag);
        let digest = self.domain.digest(&message);
        let proof = MessageProof::sign_single(&self.domain, &self.seller, &message, digest);
        self.signed(message, payload, proof)
    }

    /// Messages `first..=last` (stamped at `stamp`, payload `tag`) signed as one batch.
    fn batch(&self, first: u64, last: u64, stamp: u64, tag: u8) -> Vec<Arc<SignedMessage>> {
        let messages: Vec<_> = (first..=last)
            .map(|seq| self.message(seq, stamp, tag))
            .collect();
        let digests: Vec<_> = messages
            .iter()
            .map(|(m, _)| (m, self.domain.digest(m)))
            .collect();
        let proofs = MessageProof::sign_batch(&self.domain, &self.seller, &digests);
        messages
            .iter()
            .zip(proofs)
            .map(|((m, p), proof)| self.signed(m.clone(), p.clone(), proof))
            .collect()
    }

    fn post(&mut self, at: u64, seq: u64, stamp: u64, want: &str) {
        let m = self.msg(seq, stamp, 1);
        self.check(true, at, Tx::Post(m), want);
    }

    fn ack(&self, id: ChannelId, start: u64, seq: u64) -> (Ack, Signature) {
        let ack = Ack {
            channelId: id.0,
            seq,
            digest: B256::repeat_byte(1),
            cost: ack_cost(start, seq, U256::from(P)).expect("cost"),
            timestamp: 0,
        };
        let sig = self.buyer.sign(&self.domain.digest(&ack));
        (ack, sig)
    }

    fn stop(&self, id: ChannelId, seq: u64) -> (Stop, Signature) {
        let stop = Stop {
            channelId: id.0,
            seq,
            timestamp: 0,
        };
        let sig = self.seller.sign(&self.domain.digest(&stop));
        (stop, sig)
    }

    /// The buyer accuses: `missing` is missing before `seen` (stamped at `stamp`).
    fn accuse(&mut self, at: u64, id: ChannelId, missing: u64, seen: u64, stamp: u64, want: &str) {
        let m = self.msg(seen, stamp, 1);
        self.accuse_with(at, id, missing, &m, want);
    }

    /// The buyer accuses: `missing` is missing before `seen` (with its proof).
    fn accuse_with(
        &mut self,
        at: u64,
        id: ChannelId,
        missing: u64,
        seen: &SignedMessage,
        want: &str,
    ) {
        let tx = Tx::Accuse(
            id,
            Box::new(seen.message.clone()),
            Box::new(seen.proof.clone()),
            missing,
        );
        self.check(false, at, tx, want);
    }
}

/// The script: each step states the outcome it expects of the model (so that the script tests
/// what it says: what it did not get is returned), then the whole is replayed on the judge like
/// a simulated run.
fn probes(domain: Domain, seller: &Keypair, buyer: &Keypair, t: u64) -> (Plan, Vec<String>) {
    let mut s = Script::new(domain, seller, buyer);
    let (yes, no) = (true, false);
    // A: top-ups, the owed range, a posting mined after the accusation's posting limit.
    let a = s.open(t, 0, 8);
    s.check(yes, t + 12, Tx::TopUp(a, U256::from(P)), "NotBuyer");
    s.check(no, t + 12, Tx::TopUp(a, U256::ZERO), "ZeroAmount");
    s.check(no, t + 12, Tx::TopUp(a, U256::from(4 * P)), "ok");
    for seq in 0..3 {
        s.post(t + 12, seq, t, "ok");
    }
    let (ack, sig) = s.ack(a, 0, 1);
    s.check(yes, t + 24, Tx::Claim(Box::new(ack), sig), "ok");
    s.accuse(t + 36, a, 2, 5, t, "AlreadyPosted");
    // Owed: startSeq + min(acked + W, F / P) = 0 + min(2 + 4, 12) = 6.
    s.accuse(t + 36, a, 7, 8, t, "NotOwed");
    // postBy = min(max(seen t, openedAt t, extendedAt t + 24), now) + 60 = t + 84.
    s.accuse(t + 48, a, 3, 5, t, "ok");
    s.post(t + 96, 3, t, "ok");
    s.check(yes, t + 96, Tx::Defend(a), "DeadlinePassed");
    s.check(no, t + 108, Tx::Resolve(a), "DeadlineNotPassed");
    s.check(no, t + 120, Tx::Resolve(a), "ok");
    let (ack, sig) = s.ack(a, 0, 3);
    s.check(yes, t + 120, Tx::Claim(Box::new(ack), sig), "WrongStatus");
    // B: posted claims after a close (mined too late), a Stop recorded, a late accusation.
    let t = t + 132;
    let b = s.open(t, 10, 4);
    s.post(t + 12, 10, t, "ok");
    s.post(t + 12, 11, t, "ok");
    s.check(no, t + 12, Tx::ClaimPosted(b, 11), "NotSeller");
    let (ack, sig) = s.ack(b, 10, 10);
    s.check(yes, t + 12, Tx::Claim(Box::new(ack), sig), "ok");
    s.check(no, t + 24, Tx::RequestClose(b), "ok");
    // Stamped before the close, mined more than T_ack after it.
    s.post(t + 96, 12, t + 18, "ok");
    s.check(yes, t + 96, Tx::ClaimPosted(b, 12), "PostedAfterClose");
    s.check(yes, t + 96, Tx::ClaimPosted(b, 11), "ok");
    let (stop, sig) = s.stop(b, 11);
    s.check(no, t + 108, Tx::SubmitStop(Box::new(stop), sig), "ok");
    s.check(no, t + 312, Tx::Settle(b), "ClosureNotElapsed");
    s.accuse(t + 324, b, 12, 13, t, "ClosureElapsed");
    s.check(yes, t + 324, Tx::Settle(b), "ok");
    // C: the seller's Stop below its own posted claim: Lemma 3's penalty.
    let t = t + 336;
    let c = s.open(t, 20, 8);
    for seq in 20..23 {
        s.post(t + 12, seq, t, "ok");
    }
    s.check(yes, t + 12, Tx::ClaimPosted(c, 22), "ok");
    let (stop, sig) = s.stop(c, 20);
    s.check(no, t + 24, Tx::SubmitStop(Box::new(stop), sig), "ok");
    // D: cooperative close.
    let t = t + 36;
    let d = s.open(t, 30, 8);
    let (ack, sig) = s.ack(d, 30, 31);
    s.check(yes, t + 12, Tx::Claim(Box::new(ack), sig), "ok");
    let (ack, ack_sig) = s.ack(d, 30, 33);
    let (stop, stop_sig) = s.stop(d, 32);
    let mismatched = Tx::CloseCooperatively(Box::new((ack.clone(), stop)), ack_sig, stop_sig);
    s.check(no, t + 24, mismatched, "StopMismatch");
    let (stop, stop_sig) = s.stop(d, 33);
    let coop = Tx::CloseCooperatively(Box::new((ack, stop)), ack_sig, stop_sig);
    s.check(no, t + 24, coop, "ok");
    // E: a wrong cost proven; F: equivocation proven.
    let t = t + 36;
    let e = s.open(t, 40, 4);
    let (ack, sig) = s.ack(e, 40, 41);
    s.check(
        yes,
        t + 12,
        Tx::ProveWrongCost(Box::new(ack), sig),
        "CostIsCorrect",
    );
    let (mut ack, _) = s.ack(e, 40, 41);
    ack.cost = U256::from(1);
    let sig = s.buyer.sign(&s.domain.digest(&ack));
    s.check(yes, t + 12, Tx::ProveWrongCost(Box::new(ack), sig), "ok");
    let f = s.open(t + 24, 50, 4);
    let (m1, m2) = (s.msg(50, t, 1), s.msg(50, t, 2));
    let pair = |a: &SignedMessage, b: &SignedMessage| {
        let both = Box::new((a.message.clone(), b.message.clone()));
        Tx::ProveEquivocation(
            f,
            both,
            Box::new(a.proof.clone()),
            Box::new(b.proof.clone()),
        )
    };
    s.check(no, t + 36, pair(&m1, &m1), "NotEquivocation");
    s.check(no, t + 36, pair(&m1, &m2), "ok");
    // G (issue 11): messages of a batch of 8; every refusal of a BatchProof, by name; an
    // accusation with a message of a batch; an equivocation across two batches.
    let t = t + 48;
    let g = s.open(t, 60, 8);
    let batch = s.batch(60, 67, t, 1);
    s.check(yes, t + 12, Tx::Post(batch[0].clone()), "ok");
    s.check(yes, t + 12, Tx::Post(batch[5].clone()), "ok");
    let swapped = s.signed(
        batch[3].message.clone(),
        batch[3].payload.clone(),
        batch[2].proof.clone(),
    );
    s.check(yes, t + 12, Tx::Post(swapped), "WrongRoot");
    let mut forged = batch[2].proof.clone();
    forged.path[1] = B256::repeat_byte(0xee);
    let forged = s.signed(batch[2].message.clone(), batch[2].payload.clone(), forged);
    s.check(yes, t + 12, Tx::Post(forged), "WrongRoot");
    let (outside, outside_payload) = s.message(70, t, 1);
    let outside = s.signed(outside, outside_payload, batch[2].proof.clone());
    s.check(yes, t + 12, Tx::Post(outside), "NotInBatch");
    let mut deep = batch[2].proof.clone();
    deep.path = vec![B256::repeat_byte(3); 9];
    let deep = s.signed(batch[2].message.clone(), batch[2].payload.clone(), deep);
    s.check(yes, t + 12, Tx::Post(deep), "BatchTooLarge");
    let mut wide = batch[2].proof.clone();
    wide.batch.lastSeq = wide.batch.firstSeq + 256;
    let wide = s.signed(batch[2].message.clone(), batch[2].payload.clone(), wide);
    s.check(yes, t + 12, Tx::Post(wide), "BatchTooLarge");
    let mut elsewhere = batch[2].proof.clone();
    elsewhere.batch.streamId = StreamId::new(s.seller.address(), 3).expect("stream id").0;
    let elsewhere = s.signed(
        batch[2].message.clone(),
        batch[2].payload.clone(),
        elsewhere,
    );
    s.check(yes, t + 12, Tx::Post(elsewhere), "WrongStream");
    let mut stage1 = s.msg(62, t, 1).proof.clone();
    stage1.sig = s.seller.sign(&s.domain.digest(&batch[2].message));
    let stage1 = s.signed(batch[2].message.clone(), batch[2].payload.clone(), stage1);
    s.check(yes, t + 12, Tx::Post(stage1), "WrongSigner");
    s.accuse_with(t + 24, g, 62, &batch[6], "ok");
    let twins = s.batch(63, 64, t, 2);
    let across = Box::new((batch[4].message.clone(), twins[1].message.clone()));
    let across = Tx::ProveEquivocation(
        g,
        across,
        Box::new(batch[4].proof.clone()),
        Box::new(twins[1].proof.clone()),
    );
    s.check(no, t + 36, across, "ok");
    let plan = Plan {
        calls: s.calls,
        model: s.model,
        channels: s.channels,
    };
    (plan, s.unexpected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_model_agrees_with_the_real_judge_call_by_call() {
    let t0 = std::time::Instant::now();
    let devnet = Devnet::spawn_with(&DevnetOptions {
        accounts: 30,
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
    // Each run, and the call that settles it. The honest close is cooperative (the engines'
    // default); without it, `settle` after T_closure. A cheating seller that withholds its Stop
    // is paid its posted claim at `settle`; one whose Stop reached the buyer is punished by the
    // buyer's `submitStop` (cooperative close off) or pre-empted by the buyer's
    // `closeCooperatively` (on).
    let run = |s: Scenario, cooperative_close: bool, settled_by: &'static str| {
        let name = match cooperative_close {
            true => s.name().to_string(),
            false => format!("{s}, cooperative close off"),
        };
        let cfg = RunConfig {
            cooperative_close,
            ..config(s)
        };
        (name, cfg, settled_by)
    };
    let coop = "closeCooperatively";
    let mut runs: Vec<(String, RunConfig, &str)> = vec![
        run(Scenario::Honest, true, coop),
        run(Scenario::Honest, false, "settle"),
        run(Scenario::Withhold, true, "settle"),
        run(Scenario::Leave, true, "settle"),
        run(Scenario::Drop, true, "resolve"),
        run(Scenario::Overclaim, true, "settle"),
        run(Scenario::OverclaimPastStop, true, coop),
        run(Scenario::OverclaimPastStop, false, "submitStop"),
        run(Scenario::Pause, true, coop),
    ];
    // A small deposit (2W) and top-ups of 2W: the engines' flow control and topUp.
    runs.push((
        "honest, deposit 2W + top-ups".into(),
        RunConfig {
            deposit_msgs: Some(32),
            top_up_msgs: Some(32),
            ..config(Scenario::Honest)
        },
        "closeCooperatively",
    ));
    let mut diffs = Vec::new();
    let mut gas_report = Vec::new();
    // The scripted probes, from their own pair of accounts.
    {
        let seller = party(1 + 2 * runs.len()).await;
        let buyer = party(2 + 2 * runs.len()).await;
        let t = start_secs(&seller.judge, 12).await;
        let (plan, unexpected) = probes(seller.judge.domain(), &seller.key, &buyer.key, t);
        eprintln!("probes: {} calls", plan.calls.len());
        diffs.extend(unexpected);
        diffs.extend(check("probes", &plan, &seller, &buyer, &mut gas_report).await);
    }
    for (i, (name, cfg, settled_by)) in runs.iter().enumerate() {
        // Each run its own seller (hence stream) and buyer.
        let seller = party(1 + 2 * i).await;
        let buyer = party(2 + 2 * i).await;
        diffs.extend(replay(name, cfg, settled_by, &seller, &buyer, &mut gas_report).await);
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
