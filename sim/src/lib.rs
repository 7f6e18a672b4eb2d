//! # supra-sim: the paper's Table I, measured
//!
//! A discrete-event simulator of one data subscription between two brokers, under three
//! payment protocols:
//!
//! - **SUPRA** (ours, [`supra`]): the real `supra-channel` engine — seller [`Stream`] and
//!   [`BuyerChannel`], k256 signatures, ChaCha20-Poly1305 sealing, the wire codec — driven
//!   exactly as a broker drives it, over a simulated lossy link ([`net`]) and a model of the judge
//!   contract ([`judge`]) on a block-time chain with the judge's measured gas ([`chain`]);
//! - **SDPP** and **PPSP** (pay before delivery), modelled at the same level ([`baseline`]):
//!   same stream, link, transport and chain.
//!
//! Honest and malicious parties ([`params::Scenario`]) are brokers misbehaving around honest
//! engines: a buyer withholding acks or payments, a buyer leaving without paying, a seller
//! dropping a message, a seller over-claiming. Each run yields a [`metrics::RunResult`]
//! (on-chain transactions and gas, messages delivered, paid, unpaid, paid in excess, latency);
//! [`sweep`] runs many of them on every core (deterministically), builds Table I, sweeps and CSV
//! files, and [`plot`] draws PNG charts.
//!
//! Every run is a deterministic function of its [`params::RunConfig`] (seeded PRNG streams for
//! the link, the outages and the payloads).
//!
//! [`Stream`]: supra_channel::Stream
//! [`BuyerChannel`]: supra_channel::BuyerChannel

#![warn(missing_docs)]

pub mod baseline;
pub mod capacity;
pub mod chain;
pub mod crypto;
pub mod judge;
pub mod metrics;
pub mod net;
pub mod params;
pub mod plot;
pub mod supra;
pub mod sweep;
