// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// The signed statements of the Supra protocol. This file is the single source of truth for their
// layout: the judge hashes them with EIP-712, and the Rust engine (`supra-channel`) reads this very
// file through alloy's `sol!` macro, so both sides compute identical digests by construction.
// EIP-712 domain: {name: "Supra", version: "1", chainId, verifyingContract: the judge}.
//
// Field order and types are part of the protocol: changing them changes every digest.

/// @notice A seller's signed terms for one channel. The buyer opens the channel on-chain with it.
/// @dev channelId = uint256(EIP-712 digest of the offer): unique per offer, so an offer opens at most
///      one channel and an id is never reused.
struct Offer {
    /// Seller address in the high 20 bytes, seller-chosen stream number in the low 12 bytes.
    bytes32 streamId;
    /// Must equal the high 20 bytes of streamId.
    address seller;
    address buyer;
    /// Price per message, in the smallest unit of `token` (wei for ETH).
    uint256 price;
    /// The currency of `price` and of the deposit: an ERC-20 token (EIP-2612 permit for one-transaction
    /// opens), or address(0) for ETH.
    address token;
    /// W: most messages in flight without an ack; also the most posted messages claimable after the last ack.
    uint64 window;
    /// First stream sequence number this channel buys.
    uint64 startSeq;
    /// T_ack in seconds: a message must be acked or posted on-chain within T_ack of its timestamp;
    /// also the defence window of an accusation.
    uint32 tAck;
    /// T_closure in seconds: delay between a close request and settlement.
    uint32 tClosure;
    /// Unix seconds after which the offer can no longer open a channel.
    uint64 validUntil;
    /// Seller-chosen, never repeated for the same (stream, buyer).
    uint256 nonce;
}

/// @notice One message of a stream's chain, signed once by the seller for all its buyers, as a leaf of a
///         signed `Batch`.
struct Message {
    bytes32 streamId;
    uint64 seq;
    /// Unix milliseconds at which the seller signed the message.
    uint64 timestamp;
    /// keccak256 of the sealed payload (the only form of the payload that ever leaves the seller).
    bytes32 payloadHash;
    /// EIP-712 digest of message seq-1 of the same stream; zero for the stream's first message.
    bytes32 prev;
}

/// @notice The seller's one signature over a run of consecutive messages of its stream: the Merkle root
///         of their digests. The seller signs batches, never single messages; a message is seller-signed
///         when a Merkle path leads from its digest to the root of a seller-signed batch of the same stream
///         whose range holds its seq (a batch of one message has `root` = that message's digest, no path).
/// @dev The tree (docs/PROTOCOL.md §1): leaves are the EIP-712 digests of messages `firstSeq..=lastSeq`
///      in order; a parent is keccak256 of its two children in ascending order (OpenZeppelin's
///      `Hashes.commutativeKeccak256`); a level with an odd count carries its last node up unchanged.
///      `lastSeq - firstSeq < MAX_BATCH` (256), so a path has at most 8 hashes.
struct Batch {
    bytes32 streamId;
    uint64 firstSeq;
    uint64 lastSeq;
    /// Merkle root over the digests of messages firstSeq..=lastSeq.
    bytes32 root;
}

/// @notice What proves that the seller signed a message (not itself a signed statement): a batch, the
///         seller's signature of it, and the message digest's Merkle path to the batch's root.
struct BatchProof {
    Batch batch;
    /// The seller's 65-byte low-s signature of `batch`.
    bytes sig;
    /// Sibling hashes from the leaf up (at most 8).
    bytes32[] path;
}

/// @notice The buyer's cumulative acknowledgement: it received every message of the channel up to seq.
struct Ack {
    uint256 channelId;
    uint64 seq;
    /// EIP-712 digest of message seq.
    bytes32 digest;
    /// Cumulative cost: (seq - startSeq + 1) * price. Anything else is provable misbehaviour.
    uint256 cost;
    /// Unix milliseconds at which the buyer signed the ack.
    uint64 timestamp;
}

/// @notice Either side ends the off-chain exchange: the seller sends nothing after seq, the buyer
///         accepts nothing after seq.
struct Stop {
    uint256 channelId;
    uint64 seq;
    /// Unix milliseconds.
    uint64 timestamp;
}

/// @notice Mutual authentication of two brokers on a peer link: each signs the other's fresh nonce.
struct PeerAuth {
    /// The signer.
    address from;
    /// The peer it is talking to.
    address to;
    bytes32 nonceFrom;
    bytes32 nonceTo;
}
