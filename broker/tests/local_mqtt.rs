//! The embedded MQTT broker as Supra drives it: bought messages handed to it in a burst, faster than
//! a local QoS 1 subscriber acknowledges them, all reach that subscriber (each was paid for). With
//! mosquitto's default queue of 1 000 messages per session, the burst below lost most of them.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use supra_broker::config::MqttConfig;
use supra_broker::mqtt::{LocalMqtt, Publication};
use supra_broker::probe::free_port;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bought_messages_reaches_a_slow_qos1_subscriber_whole() {
    // The defaults of a `[mqtt]` section that only names its listener.
    let listen = free_port().unwrap();
    let config: MqttConfig =
        toml::from_str(&format!("listen = \"{listen}\"")).expect("an [mqtt] section");
    let (local_tx, _local_rx) = mpsc::unbounded_channel();
    let mut mqtt = LocalMqtt::start(&config, &[], local_tx)
        .await
        .expect("embedded broker starts");

    // A QoS 1 subscriber that acknowledges nothing until the whole burst is in the broker.
    let mut options =
        MqttOptions::new("slow", config.listen.ip().to_string(), config.listen.port());
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client
        .subscribe("market/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(packet) = event
                && tx.send(packet).is_err()
            {
                return;
            }
        }
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(10), received.recv()).await {
            Ok(Some(Packet::SubAck(_))) => break,
            Ok(Some(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }

    const BURST: u64 = 5_000;
    for i in 0..BURST {
        let mut p = Publication::plain("market/sensors/t", i.to_be_bytes().to_vec());
        p.qos = 1;
        mqtt.publish(&p, (7, i)).unwrap();
    }
    let mut next = 0u64;
    while next < BURST {
        match tokio::time::timeout(Duration::from_secs(20), received.recv()).await {
            Ok(Some(Packet::Publish(p))) => {
                let seq =
                    u64::from_be_bytes(p.payload.as_ref().try_into().expect("8-byte payload"));
                assert_eq!(seq, next, "messages arrive in order, none dropped");
                next += 1;
                client.ack(&p).await.unwrap();
            }
            Ok(Some(_)) => {}
            other => panic!("stalled after {next} of {BURST} messages: {other:?}"),
        }
    }
    // Each message's outbox entry is released once the router took it, in order, each once.
    mqtt.finish().await;
    let released: Vec<(u64, u64)> = mqtt.take_handed_over();
    assert_eq!(released, (0..BURST).map(|i| (7, i)).collect::<Vec<_>>());
    assert!(mqtt.take_handed_over().is_empty());
    let late = Publication::plain("market/sensors/t", vec![0]);
    assert!(mqtt.publish(&late, (7, BURST)).is_err(), "a finished broker takes no more");
}
