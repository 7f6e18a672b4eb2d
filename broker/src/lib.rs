//! The supra broker: an MQTT broker (embedded rmqtt) that sells and buys live topic streams from
//! other brokers over SUPRA payment channels, with the judge contract as the arbiter.
//!
//! [`Broker::start`] wires the parts together (see ARCHITECTURE.md): the embedded MQTT broker
//! ([`mqtt`]), the peer listener and dialers ([`peer`]), the chain worker and event watcher
//! ([`chain`]), the durable store ([`store`]), the operator socket ([`admin`]), and the [`node`]
//! task that owns the protocol engines.

pub mod access;
pub mod admin;
pub mod chain;
pub mod cli;
pub mod config;
pub mod demo;
pub mod external;
pub mod keys;
pub mod market;
pub mod mqtt;
pub mod node;
pub mod observe;
pub mod peer;
pub mod probe;
pub mod publication;
pub mod status;
pub mod store;
pub mod topics;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use supra_judge::Judge;
use supra_judge::devnet::Devnet;
use tokio::sync::mpsc;

use crate::config::{ChainEndpoint, Config};
use crate::node::{Command, Node, NodeIo};
use crate::peer::LinkContext;

/// The judge at the configured address must enforce the bounds this broker was built for (the
/// sold payload cap relies on its `MAX_PAYLOAD_BYTES`), and every sold stream's terms must be
/// within them (the judge would refuse to open its channels).
pub fn check_judge_limits(limits: &supra_judge::JudgeLimits, sell: &[config::SellConfig]) -> Result<(), String> {
    let built_for = judge_limits_built_for();
    if *limits != built_for {
        return Err(format!("the judge's limits {limits:?} are not the ones this broker was built for ({built_for:?}): another judge version?"));
    }
    for s in sell {
        if s.t_ack_secs > limits.max_t_ack_secs || s.t_closure_secs > limits.max_t_closure_secs || s.price_wei > U256::from(limits.max_price_wei) {
            return Err(format!(
                "sold stream `{}`: its terms exceed the judge's bounds (t_ack_secs <= {}, t_closure_secs <= {}, price_wei <= {})",
                s.topic, limits.max_t_ack_secs, limits.max_t_closure_secs, limits.max_price_wei
            ));
        }
    }
    Ok(())
}

/// The judge's bounds this broker was built for (the judge crate's constants).
pub fn judge_limits_built_for() -> supra_judge::JudgeLimits {
    supra_judge::JudgeLimits {
        max_payload_bytes: supra_judge::MAX_PAYLOAD_BYTES,
        max_t_ack_secs: supra_judge::MAX_T_ACK_SECS,
        max_t_closure_secs: supra_judge::MAX_T_CLOSURE_SECS,
        max_price_wei: supra_judge::MAX_PRICE_WEI,
    }
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] keys::KeyFileError),
    #[error("chain: {0}")]
    Chain(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Mqtt(#[from] mqtt::MqttError),
    #[error("peer listener {0}: {1}")]
    Peer(std::net::SocketAddr, std::io::Error),
    #[error("operator socket: {0}")]
    Admin(std::io::Error),
    #[error("HTTP listener {0} (http.listen): {1}")]
    Http(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Restore(String),
}

/// A running broker.
pub struct Broker {
    /// The broker's Ethereum address (its identity on links and on the chain).
    pub address: Address,
    /// The judge client (this broker's account).
    pub judge: Judge,
    /// Operator commands to the node.
    pub commands: mpsc::Sender<Command>,
    /// The node task: ends only on a storage failure.
    pub node: tokio::task::JoinHandle<Result<(), store::StoreError>>,
    /// The private chain started for `rpc = "auto"`, kept alive as long as the broker.
    pub devnet: Option<Devnet>,
    /// Peer listener, dialers and links (see [`Broker::shutdown`]).
    links: (tokio_util::sync::CancellationToken, tokio_util::task::TaskTracker),
}

/// Deploys the judge on a devnet with its first dev account, and funds `fund` from it.
pub async fn devnet_with_judge(fund: &[Address]) -> Result<(Devnet, Address), String> {
    let devnet = Devnet::spawn().map_err(|e| e.to_string())?;
    let deployer = *devnet.keys().first().ok_or("anvil printed no keys")?;
    let judge = Judge::deploy(devnet.endpoint(), &deployer).await.map_err(|e| e.to_string())?;
    for address in fund {
        let ether = U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18));
        supra_judge::transfer(devnet.endpoint(), &deployer, *address, ether).await.map_err(|e| e.to_string())?;
    }
    Ok((devnet, judge.address()))
}

impl Broker {
    /// Starts a broker from a validated configuration.
    pub async fn start(config: Config) -> Result<Broker, StartError> {
        // rustls is built with two crypto back-ends here (see broker/Cargo.toml) and would panic
        // at the first TLS handshake (an mqtts:// external broker) without a choice.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (key, secret) = keys::load_any(&config.key_file, &config.key_password)?;
        let key = Arc::new(key);
        let secret = B256::from(secret);
        let (rpc, judge_address, devnet) = match &config.chain.endpoint {
            ChainEndpoint::Auto => {
                let (devnet, judge) = devnet_with_judge(&[key.address()]).await.map_err(StartError::Chain)?;
                tracing::info!("started a private Anvil at {} with the judge at {judge}", devnet.endpoint());
                (devnet.endpoint().to_owned(), judge, Some(devnet))
            }
            ChainEndpoint::Rpc { url, judge } => (url.clone(), *judge, None),
        };
        let judge = Judge::connect(&rpc, &secret, judge_address).await.map_err(|e| StartError::Chain(e.to_string()))?;
        let limits = judge.limits().await.map_err(|e| StartError::Chain(format!("cannot read the judge's limits: {e}")))?;
        check_judge_limits(&limits, &config.sell).map_err(StartError::Chain)?;
        let domain = judge.domain();
        let confirmations = config.chain.confirmations.unwrap_or_else(|| config::default_confirmations(domain.chain_id()));
        let poll = Duration::from_millis(config.chain.poll_interval_ms);
        let policy = supra_judge::TxPolicy { confirmations, replace_after: Duration::from_secs(config.chain.replace_after_secs), ..judge.policy() };
        let judge = judge.with_policy(policy);

        let genesis = judge.genesis_hash().await.map_err(|e| StartError::Chain(e.to_string()))?;
        let store_path = config.data_dir.join("supra.redb");
        let mut store = store::Store::open(&config.data_dir)?;
        if let Err(e) = store.bind_chain(&genesis.0, &judge.address().0.0) {
            if devnet.is_none() {
                return Err(e.into());
            }
            // A private devnet is new at every start: the state of the previous one is set aside.
            drop(store);
            let stale = store_path.with_extension(format!("redb.{}.stale", node::now_ms()));
            std::fs::rename(&store_path, &stale).map_err(|e| StartError::Restore(format!("cannot set aside {}: {e}", store_path.display())))?;
            tracing::warn!("rpc = \"auto\" started a new chain: the previous chain's state was moved to {}", stale.display());
            store = store::Store::open(&config.data_dir)?;
            store.bind_chain(&genesis.0, &judge.address().0.0)?;
        }
        // The streams sold and bought at runtime (`supra sell`, `supra buy`) join the file's.
        let config = market::merge(config, &store).map_err(|e| StartError::Restore(e.to_string()))?;
        check_judge_limits(&limits, &config.sell).map_err(StartError::Chain)?;
        let restarting_buyer = !store.buyer_channels()?.is_empty();
        let sold: Vec<String> = config.sell.iter().map(|s| s.topic.clone()).collect();
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        let mqtt = match &config.external_mqtt {
            None => mqtt::Mqtt::Embedded(mqtt::LocalMqtt::start(&config.mqtt, &sold, local_tx).await?),
            Some(external) => mqtt::Mqtt::External(external::ExternalMqtt::start(external, &format!("supra-{}", key.address()), &sold, local_tx)?),
        };
        let observer = observe::Observer::new(key.address(), config.http.history_len);
        // Bound before anything runs: a taken port is a start error, as for the other listeners.
        let http = match config.http.listen {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    tracing::warn!("http.listen = {addr}: the dashboard and /metrics show this broker's money, without a login, to anyone who reaches that address; keep it on loopback or behind an authenticating proxy");
                }
                Some(observe::http::bind(addr).await.map_err(|e| StartError::Http(addr, e))?)
            }
            None => None,
        };

        let (links_tx, links_rx) = mpsc::unbounded_channel();
        let (closing, tasks) = (tokio_util::sync::CancellationToken::new(), tokio_util::task::TaskTracker::new());
        let ctx = LinkContext {
            domain,
            key: key.clone(),
            allow: Arc::new(config.peer.allow.clone()),
            events: links_tx,
            closing: closing.clone(),
            tasks: tasks.clone(),
            observer: observer.clone(),
        };
        if let Some(addr) = config.peer.listen {
            let listener = peer::bind(addr).await.map_err(|e| StartError::Peer(addr, e))?;
            tasks.spawn(peer::serve(listener, ctx.clone()));
        }

        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        tokio::spawn(chain::worker(judge.clone(), jobs_rx, results_tx, poll, observer.clone()));
        // After a restart, blocks read just before the stop are read again: a reorganisation may
        // have replaced them meanwhile, and the node handles events idempotently.
        let from = match store.chain_cursor()? {
            Some(block) => (block + 1).saturating_sub(confirmations.max(1)),
            None => judge.block_number().await.map_err(|e| StartError::Chain(e.to_string()))?,
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        tokio::spawn(chain::watch(judge.clone(), from, poll, confirmations, events_tx, observer.clone()));

        let sys_mqtt = mqtt.system_publisher();
        // Sellers we buy from: one link per (endpoint, seller), shared by its buys, whether from
        // the file or `supra buy`.
        let (dial_tx, mut dial_rx) = mpsc::unbounded_channel::<(String, Address)>();
        for b in &config.buy {
            let _ = dial_tx.send((b.endpoint.clone(), b.seller));
        }
        let mut node = Node::restore(&config, key.clone(), domain, store, mqtt, jobs_tx, observer.clone(), dial_tx).map_err(StartError::Restore)?;
        let (commands_tx, commands_rx) = mpsc::channel(64);
        admin::serve(admin::socket_path(&config.data_dir), commands_tx.clone(), judge.clone()).await.map_err(StartError::Admin)?;
        let sources = observe::Sources { commands: commands_tx.clone(), judge: judge.clone(), observer };
        if let Some(listener) = http {
            tracing::info!("dashboard on http://{} (metrics at /metrics)", listener.local_addr().map_err(|e| StartError::Http(config.http.listen.expect("bound"), e))?);
            observe::http::serve(listener, sources.clone());
            tokio::spawn(sources.clone().sample(Duration::from_millis(config.http.sample_interval_ms)));
        }
        if let Some(sys_mqtt) = sys_mqtt.filter(|_| config.mqtt.sys_interval_secs > 0) {
            tokio::spawn(observe::sys::publish(sources, sys_mqtt, Duration::from_secs(config.mqtt.sys_interval_secs)));
        }

        let hold = if restarting_buyer { Duration::from_millis(config.mqtt.restart_hold_ms) } else { Duration::ZERO };
        if hold.is_zero() {
            node.replay_outbox()?;
        }
        let commands = commands_tx.clone();
        tokio::spawn(async move {
            if !hold.is_zero() {
                tokio::time::sleep(hold).await;
                let _ = commands.send(Command::ReplayOutbox).await;
            }
            let mut dialed = std::collections::HashSet::new();
            loop {
                let (endpoint, seller) = tokio::select! {
                    asked = dial_rx.recv() => match asked { Some(asked) => asked, None => return },
                    () = ctx.closing.cancelled() => return,
                };
                if dialed.insert((endpoint.clone(), seller)) {
                    ctx.tasks.spawn(peer::keep_dialing(endpoint, seller, ctx.clone()));
                }
            }
        });

        let io = NodeIo { local: local_rx, links: links_rx, results: results_rx, events: events_rx, commands: commands_rx };
        let node = tokio::spawn(node.run(io));
        match &config.external_mqtt {
            None => tracing::info!("broker {} up: MQTT on {}", key.address(), config.mqtt.listen),
            Some(e) => tracing::info!("broker {} up: client of the MQTT broker at {}:{}", key.address(), e.host, e.port),
        }
        Ok(Broker { address: key.address(), judge, commands: commands_tx, node, devnet, links: (closing, tasks) })
    }

    /// Stops gracefully (SIGTERM, SIGINT): the node takes what local clients already published,
    /// commits its last turn and hands every bought message to the embedded broker; then the links
    /// write the node's last frames and close; then the Anvil started for `rpc = "auto"` stops.
    /// Chain transactions in flight are not waited for: the next start reads every channel from
    /// the chain again, as after a crash.
    pub async fn shutdown(self) -> Result<(), String> {
        let Broker { commands, node, devnet, links: (closing, tasks), .. } = self;
        let stopped = match commands.send(Command::Shutdown).await {
            Ok(()) => match node.await {
                Ok(result) => result.map_err(|e| format!("last commit: {e}")),
                Err(e) => Err(format!("node: {e}")),
            },
            Err(_) => Err("the node had already stopped".to_owned()),
        };
        closing.cancel();
        tasks.close();
        if tokio::time::timeout(LINKS_CLOSE_WITHIN, tasks.wait()).await.is_err() {
            tracing::warn!("links still closing after {LINKS_CLOSE_WITHIN:?}; leaving them");
        }
        if let Some(devnet) = devnet {
            let endpoint = devnet.endpoint().to_owned();
            drop(devnet);
            tracing::info!("stopped the private Anvil at {endpoint}");
        }
        stopped
    }
}

/// How long a graceful stop waits for links to write their last frames (a peer that does not
/// read must not hold the stop).
const LINKS_CLOSE_WITHIN: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    fn sold(t_ack_secs: u32) -> config::SellConfig {
        config::SellConfig { topic: "a/#".into(), price_wei: U256::from(1), window: 8, t_ack_secs, t_closure_secs: 60, selling: true, description: String::new(), token: Address::ZERO }
    }

    #[test]
    fn a_judge_with_other_limits_or_terms_beyond_them_stop_the_start() {
        let built_for = judge_limits_built_for();
        assert_eq!(check_judge_limits(&built_for, &[sold(30)]), Ok(()));
        let older = supra_judge::JudgeLimits { max_payload_bytes: 256 * 1024, ..built_for };
        assert!(check_judge_limits(&older, &[]).unwrap_err().contains("another judge version"));
        let too_long = check_judge_limits(&built_for, &[sold(supra_judge::MAX_T_ACK_SECS + 1)]).unwrap_err();
        assert!(too_long.contains("`a/#`") && too_long.contains("t_ack_secs"), "{too_long}");
        // The engines' own copies of the bounds (they do not depend on the judge crate).
        assert_eq!(supra_channel::types::MAX_T_ACK_SECS, supra_judge::MAX_T_ACK_SECS);
        assert_eq!(supra_channel::types::MAX_T_CLOSURE_SECS, supra_judge::MAX_T_CLOSURE_SECS);
        assert_eq!(supra_channel::types::MAX_PRICE_WEI, supra_judge::MAX_PRICE_WEI);
    }
}
