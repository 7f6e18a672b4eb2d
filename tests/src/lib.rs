//! Shared helpers of Supra's end-to-end tests.
//!
//! * [`anvil`]: one Anvil per test binary, spawned on first use and killed when the process exits.
//! * [`deploy_judge`] and [`Party`]: a judge per test, fresh funded accounts per case, every
//!   transaction's fee recorded so that payouts can be measured from balances net of gas.
//! * [`advance_to`]: moves the chain's clock (Anvil's `evm_increaseTime` + `evm_mine`) so that
//!   `block.timestamp` is never behind the engines' injected clock.
//! * [`payouts`]: what the judge paid to a channel's seller and buyer, from its own events.
//! * [`property`]: runs a proptest property with a bounded, counted and reported number of cases.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use supra_channel::sign::Keypair;
use supra_channel::types::{ChannelId, UnixMs};
use supra_judge::devnet::{Devnet, DevnetOptions};
use supra_judge::{Judge, JudgeError, JudgeEvent, Receipt};

// ---- the shared Anvil -----------------------------------------------------------------------

static DEVNET: Mutex<Option<Devnet>> = Mutex::new(None);
static ENDPOINT: OnceLock<String> = OnceLock::new();

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn stop_anvil() {
    // Statics are never dropped: kill Anvil when the test binary exits (pass or fail).
    if let Ok(mut devnet) = DEVNET.lock() {
        devnet.take();
    }
}

/// The JSON-RPC endpoint of this test binary's Anvil (spawned on the first call).
pub fn anvil() -> &'static str {
    ENDPOINT.get_or_init(|| {
        let devnet = Devnet::spawn_with(&DevnetOptions {
            accounts: 1,
            ..DevnetOptions::default()
        })
        .expect("anvil starts (run scripts/install-tools)");
        let endpoint = devnet.endpoint().to_owned();
        *DEVNET.lock().expect("devnet lock") = Some(devnet);
        // SAFETY: registers a plain `extern "C" fn()` with the C runtime; it only takes the devnet
        // out of its mutex and drops it (kills the child process).
        unsafe { atexit(stop_anvil) };
        endpoint
    })
}

/// Serialises the cases of all the properties of a test binary: they share one chain, hence one
/// clock, and a case that moves time (`evm_increaseTime`) must not move it under another case's
/// feet. Hold it for a whole case.
pub fn chain_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed case poisons the lock; the chain itself is still fine for the next one.
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- accounts and the judge -------------------------------------------------------------------

/// A fresh secp256k1 secret, never handed out before in this process.
pub fn fresh_secret() -> B256 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut seed = Vec::new();
    seed.extend_from_slice(b"supra-tests");
    seed.extend_from_slice(&std::process::id().to_be_bytes());
    seed.extend_from_slice(&n.to_be_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    seed.extend_from_slice(&nanos.to_be_bytes());
    keccak256(&seed)
}

/// Gives `account` `eth` ether on the devnet (`anvil_setBalance`: no transaction, no nonce).
pub async fn fund(account: Address, eth: u64) {
    let url = anvil().parse().expect("endpoint URL");
    let provider = ProviderBuilder::new().connect_http(url);
    let wei = U256::from(eth) * U256::from(10u64).pow(U256::from(18u64));
    let _: () = provider
        .raw_request("anvil_setBalance".into(), (account, wei))
        .await
        .expect("anvil_setBalance");
}

/// Makes `judge` poll for receipts every 10 ms instead of alloy's 250 ms for local nodes: Anvil
/// mines each transaction at once, and a missed first look would otherwise cost a quarter second.
pub fn quick(judge: &Judge) {
    judge
        .provider()
        .client()
        .set_poll_interval(std::time::Duration::from_millis(10));
}

/// Deploys a judge from a fresh funded account and returns it connected as that account (use it
/// as a third party: settle or resolve on anyone's behalf).
pub async fn deploy_judge() -> Judge {
    let secret = fresh_secret();
    let key = Keypair::from_secret_bytes(&secret.0).expect("valid secret");
    fund(key.address(), 1_000).await;
    let judge = Judge::deploy(anvil(), &secret).await.expect("judge deploys");
    quick(&judge);
    judge
}

/// Something a judge call returns, with the receipt of its transaction.
pub trait Mined {
    /// The receipt.
    fn receipt(&self) -> &Receipt;
}

impl Mined for Receipt {
    fn receipt(&self) -> &Receipt {
        self
    }
}

impl Mined for (ChannelId, Receipt) {
    fn receipt(&self) -> &Receipt {
        &self.1
    }
}

/// A fresh, funded account with its signing key and its own judge client. It records the fee of
/// every transaction it sends through [`Party::send`], so its payouts can be measured from its
/// balance net of gas.
pub struct Party {
    /// Signs statements (offers, messages, acks).
    pub key: Keypair,
    /// Sends this party's transactions.
    pub judge: Judge,
    start_balance: U256,
    fees: Mutex<U256>,
}

impl Party {
    /// A new account holding `eth` ether, connected to the judge at `judge`.
    pub async fn new(judge: Address, eth: u64) -> Party {
        let secret = fresh_secret();
        let key = Keypair::from_secret_bytes(&secret.0).expect("valid secret");
        fund(key.address(), eth).await;
        let judge = Judge::connect(anvil(), &secret, judge).await.expect("judge client");
        quick(&judge);
        let start_balance = judge.balance(key.address()).await.expect("balance");
        Party {
            key,
            judge,
            start_balance,
            fees: Mutex::new(U256::ZERO),
        }
    }

    /// The account's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Sends one judge transaction and records its fee (also when it was mined and reverted).
    pub async fn send<T: Mined>(
        &self,
        call: impl AsyncFnOnce(&Judge) -> Result<T, JudgeError>,
    ) -> Result<T, JudgeError> {
        let result = call(&self.judge).await;
        let hash = match &result {
            Ok(mined) => Some(mined.receipt().tx_hash),
            Err(JudgeError::Reverted(hash)) => Some(*hash),
            Err(_) => None, // refused at gas estimation: never sent, nothing paid
        };
        if let Some(hash) = hash {
            let receipt = self
                .judge
                .provider()
                .get_transaction_receipt(hash)
                .await
                .expect("receipt RPC")
                .expect("receipt of a mined transaction");
            let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
            *self.fees.lock().expect("fees lock") += fee;
        }
        result
    }

    /// Balance change since the party was created, gas fees added back: what the judge paid it
    /// minus what it locked in the judge.
    pub async fn net_gain(&self) -> i128 {
        let now = self.judge.balance(self.address()).await.expect("balance");
        let fees = *self.fees.lock().expect("fees lock");
        to_i128(now + fees) - to_i128(self.start_balance)
    }
}

/// A wei amount as `i128` (devnet amounts are far below 2^127).
pub fn to_i128(v: U256) -> i128 {
    i128::try_from(u128::try_from(v).expect("amount fits u128")).expect("amount fits i128")
}

// ---- chain time -------------------------------------------------------------------------------

/// The chain's time in unix ms (the latest block's timestamp).
pub async fn chain_ms(judge: &Judge) -> UnixMs {
    judge.block_timestamp().await.expect("block timestamp") * 1000
}

/// Moves the chain's clock forward (`evm_increaseTime` + `evm_mine`) until the latest block's
/// timestamp is at least `at_ms` (rounded up to the second). Returns the chain's time in ms. The
/// next transaction is mined in a block at least that late, as a real transaction sent at
/// `at_ms` would be.
pub async fn advance_to(judge: &Judge, at_ms: UnixMs) -> UnixMs {
    let secs = judge.block_timestamp().await.expect("block timestamp");
    let target = at_ms.div_ceil(1000);
    if secs < target {
        judge.increase_time(target - secs).await.expect("evm_increaseTime");
    }
    chain_ms(judge).await
}

// ---- accounting -------------------------------------------------------------------------------

/// What the judge paid out on `channel` according to its own events in blocks `from..=latest`:
/// `(to seller, to buyer)`.
pub async fn payouts(judge: &Judge, channel: ChannelId, from: u64) -> (U256, U256) {
    let latest = judge.block_number().await.expect("block number");
    let mut seller = U256::ZERO;
    let mut buyer = U256::ZERO;
    for logged in judge.events(from, latest).await.expect("events") {
        match logged.event {
            JudgeEvent::Claimed { channel: c, amount, .. } if c == channel => seller += amount,
            JudgeEvent::Settled {
                channel: c,
                to_seller,
                to_buyer,
            } if c == channel => {
                seller += to_seller;
                buyer += to_buyer;
            }
            _ => {}
        }
    }
    (seller, buyer)
}

/// The error name of a judge refusal (`"NothingToClaim"` for `Refused("NothingToClaim { .. }")`).
pub fn refusal(result: &Result<impl Sized, JudgeError>) -> Option<String> {
    result.as_ref().err().and_then(JudgeError::refusal_name).map(str::to_owned)
}

// ---- properties ---------------------------------------------------------------------------------

/// Number of cases of a property: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on `cases` values of `strategy` with proptest (shrinking failures a little: each
/// case is a run against a real chain), after printing `name: statement`. Prints and asserts the
/// number of cases that ran. A failure names the seed that replays the run
/// (`PROPTEST_RNG_SEED=<seed>`; the chain's clock also follows the wall clock, so a replay is
/// close but not always identical).
pub fn property<S: proptest::strategy::Strategy>(
    name: &str,
    statement: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    eprintln!("{name}: {statement}");
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from_be_bytes(fresh_secret().0[..8].try_into().expect("8 bytes")));
    let config = Config {
        cases,
        max_shrink_iters: 24,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    };
    let ran = AtomicU32::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    if let Err(e) = result {
        panic!("{name}: {e}\nreplay: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases}");
    }
    let ran = ran.load(Ordering::Relaxed);
    eprintln!("{name}: {ran} cases passed against Anvil");
    assert_eq!(ran, cases, "{name}: every generated case must run");
}
