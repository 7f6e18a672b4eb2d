//! The market (issue 14): channels priced and funded in an ERC-20 token with EIP-2612 `permit`
//! (one transaction to open), the offer catalogue ([`Catalogue`]: announce, withdraw, list live
//! offers from its events), and the devnet's test stablecoin ([`TestToken`]).

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::signers::SignerSync;
use alloy::sol_types::{SolEventInterface, SolStruct};
use supra_channel::types::{ChannelId, Offer, StreamId};

use crate::bindings::SupraCatalogue::{self, SupraCatalogueEvents, SupraCatalogueInstance};
use crate::bindings::SupraTestToken::{self, SupraTestTokenInstance};
use crate::{Judge, JudgeError, Receipt, convert};

mod permit {
    alloy::sol! {
        /// EIP-2612's signed statement.
        struct Permit {
            address owner;
            address spender;
            uint256 value;
            uint256 nonce;
            uint256 deadline;
        }
    }
}

/// How long a permit signed by [`Judge::open_with_permit`] stays valid (seconds after the chain's
/// pending block time): the transaction carrying it is sent at once.
pub const PERMIT_VALIDITY_SECS: u64 = 3600;

/// An EIP-2612 permit signature, split as `permit(..., v, r, s)` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermitSig {
    pub deadline: U256,
    pub v: u8,
    pub r: B256,
    pub s: B256,
}

fn rpc(e: impl std::fmt::Display) -> JudgeError {
    JudgeError::Rpc(e.to_string())
}

impl Judge {
    /// Signs, with this client's key, the EIP-2612 permit of `amount` of `token` to the judge: the
    /// token's own nonce and domain separator are read from the chain.
    pub async fn sign_permit(&self, token: Address, amount: U256, deadline: u64) -> Result<PermitSig, JudgeError> {
        let erc20 = SupraTestToken::new(token, self.provider.clone());
        let (nonce, separator) = tokio::try_join!(
            async { erc20.nonces(self.from).call().await.map_err(JudgeError::from_contract) },
            async { erc20.DOMAIN_SEPARATOR().call().await.map_err(JudgeError::from_contract) },
        )?;
        let permit = permit::Permit {
            owner: self.from,
            spender: self.address(),
            value: amount,
            nonce,
            deadline: U256::from(deadline),
        };
        let mut buf = [0u8; 66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        buf[2..34].copy_from_slice(separator.as_slice());
        buf[34..66].copy_from_slice(permit.eip712_hash_struct().as_slice());
        let sig = self.signer.sign_hash_sync(&keccak256(buf)).map_err(|e| JudgeError::Other(format!("cannot sign a permit: {e}")))?;
        Ok(PermitSig {
            deadline: U256::from(deadline),
            v: 27 + u8::from(sig.v()),
            r: B256::from(sig.r()),
            s: B256::from(sig.s()),
        })
    }

    /// Opens a channel with an offer priced in an ERC-20 token (`offer.token`), locking `amount`
    /// tokens in one transaction: this client (the offer's buyer) signs the EIP-2612 permit and the
    /// judge's `openWithPermit` uses it, then pulls the tokens. Returns the channel id.
    pub async fn open_with_permit(&self, offer: &Offer, seller_sig: &[u8], amount: U256) -> Result<(ChannelId, Receipt), JudgeError> {
        if offer.token.is_zero() {
            return Err(JudgeError::Other("open_with_permit: the offer is priced in ETH (use open)".into()));
        }
        let deadline = self.pending_timestamp().await?.saturating_add(PERMIT_VALIDITY_SECS);
        let p = self.sign_permit(offer.token, amount, deadline).await?;
        let call = self.contract.openWithPermit(convert(offer), Bytes::copy_from_slice(seller_sig), amount, p.deadline, p.v, p.r, p.s);
        let receipt = self.transact(call).await?;
        Ok((ChannelId::from_offer_digest(self.domain.digest(offer)), receipt))
    }

    /// Opens a token channel with tokens already approved to the judge (`openWithToken`).
    pub async fn open_with_token(&self, offer: &Offer, seller_sig: &[u8], amount: U256) -> Result<(ChannelId, Receipt), JudgeError> {
        let call = self.contract.openWithToken(convert(offer), Bytes::copy_from_slice(seller_sig), amount);
        let receipt = self.transact(call).await?;
        Ok((ChannelId::from_offer_digest(self.domain.digest(offer)), receipt))
    }

    /// Adds `amount` tokens to a token channel's deposit, with a permit signed here (one transaction).
    pub async fn top_up_with_permit(&self, channel: ChannelId, amount: U256) -> Result<Receipt, JudgeError> {
        let token = self.channel_token(channel).await?;
        if token.is_zero() {
            return Err(JudgeError::Other(format!("channel {channel} is not a token channel (use top_up)")));
        }
        let deadline = self.pending_timestamp().await?.saturating_add(PERMIT_VALIDITY_SECS);
        let p = self.sign_permit(token, amount, deadline).await?;
        let call = self.contract.topUpWithPermit(channel.as_u256(), amount, p.deadline, p.v, p.r, p.s);
        self.transact(call).await
    }

    /// Adds `amount` already approved tokens to a token channel's deposit.
    pub async fn top_up_with_token(&self, channel: ChannelId, amount: U256) -> Result<Receipt, JudgeError> {
        self.transact(self.contract.topUpWithToken(channel.as_u256(), amount)).await
    }

    /// A channel's currency: its ERC-20, or `Address::ZERO` for ETH (and for an unknown channel).
    pub async fn channel_token(&self, channel: ChannelId) -> Result<Address, JudgeError> {
        self.contract.channelToken(channel.as_u256()).call().await.map_err(JudgeError::from_contract)
    }

    /// Deferred token payouts `account` can withdraw ([`Judge::withdraw_token`]).
    pub async fn owed_token(&self, token: Address, account: Address) -> Result<U256, JudgeError> {
        self.contract.owedToken(token, account).call().await.map_err(JudgeError::from_contract)
    }

    /// Withdraws this account's deferred payouts in `token`.
    pub async fn withdraw_token(&self, token: Address) -> Result<Receipt, JudgeError> {
        self.transact(self.contract.withdrawToken(token)).await
    }

    /// `account`'s balance of ERC-20 `token`.
    pub async fn token_balance(&self, token: Address, account: Address) -> Result<U256, JudgeError> {
        SupraTestToken::new(token, self.provider.clone()).balanceOf(account).call().await.map_err(JudgeError::from_contract)
    }

    /// Approves `amount` of `token` to the judge (for [`Judge::open_with_token`]).
    pub async fn approve_token(&self, token: Address, amount: U256) -> Result<Receipt, JudgeError> {
        let erc20 = SupraTestToken::new(token, self.provider.clone());
        self.transact(erc20.approve(self.address(), amount)).await
    }
}

// ------------------------------------------------------------------------------------------------
// The devnet's test stablecoin
// ------------------------------------------------------------------------------------------------

/// SupraTestToken (`contracts/SupraTestToken.sol`): OpenZeppelin's ERC-20 with EIP-2612 permit,
/// 6 decimals, `mint` open to anyone. For devnets and tests only.
#[derive(Clone)]
pub struct TestToken {
    contract: SupraTestTokenInstance<alloy::providers::DynProvider>,
    judge: Judge,
}

impl std::fmt::Debug for TestToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestToken").field("address", self.contract.address()).finish()
    }
}

impl TestToken {
    /// Deploys a new test token, paid by `judge`'s account.
    pub async fn deploy(judge: &Judge) -> Result<TestToken, JudgeError> {
        let contract = SupraTestToken::deploy(judge.provider.clone()).await.map_err(JudgeError::from_contract)?;
        Ok(TestToken { contract, judge: judge.clone() })
    }

    /// The test token at `address`, used through `judge`'s account.
    pub fn at(judge: &Judge, address: Address) -> TestToken {
        TestToken { contract: SupraTestToken::new(address, judge.provider.clone()), judge: judge.clone() }
    }

    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// Mints `amount` (smallest unit: 10^-6 tUSD) to `to`.
    pub async fn mint(&self, to: Address, amount: U256) -> Result<Receipt, JudgeError> {
        self.judge.transact(self.contract.mint(to, amount)).await
    }

    pub async fn balance_of(&self, account: Address) -> Result<U256, JudgeError> {
        self.contract.balanceOf(account).call().await.map_err(JudgeError::from_contract)
    }
}

// ------------------------------------------------------------------------------------------------
// The offer catalogue
// ------------------------------------------------------------------------------------------------

/// One stream's advertisement in the catalogue (`SupraCatalogue.Ad`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ad {
    /// The stream; its seller is the high 20 bytes.
    pub stream: StreamId,
    /// MQTT topic filter of the stream.
    pub topic_filter: String,
    /// Price per message in the smallest unit of `token`.
    pub price: U256,
    /// The currency: an ERC-20, or `Address::ZERO` for ETH.
    pub token: Address,
    pub window: u64,
    pub t_ack_secs: u32,
    pub t_closure_secs: u32,
    /// Where the seller's broker takes peer links (`host:port`).
    pub endpoint: String,
    pub description: String,
}

impl Ad {
    /// The seller (the stream id's high 20 bytes).
    pub fn seller(&self) -> Address {
        self.stream.seller()
    }

    fn to_sol(&self) -> SupraCatalogue::Ad {
        SupraCatalogue::Ad {
            streamId: self.stream.as_b256(),
            topicFilter: self.topic_filter.clone(),
            price: self.price,
            token: self.token,
            window: self.window,
            tAck: self.t_ack_secs,
            tClosure: self.t_closure_secs,
            endpoint: self.endpoint.clone(),
            description: self.description.clone(),
        }
    }

    fn from_sol(ad: SupraCatalogue::Ad) -> Ad {
        Ad {
            stream: StreamId(ad.streamId),
            topic_filter: ad.topicFilter,
            price: ad.price,
            token: ad.token,
            window: ad.window,
            t_ack_secs: ad.tAck,
            t_closure_secs: ad.tClosure,
            endpoint: ad.endpoint,
            description: ad.description,
        }
    }
}

/// A live offer: the latest ad of a stream that its seller has not withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub ad: Ad,
    /// Block of the announcement in force.
    pub block: u64,
}

/// Which live offers [`Catalogue::offers`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferFilter {
    /// Only ads whose topic filter can match a topic this filter matches (the two MQTT filters
    /// overlap, see [`filters_overlap`]).
    pub topic: Option<String>,
    /// Only ads priced at most this much (in their own currency: combine with `token`).
    pub max_price: Option<U256>,
    /// Only ads in this currency (`Address::ZERO`: ETH).
    pub token: Option<Address>,
    /// Only ads of this seller.
    pub seller: Option<Address>,
    /// First block to read (the catalogue's deployment block spares reading the chain from 0).
    pub from_block: u64,
}

impl OfferFilter {
    fn admits(&self, ad: &Ad) -> bool {
        self.topic.as_deref().is_none_or(|t| filters_overlap(t, &ad.topic_filter))
            && self.max_price.is_none_or(|max| ad.price <= max)
            && self.token.is_none_or(|token| ad.token == token)
            && self.seller.is_none_or(|seller| ad.seller() == seller)
    }
}

/// Whether two MQTT topic filters overlap: some topic matches both (`+` one level, `#` any
/// remaining levels, including none: `a/#` matches `a`).
pub fn filters_overlap(a: &str, b: &str) -> bool {
    fn go(a: &[&str], b: &[&str]) -> bool {
        match (a.first(), b.first()) {
            (Some(&"#"), _) | (_, Some(&"#")) => true,
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(x), Some(y)) => (*x == "+" || *y == "+" || x == y) && go(&a[1..], &b[1..]),
        }
    }
    let a: Vec<&str> = a.split('/').collect();
    let b: Vec<&str> = b.split('/').collect();
    go(&a, &b)
}

/// A catalogue event, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogueEvent {
    Announced { ad: Ad, block: u64 },
    Withdrawn { stream: StreamId, block: u64 },
}

/// Live offers from a catalogue's events in chain order: per stream, the latest `Announced` not
/// followed by a `Withdrawn`; the result is sorted by topic filter, then price.
pub fn live_offers(events: impl IntoIterator<Item = CatalogueEvent>, filter: &OfferFilter) -> Vec<Listed> {
    let mut live: std::collections::BTreeMap<B256, Listed> = std::collections::BTreeMap::new();
    for event in events {
        match event {
            CatalogueEvent::Announced { ad, block } => {
                live.insert(ad.stream.as_b256(), Listed { ad, block });
            }
            CatalogueEvent::Withdrawn { stream, .. } => {
                live.remove(&stream.as_b256());
            }
        }
    }
    let mut out: Vec<Listed> = live.into_values().filter(|l| filter.admits(&l.ad)).collect();
    out.sort_by(|x, y| x.ad.topic_filter.cmp(&y.ad.topic_filter).then(x.ad.price.cmp(&y.ad.price)));
    out
}

/// The offer catalogue (`contracts/SupraCatalogue.sol`), used through a [`Judge`] client's account.
#[derive(Clone)]
pub struct Catalogue {
    contract: SupraCatalogueInstance<alloy::providers::DynProvider>,
    judge: Judge,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("address", self.contract.address()).finish()
    }
}

impl Catalogue {
    /// Deploys a catalogue for `judge`'s contract, paid by `judge`'s account.
    pub async fn deploy(judge: &Judge) -> Result<Catalogue, JudgeError> {
        let contract =
            SupraCatalogue::deploy(judge.provider.clone(), judge.address()).await.map_err(JudgeError::from_contract)?;
        Ok(Catalogue { contract, judge: judge.clone() })
    }

    /// The catalogue at `address`, used through `judge`'s account; checks that code is there.
    pub async fn connect(judge: &Judge, address: Address) -> Result<Catalogue, JudgeError> {
        let code = judge.provider.get_code_at(address).await.map_err(rpc)?;
        if code.is_empty() {
            return Err(JudgeError::Other(format!("no catalogue at {address}")));
        }
        Ok(Catalogue { contract: SupraCatalogue::new(address, judge.provider.clone()), judge: judge.clone() })
    }

    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The judge the catalogue serves (`JUDGE()`).
    pub async fn judge_address(&self) -> Result<Address, JudgeError> {
        self.contract.JUDGE().call().await.map_err(JudgeError::from_contract)
    }

    /// Announces `ad`, or updates it (the latest announcement of a stream is the one listed). Only
    /// the stream's seller may (`NotSeller`).
    pub async fn announce(&self, ad: &Ad) -> Result<Receipt, JudgeError> {
        self.judge.transact(self.contract.announce(ad.to_sol())).await
    }

    /// Withdraws the ad of `stream` (only its seller may).
    pub async fn withdraw(&self, stream: StreamId) -> Result<Receipt, JudgeError> {
        self.judge.transact(self.contract.withdraw(stream.as_b256())).await
    }

    /// The catalogue's events from `from` to the latest block, in chain order.
    pub async fn events(&self, from: u64) -> Result<Vec<CatalogueEvent>, JudgeError> {
        let filter = Filter::new().address(self.address()).from_block(from);
        let logs = self.judge.provider.get_logs(&filter).await.map_err(rpc)?;
        let mut events = Vec::with_capacity(logs.len());
        for log in logs {
            let block = log.block_number.unwrap_or_default();
            match SupraCatalogueEvents::decode_log(&log.inner).map(|d| d.data) {
                Ok(SupraCatalogueEvents::Announced(e)) => events.push(CatalogueEvent::Announced { ad: Ad::from_sol(e.ad), block }),
                Ok(SupraCatalogueEvents::Withdrawn(e)) => {
                    events.push(CatalogueEvent::Withdrawn { stream: StreamId(e.streamId), block })
                }
                // A log this version cannot decode is skipped, never fatal.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        Ok(events)
    }

    /// The live offers that pass `filter`, from the chain's events (no peer connection needed).
    pub async fn offers(&self, filter: &OfferFilter) -> Result<Vec<Listed>, JudgeError> {
        Ok(live_offers(self.events(filter.from_block).await?, filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_overlap_as_mqtt_matches() {
        for (a, b, overlap) in [
            ("sensors/+/temperature", "sensors/#", true),
            ("sensors/+/temperature", "sensors/kitchen/temperature", true),
            ("sensors/+/temperature", "sensors/kitchen/humidity", false),
            ("sensors/+/temperature", "sensors/+", false),
            ("a/b", "a/b/#", true),
            ("a/b/c", "a/+/+", true),
            ("a", "b", false),
            ("#", "anything/at/all", true),
            ("a/+", "a/b/c", false),
        ] {
            assert_eq!(filters_overlap(a, b), overlap, "{a} vs {b}");
            assert_eq!(filters_overlap(b, a), overlap, "{b} vs {a}");
        }
    }

    fn ad(seller: u8, number: u128, topic: &str, price: u64) -> Ad {
        Ad {
            stream: StreamId::new(Address::repeat_byte(seller), number).unwrap(),
            topic_filter: topic.into(),
            price: U256::from(price),
            token: Address::ZERO,
            window: 8,
            t_ack_secs: 60,
            t_closure_secs: 600,
            endpoint: "127.0.0.1:7883".into(),
            description: String::new(),
        }
    }

    #[test]
    fn live_offers_are_the_latest_announcements_not_withdrawn() {
        let a = ad(1, 1, "sensors/+/temperature", 10);
        let mut a2 = a.clone();
        a2.price = U256::from(20u64);
        let b = ad(2, 1, "sensors/kitchen/humidity", 5);
        let c = ad(3, 1, "video/cam1", 1);
        let events = vec![
            CatalogueEvent::Announced { ad: a.clone(), block: 1 },
            CatalogueEvent::Announced { ad: b.clone(), block: 2 },
            CatalogueEvent::Announced { ad: c.clone(), block: 3 },
            CatalogueEvent::Announced { ad: a2.clone(), block: 4 },
            CatalogueEvent::Withdrawn { stream: c.stream, block: 5 },
        ];
        let all = live_offers(events.clone(), &OfferFilter::default());
        assert_eq!(all.iter().map(|l| l.ad.clone()).collect::<Vec<_>>(), vec![a2.clone(), b.clone()]);
        assert_eq!(all[0].block, 4, "the update is in force");
        let cheap = live_offers(events.clone(), &OfferFilter { max_price: Some(U256::from(10u64)), ..Default::default() });
        assert_eq!(cheap.iter().map(|l| l.ad.clone()).collect::<Vec<_>>(), vec![b.clone()]);
        let temps = live_offers(events.clone(), &OfferFilter { topic: Some("sensors/+/temperature".into()), ..Default::default() });
        assert_eq!(temps.iter().map(|l| l.ad.clone()).collect::<Vec<_>>(), vec![a2.clone()]);
        let tokens = live_offers(events, &OfferFilter { token: Some(Address::repeat_byte(9)), ..Default::default() });
        assert!(tokens.is_empty(), "no ad in that currency");
    }
}
