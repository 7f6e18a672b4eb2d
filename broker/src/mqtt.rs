//! The embedded MQTT broker (rumqttd) and the broker's own in-process link to it.
//!
//! Local clients speak plain MQTT 3.1.1 or 5 to rumqttd. Supra itself is one more client, on an
//! in-process link: it subscribes to the topics it sells (their publishes feed the seller streams)
//! and publishes what it buys (rumqttd forwards at each subscription's QoS, so QoS 1 subscribers get
//! QoS 1 delivery).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, ConnectionSettings, Notification, RouterConfig, ServerSettings};
use tokio::sync::mpsc;

use crate::config::MqttConfig;

/// An MQTT publication as a stream carries it: the seller's local topic and the payload. This is
/// the plaintext that is sealed into each stream message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Publication {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Decodes a publication; trailing bytes or an invalid topic name are errors.
    pub fn decode(bytes: &[u8]) -> Result<Publication, String> {
        let config = bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 }>();
        let (publication, used): (Publication, usize) =
            bincode::serde::decode_from_slice(bytes, config).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err("trailing bytes".into());
        }
        crate::topics::check_name(&publication.topic)?;
        Ok(publication)
    }
}

/// Why the embedded MQTT broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT listener {0} is not free: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("embedded MQTT broker: {0}")]
    Link(String),
}

/// Handle on the embedded broker: publish into it, and receive what local clients publish on the
/// subscribed filters.
pub struct LocalMqtt {
    tx: LinkTx,
}

fn server(name: &str, listen: SocketAddr, config: &MqttConfig) -> ServerSettings {
    ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: config.max_payload_size,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// rumqttd's configuration for our listeners. Its commit log keeps up to
/// `max_segment_size * max_segment_count` bytes per filter for slow or reconnecting subscribers.
fn rumqttd_config(config: &MqttConfig) -> rumqttd::Config {
    let mut v4 = HashMap::new();
    v4.insert("1".to_owned(), server("v4", config.listen, config));
    let v5 = config.listen_v5.map(|listen| {
        let mut v5 = HashMap::new();
        v5.insert("1".to_owned(), server("v5", listen, config));
        v5
    });
    rumqttd::Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 16,
            ..RouterConfig::default()
        },
        v4: Some(v4),
        v5,
        ..rumqttd::Config::default()
    }
}

impl LocalMqtt {
    /// Starts rumqttd on its own thread with the configured listeners, opens the in-process link,
    /// subscribes it to `filters`, and forwards matching publishes to `publishes`.
    ///
    /// rumqttd binds its listeners on its own thread and cannot report a failure back, so the
    /// listen addresses are checked first.
    pub fn start(
        config: &MqttConfig,
        filters: &[String],
        publishes: mpsc::UnboundedSender<Publication>,
    ) -> Result<LocalMqtt, MqttError> {
        for addr in std::iter::once(config.listen).chain(config.listen_v5) {
            std::net::TcpListener::bind(addr).map_err(|e| MqttError::Listen(addr, e))?;
        }
        let mut broker = Broker::new(rumqttd_config(config));
        let (mut tx, rx) = broker.link("supra").map_err(|e| MqttError::Link(e.to_string()))?;
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!("embedded MQTT broker stopped: {e}");
                }
            })
            .map_err(|e| MqttError::Link(e.to_string()))?;
        for filter in filters {
            tx.subscribe(filter.clone()).map_err(|e| MqttError::Link(e.to_string()))?;
        }
        tokio::spawn(forward_local_publishes(rx, publishes));
        Ok(LocalMqtt { tx })
    }

    /// Publishes to local subscribers.
    pub fn publish(&mut self, publication: &Publication) -> Result<(), MqttError> {
        self.tx
            .publish(publication.topic.clone(), Bytes::copy_from_slice(&publication.payload))
            .map(|_| ())
            .map_err(|e| MqttError::Link(e.to_string()))
    }
}

async fn forward_local_publishes(mut rx: LinkRx, publishes: mpsc::UnboundedSender<Publication>) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward))) => {
                let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
                let publish = Publication { topic, payload: forward.publish.payload.to_vec() };
                if publishes.send(publish).is_err() {
                    return;
                }
            }
            // The router stops scheduling a link whose buffer filled up until it says it is ready.
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!("embedded MQTT link closed: {e}");
                return;
            }
        }
    }
}
