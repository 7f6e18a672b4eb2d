//! The simulated broker-to-broker connection: loss, delay distribution, reordering and outages.
//!
//! One [`Connection`] carries both directions between a seller and a buyer. Frames are lost
//! independently with probability `loss`; survivors arrive after a delay drawn from the
//! [`DelayDist`]; an outage (a Poisson process of down periods) drops everything sent while the
//! link is down and everything in flight when it goes down. The schedule of outages is drawn from
//! its own seeded stream, so it does not depend on how many frames a protocol sends.

use std::collections::BTreeMap;

use supra_channel::testkit::Rng;

use crate::params::{DelayDist, LinkParams};

/// Uniform float in `[0, 1)` from the harness PRNG.
pub fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Draws a one-way delay.
pub fn draw_delay(rng: &mut Rng, d: DelayDist) -> u64 {
    match d {
        DelayDist::Uniform { min_ms, max_ms } => rng.range(min_ms, max_ms.max(min_ms)),
        DelayDist::ShiftedExp {
            min_ms,
            mean_extra_ms,
        } => {
            let u = unit(rng);
            let extra = -(1.0 - u).ln() * mean_extra_ms as f64;
            min_ms + (extra.min(20.0 * mean_extra_ms as f64)) as u64
        }
    }
}

/// Link down periods `[start, end)`, drawn lazily from a seeded Poisson process.
#[derive(Debug, Clone)]
pub struct Outages {
    rng: Rng,
    every_ms: Option<u64>,
    dur: (u64, u64),
    /// Generated periods, sorted and disjoint.
    periods: Vec<(u64, u64)>,
    /// Periods are generated up to (at least) this time.
    horizon: u64,
}

impl Outages {
    /// A schedule starting at `start` (no outage before it).
    pub fn new(seed: u64, start: u64, every_ms: Option<u64>, dur: (u64, u64)) -> Self {
        Self {
            rng: Rng::new(seed ^ 0x6F75_7461_6765_7321),
            every_ms,
            dur,
            periods: Vec::new(),
            horizon: start,
        }
    }

    fn ensure(&mut self, t: u64) {
        let Some(mean) = self.every_ms else {
            return;
        };
        while self.horizon <= t {
            let gap = (-(1.0 - unit(&mut self.rng)).ln() * mean as f64) as u64;
            let start = self.horizon + gap.max(1);
            let d = self
                .rng
                .range(self.dur.0, self.dur.1.max(self.dur.0))
                .max(1);
            self.periods.push((start, start + d));
            self.horizon = start + d;
        }
    }

    /// Whether the link is down at `t`.
    pub fn down_at(&mut self, t: u64) -> bool {
        self.ensure(t);
        let i = self.periods.partition_point(|p| p.1 <= t);
        self.periods.get(i).is_some_and(|p| p.0 <= t)
    }

    /// Whether an outage overlaps `[a, b]` (a frame sent at `a` arriving at `b` is then lost).
    pub fn overlaps(&mut self, a: u64, b: u64) -> bool {
        self.ensure(b);
        let i = self.periods.partition_point(|p| p.1 <= a);
        self.periods.get(i).is_some_and(|p| p.0 <= b)
    }

    /// The first up/down transition strictly after `t`, if any.
    pub fn next_transition(&mut self, t: u64) -> Option<u64> {
        self.every_ms?;
        self.ensure(t.saturating_add(1));
        let i = self.periods.partition_point(|p| p.1 <= t);
        let p = self.periods.get(i)?;
        Some(if p.0 > t { p.0 } else { p.1 })
    }

    /// Total down time in `[from, to)`.
    pub fn down_time(&mut self, from: u64, to: u64) -> u64 {
        self.ensure(to);
        self.periods
            .iter()
            .map(|p| p.1.min(to).saturating_sub(p.0.max(from)))
            .sum()
    }
}

/// Direction of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    /// Seller to buyer.
    ToBuyer,
    /// Buyer to seller.
    ToSeller,
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to the link.
    pub sent: u64,
    /// Frames lost to random loss.
    pub lost: u64,
    /// Frames lost to outages (sent while down, or in flight when it went down).
    pub cut: u64,
}

/// Both directions of one connection, carrying frames of type `T`.
#[derive(Debug)]
pub struct Connection<T> {
    params: LinkParams,
    rng: Rng,
    /// Outage schedule.
    pub outages: Outages,
    queue: BTreeMap<(u64, u64), (Dir, T)>,
    ids: u64,
    /// Set when a party left for good: everything is dropped from then on.
    pub severed: bool,
    /// Counters.
    pub stats: LinkStats,
}

impl<T> Connection<T> {
    /// A connection whose outages start after `start`.
    pub fn new(params: LinkParams, seed: u64, start: u64) -> Self {
        let outages = Outages::new(seed, start, params.outage_every_ms, params.outage_ms);
        Self {
            rng: Rng::new(seed.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x11),
            params,
            outages,
            queue: BTreeMap::new(),
            ids: 0,
            severed: false,
            stats: LinkStats::default(),
        }
    }

    /// Hands a frame to the link at `now`. Returns `false` if it will not arrive.
    pub fn send(&mut self, now: u64, dir: Dir, item: T) -> bool {
        self.stats.sent += 1;
        if self.severed || self.outages.down_at(now) {
            self.stats.cut += 1;
            return false;
        }
        if self.params.loss > 0.0 && unit(&mut self.rng) < self.params.loss {
            self.stats.lost += 1;
            return false;
        }
        let at = now + draw_delay(&mut self.rng, self.params.delay);
        if self.outages.overlaps(now, at) {
            self.stats.cut += 1;
            return false;
        }
        self.ids += 1;
        self.queue.insert((at, self.ids), (dir, item));
        true
    }

    /// Arrival time of the next frame.
    pub fn next_time(&self) -> Option<u64> {
        self.queue.first_key_value().map(|(k, _)| k.0)
    }

    /// The next frame arriving at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(Dir, T)> {
        let e = self.queue.first_entry()?;
        if e.key().0 > now {
            return None;
        }
        let v = e.remove();
        if self.severed { None } else { Some(v) }
    }

    /// Drops everything in flight and everything sent from now on.
    pub fn sever(&mut self) {
        self.severed = true;
        self.queue.clear();
    }

    /// Whether the link is up at `t`.
    pub fn up_at(&mut self, t: u64) -> bool {
        !self.severed && !self.outages.down_at(t)
    }
}
