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
    /// The engine's phase: open, stopping, closing, settled.
    pub phase: String,
    pub link_up: bool,
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
        let channel = format!("{}", l.channel);
        let peer = format!("{}", l.peer);
        out.push_str(&format!(
            "{:<6} {:<12} {:<14} {:<20} {:>8} {:>8} {:>14} {:>14} {:>14} {:<9} {}\n",
            match l.role {
                ChannelRole::Seller => "sell",
                ChannelRole::Buyer => "buy",
            },
            format!("{}…", &channel[..channel.len().min(10)]),
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

    #[test]
    fn wei_reads_well() {
        assert_eq!(format_wei(U256::from(12)), "12 wei");
        assert_eq!(format_wei(U256::from(1_500_000_000u64)), "1.5 gwei");
        assert_eq!(format_wei(U256::from(10_000_000_000_000_000u64)), "0.01 ether");
        assert_eq!(format_wei(U256::from(2_000_000_000_000_000_000u128)), "2 ether");
    }
}
