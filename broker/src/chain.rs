//! The broker's chain worker and event watcher.
//!
//! Every transaction goes through one worker task, in the order the node queued them (the
//! engines emit chain actions in dependency order, e.g. `post` before `defend`), from the broker's
//! one account. A transient failure (RPC outage, timeout) is retried with backoff until it goes
//! through: no claim, posting or defence is dropped because the node was unreachable for a while.
//! A refusal by the judge is final and reported back to the node.
//!
//! The watcher reads the judge's events block range by block range and hands them to the node,
//! which persists the cursor once it has handled them.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::U256;
use supra_channel::seller::SignedMessage;
use supra_channel::sign::Signature;
use supra_channel::types::{Ack, ChannelId, Message, Offer};
use supra_judge::{ChannelInfo, Judge, JudgeError, LoggedEvent};
use tokio::sync::mpsc;

/// A judge call the node wants made.
#[derive(Debug, Clone)]
pub enum Call {
    /// Read a channel (the seller checks a buyer's `Opened` claim; status display).
    ReadChannel { channel: ChannelId },
    /// The buyer's open, after checking that the offer's first message is not already posted.
    Open { offer: Offer, sig: Signature, deposit: U256 },
    /// The buyer adds to its deposit.
    TopUp { channel: ChannelId, amount: U256 },
    Post(Arc<SignedMessage>),
    Claim { ack: Ack, sig: Signature },
    ClaimPosted { channel: ChannelId, upto: u64 },
    ProveWrongCost { ack: Ack, sig: Signature },
    Defend { channel: ChannelId },
    DefendWithAck { ack: Ack, sig: Signature },
    RequestClose { channel: ChannelId },
    Settle { channel: ChannelId },
    Accuse { channel: ChannelId, seen: Message, sig: Signature, missing: u64 },
    Resolve { channel: ChannelId },
    ProveEquivocation { channel: ChannelId, a: Message, sig_a: Signature, b: Message, sig_b: Signature },
}

impl Call {
    fn name(&self) -> &'static str {
        match self {
            Call::ReadChannel { .. } => "read channel",
            Call::Open { .. } => "open",
            Call::TopUp { .. } => "topUp",
            Call::Post(_) => "post",
            Call::Claim { .. } => "claim",
            Call::ClaimPosted { .. } => "claimPosted",
            Call::ProveWrongCost { .. } => "proveWrongCost",
            Call::Defend { .. } => "defend",
            Call::DefendWithAck { .. } => "defendWithAck",
            Call::RequestClose { .. } => "requestClose",
            Call::Settle { .. } => "settle",
            Call::Accuse { .. } => "accuse",
            Call::Resolve { .. } => "resolve",
            Call::ProveEquivocation { .. } => "proveEquivocation",
        }
    }
}

/// Who asked, so the node can route the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A sold stream (index in the node's streams).
    Stream(usize),
    /// A bought channel.
    Bought(ChannelId),
    /// A buy entry opening a channel (index in the node's buys).
    Buy(usize),
    /// A seller checking a channel its buyer says it opened: (stream index, buyer link).
    OpenedClaim(usize, crate::peer::LinkId),
}

/// What a successful call returned.
#[derive(Debug, Clone)]
pub enum Outcome {
    Mined(supra_judge::Receipt),
    Channel(Box<ChannelInfo>),
    Opened(ChannelId),
}

/// A job for the worker and, later, its result.
#[derive(Debug)]
pub struct Job {
    pub origin: Origin,
    pub call: Call,
}

#[derive(Debug)]
pub struct JobResult {
    pub origin: Origin,
    pub call: Call,
    pub outcome: Result<Outcome, JudgeError>,
}

async fn execute(judge: &Judge, call: &Call) -> Result<Outcome, JudgeError> {
    use Outcome::Mined;
    Ok(match call {
        Call::ReadChannel { channel } => Outcome::Channel(Box::new(judge.channel(*channel).await?)),
        Call::Open { offer, sig, deposit } => {
            // An offer starting at an already posted message would let the seller charge for
            // messages posted before the channel existed.
            if judge.posting(offer.stream(), offer.startSeq).await?.is_some() {
                return Err(JudgeError::Refused(format!("offer starts at seq {}, which is already posted", offer.startSeq)));
            }
            let (channel, _) = judge.open(offer, sig.as_bytes(), *deposit).await?;
            Outcome::Opened(channel)
        }
        Call::TopUp { channel, amount } => Mined(judge.top_up(*channel, *amount).await?),
        Call::Post(m) => Mined(judge.post(&m.message, &m.payload, m.sig.as_bytes()).await?),
        Call::Claim { ack, sig } => Mined(judge.claim(ack, sig.as_bytes()).await?),
        Call::ClaimPosted { channel, upto } => Mined(judge.claim_posted(*channel, *upto).await?),
        Call::ProveWrongCost { ack, sig } => Mined(judge.prove_wrong_cost(ack, sig.as_bytes()).await?),
        Call::Defend { channel } => Mined(judge.defend(*channel).await?),
        Call::DefendWithAck { ack, sig } => Mined(judge.defend_with_ack(ack, sig.as_bytes()).await?),
        Call::RequestClose { channel } => Mined(judge.request_close(*channel).await?),
        Call::Settle { channel } => Mined(judge.settle(*channel).await?),
        Call::Accuse { channel, seen, sig, missing } => Mined(judge.accuse(*channel, seen, sig.as_bytes(), *missing).await?),
        Call::Resolve { channel } => Mined(judge.resolve(*channel).await?),
        Call::ProveEquivocation { channel, a, sig_a, b, sig_b } => {
            Mined(judge.prove_equivocation(*channel, (a, sig_a.as_bytes()), (b, sig_b.as_bytes())).await?)
        }
    })
}

/// Runs jobs one at a time, retrying transient failures with backoff (0.25 s to 15 s) until they
/// go through or the judge refuses them.
pub async fn worker(judge: Judge, mut jobs: mpsc::UnboundedReceiver<Job>, results: mpsc::UnboundedSender<JobResult>) {
    while let Some(job) = jobs.recv().await {
        let mut backoff = Duration::from_millis(250);
        let outcome = loop {
            match execute(&judge, &job.call).await {
                Err(e) if e.is_transient() => {
                    tracing::warn!("chain: {} failed ({e}); retrying in {backoff:?}", job.call.name());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(15));
                }
                other => break other,
            }
        };
        match &outcome {
            Ok(Outcome::Mined(r)) => tracing::debug!("chain: {} mined in block {} ({} gas)", job.call.name(), r.block, r.gas_used),
            Ok(_) => {}
            Err(e) => tracing::warn!("chain: {} refused: {e}", job.call.name()),
        }
        if results.send(JobResult { origin: job.origin, call: job.call, outcome }).is_err() {
            return;
        }
    }
}

/// A batch of judge events up to and including block `to`.
#[derive(Debug)]
pub struct EventBatch {
    pub events: Vec<LoggedEvent>,
    pub to: u64,
}

/// Polls the judge's events every `interval` from block `from`, in ranges of at most 2,000 blocks.
pub async fn watch(judge: Judge, mut from: u64, interval: Duration, out: mpsc::UnboundedSender<EventBatch>) {
    loop {
        match judge.block_number().await {
            Ok(latest) if latest >= from => {
                let to = latest.min(from + 1_999);
                match judge.events(from, to).await {
                    Ok(events) => {
                        if out.send(EventBatch { events, to }).is_err() {
                            return;
                        }
                        from = to + 1;
                        if to < latest {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!("chain: reading events {from}..={to}: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("chain: {e}"),
        }
        tokio::time::sleep(interval).await;
    }
}
