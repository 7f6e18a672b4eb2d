//! The broker's TOML configuration: parsing, defaults and validation.
//!
//! `supra.example.toml` at the crate root is the commented reference; [`Config::load`] turns a file
//! into a validated [`Config`] with paths resolved against the file's directory. Every mistake is
//! reported with the key it concerns; nothing is started from a config that failed validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::Deserialize;

use crate::access::{Access, AclRule, RawUser, TlsConfig};
use crate::keys::KeyPassword;
use crate::topics::{check_filter, overlap};
use supra_channel::buyer::TopUpPolicy;

/// A validated broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the durable state (created if missing).
    pub data_dir: PathBuf,
    /// File holding the broker's secp256k1 key: an encrypted JSON keystore (`supra keygen
    /// --keystore`) or hex (`supra keygen`).
    pub key_file: PathBuf,
    /// Where the keystore's password comes from.
    pub key_password: KeyPassword,
    pub mqtt: MqttConfig,
    /// The external broker when `mqtt.mode = "external"`.
    pub external_mqtt: Option<ExternalMqttConfig>,
    pub chain: ChainConfig,
    pub peer: PeerConfig,
    pub http: HttpConfig,
    pub node: NodeConfig,
    pub sell: Vec<SellConfig>,
    pub buy: Vec<BuyConfig>,
}

/// The operator's HTTP server: Prometheus `/metrics`, the live dashboard and its JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where it listens; `None` (`listen = "off"`): no HTTP server.
    pub listen: Option<SocketAddr>,
    /// How often the dashboard's history (messages and wei over time) takes a sample.
    pub sample_interval_ms: u64,
    /// Samples kept in memory for the dashboard's charts (the oldest go first).
    pub history_len: usize,
}

/// Default address of the HTTP server (loopback only: the page shows the broker's money).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9811";

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: DEFAULT_HTTP_LISTEN.parse().ok(), sample_interval_ms: 2_000, history_len: 900 }
    }
}

/// MQTT listeners of the embedded broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `embedded` (default): local clients connect to the rmqtt in this process; `external`:
    /// Supra is a client of the broker in `[mqtt.external]` and opens no MQTT listener.
    #[serde(default)]
    pub mode: MqttMode,
    /// The external broker, for `mode = "external"`.
    #[serde(default)]
    pub external: Option<ExternalMqttSection>,
    /// MQTT 3.1.1 listener (default 127.0.0.1:1883).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Optional second MQTT listener (for MQTT 5 clients by convention; both listeners speak 3.1.1
    /// and 5).
    #[serde(default)]
    pub listen_v5: Option<SocketAddr>,
    /// Largest MQTT packet a client may send, in bytes (MQTT 5's Maximum Packet Size: payload, topic
    /// and properties, which are all sealed into a sold message). A broker that sells may not accept
    /// more than [`MAX_SOLD_PAYLOAD_BYTES`]: a bigger message, once sealed, could not be posted
    /// on-chain.
    #[serde(default = "default_max_payload")]
    pub max_payload_size: usize,
    /// After a restart with bought channels, deliveries wait this long so that local subscribers
    /// can reconnect first (MQTT drops what arrives for a clean session that is not connected).
    #[serde(default = "default_restart_hold")]
    pub restart_hold_ms: u64,
    /// Messages queued per client session beyond its in-flight window before the broker drops the
    /// oldest (mosquitto's `max_queued_messages`, whose default of 1 000 is too small here: a
    /// bought stream arrives in bursts, and a dropped message is one that was paid for).
    #[serde(default = "default_max_queued")]
    pub max_queued_messages: usize,
    /// Every this many seconds the broker's figures are published as retained messages under
    /// `$SYS/supra/...` on the embedded broker (0: never).
    #[serde(default = "default_sys_interval")]
    pub sys_interval_secs: u64,
    /// A mosquitto password file of the clients that may log in (see [`crate::access`]).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Whether clients without a username may connect (default: only when no user is configured).
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
    /// Users with their password hashes, beside or instead of `password_file`.
    #[serde(default)]
    pub user: Vec<RawUser>,
    /// Per-user topic rules for publishing and subscribing.
    #[serde(default)]
    pub acl: Vec<AclRule>,
    /// An MQTT-over-TLS listener.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// What the settings above allow, checked by [`Config::parse`].
    #[serde(skip)]
    pub access: Access,
}

impl MqttConfig {
    /// An embedded broker on `listen` with every default (the demo and benches).
    pub fn listening_on(listen: SocketAddr) -> MqttConfig {
        MqttConfig {
            mode: MqttMode::Embedded,
            external: None,
            listen,
            listen_v5: None,
            max_payload_size: default_max_payload(),
            restart_hold_ms: default_restart_hold(),
            max_queued_messages: default_max_queued(),
            sys_interval_secs: default_sys_interval(),
            password_file: None,
            allow_anonymous: None,
            user: Vec::new(),
            acl: Vec::new(),
            tls: None,
            access: Access::default(),
        }
    }
}

/// Where local MQTT clients are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    #[default]
    Embedded,
    External,
}

/// `[mqtt.external]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalMqttSection {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS; needs `ca_file`).
    url: String,
    /// The persistent session's client id (default: `supra-` and the broker's address).
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    /// File holding the password (first line), or the environment variable holding it.
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    /// PEM file of the CA that signed the external broker's certificate (mqtts://).
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// The external broker, validated.
#[derive(Debug, Clone)]
pub struct ExternalMqttConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Largest packet Supra accepts from it (`mqtt.max_payload_size`).
    pub max_packet_size: u32,
}

impl ExternalMqttSection {
    fn resolve(self, base: &Path, max_packet_size: usize) -> Result<ExternalMqttConfig, ConfigError> {
        let (tls, rest) = match self.url.split_once("://") {
            Some(("mqtt", rest)) => (false, rest),
            Some(("mqtts", rest)) => (true, rest),
            _ => return Err(invalid("mqtt.external.url", format!("`{}`: use mqtt://host:port or mqtts://host:port", self.url))),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid("mqtt.external.url", format!("`{port}` is not a port")))?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(invalid("mqtt.external.url", format!("`{}`: no host", self.url)));
        }
        let ca_file = self.ca_file.map(|f| base.join(f));
        if tls && ca_file.is_none() {
            return Err(invalid("mqtt.external.ca_file", "required with an mqtts:// URL"));
        }
        if let Some(f) = ca_file.as_ref().filter(|f| !f.is_file()) {
            return Err(invalid("mqtt.external.ca_file", format!("{} is not a readable file", f.display())));
        }
        let password = match (self.password_file, self.password_env) {
            (Some(_), Some(_)) => return Err(invalid("mqtt.external.password_file", "give password_file or password_env, not both")),
            (Some(file), None) => {
                let file = base.join(file);
                let text = std::fs::read_to_string(&file).map_err(|e| invalid("mqtt.external.password_file", format!("{}: {e}", file.display())))?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            (None, Some(var)) => Some(std::env::var(&var).map_err(|_| invalid("mqtt.external.password_env", format!("environment variable `{var}` is not set")))?),
            (None, None) => None,
        };
        if password.is_some() && self.username.is_none() {
            return Err(invalid("mqtt.external.username", "a password needs a username"));
        }
        Ok(ExternalMqttConfig {
            host: host.to_owned(),
            port,
            tls,
            ca_file,
            client_id: self.client_id,
            username: self.username,
            password,
            max_packet_size: max_packet_size.min(u32::MAX as usize) as u32,
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}

/// Room kept in a sealed payload for the envelope (version, epoch, grant count, ephemeral key,
/// AEAD tag: 60 bytes), up to 1 KiB by which a publication's encoding exceeds its MQTT packet, and
/// the key grants of a new epoch (68 bytes per buyer: 44 buyers).
pub const SEAL_ROOM_BYTES: usize = 4 * 1024;

/// Largest plaintext a seller sells: sealed, it fits the judge's `MAX_PAYLOAD_BYTES` (96 KiB), so
/// every sold message can be posted as a fallback or a defence (issue 10, point 8).
pub const MAX_SOLD_PAYLOAD_BYTES: usize = supra_judge::MAX_PAYLOAD_BYTES - SEAL_ROOM_BYTES;

fn default_max_payload() -> usize {
    MAX_SOLD_PAYLOAD_BYTES
}
fn default_restart_hold() -> u64 {
    2_000
}
fn default_max_queued() -> usize {
    100_000
}
fn default_sys_interval() -> u64 {
    5
}

/// Where the judge lives.
#[derive(Debug, Clone)]
pub enum ChainEndpoint {
    /// Start a local Anvil and deploy the judge on it (development and demos).
    Auto,
    /// An existing chain: JSON-RPC URL and the judge's address.
    Rpc { url: String, judge: Address },
}

/// Chain settings.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub endpoint: ChainEndpoint,
    /// Δ_on-chain: how long a transaction may take to be mined. A seller posts an unacked message
    /// at `timestamp + T_ack - Δ`.
    pub onchain_delay_secs: u32,
    /// How often new judge events are read.
    pub poll_interval_ms: u64,
    /// The seller claims acked payments once this much is unclaimed (and always on close).
    pub claim_threshold_wei: U256,
    /// Blocks on top of a transaction's (or an event's) block before it counts as done; `None`:
    /// the default of the chain kind ([`default_confirmations`]).
    pub confirmations: Option<u64>,
    /// A transaction not mined after this long is replaced with higher EIP-1559 fees.
    pub replace_after_secs: u64,
    /// The engines close a fully acked, stopped channel with `closeCooperatively` (at once)
    /// rather than waiting `T_closure`.
    pub cooperative_close: bool,
    /// The offer catalogue (`SupraCatalogue`): the broker advertises what it sells there, and
    /// `supra offers` / `supra buy --stream` read it. `None`: no catalogue.
    pub catalogue: Option<Address>,
}

/// Confirmations by chain kind: none on development chains (Anvil, Hardhat: nothing reorganises
/// them unless asked), 3 on Ethereum and its test networks (reorganisations of one or two blocks
/// happen), 1 elsewhere (rollups' sequencers reorganise rarely and shallowly).
pub fn default_confirmations(chain_id: u64) -> u64 {
    match chain_id {
        31337 | 1337 => 0,
        1 | 11155111 | 17000 | 560048 => 3,
        _ => 1,
    }
}

/// The peer listener buyers connect to (only needed to sell).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub listen: Option<SocketAddr>,
    /// Buyer addresses allowed to connect; empty means any buyer that pays.
    pub allow: Vec<Address>,
    /// A seller closes the channels of a buyer whose link stayed down this long (after posting
    /// what it had sent unacked), so that it gets paid without waiting for the buyer.
    pub idle_close_secs: u64,
    /// Where buyers reach the peer listener (`host:port`), as the catalogue advertises it.
    /// Default: `listen`, unless it binds every address (0.0.0.0 or ::).
    pub advertise: Option<String>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig { listen: None, allow: Vec::new(), idle_close_secs: default_idle_close(), advertise: None }
    }
}

impl PeerConfig {
    /// The endpoint the catalogue advertises, if any.
    pub fn advertised(&self) -> Option<String> {
        self.advertise.clone().or_else(|| self.listen.filter(|a| !a.ip().is_unspecified()).map(|a| a.to_string()))
    }
}

fn default_idle_close() -> u64 {
    600
}

/// How the node runs its engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    /// Threads that run a turn's engine work (signing each sold stream's batch, handling the frames
    /// each channel received) in parallel, one engine per task. 1: every engine in turn on the
    /// node's task. Default: the machine's cores (`std::thread::available_parallelism`).
    pub workers: std::num::NonZeroUsize,
    /// A sold stream stops a buyer's channel when that buyer is more than this many messages
    /// behind the newest (from its last verified ack): the stream keeps every message a channel
    /// is owed, in memory and in the store, so this bounds what one slow or vanished buyer
    /// costs. At least every sold stream's window.
    pub max_backlog: u64,
}

/// [`NodeConfig::max_backlog`]'s bounds: at most 16 Mi messages (several GiB held for one buyer).
pub const MAX_BACKLOG_LIMIT: u64 = 1 << 24;

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            workers: std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN),
            max_backlog: supra_channel::seller::SellerConfig::default().max_backlog,
        }
    }
}

/// One stream this broker sells: every local publish matching `topic`.
#[derive(Debug, Clone)]
pub struct SellConfig {
    pub topic: String,
    pub price_wei: U256,
    pub window: u64,
    pub t_ack_secs: u32,
    pub t_closure_secs: u32,
    /// Takes new buyers. `false` once `supra stop-selling` stopped it: its channels still run to
    /// their settlement, and `supra sell` sells it again.
    pub selling: bool,
    /// What the catalogue says of it (at most [`MAX_DESCRIPTION_BYTES`]).
    pub description: String,
    /// The currency: an ERC-20 with EIP-2612 permit (a stablecoin), priced in its smallest unit;
    /// `Address::ZERO`: ETH, priced in wei.
    pub token: Address,
}

/// The longest description (and endpoint) the catalogue takes (`SupraCatalogue`).
pub const MAX_DESCRIPTION_BYTES: usize = 280;
pub const MAX_ENDPOINT_BYTES: usize = 128;

/// One stream this broker buys from another broker.
#[derive(Debug, Clone)]
pub struct BuyConfig {
    pub seller: Address,
    pub endpoint: String,
    pub topic: String,
    pub deposit_wei: U256,
    pub max_price_wei: U256,
    pub local_prefix: String,
    /// Tops the deposit up ahead of exhaustion (`None`: never; the stream stops when the
    /// deposit is used up, and nothing delivered goes unpaid).
    pub top_up: Option<TopUpPolicy>,
    /// The currency this broker pays in (amounts in its smallest unit): an offer in another is
    /// refused. `Address::ZERO`: ETH.
    pub token: Address,
}

/// A configuration mistake, naming the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

// ---- raw file shape ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_key_file")]
    key_file: PathBuf,
    #[serde(default)]
    key_password_file: Option<PathBuf>,
    #[serde(default)]
    key_password_env: Option<String>,
    mqtt: MqttConfig,
    #[serde(default)]
    chain: RawChain,
    #[serde(default)]
    peer: RawPeer,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    sell: Vec<RawSell>,
    #[serde(default)]
    buy: Vec<RawBuy>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_key_file() -> PathBuf {
    PathBuf::from("broker.key")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    #[serde(default = "default_rpc")]
    rpc: String,
    judge: Option<String>,
    #[serde(default = "default_onchain_delay")]
    onchain_delay_secs: u32,
    #[serde(default = "default_poll_interval")]
    poll_interval_ms: u64,
    #[serde(default)]
    claim_threshold_wei: Option<Amount>,
    #[serde(default)]
    confirmations: Option<u64>,
    #[serde(default = "default_replace_after")]
    replace_after_secs: u64,
    #[serde(default = "default_true")]
    cooperative_close: bool,
    #[serde(default)]
    catalogue: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Default for RawChain {
    fn default() -> Self {
        RawChain {
            rpc: default_rpc(),
            judge: None,
            onchain_delay_secs: default_onchain_delay(),
            poll_interval_ms: default_poll_interval(),
            claim_threshold_wei: None,
            confirmations: None,
            replace_after_secs: default_replace_after(),
            cooperative_close: true,
            catalogue: None,
        }
    }
}

fn default_rpc() -> String {
    "auto".into()
}
fn default_onchain_delay() -> u32 {
    5
}
fn default_poll_interval() -> u64 {
    500
}
fn default_replace_after() -> u64 {
    30
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    workers: Option<u64>,
    max_backlog: Option<u64>,
}

impl RawNode {
    fn validate(self) -> Result<NodeConfig, ConfigError> {
        let default = NodeConfig::default();
        let workers = match self.workers {
            None => default.workers,
            Some(workers) => usize::try_from(workers)
                .ok()
                .filter(|n| *n <= 1024)
                .and_then(std::num::NonZeroUsize::new)
                .ok_or_else(|| invalid("node.workers", "must be between 1 and 1024 (1: one thread runs every engine)"))?,
        };
        let max_backlog = self.max_backlog.unwrap_or(default.max_backlog);
        if !(1..=MAX_BACKLOG_LIMIT).contains(&max_backlog) {
            return Err(invalid("node.max_backlog", format!("must be between 1 and {MAX_BACKLOG_LIMIT} messages")));
        }
        Ok(NodeConfig { workers, max_backlog })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default = "default_idle_close")]
    idle_close_secs: u64,
    #[serde(default)]
    advertise: Option<String>,
}

impl Default for RawPeer {
    fn default() -> Self {
        RawPeer { listen: None, allow: Vec::new(), idle_close_secs: default_idle_close(), advertise: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_http_listen")]
    listen: String,
    #[serde(default = "default_sample_interval")]
    sample_interval_ms: u64,
    #[serde(default = "default_history_len")]
    history_len: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp { listen: default_http_listen(), sample_interval_ms: default_sample_interval(), history_len: default_history_len() }
    }
}

fn default_http_listen() -> String {
    DEFAULT_HTTP_LISTEN.into()
}
fn default_sample_interval() -> u64 {
    HttpConfig::default().sample_interval_ms
}
fn default_history_len() -> usize {
    HttpConfig::default().history_len
}

impl RawHttp {
    fn validate(self) -> Result<HttpConfig, ConfigError> {
        let listen = match self.listen.trim() {
            "off" => None,
            text => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid("http.listen", format!("`{text}`: give an address and port such as \"{DEFAULT_HTTP_LISTEN}\", or \"off\""))
            })?),
        };
        if self.sample_interval_ms < 100 {
            return Err(invalid("http.sample_interval_ms", "must be at least 100"));
        }
        if !(2..=100_000).contains(&self.history_len) {
            return Err(invalid("http.history_len", "must be between 2 and 100000"));
        }
        Ok(HttpConfig { listen, sample_interval_ms: self.sample_interval_ms, history_len: self.history_len })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSell {
    topic: String,
    price_wei: Amount,
    #[serde(default = "default_window")]
    window: u64,
    #[serde(default = "default_t_ack")]
    t_ack_secs: u32,
    #[serde(default = "default_t_closure")]
    t_closure_secs: u32,
    #[serde(default)]
    description: String,
    #[serde(default)]
    token: Option<String>,
}

/// A sold stream's default window W (`window`), T_ack (`t_ack_secs`) and T_closure
/// (`t_closure_secs`), in the file and for `supra sell`.
pub const DEFAULT_WINDOW: u64 = 256;
pub const DEFAULT_T_ACK_SECS: u32 = 60;
pub const DEFAULT_T_CLOSURE_SECS: u32 = 120;

fn default_window() -> u64 {
    DEFAULT_WINDOW
}
fn default_t_ack() -> u32 {
    DEFAULT_T_ACK_SECS
}
fn default_t_closure() -> u32 {
    DEFAULT_T_CLOSURE_SECS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuy {
    seller: String,
    endpoint: String,
    topic: String,
    deposit_wei: Amount,
    max_price_wei: Amount,
    local_prefix: String,
    /// Messages' worth added by each top-up; setting it turns top-ups on.
    #[serde(default)]
    top_up_messages: Option<u64>,
    /// Top up when the deposit pays for at most this many more messages.
    #[serde(default)]
    top_up_below_messages: Option<u64>,
    /// The deposit never grows past this.
    #[serde(default)]
    max_deposit_wei: Option<Amount>,
    #[serde(default)]
    token: Option<String>,
}

/// An amount of wei as written in the config: an integer, or a string with an optional unit
/// (`"1000"`, `"2 gwei"`, `"0.5 ether"`). TOML integers stop at 2^63, hence strings.
#[derive(Debug, Clone, Copy)]
struct Amount(U256);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(Amount(U256::from(n))),
            Raw::Text(text) => parse_wei(&text).map(Amount).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"123"`, `"123 wei"`, `"1.5 gwei"`, `"0.01 ether"` into wei.
pub fn parse_wei(text: &str) -> Result<U256, String> {
    let text = text.trim();
    let (number, unit) = match text.split_once(char::is_whitespace) {
        Some((number, unit)) => (number, unit.trim()),
        None => (text, "wei"),
    };
    let decimals: usize = match unit.to_ascii_lowercase().as_str() {
        "wei" => 0,
        "gwei" => 9,
        "ether" | "eth" => 18,
        other => return Err(format!("unknown unit `{other}` (use wei, gwei or ether)")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!("`{text}` is not an amount"));
    }
    if fraction.len() > decimals {
        return Err(format!("`{text}` has more decimals than {unit} allows"));
    }
    let digits = format!("{whole}{fraction:0<decimals$}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not an amount"));
    }
    U256::from_str_radix(&digits, 10).map_err(|_| format!("`{text}` is too large"))
}

/// A currency as written in the config: an ERC-20's address, or "ETH" (the default).
fn token_of(key: &str, text: Option<&str>) -> Result<Address, ConfigError> {
    match text.map(str::trim) {
        None => Ok(Address::ZERO),
        Some(t) if t.eq_ignore_ascii_case("eth") => Ok(Address::ZERO),
        Some(t) => parse_address(key, t),
    }
}

fn parse_address(key: &str, text: &str) -> Result<Address, ConfigError> {
    Address::from_str(text.trim()).map_err(|_| invalid(key, format!("`{text}` is not an address (0x + 40 hex digits)")))
}

impl Config {
    /// Reads, parses and validates a config file; relative paths are taken from its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates config text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;

        let endpoint = match raw.chain.rpc.as_str() {
            "auto" => {
                if raw.chain.judge.is_some() {
                    return Err(invalid("chain.judge", "must not be set with rpc = \"auto\" (the judge is deployed at start)"));
                }
                ChainEndpoint::Auto
            }
            url if url.starts_with("http://") || url.starts_with("https://") => {
                let judge = raw
                    .chain
                    .judge
                    .as_deref()
                    .ok_or_else(|| invalid("chain.judge", "required when chain.rpc is a URL"))?;
                ChainEndpoint::Rpc { url: url.to_owned(), judge: parse_address("chain.judge", judge)? }
            }
            other => return Err(invalid("chain.rpc", format!("`{other}`: use \"auto\" or an http(s):// URL"))),
        };
        if raw.chain.poll_interval_ms == 0 {
            return Err(invalid("chain.poll_interval_ms", "must be positive"));
        }
        if raw.chain.replace_after_secs == 0 {
            return Err(invalid("chain.replace_after_secs", "must be positive"));
        }
        if raw.chain.confirmations.is_some_and(|c| c >= crate::chain::WATCH_DEPTH) {
            return Err(invalid("chain.confirmations", format!("must be below {}", crate::chain::WATCH_DEPTH)));
        }

        let http = raw.http.validate()?;
        let node = raw.node.validate()?;
        let allow = raw
            .peer
            .allow
            .iter()
            .map(|a| parse_address("peer.allow", a))
            .collect::<Result<Vec<_>, _>>()?;

        let mut sell = Vec::new();
        for (i, s) in raw.sell.into_iter().enumerate() {
            let token = token_of(&format!("sell[{i}].token"), s.token.as_deref())?;
            sell.push(SellConfig {
                topic: s.topic,
                price_wei: s.price_wei.0,
                window: s.window,
                t_ack_secs: s.t_ack_secs,
                t_closure_secs: s.t_closure_secs,
                selling: true,
                description: s.description,
                token,
            });
        }

        let mut buy = Vec::new();
        for (i, b) in raw.buy.into_iter().enumerate() {
            let key = |k: &str| format!("buy[{i}].{k}");
            let top_up = match (b.top_up_messages, b.top_up_below_messages, b.max_deposit_wei) {
                (None, None, None) => None,
                (Some(messages), below, Some(max)) => Some(TopUpPolicy { below_messages: below.unwrap_or(messages / 2), messages, max_deposit: max.0 }),
                (None, _, _) => return Err(invalid(key("top_up_messages"), "needed to top up (with max_deposit_wei)")),
                (Some(_), _, None) => return Err(invalid(key("max_deposit_wei"), "needed to top up: the ceiling of the deposit")),
            };
            buy.push(BuyConfig {
                top_up,
                seller: parse_address(&key("seller"), &b.seller)?,
                endpoint: b.endpoint,
                topic: b.topic,
                deposit_wei: b.deposit_wei.0,
                max_price_wei: b.max_price_wei.0,
                local_prefix: b.local_prefix,
                token: token_of(&key("token"), b.token.as_deref())?,
            });
        }

        let external_mqtt = match (raw.mqtt.mode, raw.mqtt.external.clone()) {
            (MqttMode::External, Some(section)) => Some(section.resolve(base, raw.mqtt.max_payload_size)?),
            (MqttMode::External, None) => return Err(invalid("mqtt.external", "required with mode = \"external\" (url = \"mqtt://host:port\")")),
            (MqttMode::Embedded, Some(_)) => return Err(invalid("mqtt.mode", "set mode = \"external\" to use [mqtt.external]")),
            (MqttMode::Embedded, None) => None,
        };
        let key_password = match (raw.key_password_file, raw.key_password_env) {
            (Some(_), Some(_)) => return Err(invalid("key_password_env", "set key_password_file or key_password_env, not both")),
            (Some(file), None) => KeyPassword::File(base.join(file)),
            (None, Some(name)) if name.is_empty() => return Err(invalid("key_password_env", "empty variable name")),
            (None, Some(name)) => KeyPassword::Env(name),
            (None, None) => KeyPassword::None,
        };
        let mut mqtt = raw.mqtt;
        if mqtt.mode == MqttMode::External {
            let set = [
                ("mqtt.password_file", mqtt.password_file.is_some()),
                ("mqtt.allow_anonymous", mqtt.allow_anonymous.is_some()),
                ("mqtt.user", !mqtt.user.is_empty()),
                ("mqtt.acl", !mqtt.acl.is_empty()),
                ("mqtt.tls", mqtt.tls.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
                return Err(invalid(*key, "applies to the embedded broker only: with mode = \"external\", the operator's broker does logins, rules and TLS"));
            }
        }
        mqtt.password_file = mqtt.password_file.map(|f| base.join(f));
        mqtt.access = Access::new(mqtt.password_file.as_deref(), mqtt.allow_anonymous, &mqtt.user, &mqtt.acl)
            .map_err(|(key, message)| invalid(key, message))?;
        if let Some(tls) = &mut mqtt.tls {
            tls.resolve(base).map_err(|(key, message)| invalid(key, message))?;
        }

        let config = Config {
            data_dir: base.join(raw.data_dir),
            key_file: base.join(raw.key_file),
            key_password,
            mqtt,
            external_mqtt,
            chain: ChainConfig {
                endpoint,
                onchain_delay_secs: raw.chain.onchain_delay_secs,
                poll_interval_ms: raw.chain.poll_interval_ms,
                claim_threshold_wei: raw.chain.claim_threshold_wei.map_or(U256::ZERO, |a| a.0),
                confirmations: raw.chain.confirmations,
                replace_after_secs: raw.chain.replace_after_secs,
                cooperative_close: raw.chain.cooperative_close,
                catalogue: raw.chain.catalogue.as_deref().map(|a| parse_address("chain.catalogue", a)).transpose()?,
            },
            peer: PeerConfig { listen: raw.peer.listen, allow, idle_close_secs: raw.peer.idle_close_secs, advertise: raw.peer.advertise },
            http,
            node,
            sell,
            buy,
        };
        config.check_market()?;
        Ok(config)
    }

    /// Checks every sold and bought stream against the rest of the configuration: the file's
    /// entries when it is loaded, and those an operator adds to a running broker (`supra sell`,
    /// `supra buy`, see [`Config::with_sell`]).
    pub fn check_market(&self) -> Result<(), ConfigError> {
        for (i, s) in self.sell.iter().enumerate() {
            let key = |k: &str| format!("sell[{i}].{k}");
            check_filter(&s.topic).map_err(|m| invalid(key("topic"), m))?;
            if s.price_wei.is_zero() {
                return Err(invalid(key("price_wei"), "must be positive"));
            }
            if s.window == 0 {
                return Err(invalid(key("window"), "must be positive"));
            }
            if s.window > self.node.max_backlog {
                // A buyer with a full window in flight would be stopped for lagging.
                return Err(invalid(key("window"), format!("must not exceed node.max_backlog ({})", self.node.max_backlog)));
            }
            if s.t_ack_secs <= self.chain.onchain_delay_secs {
                return Err(invalid(
                    key("t_ack_secs"),
                    format!("must exceed chain.onchain_delay_secs ({}): the seller posts at T_ack - Δ", self.chain.onchain_delay_secs),
                ));
            }
            if s.t_closure_secs == 0 {
                return Err(invalid(key("t_closure_secs"), "must be positive"));
            }
            if s.description.len() > MAX_DESCRIPTION_BYTES {
                return Err(invalid(key("description"), format!("at most {MAX_DESCRIPTION_BYTES} bytes (the catalogue's bound)")));
            }
            if self.sell[..i].iter().any(|other| other.topic == s.topic) {
                return Err(invalid(key("topic"), format!("`{}` is sold twice", s.topic)));
            }
        }
        if !self.sell.is_empty() && self.mqtt.max_payload_size > MAX_SOLD_PAYLOAD_BYTES {
            return Err(invalid(
                "mqtt.max_payload_size",
                format!(
                    "at most {MAX_SOLD_PAYLOAD_BYTES} bytes on a broker that sells: a bigger message, once sealed, exceeds \
                     the judge's {} bytes and could be neither posted on-chain nor used as a defence",
                    supra_judge::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        if !self.sell.is_empty() && self.peer.listen.is_none() {
            return Err(invalid("peer.listen", "required to sell: buyers connect there"));
        }
        if let Some(endpoint) = &self.peer.advertise
            && (endpoint.trim().is_empty() || endpoint.len() > MAX_ENDPOINT_BYTES)
        {
            return Err(invalid("peer.advertise", format!("`host:port`, at most {MAX_ENDPOINT_BYTES} bytes")));
        }
        for (i, b) in self.buy.iter().enumerate() {
            let key = |k: &str| format!("buy[{i}].{k}");
            check_filter(&b.topic).map_err(|m| invalid(key("topic"), m))?;
            if b.local_prefix.contains(['+', '#']) {
                return Err(invalid(key("local_prefix"), "must not contain wildcards"));
            }
            if b.endpoint.trim().is_empty() {
                return Err(invalid(key("endpoint"), "empty"));
            }
            if b.max_price_wei.is_zero() {
                return Err(invalid(key("max_price_wei"), "must be positive"));
            }
            if b.deposit_wei.is_zero() {
                return Err(invalid(key("deposit_wei"), "must be positive"));
            }
            if let Some(top_up) = &b.top_up {
                if top_up.messages == 0 {
                    return Err(invalid(key("top_up_messages"), "must be positive"));
                }
                if top_up.max_deposit < b.deposit_wei {
                    return Err(invalid(key("max_deposit_wei"), "must be at least deposit_wei"));
                }
            }
            if self.buy[..i].iter().any(|other| other.seller == b.seller && other.topic == b.topic) {
                return Err(invalid(key("topic"), format!("`{}` is already bought from {}", b.topic, b.seller)));
            }
        }
        // Republishing bought messages into a sold stream would resell them, possibly in a loop.
        for (i, b) in self.buy.iter().enumerate() {
            let republished = format!("{}{}", b.local_prefix, b.topic);
            if let Some(s) = self.sell.iter().find(|s| overlap(&s.topic, &republished)) {
                return Err(invalid(
                    format!("buy[{i}].local_prefix"),
                    format!("bought messages republished as `{republished}` would be resold by the sold stream `{}`", s.topic),
                ));
            }
        }
        Ok(())
    }

    /// This configuration with one more sold stream, checked as the file's are. An error names the
    /// setting without its `sell[N].` prefix (`price_wei`), as the operator gave it on its own.
    pub fn with_sell(&self, sell: SellConfig) -> Result<Config, ConfigError> {
        let mut config = self.clone();
        config.sell.push(sell);
        let prefix = format!("sell[{}].", config.sell.len() - 1);
        config.check_market().map_err(|e| unprefixed(e, &prefix))?;
        Ok(config)
    }

    /// This configuration with one more bought stream, checked as the file's are (see
    /// [`Config::with_sell`]).
    pub fn with_buy(&self, buy: BuyConfig) -> Result<Config, ConfigError> {
        let mut config = self.clone();
        config.buy.push(buy);
        let prefix = format!("buy[{}].", config.buy.len() - 1);
        config.check_market().map_err(|e| unprefixed(e, &prefix))?;
        Ok(config)
    }
}

fn unprefixed(e: ConfigError, prefix: &str) -> ConfigError {
    match e {
        ConfigError::Invalid { key, message } => ConfigError::Invalid { key: key.strip_prefix(prefix).map_or(key.clone(), str::to_owned), message },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../supra.example.toml");

    #[test]
    fn the_commented_example_is_valid() {
        let config = Config::parse(EXAMPLE, Path::new("/etc/supra")).expect("example parses");
        assert_eq!(config.data_dir, Path::new("/etc/supra/data"));
        assert_eq!(config.sell.len(), 1);
        assert_eq!(config.buy.len(), 1);
    }

    #[test]
    fn confirmations_default_by_chain_kind() {
        let config = Config::parse(EXAMPLE, Path::new("/etc/supra")).expect("example parses");
        assert_eq!(config.chain.confirmations, None, "the example leaves the default");
        assert_eq!(default_confirmations(31337), 0, "Anvil");
        assert_eq!(default_confirmations(1), 3, "Ethereum");
        assert_eq!(default_confirmations(11155111), 3, "Sepolia");
        assert_eq!(default_confirmations(8453), 1, "a rollup");
    }

    #[test]
    fn amounts_take_units() {
        assert_eq!(parse_wei("1000").unwrap(), U256::from(1000));
        assert_eq!(parse_wei("2 gwei").unwrap(), U256::from(2_000_000_000u64));
        assert_eq!(parse_wei("0.5 ether").unwrap(), U256::from(500_000_000_000_000_000u64));
        assert!(parse_wei("1.5 wei").is_err());
        assert!(parse_wei("12 parsecs").is_err());
        assert!(parse_wei("-3").is_err());
        assert!(parse_wei("").is_err());
    }

    #[test]
    fn access_tls_and_keystore_settings() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n";
        let hash = crate::access::PasswordHash::new("pw").to_string();
        let ok = format!("key_password_env = \"PW\"\n{base}[[mqtt.user]]\nname = \"a\"\npassword_hash = \"{hash}\"\n[[mqtt.acl]]\nuser = \"a\"\npublish = [\"s/#\"]\n");
        let config = Config::parse(&ok, Path::new(".")).expect("parses");
        assert!(config.mqtt.access.requires_login());
        assert_eq!(config.key_password, KeyPassword::Env("PW".into()));
        assert!(error_of(&format!("{base}[[mqtt.user]]\nname = \"a\"\npassword_hash = \"plain\"\n")).contains("mqtt.user[0].password_hash"));
        assert!(error_of(&format!("{base}[[mqtt.acl]]\nuser = \"a\"\nsubscribe = [\"a/#/b\"]\n")).contains("mqtt.acl[0].subscribe"));
        assert!(error_of(&format!("{base}password_file = \"/nonexistent/passwd\"\n")).contains("/nonexistent/passwd"));
        let tls = error_of(&format!("{base}[mqtt.tls]\nlisten = \"127.0.0.1:8883\"\ncert_file = \"/nonexistent/server.crt\"\nkey_file = \"k\"\n"));
        assert!(tls.contains("mqtt.tls.cert_file") && tls.contains("/nonexistent/server.crt"), "{tls}");
        let both = format!("key_password_env = \"PW\"\nkey_password_file = \"f\"\n{base}");
        assert!(error_of(&both).contains("key_password_env"));
    }

    fn error_of(text: &str) -> String {
        Config::parse(text, Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_name_their_key() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n";
        assert!(error_of(&format!("{base}[chain]\nrpc = \"http://x\"\n")).contains("chain.judge"));
        assert!(error_of(&format!("{base}[chain]\nrpc = \"ftp://x\"\n")).contains("chain.rpc"));
        assert!(error_of(&format!("{base}[chain]\nconfirmations = 64\n")).contains("chain.confirmations"));
        assert!(error_of(&format!("{base}[chain]\nreplace_after_secs = 0\n")).contains("chain.replace_after_secs"));
        let sell = "[[sell]]\ntopic = \"a/#\"\nprice_wei = 1\n";
        assert!(error_of(&format!("{base}{sell}")).contains("peer.listen"));
        let with_peer = format!("{base}[peer]\nlisten = \"127.0.0.1:7700\"\n");
        assert!(error_of(&format!("{with_peer}[[sell]]\ntopic = \"a/#/b\"\nprice_wei = 1\n")).contains("sell[0].topic"));
        assert!(error_of(&format!("{with_peer}[[sell]]\ntopic = \"a\"\nprice_wei = 0\n")).contains("sell[0].price_wei"));
        assert!(error_of(&format!("{with_peer}{sell}t_ack_secs = 2\n")).contains("t_ack_secs"));
        assert!(error_of(&format!("{base}typo = 1\n")).contains("unknown field"));
        assert!(error_of("[mqtt]\nlisten = \"nowhere\"\n").contains("listen"));
        let resale = format!(
            "{with_peer}[[sell]]\ntopic = \"market/#\"\nprice_wei = 1\n[[buy]]\nseller = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n\
             endpoint = \"x:1\"\ntopic = \"w/#\"\ndeposit_wei = 9\nmax_price_wei = 1\nlocal_prefix = \"market/\"\n"
        );
        assert!(error_of(&resale).contains("buy[0].local_prefix"));
        assert!(error_of(&format!("{base}[http]\nlisten = \"everywhere\"\n")).contains("http.listen"));
        assert!(error_of(&format!("{base}[http]\nsample_interval_ms = 5\n")).contains("http.sample_interval_ms"));
        assert!(error_of(&format!("{base}[http]\nhistory_len = 1\n")).contains("http.history_len"));
        assert!(error_of(&format!("{base}[node]\nworkers = 0\n")).contains("node.workers"));
        assert!(error_of(&format!("{base}[node]\nmax_backlog = 0\n")).contains("node.max_backlog"));
        assert!(error_of(&format!("{base}[node]\nmax_backlog = {}\n", MAX_BACKLOG_LIMIT + 1)).contains("node.max_backlog"));
    }

    #[test]
    fn workers_default_to_the_cores_and_can_be_set() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n";
        let cores = std::thread::available_parallelism().unwrap();
        assert_eq!(Config::parse(base, Path::new(".")).unwrap().node.workers, cores);
        let one = Config::parse(&format!("{base}[node]\nworkers = 1\n"), Path::new(".")).unwrap();
        assert_eq!(one.node.workers.get(), 1);
        assert_eq!(one.node.max_backlog, 65_536, "the default stays when only workers is set");
    }

    #[test]
    fn max_backlog_can_be_set_and_is_at_least_every_window() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n[peer]\nlisten = \"127.0.0.1:1884\"\n";
        let sell = |window: u64| format!("[[sell]]\ntopic = \"s/#\"\nprice_wei = 1\nwindow = {window}\n");
        let set = Config::parse(&format!("{base}[node]\nmax_backlog = 500000\n{}", sell(4096)), Path::new(".")).unwrap();
        assert_eq!((set.node.max_backlog, set.node.workers), (500_000, NodeConfig::default().workers));
        let error = error_of(&format!("{base}[node]\nmax_backlog = 1000\n{}", sell(4096)));
        assert!(error.contains("sell[0].window") && error.contains("node.max_backlog (1000)"), "{error}");
    }

    #[test]
    fn the_http_server_is_on_loopback_by_default_and_can_be_turned_off() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n";
        let default = Config::parse(base, Path::new(".")).unwrap();
        assert_eq!(default.http, HttpConfig::default());
        assert!(default.http.listen.is_some_and(|a| a.ip().is_loopback()));
        assert_eq!(default.mqtt.sys_interval_secs, 5);
        let off = Config::parse(&format!("{base}sys_interval_secs = 0\n[http]\nlisten = \"off\"\n"), Path::new(".")).unwrap();
        assert_eq!(off.http.listen, None);
        assert_eq!(off.mqtt.sys_interval_secs, 0);
        let example = Config::parse(EXAMPLE, Path::new("/etc/supra")).unwrap();
        assert_eq!(example.http.listen, Some("127.0.0.1:9811".parse().unwrap()));
    }

    #[test]
    fn a_seller_accepts_no_payload_it_could_not_post() {
        let peer = "[peer]\nlisten = \"127.0.0.1:7700\"\n[[sell]]\ntopic = \"a/#\"\nprice_wei = 1\n";
        let config = Config::parse(&format!("[mqtt]\nlisten = \"127.0.0.1:1883\"\n{peer}"), Path::new(".")).unwrap();
        assert_eq!(config.mqtt.max_payload_size, MAX_SOLD_PAYLOAD_BYTES, "the default fits a post");
        let big = format!("[mqtt]\nlisten = \"127.0.0.1:1883\"\nmax_payload_size = 262144\n{peer}");
        assert!(error_of(&big).contains("mqtt.max_payload_size"));
        let fits = format!("[mqtt]\nlisten = \"127.0.0.1:1883\"\nmax_payload_size = {MAX_SOLD_PAYLOAD_BYTES}\n{peer}");
        assert!(Config::parse(&fits, Path::new(".")).is_ok());
        // A broker that only buys takes what its local clients publish.
        let buyer_only = "[mqtt]\nlisten = \"127.0.0.1:1883\"\nmax_payload_size = 262144\n";
        assert!(Config::parse(buyer_only, Path::new(".")).is_ok());
    }

    #[test]
    fn top_ups_are_configured_per_buy_with_a_ceiling() {
        let base = "[mqtt]\nlisten = \"127.0.0.1:1883\"\n[[buy]]\nseller = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n\
                    endpoint = \"x:1\"\ntopic = \"w/#\"\ndeposit_wei = 100\nmax_price_wei = 1\nlocal_prefix = \"in/\"\n";
        let config = Config::parse(base, Path::new(".")).unwrap();
        assert_eq!(config.buy[0].top_up, None, "off unless asked for");
        let on = format!("{base}top_up_messages = 50\ntop_up_below_messages = 10\nmax_deposit_wei = \"1000\"\n");
        let config = Config::parse(&on, Path::new(".")).unwrap();
        assert_eq!(
            config.buy[0].top_up,
            Some(TopUpPolicy { below_messages: 10, messages: 50, max_deposit: U256::from(1000) })
        );
        assert!(error_of(&format!("{base}top_up_messages = 50\n")).contains("buy[0].max_deposit_wei"));
        assert!(error_of(&format!("{base}max_deposit_wei = 1000\n")).contains("buy[0].top_up_messages"));
        assert!(error_of(&format!("{base}top_up_messages = 5\nmax_deposit_wei = 99\n")).contains("buy[0].max_deposit_wei"));
        assert!(error_of(&format!("{base}top_up_messages = 0\nmax_deposit_wei = 1000\n")).contains("buy[0].top_up_messages"));
    }

    #[test]
    fn an_external_broker_is_named_by_url_and_checked() {
        let external = |section: &str| format!("[mqtt]\nmode = \"external\"\n[mqtt.external]\n{section}");
        let config = Config::parse(&external("url = \"mqtt://broker.local:1884\"\nusername = \"u\"\npassword_env = \"PATH\"\n"), Path::new(".")).unwrap();
        let e = config.external_mqtt.expect("external");
        assert_eq!((e.host.as_str(), e.port, e.tls, e.username.as_deref()), ("broker.local", 1884, false, Some("u")));
        assert!(e.password.is_some_and(|p| !p.is_empty()));
        assert_eq!(Config::parse(&external("url = \"mqtt://h\"\n"), Path::new(".")).unwrap().external_mqtt.unwrap().port, 1883);
        assert!(error_of(&external("url = \"http://h:1\"\n")).contains("mqtt.external.url"));
        assert!(error_of(&external("url = \"mqtt://h:x\"\n")).contains("mqtt.external.url"));
        assert!(error_of(&external("url = \"mqtts://h:8883\"\n")).contains("mqtt.external.ca_file"));
        assert!(error_of(&external("url = \"mqtts://h\"\nca_file = \"/nonexistent.pem\"\n")).contains("nonexistent.pem"));
        assert!(error_of(&external("url = \"mqtt://h\"\npassword_env = \"SUPRA_SURELY_UNSET_VAR\"\nusername = \"u\"\n")).contains("SUPRA_SURELY_UNSET_VAR"));
        assert!(error_of(&external("url = \"mqtt://h\"\npassword_env = \"PATH\"\n")).contains("mqtt.external.username"));
        assert!(error_of("[mqtt]\nmode = \"external\"\n").contains("mqtt.external"));
        assert!(error_of("[mqtt]\n[mqtt.external]\nurl = \"mqtt://h\"\n").contains("mqtt.mode"));
        assert!(error_of("[mqtt]\nmode = \"sideways\"\n").contains("sideways"));
        // Logins, rules and TLS are the embedded broker's; the external one has its own.
        let acl = "[mqtt]\nmode = \"external\"\n[[mqtt.acl]]\nuser = \"a\"\n[mqtt.external]\nurl = \"mqtt://h\"\n";
        assert!(error_of(acl).contains("mqtt.acl"), "{}", error_of(acl));
    }
}
