//! The broker's figures as retained MQTT messages under `$SYS/supra/`, as mosquitto publishes its
//! own under `$SYS/broker/`: an MQTT dashboard subscribes to `$SYS/supra/#` and needs nothing
//! else. They are system publishes into the embedded rmqtt (as bought messages are), so they
//! follow its rules: retained, delivered at the subscription's QoS (0 here).
//!
//! - `$SYS/supra/broker`: JSON of `/api/overview` (address, uptime, sold streams, links, chain);
//! - `$SYS/supra/streams`, `$SYS/supra/chain`, `$SYS/supra/links`: those parts alone;
//! - `$SYS/supra/channels/<channel id>`: JSON of the channel's `supra channels --json` line, with
//!   `owed` and `deposit_left`;
//! - `$SYS/supra/channels/<channel id>/<field>`: one plain value per topic (messages, acked,
//!   claimed_wei, owed_wei, deposit_wei, deposit_left_wei, price_wei, phase, link), for
//!   dashboards that chart a topic's number.

use std::time::Duration;

use serde::Serialize;

use super::{Money, Sources, http};
use crate::mqtt::{Publication, SystemPublisher};
use crate::node::now_ms;
use crate::status::ChannelStatusLine;

/// Topic prefix of every message published here.
pub const PREFIX: &str = "$SYS/supra";

/// The per channel topics, one plain value each.
const FIELDS: [&str; 9] = ["messages", "acked", "claimed_wei", "owed_wei", "deposit_wei", "deposit_left_wei", "price_wei", "phase", "link"];

#[derive(Serialize)]
struct ChannelMessage<'a> {
    #[serde(flatten)]
    line: &'a ChannelStatusLine,
    owed: alloy_primitives::U256,
    deposit_left: alloy_primitives::U256,
}

fn json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn retained(topic: String, payload: Vec<u8>) -> Publication {
    Publication { topic, payload, retain: true, qos: 0, properties: None, received_at_ms: now_ms() }
}

/// What one round publishes, from the broker's state at that moment.
pub fn messages(sources: &Sources, view: &super::View) -> Vec<Publication> {
    let overview = http::overview(sources, view);
    let mut out = vec![
        retained(format!("{PREFIX}/broker"), json(&overview)),
        retained(format!("{PREFIX}/streams"), json(overview.streams.as_slice())),
        retained(format!("{PREFIX}/chain"), json(&overview.chain)),
        retained(format!("{PREFIX}/links"), json(overview.links.as_slice())),
    ];
    for line in &view.lines {
        let money = Money::of(line);
        let base = format!("{PREFIX}/channels/{}", line.channel);
        let message = ChannelMessage { line, owed: money.owed, deposit_left: money.deposit_left };
        out.push(retained(base.clone(), json(&message)));
        let fields: [(&str, String); FIELDS.len()] = [
            ("messages", line.messages.to_string()),
            ("acked", line.acked.to_string()),
            ("claimed_wei", line.claimed.to_string()),
            ("owed_wei", money.owed.to_string()),
            ("deposit_wei", line.deposit.to_string()),
            ("deposit_left_wei", money.deposit_left.to_string()),
            ("price_wei", line.price.to_string()),
            ("phase", line.phase.clone()),
            ("link", if line.link_up { "up" } else { "down" }.to_owned()),
        ];
        debug_assert!(fields.iter().map(|(f, _)| *f).eq(FIELDS));
        for (field, value) in fields {
            out.push(retained(format!("{base}/{field}"), value.into_bytes()));
        }
    }
    out
}

/// Empty retained messages, which delete what was retained on a channel's topics.
fn forget(channel: &str) -> Vec<Publication> {
    let base = format!("{PREFIX}/channels/{channel}");
    std::iter::once(base.clone()).chain(FIELDS.iter().map(|f| format!("{base}/{f}"))).map(|topic| retained(topic, Vec::new())).collect()
}

/// Publishes every `every`, for as long as the broker runs. The topics of a channel that left
/// the broker's state are emptied (their retained messages deleted).
pub async fn publish(sources: Sources, mqtt: SystemPublisher, every: Duration) {
    let mut shown: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let view = match sources.read().await {
            Ok(view) => view,
            Err(e) => {
                tracing::debug!("$SYS: {e}");
                if sources.commands.is_closed() {
                    return;
                }
                continue;
            }
        };
        let now: std::collections::BTreeSet<String> = view.lines.iter().map(|l| l.channel.to_string()).collect();
        let gone = shown.difference(&now).flat_map(|c| forget(c));
        for publication in gone.chain(messages(&sources, &view)).collect::<Vec<_>>() {
            if let Err(e) = mqtt.publish(publication).await {
                tracing::warn!("$SYS: {e}");
                break;
            }
        }
        shown = now;
    }
}
