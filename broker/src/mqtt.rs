//! The embedded MQTT broker (rmqtt) and Supra's in-process place in it.
//!
//! Local clients speak plain MQTT 3.1.1 or 5 to rmqtt, on either listener (each takes both
//! versions). Supra is not a client: a publish hook hands it every local publish on a sold topic
//! (with its retain flag, QoS and MQTT 5 properties), and what it buys is forwarded into the
//! router as a system publish, so rmqtt delivers it at each subscription's QoS, retains it, queues
//! it for offline persistent sessions and honours its message expiry, as for any publish.
//!
//! Why rmqtt rather than rumqttd (issue 12): rumqttd 0.20 refuses keep-alive 0, lacks or breaks most
//! MQTT 5 features (retained messages, session expiry, message expiry, subscription options, topic
//! aliases, flow control on the v5 listener) and only offers a QoS 0, topic-and-payload in-process
//! link. rmqtt implements MQTT 3.1.1 and 5 in full, is built as an embeddable library on tokio, and
//! its hooks run before the PUBACK, which is where Supra's checks belong.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::codec::v5::PublishProperties;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::types::{AuthResult, From, Id, LastWill, Publish, PublishAclResult, SubscribeAclResult};
use tokio::sync::mpsc;

use crate::access::{Access, Login, TlsConfig};
use crate::config::MqttConfig;
pub use crate::publication::{MessageProperties, Publication};
use crate::publication::now_ms;

/// Why the embedded MQTT broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT listener {0} is not free: {1}")]
    Listen(SocketAddr, String),
    #[error("MQTT TLS listener {0}")]
    Tls(String),
    #[error("embedded MQTT broker: {0}")]
    Start(String),
    #[error("embedded MQTT broker has stopped")]
    Stopped,
}

/// Default expiry of a message published without one, while it waits in a queue or is retained:
/// 100 years, i.e. none (as mosquitto).
const NO_EXPIRY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Handle on the embedded broker: publish into it. What local clients publish on sold topics
/// arrives on the channel given to [`LocalMqtt::start`].
pub struct LocalMqtt {
    /// `None` once [`LocalMqtt::finish`] ran.
    deliveries: Option<mpsc::UnboundedSender<(Publication, OutboxKey)>>,
    delivering: Option<tokio::task::JoinHandle<()>>,
    handed_over: HandedOver,
    /// Wakes the node when the router took a bought message (see [`Mqtt::handed_over_signal`]).
    wake: Arc<tokio::sync::Notify>,
    system: SystemPublisher,
    /// The sold topic filters the publish hook taps (grows with `supra sell`).
    sold: SoldFilters,
}

/// The sold topic filters, shared by the node (which adds to them) and the publish hook.
type SoldFilters = Arc<std::sync::RwLock<Vec<String>>>;

/// Publishes Supra's own figures (`$SYS/supra/...`, see `observe::sys`) into the embedded
/// broker as system publishes, apart from the bought messages and their outbox.
#[derive(Clone)]
pub struct SystemPublisher {
    scx: ServerContext,
}

impl SystemPublisher {
    pub async fn publish(&self, publication: Publication) -> Result<(), String> {
        let me = Id::new(self.scx.node.id(), 0, None, None, "supra".into(), None);
        let expiry = publication.retain.then_some(NO_EXPIRY);
        SessionState::forwards(&self.scx, From::from_system(me), to_mqtt(publication, None), false, expiry).await.map_err(|e| e.to_string())
    }
}

/// Which outbox entry a bought message comes from: (channel index, seq).
pub type OutboxKey = (u64, u64);
/// Outbox entries whose message the router has taken, in order, until the node collects them.
type HandedOver = std::sync::Arc<std::sync::Mutex<Vec<OutboxKey>>>;

/// Listener settings, chosen to match mosquitto's defaults where MQTT leaves them to the server.
fn listener(name: &str, addr: SocketAddr, config: &MqttConfig) -> Result<rmqtt::net::Listener, MqttError> {
    builder(name, addr, config).bind().and_then(|b| b.tcp()).map_err(|e| MqttError::Listen(addr, e.to_string()))
}

/// The TLS listener of `[mqtt.tls]` (certificate files checked by the config already).
fn tls_listener(tls: &TlsConfig, config: &MqttConfig) -> Result<rmqtt::net::Listener, MqttError> {
    let path = |p: &std::path::Path| p.display().to_string();
    builder("mqtt-tls", tls.listen, config)
        .tls_cert(Some(path(&tls.cert_file)))
        .tls_key(Some(path(&tls.key_file)))
        .tls_cross_certificate(tls.client_ca_file.is_some())
        .tls_client_ca_certs(tls.client_ca_file.as_deref().map(path))
        .bind()
        .and_then(|b| b.tls())
        .map_err(|e| {
            MqttError::Tls(format!(
                "{} (cert_file {}, key_file {}{}): {e:#}",
                tls.listen,
                tls.cert_file.display(),
                tls.key_file.display(),
                tls.client_ca_file.as_ref().map(|f| format!(", client_ca_file {}", f.display())).unwrap_or_default()
            ))
        })
}

fn builder(name: &str, addr: SocketAddr, config: &MqttConfig) -> Builder {
    // The whole PUBLISH (topic and properties too) is what gets sealed, so the limit is on the packet.
    let packet_size = config.max_payload_size.min(u32::MAX as usize) as u32;
    Builder::new()
        .name(name)
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .max_packet_size(packet_size)
        .allow_zero_keepalive(true)
        .max_inflight(std::num::NonZeroU16::new(20).expect("20 > 0"))
        .max_mqueue_len(config.max_queued_messages.max(1))
        .max_topic_aliases(10)
        .message_expiry_interval(NO_EXPIRY)
        // Unless access is open, every CONNECT goes through the login hook (anonymous ones too, for
        // their will's topic).
        .allow_anonymous(config.access.is_open())
}

impl LocalMqtt {
    /// Starts rmqtt on the configured listeners (with retained messages), hooks Supra into its
    /// publishes on `filters`, and returns the handle to publish what is bought. Must be called
    /// inside a tokio runtime.
    pub async fn start(
        config: &MqttConfig,
        filters: &[String],
        publishes: mpsc::UnboundedSender<Publication>,
    ) -> Result<LocalMqtt, MqttError> {
        let mut listeners = vec![listener("mqtt", config.listen, config)?];
        if let Some(addr) = config.listen_v5 {
            listeners.push(listener("mqtt-v5", addr, config)?);
        }
        if let Some(tls) = &config.tls {
            listeners.push(tls_listener(tls, config)?);
        }
        warn_if_open(config);
        let access = Arc::new(config.access.clone());
        let scx = ServerContext::new()
            .plugins_config_map_add("rmqtt-retainer", r#"storage.type = "ram""#)
            .build()
            .await;
        rmqtt_retainer::register(&scx, true, false).await.map_err(|e| MqttError::Start(e.to_string()))?;
        scx.plugins.start("rmqtt-retainer").await.map_err(|e| MqttError::Start(e.to_string()))?;
        let hooks = scx.extends.hook_mgr().register();
        let sold: SoldFilters = Arc::new(std::sync::RwLock::new(filters.to_vec()));
        let tap = SoldTopicTap { filters: sold.clone(), publishes, access: access.clone() };
        hooks.add(Type::MessagePublish, Box::new(tap)).await;
        for typ in [Type::ClientAuthenticate, Type::ClientSubscribeCheckAcl, Type::MessagePublishCheckAcl] {
            hooks.add(typ, Box::new(AccessHook(access.clone()))).await;
        }
        hooks.start().await;

        let mut server = MqttServer::new(scx.clone());
        for l in listeners {
            server = server.listener(l);
        }
        let server = server.build();
        tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        });
        let (deliveries, rx) = mpsc::unbounded_channel();
        let handed_over = HandedOver::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let system = SystemPublisher { scx: scx.clone() };
        let delivering = tokio::spawn(deliver(scx, rx, handed_over.clone(), wake.clone()));
        Ok(LocalMqtt { deliveries: Some(deliveries), delivering: Some(delivering), handed_over, wake, system, sold })
    }

    /// Publishes to local subscribers (in order, after any earlier call). `key` comes back from
    /// [`LocalMqtt::take_handed_over`] once the router has taken the message.
    pub fn publish(&mut self, publication: &Publication, key: OutboxKey) -> Result<(), MqttError> {
        let deliveries = self.deliveries.as_ref().ok_or(MqttError::Stopped)?;
        deliveries.send((publication.clone(), key)).map_err(|_| MqttError::Stopped)
    }

    /// The outbox entries whose messages the router has taken since the last call, in publish
    /// order. Only these may leave the durable outbox: a message still queued here is lost by a
    /// crash unless the outbox replays it.
    pub fn take_handed_over(&self) -> Vec<OutboxKey> {
        self.handed_over.lock().map(|mut keys| std::mem::take(&mut *keys)).unwrap_or_default()
    }

    /// Waits until everything given to [`LocalMqtt::publish`] is in rmqtt's hands (routed to
    /// its subscribers' sessions, retained); later publishes fail. For a graceful stop: what the
    /// outbox forgets must have left Supra.
    pub async fn finish(&mut self) {
        self.deliveries = None;
        if let Some(delivering) = self.delivering.take() {
            let _ = delivering.await;
        }
    }
}

/// Warns loudly when a listener beyond loopback lets anyone in.
fn warn_if_open(config: &MqttConfig) {
    if config.access.requires_login() {
        return;
    }
    // A TLS listener that requires client certificates authenticates its clients.
    let tls = config.tls.as_ref().filter(|t| t.client_ca_file.is_none()).map(|t| t.listen);
    let open: Vec<String> = [Some(config.listen), config.listen_v5, tls]
        .into_iter()
        .flatten()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.to_string())
        .collect();
    if !open.is_empty() {
        tracing::warn!(
            "MQTT listener(s) {} reachable beyond this machine WITHOUT authentication: anyone can read every bought \
             stream and publish into every sold one. Set mqtt.password_file or [[mqtt.user]] (and [[mqtt.acl]]), \
             or listen on 127.0.0.1",
            open.join(", ")
        );
    }
}

/// Logins and topic rules ([`Access`]) in rmqtt's hooks: a refused login gets CONNACK 4 / 0x86 (bad
/// username or password) or 5 / 0x87 (not authorised), a refused subscription SUBACK 0x80 / 0x87.
/// A refused publish gets PUBACK (or PUBREC) 0x87 from MQTT 5 at QoS 1 and 2; MQTT 3.1.1 has no
/// refusal code, and MQTT 5 at QoS 0 no acknowledgement, so there the connection is closed (MQTT
/// 3.1.1 3.3.5: acknowledge or close; MQTT 5 gets DISCONNECT 0x87 first, a patch of
/// vendor/rmqtt), never a silent drop.
struct AccessHook(Arc<Access>);

#[async_trait]
impl Handler for AccessHook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => {
                let user = info.username().map(|u| u.to_string());
                let will = info.last_will().map(|w| match w {
                    LastWill::V3(w) => w.topic.clone(),
                    LastWill::V5(w) => w.topic.clone(),
                });
                // Hashing a password takes milliseconds of CPU: off the async workers.
                let (access, password, name) = (self.0.clone(), info.password().cloned(), user.clone());
                let login = tokio::task::spawn_blocking(move || access.login(name.as_deref(), password.as_deref())).await;
                let user = user.as_deref();
                let result = match login.unwrap_or(Login::NotAuthorized) {
                    // A will is a publish: one on a topic the client may not publish to is refused
                    // at CONNECT (as mosquitto does), since rmqtt sends wills past its ACL check.
                    Login::Allowed if will.as_ref().is_some_and(|topic| !self.0.may_publish(user, topic)) => AuthResult::NotAuthorized,
                    Login::Allowed => AuthResult::Allow(false, None),
                    Login::BadCredentials => AuthResult::BadUsernameOrPassword,
                    Login::NotAuthorized => AuthResult::NotAuthorized,
                };
                if !matches!(result, AuthResult::Allow(..)) {
                    tracing::info!("MQTT login refused: client {} user {:?}: {result:?}", info.id().client_id, info.username());
                }
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let user = session.id.username.as_deref();
                if self.0.may_subscribe(user, &subscribe.topic_filter) {
                    (true, acc)
                } else {
                    tracing::info!("MQTT subscription refused: user {user:?} to {}", subscribe.topic_filter);
                    (false, Some(HookResult::SubscribeAclResult(SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized))))
                }
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let user = session.id.username.as_deref();
                if self.0.may_publish(user, &publish.topic) {
                    return (true, acc);
                }
                let v5 = session.protocol().await.is_ok_and(|p| p == 5);
                let disconnect = !v5 || publish.qos == QoS::AtMostOnce;
                tracing::info!("MQTT publish refused: user {user:?} on {}{}", publish.topic, if disconnect { " (disconnected)" } else { "" });
                let reason = Some("not authorised to publish on this topic".into());
                (false, Some(HookResult::PublishAclResult(PublishAclResult::rejected(disconnect, reason))))
            }
            _ => (true, acc),
        }
    }
}

/// The publish hook: hands every local client publish (or will message) on a sold topic to the node.
/// It runs before rmqtt's publish ACL check, so it applies the publish rules itself: a refused
/// publish is never sold.
struct SoldTopicTap {
    filters: SoldFilters,
    publishes: mpsc::UnboundedSender<Publication>,
    access: Arc<Access>,
}

#[async_trait]
impl Handler for SoldTopicTap {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublish(_, from, publish) = param
            && !from.is_system()
            && self.filters.read().is_ok_and(|filters| filters.iter().any(|f| crate::topics::matches(f, &publish.topic)))
            && self.access.may_publish(from.id.username.as_deref(), &publish.topic)
        {
            if self.publishes.send(from_mqtt(publish)).is_err() {
                // The node has stopped taking publishes (a graceful stop drains what it was
                // given, then closes): hold this one, so that its publisher never gets a PUBACK
                // for a message nobody will sell, and sends it again to the next run.
                std::future::pending::<()>().await;
            }
        }
        (true, acc)
    }
}

fn from_mqtt(publish: &Publish) -> Publication {
    let properties = publish.properties.as_ref().map(|p| MessageProperties {
        utf8_payload: p.is_utf8_payload,
        content_type: p.content_type.as_ref().map(|s| s.to_string()),
        response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
        correlation_data: p.correlation_data.as_ref().map(|b| b.to_vec()),
        message_expiry_secs: p.message_expiry_interval.map(NonZeroU32::get),
        user_properties: p.user_properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    });
    Publication {
        topic: publish.topic.to_string(),
        payload: publish.payload.to_vec(),
        retain: publish.retain,
        qos: publish.qos as u8,
        properties,
        received_at_ms: now_ms(),
    }
}

/// Forwards what Supra bought into the router, one at a time so that order is kept. A message
/// whose expiry ran out on the way is dropped, as the MQTT 5 server must (3.3.2.3.3).
async fn deliver(scx: ServerContext, mut rx: mpsc::UnboundedReceiver<(Publication, OutboxKey)>, handed_over: HandedOver, wake: Arc<tokio::sync::Notify>) {
    let me = Id::new(scx.node.id(), 0, None, None, "supra".into(), None);
    while let Some((p, key)) = rx.recv().await {
        let expiry_left = p.expiry_left_secs(now_ms());
        if expiry_left == Some(0) {
            tracing::debug!("bought message on {} expired before delivery", p.topic);
        } else {
            let retain = p.retain;
            let publish = to_mqtt(p, expiry_left);
            let expiry = retain.then(|| expiry_left.map_or(NO_EXPIRY, |s| Duration::from_secs(s.into())));
            if let Err(e) = SessionState::forwards(&scx, From::from_system(me.clone()), publish, false, expiry).await {
                tracing::warn!("local delivery: {e}");
            }
        }
        if let Ok(mut keys) = handed_over.lock() {
            keys.push(key);
        }
        wake.notify_one();
    }
}

fn to_mqtt(p: Publication, expiry_left: Option<u32>) -> Publish {
    let qos = match p.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let properties = p.properties.map(|m| PublishProperties {
        is_utf8_payload: m.utf8_payload,
        content_type: m.content_type.map(Into::into),
        response_topic: m.response_topic.map(Into::into),
        correlation_data: m.correlation_data.map(Into::into),
        message_expiry_interval: expiry_left.and_then(NonZeroU32::new),
        user_properties: m.user_properties.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        ..PublishProperties::default()
    });
    let inner = CodecPublish {
        dup: false,
        retain: p.retain,
        qos,
        topic: p.topic.into(),
        packet_id: None,
        payload: p.payload.into(),
        properties,
    };
    Publish { inner: Box::new(inner), target_clientid: None, delay_interval: None, create_time: Some(now_ms() as i64) }
}

/// Where Supra meets local MQTT clients: its embedded broker, or an external broker it is a client
/// of (`[mqtt] mode = "external"`, see [`crate::external`]).
pub enum Mqtt {
    Embedded(LocalMqtt),
    External(crate::external::ExternalMqtt),
}

impl Mqtt {
    /// Where Supra publishes its own `$SYS/supra/...` figures: the embedded broker only (an
    /// external broker keeps `$SYS` for itself).
    pub fn system_publisher(&self) -> Option<SystemPublisher> {
        match self {
            Mqtt::Embedded(m) => Some(m.system.clone()),
            Mqtt::External(_) => None,
        }
    }

    /// Delivers a bought message to local subscribers (in order, after any earlier call).
    pub fn publish(&mut self, publication: &Publication, key: OutboxKey) -> Result<(), MqttError> {
        match self {
            Mqtt::Embedded(m) => m.publish(publication, key),
            Mqtt::External(m) => m.publish(publication, key),
        }
    }

    /// Outbox entries whose message has left Supra (routed by the embedded broker, or
    /// acknowledged by the external one) since the last call.
    pub fn take_handed_over(&self) -> Vec<OutboxKey> {
        match self {
            Mqtt::Embedded(m) => m.take_handed_over(),
            Mqtt::External(m) => m.take_handed_over(),
        }
    }

    /// Notified whenever a bought message left Supra: the node wakes and commits its removal from
    /// the outbox at once, so that a crash soon after replays (duplicates) as little as possible.
    pub fn handed_over_signal(&self) -> Arc<tokio::sync::Notify> {
        match self {
            Mqtt::Embedded(m) => m.wake.clone(),
            Mqtt::External(m) => m.handed_over_signal(),
        }
    }

    /// What the node made of the first `taken` local publishes is durable. The embedded broker
    /// acknowledged them already (its hook runs before the PUBACK); the external one is
    /// acknowledged now.
    pub fn committed(&self, taken: u64) {
        if let Mqtt::External(m) = self {
            m.committed(taken);
        }
    }

    /// Starts taking local publishes on `filter`, a stream sold at runtime (`supra sell`).
    pub fn sell(&self, filter: &str) -> Result<(), String> {
        match self {
            Mqtt::Embedded(m) => {
                let mut filters = m.sold.write().map_err(|_| "the publish hook failed".to_owned())?;
                if !filters.iter().any(|f| f == filter) {
                    filters.push(filter.to_owned());
                }
                Ok(())
            }
            // Its sold subscriptions are made when it (re)connects: one more needs the driver to
            // subscribe on a live session, not built yet.
            Mqtt::External(_) => Err("selling at runtime needs the embedded MQTT broker; with mode = \"external\", add a [[sell]] entry to the config and restart".into()),
        }
    }

    /// For a graceful stop: waits until every bought message has left Supra.
    pub async fn finish(&mut self) {
        match self {
            Mqtt::Embedded(m) => m.finish().await,
            Mqtt::External(m) => m.finish().await,
        }
    }
}
