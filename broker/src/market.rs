//! Streams sold and bought at runtime (`supra sell`, `supra buy`, `supra stop-selling`,
//! `supra stop-buying`, issue 14): what the operator asked a running broker through its operator
//! socket, kept in the store so that a restart resumes it with no config edit, and merged with the
//! config file's `[[sell]]` and `[[buy]]` at every start.
//!
//! The entries are checked as the file's are ([`Config::with_sell`], [`Config::with_buy`]). A sold
//! stream is never forgotten once sold: its channels hold money, and its number (hence its stream
//! id) stays bound to its topic in the store. Stopping it only refuses new buyers and closes its
//! channels; `supra sell` on the same topic sells it again, continuing the same signed chain.

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use supra_channel::buyer::TopUpPolicy;

use crate::config::{BuyConfig, Config, ConfigError, SellConfig};
use crate::store::{Store, StoreError};

/// A stream to sell, as `supra sell` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellOrder {
    pub topic: String,
    pub price_wei: U256,
    pub window: u64,
    pub t_ack_secs: u32,
    pub t_closure_secs: u32,
    /// What the catalogue says of it.
    #[serde(default)]
    pub description: String,
    /// The currency (`Address::ZERO`: ETH).
    #[serde(default)]
    pub token: Address,
}

impl SellOrder {
    pub fn config(&self, selling: bool) -> SellConfig {
        SellConfig {
            topic: self.topic.clone(),
            price_wei: self.price_wei,
            window: self.window,
            t_ack_secs: self.t_ack_secs,
            t_closure_secs: self.t_closure_secs,
            selling,
            description: self.description.clone(),
            token: self.token,
        }
    }

    pub fn of(cfg: &SellConfig) -> SellOrder {
        SellOrder {
            topic: cfg.topic.clone(),
            price_wei: cfg.price_wei,
            window: cfg.window,
            t_ack_secs: cfg.t_ack_secs,
            t_closure_secs: cfg.t_closure_secs,
            description: cfg.description.clone(),
            token: cfg.token,
        }
    }
}

/// A stream to buy, as `supra buy` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyOrder {
    pub seller: Address,
    pub endpoint: String,
    pub topic: String,
    pub deposit_wei: U256,
    pub max_price_wei: U256,
    pub local_prefix: String,
    /// Messages' worth added by each top-up; with `max_deposit_wei`, turns top-ups on.
    pub top_up_messages: Option<u64>,
    /// The deposit never grows past this.
    pub max_deposit_wei: Option<U256>,
    /// The currency paid in (`Address::ZERO`: ETH).
    #[serde(default)]
    pub token: Address,
}

impl BuyOrder {
    pub fn config(&self) -> Result<BuyConfig, String> {
        let top_up = match (self.top_up_messages, self.max_deposit_wei) {
            (None, None) => None,
            (Some(messages), Some(max_deposit)) => Some(TopUpPolicy { below_messages: messages / 2, messages, max_deposit }),
            (None, Some(_)) => return Err("--max-deposit needs --top-up-messages".into()),
            (Some(_), None) => return Err("--top-up-messages needs --max-deposit: the ceiling of the deposit".into()),
        };
        Ok(BuyConfig {
            seller: self.seller,
            endpoint: self.endpoint.clone(),
            topic: self.topic.clone(),
            deposit_wei: self.deposit_wei,
            max_price_wei: self.max_price_wei,
            local_prefix: self.local_prefix.clone(),
            top_up,
            token: self.token,
        })
    }
}

/// One runtime entry as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A sold stream, and whether it takes new buyers (`false` after `supra stop-selling`). For a
    /// stream of the config file, only `selling` counts: its terms are the file's.
    Sell { order: SellOrder, selling: bool },
    /// A bought stream (removed by `supra stop-buying`).
    Buy(BuyOrder),
}

impl Entry {
    pub fn key(&self) -> String {
        match self {
            Entry::Sell { order, .. } => sell_key(&order.topic),
            Entry::Buy(order) => buy_key(order.seller, &order.topic),
        }
    }

    /// Writes the entry durably.
    pub fn save(&self, store: &mut Store) -> Result<(), StoreError> {
        let json = serde_json::to_vec(self).map_err(|e| StoreError::Corrupt(format!("market entry: {e}")))?;
        store.set_market(&self.key(), Some(&json))
    }
}

pub fn sell_key(topic: &str) -> String {
    format!("sell/{topic}")
}

pub fn buy_key(seller: Address, topic: &str) -> String {
    format!("buy/{seller}/{topic}")
}

/// Why the stored entries cannot be merged into the configuration.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("runtime market entry `{key}` is unreadable: {message}")]
    Unreadable { key: String, message: String },
    #[error("the stream `{key}` added at runtime no longer fits the configuration ({source}); stop it with `supra stop-selling` or `supra stop-buying`, or fix the config")]
    Invalid { key: String, source: ConfigError },
}

/// `config` with the store's runtime entries merged in: runtime sells and buys are added (a
/// config-file entry for the same stream wins), and a stopped sell of the file takes no new buyers.
pub fn merge(mut config: Config, store: &Store) -> Result<Config, MergeError> {
    for (key, json) in store.market()? {
        let entry: Entry = serde_json::from_slice(&json).map_err(|e| MergeError::Unreadable { key: key.clone(), message: e.to_string() })?;
        match entry {
            Entry::Sell { order, selling } => {
                if let Some(s) = config.sell.iter_mut().find(|s| s.topic == order.topic) {
                    s.selling = selling;
                } else {
                    config = config.with_sell(order.config(selling)).map_err(|source| MergeError::Invalid { key, source })?;
                }
            }
            Entry::Buy(order) => {
                if config.buy.iter().any(|b| b.seller == order.seller && b.topic == order.topic) {
                    tracing::info!("`{key}` is in the config file too: the file's entry is used");
                    continue;
                }
                let buy = order.config().map_err(|message| MergeError::Unreadable { key: key.clone(), message })?;
                config = config.with_buy(buy).map_err(|source| MergeError::Invalid { key, source })?;
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sell(topic: &str, price: u64) -> SellOrder {
        SellOrder { topic: topic.into(), price_wei: U256::from(price), window: 16, t_ack_secs: 60, t_closure_secs: 60, description: String::new(), token: Address::ZERO }
    }

    fn buy(topic: &str) -> BuyOrder {
        BuyOrder {
            seller: Address::repeat_byte(7),
            endpoint: "127.0.0.1:7700".into(),
            topic: topic.into(),
            deposit_wei: U256::from(1000),
            max_price_wei: U256::from(10),
            local_prefix: "m/".into(),
            top_up_messages: None,
            max_deposit_wei: None,
            token: Address::ZERO,
        }
    }

    #[test]
    fn runtime_entries_join_the_files_and_the_file_wins() {
        let dir = std::env::temp_dir().join(format!("supra-market-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let text = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n[peer]\nlisten = \"127.0.0.1:7700\"\n\
                    [[sell]]\ntopic = \"file/#\"\nprice_wei = 5\n";
        let config = Config::parse(text, Path::new("/")).unwrap();
        let mut store = Store::open(&dir).unwrap();
        Entry::Sell { order: sell("runtime/#", 3), selling: true }.save(&mut store).unwrap();
        // The file's stream, stopped at runtime: its terms stay the file's.
        Entry::Sell { order: sell("file/#", 99), selling: false }.save(&mut store).unwrap();
        Entry::Buy(buy("other/#")).save(&mut store).unwrap();
        let merged = merge(config, &store).unwrap();
        let topics: Vec<(&str, u64, bool)> = merged.sell.iter().map(|s| (s.topic.as_str(), s.price_wei.to::<u64>(), s.selling)).collect();
        assert_eq!(topics, vec![("file/#", 5, false), ("runtime/#", 3, true)]);
        assert_eq!(merged.buy.len(), 1);
        assert_eq!(merged.buy[0].topic, "other/#");
        // Removed: gone at the next start.
        store.set_market(&buy_key(Address::repeat_byte(7), "other/#"), None).unwrap();
        assert!(merge(merged.clone(), &store).is_ok());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_runtime_entry_is_checked_as_the_files_are() {
        let text = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n[peer]\nlisten = \"127.0.0.1:7700\"\n";
        let config = Config::parse(text, Path::new("/")).unwrap();
        let e = config.with_sell(sell("a/#", 0).config(true)).unwrap_err().to_string();
        assert!(e.contains("`price_wei`") && !e.contains("sell["), "{e}");
        let config = config.with_sell(sell("a/#", 1).config(true)).unwrap();
        assert!(config.with_sell(sell("a/#", 2).config(true)).unwrap_err().to_string().contains("sold twice"));
        // Bought messages republished into a sold stream would be resold.
        let mut looping = buy("x/#");
        looping.local_prefix = "a/".into();
        assert!(config.with_buy(looping.config().unwrap()).unwrap_err().to_string().contains("resold"));
        let config = config.with_buy(buy("x/#").config().unwrap()).unwrap();
        assert!(config.with_buy(buy("x/#").config().unwrap()).unwrap_err().to_string().contains("already bought"));
        let mut half = buy("y/#");
        half.top_up_messages = Some(10);
        assert!(half.config().unwrap_err().contains("--max-deposit"));
    }
}
