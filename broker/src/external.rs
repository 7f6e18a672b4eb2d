//! External broker mode (`[mqtt] mode = "external"`): Supra is an MQTT 5 client of a broker the
//! operator already runs (mosquitto, or an EMQX / VerneMQ / HiveMQ cluster) instead of embedding
//! one.
//!
//! - **Seller side**: it subscribes to the sold filters at QoS 1 with manual acknowledgements, and
//!   PUBACKs each publish only once the node has committed what it made of it (the signed message),
//!   so a crash never loses a publish the external broker was told was received: the broker
//!   redelivers it to the persistent session. The window is the other way round: a crash after the
//!   commit and before the PUBACK sells that message twice (at-least-once). A reconnect does not:
//!   the broker's retransmission (DUP, same packet id) of a publish the node already took is not
//!   handed over again (see `State::intake`).
//! - **Buyer side**: bought messages are republished at QoS 1, and each leaves the durable outbox
//!   only after the external broker's PUBACK.
//! - The session is persistent (clean start off, session expiry a week), subscriptions use No
//!   Local (Supra never buys back what it republished) and Retain As Published, and retained
//!   messages are sent only for new subscriptions (a reconnect does not sell them again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PubAckReason, Publish, PublishProperties, RetainForwardRule};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::config::ExternalMqttConfig;
use crate::mqtt::{MqttError, OutboxKey};
use crate::publication::{MessageProperties, Publication, now_ms};

/// How long the external broker keeps Supra's session while it is away.
const SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;
/// Requests (publishes, acks) queued for the client's event loop.
const REQUEST_CAPACITY: usize = 100_000;
/// A graceful stop waits this long for the broker's last PUBACKs.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// The client side of the external broker.
pub struct ExternalMqtt {
    client: AsyncClient,
    state: Arc<Mutex<State>>,
    events: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    /// Bought messages given to the client, waiting for their packet id (in publish order).
    unsent: VecDeque<OutboxKey>,
    /// Bought messages sent, waiting for the broker's PUBACK: packet id -> outbox entry.
    inflight: HashMap<u16, OutboxKey>,
    /// Bought messages the broker acknowledged, until the node collects them.
    handed_over: Vec<OutboxKey>,
    /// Wakes the node when `handed_over` grows: it commits their removal from the outbox at once.
    wake: Arc<tokio::sync::Notify>,
    /// Sold publishes handed to the node: how many so far.
    handed_to_node: u64,
    /// QoS 1 sold publishes not yet acknowledged to the broker, with their rank among those
    /// handed to the node.
    to_ack: VecDeque<(u64, Publish)>,
    /// Packet ids of sold publishes acknowledged (handed to the client) since that id last came
    /// with a new publish. After a reconnect the broker retransmits what it has no PUBACK for,
    /// and rumqttc drops the PUBACKs it had not written yet when the connection broke.
    acked: HashSet<u16>,
    connected: bool,
}

/// What a sold publish from the external broker is to the node.
#[derive(Debug, PartialEq)]
enum Intake {
    /// New: handed to the node, with its rank among those handed over.
    New(u64),
    /// The broker's retransmission (DUP) of one the node took and has not committed yet: its
    /// PUBACK follows the commit, as the first one's would have.
    Pending,
    /// The retransmission of one the node committed and acknowledged, whose PUBACK the broker
    /// never got (the connection broke first): acknowledged again, not sold again.
    AckAgain,
}

impl State {
    /// Takes a sold publish: new, or the retransmission of one already taken (a packet id is not
    /// reused for a new publish before its PUBACK, and a retransmission has DUP set).
    fn intake(&mut self, publish: &Publish) -> Intake {
        if publish.qos != QoS::AtMostOnce {
            if publish.dup {
                if self.to_ack.iter().any(|(_, p)| p.pkid == publish.pkid) {
                    return Intake::Pending;
                }
                if self.acked.contains(&publish.pkid) {
                    return Intake::AckAgain;
                }
            }
            self.acked.remove(&publish.pkid);
        }
        let rank = self.handed_to_node;
        self.handed_to_node += 1;
        if publish.qos != QoS::AtMostOnce {
            self.to_ack.push_back((rank, publish.clone()));
        }
        Intake::New(rank)
    }

    /// The publishes of rank below `taken` are committed: those of them now acknowledged
    /// (`ack` succeeded) leave `to_ack`; stops at the first `ack` that fails (tried again later).
    fn acknowledge(&mut self, taken: u64, mut ack: impl FnMut(&Publish) -> bool) {
        while self.to_ack.front().is_some_and(|(rank, _)| *rank < taken) {
            let Some((rank, publish)) = self.to_ack.pop_front() else { break };
            if !ack(&publish) {
                self.to_ack.push_front((rank, publish));
                break;
            }
            self.acked.insert(publish.pkid);
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the queues half-updated in a way that matters
    // more than stopping would: keep going with what is there.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ExternalMqtt {
    /// Connects (in the background: the client keeps reconnecting) and subscribes to `filters`.
    /// What arrives on them goes to `publishes`.
    pub fn start(config: &ExternalMqttConfig, default_client_id: &str, filters: &[String], publishes: mpsc::UnboundedSender<Publication>) -> Result<ExternalMqtt, MqttError> {
        let client_id = config.client_id.clone().unwrap_or_else(|| default_client_id.to_owned());
        let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_request_channel_capacity(REQUEST_CAPACITY)
            .set_max_packet_size(Some(config.max_packet_size));
        if let Some(user) = &config.username {
            options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
        }
        if config.tls {
            let ca = match &config.ca_file {
                Some(path) => std::fs::read(path).map_err(|e| MqttError::Start(format!("mqtt.external.ca_file {}: {e}", path.display())))?,
                None => return Err(MqttError::Start("mqtt.external: an mqtts:// URL needs ca_file".into())),
            };
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple { ca, alpn: None, client_auth: None }));
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let state = Arc::new(Mutex::new(State::default()));
        let subscriptions: Vec<Filter> = filters
            .iter()
            .map(|f| Filter { nolocal: true, preserve_retain: true, retain_forward_rule: RetainForwardRule::OnNewSubscribe, ..Filter::new(f.clone(), QoS::AtLeastOnce) })
            .collect();
        let url = format!("{}://{}:{}", if config.tls { "mqtts" } else { "mqtt" }, config.host, config.port);
        let events = tokio::spawn(run(eventloop, client.clone(), subscriptions, state.clone(), publishes, url));
        Ok(ExternalMqtt { client, state, events: Some(events) })
    }

    /// Republishes a bought message at QoS 1; `key` comes back from
    /// [`ExternalMqtt::take_handed_over`] once the external broker acknowledged it.
    pub fn publish(&mut self, publication: &Publication, key: OutboxKey) -> Result<(), MqttError> {
        let expiry_left = publication.expiry_left_secs(now_ms());
        if expiry_left == Some(0) {
            // Expired on the way (MQTT 5, 3.3.2.3.3): nothing to deliver, nothing to keep.
            let mut s = lock(&self.state);
            s.handed_over.push(key);
            s.wake.notify_one();
            return Ok(());
        }
        let properties = publication.properties.as_ref().map(|m| PublishProperties {
            payload_format_indicator: m.utf8_payload.then_some(1),
            message_expiry_interval: expiry_left,
            response_topic: m.response_topic.clone(),
            correlation_data: m.correlation_data.clone().map(Into::into),
            user_properties: m.user_properties.clone(),
            content_type: m.content_type.clone(),
            ..PublishProperties::default()
        });
        // The key is queued first: the event loop pairs it with the packet id it sends.
        lock(&self.state).unsent.push_back(key);
        let sent = match properties {
            Some(p) => self.client.try_publish_with_properties(publication.topic.clone(), QoS::AtLeastOnce, publication.retain, publication.payload.clone(), p),
            None => self.client.try_publish(publication.topic.clone(), QoS::AtLeastOnce, publication.retain, publication.payload.clone()),
        };
        sent.map_err(|e| {
            lock(&self.state).unsent.pop_back();
            MqttError::Start(format!("external broker: {e}"))
        })
    }

    /// The outbox entries the external broker acknowledged since the last call.
    pub fn take_handed_over(&self) -> Vec<OutboxKey> {
        std::mem::take(&mut lock(&self.state).handed_over)
    }

    /// Notified whenever the external broker acknowledged a bought message.
    pub fn handed_over_signal(&self) -> Arc<tokio::sync::Notify> {
        lock(&self.state).wake.clone()
    }

    /// The node has durably committed what it made of the first `taken` publishes it received:
    /// acknowledge them to the external broker.
    pub fn committed(&self, taken: u64) {
        // A full request queue: tried again after the next commit.
        lock(&self.state).acknowledge(taken, |publish| self.client.try_ack(publish).is_ok());
    }

    /// Waits (a few seconds at most) for the broker's PUBACKs of every republished message, then
    /// disconnects.
    pub async fn finish(&mut self) {
        let deadline = tokio::time::Instant::now() + FINISH_WITHIN;
        loop {
            let pending = {
                let state = lock(&self.state);
                state.connected && (!state.unsent.is_empty() || !state.inflight.is_empty())
            };
            if !pending || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.client.disconnect().await;
        if let Some(events) = self.events.take() {
            let _ = tokio::time::timeout(FINISH_WITHIN, events).await;
        }
    }
}

/// Drives the client: (re)subscribes on every connection, hands sold publishes to the node, pairs
/// republished messages with their PUBACKs, and reconnects with back-off (0.1 s to 5 s).
async fn run(mut eventloop: EventLoop, client: AsyncClient, subscriptions: Vec<Filter>, state: Arc<Mutex<State>>, publishes: mpsc::UnboundedSender<Publication>, url: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                lock(&state).connected = true;
                tracing::info!("external MQTT broker {url}: connected (session present: {})", ack.session_present);
                if !subscriptions.is_empty() && client.try_subscribe_many(subscriptions.clone()).is_err() {
                    tracing::error!("external MQTT broker {url}: cannot queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(code) = ack.return_codes.iter().find(|c| !matches!(c, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_))) {
                    tracing::error!("external MQTT broker {url} refused a sold topic's subscription: {code:?}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let Some(publication) = from_mqtt(&publish) else {
                    tracing::warn!("external MQTT broker {url}: a publish with a topic that is not UTF-8, ignored");
                    let _ = client.try_ack(&publish);
                    continue;
                };
                let intake = lock(&state).intake(&publish);
                match intake {
                    // A stopped node never acknowledges it: the broker keeps it for the next run.
                    Intake::New(_) => drop(publishes.send(publication)),
                    Intake::Pending => tracing::debug!("external MQTT broker {url}: publish {} again, still being committed", publish.pkid),
                    Intake::AckAgain => {
                        tracing::debug!("external MQTT broker {url}: publish {} again, acknowledged again", publish.pkid);
                        let _ = client.try_ack(&publish);
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                let mut s = lock(&state);
                // A retransmission (after a reconnect) keeps the packet id it was paired with.
                if !s.inflight.contains_key(&pkid) {
                    if let Some(key) = s.unsent.pop_front() {
                        s.inflight.insert(pkid, key);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let mut s = lock(&state);
                if let Some(key) = s.inflight.remove(&ack.pkid) {
                    if !matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) {
                        tracing::error!("external MQTT broker {url} refused a bought message (channel {}, seq {}): {:?}", key.0, key.1, ack.reason);
                    }
                    s.handed_over.push(key);
                    s.wake.notify_one();
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                lock(&state).connected = false;
                tracing::error!("external MQTT broker {url} refused the connection: {code:?} (check [mqtt.external] username, password, client_id); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                let was_connected = std::mem::replace(&mut lock(&state).connected, false);
                if was_connected {
                    tracing::warn!("external MQTT broker {url}: {e}; reconnecting");
                } else {
                    tracing::info!("external MQTT broker {url}: {e}; retrying in {backoff:?}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn from_mqtt(publish: &Publish) -> Option<Publication> {
    let topic = std::str::from_utf8(&publish.topic).ok()?.to_owned();
    let properties = publish.properties.as_ref().map(|p| MessageProperties {
        utf8_payload: p.payload_format_indicator == Some(1),
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.as_ref().map(|b| b.to_vec()),
        message_expiry_secs: p.message_expiry_interval,
        user_properties: p.user_properties.clone(),
    });
    Some(Publication {
        topic,
        payload: publish.payload.to_vec(),
        retain: publish.retain,
        qos: publish.qos as u8,
        properties,
        received_at_ms: now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(pkid: u16, dup: bool) -> Publish {
        let mut p = Publish::new("sensors/t", QoS::AtLeastOnce, vec![pkid as u8], None);
        p.pkid = pkid;
        p.dup = dup;
        p
    }

    /// After a reconnect the broker sends again, with DUP and the same packet id, every publish it
    /// has no PUBACK for: those the node is still committing, and those whose PUBACK rumqttc
    /// dropped with the broken connection. Handing them to the node again sold each one twice.
    #[test]
    fn a_retransmission_after_a_reconnect_is_not_sold_again() {
        let mut state = State::default();
        for pkid in 1..=4 {
            assert_eq!(state.intake(&publish(pkid, false)), Intake::New(u64::from(pkid) - 1));
        }
        // The node committed the first two; their PUBACKs were queued, then the connection broke.
        let mut sent = Vec::new();
        state.acknowledge(2, |p| {
            sent.push(p.pkid);
            true
        });
        assert_eq!(sent, vec![1, 2]);
        // The broker resends all four.
        assert_eq!(state.intake(&publish(1, true)), Intake::AckAgain);
        assert_eq!(state.intake(&publish(2, true)), Intake::AckAgain);
        assert_eq!(state.intake(&publish(3, true)), Intake::Pending);
        assert_eq!(state.intake(&publish(4, true)), Intake::Pending);
        assert_eq!(state.handed_to_node, 4, "nothing handed to the node twice");
        // 3 and 4 are acknowledged once committed, as ranks 2 and 3.
        sent.clear();
        state.acknowledge(4, |p| {
            sent.push(p.pkid);
            true
        });
        assert_eq!(sent, vec![3, 4]);
        assert!(state.to_ack.is_empty());
    }

    #[test]
    fn a_packet_id_used_again_for_a_new_publish_is_a_new_message() {
        let mut state = State::default();
        assert_eq!(state.intake(&publish(7, false)), Intake::New(0));
        state.acknowledge(1, |_| true);
        // The broker got the PUBACK and gives the id to the next publish (DUP clear): new.
        assert_eq!(state.intake(&publish(7, false)), Intake::New(1));
        // Its own retransmission is that one, still being committed, not the first one.
        assert_eq!(state.intake(&publish(7, true)), Intake::Pending);
        // A retransmission of an id never seen (the previous run took it, then crashed before
        // its PUBACK): sold again, the crash window the module's doc states.
        assert_eq!(state.intake(&publish(9, true)), Intake::New(2));
    }

    #[test]
    fn an_acknowledgement_that_cannot_be_queued_is_tried_again_later() {
        let mut state = State::default();
        for pkid in 1..=3 {
            state.intake(&publish(pkid, false));
        }
        let mut room = 1;
        state.acknowledge(3, |_| {
            room -= 1;
            room >= 0
        });
        assert_eq!(state.to_ack.iter().map(|(_, p)| p.pkid).collect::<Vec<_>>(), vec![2, 3]);
        // Not acknowledged, so a retransmission of 2 is still pending, not acknowledged again.
        assert_eq!(state.intake(&publish(2, true)), Intake::Pending);
        state.acknowledge(3, |_| true);
        assert!(state.to_ack.is_empty());
        assert_eq!(state.intake(&publish(2, true)), Intake::AckAgain);
    }
}
