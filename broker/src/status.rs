//! Channel status lines: what `supra channels` prints.

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use supra_channel::types::ChannelId;

/// Which side of the channel this broker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelRole {
    Seller,
    Buyer,
}

/// One channel as the broker and the judge see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatusLine {
    pub role: ChannelRole,
    /// `0x` and 64 hex digits in JSON, as everywhere else.
    #[serde(with = "hex_channel_id")]
    pub channel: ChannelId,
    /// The other broker.
    pub peer: Address,
    pub topic: String,
    pub start_seq: u64,
    /// Seller: messages sent at least once. Buyer: messages delivered.
    pub messages: u64,
    /// Messages covered by the latest ack.
    pub acked: u64,
    /// Cost of the latest ack (what the seller can claim).
    pub cost: U256,
    /// R: paid to the seller so far (from the judge).
    pub claimed: U256,
    /// F: the buyer's deposit (from the judge).
    pub deposit: U256,
    /// Price of one message on the channel (absent from the output of older brokers).
    #[serde(default)]
    pub price: U256,
    /// The engine's phase: open, stopping, closing, settled.
    pub phase: String,
    pub link_up: bool,
    /// Buyer side: bought messages held durably in the outbox, not yet taken by the local MQTT
    /// broker (a crash replays them to local subscribers). Zero on the seller side.
    #[serde(default)]
    pub outbox: u64,
}

/// Channel ids in JSON as their display form (`0x` and 64 hex digits), not the 32-byte array of
/// the link encoding: what `supra channels --json` prints is what `supra close` takes.
mod hex_channel_id {
    use alloy_primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};
    use supra_channel::types::ChannelId;

    pub fn serialize<S: Serializer>(id: &ChannelId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChannelId, D::Error> {
        let text = String::deserialize(d)?;
        let hex = text.strip_prefix("0x").ok_or_else(|| serde::de::Error::custom(format!("channel id `{text}` is not 0x-hex")))?;
        U256::from_str_radix(hex, 16).map(ChannelId).map_err(|_| serde::de::Error::custom(format!("channel id `{text}` is not 0x-hex")))
    }
}

/// How the table shows a channel id: its first 10 characters (`0x` and 8 hex digits) and `…`.
/// `supra close` takes this (with or without the `…`) when no other channel starts the same way.
pub fn short_id(channel: ChannelId) -> String {
    let full = channel.to_string();
    format!("{}…", &full[..SHORT_ID_LEN])
}

const SHORT_ID_LEN: usize = 10;

/// The channel among `known` that `text` names: a full id (`0x` and hex digits, leading zeros
/// optional, or decimal), or the start of one as the table shows it (`0x1b79b39f…`), which must
/// match exactly one channel.
pub fn resolve_channel(text: &str, known: &[ChannelId]) -> Result<ChannelId, String> {
    let text = text.trim();
    let typed = text.trim_end_matches('…').to_ascii_lowercase();
    let not_an_id = || format!("`{text}` is not a channel id: give `0x` and hex digits, as `supra channels` prints it");
    let Some(hex) = typed.strip_prefix("0x") else {
        // A decimal id (what `uint256 channelId` reads as in a block explorer).
        if typed.is_empty() || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_an_id());
        }
        return U256::from_str_radix(&typed, 10).map(ChannelId).map_err(|_| not_an_id());
    };
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_an_id());
    }
    let value = U256::from_str_radix(hex, 16).map_err(|_| not_an_id())?;
    if hex.len() == 64 || known.contains(&ChannelId(value)) {
        return Ok(ChannelId(value));
    }
    let matching: Vec<ChannelId> = known.iter().copied().filter(|c| c.to_string().starts_with(&typed)).collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no channel here starts with `{typed}` (see `supra channels`)")),
        many => Err(format!("`{typed}` starts {} channels: give more digits (see `supra channels --json`)", many.len())),
    }
}

/// Formats wei for people: `1.5 gwei`, `0.01 ether`, `12 wei`.
pub fn format_wei(wei: U256) -> String {
    let (unit, decimals) = if wei >= U256::from(10u64).pow(U256::from(15)) {
        ("ether", 18)
    } else if wei >= U256::from(1_000_000u64) {
        ("gwei", 9)
    } else {
        return format!("{wei} wei");
    };
    let scale = U256::from(10u64).pow(U256::from(decimals));
    let whole = wei / scale;
    let fraction = format!("{:0>width$}", (wei % scale).to_string(), width = decimals);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { format!("{whole} {unit}") } else { format!("{whole}.{fraction} {unit}") }
}

/// A plain-text table of channels.
pub fn table(lines: &[ChannelStatusLine]) -> String {
    if lines.is_empty() {
        return "no channels\n".into();
    }
    let mut out = format!(
        "{:<6} {:<12} {:<14} {:<20} {:>8} {:>8} {:>14} {:>14} {:>14} {:<9} {}\n",
        "role", "channel", "peer", "topic", "msgs", "acked", "cost", "claimed", "deposit", "phase", "link"
    );
    for l in lines {
        let peer = format!("{}", l.peer);
        out.push_str(&format!(
            "{:<6} {:<12} {:<14} {:<20} {:>8} {:>8} {:>14} {:>14} {:>14} {:<9} {}\n",
            match l.role {
                ChannelRole::Seller => "sell",
                ChannelRole::Buyer => "buy",
            },
            short_id(l.channel),
            format!("{}…", &peer[..peer.len().min(12)]),
            l.topic,
            l.messages,
            l.acked,
            format_wei(l.cost),
            format_wei(l.claimed),
            format_wei(l.deposit),
            l.phase,
            if l.link_up { "up" } else { "down" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> ChannelId {
        ChannelId(U256::from_str_radix(hex, 16).unwrap())
    }

    #[test]
    fn channel_ids_print_the_same_everywhere_with_leading_zeros() {
        let small = id("0abc");
        let padded = format!("0x{:0>64}", "abc");
        assert_eq!(small.to_string(), padded);
        assert_eq!(format!("{small:?}"), format!("ChannelId({padded})"), "logged events name it the same way");
        let line = ChannelStatusLine {
            role: ChannelRole::Buyer,
            channel: small,
            peer: Address::ZERO,
            topic: "t".into(),
            start_seq: 0,
            messages: 0,
            acked: 0,
            cost: U256::ZERO,
            claimed: U256::ZERO,
            deposit: U256::ZERO,
            price: U256::from(1),
            phase: "open".into(),
            link_up: true,
            outbox: 0,
        };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["channel"], serde_json::Value::String(padded.clone()));
        let back: ChannelStatusLine = serde_json::from_value(json).unwrap();
        assert_eq!(back.channel, small);
        assert_eq!(short_id(small), "0x00000000…");
        assert!(table(&[line]).contains("0x00000000…"));
    }

    #[test]
    fn close_takes_what_channels_prints() {
        let a = id("1b79b39fd12d0fa974956e975ef8ac31c3271473d3a41c9fdecb7dcb30886e6c");
        let b = id("1b79b39f00000000000000000000000000000000000000000000000000000001");
        let c = id("0000000000000000000000000000000000000000000000000000000000000abc");
        let known = [a, b, c];
        // The full id, with or without leading zeros, and in decimal.
        assert_eq!(resolve_channel(&a.to_string(), &known), Ok(a));
        assert_eq!(resolve_channel(&c.to_string(), &known), Ok(c));
        assert_eq!(resolve_channel("0xabc", &known), Ok(c));
        assert_eq!(resolve_channel("2748", &known), Ok(c));
        // A unique start, as the table shows it (with its ellipsis) or longer.
        assert_eq!(resolve_channel(&short_id(c), &known), Ok(c));
        assert_eq!(resolve_channel("0x1B79B39FD1", &known), Ok(a));
        let ambiguous = resolve_channel(&short_id(a), &known).unwrap_err();
        assert!(ambiguous.contains("starts 2 channels"), "{ambiguous}");
        assert!(resolve_channel("0x99", &known).unwrap_err().contains("no channel here starts with"));
        for bad in ["", "0x", "0xzz", "hello", "0x1b79b39f…x"] {
            assert!(resolve_channel(bad, &known).unwrap_err().contains("is not a channel id"), "{bad}");
        }
        assert!(resolve_channel(&format!("0x{}", "1".repeat(65)), &known).is_err());
    }

    #[test]
    fn wei_reads_well() {
        assert_eq!(format_wei(U256::from(12)), "12 wei");
        assert_eq!(format_wei(U256::from(1_500_000_000u64)), "1.5 gwei");
        assert_eq!(format_wei(U256::from(10_000_000_000_000_000u64)), "0.01 ether");
        assert_eq!(format_wei(U256::from(2_000_000_000_000_000_000u128)), "2 ether");
    }
}
