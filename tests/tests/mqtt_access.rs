//! Access to the embedded MQTT broker, end to end against real `supra run` processes: logins
//! (password files from Debian's `mosquitto_passwd` and from `supra passwd`), per-user topic rules
//! on a trading pair (a refused publish is refused with the protocol's code and never sold; a
//! refused subscription gets its SUBACK code), TLS listeners tried with mosquitto_pub/sub
//! `--cafile` (and client certificates), and the broker key as an encrypted keystore.

#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "e2e/clients.rs"]
#[allow(dead_code)]
mod clients;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clients::*;
use harness::*;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, Packet, PubAckReason, SubscribeReasonCode};
use supra_broker::status::ChannelRole;

/// How long a case waits to be sure something does *not* arrive, after a later marker did.
const QUIET: Duration = Duration::from_millis(500);

/// `supra passwd FILE USER` with the password on standard input.
fn supra_passwd(file: &Path, user: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
        .arg("passwd")
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("supra runs");
    use std::io::Write;
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password written");
    let out = child.wait_with_output().expect("supra passwd ends");
    assert!(out.status.success(), "supra passwd: {}", String::from_utf8_lossy(&out.stderr));
}

/// Debian's `mosquitto_passwd -b FILE USER PASSWORD` (what an operator migrating from mosquitto has).
fn mosquitto_passwd(file: &Path, user: &str, password: &str) {
    let status = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(file)
        .args([user, password])
        .status()
        .expect("mosquitto_passwd runs (scripts/install-tools installs Debian's mosquitto)");
    assert!(status.success(), "mosquitto_passwd");
}

/// The CONNACK code an MQTT 3.1.1 client gets (`Success` when accepted).
async fn connack_v4(addr: SocketAddr, id: &str, setup: impl FnOnce(&mut rumqttc::MqttOptions)) -> rumqttc::ConnectReturnCode {
    let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    setup(&mut options);
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c)))) => c.code,
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => code,
        other => panic!("{id}: no CONNACK: {other:?}"),
    }
}

/// The CONNACK code an MQTT 5 client gets (`Success` when accepted).
async fn connack_v5(addr: SocketAddr, id: &str, setup: impl FnOnce(&mut rumqttc::v5::MqttOptions)) -> V5Code {
    let mut options = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    setup(&mut options);
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(c)))) => c.code,
        Ok(Err(rumqttc::v5::ConnectionError::ConnectionRefused(code))) => code,
        other => panic!("{id}: no CONNACK: {other:?}"),
    }
}

/// Publishes at QoS 0 over MQTT 5 and returns the reason code of the server's DISCONNECT (which
/// rumqttc reports as the end of its event loop).
async fn refused_qos0_v5(addr: SocketAddr, user: &str, password: &str, topic: &str) -> Option<rumqttc::v5::mqttbytes::v5::DisconnectReasonCode> {
    let mut options = rumqttc::v5::MqttOptions::new("qos0", addr.ip().to_string(), addr.port());
    options.set_credentials(user, password);
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    client.publish(topic, QoS::AtMostOnce, false, "forbidden-qos0").await.expect("queued");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(_)) => continue,
            Ok(Err(rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect { reason_code, .. }))) => {
                return Some(reason_code);
            }
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

fn creds(user: &'static str, password: &'static str) -> impl FnOnce(&mut rumqttc::v5::MqttOptions) {
    move |o| {
        o.set_credentials(user, password);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_and_topic_rules_on_a_trading_pair() {
    let _serial = serial().await;
    let chain = chain().await;
    let root = TempDir::new("access-pair");
    let seller_dir = root.0.join("seller");
    let buyer_dir = root.0.join("buyer");
    std::fs::create_dir_all(&seller_dir).unwrap();
    std::fs::create_dir_all(&buyer_dir).unwrap();
    // The seller's users: a gateway that feeds the sold stream (hashed by mosquitto_passwd), and a
    // client allowed elsewhere only (hashed by `supra passwd`).
    std::fs::write(seller_dir.join("mqtt.passwd"), "").unwrap();
    mosquitto_passwd(&seller_dir.join("mqtt.passwd"), "gw", "gw-secret");
    supra_passwd(&seller_dir.join("mqtt.passwd"), "intruder", "in-secret");
    supra_passwd(&buyer_dir.join("mqtt.passwd"), "reader", "rd-secret");
    supra_passwd(&buyer_dir.join("mqtt.passwd"), "nosy", "ns-secret");

    let seller_access = "password_file = \"mqtt.passwd\"\n\
        [[mqtt.acl]]\nuser = \"gw\"\npublish = [\"sensors/#\"]\n\
        [[mqtt.acl]]\nuser = \"intruder\"\npublish = [\"other/#\"]\nsubscribe = [\"other/#\"]\n";
    let (rpc, judge) = (chain.rpc().to_owned(), chain.judge);
    let seller_key = chain.fresh_key().await;
    let seller = BrokerProc::spawn_with("seller", &root.0, &seller_key.0, seller_key.1, |mqtt, v5, peer| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n{seller_access}\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\nonchain_delay_secs = 2\npoll_interval_ms = 100\n\
             [peer]\nlisten = \"{peer}\"\n\
             [[sell]]\ntopic = \"sensors/#\"\nprice_wei = {PRICE_WEI}\nwindow = 64\nt_ack_secs = 60\nt_closure_secs = 3\n"
        )
    });
    let buyer_access = "password_file = \"mqtt.passwd\"\n\
        [[mqtt.acl]]\nuser = \"reader\"\nsubscribe = [\"market/#\"]\n\
        [[mqtt.acl]]\nuser = \"nosy\"\nsubscribe = [\"other/#\"]\n";
    let buyer_key = chain.fresh_key().await;
    let mut buyer = BrokerProc::spawn_with("buyer", &root.0, &buyer_key.0, buyer_key.1, |mqtt, v5, _| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\nrestart_hold_ms = 0\n{buyer_access}\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\npoll_interval_ms = 100\n\
             [[buy]]\nseller = \"{}\"\nendpoint = \"{}\"\ntopic = \"sensors/#\"\n\
             deposit_wei = {}\nmax_price_wei = {PRICE_WEI}\nlocal_prefix = \"market/\"\n",
            seller_key.1,
            seller.peer,
            PRICE_WEI * 1000
        )
    });
    buyer.wait_ready(Duration::from_secs(30)).await;
    seller.wait_channel(ChannelRole::Seller, Duration::from_secs(30), |l| l.phase == "open").await;

    // Logins: wrong password and unknown user get "bad user name or password", no username at all
    // "not authorised", on both MQTT versions; mosquitto_pub reports the same.
    for (user, pass) in [("gw", "wrong"), ("stranger", "gw-secret")] {
        let code = connack_v4(seller.mqtt, "v4", |o| {
            o.set_credentials(user, pass);
        })
        .await;
        assert_eq!(code, rumqttc::ConnectReturnCode::BadUserNamePassword, "v4 {user}/{pass}");
        let code = connack_v5(seller.mqtt_v5, "v5", |o| {
            o.set_credentials(user, pass);
        })
        .await;
        assert_eq!(code, V5Code::BadUserNamePassword, "v5 {user}/{pass}");
    }
    // A will on a topic the user may not publish to is a refused publish: refused at CONNECT.
    let code = connack_v5(seller.mqtt_v5, "will5", |o| {
        o.set_credentials("intruder", "in-secret");
        o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new("sensors/x", "will", QoS::AtLeastOnce, false, None));
    })
    .await;
    assert_eq!(code, V5Code::NotAuthorized, "a will into the sold stream");
    assert_eq!(connack_v4(seller.mqtt, "anon4", |_| {}).await, rumqttc::ConnectReturnCode::NotAuthorized);
    assert_eq!(connack_v5(seller.mqtt_v5, "anon5", |_| {}).await, V5Code::NotAuthorized);
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &seller.mqtt.port().to_string(), "-u", "gw", "-P", "wrong", "-t", "sensors/x", "-m", "m"])
        .output()
        .expect("mosquitto_pub runs");
    let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success() && said.contains("bad user name or password"), "mosquitto_pub: {said}");

    // Refused subscriptions at the buyer: SUBACK 0x80 (v4) and 0x87 (v5); the reader is accepted.
    let mut reader = v5(buyer.mqtt_v5, "reader", creds("reader", "rd-secret")).await.expect("reader logs in");
    reader.subscribe(filter("market/sensors/#", QoS::AtLeastOnce), None).await.expect("reader subscribes");
    let mut nosy = v5(buyer.mqtt_v5, "nosy5", creds("nosy", "ns-secret")).await.expect("nosy logs in");
    nosy.client.subscribe("market/sensors/#", QoS::AtLeastOnce).await.unwrap();
    let suback = nosy.next(WAIT, |p| if let Packet::SubAck(s) = p { Some(s) } else { None }).await.expect("SUBACK");
    assert_eq!(suback.return_codes, vec![SubscribeReasonCode::NotAuthorized]);
    let mut nosy4 = v4(buyer.mqtt, "nosy4", |o| {
        o.set_credentials("nosy", "ns-secret");
    })
    .await
    .expect("nosy logs in (v4)");
    nosy4.client.subscribe("market/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
    let suback = nosy4.next(WAIT, |p| if let rumqttc::Packet::SubAck(s) = p { Some(s) } else { None }).await.expect("SUBACK");
    assert_eq!(suback.return_codes, vec![rumqttc::SubscribeReasonCode::Failure]);

    // A publish into the sold stream by a user not allowed to: MQTT 5 QoS 1 gets PUBACK 0x87;
    // MQTT 3.1.1 (no refusal code) is disconnected without a PUBACK.
    let mut intruder = v5(seller.mqtt_v5, "intruder5", creds("intruder", "in-secret")).await.expect("intruder logs in");
    intruder.client.publish("sensors/x", QoS::AtLeastOnce, false, "forbidden-v5").await.unwrap();
    let ack = intruder.next(WAIT, |p| if let Packet::PubAck(a) = p { Some(a) } else { None }).await.expect("PUBACK");
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);
    let mut intruder4 = v4(seller.mqtt, "intruder4", |o| {
        o.set_credentials("intruder", "in-secret");
    })
    .await
    .expect("intruder logs in (v4)");
    intruder4.client.publish("sensors/x", rumqttc::QoS::AtLeastOnce, false, "forbidden-v4").await.unwrap();
    let started = std::time::Instant::now();
    let acked = intruder4.next(WAIT, |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(())).await;
    // The event stream ends when the connection does: well before WAIT (a silent drop would wait it out).
    assert!(acked.is_none() && started.elapsed() < WAIT / 2, "an MQTT 3.1.1 publish refused is not acknowledged: the connection is closed");
    // The intruder may still publish where a rule lets it.
    intruder.send("other/x", QoS::AtLeastOnce, false, "allowed-elsewhere", None).await.expect("allowed publish");
    // MQTT 5 at QoS 0 (no acknowledgement to refuse with): DISCONNECT 0x87, then the connection closes.
    let bye = refused_qos0_v5(seller.mqtt_v5, "intruder", "in-secret", "sensors/x").await;
    assert_eq!(bye, Some(rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::NotAuthorized));

    // The gateway's publish is sold, bought and delivered; the refused ones never were.
    let mut gw = v5(seller.mqtt_v5, "gw", creds("gw", "gw-secret")).await.expect("gw logs in");
    gw.send("sensors/x", QoS::AtLeastOnce, false, "allowed", None).await.expect("gw publishes");
    let got = reader.publish(Duration::from_secs(20)).await.expect("the allowed message is bought");
    assert_eq!(text(&got), "allowed", "the first bought message is the allowed one, not a refused one");
    assert!(reader.publish(QUIET).await.is_none(), "nothing else was sold");
    let line = seller.wait_channel(ChannelRole::Seller, Duration::from_secs(10), |l| l.phase == "open").await;
    assert_eq!(line.messages, 1, "the seller sold one message: {line:?}");
    drop((nosy, nosy4, intruder4));
}

/// mosquitto_sub for one message, in the background.
fn mosquitto_sub(port: u16, extra: &[&str]) -> std::process::Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "tls/t", "-C", "1", "-W", "10", "-i", "tls-sub"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs")
}

fn mosquitto_pub(port: u16, extra: &[&str], message: &str) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "tls/t", "-q", "1", "-m", message])
        .args(extra)
        .output()
        .expect("mosquitto_pub runs")
}

/// A broker with `[mqtt.tls]` (and `extra` in it) on a free port; returns it and that port.
async fn tls_broker(root: &Path, chain: &Chain, pki: &Path, extra: &str) -> (BrokerProc, u16) {
    let port = supra_broker::probe::free_port().unwrap();
    let (rpc, judge) = (chain.rpc().to_owned(), chain.judge);
    let key = chain.fresh_key().await;
    let pki = pki.display();
    let mut broker = BrokerProc::spawn_with("tls", root, &key.0, key.1, |mqtt, v5, _| {
        format!(
            "[mqtt]\nlisten = \"{mqtt}\"\nlisten_v5 = \"{v5}\"\n\
             [mqtt.tls]\nlisten = \"{port}\"\ncert_file = \"{pki}/server.crt\"\nkey_file = \"{pki}/server.key\"\n{extra}\n\
             [chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\n"
        )
    });
    broker.wait_ready(Duration::from_secs(30)).await;
    (broker, port.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_listeners_with_and_without_client_certificates() {
    let _serial = serial().await;
    let chain = chain().await;
    let root = TempDir::new("access-tls");
    let pki = root.0.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let ca = pki.join("ca.crt").display().to_string();

    // Server certificate only: --cafile carries messages; plain MQTT on the TLS port fails.
    {
        let (broker, port) = tls_broker(&root.0.join("server-only"), chain, &pki, "").await;
        assert!(!broker.log().contains("WITHOUT authentication"), "no warning for loopback listeners:\n{}", broker.log());
        // Retained, so that the subscriber started after it gets it (no race with its SUBSCRIBE).
        let out = mosquitto_pub(port, &["--cafile", &ca, "-r"], "over-tls");
        assert!(out.status.success(), "mosquitto_pub over TLS: {}", String::from_utf8_lossy(&out.stderr));
        let sub = mosquitto_sub(port, &["--cafile", &ca]);
        let got = sub.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "over-tls", "{}", String::from_utf8_lossy(&got.stderr));
        let plain = mosquitto_pub(port, &[], "plain");
        assert!(!plain.status.success(), "plain MQTT on the TLS port must fail");
    }
    // Client certificates required: without one the handshake fails; with one it works.
    {
        let extra = format!("client_ca_file = \"{ca}\"");
        let (_broker, port) = tls_broker(&root.0.join("mutual"), chain, &pki, &extra).await;
        let without = mosquitto_pub(port, &["--cafile", &ca], "no-cert");
        assert!(!without.status.success(), "a client without a certificate is refused");
        let (cert, key) = (pki.join("client.crt").display().to_string(), pki.join("client.key").display().to_string());
        let with = ["--cafile", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
        let out = mosquitto_pub(port, &[&with[..], &["-r"]].concat(), "mutual-tls");
        assert!(out.status.success(), "mosquitto_pub with a client certificate: {}", String::from_utf8_lossy(&out.stderr));
        let sub = mosquitto_sub(port, &with);
        let got = sub.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "mutual-tls", "{}", String::from_utf8_lossy(&got.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_key_as_an_encrypted_keystore() {
    let _serial = serial().await;
    let chain = chain().await;
    let root = TempDir::new("access-keystore");
    let (rpc, judge) = (chain.rpc().to_owned(), chain.judge);
    let dir = root.0.join("ks");
    std::fs::create_dir_all(&dir).unwrap();
    // `supra keygen --keystore`, the password from an environment variable.
    let out = Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
        .args(["keygen", "--keystore", "--password-env", "KS_PW", "--out"])
        .arg(dir.join("broker.json"))
        .env("KS_PW", "correct horse")
        .output()
        .expect("supra keygen runs");
    assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
    let address: alloy::primitives::Address = String::from_utf8_lossy(&out.stdout).trim().parse().expect("keygen prints the address");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("broker.json")).unwrap()).expect("a JSON keystore");
    assert_eq!(json["version"], 3);
    assert_eq!(json["crypto"]["kdf"], "scrypt");
    supra_tests::fund(address, 10).await;
    // `supra address` reads the keystore too.
    let out = Command::new(env!("CARGO_BIN_EXE_supra-e2e"))
        .args(["address", "--password-env", "KS_PW", "--key"])
        .arg(dir.join("broker.json"))
        .env("KS_PW", "correct horse")
        .output()
        .expect("supra address runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), address.to_string(), "{}", String::from_utf8_lossy(&out.stderr));

    for (password, starts) in [("correct horse", true), ("wrong horse", false)] {
        std::fs::write(dir.join("pw"), format!("{password}\n")).unwrap();
        let mut broker = BrokerProc::spawn_with("ks", &root.0, &[1; 32], address, |mqtt, _, _| {
            // Reachable beyond loopback, without logins: the broker must say so loudly.
            let port = mqtt.port();
            format!("key_file = \"broker.json\"\nkey_password_file = \"pw\"\n[mqtt]\nlisten = \"0.0.0.0:{port}\"\n[chain]\nrpc = \"{rpc}\"\njudge = \"{judge}\"\n")
        });
        if starts {
            broker.wait_ready(Duration::from_secs(30)).await;
            let log = broker.log();
            assert!(log.contains(&address.to_string()), "the broker runs as the keystore's address:\n{log}");
            assert!(!log.contains("plain hex"), "no warning about a plain key:\n{log}");
            assert!(
                log.lines().any(|l| l.contains("WARN") && l.contains("0.0.0.0") && l.contains("WITHOUT authentication")),
                "an open listener beyond loopback is warned about:\n{log}"
            );
        } else {
            let status = broker.wait_exit(Duration::from_secs(30)).await;
            assert!(!status.success());
            assert!(broker.log().contains("wrong password"), "a clear error:\n{}", broker.log());
        }
    }
}

/// What `supra passwd` writes, Debian's mosquitto 2.0 accepts as its own `password_file` (and what
/// its mosquitto_passwd writes, supra accepts: the pair test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn supra_passwd_files_work_in_mosquitto() {
    let root = TempDir::new("access-mosquitto");
    let passwd = root.0.join("mqtt.passwd");
    supra_passwd(&passwd, "alice", "al-secret");
    // `user root`: mosquitto started as root (a CI container) would switch to the `mosquitto` user,
    // who cannot read the owner-only file; as anyone else the line does nothing.
    let settings = format!("user root\nallow_anonymous false\npassword_file {}\n", passwd.display());
    let mosquitto = Mosquitto::start_with(&root.0.join("mosquitto"), false, &settings);
    mosquitto.wait_listening(WAIT).await;
    let addr = mosquitto.addr;
    let publish = |password: &str| {
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "-u", "alice", "-P", password, "-t", "t", "-m", "m"])
            .output()
            .expect("mosquitto_pub runs")
    };
    let (right, wrong) = (publish("al-secret"), publish("wrong"));
    drop(mosquitto);
    assert!(right.status.success(), "mosquitto accepts supra's hash: {}", String::from_utf8_lossy(&right.stderr));
    assert!(!wrong.status.success(), "and refuses a wrong password");
}
