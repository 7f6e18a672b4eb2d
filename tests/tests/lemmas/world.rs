//! A seller engine ([`Stream`]) and a buyer engine ([`BuyerChannel`]) on one channel, joined by a
//! lossy link and by a REAL judge on Anvil: every chain action an engine asks for is sent as a
//! transaction, and every judge event is fed back to both engines. One clock drives both engines
//! and the chain: before each transaction the chain is moved forward (`evm_increaseTime`) so that
//! `block.timestamp` is never behind the engines, and after it the engines' clock follows the chain.
//!
//! The buyer can misbehave (withhold acks, leave, close early, accuse falsely); the seller can be
//! slow on-chain or dishonest (never deliver one message and never defend it).

use supra_judge::market::TestToken;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy::primitives::U256;
use supra_channel::buyer::{BuyerAction, BuyerChannel, BuyerConfig};
use supra_channel::seller::{SellerAction, SellerConfig, Stream, Terms};
use supra_channel::proof::MessageProof;
use supra_channel::types::{Ack, ChannelId, Message, Offer, Stop, StreamId, UnixMs};
use supra_channel::testkit::Rng;
use supra_channel::wire::{Frame, FrameBytes};
use supra_judge::{ChannelStatus, Judge, JudgeError, JudgeEvent, Receipt};
use supra_tests::{Party, advance_to, chain_ms, refusal};

/// Which of its acks the buyer lets out.
#[derive(Clone, Debug)]
pub enum AckPolicy {
    /// Every ack its engine produces.
    All,
    /// None at all.
    Withhold,
    /// Only acks for messages before `startSeq + k` (it stops acking after k messages).
    Below(u64),
}

/// What the buyer does besides running its engine. Times are ms after the channel opened.
#[derive(Clone, Debug)]
pub struct BuyerPlan {
    pub acks: AckPolicy,
    /// The buyer disappears (processes nothing more, sends nothing more).
    pub leave_at: Option<u64>,
    /// ... without the seller noticing (its link stays up, frames go nowhere).
    pub leave_silently: bool,
    /// The buyer closes the channel.
    pub close_at: Option<u64>,
    /// ... with its engine's `stop` (final ack, Stop frame, requestClose), else a bare requestClose.
    pub close_with_stop: bool,
    /// ... and its `Stop` lies: it says the buyer has nothing (`seq = startSeq`), whatever it
    /// received.
    pub stop_lies: bool,
    /// The buyer accuses the seller of a message it did receive.
    pub accuse_at: Option<u64>,
    /// ... preferably one covered by an ack the seller holds (answered with `defendWithAck`).
    pub accuse_acked: bool,
    /// ... or rather, at `accuse_at`, one the link lost (not received, not posted): an
    /// impatient buyer that does not wait T_ack before accusing.
    pub accuse_missing: bool,
    /// Settles at the very second the judge allows it (close + T_closure), if still there.
    pub settle_asap: bool,
}

impl BuyerPlan {
    /// An honest buyer that stays to the end.
    pub fn honest() -> Self {
        BuyerPlan {
            acks: AckPolicy::All,
            leave_at: None,
            leave_silently: false,
            close_at: None,
            close_with_stop: false,
            stop_lies: false,
            accuse_at: None,
            accuse_acked: false,
            accuse_missing: false,
            settle_asap: false,
        }
    }
}

/// The seller's conduct around its (honest) engine.
#[derive(Clone, Debug, Default)]
pub struct SellerPlan {
    /// Each chain action is mined this long after the engine asks for it (in order).
    pub chain_latency_ms: u64,
    /// Late: its `post` transactions are mined this long after the engine asks (instead of
    /// `chain_latency_ms`).
    pub post_latency_ms: Option<u64>,
    /// Its `defend` transactions are mined this long after the engine asks (instead of
    /// `chain_latency_ms`).
    pub defend_latency_ms: Option<u64>,
    /// Dishonest: never delivers this seq (drops every transmission and posting of it) and never
    /// defends an accusation about it.
    pub withhold: Option<u64>,
}

/// The link between the brokers.
#[derive(Clone, Debug)]
pub struct LinkPlan {
    pub delay_ms: u64,
    /// Per mille of Data frames lost.
    pub data_loss: u32,
    /// Per mille of Ack frames lost.
    pub ack_loss: u32,
    /// Data frames of this seq are always lost (a message the link cannot carry).
    pub always_lose: Option<u64>,
    pub seed: u64,
}

/// Everything a run depends on.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub terms: Terms,
    pub seller_cfg: SellerConfig,
    pub buyer_cfg: BuyerConfig,
    /// Messages the stream published before the offer (the channel's startSeq).
    pub start_seq: u64,
    /// Delay before each publication, ms (one per message).
    pub gaps_ms: Vec<u64>,
    pub deposit: U256,
    pub link: LinkPlan,
    pub buyer: BuyerPlan,
    pub seller: SellerPlan,
    /// The seller stops the channel this long after its last publication.
    pub seller_stop_after_ms: u64,
    /// Priced and paid in an ERC-20 with permit (a test stablecoin deployed for the case) rather
    /// than ETH (issue 14): the open and the top-ups are permits, the payouts token transfers.
    pub in_token: bool,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Seqs the buyer's engine accepted from the link.
    pub received: BTreeSet<u64>,
    /// Seqs of the stream posted on-chain.
    pub posted: BTreeSet<u64>,
    pub accusations: u32,
    /// The channel ended with `closeCooperatively`.
    pub cooperative: bool,
    /// `topUp` calls the buyer's engine asked for.
    pub top_ups: u32,
    pub defended: u32,
    pub upheld: u32,
    /// Defences the seller sent ("defend", "defendWithAck").
    pub defences: Vec<&'static str>,
    /// Judge refusals, as ("party.call", error name).
    pub refused: Vec<(String, String)>,
    /// Engine events worth reporting.
    pub notes: Vec<String>,
    /// What the third party had to do at the end.
    pub janitor: Vec<&'static str>,
    /// Acks the buyer withheld.
    pub withheld_acks: u32,
    /// The buyer left before the end.
    pub buyer_left: bool,
}

/// The third party settles this long after the last moment a party would have (T_closure plus
/// the buyer's `chain_grace_ms + settle_wait_ms`), if nobody did.
const JANITOR_DELAY_MS: u64 = 60_000;

/// One channel between a seller engine and a buyer engine, on the real judge.
pub struct World {
    pub seller: Party,
    pub buyer: Party,
    janitor: Judge,
    /// The case's currency when it is a token (see [`Scenario::in_token`]), and what was minted to
    /// the buyer.
    pub token: Option<(TestToken, U256)>,
    pub stream: Stream,
    pub chan: BuyerChannel,
    pub id: ChannelId,
    pub offer: Offer,
    pub deposit: U256,
    pub start: u64,
    /// Block of the `open` transaction (events are read from there).
    pub open_block: u64,
    pub out: Outcome,
    sc: Scenario,
    now: UnixMs,
    t0: UnixMs,
    chain_cache: UnixMs,
    rng: Rng,
    to_buyer: BTreeMap<(UnixMs, u64), FrameBytes>,
    to_seller: BTreeMap<(UnixMs, u64), FrameBytes>,
    frame_ids: u64,
    seller_chain: VecDeque<(UnixMs, SellerAction)>,
    buyer_alive: bool,
    published: usize,
    next_publish: Option<UnixMs>,
    seller_stop_at: Option<UnixMs>,
    leave_at: Option<UnixMs>,
    close_at: Option<UnixMs>,
    accuse_at: Option<UnixMs>,
    janitor_at: Option<UnixMs>,
    greedy_settle_at: Option<UnixMs>,
    /// Signed messages the buyer received over the link (its evidence for an accusation).
    held: BTreeMap<u64, (Message, MessageProof)>,
    /// The open accusation: (missing seq, deadline in seconds).
    accused: Option<(u64, u64)>,
    settled: bool,
    last_block: u64,
    /// What happened, for failure reports (`SUPRA_LEMMAS_TRACE=1` prints it with the state).
    log: Vec<String>,
}

fn plaintext(seq: u64) -> Vec<u8> {
    format!("reading #{seq}").into_bytes()
}

impl World {
    /// Creates both parties, the stream (with `start_seq` messages already published), the offer,
    /// and opens the channel on-chain with the scenario's deposit.
    pub async fn open(janitor: &Judge, mut sc: Scenario) -> World {
        let seller = Party::new(janitor.address(), 100).await;
        let buyer = Party::new(janitor.address(), 100).await;
        let domain = seller.judge.domain();
        let token = if sc.in_token {
            // Far more than any deposit and its top-ups.
            let minted = U256::from(10u64).pow(U256::from(30u64));
            let token = supra_judge::devnet::deploy_test_token(janitor, &[buyer.address()], minted).await.expect("test token");
            sc.terms.token = token.address();
            sc.buyer_cfg.token = token.address();
            Some((token, minted))
        } else {
            None
        };
        let stream_id = StreamId::new(seller.address(), 1).expect("stream number");
        let mut stream = Stream::new(
            domain,
            seller.key.clone(),
            stream_id,
            sc.terms.clone(),
            sc.seller_cfg.clone(),
        )
        .expect("valid terms");
        let now = chain_ms(&seller.judge).await;
        for seq in 0..sc.start_seq {
            stream.publish(now, &plaintext(seq)).expect("publish");
        }
        let (offer, offer_sig) = stream
            .make_offer(now, *buyer.key.public(), "lemmas/readings")
            .expect("offer");
        let _ = stream.drain_actions().count(); // persist + send the offer: the test hands it over
        assert_eq!(offer.startSeq, sc.start_seq);
        let deposit = sc.deposit;
        let (id, receipt) = if token.is_some() {
            buyer.send(async |j: &Judge| j.open_with_permit(&offer, offer_sig.as_bytes(), deposit).await).await
        } else {
            buyer.send(async |j: &Judge| j.open(&offer, offer_sig.as_bytes(), deposit).await).await
        }
        .expect("the buyer opens the channel");
        let mut chan = BuyerChannel::new(
            domain,
            buyer.key.clone(),
            offer.clone(),
            offer_sig,
            sc.buyer_cfg.clone(),
            now,
        )
        .expect("the buyer accepts the offer");
        chan.on_deposit(now, deposit);
        let _ = chan.drain_actions().count(); // persist + `Opened`: the seller is told below
        // The seller's broker checked the channel on-chain: status Open, its terms, the deposit.
        let info = seller.judge.channel(id).await.expect("channel view");
        assert_eq!(
            (info.status, info.deposit, info.start_seq),
            (ChannelStatus::Open, deposit, sc.start_seq)
        );
        stream.open_channel(now, id, deposit).expect("seller opens its side");
        let t0 = chain_ms(&seller.judge).await.max(now);
        let at = |offset: Option<u64>| offset.map(|o| t0 + o);
        World {
            janitor: janitor.clone(),
            token,
            id,
            start: offer.startSeq,
            offer,
            deposit,
            open_block: receipt.block,
            out: Outcome::default(),
            now: t0,
            t0,
            chain_cache: t0,
            rng: Rng::new(sc.link.seed),
            to_buyer: BTreeMap::new(),
            to_seller: BTreeMap::new(),
            frame_ids: 0,
            seller_chain: VecDeque::new(),
            buyer_alive: true,
            published: 0,
            next_publish: sc.gaps_ms.first().map(|g| t0 + g),
            seller_stop_at: sc.gaps_ms.is_empty().then_some(t0 + sc.seller_stop_after_ms),
            leave_at: at(sc.buyer.leave_at),
            close_at: at(sc.buyer.close_at),
            accuse_at: at(sc.buyer.accuse_at),
            janitor_at: None,
            greedy_settle_at: None,
            held: BTreeMap::new(),
            accused: None,
            settled: false,
            last_block: receipt.block,
            log: Vec::new(),
            seller,
            buyer,
            stream,
            chan,
            sc,
        }
    }

    /// Runs until the channel is settled on-chain (by the parties, or at last by a third party).
    pub async fn run(&mut self) {
        let horizon = self.t0
            + self.sc.gaps_ms.iter().sum::<u64>()
            + self.sc.seller_stop_after_ms
            + 20 * 1000 * (u64::from(self.sc.terms.t_ack_secs) + u64::from(self.sc.terms.t_closure_secs))
            + 10 * (JANITOR_DELAY_MS + self.sc.buyer_cfg.settle_wait_ms);
        let mut steps = 0u32;
        loop {
            steps += 1;
            assert!(steps < 100_000, "the run does not end: {}", self.describe());
            self.flush().await;
            if self.settled {
                return;
            }
            let Some(t) = self.next_time() else {
                panic!("nothing left to do but the channel is not settled: {}", self.describe());
            };
            assert!(t <= horizon, "the run does not end by its horizon: {}", self.describe());
            self.now = self.now.max(t);
            self.step().await;
        }
    }

    fn trace(&mut self, what: impl FnOnce() -> String) {
        if std::env::var_os("SUPRA_LEMMAS_TRACE").is_some() {
            let line = format!("+{} {}", self.now - self.t0, what());
            self.log.push(line);
        }
    }

    /// State for failure messages.
    pub fn describe(&self) -> String {
        let log = if self.log.is_empty() {
            String::new()
        } else {
            format!("\ntrace:\n{}\n", self.log.join("\n"))
        };
        log + &format!(
            "now +{} ms, seller channel [{}], buyer next {} alive {}, published {}, accused {:?}, out {:?}",
            self.now - self.t0,
            self.stream
                .describe_channel(&self.id)
                .unwrap_or_else(|| "forgotten".into()),
            self.chan.next_seq(),
            self.buyer_alive,
            self.published,
            self.accused,
            self.out
        )
    }

    fn next_time(&self) -> Option<UnixMs> {
        let mut times = vec![
            self.next_publish,
            self.seller_stop_at,
            self.to_buyer.first_key_value().map(|((t, _), _)| *t),
            self.to_seller.first_key_value().map(|((t, _), _)| *t),
            self.seller_chain.front().map(|(t, _)| *t),
            self.stream.poll_timeout(),
            self.janitor_at,
        ];
        if self.buyer_alive {
            times.extend([
                self.leave_at,
                self.close_at,
                self.accuse_at,
                self.greedy_settle_at,
                self.chan.poll_timeout(),
            ]);
        }
        times.into_iter().flatten().min()
    }

    /// Handles everything due at `now`.
    async fn step(&mut self) {
        let now = self.now;
        // Everything due now is published as one batch under one signature, as a broker signs
        // what one turn of its node brought (gaps of 0 ms make batches of several messages).
        let mut due = Vec::new();
        while self.next_publish.is_some_and(|t| t <= now) {
            due.push(plaintext(self.stream.next_seq() + due.len() as u64));
            self.published += 1;
            self.next_publish = self.sc.gaps_ms.get(self.published).map(|g| now + g);
            if self.next_publish.is_none() {
                self.seller_stop_at = Some(now + self.sc.seller_stop_after_ms);
            }
        }
        if !due.is_empty() {
            let plaintexts: Vec<&[u8]> = due.iter().map(Vec::as_slice).collect();
            self.stream.publish_batch(now, &plaintexts).expect("publish");
        }
        if self.seller_stop_at.is_some_and(|t| t <= now) {
            self.seller_stop_at = None;
            // Unknown once settled (then there is nothing to stop).
            let _ = self.stream.stop_channel(now, self.id);
        }
        if self.buyer_alive {
            if self.leave_at.is_some_and(|t| t <= now) {
                self.leave_at = None;
                self.buyer_alive = false;
                self.out.buyer_left = true;
                if !self.sc.buyer.leave_silently {
                    self.stream.link_down(now, self.buyer.address());
                }
            }
            if self.buyer_alive && self.close_at.is_some_and(|t| t <= now) {
                self.close_at = None;
                if self.sc.buyer.close_with_stop {
                    self.chan.stop(now).expect("the buyer stops");
                } else {
                    let id = self.id;
                    let _ = self
                        .buyer_tx("requestClose", async |j: &Judge| j.request_close(id).await)
                        .await;
                }
            }
            if self.buyer_alive && self.accuse_at.is_some_and(|t| t <= now) {
                self.accuse_at = None;
                self.false_accusation().await;
            }
            if self.buyer_alive && self.greedy_settle_at.is_some_and(|t| t <= now) {
                self.greedy_settle_at = None;
                let id = self.id;
                let _ = self
                    .buyer_tx("settle (asap)", async |j: &Judge| j.settle(id).await)
                    .await;
            }
        }
        while let Some(entry) = self.to_buyer.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let bytes = entry.remove();
            self.deliver_to_buyer(&bytes);
        }
        while let Some(entry) = self.to_seller.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let bytes = entry.remove();
            let frame = Frame::decode(&bytes).expect("frames on the link decode");
            if let Err(e) = self.stream.handle_frame(now, self.buyer.address(), frame) {
                self.out.notes.push(format!("seller rejected a frame: {e}"));
            }
        }
        if self.stream.poll_timeout().is_some_and(|t| t <= now) {
            self.stream.handle_timeout(now);
        }
        if self.buyer_alive && self.chan.poll_timeout().is_some_and(|t| t <= now) {
            self.chan.handle_timeout(now).expect("buyer timers");
        }
        if self.janitor_at.is_some_and(|t| t <= now) {
            self.janitor_at = None;
            self.janitor_finish().await;
        }
    }

    fn deliver_to_buyer(&mut self, bytes: &[u8]) {
        if !self.buyer_alive {
            return;
        }
        let frame = Frame::decode(bytes).expect("frames on the link decode");
        let data = match &frame {
            Frame::Data(d) => Some((d.message.clone(), d.proof.clone())),
            _ => None,
        };
        let settled = self.chan.is_settled();
        let accepted = self.chan.handle_frame(self.now, frame).is_ok();
        if let Some((message, proof)) = data {
            let seq = message.seq;
            // Also past the buyer's Stop: what the seller sent before it arrived is owed (and an
            // honest buyer takes it).
            if accepted && !settled && seq >= self.start {
                self.out.received.insert(seq);
                self.held.insert(seq, (message, proof));
            }
        }
    }

    fn link_delay(&mut self) -> (UnixMs, u64) {
        self.frame_ids += 1;
        (self.now + self.sc.link.delay_ms, self.frame_ids)
    }

    /// Carries out the engines' actions, in order, until none is left and no chain action is due.
    async fn flush(&mut self) {
        loop {
            let mut busy = false;
            let seller_actions: Vec<SellerAction> = self.stream.drain_actions().collect();
            busy |= !seller_actions.is_empty();
            for action in seller_actions {
                self.on_seller_action(action);
            }
            if self.buyer_alive {
                let buyer_actions: Vec<BuyerAction> = self.chan.drain_actions().collect();
                busy |= !buyer_actions.is_empty();
                for action in buyer_actions {
                    if self.buyer_alive {
                        self.on_buyer_action(action).await;
                    }
                }
            } else {
                let _ = self.chan.drain_actions().count();
            }
            if self.seller_chain.front().is_some_and(|(t, _)| *t <= self.now) {
                if let Some((_, action)) = self.seller_chain.pop_front() {
                    self.seller_chain_action(action).await;
                }
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    fn on_seller_action(&mut self, action: SellerAction) {
        match action {
            SellerAction::Persist(_) => {}
            SellerAction::Send { peer, frames } => {
                assert_eq!(peer, self.buyer.address(), "the seller sends only to its buyer");
                for frame in frames.iter().cloned() {
                    if let Ok(Frame::Data(d)) = Frame::decode(&frame) {
                        let seq = d.message.seq;
                        if self.sc.seller.withhold == Some(seq) || self.sc.link.always_lose == Some(seq) {
                            continue;
                        }
                        if self.rng.chance(self.sc.link.data_loss) {
                            continue;
                        }
                    }
                    let at = self.link_delay();
                    self.to_buyer.insert(at, frame);
                }
            }
            SellerAction::Post(m) if self.sc.seller.withhold == Some(m.message.seq) => {
                self.out
                    .notes
                    .push(format!("dishonest seller withheld the posting of {}", m.message.seq));
            }
            SellerAction::Defend { .. } | SellerAction::DefendWithAck { .. }
                if self.sc.seller.withhold.is_some() && self.accused.map(|a| a.0) == self.sc.seller.withhold =>
            {
                self.out.notes.push("dishonest seller did not defend".into());
            }
            SellerAction::Event(e) => self.out.notes.push(format!("seller: {e:?}")),
            chain => {
                self.trace(|| format!("seller asks {chain:?}"));
                let plan = &self.sc.seller;
                let latency = match chain {
                    SellerAction::Post(_) => plan.post_latency_ms,
                    SellerAction::Defend { .. } => plan.defend_latency_ms,
                    _ => None,
                };
                let due = self.now + latency.unwrap_or(plan.chain_latency_ms);
                // Mined in the order of their due times (a slow transaction does not hold back
                // the others).
                let at = self.seller_chain.partition_point(|(t, _)| *t <= due);
                self.seller_chain.insert(at, (due, chain));
            }
        }
    }

    async fn seller_chain_action(&mut self, action: SellerAction) {
        let now = self.now;
        match action {
            SellerAction::Post(m) => {
                let seq = m.message.seq;
                let r = self
                    .seller_tx("post", async |j: &Judge| {
                        j.post(&m.message, &m.payload, &m.proof).await
                    })
                    .await;
                if r.is_err() {
                    self.stream.on_post_failed(now, seq);
                }
            }
            SellerAction::Claim { channel, ack, sig } => {
                let r = self
                    .seller_tx("claim", async |j: &Judge| j.claim(&ack, sig.as_bytes()).await)
                    .await;
                if r.is_err() {
                    self.stream.on_claim_failed(now, channel);
                }
            }
            SellerAction::ClaimPosted { channel, upto } => {
                let _ = self
                    .seller_tx("claimPosted", async |j: &Judge| j.claim_posted(channel, upto).await)
                    .await;
            }
            SellerAction::ProveWrongCost { ack, sig, .. } => {
                let _ = self
                    .seller_tx("proveWrongCost", async |j: &Judge| {
                        j.prove_wrong_cost(&ack, sig.as_bytes()).await
                    })
                    .await;
            }
            SellerAction::Defend { channel } => {
                self.out.defences.push("defend");
                let _ = self
                    .seller_tx("defend", async |j: &Judge| j.defend(channel).await)
                    .await;
            }
            SellerAction::DefendWithAck { ack, sig, .. } => {
                self.out.defences.push("defendWithAck");
                let _ = self
                    .seller_tx("defendWithAck", async |j: &Judge| {
                        j.defend_with_ack(&ack, sig.as_bytes()).await
                    })
                    .await;
            }
            SellerAction::RequestClose { channel } => {
                let _ = self
                    .seller_tx("requestClose", async |j: &Judge| j.request_close(channel).await)
                    .await;
            }
            SellerAction::Settle { channel } => {
                let _ = self
                    .seller_tx("settle", async |j: &Judge| j.settle(channel).await)
                    .await;
            }
            SellerAction::SubmitStop { stop, sig, .. } => {
                self.out.defences.push("submitStop");
                let _ = self
                    .seller_tx("submitStop", async |j: &Judge| j.submit_stop(&stop, sig.as_bytes()).await)
                    .await;
            }
            SellerAction::CloseCooperatively { channel, ack, ack_sig, stop, stop_sig } => {
                let r = self
                    .seller_tx("closeCooperatively", async |j: &Judge| {
                        j.close_cooperatively(&ack, ack_sig.as_bytes(), &stop, stop_sig.as_bytes()).await
                    })
                    .await;
                if r.is_err() {
                    self.stream.on_close_cooperatively_failed(now, channel);
                }
            }
            other => panic!("not a chain action: {other:?}"),
        }
    }

    fn ack_allowed(&self, ack: &Ack) -> bool {
        match self.sc.buyer.acks {
            AckPolicy::All => true,
            AckPolicy::Withhold => false,
            AckPolicy::Below(k) => ack.seq < self.start + k,
        }
    }

    async fn on_buyer_action(&mut self, action: BuyerAction) {
        let id = self.id;
        match action {
            BuyerAction::Persist(_) | BuyerAction::Deliver { .. } => {}
            BuyerAction::Send(mut frame) => {
                match Frame::decode(&frame).expect("buyer frames decode") {
                    // The driver told the seller about the channel when it opened it.
                    Frame::Opened { .. } => return,
                    Frame::Stop { stop, .. } if self.sc.buyer.stop_lies => {
                        let lie = Stop { seq: self.start, ..stop };
                        let sig = self.buyer.key.sign(&self.buyer.judge.domain().digest(&lie));
                        frame = Frame::Stop { stop: lie, sig }.encode_shared().expect("a Stop encodes");
                    }
                    Frame::Ack { ack, .. } => {
                        if !self.ack_allowed(&ack) {
                            self.out.withheld_acks += 1;
                            return;
                        }
                        if self.rng.chance(self.sc.link.ack_loss) {
                            return;
                        }
                    }
                    _ => {}
                }
                let at = self.link_delay();
                self.to_seller.insert(at, frame);
            }
            BuyerAction::TopUp { amount, .. } => {
                self.out.top_ups += 1;
                let r = if self.token.is_some() {
                    self.buyer_tx("topUpWithPermit", async |j: &Judge| j.top_up_with_permit(id, amount).await).await
                } else {
                    self.buyer_tx("topUp", async |j: &Judge| j.top_up(id, amount).await).await
                };
                if r.is_err() {
                    self.chan.on_top_up_failed(self.now);
                }
            }
            BuyerAction::Claim { ack, sig, .. } => {
                let _ = self
                    .buyer_tx("claim", async |j: &Judge| j.claim(&ack, sig.as_bytes()).await)
                    .await;
            }
            BuyerAction::Accuse { seen, proof, missing, .. } => {
                let r = self
                    .buyer_tx("accuse", async |j: &Judge| {
                        j.accuse(id, &seen, &proof, missing).await
                    })
                    .await;
                match r {
                    Ok(_) => {}
                    Err(JudgeError::Refused(_)) => self.chan.on_accusation_refused(self.now),
                    Err(_) => self.chan.on_accusation_closed(self.now),
                }
            }
            BuyerAction::Resolve { .. } => {
                let _ = self.buyer_tx("resolve", async |j: &Judge| j.resolve(id).await).await;
            }
            BuyerAction::ProveEquivocation { a, proof_a, b, proof_b, .. } => {
                let _ = self
                    .buyer_tx("proveEquivocation", async |j: &Judge| {
                        j.prove_equivocation(id, &a, &proof_a, &b, &proof_b)
                            .await
                    })
                    .await;
            }
            BuyerAction::RequestClose { .. } => {
                let _ = self
                    .buyer_tx("requestClose", async |j: &Judge| j.request_close(id).await)
                    .await;
            }
            BuyerAction::Settle { .. } => {
                let _ = self.buyer_tx("settle", async |j: &Judge| j.settle(id).await).await;
            }
            BuyerAction::SubmitStop { stop, sig, .. } => {
                let r = self
                    .buyer_tx("submitStop", async |j: &Judge| j.submit_stop(&stop, sig.as_bytes()).await)
                    .await;
                if r.is_err() {
                    self.chan.on_submit_stop_failed(self.now);
                }
            }
            BuyerAction::CloseCooperatively { ack, ack_sig, stop, stop_sig, .. } => {
                let r = self
                    .buyer_tx("closeCooperatively", async |j: &Judge| {
                        j.close_cooperatively(&ack, ack_sig.as_bytes(), &stop, stop_sig.as_bytes()).await
                    })
                    .await;
                if r.is_err() {
                    self.chan.on_close_cooperatively_failed(self.now);
                }
            }
            BuyerAction::Event(e) => self.out.notes.push(format!("buyer: {e:?}")),
        }
    }

    /// The buyer accuses the seller of a message it received (one not covered by a claimed ack
    /// and not posted), showing a later one.
    async fn false_accusation(&mut self) {
        let info = self.buyer.judge.channel(self.id).await.expect("channel view");
        if info.dispute.is_some() || !matches!(info.status, ChannelStatus::Open | ChannelStatus::Closing) {
            return;
        }
        let Some((&last, _)) = self.held.last_key_value() else {
            return;
        };
        let lowest = self.start + info.acked;
        let seller_acked = self.stream.best_acked_seq(&self.id);
        let accuse_missing = self.sc.buyer.accuse_missing;
        let candidates: Vec<u64> = (lowest..last)
            .filter(|s| self.out.received.contains(s) != accuse_missing && !self.out.posted.contains(s))
            .collect();
        self.trace(|| format!("buyer plans an accusation among {candidates:?}"));
        if accuse_missing
            && candidates.is_empty()
            && self.sc.link.always_lose.is_some_and(|m| self.chan.next_seq() <= m)
        {
            // The evidence (a message after the lost one) is not here yet: try again soon.
            self.accuse_at = Some(self.now + 500);
            return;
        }
        let preferred = candidates
            .iter()
            .copied()
            .find(|s| seller_acked.is_some_and(|a| *s <= a));
        let Some(missing) = (if self.sc.buyer.accuse_acked {
            preferred.or(candidates.first().copied())
        } else {
            candidates.first().copied()
        }) else {
            return;
        };
        let (seen, proof) = self.held[&last].clone();
        let id = self.id;
        if accuse_missing
            && let Some((ack, ack_sig)) = self.chan.last_ack().map(|(a, s)| (a.clone(), *s))
            && ack.seq >= lowest
        {
            // As the buyer's engine does: its own latest ack first, so the judge owes it what
            // follows.
            let _ = self
                .buyer_tx("claim", async |j: &Judge| j.claim(&ack, ack_sig.as_bytes()).await)
                .await;
        }
        let _ = self
            .buyer_tx("accuse (false)", async |j: &Judge| {
                j.accuse(id, &seen, &proof, missing).await
            })
            .await;
    }

    /// At the end, a third party settles a channel nobody settled (e.g. the buyer left): resolves
    /// a stale accusation first, moves past T_closure, settles.
    async fn janitor_finish(&mut self) {
        let info = self.janitor.channel(self.id).await.expect("channel view");
        let id = self.id;
        match info.status {
            ChannelStatus::Settled => {}
            ChannelStatus::Closing | ChannelStatus::Open => {
                if let Some((_, deadline)) = info.dispute {
                    let at = (deadline + 1) * 1000;
                    if self.now < at {
                        self.janitor_at = Some(at);
                        return;
                    }
                    self.out.janitor.push("resolve");
                    let r = self.janitor_tx(async |j: &Judge| j.resolve(id).await).await;
                    assert!(r.is_ok(), "the third party resolves: {r:?}");
                    return;
                }
                if info.status == ChannelStatus::Open {
                    return; // still running: the parties close it
                }
                let at = (info.close_requested_at + u64::from(info.t_closure)) * 1000;
                if self.now < at {
                    self.janitor_at = Some(at);
                    return;
                }
                self.out.janitor.push("settle");
                let r = self.janitor_tx(async |j: &Judge| j.settle(id).await).await;
                assert!(r.is_ok(), "the third party settles: {r:?} {}", self.describe());
            }
            ChannelStatus::None => unreachable!("the channel exists"),
        }
    }

    async fn seller_tx<T: supra_tests::Mined>(
        &mut self,
        what: &str,
        call: impl AsyncFnOnce(&Judge) -> Result<T, JudgeError>,
    ) -> Result<T, JudgeError> {
        self.sync_chain().await;
        let r = self.seller.send(call).await;
        self.after_tx("seller", what, &r).await;
        r
    }

    async fn buyer_tx<T: supra_tests::Mined>(
        &mut self,
        what: &str,
        call: impl AsyncFnOnce(&Judge) -> Result<T, JudgeError>,
    ) -> Result<T, JudgeError> {
        self.sync_chain().await;
        let r = self.buyer.send(call).await;
        self.after_tx("buyer", what, &r).await;
        r
    }

    async fn janitor_tx(
        &mut self,
        call: impl AsyncFnOnce(&Judge) -> Result<Receipt, JudgeError>,
    ) -> Result<Receipt, JudgeError> {
        self.sync_chain().await;
        let r = call(&self.janitor).await;
        self.after_tx("janitor", "", &r).await;
        r
    }

    /// The chain's clock is never behind the engines'.
    async fn sync_chain(&mut self) {
        if self.chain_cache < self.now {
            self.chain_cache = advance_to(&self.janitor, self.now).await;
        }
    }

    async fn after_tx<T>(&mut self, who: &str, what: &str, r: &Result<T, JudgeError>) {
        self.trace(|| format!("tx {who}.{what} -> {:?}", r.as_ref().err()));
        match r {
            Ok(_) => {}
            Err(e) if e.refusal_name().is_some() => self
                .out
                .refused
                .push((format!("{who}.{what}"), refusal(r).unwrap_or_default())),
            Err(e) => panic!("{who}.{what}: chain error {e}"),
        }
        self.chain_cache = chain_ms(&self.janitor).await;
        self.now = self.now.max(self.chain_cache);
        let latest = self.janitor.block_number().await.expect("block number");
        if latest > self.last_block {
            let events = self.janitor.events(self.last_block + 1, latest).await.expect("events");
            self.last_block = latest;
            for logged in events {
                self.dispatch(logged.event);
            }
        }
    }

    /// Feeds a judge event to both engines, as their brokers' chain watchers would.
    fn dispatch(&mut self, event: JudgeEvent) {
        self.trace(|| format!("event {event:?}"));
        let (now, id) = (self.now, self.id);
        let alive = self.buyer_alive;
        match event {
            JudgeEvent::Posted {
                message, payload, proof, ..
            } if message.streamId == self.stream.id().0 => {
                let seq = message.seq;
                self.out.posted.insert(seq);
                self.stream.on_posted(now, seq);
                if alive {
                    if let Err(e) = self.chan.on_posted(now, message, proof, payload.to_vec()) {
                        self.out.notes.push(format!("buyer rejected posted {seq}: {e}"));
                    }
                }
            }
            JudgeEvent::ToppedUp { channel, deposit, .. } if channel == id => {
                // What both sides settle against from now on.
                self.deposit = deposit;
                self.stream.on_topped_up(now, id, deposit);
                if alive {
                    self.chan.on_deposit(now, deposit);
                }
            }
            JudgeEvent::Claimed { channel, seq, claimed, .. } if channel == id => {
                self.stream.on_claimed(now, id, claimed);
                if alive {
                    self.chan.on_claimed(now, seq);
                }
            }
            JudgeEvent::CloseRequested {
                channel, settle_after, ..
            } if channel == id => {
                let at = settle_after - u64::from(self.offer.tClosure);
                self.stream.on_close_requested(now, id, at);
                if alive {
                    self.chan.on_close_requested(now, at);
                }
                let buyer_last = self.sc.buyer_cfg.chain_grace_ms + self.sc.buyer_cfg.settle_wait_ms;
                self.janitor_at = Some(settle_after * 1000 + buyer_last + JANITOR_DELAY_MS);
                if alive && self.sc.buyer.settle_asap {
                    self.greedy_settle_at = Some(settle_after * 1000);
                }
            }
            JudgeEvent::Accused {
                channel,
                missing_seq,
                deadline,
                ..
            } if channel == id => {
                self.out.accusations += 1;
                self.accused = Some((missing_seq, deadline));
                self.stream.on_accused(now, id, missing_seq);
                if alive {
                    self.chan.on_accusation_opened(now, deadline);
                }
                // Whatever happens, someone resolves or settles in the end.
                let at = deadline * 1000 + JANITOR_DELAY_MS;
                self.janitor_at = Some(self.janitor_at.map_or(at, |t| t.max(at)));
            }
            JudgeEvent::Defended { channel, .. } if channel == id => {
                self.out.defended += 1;
                self.accused = None;
                self.stream.on_accusation_closed(now, id);
                if alive {
                    self.chan.on_accusation_closed(now);
                }
            }
            JudgeEvent::AccusationUpheld { channel, .. } if channel == id => {
                self.out.upheld += 1;
                self.accused = None;
                self.stream.on_accusation_closed(now, id);
                if alive {
                    self.chan.on_accusation_closed(now);
                }
            }
            JudgeEvent::PostedClaimRecorded { channel, upto_seq } if channel == id && alive => {
                self.chan.on_posted_claim(now, upto_seq);
            }
            JudgeEvent::ClosedCooperatively { channel, .. } if channel == id => {
                self.out.cooperative = true;
            }
            JudgeEvent::Settled { channel, .. } if channel == id => {
                self.settled = true;
                self.stream.on_settled(now, id);
                if alive {
                    self.chan.on_settled(now);
                }
            }
            _ => {}
        }
    }

    /// Messages the stream published during the run.
    pub fn published(&self) -> usize {
        self.published
    }

    /// Messages delivered to the buyer: accepted over the link or posted on-chain.
    pub fn delivered(&self) -> BTreeSet<u64> {
        let posted = self.out.posted.iter().copied().filter(|s| *s >= self.start);
        self.out.received.iter().copied().chain(posted).collect()
    }
}
