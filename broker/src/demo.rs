//! `supra demo`: a private Anvil with the judge, the offer catalogue and a test stablecoin; a seller
//! broker A that sells `sensors/#` in that stablecoin and lists it in the catalogue; a buyer broker
//! B, configured to buy nothing, that finds the offer in the catalogue and buys it at runtime
//! through its operator socket (the deposit pulled with a permit, in one transaction); a plain MQTT
//! publisher on A and subscriber on B; live progress while payments flow; then the buyer closes the
//! channel and the settlement is checked: paid = messages delivered x price, in the token.
//! `--eth` prices it in ETH instead.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use supra_judge::{ChannelStatus, Judge};

use crate::config::{ChainConfig, ChainEndpoint, Config, HttpConfig, MqttConfig, NodeConfig, PeerConfig, SellConfig};
use crate::node::Command;
use crate::probe::{Publisher, Subscriber, free_port};
use crate::status::{ChannelRole, ChannelStatusLine, format_wei};
use crate::{Broker, devnet_with_judge, keys};

/// Demo settings (`supra demo --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 300)]
    pub messages: u64,
    /// Publish rate, messages per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Price per message, in the currency's smallest unit: millionths of the test stablecoin
    /// (default 1000: 0.001 tUSD), or wei with --eth (default 1 gwei).
    #[arg(long)]
    pub price: Option<u64>,
    /// Price and pay in ETH rather than the test stablecoin.
    #[arg(long)]
    pub eth: bool,
    /// Window W (most unacked messages in flight).
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// T_closure in seconds (what a close waits when the two sides do not close cooperatively).
    #[arg(long, default_value_t = 4)]
    pub t_closure_secs: u32,
    /// Keep the state here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub delivered: u64,
    pub price: U256,
    pub paid_to_seller: U256,
    pub refunded_to_buyer: U256,
    pub deposit: U256,
    pub posted_on_chain: u64,
}

fn broker_config(dir: &std::path::Path, name: &str, judge: Address, rpc: &str) -> Result<Config, String> {
    Ok(Config {
        data_dir: dir.join(name).join("data"),
        key_file: dir.join(name).join("broker.json"),
        key_password: keys::KeyPassword::File(dir.join(name).join("key.password")),
        mqtt: MqttConfig { restart_hold_ms: 0, ..MqttConfig::listening_on(free_port().map_err(|e| e.to_string())?) },
        external_mqtt: None,
        chain: ChainConfig {
            endpoint: ChainEndpoint::Rpc { url: rpc.to_owned(), judge },
            onchain_delay_secs: 3,
            poll_interval_ms: 200,
            claim_threshold_wei: U256::ZERO,
            confirmations: None,
            replace_after_secs: 30,
            cooperative_close: true,
            catalogue: None,
        },
        peer: PeerConfig::default(),
        node: NodeConfig::default(),
        http: HttpConfig { listen: Some(free_port().map_err(|e| e.to_string())?), ..HttpConfig::default() },
        sell: Vec::new(),
        buy: Vec::new(),
    })
}

async fn channel_of(broker: &Broker, role: ChannelRole) -> Option<ChannelStatusLine> {
    crate::admin::channels(&broker.commands, &broker.judge).await.ok()?.into_iter().find(|l| l.role == role)
}

/// Runs the demo, printing progress; returns what it measured.
pub async fn run(options: DemoOptions) -> Result<DemoReport, String> {
    let started = Instant::now();
    let temp;
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("supra-demo-{}", std::process::id()));
            temp.clone()
        }
    };
    let _ = std::fs::remove_dir_all(&dir);

    println!("supra demo: starting a private Anvil and deploying the judge…");
    let (seller_secret, seller_key) = keys::generate();
    let (buyer_secret, buyer_key) = keys::generate();
    let (devnet, judge_address) = devnet_with_judge(&[seller_key.address(), buyer_key.address()]).await?;
    println!("  chain {} (id {}), judge at {judge_address}", devnet.endpoint(), devnet.chain_id());

    // The market's contracts, deployed by the devnet's first account: the catalogue, and a test
    // stablecoin with 1 000 tUSD minted to the buyer.
    let deployer = *devnet.keys().first().ok_or("anvil printed no keys")?;
    let admin = Judge::connect(devnet.endpoint(), &deployer, judge_address).await.map_err(|e| e.to_string())?;
    let catalogue = supra_judge::devnet::deploy_catalogue(&admin).await.map_err(|e| e.to_string())?;
    let currency = if options.eth {
        Currency::Eth
    } else {
        let token = supra_judge::devnet::deploy_test_token(&admin, &[buyer_key.address()], U256::from(1_000_000_000u64)).await.map_err(|e| e.to_string())?;
        Currency::Token(token)
    };
    println!("  catalogue at {}, {}", catalogue.address(), currency.describe());
    let price = U256::from(options.price.unwrap_or(if options.eth { 1_000_000_000 } else { 1_000 }));

    let mut seller = broker_config(&dir, "seller", judge_address, devnet.endpoint())?;
    let peer_addr = free_port().map_err(|e| e.to_string())?;
    seller.peer.listen = Some(peer_addr);
    seller.chain.catalogue = Some(catalogue.address());
    seller.sell.push(SellConfig {
        topic: "sensors/#".into(),
        price_wei: price,
        window: options.window,
        t_ack_secs: 20,
        t_closure_secs: options.t_closure_secs,
        selling: true,
        description: "room temperatures, every second".into(),
        token: currency.token(),
    });
    // The buyer's config buys nothing: it finds the stream in the catalogue and buys it at runtime.
    let mut buyer = broker_config(&dir, "buyer", judge_address, devnet.endpoint())?;
    buyer.chain.catalogue = Some(catalogue.address());
    let buyer_dir = buyer.data_dir.clone();
    let deposit = price * U256::from(options.messages + options.window);
    for (config, secret) in [(&seller, &seller_secret), (&buyer, &buyer_secret)] {
        std::fs::create_dir_all(config.data_dir.parent().unwrap_or(&dir)).map_err(|e| e.to_string())?;
        // Each key in an encrypted keystore, as an operator's should be (a random password in a file).
        let password = hex::encode(rand::random::<[u8; 16]>());
        if let keys::KeyPassword::File(path) = &config.key_password {
            std::fs::write(path, &password).map_err(|e| e.to_string())?;
        }
        keys::write_keystore(&config.key_file, secret, &password, true).map_err(|e| e.to_string())?;
    }

    let (seller_mqtt, buyer_mqtt) = (seller.mqtt.listen, buyer.mqtt.listen);
    let dashboard = |config: &Config| config.http.listen.map_or_else(String::new, |a| format!(", dashboard http://{a}/"));
    let (seller_page, buyer_page) = (dashboard(&seller), dashboard(&buyer));
    let a = Broker::start(seller).await.map_err(|e| format!("seller broker: {e}"))?;
    println!("  broker A (seller) {}: MQTT {seller_mqtt}, peers {peer_addr}{seller_page}, sells sensors/# at {} and lists it in the catalogue", a.address, currency.amount(price));
    let b = Broker::start(buyer).await.map_err(|e| format!("buyer broker: {e}"))?;
    println!("  broker B (buyer)  {}: MQTT {buyer_mqtt}{buyer_page}, buys nothing yet", b.address);

    // B finds the offer in the catalogue (chain events only: no link to A yet) and buys it.
    let reader = supra_judge::market::Catalogue::connect(&b.judge, catalogue.address()).await.map_err(|e| e.to_string())?;
    let wanted = supra_judge::market::OfferFilter { topic: Some("sensors/+/temperature".into()), max_price: Some(price), ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ad = loop {
        if let Some(listed) = reader.offers(&wanted).await.map_err(|e| e.to_string())?.into_iter().next() {
            break listed.ad;
        }
        if Instant::now() > deadline {
            return Err("A's offer did not appear in the catalogue within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("  B finds in the catalogue: `{}` ({}) from {} at {}, {} a message", ad.topic_filter, ad.description, ad.seller(), ad.endpoint, currency.amount(ad.price));
    let order = crate::market::BuyOrder {
        seller: ad.seller(),
        endpoint: ad.endpoint.clone(),
        topic: ad.topic_filter.clone(),
        deposit_wei: deposit,
        max_price_wei: ad.price,
        local_prefix: "market/".into(),
        // The deposit covers the whole demo.
        top_up_messages: None,
        max_deposit_wei: None,
        token: ad.token,
    };
    match crate::admin::ask(&buyer_dir, &crate::admin::Request::Buy(order)).await? {
        crate::admin::Answer::Done(said) => println!("  supra buy (B's operator socket): {said}"),
        crate::admin::Answer::Error(e) => return Err(format!("buying: {e}")),
        other => return Err(format!("buying: unexpected answer {other:?}")),
    }

    let mut subscriber = Subscriber::connect(buyer_mqtt, "demo-subscriber", "market/sensors/#", Duration::from_secs(10)).await?;
    println!("  subscriber on B: market/sensors/#");

    // The channel opens on-chain once B has A's offer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let channel = loop {
        if let Some(line) = channel_of(&a, ChannelRole::Seller).await {
            break line.channel;
        }
        if Instant::now() > deadline {
            return Err("the channel did not open within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("  channel {channel} open: B locked {}{}", currency.amount(deposit), if options.eth { "" } else { " (permit and transfer in the one open transaction)" });

    let publisher = Publisher::connect(seller_mqtt, "demo-publisher", Duration::from_secs(10)).await?;
    println!("publishing {} messages at {}/s on A (sensors/room<i>/temperature)…", options.messages, options.rate);
    let interval = Duration::from_micros(1_000_000 / options.rate.max(1));
    let mut delivered = 0u64;
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let publish_start = Instant::now();
    for i in 0..options.messages {
        let topic = format!("sensors/room{}/temperature", i % 8);
        publisher.publish(&topic, format!("{{\"seq\":{i},\"celsius\":{:.1}}}", 19.0 + (i % 50) as f64 / 10.0).into_bytes()).await?;
        let due = publish_start + interval * (i as u32 + 1);
        while Instant::now() < due {
            if subscriber.next(due.saturating_duration_since(Instant::now())).await.is_some() {
                delivered += 1;
            }
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            progress(&a, i + 1, delivered, &currency).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered < options.messages && Instant::now() < deadline {
        if subscriber.next(Duration::from_secs(1)).await.is_some() {
            delivered += 1;
        } else {
            progress(&a, options.messages, delivered, &currency).await;
        }
    }
    progress(&a, options.messages, delivered, &currency).await;
    if delivered < options.messages {
        return Err(format!("only {delivered} of {} messages reached the subscriber", options.messages));
    }

    println!(
        "closing: B stops the channel (final ack); A answers with its Stop and settles at once with closeCooperatively \
         (had it not answered: B's close request, A's claim, settlement after T_closure = {} s)…",
        options.t_closure_secs
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    b.commands.send(Command::Close(channel, tx)).await.map_err(|_| "buyer broker stopped")?;
    rx.await.map_err(|_| "buyer broker stopped")??;
    let info = wait_settled(&a.judge, channel, Duration::from_secs(u64::from(options.t_closure_secs) + 60)).await?;
    let posted = count_posted(&a.judge).await;
    let report = DemoReport {
        delivered,
        price,
        paid_to_seller: info.claimed,
        refunded_to_buyer: info.deposit - info.claimed,
        deposit: info.deposit,
        posted_on_chain: posted,
    };
    let expected = report.price * U256::from(report.delivered);
    println!("settled channel {channel} in {:.1} s:", started.elapsed().as_secs_f64());
    println!("  messages delivered to B's subscriber: {}", report.delivered);
    println!("  price per message:                  {}", currency.amount(report.price));
    println!("  paid to seller A (on-chain):        {} ({} units)", currency.amount(report.paid_to_seller), report.paid_to_seller);
    println!("  delivered x price:                  {} ({} units)", currency.amount(expected), expected);
    println!("  refunded to buyer B:                {}", currency.amount(report.refunded_to_buyer));
    println!("  messages posted on-chain (fallback): {}", report.posted_on_chain);
    if report.paid_to_seller != expected {
        return Err(format!("settlement mismatch: paid {} units, expected {expected}", report.paid_to_seller));
    }
    if let Currency::Token(token) = &currency {
        let held = token.balance_of(a.address).await.map_err(|e| e.to_string())?;
        println!("  seller A's tUSD balance:            {}", currency.amount(held));
        if held != expected {
            return Err(format!("the seller holds {held} units of the token, expected {expected}"));
        }
    }
    println!("OK: paid = messages delivered x price ({})", currency.unit());
    drop(devnet);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// What the demo's stream is priced and paid in.
enum Currency {
    Eth,
    Token(supra_judge::market::TestToken),
}

impl Currency {
    fn token(&self) -> Address {
        match self {
            Currency::Eth => Address::ZERO,
            Currency::Token(t) => t.address(),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Currency::Eth => "wei",
            Currency::Token(_) => "tUSD",
        }
    }

    fn describe(&self) -> String {
        match self {
            Currency::Eth => "prices in ETH".into(),
            Currency::Token(t) => format!("test stablecoin tUSD (ERC-20 with permit, 6 decimals) at {}, 1 000 tUSD minted to B", t.address()),
        }
    }

    fn amount(&self, amount: U256) -> String {
        match self {
            Currency::Eth => format_wei(amount),
            Currency::Token(_) => {
                let micro = u128::try_from(amount).unwrap_or(u128::MAX);
                format!("{}.{:06} tUSD", micro / 1_000_000, micro % 1_000_000)
            }
        }
    }
}

async fn progress(seller: &Broker, published: u64, delivered: u64, currency: &Currency) {
    let line = channel_of(seller, ChannelRole::Seller).await;
    let (acked, claimed) = line.map_or((0, U256::ZERO), |l| (l.acked, l.claimed));
    println!("  published {published:>5} | delivered {delivered:>5} | acked {acked:>5} | claimed on-chain {:>14}", currency.amount(claimed));
}

async fn wait_settled(judge: &Judge, channel: supra_channel::types::ChannelId, within: Duration) -> Result<supra_judge::ChannelInfo, String> {
    let deadline = Instant::now() + within;
    loop {
        let info = judge.channel(channel).await.map_err(|e| e.to_string())?;
        if info.status == ChannelStatus::Settled {
            return Ok(info);
        }
        if Instant::now() > deadline {
            return Err(format!("channel not settled within {within:?} (status {:?})", info.status));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count_posted(judge: &Judge) -> u64 {
    let Ok(latest) = judge.block_number().await else { return 0 };
    judge
        .events(0, latest)
        .await
        .map(|events| events.iter().filter(|e| matches!(e.event, supra_judge::JudgeEvent::Posted { .. })).count() as u64)
        .unwrap_or(0)
}
