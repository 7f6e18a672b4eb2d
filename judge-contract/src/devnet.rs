//! A local Anvil chain the project starts by itself: for `rpc = "auto"`, `supra demo` and the tests.
//!
//! Anvil is found, in order, at `$SUPRA_ANVIL`, at the project's pinned `tools/bin/anvil` (installed by
//! `scripts/install-tools`), or on `PATH`. It listens on a free loopback port; its funded dev keys are
//! read from its banner. The process is killed when the [`Devnet`] is dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy::primitives::{Address, B256};

/// How long Anvil may take to print its listening address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a devnet could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("cannot start anvil at {path}: {source} (run scripts/install-tools, or set SUPRA_ANVIL)")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("anvil exited or printed no listening address within {0:?}")]
    NoAddress(Duration),
    #[error("anvil printed an unreadable private key: {0}")]
    BadKey(String),
}

/// A running Anvil process with its endpoint and funded dev keys.
#[derive(Debug)]
pub struct Devnet {
    child: Child,
    endpoint: String,
    keys: Vec<B256>,
    chain_id: u64,
}

/// Options for [`Devnet::spawn_with`].
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Number of funded dev accounts.
    pub accounts: u32,
    /// Balance of each, in ether.
    pub balance_eth: u64,
    /// Seconds between blocks; `None` mines a block per transaction (Anvil's automine).
    pub block_time_secs: Option<u64>,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        DevnetOptions { accounts: 10, balance_eth: 10_000, block_time_secs: None }
    }
}

/// Where to find the `anvil` binary (see the module docs).
pub fn anvil_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SUPRA_ANVIL") {
        return PathBuf::from(path);
    }
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/bin/anvil");
    if pinned.exists() {
        return pinned;
    }
    PathBuf::from("anvil")
}

impl Devnet {
    /// Starts Anvil with default options.
    pub fn spawn() -> Result<Devnet, DevnetError> {
        Devnet::spawn_with(&DevnetOptions::default())
    }

    /// Starts Anvil on a free loopback port and waits until it listens.
    pub fn spawn_with(options: &DevnetOptions) -> Result<Devnet, DevnetError> {
        let path = anvil_path();
        let mut command = Command::new(&path);
        command
            .args(["--host", "127.0.0.1", "--port", "0", "--hardfork", "prague"])
            .args(["--accounts", &options.accounts.to_string()])
            .args(["--balance", &options.balance_eth.to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(secs) = options.block_time_secs {
            command.args(["--block-time", &secs.to_string()]);
        }
        let mut child = command.spawn().map_err(|source| DevnetError::Spawn { path, source })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(DevnetError::NoAddress(STARTUP_TIMEOUT));
        };

        // Read the banner on a thread that keeps draining stdout afterwards: Anvil logs every
        // transaction, and a closed pipe would make it fail.
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("anvil-stdout".into())
            .spawn(move || {
                let mut banner = Some(lines_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &banner {
                        let done = line.starts_with("Listening on");
                        if tx.send(line).is_err() || done {
                            banner = None;
                        }
                    }
                }
            })
            .map_err(|source| DevnetError::Spawn { path: anvil_path(), source })?;

        let mut keys = Vec::new();
        let mut chain_id = 31337;
        let mut next_is_chain_id = false;
        let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
        let endpoint = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = lines_rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DevnetError::NoAddress(STARTUP_TIMEOUT));
            };
            let line = line.trim();
            if let Some(address) = line.strip_prefix("Listening on") {
                break format!("http://{}", address.trim());
            }
            if next_is_chain_id && !line.is_empty() && !line.starts_with('=') {
                chain_id = line.parse().unwrap_or(chain_id);
                next_is_chain_id = false;
            }
            if line == "Chain ID" {
                next_is_chain_id = true;
            }
            // "(0) 0xac09…" lines carry 32-byte private keys (the address lines carry 20 bytes).
            if line.starts_with('(') {
                if let Some(hex) = line.split_whitespace().nth(1) {
                    if hex.len() == 66 {
                        let key = hex.parse::<B256>().map_err(|_| DevnetError::BadKey(hex.into()))?;
                        keys.push(key);
                    }
                }
            }
        };
        Ok(Devnet { child, endpoint, keys, chain_id })
    }

    /// HTTP JSON-RPC endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The chain id Anvil reports (31337 by default).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Private keys of the funded dev accounts.
    pub fn keys(&self) -> &[B256] {
        &self.keys
    }

    /// Address of dev account `index`.
    pub fn address(&self, index: usize) -> Option<Address> {
        let key = self.keys.get(index)?;
        alloy::signers::local::PrivateKeySigner::from_bytes(key).ok().map(|s| s.address())
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------------
// The market's contracts on a devnet (issue 14), deployed next to the judge
// ------------------------------------------------------------------------------------------------

/// Deploys the test stablecoin (`SupraTestToken`: ERC-20 with EIP-2612 permit, 6 decimals) with
/// `judge`'s account and mints `amount` (smallest unit) to each of `holders`.
pub async fn deploy_test_token(
    judge: &crate::Judge,
    holders: &[Address],
    amount: alloy::primitives::U256,
) -> Result<crate::market::TestToken, crate::JudgeError> {
    let token = crate::market::TestToken::deploy(judge).await?;
    for holder in holders {
        token.mint(*holder, amount).await?;
    }
    Ok(token)
}

/// Deploys an offer catalogue serving `judge`'s contract, with `judge`'s account.
pub async fn deploy_catalogue(judge: &crate::Judge) -> Result<crate::market::Catalogue, crate::JudgeError> {
    crate::market::Catalogue::deploy(judge).await
}
