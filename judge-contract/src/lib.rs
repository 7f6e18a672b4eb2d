//! Rust side of the Supra judge: bindings generated from the committed artifact
//! (`artifacts/SupraJudge.json`, kept in sync with the Solidity by `scripts/judge-artifact --check`),
//! a typed client over alloy that speaks the engine's types ([`supra_channel::types`]), judge event
//! decoding, and a local Anvil [`devnet`].
//!
//! The client sends one transaction at a time and waits for its receipt; callers that need
//! concurrency (the broker) serialise their chain work through one task, which also keeps the
//! account's nonces in order.

pub mod devnet;
mod events;
pub mod market;

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use supra_channel::proof::MessageProof;
use supra_channel::types::{Ack, Batch, ChannelId, Domain, Message, Offer, PeerAuth, Stop, StreamId};

pub use events::{JudgeEvent, LoggedEvent};

/// Bindings generated from the committed artifact.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod bindings {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        SupraJudge,
        "artifacts/SupraJudge.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        SupraCatalogue,
        "artifacts/SupraCatalogue.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        SupraTestToken,
        "artifacts/SupraTestToken.json"
    );
}

use bindings::SupraJudge::{self, SupraJudgeErrors, SupraJudgeInstance};

/// Largest sealed payload the judge's `post` accepts, in bytes (`SupraJudge.MAX_PAYLOAD_BYTES`): a bigger
/// `post` transaction would exceed the 128 KiB that common transaction pools relay, so such a message could
/// be neither posted as a fallback nor used as a defence. A seller must not sell (seal) bigger payloads.
/// [`Judge::limits`] reads the deployed judge's values; a test checks they equal these constants.
pub const MAX_PAYLOAD_BYTES: usize = 98_304;
/// Largest `tAck` (seconds) an offer may carry (`SupraJudge.MAX_T_ACK`, one day).
pub const MAX_T_ACK_SECS: u32 = 86_400;
/// Largest `tClosure` (seconds) an offer may carry (`SupraJudge.MAX_T_CLOSURE`, seven days).
pub const MAX_T_CLOSURE_SECS: u32 = 604_800;
/// Largest price per message (wei) an offer may carry (`SupraJudge.MAX_PRICE`, 2^72 - 1).
pub const MAX_PRICE_WEI: u128 = (1u128 << 72) - 1;
/// Most messages one signed batch may hold (`SupraJudge.MAX_BATCH`; `supra_channel::proof::MAX_BATCH`).
pub const MAX_BATCH: u64 = supra_channel::proof::MAX_BATCH;
/// Longest Merkle path a `BatchProof` may carry (`SupraJudge.MAX_PROOF_DEPTH`).
pub const MAX_PROOF_DEPTH: usize = supra_channel::proof::MAX_PROOF_DEPTH;

/// The judge's bounds, as read from a deployment ([`Judge::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeLimits {
    pub max_payload_bytes: usize,
    pub max_t_ack_secs: u32,
    pub max_t_closure_secs: u32,
    pub max_price_wei: u128,
}

/// The times and bounds behind a channel's deadlines (see `ISupraJudge.ChannelTiming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelTiming {
    /// Block time (unix seconds) of `open`.
    pub opened_at: u64,
    /// Block time of the last claim that raised `acked`, or of the last top-up; 0: none.
    pub extended_at: u64,
    /// Open accusation: a posting of the missing message answers it only if mined by then (unix seconds).
    pub dispute_post_by: Option<u64>,
    /// With a seller Stop recorded: the messages it leaves owed, counted from `startSeq`.
    pub seller_stop_count: Option<u64>,
}

/// Status of a channel on the judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    /// Never opened.
    None,
    Open,
    Closing,
    Settled,
}

/// The judge's record of a channel (see `ISupraJudge.ChannelInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub status: ChannelStatus,
    pub stream: StreamId,
    pub seller: Address,
    pub buyer: Address,
    pub price: U256,
    pub window: u64,
    pub start_seq: u64,
    pub t_ack: u32,
    pub t_closure: u32,
    /// F: everything the buyer locked.
    pub deposit: U256,
    /// R: everything paid to the seller so far.
    pub claimed: U256,
    /// Messages covered by the highest claimed ack (0: none).
    pub acked: u64,
    /// Messages covered by the recorded posted claim (0: none).
    pub posted_claim: u64,
    /// Unix seconds of the close request; 0 while open.
    pub close_requested_at: u64,
    /// The open accusation: (missing seq, deadline in unix seconds).
    pub dispute: Option<(u64, u64)>,
}

/// Where a transaction was mined and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub tx_hash: B256,
    pub block: u64,
    /// Hash of the including block: tells a reorganised-away inclusion from a canonical one.
    pub block_hash: B256,
    pub gas_used: u64,
}

/// How this client sends transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPolicy {
    /// Blocks that must be built on top of the including block before a transaction counts as
    /// done (0: mined is done).
    pub confirmations: u64,
    /// A transaction still not mined after this long is replaced: same nonce, EIP-1559 fees raised
    /// by `fee_bump_percent`. One the node no longer knows (dropped from its pool) is replaced
    /// at once.
    pub replace_after: Duration,
    /// Fee increase of each replacement, in percent (nodes require at least 10).
    pub fee_bump_percent: u64,
    /// How often receipts and confirmations are polled.
    pub poll: Duration,
}

impl Default for TxPolicy {
    fn default() -> Self {
        TxPolicy { confirmations: 0, replace_after: Duration::from_secs(30), fee_bump_percent: 25, poll: Duration::from_millis(250) }
    }
}

/// A failed judge call.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The judge refused the call with one of its custom errors (the call changed nothing).
    #[error("judge refused: {0}")]
    Refused(String),
    /// The transaction was mined but reverted without a decodable reason.
    #[error("transaction {0} reverted")]
    Reverted(B256),
    /// The judge refused the call only because it came too early: it will pass once the chain's
    /// time (block timestamp) reaches `until` (unix seconds).
    #[error("judge refused for now: {refusal} (passes at chain time {until})")]
    TooEarly { until: u64, refusal: String },
    /// The judge refused the call because of a state another call will change (an accusation is
    /// open): retrying later may succeed.
    #[error("judge refused for now: {0}")]
    NotNow(String),
    /// The node could not be reached or answered with a transport error; retrying may succeed.
    #[error("chain RPC: {0}")]
    Rpc(String),
    /// Anything else (bad key, bad URL, undecodable answer).
    #[error("{0}")]
    Other(String),
}

impl JudgeError {
    /// True when retrying the same call later may succeed (RPC outage, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, JudgeError::Rpc(_))
    }

    /// The refusal's name (`"NothingToClaim"` for `NothingToClaim { .. }`), for any refusal.
    pub fn refusal_name(&self) -> Option<&str> {
        let text = match self {
            JudgeError::Refused(text) | JudgeError::NotNow(text) | JudgeError::TooEarly { refusal: text, .. } => text,
            _ => return None,
        };
        text.split([' ', '(', '{']).next()
    }

    fn from_contract(error: alloy::contract::Error) -> JudgeError {
        if let Some(refusal) = error.as_decoded_interface_error::<SupraJudgeErrors>() {
            let text = describe_refusal(&refusal);
            let narrow = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
            return match refusal {
                SupraJudgeErrors::ClosureNotElapsed(e) => JudgeError::TooEarly { until: narrow(e.settleAfter), refusal: text },
                // `resolve` needs `block.timestamp > deadline`.
                SupraJudgeErrors::DeadlineNotPassed(e) => JudgeError::TooEarly { until: narrow(e.deadline).saturating_add(1), refusal: text },
                SupraJudgeErrors::AccusationOpen(_) => JudgeError::NotNow(text),
                _ => JudgeError::Refused(text),
            };
        }
        // The catalogue's refusals, and a token's (bubbled up through the judge's `transferFrom`).
        if let Some(refusal) = error.as_decoded_interface_error::<bindings::SupraCatalogue::SupraCatalogueErrors>() {
            return JudgeError::Refused(format!("{refusal:?}"));
        }
        if let Some(refusal) = error.as_decoded_interface_error::<bindings::SupraTestToken::SupraTestTokenErrors>() {
            return JudgeError::Refused(format!("{refusal:?}"));
        }
        match error {
            alloy::contract::Error::TransportError(e) if e.as_error_resp().is_none() => JudgeError::Rpc(e.to_string()),
            alloy::contract::Error::PendingTransactionError(e) => JudgeError::Rpc(e.to_string()),
            other => JudgeError::Other(other.to_string()),
        }
    }
}

fn describe_refusal(refusal: &SupraJudgeErrors) -> String {
    // `{:?}` of a generated error prints its name and named fields, e.g.
    // `NothingToClaim(NothingToClaim { channelId: .., seq: 3 })`; keep the inner part.
    let text = format!("{refusal:?}");
    let inner = match text.split_once('(') {
        Some((_, inner)) => inner.strip_suffix(')').unwrap_or(inner).to_owned(),
        None => text,
    };
    channel_ids_in_hex(&inner)
}

/// Writes the `channelId: <decimal>` fields of a refusal as channel ids are written everywhere
/// else (`0x` and 64 hex digits), so that a log line can be matched with `supra channels`.
fn channel_ids_in_hex(text: &str) -> String {
    const FIELD: &str = "channelId: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(FIELD) {
        let (before, after) = rest.split_at(at + FIELD.len());
        out.push_str(before);
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        match U256::from_str_radix(&after[..digits], 10) {
            Ok(id) if digits > 0 => out.push_str(&ChannelId(id).to_string()),
            _ => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Converts between two `sol!` types with the same ABI layout (the engine's statement types and the
/// bindings' copies of them) through their ABI encoding.
fn convert<A: SolValue, B: SolValue + From<<B::SolType as alloy::sol_types::SolType>::RustType>>(value: &A) -> B {
    B::abi_decode(&value.abi_encode()).expect("identical layouts: both come from SupraTypes.sol")
}

/// The judge's `BatchProof` argument for an engine's [`MessageProof`].
fn proof_arg(proof: &MessageProof) -> SupraJudge::BatchProof {
    SupraJudge::BatchProof {
        batch: convert(&proof.batch),
        sig: Bytes::copy_from_slice(proof.sig.as_bytes()),
        path: proof.path.clone(),
    }
}

/// A connection to one judge deployment, with the key that signs this client's transactions.
#[derive(Clone)]
pub struct Judge {
    contract: SupraJudgeInstance<DynProvider>,
    provider: DynProvider,
    from: Address,
    /// The key of `from`: it also signs EIP-2612 permits ([`Judge::open_with_permit`]).
    signer: PrivateKeySigner,
    domain: Domain,
    policy: TxPolicy,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").field("address", self.contract.address()).field("from", &self.from).finish()
    }
}

fn signer_of(key: &B256) -> Result<PrivateKeySigner, JudgeError> {
    PrivateKeySigner::from_bytes(key).map_err(|e| JudgeError::Other(format!("bad key: {e}")))
}

fn provider_for(rpc_url: &str, key: &B256) -> Result<(DynProvider, Address, TxPolicy), JudgeError> {
    let signer = signer_of(key)?;
    let from = signer.address();
    let url: alloy::transports::http::reqwest::Url = rpc_url.parse().map_err(|e| JudgeError::Other(format!("bad RPC URL `{rpc_url}`: {e}")))?;
    // Nonces are read from the node for every transaction: a call that fails before it is sent
    // (e.g. the judge refuses it at gas estimation) must not leave a gap that stalls later ones.
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url);
    let mut policy = TxPolicy::default();
    if local {
        // A local node (Anvil) mines at once: look for receipts every 20 ms rather than alloy's
        // 250 ms, which would make every transaction of a broker take a quarter second.
        provider.client().set_poll_interval(Duration::from_millis(20));
        policy.poll = Duration::from_millis(20);
    }
    Ok((DynProvider::new(provider), from, policy))
}

fn summary(receipt: &TransactionReceipt) -> Receipt {
    Receipt {
        tx_hash: receipt.transaction_hash,
        block: receipt.block_number.unwrap_or_default(),
        block_hash: receipt.block_hash.unwrap_or_default(),
        gas_used: receipt.gas_used,
    }
}

impl Judge {
    /// Deploys a new judge from the committed artifact with `key` and connects to it.
    pub async fn deploy(rpc_url: &str, key: &B256) -> Result<Judge, JudgeError> {
        let (provider, from, policy) = provider_for(rpc_url, key)?;
        let contract = SupraJudge::deploy(provider.clone()).await.map_err(JudgeError::from_contract)?;
        Ok(Judge::with_contract(contract, provider, from, signer_of(key)?).await?.with_policy(policy))
    }

    /// Connects to the judge at `judge`, checking that code is deployed there.
    pub async fn connect(rpc_url: &str, key: &B256, judge: Address) -> Result<Judge, JudgeError> {
        let (provider, from, policy) = provider_for(rpc_url, key)?;
        let code = provider.get_code_at(judge).await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
        if code.is_empty() {
            return Err(JudgeError::Other(format!("no contract at {judge} on {rpc_url}")));
        }
        Ok(Judge::with_contract(SupraJudge::new(judge, provider.clone()), provider, from, signer_of(key)?)
            .await?
            .with_policy(policy))
    }

    async fn with_contract(
        contract: SupraJudgeInstance<DynProvider>,
        provider: DynProvider,
        from: Address,
        signer: PrivateKeySigner,
    ) -> Result<Judge, JudgeError> {
        let chain_id = provider.get_chain_id().await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
        let domain = Domain::new(chain_id, *contract.address());
        Ok(Judge { contract, provider, from, signer, domain, policy: TxPolicy::default() })
    }

    /// This client with another transaction policy (confirmations, replacement of stuck
    /// transactions).
    pub fn with_policy(mut self, policy: TxPolicy) -> Judge {
        self.policy = policy;
        self
    }

    /// How this client sends transactions.
    pub fn policy(&self) -> TxPolicy {
        self.policy
    }

    /// Sends a judge call from this client's account and waits until it is mined and confirmed.
    ///
    /// Gas is estimated against the *pending* block, whose timestamp is the one the transaction
    /// will see: on an idle chain the latest block can be long past, and a call that depends on
    /// time (`settle`, `resolve`) would be refused against it although it would pass when mined.
    /// A refusal at estimation sends nothing. A transaction that stays unmined for
    /// [`TxPolicy::replace_after`] (outbid by a fee spike), or that the node no longer knows
    /// (dropped from its pool), is replaced under the same nonce with fees raised by
    /// [`TxPolicy::fee_bump_percent`]; whichever of the versions is mined is the result. A transaction reorganised away before its confirmations
    /// is reported as an RPC error (transient): the caller sends the call again.
    pub(crate) async fn transact<D: alloy::contract::CallDecoder>(
        &self,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> Result<Receipt, JudgeError> {
        use alloy::network::TransactionBuilder;
        let rpc = |e: alloy::transports::TransportError| JudgeError::Rpc(e.to_string());
        let call = call.block(alloy::eips::BlockId::pending());
        let gas = call.estimate_gas().await.map_err(JudgeError::from_contract)?;
        // Pending state can differ a little from the state the transaction meets: keep a margin.
        let request = call.into_transaction_request().with_from(self.from).with_gas_limit(gas.saturating_add(gas / 4));
        // The next nonce the chain expects. Not the pool's view: a reorganisation can leave
        // transactions of ours queued behind a gap there, and building on them would only
        // lengthen the gap. A leftover of ours pending at this nonce is outbid below.
        let nonce = self.provider.get_transaction_count(self.from).latest().await.map_err(rpc)?;
        let fees = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let (mut max_fee, mut tip) = (fees.max_fee_per_gas, fees.max_priority_fee_per_gas);
        let bump = |fee: u128| fee.saturating_mul(100 + u128::from(self.policy.fee_bump_percent)).div_ceil(100).max(fee + 1);
        let mut sent: Vec<B256> = Vec::new();
        let mut outbids = 0;
        loop {
            let attempt = request.clone().with_nonce(nonce).with_max_fee_per_gas(max_fee).with_max_priority_fee_per_gas(tip);
            match self.provider.send_transaction(attempt).await {
                Ok(pending) => sent.push(*pending.tx_hash()),
                // Another transaction of ours waits in the pool with this nonce (left by an
                // attempt given up earlier): offer more to replace it.
                Err(e) if e.to_string().contains("underpriced") && outbids < 20 => {
                    outbids += 1;
                    (max_fee, tip) = (bump(max_fee), bump(tip));
                    continue;
                }
                // The first version never reached the node: nothing is in flight, the caller retries.
                Err(e) if sent.is_empty() => return Err(rpc(e)),
                // A replacement refused (e.g. the first version was mined meanwhile): keep waiting
                // for the versions already sent.
                Err(e) => tracing::debug!("replacement of nonce {nonce} not accepted: {e}"),
            }
            let replace_at = std::time::Instant::now() + self.policy.replace_after;
            let mut dropped = false;
            while std::time::Instant::now() < replace_at && !dropped {
                for hash in &sent {
                    if let Some(receipt) = self.provider.get_transaction_receipt(*hash).await.map_err(rpc)? {
                        return self.confirmed(receipt, &request).await;
                    }
                }
                // Transactions of ours before this nonce are gone from the chain (a
                // reorganisation took them): this one cannot be mined before they are. Give it
                // up; the caller makes the call again with the nonce the chain expects.
                if self.provider.get_transaction_count(self.from).latest().await.map_err(rpc)? < nonce {
                    return Err(JudgeError::Rpc(format!("transactions of ours before nonce {nonce} were reorganised away")));
                }
                // Known to the node neither mined nor pending: dropped from the pool, or taken
                // out of the chain by a reorganisation before we saw its receipt.
                dropped = true;
                for hash in &sent {
                    dropped &= self.provider.get_transaction_by_hash(*hash).await.map_err(rpc)?.is_none();
                }
                if !dropped {
                    tokio::time::sleep(self.policy.poll).await;
                }
            }
            // Still not mined: if the nonce was used by none of our versions, someone else holding
            // this key took it; the caller sends the call again with a fresh nonce.
            if self.provider.get_transaction_count(self.from).latest().await.map_err(rpc)? > nonce {
                for hash in &sent {
                    if let Some(receipt) = self.provider.get_transaction_receipt(*hash).await.map_err(rpc)? {
                        return self.confirmed(receipt, &request).await;
                    }
                }
                return Err(JudgeError::Rpc(format!("nonce {nonce} was used by another transaction")));
            }
            // Gone without a trace: the chain may have moved since the estimate (a
            // reorganisation takes its time back, another transaction changes the state). Sent
            // again blind, it could only be mined to revert: check it still passes first.
            if dropped {
                self.still_passes(&request).await?;
            }
            (max_fee, tip) = (bump(max_fee), bump(tip));
            let why = if dropped { "was dropped".to_owned() } else { format!("not mined after {:?}", self.policy.replace_after) };
            tracing::warn!("transaction with nonce {nonce} {why}: replacing it with max fee {max_fee} wei, tip {tip} wei");
        }
    }

    /// Checks against the pending state that `request` would go through now: the judge's refusal
    /// if not (a time-bound one says when it passes).
    async fn still_passes(&self, request: &alloy::rpc::types::TransactionRequest) -> Result<(), JudgeError> {
        let probe = alloy::rpc::types::TransactionRequest { gas: None, ..request.clone() };
        match self.provider.estimate_gas(probe).block(alloy::eips::BlockId::pending()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(JudgeError::from_contract(alloy::contract::Error::TransportError(e))),
        }
    }

    /// Waits for `receipt` (of `request`)'s confirmations, checks it is still in the chain, and
    /// sums it up.
    async fn confirmed(&self, receipt: TransactionReceipt, request: &alloy::rpc::types::TransactionRequest) -> Result<Receipt, JudgeError> {
        if !receipt.status() {
            // A receipt carries no revert reason. The chain moved between the estimate and the
            // block: if the judge still refuses the call, that refusal says why (and a refusal
            // for now tells the caller when to try again).
            return Err(match self.still_passes(request).await {
                Err(refusal @ (JudgeError::Refused(_) | JudgeError::TooEarly { .. } | JudgeError::NotNow(_))) => refusal,
                _ => JudgeError::Reverted(receipt.transaction_hash),
            });
        }
        let mined = summary(&receipt);
        if self.policy.confirmations == 0 {
            return Ok(mined);
        }
        loop {
            if self.block_number().await? >= mined.block.saturating_add(self.policy.confirmations) {
                break;
            }
            tokio::time::sleep(self.policy.poll).await;
        }
        match self.inclusion(&mined).await? {
            Some(now) => Ok(now),
            None => Err(JudgeError::Rpc(format!("transaction {} was reorganised away before its confirmations", mined.tx_hash))),
        }
    }

    /// Where the transaction of `mined` is included now: `None` if a reorganisation removed it
    /// (it may come back later), else its current receipt (maybe in another block than before).
    pub async fn inclusion(&self, mined: &Receipt) -> Result<Option<Receipt>, JudgeError> {
        let receipt = self.provider.get_transaction_receipt(mined.tx_hash).await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
        Ok(receipt.filter(|r| r.block_hash.is_some()).map(|r| summary(&r)))
    }

    /// Hash of block `number` of the current chain, `None` past the head.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, JudgeError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| JudgeError::Rpc(e.to_string()))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// The chain's time for the next transaction: the pending block's timestamp where the node
    /// serves one, else the latest block's.
    pub async fn pending_timestamp(&self) -> Result<u64, JudgeError> {
        let pending = self.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Pending).await;
        match pending {
            Ok(Some(block)) => Ok(block.header.timestamp),
            _ => self.block_timestamp().await,
        }
    }

    /// The judge's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The account that signs this client's transactions.
    pub fn from(&self) -> Address {
        self.from
    }

    /// The EIP-712 domain of this deployment (for the engine's signatures).
    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// The underlying provider (for reads the client does not wrap).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Balance of `account` in wei.
    pub async fn balance(&self, account: Address) -> Result<U256, JudgeError> {
        self.provider.get_balance(account).await.map_err(|e| JudgeError::Rpc(e.to_string()))
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64, JudgeError> {
        self.provider.get_block_number().await.map_err(|e| JudgeError::Rpc(e.to_string()))
    }

    /// Hash of the chain's genesis block (identifies the chain, devnets included).
    pub async fn genesis_hash(&self) -> Result<B256, JudgeError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Number(0))
            .await
            .map_err(|e| JudgeError::Rpc(e.to_string()))?
            .ok_or_else(|| JudgeError::Rpc("no genesis block".into()))?;
        Ok(block.header.hash)
    }

    /// Timestamp (unix seconds) of the latest block.
    pub async fn block_timestamp(&self) -> Result<u64, JudgeError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| JudgeError::Rpc(e.to_string()))?
            .ok_or_else(|| JudgeError::Rpc("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    // ---- channel life cycle ----

    /// Opens a channel with the seller's offer, locking `deposit`. Returns the channel id.
    pub async fn open(&self, offer: &Offer, seller_sig: &[u8], deposit: U256) -> Result<(ChannelId, Receipt), JudgeError> {
        let call = self.contract.open(convert(offer), Bytes::copy_from_slice(seller_sig)).value(deposit);
        let receipt = self.transact(call).await?;
        Ok((ChannelId::from_offer_digest(self.domain.digest(offer)), receipt))
    }

    /// Adds `amount` to an open channel's deposit.
    pub async fn top_up(&self, channel: ChannelId, amount: U256) -> Result<Receipt, JudgeError> {
        let call = self.contract.topUp(channel.as_u256()).value(amount);
        self.transact(call).await
    }

    /// Posts a seller-signed stream message (signed through `proof`, its batch) and its sealed payload
    /// on-chain. The `Posted` event carries the proof ([`JudgeEvent::Posted`]).
    pub async fn post(&self, message: &Message, payload: &[u8], proof: &MessageProof) -> Result<Receipt, JudgeError> {
        let call = self.contract.post(convert(message), Bytes::copy_from_slice(payload), proof_arg(proof));
        self.transact(call).await
    }

    /// Claims the payment due for the buyer's cumulative ack.
    pub async fn claim(&self, ack: &Ack, buyer_sig: &[u8]) -> Result<Receipt, JudgeError> {
        let call = self.contract.claim(convert(ack), Bytes::copy_from_slice(buyer_sig));
        self.transact(call).await
    }

    /// Records the seller's claim for posted messages up to `upto_seq` (paid at settle).
    pub async fn claim_posted(&self, channel: ChannelId, upto_seq: u64) -> Result<Receipt, JudgeError> {
        let call = self.contract.claimPosted(channel.as_u256(), upto_seq);
        self.transact(call).await
    }

    /// Starts closing a channel (buyer or seller).
    pub async fn request_close(&self, channel: ChannelId) -> Result<Receipt, JudgeError> {
        let call = self.contract.requestClose(channel.as_u256());
        self.transact(call).await
    }

    /// Settles a closing channel after T_closure.
    pub async fn settle(&self, channel: ChannelId) -> Result<Receipt, JudgeError> {
        let call = self.contract.settle(channel.as_u256());
        self.transact(call).await
    }

    // ---- disputes and proofs ----

    /// Accuses the seller of not delivering `missing_seq`, shown by the later message `seen`, seller-signed
    /// through `proof`.
    pub async fn accuse(
        &self,
        channel: ChannelId,
        seen: &Message,
        proof: &MessageProof,
        missing_seq: u64,
    ) -> Result<Receipt, JudgeError> {
        let call = self.contract.accuse(channel.as_u256(), convert(seen), proof_arg(proof), missing_seq);
        self.transact(call).await
    }

    /// Answers an accusation by the missing message's on-chain posting.
    pub async fn defend(&self, channel: ChannelId) -> Result<Receipt, JudgeError> {
        let call = self.contract.defend(channel.as_u256());
        self.transact(call).await
    }

    /// Answers an accusation with a buyer ack covering the missing message.
    pub async fn defend_with_ack(&self, ack: &Ack, buyer_sig: &[u8]) -> Result<Receipt, JudgeError> {
        let call = self.contract.defendWithAck(convert(ack), Bytes::copy_from_slice(buyer_sig));
        self.transact(call).await
    }

    /// Records the seller's signed Stop of a channel (bounds accusations and posted claims; answers an
    /// accusation past it; punishes a posted claim already recorded past it).
    pub async fn submit_stop(&self, stop: &Stop, seller_sig: &[u8]) -> Result<Receipt, JudgeError> {
        let call = self.contract.submitStop(convert(stop), Bytes::copy_from_slice(seller_sig));
        self.transact(call).await
    }

    /// Settles at once with the buyer's final ack and the seller's Stop at the same seq.
    pub async fn close_cooperatively(
        &self,
        ack: &Ack,
        buyer_sig: &[u8],
        stop: &Stop,
        seller_sig: &[u8],
    ) -> Result<Receipt, JudgeError> {
        let call = self.contract.closeCooperatively(
            convert(ack),
            Bytes::copy_from_slice(buyer_sig),
            convert(stop),
            Bytes::copy_from_slice(seller_sig),
        );
        self.transact(call).await
    }

    /// Upholds an accusation left unanswered past its deadline (refunds the buyer). If the missing
    /// message was posted by the accusation's posting limit, the judge answers the accusation instead.
    pub async fn resolve(&self, channel: ChannelId) -> Result<Receipt, JudgeError> {
        let call = self.contract.resolve(channel.as_u256());
        self.transact(call).await
    }

    /// Proves a buyer-signed ack with a wrong cost (the seller takes the rest of the deposit).
    pub async fn prove_wrong_cost(&self, ack: &Ack, buyer_sig: &[u8]) -> Result<Receipt, JudgeError> {
        let call = self.contract.proveWrongCost(convert(ack), Bytes::copy_from_slice(buyer_sig));
        self.transact(call).await
    }

    /// Proves the seller's equivocation with two conflicting messages, each seller-signed through its
    /// proof (from one batch or two): the buyer takes the rest.
    pub async fn prove_equivocation(
        &self,
        channel: ChannelId,
        a: &Message,
        proof_a: &MessageProof,
        b: &Message,
        proof_b: &MessageProof,
    ) -> Result<Receipt, JudgeError> {
        let call = self.contract.proveEquivocation(
            channel.as_u256(),
            convert(a),
            proof_arg(proof_a),
            convert(b),
            proof_arg(proof_b),
        );
        self.transact(call).await
    }

    // ---- views ----

    /// The judge's record of a channel.
    pub async fn channel(&self, channel: ChannelId) -> Result<ChannelInfo, JudgeError> {
        let info = self.contract.channel(channel.as_u256()).call().await.map_err(JudgeError::from_contract)?;
        let status = match info.status {
            0 => ChannelStatus::None,
            1 => ChannelStatus::Open,
            2 => ChannelStatus::Closing,
            _ => ChannelStatus::Settled,
        };
        let narrow = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
        Ok(ChannelInfo {
            status,
            stream: StreamId(info.streamId),
            seller: info.seller,
            buyer: info.buyer,
            price: info.price,
            window: info.window,
            start_seq: info.startSeq,
            t_ack: info.tAck,
            t_closure: info.tClosure,
            deposit: info.deposit,
            claimed: info.claimed,
            acked: narrow(info.acked),
            posted_claim: narrow(info.postedClaim),
            close_requested_at: info.closeRequestedAt,
            dispute: (info.disputeDeadline != 0).then_some((info.disputeSeq, info.disputeDeadline)),
        })
    }

    /// The times and bounds behind a channel's deadlines.
    pub async fn channel_timing(&self, channel: ChannelId) -> Result<ChannelTiming, JudgeError> {
        let (info, t) = tokio::try_join!(
            async { self.contract.channel(channel.as_u256()).call().await.map_err(JudgeError::from_contract) },
            async { self.contract.channelTiming(channel.as_u256()).call().await.map_err(JudgeError::from_contract) },
        )?;
        Ok(ChannelTiming {
            opened_at: t.openedAt,
            extended_at: t.extendedAt,
            dispute_post_by: (info.disputeDeadline != 0).then_some(t.disputePostBy),
            seller_stop_count: t.sellerStopped.then(|| u64::try_from(t.sellerStopCount).unwrap_or(u64::MAX)),
        })
    }

    /// The deployed judge's bounds (payload size, terms, price).
    pub async fn limits(&self) -> Result<JudgeLimits, JudgeError> {
        let c = &self.contract;
        let payload = c.MAX_PAYLOAD_BYTES().call().await.map_err(JudgeError::from_contract)?;
        let t_ack = c.MAX_T_ACK().call().await.map_err(JudgeError::from_contract)?;
        let t_closure = c.MAX_T_CLOSURE().call().await.map_err(JudgeError::from_contract)?;
        let price = c.MAX_PRICE().call().await.map_err(JudgeError::from_contract)?;
        Ok(JudgeLimits {
            max_payload_bytes: usize::try_from(payload).unwrap_or(usize::MAX),
            max_t_ack_secs: t_ack,
            max_t_closure_secs: t_closure,
            max_price_wei: u128::try_from(price).unwrap_or(u128::MAX),
        })
    }

    /// The deployed judge's batch bounds: `(MAX_BATCH, MAX_PROOF_DEPTH)` (see [`MAX_BATCH`],
    /// [`MAX_PROOF_DEPTH`]; an engine whose batches or paths exceed them would sign messages it cannot
    /// post or prove).
    pub async fn batch_limits(&self) -> Result<(u64, usize), JudgeError> {
        let c = &self.contract;
        let batch = c.MAX_BATCH().call().await.map_err(JudgeError::from_contract)?;
        let depth = c.MAX_PROOF_DEPTH().call().await.map_err(JudgeError::from_contract)?;
        Ok((u64::try_from(batch).unwrap_or(u64::MAX), usize::try_from(depth).unwrap_or(usize::MAX)))
    }

    /// Whether `(stream, seq)` is posted: its digest prefix and the block time (unix seconds) of the
    /// `post` that stored it (the posting's time for every deadline).
    pub async fn posting(&self, stream: StreamId, seq: u64) -> Result<Option<([u8; 24], u64)>, JudgeError> {
        let posting = self.contract.posting(stream.as_b256(), seq).call().await.map_err(JudgeError::from_contract)?;
        Ok((posting.postedAt != 0 || !posting.digestPrefix.is_zero()).then_some((posting.digestPrefix.0, posting.postedAt)))
    }

    /// The judge's own EIP-712 digest of an offer.
    pub async fn hash_offer(&self, offer: &Offer) -> Result<B256, JudgeError> {
        self.contract.hashOffer(convert(offer)).call().await.map_err(JudgeError::from_contract)
    }

    /// The judge's own EIP-712 digest of a message.
    pub async fn hash_message(&self, message: &Message) -> Result<B256, JudgeError> {
        self.contract.hashMessage(convert(message)).call().await.map_err(JudgeError::from_contract)
    }

    /// The judge's own EIP-712 digest of a batch (what the seller signs).
    pub async fn hash_batch(&self, batch: &Batch) -> Result<B256, JudgeError> {
        self.contract.hashBatch(convert(batch)).call().await.map_err(JudgeError::from_contract)
    }

    /// The judge's own EIP-712 digest of an ack.
    pub async fn hash_ack(&self, ack: &Ack) -> Result<B256, JudgeError> {
        self.contract.hashAck(convert(ack)).call().await.map_err(JudgeError::from_contract)
    }

    /// The judge's own EIP-712 digest of a stop.
    pub async fn hash_stop(&self, stop: &Stop) -> Result<B256, JudgeError> {
        self.contract.hashStop(convert(stop)).call().await.map_err(JudgeError::from_contract)
    }

    /// The judge's own EIP-712 digest of a peer authentication.
    pub async fn hash_peer_auth(&self, auth: &PeerAuth) -> Result<B256, JudgeError> {
        self.contract.hashPeerAuth(convert(auth)).call().await.map_err(JudgeError::from_contract)
    }

    // ---- events ----

    /// Judge events in blocks `from..=to`, in chain order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<LoggedEvent>, JudgeError> {
        events::fetch(&self.provider, self.address(), from, to).await
    }

    // ---- development chains (Anvil) ----

    /// Moves the chain's clock forward by `secs` and mines a block (Anvil/Hardhat RPC).
    pub async fn increase_time(&self, secs: u64) -> Result<(), JudgeError> {
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_increaseTime".into(), (secs,))
            .await
            .map_err(|e| JudgeError::Rpc(e.to_string()))?;
        self.mine().await
    }

    /// Mines one block (Anvil/Hardhat RPC).
    pub async fn mine(&self) -> Result<(), JudgeError> {
        self.dev_request("evm_mine", ()).await
    }

    /// Sets the chain's clock to `unix_secs` for the next blocks (Anvil's `evm_setTime`; it may go
    /// back, e.g. to put the chain behind the brokers' clocks).
    pub async fn set_time(&self, unix_secs: u64) -> Result<(), JudgeError> {
        self.dev_request("evm_setTime", (unix_secs,)).await
    }

    /// Replaces the last `depth` blocks with as many empty ones (Anvil's `anvil_reorg`): the
    /// transactions they held are gone from the chain.
    pub async fn reorg(&self, depth: u64) -> Result<(), JudgeError> {
        self.dev_request("anvil_reorg", (depth, Vec::<(serde_json::Value, u64)>::new())).await
    }

    /// Removes the last `depth` blocks (Anvil's `anvil_rollback`).
    pub async fn rollback(&self, depth: u64) -> Result<(), JudgeError> {
        self.dev_request("anvil_rollback", (Some(depth),)).await
    }

    async fn dev_request<P: serde::Serialize + Clone + Send + Sync + std::fmt::Debug + Unpin + 'static>(
        &self,
        method: &'static str,
        params: P,
    ) -> Result<(), JudgeError> {
        let _: serde_json::Value = self.provider.raw_request(method.into(), params).await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
        Ok(())
    }
}

/// Sends `amount` wei from `key`'s account to `to` (funding broker keys on a devnet).
pub async fn transfer(rpc_url: &str, key: &B256, to: Address, amount: U256) -> Result<Receipt, JudgeError> {
    use alloy::network::TransactionBuilder;
    let (provider, _, _) = provider_for(rpc_url, key)?;
    let tx = alloy::rpc::types::TransactionRequest::default().with_to(to).with_value(amount);
    let pending = provider.send_transaction(tx).await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
    let receipt = pending.get_receipt().await.map_err(|e| JudgeError::Rpc(e.to_string()))?;
    Ok(summary(&receipt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_channels_as_everything_else_does() {
        let text = channel_ids_in_hex("NothingToClaim { channelId: 2748, seq: 9 }");
        assert_eq!(text, format!("NothingToClaim {{ channelId: 0x{:0>64}, seq: 9 }}", "abc"));
        assert_eq!(channel_ids_in_hex("ZeroAmount"), "ZeroAmount");
        assert_eq!(channel_ids_in_hex("X { channelId: }"), "X { channelId: }");
    }
}
