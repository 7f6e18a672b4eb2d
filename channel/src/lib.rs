//! # supra-channel: the Supra protocol engine (sans-IO)
//!
//! Pure state machines for SUPRA hybrid payment channels, in the style of `quinn-proto` and
//! `rustls`: no sockets, no async runtime, no chain calls, no threads, no wall clock. The caller
//! feeds events (frames received, chain events, time) with an injected clock ([`UnixMs`]) and
//! carries out the actions the engines queue.
//!
//! | module | what |
//! |---|---|
//! | [`types`] | statements from `SupraTypes.sol` (alloy `sol!`), EIP-712 [`Domain`], [`StreamId`], [`ChannelId`], costs |
//! | [`proof`] | amortised signatures: a signed Merkle [`Batch`](types::Batch) of messages, each message's [`MessageProof`](proof::MessageProof) |
//! | [`sign`] | [`Keypair`], 65-byte low-s [`Signature`]s, [`verify`](sign::verify) and the known-key fast path |
//! | [`wire`] | link [`Frame`]s, strict length-prefixed codec, incremental [`FrameDecoder`] |
//! | [`handshake`] | mutual peer authentication (`Hello`/`Auth`) |
//! | [`seal`] | ChaCha20-Poly1305 envelopes, epoch keys and ECDH/HKDF key grants |
//! | [`seller`] | the seller's [`Stream`]: sign once, seal once, go-back-N per channel, posting, claims |
//! | [`buyer`] | the buyer's [`BuyerChannel`]: verify, reorder, deliver once, ack, accuse |
//! | [`records`] | durable records ([`SellerRecord`], [`BuyerRecord`]) for persist-before-act and restore |
//! | `testkit` | (feature `testkit`) a deterministic lossy-network harness reused by tests, benches and the simulator |
//!
//! ## Driving an engine
//!
//! 1. Call an input method (`publish`, `handle_frame`, `link_up`, `on_posted`, `handle_timeout`, ...)
//!    with the current time.
//! 2. Drain the actions (`poll_action` / `drain_actions`) and carry them out **in order**. Every
//!    `Persist(record)` must be durable before any later action is carried out.
//! 3. Arm a timer for `poll_timeout()` and call `handle_timeout` when it fires.
//!
//! Errors are typed; no input makes the engine panic, and a rejected input leaves it unchanged.

#![warn(missing_docs)]

pub mod buyer;
pub mod handshake;
pub mod proof;
pub mod records;
pub mod seal;
pub mod seller;
pub mod sign;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod types;
pub mod wire;

pub use buyer::{
    BuyerAction, BuyerChannel, BuyerConfig, BuyerError, BuyerEvent, Source, check_offer,
    check_offer_currency, currency_name,
};
pub use records::{BuyerRecord, SellerRecord};
pub use seller::{
    SellerAction, SellerConfig, SellerError, SellerEvent, SignedMessage, Stream, Terms,
};
pub use proof::{MessageProof, ProofError};
pub use sign::{Keypair, PublicKey, SigError, Signature};
pub use types::{
    Ack, Batch, ChannelId, Domain, Message, Offer, PeerAuth, Stop, StreamId, UnixMs, ack_cost,
    channel_id_of,
};
pub use wire::{Frame, FrameBytes, FrameDecoder, WireError};
