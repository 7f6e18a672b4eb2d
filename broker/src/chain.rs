//! The broker's chain worker and event watcher.
//!
//! Every transaction goes through one worker task, in the order the node queued them (the
//! engines emit chain actions in dependency order, e.g. `post` before `defend`), from the broker's
//! one account. The chain is not final: see [`worker`] for how a call is carried through
//! outages, early refusals, dropped or stuck transactions and reorganisations until it is
//! mined and confirmed or provably unnecessary. A refusal by the judge that no time or other
//! transaction can change is final and reported back to the node.
//!
//! The watcher reads the judge's confirmed events block range by block range, rewinds past
//! reorganisations ([`watch`]) and hands them to the node, which persists the cursor once it has
//! handled them.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use supra_channel::proof::MessageProof;
use supra_channel::seller::SignedMessage;
use supra_channel::sign::Signature;
use supra_channel::types::{Ack, ChannelId, Message, Offer, Stop};
use supra_judge::market::{Ad, Catalogue, OfferFilter};
use supra_judge::{ChannelInfo, Judge, JudgeError, LoggedEvent};
use tokio::sync::mpsc;

use crate::observe::Observer;

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
    Accuse { channel: ChannelId, seen: Message, proof: MessageProof, missing: u64 },
    Resolve { channel: ChannelId },
    ProveEquivocation { channel: ChannelId, a: Message, proof_a: MessageProof, b: Message, proof_b: MessageProof },
    /// A seller-signed Stop: the seller's answer to an accusation past it, or the buyer's
    /// proof against a posted claim past it.
    SubmitStop { stop: Stop, sig: Signature },
    /// The buyer's ack and the seller's Stop at the same seq: the channel settles at once.
    CloseCooperatively { ack: Ack, ack_sig: Signature, stop: Stop, stop_sig: Signature },
    /// Lists a sold stream in the offer catalogue at `catalogue` (`selling`), or withdraws its ad;
    /// nothing is sent when the catalogue already says so.
    Advertise { catalogue: Address, ad: Box<Ad>, selling: bool },
}

impl Call {
    /// The channel a call concerns, when it names one (a posting names its stream).
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            Call::ReadChannel { channel }
            | Call::TopUp { channel, .. }
            | Call::ClaimPosted { channel, .. }
            | Call::Defend { channel }
            | Call::RequestClose { channel }
            | Call::Settle { channel }
            | Call::Accuse { channel, .. }
            | Call::Resolve { channel }
            | Call::ProveEquivocation { channel, .. } => Some(*channel),
            Call::Claim { ack, .. } | Call::ProveWrongCost { ack, .. } | Call::DefendWithAck { ack, .. } | Call::CloseCooperatively { ack, .. } => {
                Some(ChannelId(ack.channelId))
            }
            Call::SubmitStop { stop, .. } => Some(ChannelId(stop.channelId)),
            Call::Open { .. } | Call::Post(_) | Call::Advertise { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
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
            Call::SubmitStop { .. } => "submitStop",
            Call::CloseCooperatively { .. } => "closeCooperatively",
            Call::Advertise { selling: true, .. } => "announce",
            Call::Advertise { selling: false, .. } => "withdraw",
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
    /// A `post` was mined; the judge stored it with this block time (`postedAt`, seconds).
    Posted(supra_judge::Receipt, u64),
    /// What the catalogue now says of a stream: "announced", "withdrawn", or already so.
    Advertised(&'static str),
}

/// A job for the worker and, later, its result.
#[derive(Debug, Clone)]
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

/// Makes the call; a transaction also returns its receipt (to watch for reorganisations).
async fn execute(judge: &Judge, call: &Call) -> Result<(Outcome, Option<supra_judge::Receipt>), JudgeError> {
    let mined = |r: supra_judge::Receipt| (Outcome::Mined(r), Some(r));
    Ok(match call {
        Call::ReadChannel { channel } => (Outcome::Channel(Box::new(judge.channel(*channel).await?)), None),
        Call::Open { offer, sig, deposit } => {
            // An offer starting at an already posted message would let the seller charge for
            // messages posted before the channel existed.
            if judge.posting(offer.stream(), offer.startSeq).await?.is_some() {
                return Err(JudgeError::Refused(format!("offer starts at seq {}, which is already posted", offer.startSeq)));
            }
            // A token channel is funded in one transaction: the buyer key signs an EIP-2612 permit
            // that `openWithPermit` uses before it pulls the deposit.
            let (channel, receipt) = if offer.token == Address::ZERO {
                judge.open(offer, sig.as_bytes(), *deposit).await?
            } else {
                judge.open_with_permit(offer, sig.as_bytes(), *deposit).await?
            };
            (Outcome::Opened(channel), Some(receipt))
        }
        Call::TopUp { channel, amount } => {
            if judge.channel_token(*channel).await? == Address::ZERO {
                mined(judge.top_up(*channel, *amount).await?)
            } else {
                mined(judge.top_up_with_permit(*channel, *amount).await?)
            }
        }
        Call::Post(m) => {
            let receipt = judge.post(&m.message, &m.payload, &m.proof).await?;
            // The posting's time is its block time (what `claimPosted` after a close checks).
            let at = match judge.posting(m.message.stream(), m.message.seq).await? {
                Some((_, at)) => at,
                None => judge.block_timestamp().await?,
            };
            (Outcome::Posted(receipt, at), Some(receipt))
        }
        Call::Claim { ack, sig } => mined(judge.claim(ack, sig.as_bytes()).await?),
        Call::ClaimPosted { channel, upto } => mined(judge.claim_posted(*channel, *upto).await?),
        Call::ProveWrongCost { ack, sig } => mined(judge.prove_wrong_cost(ack, sig.as_bytes()).await?),
        Call::Defend { channel } => mined(judge.defend(*channel).await?),
        Call::DefendWithAck { ack, sig } => mined(judge.defend_with_ack(ack, sig.as_bytes()).await?),
        Call::RequestClose { channel } => mined(judge.request_close(*channel).await?),
        Call::Settle { channel } => mined(judge.settle(*channel).await?),
        Call::Accuse { channel, seen, proof, missing } => mined(judge.accuse(*channel, seen, proof, *missing).await?),
        Call::Resolve { channel } => mined(judge.resolve(*channel).await?),
        Call::ProveEquivocation { channel, a, proof_a, b, proof_b } => {
            mined(judge.prove_equivocation(*channel, a, proof_a, b, proof_b).await?)
        }
        Call::SubmitStop { stop, sig } => mined(judge.submit_stop(stop, sig.as_bytes()).await?),
        Call::CloseCooperatively { ack, ack_sig, stop, stop_sig } => {
            mined(judge.close_cooperatively(ack, ack_sig.as_bytes(), stop, stop_sig.as_bytes()).await?)
        }
        Call::Advertise { catalogue, ad, selling } => {
            let catalogue = Catalogue::connect(judge, *catalogue).await?;
            let mine = OfferFilter { seller: Some(ad.seller()), ..OfferFilter::default() };
            let listed = catalogue.offers(&mine).await?.into_iter().find(|l| l.ad.stream == ad.stream);
            match (selling, listed) {
                (true, Some(l)) if l.ad == **ad => (Outcome::Advertised("listed already"), None),
                (true, _) => {
                    let receipt = catalogue.announce(ad).await?;
                    (Outcome::Advertised("announced"), Some(receipt))
                }
                (false, Some(_)) => {
                    let receipt = catalogue.withdraw(ad.stream).await?;
                    (Outcome::Advertised("withdrawn"), Some(receipt))
                }
                (false, None) => (Outcome::Advertised("not listed"), None),
            }
        }
    })
}

/// How long a mined transaction is watched for a reorganisation that removes it, in blocks past
/// its own. Deeper reorganisations than this are not expected on any chain a broker uses.
pub const WATCH_DEPTH: u64 = 64;

/// Back-off between attempts of a call that failed transiently (0.25 s doubling to 15 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// Wait before retrying a call refused because of a state another transaction will change.
const NOT_NOW_RETRY: Duration = Duration::from_secs(2);

/// Why a job is (re)run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Queued by the node.
    First,
    /// Its transaction was mined, then a reorganisation removed it: run again. The node already
    /// acted on the first success, so only a failure is reported back.
    Resubmission,
}

/// A job waiting for the chain: its time, or a state another transaction will change.
#[derive(Debug)]
enum Due {
    /// When the pending block's timestamp reaches this (unix seconds).
    ChainTime(u64),
    /// After this instant (local back-off).
    At(tokio::time::Instant),
}

/// A job whose transaction was mined, watched until it is [`WATCH_DEPTH`] blocks deep.
#[derive(Debug)]
struct Watched {
    job: Job,
    receipt: supra_judge::Receipt,
}

/// The transaction worker: runs the node's jobs one at a time, in order, from the broker's one
/// account, until each is mined (and confirmed, see [`supra_judge::TxPolicy`]) or provably
/// unnecessary:
/// - a transient failure (RPC outage, timeout, a transaction reorganised away before its
///   confirmations) is retried with back-off;
/// - a refusal that depends on time (`ClosureNotElapsed`, `DeadlineNotPassed`) is set aside and
///   run again when the chain's time (the pending block's timestamp) says it passes, and one that
///   depends on another transaction (`AccusationOpen`) with back-off; the jobs behind it go on;
/// - a mined transaction is watched for [`WATCH_DEPTH`] blocks: if a reorganisation removes it,
///   the job runs again (a re-run that the judge now refuses, e.g. `NothingToClaim` after a
///   later claim, was unnecessary);
/// - any other refusal is final and reported to the node.
pub async fn worker(judge: Judge, mut jobs: mpsc::UnboundedReceiver<Job>, results: mpsc::UnboundedSender<JobResult>, poll: Duration, observer: Arc<Observer>) {
    let mut queue: std::collections::VecDeque<(Job, Attempt)> = std::collections::VecDeque::new();
    let mut waiting: Vec<(Due, Job, Attempt)> = Vec::new();
    let mut watched: Vec<Watched> = Vec::new();
    let mut head: Option<(u64, alloy_primitives::B256)> = None;
    let mut next_check = tokio::time::Instant::now();
    loop {
        while let Ok(job) = jobs.try_recv() {
            queue.push_back((job, Attempt::First));
        }
        if tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + poll;
            release_due(&judge, &mut waiting, &mut queue).await;
            check_reorgs(&judge, &mut watched, &mut head, &mut queue).await;
        }
        let Some((job, attempt)) = queue.pop_front() else {
            let idle = waiting.is_empty() && watched.is_empty();
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => queue.push_back((job, Attempt::First)),
                    None => return,
                },
                _ = tokio::time::sleep_until(next_check), if !idle => {}
            }
            continue;
        };
        let started = std::time::Instant::now();
        match run(&judge, &job.call, &observer).await {
            Err(JudgeError::TooEarly { until, refusal }) => {
                tracing::info!("chain: {} too early ({refusal}); again at chain time {until}", job.call.name());
                waiting.push((Due::ChainTime(until), job, attempt));
            }
            Err(JudgeError::NotNow(refusal)) => {
                tracing::info!("chain: {} refused for now ({refusal}); again in {NOT_NOW_RETRY:?}", job.call.name());
                waiting.push((Due::At(tokio::time::Instant::now() + NOT_NOW_RETRY), job, attempt));
            }
            outcome => {
                let receipt = match &outcome {
                    Ok((_, Some(receipt))) => Some(*receipt),
                    _ => None,
                };
                let outcome = outcome.map(|(o, _)| o);
                if !matches!(job.call, Call::ReadChannel { .. }) {
                    let result = outcome.as_ref().map(|_| receipt.as_ref()).map_err(|e| e.to_string());
                    let channel = match &outcome {
                        Ok(Outcome::Opened(channel)) => Some(*channel),
                        _ => job.call.channel(),
                    };
                    observer.transaction(job.call.name(), channel, result, started);
                }
                match (&outcome, receipt) {
                    (Ok(_), Some(r)) => tracing::debug!("chain: {} mined in block {} ({} gas)", job.call.name(), r.block, r.gas_used),
                    (Ok(_), None) => {}
                    (Err(e), _) => tracing::warn!("chain: {} refused: {e}", job.call.name()),
                }
                if let Some(receipt) = receipt {
                    watched.push(Watched { job: job.clone(), receipt });
                }
                let report = attempt == Attempt::First || outcome.is_err();
                if report && results.send(JobResult { origin: job.origin, call: job.call, outcome }).is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs a call, retrying transient failures with back-off until it goes through or the judge
/// answers.
async fn run(judge: &Judge, call: &Call, observer: &Observer) -> Result<(Outcome, Option<supra_judge::Receipt>), JudgeError> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match execute(judge, call).await {
            Err(e) if e.is_transient() => {
                observer.rpc_error(call.name(), &e.to_string());
                tracing::warn!("chain: {} failed ({e}); retrying in {backoff:?}", call.name());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Moves the waiting jobs whose time has come back to the front of the queue, in the order they
/// were set aside.
async fn release_due(judge: &Judge, waiting: &mut Vec<(Due, Job, Attempt)>, queue: &mut std::collections::VecDeque<(Job, Attempt)>) {
    if waiting.is_empty() {
        return;
    }
    let chain_now = if waiting.iter().any(|(due, ..)| matches!(due, Due::ChainTime(_))) {
        match judge.pending_timestamp().await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("chain: reading the chain's time: {e}");
                None
            }
        }
    } else {
        None
    };
    let now = tokio::time::Instant::now();
    let mut due = Vec::new();
    waiting.retain_mut(|(when, job, attempt)| {
        let ready = match when {
            Due::ChainTime(t) => chain_now.is_some_and(|c| c >= *t),
            Due::At(at) => now >= *at,
        };
        if ready {
            due.push((job.clone(), *attempt));
        }
        !ready
    });
    for entry in due.into_iter().rev() {
        queue.push_front(entry);
    }
}

/// Looks for mined transactions that a reorganisation removed and queues their jobs again.
async fn check_reorgs(
    judge: &Judge,
    watched: &mut Vec<Watched>,
    head: &mut Option<(u64, alloy_primitives::B256)>,
    queue: &mut std::collections::VecDeque<(Job, Attempt)>,
) {
    if watched.is_empty() {
        return;
    }
    let latest = match judge.block_number().await {
        Ok(n) => n,
        Err(e) => return tracing::warn!("chain: {e}"),
    };
    let latest_hash = match judge.block_hash(latest).await {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => return tracing::warn!("chain: {e}"),
    };
    if *head == Some((latest, latest_hash)) {
        return;
    }
    // Blocks up to the head seen last time are unchanged if that head still is in the chain:
    // only transactions mined after it need a look (one RPC while the chain merely grows).
    let unchanged_up_to = match *head {
        Some((number, hash)) => match judge.block_hash(number).await {
            Ok(now) if now == Some(hash) => Some(number),
            Ok(_) => None,
            Err(e) => return tracing::warn!("chain: {e}"),
        },
        None => None,
    };
    let mut complete = true;
    let mut canonical: std::collections::HashMap<u64, Option<alloy_primitives::B256>> = std::collections::HashMap::new();
    let mut gone = Vec::new();
    let mut i = 0;
    while i < watched.len() {
        let w = &mut watched[i];
        if latest >= w.receipt.block.saturating_add(WATCH_DEPTH) {
            watched.swap_remove(i);
            continue;
        }
        if unchanged_up_to.is_some_and(|n| w.receipt.block <= n) {
            i += 1;
            continue;
        }
        let hash = match canonical.get(&w.receipt.block) {
            Some(hash) => *hash,
            None => match judge.block_hash(w.receipt.block).await {
                Ok(hash) => *canonical.entry(w.receipt.block).or_insert(hash),
                Err(e) => {
                    tracing::warn!("chain: {e}");
                    complete = false;
                    break;
                }
            },
        };
        if hash == Some(w.receipt.block_hash) {
            i += 1;
            continue;
        }
        // Its block is gone: was the transaction mined again elsewhere?
        match judge.inclusion(&w.receipt).await {
            Ok(Some(again)) => {
                w.receipt = again;
                i += 1;
            }
            Ok(None) => gone.push(watched.swap_remove(i)),
            Err(e) => {
                tracing::warn!("chain: {e}");
                complete = false;
                break;
            }
        }
    }
    // Looked at everything: the next check may start from this head.
    if complete {
        *head = Some((latest, latest_hash));
    }
    // Oldest first, ahead of newer work: a re-run claim or posting is what the node counted on.
    gone.sort_by_key(|w| w.receipt.block);
    for w in gone.into_iter().rev() {
        tracing::warn!("chain: {} mined in block {} was reorganised away; sending it again", w.job.call.name(), w.receipt.block);
        queue.push_front((w.job, Attempt::Resubmission));
    }
}

/// A batch of judge events up to and including block `to`.
#[derive(Debug)]
pub struct EventBatch {
    pub events: Vec<LoggedEvent>,
    pub to: u64,
}

/// Polls the judge's events every `interval` from block `from`, in ranges of at most 2,000
/// blocks, reading only blocks with `confirmations` blocks on top. It remembers the hash of the
/// last block of each range (for [`WATCH_DEPTH`] blocks): when one changed, a reorganisation
/// replaced it, and the watcher rewinds to the newest remembered block still in the chain and
/// reads the events from there again. The node handles events idempotently (a posting read
/// twice is a duplicate the buyer does not deliver again).
pub async fn watch(judge: Judge, mut from: u64, interval: Duration, confirmations: u64, out: mpsc::UnboundedSender<EventBatch>, observer: Arc<Observer>) {
    let mut read: std::collections::VecDeque<(u64, alloy_primitives::B256)> = std::collections::VecDeque::new();
    loop {
        match next_batch(&judge, &mut from, confirmations, &mut read).await {
            Ok(Some((batch, more))) => {
                observer.events_read(batch.to);
                if out.send(batch).is_err() {
                    return;
                }
                if more {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => {
                observer.rpc_error("events", &e.to_string());
                tracing::warn!("chain: reading events from block {from}: {e}");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reads the next range of events, after rewinding past a reorganisation. `Some((batch, more))`:
/// `more` when the range stopped short of the confirmed head.
async fn next_batch(
    judge: &Judge,
    from: &mut u64,
    confirmations: u64,
    read: &mut std::collections::VecDeque<(u64, alloy_primitives::B256)>,
) -> Result<Option<(EventBatch, bool)>, JudgeError> {
    if let Some(&(block, hash)) = read.back()
        && judge.block_hash(block).await? != Some(hash)
    {
        while let Some(&(block, hash)) = read.back() {
            if judge.block_hash(block).await? == Some(hash) {
                break;
            }
            read.pop_back();
        }
        let rewound = read.back().map_or_else(|| from.saturating_sub(WATCH_DEPTH), |(block, _)| block + 1);
        tracing::warn!("chain: reorganisation below block {from}; reading events again from block {rewound}");
        *from = rewound;
    }
    let Some(head) = judge.block_number().await?.checked_sub(confirmations) else { return Ok(None) };
    if head < *from {
        return Ok(None);
    }
    let to = head.min(*from + 1_999);
    let before = judge.block_hash(to).await?;
    let events = judge.events(*from, to).await?;
    let Some(hash) = judge.block_hash(to).await?.filter(|after| Some(*after) == before) else {
        // The chain changed under the read: read again.
        return Ok(None);
    };
    read.push_back((to, hash));
    while read.front().is_some_and(|(block, _)| block + WATCH_DEPTH < to) {
        read.pop_front();
    }
    *from = to + 1;
    Ok(Some((EventBatch { events, to }, to < head)))
}
