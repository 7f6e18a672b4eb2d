//! Run parameters: protocols, scenarios, link, chain and protocol settings.

use std::fmt;
use std::str::FromStr;

/// The protocol a run simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Ours: SUPRA hybrid channels, run by the real `supra-channel` engine.
    Supra,
    /// SDPP: the seller invoices every `K` items, the buyer pays each invoice on-chain.
    Sdpp,
    /// Pay-before-delivery (PPSP): the buyer pays on-chain for each chunk of `K` items before
    /// it is sent.
    Ppsp,
}

impl Protocol {
    /// All protocols, in table order.
    pub const ALL: [Protocol; 3] = [Protocol::Supra, Protocol::Sdpp, Protocol::Ppsp];

    /// Short name used in tables and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Supra => "supra",
            Protocol::Sdpp => "sdpp",
            Protocol::Ppsp => "ppsp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "supra" | "ours" => Ok(Protocol::Supra),
            "sdpp" => Ok(Protocol::Sdpp),
            "ppsp" | "pay-before" | "pbd" => Ok(Protocol::Ppsp),
            _ => Err(format!("unknown protocol {s:?} (supra, sdpp, ppsp)")),
        }
    }
}

/// Who misbehaves, and how. The misbehaviour starts at message `RunConfig::malice_at` of the
/// subscription (counted from its first message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Both parties follow the protocol.
    Honest,
    /// The buyer keeps receiving but stops paying: SUPRA: its broker drops every ack it would
    /// send; SDPP: it never pays the next invoice; PPSP: it never pays the next chunk.
    Withhold,
    /// The buyer vanishes without paying (link gone, no more chain calls), at the worst moment
    /// for the seller: SUPRA: right before its next ack would go out; SDPP: right before an
    /// invoice (after the `K-1`-th item of a batch); PPSP: after receiving part of a paid chunk.
    Leave,
    /// The seller stops delivering one message (SUPRA: never sends nor posts it, does not defend
    /// the accusation, claims what it can; SDPP: never sends it but invoices the batch anyway;
    /// PPSP: takes the payment for the chunk and sends nothing more).
    Drop,
    /// The seller tries to be paid for more than was delivered (SUPRA: a forged ack, a posted
    /// claim beyond the window, then up to `W` messages posted after the buyer's stop and
    /// claimed; SDPP: invoices batches twice and ahead of delivery; PPSP: same as `Drop`).
    /// The SUPRA seller's broker also withholds its `Stop` from the buyer and its own
    /// `closeCooperatively`: nothing then proves the posted claim is past its Stop, and the
    /// channel closes the normal way, which is what lets the claim through.
    Overclaim,
    /// SUPRA only: `Overclaim`, but the seller's broker lets its engine's `Stop` reach the buyer
    /// (it withholds only its own `closeCooperatively`). With cooperative close on, the buyer
    /// closes cooperatively before the cheating claims land (they are refused); with it off, the
    /// posted claim past the Stop is recorded, and the buyer's engine submits the Stop
    /// (`submitStop`, Lemma 3's penalty: the buyer takes `F - R`).
    OverclaimPastStop,
    /// Both honest, but the buyer's broker freezes (`kill -STOP`) three times for `T_ack`,
    /// longer than `T_off-ack`, the first time at message `malice_at`, then every `N/8`: the
    /// seller fills its window, posts it on-chain, and the buyer takes it from the chain when
    /// it wakes up. Nothing may stall: every message published is delivered and paid.
    Pause,
}

impl Scenario {
    /// All scenarios, in table order.
    pub const ALL: [Scenario; 5] = [
        Scenario::Honest,
        Scenario::Withhold,
        Scenario::Leave,
        Scenario::Drop,
        Scenario::Overclaim,
    ];

    /// Scenarios about SUPRA's own mechanics (not in Table I, and not run for the baselines).
    pub const SUPRA_ONLY: [Scenario; 2] = [Scenario::Pause, Scenario::OverclaimPastStop];

    /// Short name used in tables and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Honest => "honest",
            Scenario::Withhold => "withhold",
            Scenario::Leave => "leave",
            Scenario::Drop => "drop",
            Scenario::Overclaim => "overclaim",
            Scenario::Pause => "pause",
            Scenario::OverclaimPastStop => "overclaim-stop",
        }
    }

    /// Whether the seller follows the protocol in this scenario (so what it delivered and was
    /// not paid counts as the seller's exposure).
    pub fn honest_seller(self) -> bool {
        matches!(
            self,
            Scenario::Honest | Scenario::Withhold | Scenario::Leave | Scenario::Pause
        )
    }

    /// Whether the buyer follows the protocol in this scenario (so what it paid and did not
    /// receive counts as the buyer's exposure).
    pub fn honest_buyer(self) -> bool {
        matches!(
            self,
            Scenario::Honest
                | Scenario::Drop
                | Scenario::Overclaim
                | Scenario::OverclaimPastStop
                | Scenario::Pause
        )
    }

    /// Whether the seller tries to be paid for messages it did not deliver (SUPRA's
    /// `overclaim` broker, with or without its `Stop` withheld).
    pub fn overclaims(self) -> bool {
        matches!(self, Scenario::Overclaim | Scenario::OverclaimPastStop)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .chain(Scenario::SUPRA_ONLY)
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scenario {s:?} (honest, withhold, leave, drop, overclaim, pause, \
                     overclaim-stop)"
                )
            })
    }
}

/// The signatures of a SUPRA run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Crypto {
    /// Real k256 ECDSA, what brokers and the judge use (the default).
    #[default]
    Real,
    /// The engine's `testkit`-only fast simulation keys: a keyed hash instead of ECDSA (same
    /// addresses, same digests, same sealing). It changes wall-clock timings only: every protocol
    /// metric is identical to a real run (tested in `tests/crypto.rs`).
    Fast,
}

impl Crypto {
    /// Both modes.
    pub const ALL: [Crypto; 2] = [Crypto::Real, Crypto::Fast];

    /// Short name used in options, tables and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Crypto::Real => "real",
            Crypto::Fast => "fast",
        }
    }

    /// A line saying which signatures a run used.
    pub fn describe(self) -> &'static str {
        match self {
            Crypto::Real => "real: k256 ECDSA signatures, as brokers and the judge use them",
            Crypto::Fast => {
                "FAST: keyed-hash simulation signatures instead of k256 (wall time only; \
                 protocol metrics are identical to real crypto)"
            }
        }
    }
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Crypto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "real" | "k256" => Ok(Crypto::Real),
            "fast" => Ok(Crypto::Fast),
            _ => Err(format!("unknown crypto {s:?} (real, fast)")),
        }
    }
}

/// One-way delay distribution of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DelayDist {
    /// Uniform in `[min_ms, max_ms]` (frames reorder when `max_ms > min_ms`).
    Uniform {
        /// Minimum.
        min_ms: u64,
        /// Maximum.
        max_ms: u64,
    },
    /// `min_ms` plus an exponential tail of mean `mean_extra_ms`, capped at `min_ms + 20 *
    /// mean_extra_ms`.
    ShiftedExp {
        /// Propagation floor.
        min_ms: u64,
        /// Mean queueing delay above the floor.
        mean_extra_ms: u64,
    },
}

/// Link impairments, both directions of the broker-to-broker connection.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkParams {
    /// Probability that a frame is lost, in `[0, 1)`.
    pub loss: f64,
    /// One-way delay.
    pub delay: DelayDist,
    /// Mean time between link outages (exponential), `None`: no outage.
    pub outage_every_ms: Option<u64>,
    /// Outage duration, uniform in this range. Frames in flight when an outage starts are lost.
    pub outage_ms: (u64, u64),
}

impl Default for LinkParams {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: DelayDist::Uniform {
                min_ms: 5,
                max_ms: 40,
            },
            outage_every_ms: None,
            outage_ms: (5_000, 60_000),
        }
    }
}

/// The chain model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Block interval: a transaction submitted at `t` is mined in the first block strictly after
    /// `t` (blocks at multiples of `block_ms`), and every party sees its events at that time.
    pub block_ms: u64,
    /// `Δ_on-chain`, the seller's bound on the time a transaction needs to be mined (must be
    /// at least `block_ms`); the engine posts an unacked message at `T_ack - Δ` after sending it.
    pub delta_onchain_ms: u64,
}

impl Default for ChainParams {
    fn default() -> Self {
        Self {
            block_ms: 12_000,
            delta_onchain_ms: 24_000,
        }
    }
}

/// Everything one run needs. All runs are deterministic functions of this value.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// PRNG seed (link loss and delays, outages, payloads).
    pub seed: u64,
    /// Messages in the subscription (`N`).
    pub n: u64,
    /// Interval between two publications of the stream.
    pub publish_every_ms: u64,
    /// Plaintext size of a message.
    pub payload_len: usize,
    /// SUPRA window `W` (also the go-back-N window of the baselines' transport).
    pub window: u64,
    /// Messages the stream publishes after the subscription's `N`-th (a live stream goes on for
    /// its other buyers). `Overclaim` always uses at least `2W` (the attack needs messages
    /// after the buyer's stop).
    pub tail: u64,
    /// SDPP invoice period and PPSP chunk size `K`, in items.
    pub k: u64,
    /// SDPP: items the seller streams past an unpaid invoice (0: it waits for the payment of
    /// batch `j` before sending batch `j+1`).
    pub sdpp_credit: u64,
    /// Link impairments.
    pub link: LinkParams,
    /// Chain model.
    pub chain: ChainParams,
    /// `T_ack` (seconds).
    pub t_ack_secs: u32,
    /// `T_closure` (seconds).
    pub t_closure_secs: u32,
    /// Sender retransmission timeout (go-back-N, all protocols).
    pub retransmit_timeout_ms: u64,
    /// Receiver: ack after this many new in-order items (SUPRA clamps it to `W/2`).
    pub ack_every: u64,
    /// Receiver: ack at most this long after the first unacked item.
    pub ack_delay_ms: u64,
    /// What goes wrong.
    pub scenario: Scenario,
    /// Where the misbehaviour starts, in messages of the subscription (`None`: `N / 2`).
    pub malice_at: Option<u64>,
    /// Seller broker policy: stop a channel (SUPRA) or give up (baselines) after this long
    /// without progress from the buyer while something is outstanding.
    pub idle_stop_ms: u64,
    /// Safety horizon: the run ends after this much simulated time.
    pub horizon_ms: u64,
    /// Signatures of the SUPRA engines and the judge model (the baselines sign nothing).
    pub crypto: Crypto,
    /// SUPRA: messages the buyer's opening deposit pays for (`None`: `N + 2W`, the whole
    /// subscription; at least `W`, the judge's minimum). The seller never has more unpaid
    /// messages in flight than the deposit covers (the engine's flow control).
    pub deposit_msgs: Option<u64>,
    /// SUPRA: the buyer tops its deposit up by this many messages' worth whenever it covers at
    /// most half of that beyond what was delivered (the engine's `TopUpPolicy`), never past
    /// `N + 2W` messages in all. `None`: no top-ups.
    pub top_up_msgs: Option<u64>,
    /// SUPRA: the engines close a fully acked, stopped channel with `closeCooperatively` at
    /// once (the engine setting `cooperative_close`, a broker's `chain.cooperative_close`);
    /// `false`: the normal close (`requestClose`, claims, `settle` after `T_closure`).
    pub cooperative_close: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            n: 10_000,
            publish_every_ms: 10,
            payload_len: 64,
            tail: 0,
            window: 64,
            k: 100,
            sdpp_credit: 0,
            link: LinkParams::default(),
            chain: ChainParams::default(),
            t_ack_secs: 60,
            t_closure_secs: 300,
            retransmit_timeout_ms: 300,
            ack_every: 16,
            ack_delay_ms: 250,
            scenario: Scenario::Honest,
            malice_at: None,
            idle_stop_ms: 90_000,
            horizon_ms: 30 * 24 * 3_600_000,
            crypto: Crypto::Real,
            deposit_msgs: None,
            top_up_msgs: None,
            cooperative_close: true,
        }
    }
}

impl RunConfig {
    /// Where the misbehaviour starts (messages into the subscription).
    pub fn malice_at(&self) -> u64 {
        self.malice_at
            .unwrap_or(self.n / 2)
            .min(self.n.saturating_sub(1))
    }

    /// SUPRA: messages the opening deposit pays for.
    pub fn deposit_msgs(&self) -> u64 {
        self.deposit_msgs.unwrap_or(self.n + 2 * self.window)
    }

    /// Checks the settings that would make a run meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("N must be positive".into());
        }
        if self.window == 0 || self.k == 0 {
            return Err("W and K must be positive".into());
        }
        if !(0.0..1.0).contains(&self.link.loss) {
            return Err("loss must be in [0, 1)".into());
        }
        if self.publish_every_ms == 0 {
            return Err("publish interval must be positive".into());
        }
        if self.deposit_msgs() < self.window {
            return Err("the deposit must pay for at least W messages".into());
        }
        if self.top_up_msgs == Some(0) {
            return Err("a top-up must add at least one message".into());
        }
        if self.chain.block_ms == 0 || self.chain.delta_onchain_ms < self.chain.block_ms {
            return Err("need 0 < block time <= Δ_on-chain".into());
        }
        if u64::from(self.t_ack_secs) * 1000 <= self.chain.delta_onchain_ms {
            return Err("T_ack must exceed Δ_on-chain".into());
        }
        if u64::from(self.t_closure_secs) * 1000 <= u64::from(self.t_ack_secs) * 1000 {
            return Err("T_closure must exceed T_ack".into());
        }
        Ok(())
    }
}
