//! Link frames between brokers (PROTOCOL.md §4) and their strict codec.
//!
//! On the wire every frame is `[u32 big-endian length][u8 version = 3][bincode body]`, where the
//! length counts the version byte and the body and is at most [`MAX_FRAME_LEN`]. The body is the
//! [`Frame`] enum encoded by bincode 2 (serde mode, standard config: varint integers) with an
//! allocation limit, and must be consumed exactly. Anything else is a [`WireError`]: the link
//! should be closed. Decoding never panics and never allocates more than the frame's declared
//! (and bounded) length.
//!
//! [`FrameDecoder`] is the incremental form for a byte stream (TCP): feed bytes as they arrive,
//! pull complete frames.

use std::sync::Arc;

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::proof::MessageProof;
use crate::sign::Signature;
use crate::types::{Ack, ChannelId, Message, Offer, Stop};

/// Frame format version carried in every frame (2: `Data` carries a [`MessageProof`], issue 11;
/// 3: hashes, addresses and amounts are byte strings, decoded in one copy; the `Offer` names its
/// currency, `token`, issue 14).
pub const VERSION: u8 = 3;
/// Largest accepted value of the length prefix (version byte + body): 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Largest topic accepted in `Request` / `Offer` frames (bytes).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// An encoded frame, length prefix included, ready to be written to a link. Cheap to clone: the
/// seller encodes each `Data` frame once and shares it across all the stream's channels.
pub type FrameBytes = Arc<[u8]>;
/// Encoded frames written in order to one link. A batch's run is built once and shared by every
/// channel it goes to (a reference each, not one per frame and channel).
pub type FrameRun = Arc<[FrameBytes]>;

/// Codec errors. Any of them means the link is unusable and should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Length prefix is zero (no room for the version byte).
    #[error("empty frame")]
    Empty,
    /// Length prefix above the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// Unknown frame format version.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The body is not a valid bincode `Frame`.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The body decoded but did not use every byte.
    #[error("{0} trailing bytes after frame body")]
    Trailing(usize),
    /// A complete frame was expected but the buffer ended early.
    #[error("truncated frame")]
    Truncated,
    /// A field violates a frame-level limit.
    #[error("field out of bounds: {0}")]
    Field(&'static str),
    /// Encoding failed (frame over the size limit).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The decoder already failed; the link must be closed.
    #[error("decoder poisoned by an earlier error")]
    Poisoned,
}

/// First frame of each side of the peer handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version spoken by the sender.
    pub version: u8,
    /// The sender's broker address.
    #[serde(with = "adapters::address")]
    pub from: Address,
    /// The sender's fresh nonce.
    #[serde(with = "adapters::b256")]
    pub nonce: B256,
    /// The responder's signature of its `PeerAuth` (absent in the initiator's `Hello`).
    pub auth: Option<Signature>,
}

/// A data frame: one message of the stream, the proof that the seller signed it, and its sealed
/// payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// The message.
    #[serde(with = "adapters::MessageDef")]
    pub message: Message,
    /// Its batch, the seller's signature of the batch, and its Merkle path.
    pub proof: MessageProof,
    /// The sealed payload (`keccak256(payload) == message.payloadHash`).
    #[serde(with = "adapters::bytes")]
    pub payload: Vec<u8>,
}

/// A link frame (PROTOCOL.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Handshake opener (both directions; the responder's carries `auth`).
    Hello(Hello),
    /// Initiator's handshake signature.
    Auth {
        /// Signature of the initiator's `PeerAuth`.
        sig: Signature,
    },
    /// Buyer asks for a topic.
    Request {
        /// MQTT topic of the stream.
        topic: String,
    },
    /// Seller's signed terms for a new channel.
    Offer {
        /// The offer.
        #[serde(with = "adapters::OfferDef")]
        offer: Offer,
        /// Seller's signature of the offer.
        sig: Signature,
        /// Topic it answers.
        topic: String,
    },
    /// Seller declines a request.
    Refused {
        /// Human-readable reason.
        reason: String,
    },
    /// Buyer opened the channel on-chain.
    Opened {
        /// Channel id returned by the judge.
        channel_id: ChannelId,
    },
    /// A stream message (seller to buyer).
    Data(Data),
    /// A cumulative ack (buyer to seller).
    Ack {
        /// The ack.
        #[serde(with = "adapters::AckDef")]
        ack: Ack,
        /// Buyer's signature.
        sig: Signature,
    },
    /// After a reconnect: the buyer holds every message of the channel below `next_seq`.
    Resume {
        /// Channel.
        channel_id: ChannelId,
        /// First sequence number the buyer still needs.
        next_seq: u64,
    },
    /// Either side ends the off-chain exchange.
    Stop {
        /// The stop statement.
        #[serde(with = "adapters::StopDef")]
        stop: Stop,
        /// Signature by the side that stops.
        sig: Signature,
    },
    /// A fatal link-level error; the sender closes the link.
    Error {
        /// Machine-readable code.
        code: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// Keepalive probe.
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// Keepalive answer.
    Pong {
        /// The probe's nonce.
        nonce: u64,
    },
}

impl serde::Serialize for ChannelId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        adapters::u256::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        adapters::u256::deserialize(d).map(ChannelId)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

impl Frame {
    /// Checks limits that the codec alone does not express.
    fn check(&self) -> Result<(), WireError> {
        match self {
            Frame::Request { topic } | Frame::Offer { topic, .. }
                if topic.len() > MAX_TOPIC_LEN =>
            {
                Err(WireError::Field("topic too long"))
            }
            _ => Ok(()),
        }
    }

    /// Encodes the frame with its length prefix and version byte.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        self.check()?;
        let mut out = vec![0u8, 0, 0, 0, VERSION];
        bincode::serde::encode_into_std_write(self, &mut out, config())
            .map_err(|e| WireError::Encode(e.to_string()))?;
        let len = out.len() - 4;
        if len > MAX_FRAME_LEN {
            return Err(WireError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        let len = u32::try_from(len).map_err(|_| WireError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        })?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Encodes into shareable [`FrameBytes`].
    pub fn encode_shared(&self) -> Result<FrameBytes, WireError> {
        self.encode().map(Arc::from)
    }

    /// Decodes exactly one frame (length prefix included) occupying all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Frame, WireError> {
        let (frame, used) = decode_prefixed(buf, MAX_FRAME_LEN)?.ok_or(WireError::Truncated)?;
        if used != buf.len() {
            return Err(WireError::Trailing(buf.len() - used));
        }
        Ok(frame)
    }

    /// Decodes a frame body: version byte followed by the bincode `Frame`, nothing more.
    pub fn decode_body(body: &[u8]) -> Result<Frame, WireError> {
        let (&version, rest) = body.split_first().ok_or(WireError::Empty)?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let (frame, used): (Frame, usize) = bincode::serde::decode_from_slice(rest, config())
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if used != rest.len() {
            return Err(WireError::Trailing(rest.len() - used));
        }
        frame.check()?;
        Ok(frame)
    }
}

/// Reads one length-prefixed frame at the start of `buf`: `Ok(None)` if more bytes are needed,
/// else the frame and the number of bytes it used.
fn decode_prefixed(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let mut p = [0u8; 4];
    p.copy_from_slice(prefix);
    let len = u32::from_be_bytes(p) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((Frame::decode_body(body)?, 4 + len)))
}

/// Incremental decoder for a byte stream: [`feed`](Self::feed) bytes as they arrive, then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// It buffers at most one frame (≤ 4 + limit bytes). After an error it stays poisoned: the
/// caller must close the link.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
    poisoned: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the protocol's limit ([`MAX_FRAME_LEN`]).
    pub fn new() -> Self {
        Self::with_max_frame_len(MAX_FRAME_LEN)
    }

    /// A decoder with a smaller limit (clamped to [`MAX_FRAME_LEN`]).
    pub fn with_max_frame_len(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max: max.min(MAX_FRAME_LEN),
            poisoned: false,
        }
    }

    /// Appends received bytes. Fails (and poisons) as soon as a length prefix is over the limit,
    /// so a hostile peer cannot make the buffer grow past one frame.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.poisoned {
            return Err(WireError::Poisoned);
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.check_prefix()
    }

    fn check_prefix(&mut self) -> Result<(), WireError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        if let Some(prefix) = pending.get(..4) {
            let mut p = [0u8; 4];
            p.copy_from_slice(prefix);
            let len = u32::from_be_bytes(p) as usize;
            if len == 0 || len > self.max {
                self.poisoned = true;
                return Err(if len == 0 {
                    WireError::Empty
                } else {
                    WireError::TooLarge { len, max: self.max }
                });
            }
        }
        Ok(())
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if self.poisoned {
            return Err(WireError::Poisoned);
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match decode_prefixed(pending, self.max) {
            Ok(Some((frame, used))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                } else if self.start > self.max {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

/// A `Vec<u8>` field as one byte string: `#[serde(with = "supra_channel::wire::byte_string")]`.
pub use adapters::bytes as byte_string;

/// Serde adapters: compact fixed-size encodings for alloy primitives and mirrors of the `sol!`
/// statement structs (which do not derive serde).
pub(crate) mod adapters {
    use alloy_primitives::{Address, B256, U256};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::types::{Ack, Batch, Message, Offer, Stop};

    /// A fixed-size byte array as one byte string of exactly `N` bytes. Serde's own `[u8; N]` is
    /// a tuple of `N` elements, which bincode decodes one byte at a time: a data frame holds a
    /// dozen such hashes, and decoding them was most of the cost of reading a frame (issue 11).
    pub(crate) mod fixed {
        use core::fmt;
        use serde::de::{Error, SeqAccess, Visitor};
        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }

        struct Exact<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for Exact<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; N], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(A::Error::invalid_length(N + 1, &self));
                }
                Ok(out)
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<[u8; N], D::Error> {
            d.deserialize_bytes(Exact::<N>)
        }
    }

    pub(crate) mod b256 {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(v: &B256, s: S) -> Result<S::Ok, S::Error> {
            fixed::serialize(v.as_slice(), s)
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
            fixed::deserialize::<_, 32>(d).map(B256::from)
        }
    }

    pub(crate) mod u256 {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
            fixed::serialize(&v.to_be_bytes::<32>(), s)
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
            fixed::deserialize::<_, 32>(d).map(U256::from_be_bytes)
        }
    }

    pub(crate) mod address {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(v: &Address, s: S) -> Result<S::Ok, S::Error> {
            fixed::serialize(v.as_slice(), s)
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
            fixed::deserialize::<_, 20>(d).map(Address::from)
        }
    }

    /// `Vec<u8>` as one length-prefixed byte string (not a sequence of u8 elements). With
    /// bincode the bytes are the same as a sequence's (a varint length, then one byte per u8),
    /// written and read at once instead of one call per byte; a sequence is still read.
    pub mod bytes {
        use super::*;
        use core::fmt;
        use serde::de::{SeqAccess, Visitor};

        /// Serializes `v` as a byte string.
        pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }

        /// Deserializes a byte string (or a sequence of u8).
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            d.deserialize_byte_buf(V)
        }
    }

    #[allow(non_snake_case, dead_code)]
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Offer")]
    pub(crate) struct OfferDef {
        #[serde(with = "b256")]
        streamId: B256,
        #[serde(with = "address")]
        seller: Address,
        #[serde(with = "address")]
        buyer: Address,
        #[serde(with = "u256")]
        price: U256,
        #[serde(with = "address")]
        token: Address,
        window: u64,
        startSeq: u64,
        tAck: u32,
        tClosure: u32,
        validUntil: u64,
        #[serde(with = "u256")]
        nonce: U256,
    }

    #[allow(non_snake_case, dead_code)]
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Message")]
    pub(crate) struct MessageDef {
        #[serde(with = "b256")]
        streamId: B256,
        seq: u64,
        timestamp: u64,
        #[serde(with = "b256")]
        payloadHash: B256,
        #[serde(with = "b256")]
        prev: B256,
    }

    #[allow(non_snake_case, dead_code)]
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Batch")]
    pub(crate) struct BatchDef {
        #[serde(with = "b256")]
        streamId: B256,
        firstSeq: u64,
        lastSeq: u64,
        #[serde(with = "b256")]
        root: B256,
    }

    /// A list of hashes (a Merkle path), at most [`crate::proof::MAX_PROOF_DEPTH`] long: a longer
    /// one is refused while decoding.
    pub(crate) mod b256_vec {
        use super::*;
        #[derive(Serialize, Deserialize)]
        struct Hash(#[serde(with = "b256")] B256);

        pub(crate) fn serialize<S: Serializer>(v: &[B256], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|b| Hash(*b)))
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<B256>, D::Error> {
            let v = Vec::<Hash>::deserialize(d)?;
            if v.len() > crate::proof::MAX_PROOF_DEPTH {
                return Err(serde::de::Error::custom("Merkle path too long"));
            }
            Ok(v.into_iter().map(|h| h.0).collect())
        }
    }

    #[allow(non_snake_case, dead_code)]
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Ack")]
    pub(crate) struct AckDef {
        #[serde(with = "u256")]
        channelId: U256,
        seq: u64,
        #[serde(with = "b256")]
        digest: B256,
        #[serde(with = "u256")]
        cost: U256,
        timestamp: u64,
    }

    #[allow(non_snake_case, dead_code)]
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Stop")]
    pub(crate) struct StopDef {
        #[serde(with = "u256")]
        channelId: U256,
        seq: u64,
        timestamp: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;

    /// What was stored or sent with a plain `Vec<u8>` field reads the same with `byte_string`,
    /// and is written the same.
    #[test]
    fn a_byte_string_is_what_bincode_makes_of_a_sequence_of_bytes() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct AsSequence {
            before: u64,
            value: Vec<u8>,
            after: u16,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct AsByteString {
            before: u64,
            #[serde(with = "byte_string")]
            value: Vec<u8>,
            after: u16,
        }
        let config = bincode::config::standard();
        for len in [0usize, 1, 250, 251, 300, 70_000] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let old = AsSequence { before: 300, value: value.clone(), after: 9 };
            let new = AsByteString { before: 300, value, after: 9 };
            let old_bytes = bincode::serde::encode_to_vec(&old, config).unwrap();
            assert_eq!(bincode::serde::encode_to_vec(&new, config).unwrap(), old_bytes, "len {len}");
            let (read, used) = bincode::serde::decode_from_slice::<AsByteString, _>(&old_bytes, config).unwrap();
            assert_eq!((read, used), (new, old_bytes.len()), "len {len}");
        }
    }

    fn sig(b: u8) -> Signature {
        let mut s = [b; 65];
        s[64] = 27;
        Signature(s)
    }

    pub(crate) fn samples() -> Vec<Frame> {
        let message = Message {
            streamId: B256::repeat_byte(1),
            seq: 42,
            timestamp: 1_700_000_000_123,
            payloadHash: B256::repeat_byte(2),
            prev: B256::repeat_byte(3),
        };
        let offer = Offer {
            streamId: B256::repeat_byte(9),
            seller: Address::repeat_byte(1),
            buyer: Address::repeat_byte(2),
            price: U256::from(1_000_000_000u64),
            token: Default::default(),
            window: 64,
            startSeq: 5,
            tAck: 30,
            tClosure: 600,
            validUntil: 1_700_000_000,
            nonce: U256::MAX,
        };
        vec![
            Frame::Hello(Hello {
                version: 1,
                from: Address::repeat_byte(5),
                nonce: B256::repeat_byte(6),
                auth: None,
            }),
            Frame::Hello(Hello {
                version: 1,
                from: Address::repeat_byte(5),
                nonce: B256::repeat_byte(6),
                auth: Some(sig(4)),
            }),
            Frame::Auth { sig: sig(7) },
            Frame::Request {
                topic: "sensors/+/temp".into(),
            },
            Frame::Offer {
                offer,
                sig: sig(8),
                topic: "t".into(),
            },
            Frame::Refused {
                reason: "no".into(),
            },
            Frame::Opened {
                channel_id: ChannelId(U256::from(77)),
            },
            Frame::Data(Data {
                message: message.clone(),
                proof: crate::proof::MessageProof {
                    batch: crate::types::Batch {
                        streamId: B256::repeat_byte(1),
                        firstSeq: 40,
                        lastSeq: 47,
                        root: B256::repeat_byte(5),
                    },
                    sig: sig(1),
                    path: vec![B256::repeat_byte(6); 3],
                },
                payload: vec![1, 2, 3, 255],
            }),
            Frame::Ack {
                ack: Ack {
                    channelId: U256::from(3),
                    seq: 9,
                    digest: B256::repeat_byte(4),
                    cost: U256::from(10),
                    timestamp: 5,
                },
                sig: sig(2),
            },
            Frame::Resume {
                channel_id: ChannelId(U256::from(3)),
                next_seq: 10,
            },
            Frame::Stop {
                stop: Stop {
                    channelId: U256::from(3),
                    seq: 11,
                    timestamp: 12,
                },
                sig: sig(3),
            },
            Frame::Error {
                code: 7,
                reason: "bad".into(),
            },
            Frame::Ping { nonce: 1 },
            Frame::Pong { nonce: 1 },
        ]
    }

    #[test]
    fn round_trip_all_frames() {
        for f in samples() {
            let bytes = f.encode().unwrap();
            assert_eq!(bytes[4], VERSION);
            assert_eq!(
                u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len() - 4
            );
            assert_eq!(Frame::decode(&bytes).unwrap(), f);
        }
    }

    #[test]
    fn incremental_byte_by_byte() {
        let frames = samples();
        let mut all = Vec::new();
        for f in &frames {
            all.extend(f.encode().unwrap());
        }
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &all {
            dec.feed(std::slice::from_ref(b)).unwrap();
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn rejects_bad_frames() {
        let good = Frame::Ping { nonce: 3 }.encode().unwrap();
        // wrong version (a stage-1 peer, whose Data frames carried one signature per message)
        let mut v = good.clone();
        v[4] = 1;
        assert_eq!(Frame::decode(&v).unwrap_err(), WireError::Version(1));
        // a peer of the previous version (issue 11: its offers name no currency)
        v[4] = 2;
        assert_eq!(Frame::decode(&v).unwrap_err(), WireError::Version(2));
        assert_eq!(
            Frame::decode(&v).unwrap_err().to_string(),
            "unsupported frame version 2"
        );
        // a Merkle path longer than any batch allows is refused while decoding
        let Some(Frame::Data(mut data)) = samples().into_iter().find(|f| matches!(f, Frame::Data(_)))
        else {
            panic!("samples hold a Data frame")
        };
        data.proof.path = vec![B256::repeat_byte(6); crate::proof::MAX_PROOF_DEPTH + 1];
        let long = Frame::Data(data).encode().unwrap();
        assert!(Frame::decode(&long).is_err());
        // trailing byte inside the declared body
        let mut t = good.clone();
        t.push(0);
        let len = (t.len() - 4) as u32;
        t[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Frame::decode(&t).unwrap_err(),
            WireError::Trailing(1)
        ));
        // truncated
        assert_eq!(
            Frame::decode(&good[..good.len() - 1]).unwrap_err(),
            WireError::Truncated
        );
        // huge length prefix: rejected before buffering
        let mut dec = FrameDecoder::new();
        assert!(matches!(
            dec.feed(&[0xff, 0xff, 0xff, 0xff]),
            Err(WireError::TooLarge { .. })
        ));
        assert_eq!(dec.next_frame().unwrap_err(), WireError::Poisoned);
        // zero length
        assert_eq!(Frame::decode(&[0, 0, 0, 0]).unwrap_err(), WireError::Empty);
        // a Data frame claiming a 2^60-byte payload
        let mut evil = vec![0u8, 0, 0, 0, VERSION, 7];
        evil.extend_from_slice(&[0u8; 32 + 1 + 1 + 32 + 32]);
        evil.push(65);
        evil.extend_from_slice(&[0u8; 65]);
        evil.push(255);
        evil.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let len = (evil.len() - 4) as u32;
        evil[..4].copy_from_slice(&len.to_be_bytes());
        assert!(Frame::decode(&evil).is_err());
    }

    #[test]
    fn hashes_of_the_wrong_length_are_refused() {
        #[derive(Serialize, Deserialize, Debug)]
        struct H(#[serde(with = "adapters::b256")] B256);
        let cfg = bincode::config::standard();
        let ok = bincode::serde::encode_to_vec(H(B256::repeat_byte(7)), cfg).unwrap();
        assert_eq!(ok.len(), 33, "one length byte, then the 32 bytes");
        let (back, _): (H, _) = bincode::serde::borrow_decode_from_slice(&ok, cfg).unwrap();
        assert_eq!(back.0, B256::repeat_byte(7));
        for len in [0usize, 31, 33, 64] {
            let mut bytes = vec![len as u8];
            bytes.extend(std::iter::repeat_n(7u8, len));
            let r = bincode::serde::borrow_decode_from_slice::<H, _>(&bytes, cfg);
            assert!(r.is_err(), "a {len}-byte hash must be refused");
        }
    }

    #[test]
    fn data_frame_is_compact() {
        let f = Frame::Data(Data {
            message: Message {
                streamId: B256::ZERO,
                seq: 1,
                timestamp: 1_700_000_000_000,
                payloadHash: B256::ZERO,
                prev: B256::ZERO,
            },
            proof: crate::proof::MessageProof {
                batch: crate::types::Batch {
                    streamId: B256::ZERO,
                    firstSeq: 0,
                    lastSeq: 63,
                    root: B256::ZERO,
                },
                sig: sig(1),
                path: vec![B256::ZERO; 6],
            },
            payload: vec![0; 100],
        });
        let n = f.encode().unwrap().len();
        // Message (3 hashes, 2 varints), batch (2 hashes, 2 varints), signature, 6-hash path,
        // payload, and a few bytes of framing; every hash and the signature carry one length byte.
        assert!(n < 33 * 5 + 2 * 9 + 66 + 1 + 6 * 33 + 101 + 10, "{n}");
    }
}
