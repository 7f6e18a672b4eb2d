//! Plain MQTT clients (rumqttc) that publish to and subscribe on a broker: the demo's publisher
//! and subscriber, the bench's load, and the end-to-end tests' observers. They are ordinary MQTT
//! 3.1.1 clients: nothing in them knows about Supra.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, mpsc};

/// A message a subscriber received, with when.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub at: Instant,
}

fn options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_inflight(1000);
    options
}

/// Polls `eventloop` (reconnecting through errors) until a packet satisfies `wanted`.
async fn wait_for(eventloop: &mut EventLoop, within: Duration, wanted: impl Fn(&Packet) -> bool) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last_error = String::from("nothing received");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(packet))) if wanted(&packet) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                last_error = e.to_string();
                if Instant::now() >= deadline {
                    return Err(last_error);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return Err(format!("{last_error} within {within:?}")),
        }
    }
}

/// A QoS 1 subscriber.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Received>,
    _client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects, subscribes to `filter` at QoS 1 and waits for the broker's SUBACK.
    pub async fn connect(addr: SocketAddr, id: &str, filter: &str, within: Duration) -> Result<Subscriber, String> {
        Subscriber::connect_with(options(id, addr), filter, within).await
    }

    /// As [`connect`](Self::connect), with a persistent session (clean session off): the broker
    /// keeps the subscription and queues messages while the subscriber or the broker restarts.
    pub async fn connect_persistent(addr: SocketAddr, id: &str, filter: &str, within: Duration) -> Result<Subscriber, String> {
        let mut options = options(id, addr);
        options.set_clean_session(false);
        Subscriber::connect_with(options, filter, within).await
    }

    async fn connect_with(options: MqttOptions, filter: &str, within: Duration) -> Result<Subscriber, String> {
        let addr = format!("{}:{}", options.broker_address().0, options.broker_address().1);
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        client.subscribe(filter, QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
        wait_for(&mut eventloop, within, |p| matches!(p, Packet::SubAck(_))).await.map_err(|e| format!("no SUBACK from {addr}: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let received = Received { topic: p.topic, payload: p.payload.to_vec(), at: Instant::now() };
                        if tx.send(received).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("probe subscriber: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
        });
        Ok(Subscriber { rx, _client: client, task })
    }

    /// The next message, or `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.recv()).await.ok().flatten()
    }

    /// Everything already received, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            out.push(r);
        }
        out
    }
}

/// A QoS 1 publisher that counts the broker's PUBACKs.
pub struct Publisher {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Publisher {
    /// Connects (waits for the CONNACK).
    pub async fn connect(addr: SocketAddr, id: &str, within: Duration) -> Result<Publisher, String> {
        let (client, mut eventloop) = AsyncClient::new(options(id, addr), 10_000);
        wait_for(&mut eventloop, within, |p| matches!(p, Packet::ConnAck(_))).await.map_err(|e| format!("no CONNACK from {addr}: {e}"))?;
        let acked = Arc::new(AtomicU64::new(0));
        let notify = Arc::new(Notify::new());
        let (count, wake) = (acked.clone(), notify.clone());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        wake.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("probe publisher: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
        });
        Ok(Publisher { client, acked, notify, task })
    }

    /// Publishes at QoS 1 (returns once queued; see [`wait_acked`](Self::wait_acked)).
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.map_err(|e| e.to_string())
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `n` publishes were acknowledged by the broker.
    pub async fn wait_acked(&self, n: u64, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            if self.acked() >= n {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, notified).await.is_err() {
                return Err(format!("{} of {n} publishes acknowledged within {within:?}", self.acked()));
            }
        }
    }
}

/// A free loopback port (bound and released; good enough for tests and the demo).
pub fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}
