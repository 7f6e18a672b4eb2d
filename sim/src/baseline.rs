//! The two baselines, modelled at the same level as the SUPRA runs: the same stream (one item
//! every `publish_every_ms`), the same lossy [`Connection`] with outages, the same reliable
//! transport (go-back-N sender with window `W` and the same retransmission timeout; receiver with
//! a reorder buffer and cumulative acks every `ack_every` items or `ack_delay_ms`), and the same
//! block-time chain. Payments are plain ether transfers (`gas::TRANSFER`, the cheapest on-chain
//! payment there is). Signatures on invoices and acks are not modelled: they cost CPU, not chain.
//!
//! **SDPP** (streaming data payment protocol): items go out in batches of `K`. When the whole
//! batch `j` is acked at transport level, the seller sends invoice `j` (retransmitted every
//! retransmission timeout until paid). The buyer pays an invoice on-chain if it received the
//! whole batch and has not paid it yet (so it never pays for undelivered items). The seller sends
//! item `n` only if `n < (paid_batches + 1)·K + sdpp_credit`: with the default credit 0 it waits
//! for the payment of batch `j` before streaming batch `j+1`.
//!
//! **PPSP** (pay before delivery): the buyer pays chunk 0 (`K` items) on-chain at the start, and
//! chunk `j+1` as soon as it has received all of chunk `j`. The seller sends item `n` only once
//! the payment of its chunk is mined.
//!
//! Both sellers give up after `idle_stop_ms` without progress (ack or payment) while something
//! is outstanding.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::chain::{Call, Ledger, Mempool, gas};
use crate::metrics::RunResult;
use crate::net::{Connection, Dir};
use crate::params::{Protocol, RunConfig, Scenario};

/// Simulated start time (same clock origin as the SUPRA runs).
pub const START_MS: u64 = crate::supra::START_MS;

/// A transport or protocol frame of the baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BFrame {
    /// Item `seq`.
    Data(u64),
    /// Cumulative transport ack: everything below `next` was received.
    Ack(u64),
    /// SDPP invoice for batch `j`.
    Invoice(u64),
}

struct Base {
    cfg: RunConfig,
    proto: Protocol,
    now: u64,
    link: Connection<BFrame>,
    pool: Mempool<u64>,
    ledger: Ledger,
    // stream
    next_publish: Option<u64>,
    pub_times: Vec<u64>,
    // seller
    base: u64,
    next_send: u64,
    rto_at: Option<u64>,
    data_frames: u64,
    /// SDPP: invoices paid (in order); PPSP: chunks paid. Confirmed on-chain.
    paid_units: u64,
    /// SDPP: invoices sent so far (batches `0..invoiced`).
    invoiced: u64,
    invoice_rto: Option<u64>,
    last_progress: u64,
    gave_up: bool,
    /// PPSP cheating seller: sends nothing from this item on.
    cut_from: Option<u64>,
    /// SDPP cheating seller: never sends this item.
    dropped: Option<u64>,
    // buyer
    recv_next: u64,
    buffer: BTreeSet<u64>,
    acked_next: u64,
    ack_due: Option<u64>,
    last_ack_at: u64,
    delivered: u64,
    latencies: Vec<u64>,
    /// Units (invoices / chunks) the buyer has paid (submitted).
    paid_submitted: u64,
    buyer_gone: bool,
    /// The buyer pays no unit at or after this one.
    stop_paying_at: Option<u64>,
    leave_at: Option<u64>,
}

/// Runs one SDPP or PPSP subscription.
pub fn run(cfg: &RunConfig, proto: Protocol) -> RunResult {
    assert!(proto != Protocol::Supra, "use supra::run");
    let t0 = Instant::now();
    let mut b = Base::new(cfg.clone(), proto);
    b.start();
    b.run();
    b.finish(t0)
}

impl Base {
    fn new(cfg: RunConfig, proto: Protocol) -> Self {
        let n = cfg.n as usize;
        Self {
            proto,
            now: START_MS,
            link: Connection::new(cfg.link.clone(), cfg.seed, START_MS),
            pool: Mempool::new(cfg.chain.clone()),
            ledger: Ledger::default(),
            next_publish: Some(START_MS),
            pub_times: Vec::with_capacity(n),
            base: 0,
            next_send: 0,
            rto_at: None,
            data_frames: 0,
            paid_units: 0,
            invoiced: 0,
            invoice_rto: None,
            last_progress: START_MS,
            gave_up: false,
            cut_from: None,
            dropped: None,
            recv_next: 0,
            buffer: BTreeSet::new(),
            acked_next: 0,
            ack_due: None,
            last_ack_at: 0,
            delivered: 0,
            latencies: Vec::with_capacity(n),
            paid_submitted: 0,
            buyer_gone: false,
            stop_paying_at: None,
            leave_at: None,
            cfg,
        }
    }

    fn k(&self) -> u64 {
        self.cfg.k
    }

    /// Number of payment units (invoices / chunks) in the subscription.
    fn units(&self) -> u64 {
        self.cfg.n.div_ceil(self.k())
    }

    /// Items covered by the first `u` units.
    fn items(&self, u: u64) -> u64 {
        (u * self.k()).min(self.cfg.n)
    }

    fn start(&mut self) {
        let k = self.k();
        let unit = self.cfg.malice_at() / k;
        match (self.proto, self.cfg.scenario) {
            (_, Scenario::Withhold) => self.stop_paying_at = Some(unit.max(1)),
            // Right before an invoice / the end of a chunk: the K-1-th item of its batch.
            (_, Scenario::Leave) => self.leave_at = Some(self.items(unit) + k.min(self.cfg.n) - 1),
            (Protocol::Sdpp, Scenario::Drop) => self.dropped = Some(self.cfg.malice_at()),
            (Protocol::Ppsp, Scenario::Drop | Scenario::Overclaim) => {
                // Takes the payment for the chunk and delivers none of it.
                self.cut_from = Some(self.items(unit.max(1)))
            }
            _ => {}
        }
        if self.proto == Protocol::Ppsp {
            self.pay(0);
        }
    }

    fn gate(&self) -> u64 {
        match self.proto {
            Protocol::Sdpp => {
                (self.items(self.paid_units + 1) + self.cfg.sdpp_credit).min(self.cfg.n)
            }
            _ => self.items(self.paid_units),
        }
    }

    fn outstanding(&self) -> bool {
        let unpaid_invoice = self.proto == Protocol::Sdpp && self.paid_units < self.invoiced;
        let waiting_payment = self.proto == Protocol::Ppsp
            && self.paid_units < self.units()
            && self.pub_times.len() as u64 > self.items(self.paid_units);
        self.base < self.next_send
            || unpaid_invoice
            || waiting_payment
            || (self.proto == Protocol::Sdpp && self.pub_times.len() as u64 > self.gate())
    }

    fn idle_at(&self) -> Option<u64> {
        (!self.gave_up && !self.done() && self.outstanding())
            .then_some(self.last_progress + self.cfg.idle_stop_ms)
    }

    fn done(&self) -> bool {
        self.paid_units >= self.units() && self.recv_next >= self.cfg.n
    }

    fn next_time(&self) -> Option<u64> {
        [
            self.next_publish,
            self.link.next_time(),
            self.pool.next_time(),
            if self.gave_up { None } else { self.rto_at },
            if self.gave_up { None } else { self.invoice_rto },
            if self.buyer_gone { None } else { self.ack_due },
            self.idle_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run(&mut self) {
        let horizon = START_MS.saturating_add(self.cfg.horizon_ms);
        while let Some(t) = self.next_time() {
            if t > horizon {
                break;
            }
            self.now = self.now.max(t);
            let now = self.now;
            while let Some((_, unit)) = self.pool.pop_due(now) {
                self.mined(unit);
            }
            while let Some((dir, f)) = self.link.pop_due(now) {
                match dir {
                    Dir::ToBuyer => self.buyer_frame(f),
                    Dir::ToSeller => self.seller_frame(f),
                }
            }
            if self.next_publish.is_some_and(|t| t <= now) {
                self.pub_times.push(now);
                let n = self.pub_times.len() as u64;
                self.next_publish = (n < self.cfg.n).then_some(now + self.cfg.publish_every_ms);
                self.try_send();
            }
            if !self.gave_up && self.rto_at.is_some_and(|t| t <= now) {
                self.rto_at = None;
                if self.base < self.next_send {
                    self.next_send = self.base;
                }
                self.try_send();
            }
            if !self.gave_up && self.invoice_rto.is_some_and(|t| t <= now) {
                self.invoice_rto = None;
                self.send_invoices(self.paid_units);
            }
            if !self.buyer_gone && self.ack_due.is_some_and(|t| t <= now) {
                self.send_ack();
            }
            if self.idle_at().is_some_and(|t| t <= now) {
                self.gave_up = true;
                self.rto_at = None;
                self.invoice_rto = None;
                self.next_publish = None;
            }
        }
    }

    // ----- seller ----------------------------------------------------------------------------

    fn try_send(&mut self) {
        if self.gave_up {
            return;
        }
        let limit = (self.pub_times.len() as u64)
            .min(self.base + self.cfg.window)
            .min(self.gate())
            .min(self.cut_from.unwrap_or(u64::MAX));
        while self.next_send < limit {
            let s = self.next_send;
            self.next_send += 1;
            if Some(s) == self.dropped {
                continue;
            }
            self.data_frames += 1;
            self.link.send(self.now, Dir::ToBuyer, BFrame::Data(s));
        }
        if self.rto_at.is_none() && self.base < self.next_send {
            self.rto_at = Some(self.now + self.cfg.retransmit_timeout_ms);
        }
        // A cheating SDPP seller invoices a batch as soon as it has "sent" it.
        if self.dropped.is_some() {
            self.invoice_up_to(self.next_send);
        }
    }

    fn seller_frame(&mut self, f: BFrame) {
        if let BFrame::Ack(next) = f
            && next > self.base
        {
            self.base = next;
            self.last_progress = self.now;
            if self.next_send < self.base {
                self.next_send = self.base;
            }
            self.rto_at =
                (self.base < self.next_send).then_some(self.now + self.cfg.retransmit_timeout_ms);
            if self.proto == Protocol::Sdpp {
                self.invoice_up_to(self.base);
            }
            self.try_send();
        }
    }

    /// SDPP: invoices every batch completely below `upto`.
    fn invoice_up_to(&mut self, upto: u64) {
        if self.proto != Protocol::Sdpp || self.gave_up {
            return;
        }
        let first_new = self.invoiced;
        while self.invoiced < self.units() && self.items(self.invoiced + 1) <= upto {
            self.invoiced += 1;
        }
        if self.invoiced > first_new {
            self.send_invoices(first_new);
        }
        if self.cfg.scenario == Scenario::Overclaim && self.invoiced > first_new {
            // Invoices the next batch ahead of delivery and re-invoices paid ones.
            self.link
                .send(self.now, Dir::ToBuyer, BFrame::Invoice(self.invoiced));
            if self.paid_units > 0 {
                self.link
                    .send(self.now, Dir::ToBuyer, BFrame::Invoice(self.paid_units - 1));
            }
        }
    }

    fn send_invoices(&mut self, from: u64) {
        for j in from.max(self.paid_units)..self.invoiced {
            self.link.send(self.now, Dir::ToBuyer, BFrame::Invoice(j));
        }
        if self.paid_units < self.invoiced {
            self.invoice_rto = Some(self.now + self.cfg.retransmit_timeout_ms);
        }
    }

    fn mined(&mut self, unit: u64) {
        self.ledger.record(Call::Pay, gas::TRANSFER, None);
        if unit == self.paid_units {
            self.paid_units += 1;
            self.last_progress = self.now;
            if self.paid_units >= self.invoiced {
                self.invoice_rto = None;
            }
            self.try_send();
        }
    }

    // ----- buyer -----------------------------------------------------------------------------

    fn pay(&mut self, unit: u64) {
        if self.buyer_gone
            || unit != self.paid_submitted
            || unit >= self.units()
            || self.stop_paying_at.is_some_and(|s| unit >= s)
        {
            return;
        }
        self.paid_submitted += 1;
        self.pool.submit(self.now, unit);
    }

    fn buyer_frame(&mut self, f: BFrame) {
        if self.buyer_gone {
            return;
        }
        match f {
            BFrame::Data(s) => {
                if s < self.recv_next {
                    if self.now >= self.last_ack_at + 200 {
                        self.send_ack();
                    }
                    return;
                }
                if s < self.recv_next + 1024 {
                    self.buffer.insert(s);
                }
                while self.buffer.remove(&self.recv_next) {
                    let seq = self.recv_next;
                    self.recv_next += 1;
                    self.delivered += 1;
                    if let Some(t) = self.pub_times.get(seq as usize) {
                        self.latencies.push(self.now - t);
                    }
                    if Some(self.delivered) == self.leave_at {
                        self.buyer_gone = true;
                        self.link.sever();
                        return;
                    }
                    // PPSP: a complete chunk, pay the next one.
                    if self.proto == Protocol::Ppsp && self.recv_next.is_multiple_of(self.k()) {
                        self.pay(self.recv_next / self.k());
                    }
                }
                if self.recv_next - self.acked_next
                    >= self.cfg.ack_every.clamp(1, (self.cfg.window / 2).max(1))
                    || self.recv_next >= self.cfg.n
                {
                    self.send_ack();
                } else if self.ack_due.is_none() && self.recv_next > self.acked_next {
                    self.ack_due = Some(self.now + self.cfg.ack_delay_ms);
                }
            }
            BFrame::Invoice(j) => {
                // Pays only for a batch it fully received, once, in order.
                if self.recv_next >= self.items(j + 1) {
                    self.pay(j);
                }
            }
            BFrame::Ack(_) => {}
        }
    }

    fn send_ack(&mut self) {
        self.ack_due = None;
        self.acked_next = self.recv_next;
        self.last_ack_at = self.now;
        self.link
            .send(self.now, Dir::ToSeller, BFrame::Ack(self.recv_next));
    }

    fn finish(mut self, t0: Instant) -> RunResult {
        let paid = self.items(self.paid_units);
        self.latencies.sort_unstable();
        let mut notes = Vec::new();
        if self.gave_up {
            notes.push("seller gave up on an idle buyer".to_string());
        }
        RunResult {
            protocol: self.proto,
            scenario: self.cfg.scenario,
            ledger: self.ledger.clone(),
            delivered: self.delivered,
            paid,
            latencies: std::mem::take(&mut self.latencies),
            published: self.pub_times.len() as u64,
            posted: 0,
            data_frames: self.data_frames,
            accusations: 0,
            upheld: 0,
            sim_ms: self.now - START_MS,
            wall_ms: t0.elapsed().as_secs_f64() * 1e3,
            signatures: 0,
            verifications: 0,
            notes,
            cfg: self.cfg,
        }
    }
}
