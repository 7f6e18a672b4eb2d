//! Judge events, decoded into the engine's types.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEventInterface;
use supra_channel::proof::MessageProof;
use supra_channel::sign::Signature;
use supra_channel::types::{ChannelId, Message, StreamId};

use crate::JudgeError;
use crate::bindings::SupraJudge::SupraJudgeEvents;

/// A judge event that a broker acts on or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeEvent {
    ChannelOpened { channel: ChannelId, stream: StreamId, buyer: Address, deposit: U256 },
    ToppedUp { channel: ChannelId, amount: U256, deposit: U256 },
    /// A stream message posted on-chain, complete: buyers check `proof` as they check a `Data` frame's,
    /// and take it as delivered.
    Posted { message: Message, digest: B256, payload: Bytes, proof: MessageProof },
    Claimed { channel: ChannelId, seq: u64, amount: U256, claimed: U256 },
    PostedClaimRecorded { channel: ChannelId, upto_seq: u64 },
    CloseRequested { channel: ChannelId, by: Address, settle_after: u64 },
    Accused { channel: ChannelId, missing_seq: u64, seen_seq: u64, deadline: u64 },
    Defended { channel: ChannelId, missing_seq: u64 },
    AccusationUpheld { channel: ChannelId, missing_seq: u64 },
    WrongCostProven { channel: ChannelId, seq: u64, cost: U256 },
    EquivocationProven { channel: ChannelId, seq_a: u64, seq_b: u64 },
    Settled { channel: ChannelId, to_seller: U256, to_buyer: U256 },
    /// A seller-signed Stop at `seq` was recorded; the lowest recorded leaves `stop_count` messages owed.
    StopRecorded { channel: ChannelId, seq: u64, stop_count: u64 },
    /// The seller's Stop at `seq` is below its recorded posted claim: the buyer took the rest (see `Settled`).
    StopViolationProven { channel: ChannelId, seq: u64, posted_claim: u64, stop_count: u64 },
    /// Settled at once on the buyer's final ack and the seller's Stop at `seq` (see `Settled`).
    ClosedCooperatively { channel: ChannelId, seq: u64 },
    PayoutDeferred { to: Address, amount: U256 },
    Withdrawn { to: Address, amount: U256 },
}

/// An event with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub block: u64,
    pub log_index: u64,
    pub tx_hash: Option<B256>,
    pub event: JudgeEvent,
}

fn narrow(v: U256) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn translate(event: SupraJudgeEvents) -> Option<JudgeEvent> {
    use SupraJudgeEvents as E;
    Some(match event {
        E::ChannelOpened(e) => JudgeEvent::ChannelOpened {
            channel: ChannelId(e.channelId),
            stream: StreamId(e.streamId),
            buyer: e.buyer,
            deposit: e.deposit,
        },
        E::ToppedUp(e) => JudgeEvent::ToppedUp { channel: ChannelId(e.channelId), amount: e.amount, deposit: e.deposit },
        E::Posted(e) => JudgeEvent::Posted {
            message: Message {
                streamId: e.streamId,
                seq: e.seq,
                timestamp: e.timestamp,
                payloadHash: alloy::primitives::keccak256(&e.payload),
                prev: e.prev,
            },
            digest: e.digest,
            // The judge checked the proof, so its signature is 65 bytes; a log that is not (another
            // contract's at this address?) is no posting.
            proof: MessageProof {
                batch: crate::convert(&e.proof.batch),
                sig: Signature::from_slice(&e.proof.sig).ok()?,
                path: e.proof.path,
            },
            payload: e.payload,
        },
        E::Claimed(e) => JudgeEvent::Claimed { channel: ChannelId(e.channelId), seq: e.seq, amount: e.amount, claimed: e.claimed },
        E::PostedClaimRecorded(e) => JudgeEvent::PostedClaimRecorded { channel: ChannelId(e.channelId), upto_seq: e.uptoSeq },
        E::CloseRequested(e) => JudgeEvent::CloseRequested {
            channel: ChannelId(e.channelId),
            by: e.by,
            settle_after: narrow(e.settleAfter),
        },
        E::Accused(e) => JudgeEvent::Accused {
            channel: ChannelId(e.channelId),
            missing_seq: e.missingSeq,
            seen_seq: e.seenSeq,
            deadline: narrow(e.deadline),
        },
        E::Defended(e) => JudgeEvent::Defended { channel: ChannelId(e.channelId), missing_seq: e.missingSeq },
        E::AccusationUpheld(e) => JudgeEvent::AccusationUpheld { channel: ChannelId(e.channelId), missing_seq: e.missingSeq },
        E::WrongCostProven(e) => JudgeEvent::WrongCostProven { channel: ChannelId(e.channelId), seq: e.seq, cost: e.cost },
        E::EquivocationProven(e) => JudgeEvent::EquivocationProven { channel: ChannelId(e.channelId), seq_a: e.seqA, seq_b: e.seqB },
        E::Settled(e) => JudgeEvent::Settled { channel: ChannelId(e.channelId), to_seller: e.toSeller, to_buyer: e.toBuyer },
        E::StopRecorded(e) => JudgeEvent::StopRecorded { channel: ChannelId(e.channelId), seq: e.seq, stop_count: narrow(e.stopCount) },
        E::StopViolationProven(e) => JudgeEvent::StopViolationProven {
            channel: ChannelId(e.channelId),
            seq: e.seq,
            posted_claim: narrow(e.postedClaim),
            stop_count: narrow(e.stopCount),
        },
        E::ClosedCooperatively(e) => JudgeEvent::ClosedCooperatively { channel: ChannelId(e.channelId), seq: e.seq },
        E::PayoutDeferred(e) => JudgeEvent::PayoutDeferred { to: e.to, amount: e.amount },
        E::Withdrawn(e) => JudgeEvent::Withdrawn { to: e.to, amount: e.amount },
        // EIP712DomainChanged and any later addition: nothing a broker acts on.
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

pub(crate) async fn fetch(provider: &DynProvider, judge: Address, from: u64, to: u64) -> Result<Vec<LoggedEvent>, JudgeError> {
    let filter = Filter::new().address(judge).from_block(from).to_block(to);
    let logs = provider.get_logs(&filter).await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
    let mut events = Vec::with_capacity(logs.len());
    for log in logs {
        // A log this version cannot decode (from a newer judge) is skipped, never fatal.
        let Ok(decoded) = SupraJudgeEvents::decode_log(&log.inner) else { continue };
        if let Some(event) = translate(decoded.data) {
            events.push(LoggedEvent {
                block: log.block_number.unwrap_or_default(),
                log_index: log.log_index.unwrap_or_default(),
                tx_hash: log.transaction_hash,
                event,
            });
        }
    }
    Ok(events)
}
