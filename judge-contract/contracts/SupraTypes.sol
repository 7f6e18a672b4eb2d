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
    /// Wei per message.
    uint256 price;
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

/// @notice One message of a stream's signed chain, signed once by the seller for all its buyers.
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
