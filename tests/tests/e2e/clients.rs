//! MQTT test clients (rumqttc v5 and v4) whose event loops run in a task, for tests that look at
//! what MQTT carries: properties, retain flags, QoS, CONNACK fields.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Packet, Publish, PublishProperties, SubscribeProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(5);

/// An MQTT 5 client whose event loop runs in a task; what it receives arrives on `events`.
pub struct V5 {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Packet>,
    pub connack: ConnAck,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V5 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn v5(addr: SocketAddr, id: &str, setup: impl FnOnce(&mut MqttOptions)) -> Result<V5, String> {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    setup(&mut options);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(packet) = event
                && tx.send(packet).is_err()
            {
                return;
            }
        }
    });
    let connack = match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Packet::ConnAck(c))) => c,
        other => return Err(format!("{id}: no CONNACK ({other:?})")),
    };
    Ok(V5 { client, events, connack, task })
}

/// The next packet `pick` takes within `within`, skipping the others.
async fn next_matching<P, T>(events: &mut mpsc::UnboundedReceiver<P>, within: Duration, mut pick: impl FnMut(P) -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(p)) => {
                if let Some(t) = pick(p) {
                    return Some(t);
                }
            }
            _ => return None,
        }
    }
}

impl V5 {
    /// The next packet of the wanted kind, skipping others.
    pub async fn next<T>(&mut self, within: Duration, pick: impl FnMut(Packet) -> Option<T>) -> Option<T> {
        next_matching(&mut self.events, within, pick).await
    }

    pub async fn publish(&mut self, within: Duration) -> Option<Publish> {
        self.next(within, |p| if let Packet::Publish(p) = p { Some(p) } else { None }).await
    }

    pub async fn subscribe(&mut self, filter: Filter, id: Option<usize>) -> Result<(), String> {
        let props = SubscribeProperties { id, user_properties: vec![] };
        self.client.subscribe_many_with_properties([filter], props).await.map_err(|e| e.to_string())?;
        self.next(WAIT, |p| if let Packet::SubAck(s) = p { Some(s) } else { None }).await.map(|_| ()).ok_or("no SUBACK".into())
    }

    /// Publishes and, for QoS 1, waits for the PUBACK.
    pub async fn send(&mut self, topic: &str, qos: QoS, retain: bool, payload: &str, props: Option<PublishProperties>) -> Result<(), String> {
        let r = match props {
            Some(props) => self.client.publish_with_properties(topic, qos, retain, payload.to_owned(), props).await,
            None => self.client.publish(topic, qos, retain, payload.to_owned()).await,
        };
        r.map_err(|e| e.to_string())?;
        if qos == QoS::AtLeastOnce {
            self.next(WAIT, |p| if let Packet::PubAck(a) = p { Some(a) } else { None }).await.ok_or("no PUBACK")?;
        }
        Ok(())
    }

    pub async fn bye(self) {
        let _ = self.client.disconnect().await;
        // The DISCONNECT is sent by the event loop; wait until it has closed the connection.
        let mut me = self;
        let _ = tokio::time::timeout(WAIT, async { while me.events.recv().await.is_some() {} }).await;
    }
}

pub fn filter(path: &str, qos: QoS) -> Filter {
    Filter::new(path, qos)
}

pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}


/// An MQTT 3.1.1 client whose event loop runs in a task.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<rumqttc::Packet>,
    pub session_present: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V4 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn v4(addr: SocketAddr, id: &str, setup: impl FnOnce(&mut rumqttc::MqttOptions)) -> Result<V4, String> {
    let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    setup(&mut options);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::Event::Incoming(packet) = event
                && tx.send(packet).is_err()
            {
                return;
            }
        }
    });
    let session_present = match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(rumqttc::Packet::ConnAck(c))) => c.session_present,
        other => return Err(format!("{id}: no CONNACK ({other:?})")),
    };
    Ok(V4 { client, events, session_present, task })
}

impl V4 {
    pub async fn next<T>(&mut self, within: Duration, pick: impl FnMut(rumqttc::Packet) -> Option<T>) -> Option<T> {
        next_matching(&mut self.events, within, pick).await
    }

    pub async fn publish(&mut self, within: Duration) -> Option<rumqttc::Publish> {
        self.next(within, |p| if let rumqttc::Packet::Publish(p) = p { Some(p) } else { None }).await
    }

    pub async fn subscribe(&mut self, filter: &str) -> Result<(), String> {
        self.client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
        self.next(WAIT, |p| if let rumqttc::Packet::SubAck(s) = p { Some(s) } else { None }).await.map(|_| ()).ok_or("no SUBACK".into())
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn send(&mut self, topic: &str, retain: bool, payload: &str) -> Result<(), String> {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_owned()).await.map_err(|e| e.to_string())?;
        self.next(WAIT, |p| if let rumqttc::Packet::PubAck(a) = p { Some(a) } else { None }).await.map(|_| ()).ok_or("no PUBACK".into())
    }

    /// Disconnects and waits until the connection is closed.
    pub async fn bye(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(WAIT, async { while self.events.recv().await.is_some() {} }).await;
    }
}
