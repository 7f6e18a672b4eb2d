//! Durable records emitted by the engines ([`SellerRecord`], [`BuyerRecord`]) and their codec.
//!
//! Contract: a `Persist(record)` action must be written durably **before** the caller carries out
//! any action that follows it in the action queue. Replaying the records written so far (in
//! order) into `restore` rebuilds an engine that resumes exactly: it never re-signs a different
//! message for a seq, loses no received ack, and neither duplicates nor loses deliveries.
//! `snapshot()` on each engine returns a minimal equivalent record list, for compaction.

use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::proof::MessageProof;
use crate::sign::Signature;
use crate::types::{Ack, ChannelId, Message, Offer, Stop};
use crate::wire::adapters;

/// A member of a sealing epoch: buyer address and compressed public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Buyer address.
    #[serde(with = "adapters::address")]
    pub address: Address,
    /// SEC1 compressed public key (33 bytes).
    #[serde(with = "adapters::bytes")]
    pub key: Vec<u8>,
}

/// What a seller [`Stream`](crate::seller::Stream) needs to survive a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SellerRecord {
    /// A new sealing epoch starts at the next message, for these members. Written before that
    /// message's record.
    Epoch {
        /// Epoch number.
        epoch: u64,
        /// Its members.
        members: Vec<MemberRecord>,
    },
    /// A signed message of the stream, written before it is sent or posted anywhere.
    Message {
        /// The message.
        #[serde(with = "adapters::MessageDef")]
        message: Message,
        /// The proof that the seller signed it (its batch, the batch signature, its path).
        proof: MessageProof,
        /// The sealed payload.
        #[serde(with = "adapters::bytes")]
        payload: Vec<u8>,
    },
    /// An offer made (written before it is sent).
    Offer {
        /// The offer.
        #[serde(with = "adapters::OfferDef")]
        offer: Offer,
        /// Seller's signature.
        sig: Signature,
        /// The buyer's SEC1 compressed public key.
        #[serde(with = "adapters::bytes")]
        buyer_key: Vec<u8>,
    },
    /// Lower bound of the next offer nonce (compaction keeps nonces fresh).
    OfferNonce {
        /// Next nonce to use.
        next: u64,
    },
    /// An offer's channel was opened on-chain with this deposit.
    Opened {
        /// Channel.
        channel_id: ChannelId,
        /// Deposit `F` in wei.
        #[serde(with = "adapters::u256")]
        deposit: U256,
    },
    /// A better ack received from the channel's buyer (signature checked lazily).
    Ack {
        /// The ack.
        #[serde(with = "adapters::AckDef")]
        ack: Ack,
        /// Buyer's signature.
        sig: Signature,
    },
    /// Off-chain stop, by either side.
    Stop {
        /// The stop.
        #[serde(with = "adapters::StopDef")]
        stop: Stop,
        /// Signature.
        sig: Signature,
        /// `true` if the seller stopped.
        by_seller: bool,
        /// Exclusive end of what the channel is owed from then on: everything the seller had sent
        /// when the stop was made or received (at least `stop.seq + 1`).
        owed_end: u64,
    },
    /// A message's posting was confirmed on-chain.
    Posted {
        /// Sequence number.
        seq: u64,
        /// The message's timestamp (needed for `claimPosted` after a close).
        timestamp: u64,
    },
    /// The judge's claimed total `R` for a channel.
    Claimed {
        /// Channel.
        channel_id: ChannelId,
        /// Claimed so far.
        #[serde(with = "adapters::u256")]
        total: U256,
    },
    /// A `claimPosted` was submitted up to this seq.
    PostedClaim {
        /// Channel.
        channel_id: ChannelId,
        /// Highest seq claimed as posted.
        upto: u64,
    },
    /// The channel is closing on-chain since `at_secs`.
    CloseRequested {
        /// Channel.
        channel_id: ChannelId,
        /// `closeRequestedAt` (unix seconds).
        at_secs: u64,
    },
    /// The channel is settled: forget it.
    Settled {
        /// Channel.
        channel_id: ChannelId,
    },
    /// The buyer topped up the channel (a `ToppedUp` event): its deposit is now `deposit`.
    ToppedUp {
        /// Channel.
        channel_id: ChannelId,
        /// The new deposit `F`.
        #[serde(with = "adapters::u256")]
        deposit: U256,
    },
    /// A message's posting was confirmed on-chain, mined by block time `mined_at_secs` (what
    /// `claimPosted` after a close needs; [`SellerRecord::Posted`] is the older form).
    PostedAt {
        /// Sequence number.
        seq: u64,
        /// The message's timestamp.
        timestamp: u64,
        /// Block time (seconds) by which the posting was mined.
        mined_at_secs: u64,
    },
}

/// What a [`BuyerChannel`](crate::buyer::BuyerChannel) needs to survive a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuyerRecord {
    /// The channel's offer (first record).
    Channel {
        /// The offer.
        #[serde(with = "adapters::OfferDef")]
        offer: Offer,
        /// Seller's signature.
        sig: Signature,
    },
    /// Delivery position: every seq below `next_seq` was delivered; `last_digest` is the digest
    /// of `next_seq - 1` (`None` before the first delivery). Written before the deliveries it
    /// covers are handed out.
    Position {
        /// Next seq to deliver.
        next_seq: u64,
        /// Digest of the last delivered message.
        #[serde(with = "opt_b256")]
        last_digest: Option<B256>,
    },
    /// An epoch key learned from a grant (the buyer needs it after a restart).
    EpochKey {
        /// Epoch.
        epoch: u64,
        /// Key bytes.
        key: [u8; 32],
    },
    /// Off-chain stop.
    Stopped {
        /// Last seq accepted / sent.
        seq: u64,
        /// `true` if the buyer stopped.
        by_buyer: bool,
    },
    /// An accusation for `missing` was submitted.
    Accused {
        /// The missing seq.
        missing: u64,
    },
    /// The accusation was defended, resolved or failed.
    AccusationCleared,
    /// The channel is closing on-chain since `at_secs`.
    CloseRequested {
        /// `closeRequestedAt` (unix seconds).
        at_secs: u64,
    },
    /// The channel is settled.
    Settled,
    /// The judge refused the accusation for `missing` for good (e.g. `NotOwed`,
    /// `ClosureElapsed`): the buyer does not accuse for it again.
    AccusationRefused {
        /// The missing seq.
        missing: u64,
    },
    /// The seller's signed `Stop` (the lowest received): nothing past it is owed, and it is the
    /// buyer's evidence against a posted claim past it (`submitStop`).
    SellerStop {
        /// The seller's Stop.
        #[serde(with = "adapters::StopDef")]
        stop: Stop,
        /// The seller's signature.
        sig: Signature,
    },
}

mod opt_b256 {
    use alloy_primitives::B256;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub(crate) fn serialize<S: Serializer>(v: &Option<B256>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|b| b.0).serialize(s)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<B256>, D::Error> {
        Option::<[u8; 32]>::deserialize(d).map(|o| o.map(B256::from))
    }
}

/// Record codec errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a valid record.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Encoding failed.
    #[error("cannot encode record: {0}")]
    Encode(String),
}

const RECORD_LIMIT: usize = 4 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_LIMIT>()
}

macro_rules! record_codec {
    ($t:ty) => {
        impl $t {
            /// Encodes the record (bincode, standard config).
            pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
                let mut buf = Vec::new();
                self.encode_into(&mut buf)?;
                Ok(buf)
            }
            /// Encodes the record into `buf`, replacing its contents: a writer of many records
            /// reuses one buffer instead of growing a new one for each (reallocations were a
            /// tenth of a broker's commit thread).
            pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), RecordError> {
                buf.clear();
                bincode::serde::encode_into_std_write(self, buf, config())
                    .map(|_| ())
                    .map_err(|e| RecordError::Encode(e.to_string()))
            }
            /// Decodes a record produced by `encode`; rejects trailing bytes.
            pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
                let (r, used): (Self, usize) =
                    bincode::serde::decode_from_slice(bytes, config())
                        .map_err(|e| RecordError::Malformed(e.to_string()))?;
                if used != bytes.len() {
                    return Err(RecordError::Malformed("trailing bytes".into()));
                }
                Ok(r)
            }
        }
    };
}

record_codec!(SellerRecord);
record_codec!(BuyerRecord);
