//! Judge calls on the model: what each [`Tx`] does ([`execute`]) and what it costs
//! ([`call_gas`]). The simulator mines its transactions with them, and `sim/tests/replay.rs`
//! builds scripted call sequences with them.

use alloy_primitives::Address;
use supra_channel::ChannelId;

use super::{JudgeCall, Tx};
use crate::chain::{Call, gas};
use crate::judge::{ChannelRec, Judge, Outcome, Refusal};

/// The channel a call is about (`None` for `post`, which is about a stream).
fn tx_channel(tx: &Tx) -> Option<ChannelId> {
    match tx {
        Tx::Open(..) | Tx::Post(..) => None,
        Tx::Claim(a, _) | Tx::DefendWithAck(a, _) | Tx::ProveWrongCost(a, _) => {
            Some(ChannelId(a.channelId))
        }
        Tx::SubmitStop(s, _) => Some(ChannelId(s.channelId)),
        Tx::CloseCooperatively(x, ..) => Some(ChannelId(x.0.channelId)),
        Tx::TopUp(id, _)
        | Tx::ClaimPosted(id, _)
        | Tx::RequestClose(id)
        | Tx::Settle(id)
        | Tx::Accuse(id, ..)
        | Tx::Defend(id)
        | Tx::Resolve(id)
        | Tx::ProveEquivocation(id, ..) => Some(*id),
    }
}

/// Mines `tx`, sent by `from` at chain second `at_secs`, on the model: the kind of call, and
/// the call with its outcome and gas.
pub fn execute(judge: &mut Judge, from: Address, at_secs: u64, tx: Tx) -> (Call, JudgeCall) {
    // What a call costs depends on the state before it (first writes of the channel's words,
    // postings a posted claim checks, the sender) and on what it did.
    let before = tx_channel(&tx).and_then(|id| judge.channel(id).cloned());
    let span = match &tx {
        Tx::ClaimPosted(id, upto) => judge.posted_claim_span(*id, *upto),
        _ => 0,
    };
    let (j, now) = (judge, at_secs);
    let outcome = match &tx {
        Tx::Open(o, value) => j.open(from, &o.0, &o.1, *value, now),
        Tx::TopUp(id, value) => j.top_up(from, *id, *value, now),
        Tx::Post(m) => j.post(&m.message, &m.payload, &m.proof, now),
        Tx::Claim(a, s) => j.claim(a, s, now),
        Tx::ClaimPosted(id, upto) => j.claim_posted(from, *id, *upto),
        Tx::RequestClose(id) => j.request_close(from, *id, now),
        Tx::Settle(id) => j.settle(*id, now),
        Tx::Accuse(id, m, s, missing) => j.accuse(from, *id, m, s, *missing, now),
        Tx::Defend(id) => j.defend(*id),
        Tx::DefendWithAck(a, s) => j.defend_with_ack(a, s, now),
        Tx::Resolve(id) => j.resolve(*id, now),
        Tx::ProveWrongCost(a, s) => j.prove_wrong_cost(a, s),
        Tx::ProveEquivocation(id, ms, sa, sb) => j.prove_equivocation(*id, &ms.0, sa, &ms.1, sb),
        Tx::SubmitStop(s, sig) => j.submit_stop(s, sig, now),
        Tx::CloseCooperatively(x, sa, ss) => j.close_cooperatively(&x.0, sa, &x.1, ss, now),
    };
    let by_seller = before.as_ref().is_some_and(|c| c.seller == from);
    let (call, gas) = call_gas(&tx, before.as_ref(), span, &outcome, by_seller);
    let mined = JudgeCall {
        at_secs,
        from,
        tx,
        outcome,
        gas,
    };
    (call, mined)
}

/// The kind of `tx` and its gas (see [`gas`] for where each figure comes from), given the
/// channel before it, the postings a posted claim checks, what it did, and whether the seller
/// sent it. A refused call is charged its figure: an upper bound (a revert stops early).
pub fn call_gas(
    tx: &Tx,
    before: Option<&ChannelRec>,
    posted_span: u64,
    outcome: &Result<Outcome, Refusal>,
    by_seller: bool,
) -> (Call, u64) {
    let first_write = before.is_none_or(|c| !c.progress_written);
    // The table's figure `g` was measured with a first write of the progress word.
    let later = |g: u64| {
        if first_write {
            g
        } else {
            g - gas::FIRST_WRITE_EXTRA
        }
    };
    let pending_written = before
        .is_some_and(|c| c.posted_claim > 0 || c.dispute.is_some() || c.seller_stop.is_some());
    match tx {
        Tx::Open(..) => (Call::Open, gas::OPEN),
        Tx::TopUp(..) => (Call::TopUp, later(gas::TOP_UP)),
        Tx::Post(m) => (Call::Post, gas::post(m.payload.len(), m.proof.path.len())),
        Tx::Claim(..) if first_write => (Call::Claim, gas::CLAIM_FIRST),
        Tx::Claim(..) => (Call::Claim, gas::CLAIM_NEXT),
        Tx::ClaimPosted(..) => (Call::ClaimPosted, gas::claim_posted(posted_span)),
        Tx::RequestClose(..) => {
            let mut g = gas::REQUEST_CLOSE;
            if first_write {
                g += gas::FIRST_WRITE_EXTRA;
            }
            if by_seller {
                g += gas::REQUEST_CLOSE_BY_SELLER_EXTRA;
            }
            (Call::RequestClose, g)
        }
        Tx::Settle(..) => match outcome {
            Ok(Outcome::Settled { to_seller, .. }) if to_seller.is_zero() => {
                (Call::Settle, gas::SETTLE_BUYER_ONLY)
            }
            _ => (Call::Settle, gas::SETTLE),
        },
        Tx::Accuse(_, _, proof, _) => (
            Call::Accuse,
            gas::ACCUSE + proof.path.len() as u64 * gas::PATH_HASH,
        ),
        Tx::Defend(..) => (Call::Defend, gas::DEFEND),
        Tx::DefendWithAck(..) => (Call::DefendWithAck, gas::DEFEND_WITH_ACK),
        Tx::Resolve(..) => match outcome {
            Ok(Outcome::Defended { .. }) => (Call::Resolve, gas::RESOLVE_ANSWERED),
            _ => (Call::Resolve, later(gas::RESOLVE_REFUND)),
        },
        Tx::ProveWrongCost(..) => (Call::ProveWrongCost, gas::PROVE_WRONG_COST),
        Tx::ProveEquivocation(_, _, a, b) => (
            Call::ProveEquivocation,
            gas::PROVE_EQUIVOCATION + (a.path.len() + b.path.len()) as u64 * gas::PATH_HASH,
        ),
        Tx::SubmitStop(..) => match outcome {
            // The table's penalty was measured after a claim (a non-zero progress word).
            Ok(Outcome::Settled { .. }) if first_write => (
                Call::SubmitStop,
                gas::SUBMIT_STOP_PENALTY + gas::FIRST_WRITE_EXTRA,
            ),
            Ok(Outcome::Settled { .. }) => (Call::SubmitStop, gas::SUBMIT_STOP_PENALTY),
            Ok(Outcome::StopRecorded { answered: true }) => {
                (Call::SubmitStop, gas::SUBMIT_STOP_ANSWER)
            }
            _ if pending_written => (
                Call::SubmitStop,
                gas::SUBMIT_STOP_RECORD - gas::FIRST_WRITE_EXTRA,
            ),
            _ => (Call::SubmitStop, gas::SUBMIT_STOP_RECORD),
        },
        Tx::CloseCooperatively(..) => match outcome {
            Ok(Outcome::Settled { to_seller, .. }) if to_seller.is_zero() => {
                let mut g = gas::CLOSE_COOPERATIVELY_NOTHING_DUE;
                if !by_seller {
                    g -= gas::REFUND_TO_SENDER_DISCOUNT;
                }
                (Call::CloseCooperatively, g)
            }
            _ if first_write => (Call::CloseCooperatively, gas::CLOSE_COOPERATIVELY_FIRST),
            _ => (Call::CloseCooperatively, gas::CLOSE_COOPERATIVELY_NEXT),
        },
    }
}
