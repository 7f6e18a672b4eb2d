//! The `supra` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy_primitives::{Address, B256, U256};
use clap::{Parser, Subcommand};

use crate::admin::{Answer, Request};
use crate::config::Config;
use crate::{Broker, keys, status};

/// Supra: an MQTT broker that sells and buys live topic streams from other brokers, paid per
/// message through an Ethereum judge contract.
#[derive(Debug, Parser)]
#[command(name = "supra", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run a broker.
    Run {
        /// The broker's TOML configuration (reference: broker/supra.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration without starting anything: parse and validate it, load the key, and
    /// check the sold terms against the judge's bounds. Exits non-zero with the first problem.
    Check {
        /// The TOML configuration to check.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Make a new broker key (secp256k1) and print its address.
    Keygen {
        /// Where to write the key (readable by the owner only).
        #[arg(long, short, default_value = "broker.key")]
        out: PathBuf,
        /// Write an encrypted JSON keystore (v3, scrypt) rather than hex. Its password comes from
        /// --password-file or --password-env, else from the terminal (twice) or standard input.
        #[arg(long)]
        keystore: bool,
        #[command(flatten)]
        password: PasswordArgs,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the address of a key file.
    Address {
        /// The key file (hex or keystore).
        #[arg(long, short, default_value = "broker.key")]
        key: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Deploy the judge contract and print its address.
    Deploy {
        /// JSON-RPC URL of the chain.
        #[arg(long)]
        rpc: String,
        /// Key file of the deploying account (pays the gas; hex or keystore).
        #[arg(long, short)]
        key: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Add a user to an MQTT password file (mosquitto_passwd's format; created if missing), or
    /// change its password. The password is read from the terminal (twice) or standard input.
    Passwd {
        /// The password file (`mqtt.password_file`).
        file: PathBuf,
        /// The user name.
        user: String,
    },
    /// Show the channels of a running broker: messages, acks, cost, claimed, deposit.
    Channels {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Close a channel of a running broker: stop it off-chain, claim, and settle after T_closure.
    Close {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The channel id as `supra channels` prints it: the full `0x…` id (from `--json` or the
        /// logs), or the table's short id (`0x1b79b39f…`) if no other channel starts the same way.
        channel: String,
    },
    /// Sell a topic stream from a running broker, now and after restarts (no config edit). A
    /// stopped stream is sold again, on its first terms.
    Sell {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The topic filter sold (local publishes matching it are signed and sold).
        topic: String,
        /// Price per message: wei, or with a unit ("2 gwei", "0.001 ether").
        #[arg(long, value_parser = parse_amount)]
        price: U256,
        /// The window W: at most this many unacknowledged messages per buyer.
        #[arg(long, default_value_t = crate::config::DEFAULT_WINDOW)]
        window: u64,
        /// T_ack in seconds: how long a message may go unacknowledged before it is posted.
        #[arg(long, default_value_t = crate::config::DEFAULT_T_ACK_SECS)]
        t_ack: u32,
        /// T_closure in seconds: the closing window of a channel.
        #[arg(long, default_value_t = crate::config::DEFAULT_T_CLOSURE_SECS)]
        t_closure: u32,
        /// What the offer catalogue says of the stream (at most 280 bytes).
        #[arg(long, default_value = "")]
        description: String,
        /// Priced in this ERC-20 (with EIP-2612 permit, e.g. a stablecoin), in its smallest unit
        /// (--price is then a plain integer). Default: ETH, in wei.
        #[arg(long)]
        token: Option<Address>,
    },
    /// Buy a topic stream from another broker, now and after restarts (no config edit): name it
    /// by its catalogue entry (--stream, see `supra offers`), or by its topic, --seller and
    /// --endpoint.
    Buy {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The topic filter bought, as the seller sells it (with --stream: the catalogue's).
        topic: Option<String>,
        /// The stream's id in the offer catalogue (`supra offers`): its seller, endpoint and topic
        /// come from its ad.
        #[arg(long, conflicts_with_all = ["seller", "endpoint"])]
        stream: Option<B256>,
        /// The seller broker's address.
        #[arg(long, required_unless_present = "stream")]
        seller: Option<Address>,
        /// Where the seller's peer listener is (host:port).
        #[arg(long, required_unless_present = "stream")]
        endpoint: Option<String>,
        /// Locked in the judge when the channel opens: wei, or with a unit ("0.01 ether").
        #[arg(long, value_parser = parse_amount)]
        deposit: U256,
        /// The highest price per message accepted: wei, or with a unit (with --stream: the
        /// catalogue's price by default).
        #[arg(long, value_parser = parse_amount, required_unless_present = "stream")]
        max_price: Option<U256>,
        /// Prefix of the local topic bought messages are republished on.
        #[arg(long, default_value = "")]
        local_prefix: String,
        /// Pays in this ERC-20 (amounts in its smallest unit); the deposit is pulled with an
        /// EIP-2612 permit the broker key signs. Default: ETH (with --stream: the ad's currency).
        #[arg(long)]
        token: Option<Address>,
        /// Tops the deposit up by this many messages' worth when it runs low (needs --max-deposit).
        #[arg(long)]
        top_up_messages: Option<u64>,
        /// The deposit never grows past this (with --top-up-messages).
        #[arg(long, value_parser = parse_amount)]
        max_deposit: Option<U256>,
    },
    /// List the live offers of the catalogue (`[chain] catalogue`): no peer connection needed.
    Offers {
        /// A configuration naming the chain and the catalogue (`supra run` need not be running).
        #[arg(long, short)]
        config: PathBuf,
        /// Only offers whose topic filter overlaps this one.
        #[arg(long)]
        topic: Option<String>,
        /// Only offers at most this price per message: wei, or with a unit.
        #[arg(long, value_parser = parse_amount)]
        max_price: Option<U256>,
        /// Only this seller's offers.
        #[arg(long)]
        seller: Option<Address>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop selling a topic: no new buyers; its channels are closed and settled.
    StopSelling {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The sold topic filter.
        topic: String,
    },
    /// Stop buying a topic: its channel is closed and settled, and it is not bought again.
    StopBuying {
        /// The running broker's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The bought topic filter.
        topic: String,
        /// The seller, if the topic is bought from several.
        #[arg(long)]
        seller: Option<Address>,
    },
    /// Run the demo: a private Anvil with the judge, two brokers, a publisher and a subscriber.
    Demo(crate::demo::DemoOptions),
}

fn parse_amount(text: &str) -> Result<U256, String> {
    crate::config::parse_wei(text)
}

/// Where the password of a keystore comes from on the command line.
#[derive(Debug, clap::Args)]
struct PasswordArgs {
    /// A file whose first line is the keystore's password.
    #[arg(long, conflicts_with = "password_env")]
    password_file: Option<PathBuf>,
    /// An environment variable holding the keystore's password.
    #[arg(long)]
    password_env: Option<String>,
}

impl PasswordArgs {
    fn source(&self) -> keys::KeyPassword {
        match (&self.password_file, &self.password_env) {
            (Some(file), _) => keys::KeyPassword::File(file.clone()),
            (None, Some(name)) => keys::KeyPassword::Env(name.clone()),
            (None, None) => keys::KeyPassword::None,
        }
    }
}

/// Reads a new password: from the terminal without echo (asked twice), else the first line of
/// standard input.
fn new_password(what: &str) -> Result<String, String> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password(format!("{what}: ")).map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password(format!("{what} again: ")).map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a log file or a journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).try_init();
}

/// Waits for SIGTERM (what service managers and `kill` send) or SIGINT (Ctrl-C).
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("supra: {message}");
    ExitCode::FAILURE
}

/// Entry point of the `supra` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::Run { config } => {
            init_logging("info,rmqtt=warn,rmqtt_retainer=warn");
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            runtime().block_on(async move {
                let mut broker = match Broker::start(config).await {
                    Ok(broker) => broker,
                    Err(e) => return fail(e),
                };
                let signal = tokio::select! {
                    result = &mut broker.node => return match result {
                        Ok(Ok(())) => ExitCode::SUCCESS,
                        Ok(Err(e)) => fail(format!("stopped: {e}")),
                        Err(e) => fail(format!("stopped: {e}")),
                    },
                    signal = stop_signal() => signal,
                };
                tracing::info!("{signal}: stopping gracefully (send it again to stop at once)");
                tokio::select! {
                    result = broker.shutdown() => match result {
                        Ok(()) => {
                            tracing::info!("stopped cleanly; restart to resume");
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(format!("stopping: {e}")),
                    },
                    signal = stop_signal() => {
                        // What was committed stays committed: a restart resumes from there, as
                        // after a crash.
                        eprintln!("supra: {signal} again: stopped at once; restart to resume");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Commands::Check { config } => match check(&config) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Commands::Keygen { out, keystore, password, force } => {
            let (secret, key) = keys::generate();
            let written = if keystore {
                let password = match password.source().read() {
                    Ok(Some(p)) => Ok(p),
                    Ok(None) => new_password("keystore password"),
                    Err(e) => Err(e.to_string()),
                };
                match password {
                    Ok(p) => keys::write_keystore(&out, &secret, &p, force),
                    Err(e) => return fail(e),
                }
            } else {
                keys::write(&out, &secret, force)
            };
            match written {
                Ok(()) => {
                    println!("{}", key.address());
                    eprintln!("wrote {} (keep it secret; fund this address to pay gas)", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Commands::Address { key, password } => match keys::load_any(&key, &password.source()) {
            Ok((key, _)) => {
                println!("{}", key.address());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Commands::Passwd { file, user } => {
            match new_password(&format!("password of {user}")).and_then(|p| crate::access::set_password(&file, &user, &p)) {
                Ok(()) => {
                    eprintln!("{user} set in {}", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Commands::Deploy { rpc, key, password } => {
            let secret = match keys::load_any(&key, &password.source()) {
                Ok((_, secret)) => B256::from(secret),
                Err(e) => return fail(e),
            };
            runtime().block_on(async move {
                match supra_judge::Judge::deploy(&rpc, &secret).await {
                    Ok(judge) => {
                        println!("{}", judge.address());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("deploy: {e}")),
                }
            })
        }
        Commands::Channels { config, json } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            runtime().block_on(async move {
                match crate::admin::ask(&config.data_dir, &Request::Channels).await {
                    Ok(Answer::Channels(lines)) => {
                        if json {
                            println!("{}", serde_json::to_string_pretty(&lines).unwrap_or_default());
                        } else {
                            print!("{}", status::table(&lines));
                        }
                        ExitCode::SUCCESS
                    }
                    Ok(Answer::Error(e)) => fail(e),
                    Ok(other) => fail(format!("unexpected answer {other:?}")),
                    Err(e) => fail(e),
                }
            })
        }
        Commands::Close { config, channel } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            runtime().block_on(async move {
                let known = match crate::admin::ask(&config.data_dir, &Request::Channels).await {
                    Ok(Answer::Channels(lines)) => lines.into_iter().map(|l| l.channel).collect::<Vec<_>>(),
                    Ok(Answer::Error(e)) => return fail(e),
                    Ok(other) => return fail(format!("unexpected answer {other:?}")),
                    Err(e) => return fail(e),
                };
                let channel = match status::resolve_channel(&channel, &known) {
                    Ok(channel) => channel,
                    Err(e) => return fail(e),
                };
                match crate::admin::ask(&config.data_dir, &Request::Close { channel }).await {
                    Ok(Answer::Closing) => {
                        println!("closing {channel}: stopped off-chain; the broker claims and settles after T_closure");
                        ExitCode::SUCCESS
                    }
                    Ok(Answer::Error(e)) => fail(e),
                    Ok(other) => fail(format!("unexpected answer {other:?}")),
                    Err(e) => fail(e),
                }
            })
        }
        Commands::Sell { config, topic, price, window, t_ack, t_closure, description, token } => {
            let order = crate::market::SellOrder {
                topic,
                price_wei: price,
                window,
                t_ack_secs: t_ack,
                t_closure_secs: t_closure,
                description,
                token: token.unwrap_or_default(),
            };
            ask_market(&config, Request::Sell(order))
        }
        Commands::Buy { config, topic, stream, seller, endpoint, deposit, max_price, local_prefix, token, top_up_messages, max_deposit } => {
            let (seller, endpoint, topic, max_price, token) = match (stream, seller, endpoint, topic, max_price) {
                (Some(stream), _, _, topic, max_price) => {
                    let listed = match runtime().block_on(offers(&config, &supra_judge::market::OfferFilter::default())) {
                        Ok(listed) => listed,
                        Err(e) => return fail(e),
                    };
                    let Some(ad) = listed.into_iter().map(|l| l.ad).find(|ad| ad.stream.as_b256() == stream) else {
                        return fail(format!("stream {stream} is not offered in the catalogue (see `supra offers`)"));
                    };
                    if topic.as_ref().is_some_and(|t| *t != ad.topic_filter) {
                        return fail(format!("stream {stream} sells `{}`, not `{}`", ad.topic_filter, topic.unwrap_or_default()));
                    }
                    if token.is_some_and(|t| t != ad.token) {
                        return fail(format!("stream {stream} is priced in {}, not in {}", currency(ad.token), currency(token.unwrap_or_default())));
                    }
                    (ad.seller(), ad.endpoint, ad.topic_filter, max_price.unwrap_or(ad.price), ad.token)
                }
                (None, Some(seller), Some(endpoint), Some(topic), Some(max_price)) => (seller, endpoint, topic, max_price, token.unwrap_or_default()),
                (None, _, _, None, _) => return fail("name the topic bought (or the catalogue's --stream)"),
                _ => return fail("give --seller, --endpoint and --max-price (or the catalogue's --stream)"),
            };
            let order = crate::market::BuyOrder {
                seller,
                endpoint,
                topic,
                deposit_wei: deposit,
                max_price_wei: max_price,
                local_prefix,
                top_up_messages,
                max_deposit_wei: max_deposit,
                token,
            };
            ask_market(&config, Request::Buy(order))
        }
        Commands::Offers { config, topic, max_price, seller, json } => {
            let filter = supra_judge::market::OfferFilter { topic, max_price, seller, ..Default::default() };
            match runtime().block_on(offers(&config, &filter)) {
                Ok(listed) if json => {
                    let rows: Vec<serde_json::Value> = listed.iter().map(|l| offer_json(&l.ad)).collect();
                    println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(listed) => {
                    print!("{}", offers_table(&listed));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Commands::StopSelling { config, topic } => ask_market(&config, Request::StopSelling { topic }),
        Commands::StopBuying { config, topic, seller } => ask_market(&config, Request::StopBuying { topic, seller }),
        Commands::Demo(options) => {
            init_logging("warn");
            runtime().block_on(async move {
                tokio::select! {
                    result = crate::demo::run(options) => match result {
                        Ok(_) => ExitCode::SUCCESS,
                        Err(e) => fail(format!("demo failed: {e}")),
                    },
                    // Dropping the demo stops its Anvil; its brokers' state is a throwaway.
                    signal = stop_signal() => fail(format!("demo stopped by {signal}")),
                }
            })
        }
    }
}

/// The catalogue's live offers passing `filter`, read from the chain `config` names (with a
/// throwaway key: reading needs no account).
async fn offers(config: &std::path::Path, filter: &supra_judge::market::OfferFilter) -> Result<Vec<supra_judge::market::Listed>, String> {
    let config = Config::load(config).map_err(|e| e.to_string())?;
    let catalogue = config.chain.catalogue.ok_or("no offer catalogue in this configuration: set [chain] catalogue = \"0x…\"")?;
    let crate::config::ChainEndpoint::Rpc { url, judge } = &config.chain.endpoint else {
        return Err("rpc = \"auto\" is a private chain of the running broker: give [chain] rpc and judge to read a catalogue".into());
    };
    let reader = supra_judge::Judge::connect(url, &B256::from(crate::keys::generate().0), *judge).await.map_err(|e| e.to_string())?;
    let catalogue = supra_judge::market::Catalogue::connect(&reader, catalogue).await.map_err(|e| e.to_string())?;
    catalogue.offers(filter).await.map_err(|e| e.to_string())
}

fn currency(token: Address) -> String {
    if token == Address::ZERO { "wei (ETH)".into() } else { format!("of token {token}") }
}

fn offer_json(ad: &supra_judge::market::Ad) -> serde_json::Value {
    serde_json::json!({
        "stream": ad.stream.as_b256().to_string(),
        "seller": ad.seller().to_string(),
        "topic": ad.topic_filter,
        "price": ad.price.to_string(),
        "token": ad.token.to_string(),
        "window": ad.window,
        "t_ack_secs": ad.t_ack_secs,
        "t_closure_secs": ad.t_closure_secs,
        "endpoint": ad.endpoint,
        "description": ad.description,
    })
}

/// The offers as `supra offers` prints them: one block per offer.
fn offers_table(listed: &[supra_judge::market::Listed]) -> String {
    if listed.is_empty() {
        return "no live offer\n".into();
    }
    let mut out = String::new();
    for l in listed {
        let ad = &l.ad;
        out += &format!(
            "{}  {}\n  stream {}\n  seller {} at {}\n  price {} {} a message; W {}, T_ack {} s, T_closure {} s\n",
            ad.topic_filter,
            ad.description,
            ad.stream.as_b256(),
            ad.seller(),
            ad.endpoint,
            ad.price,
            currency(ad.token),
            ad.window,
            ad.t_ack_secs,
            ad.t_closure_secs
        );
    }
    out
}

/// Sends a market request to the broker running with `config` and prints what it did.
fn ask_market(config: &std::path::Path, request: Request) -> ExitCode {
    let config = match Config::load(config) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    runtime().block_on(async move {
        match crate::admin::ask(&config.data_dir, &request).await {
            Ok(Answer::Done(said)) => {
                println!("{said}");
                ExitCode::SUCCESS
            }
            Ok(Answer::Error(e)) => fail(e),
            Ok(other) => fail(format!("unexpected answer {other:?}")),
            Err(e) => fail(e),
        }
    })
}

/// `supra check`: what `supra run` checks before it binds or dials anything, and a summary.
fn check(path: &std::path::Path) -> Result<String, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let (key, _) = keys::load_any(&config.key_file, &config.key_password).map_err(|e| e.to_string())?;
    crate::check_judge_limits(&crate::judge_limits_built_for(), &config.sell)?;
    let chain = match &config.chain.endpoint {
        crate::config::ChainEndpoint::Auto => "a private Anvil started with the broker (rpc = \"auto\")".to_owned(),
        crate::config::ChainEndpoint::Rpc { url, judge } => format!("{url}, judge {judge}"),
    };
    let mut out = format!("{}: OK\n  broker address {}\n  chain: {chain}\n", path.display(), key.address());
    match &config.external_mqtt {
        Some(e) => out += &format!("  MQTT: client of the external broker at {}:{}{}", e.host, e.port, if e.tls { " (TLS)" } else { "" }),
        None => {
            out += &format!("  MQTT on {}", config.mqtt.listen);
            if let Some(v5) = config.mqtt.listen_v5 {
                out += &format!(" and {v5}");
            }
            if let Some(tls) = &config.mqtt.tls {
                let mutual = if tls.client_ca_file.is_some() { ", client certificates required" } else { "" };
                out += &format!(", TLS on {}{mutual}", tls.listen);
            }
            out += if config.mqtt.access.requires_login() { " (logins required)" } else { " (no login required)" };
        }
    }
    out += &format!("\n  peer listener: {}\n", config.peer.listen.map_or("none (buys only)".to_owned(), |a| a.to_string()));
    out += &format!("  dashboard and metrics: {}\n", config.http.listen.map_or("off".to_owned(), |a| format!("http://{a}/ (/metrics)")));
    for s in &config.sell {
        out += &format!("  sells `{}` at {} wei per message (W {}, T_ack {} s, T_closure {} s)\n", s.topic, s.price_wei, s.window, s.t_ack_secs, s.t_closure_secs);
    }
    for b in &config.buy {
        out += &format!("  buys `{}` from {} at {} (deposit {} wei, at most {} wei per message)\n", b.topic, b.seller, b.endpoint, b.deposit_wei, b.max_price_wei);
    }
    out += &format!("  state in {}\n", config.data_dir.display());
    Ok(out)
}
