// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Offer, Message, Batch, Ack, Stop, PeerAuth} from "./SupraTypes.sol";

/// @title SupraHashing
/// @notice EIP-712 `hashStruct` of the Supra signed statements declared in SupraTypes.sol.
/// @dev Every field of every statement is an atomic type, so `encodeData` is the ABI encoding of the
///      fields in order, which is exactly how a static struct lies in calldata: each hash copies the
///      struct's words after its type hash and hashes them (about 1k gas cheaper than `abi.encode`).
///      Like the ABI decoder, it reverts (empty data) on a non-canonical encoding, i.e. an address or a
///      uintN field with dirty high bits, so a digest is always that of a well-formed statement.
///      The type strings must match SupraTypes.sol field for field (a test checks each digest against a
///      field-by-field `abi.encode`, another one checks the revert on dirty fields).
library SupraHashing {
    bytes32 internal constant OFFER_TYPEHASH = keccak256(
        "Offer(bytes32 streamId,address seller,address buyer,uint256 price,address token,uint64 window,"
        "uint64 startSeq,"
        "uint32 tAck,uint32 tClosure,uint64 validUntil,uint256 nonce)"
    );
    bytes32 internal constant MESSAGE_TYPEHASH =
        keccak256("Message(bytes32 streamId,uint64 seq,uint64 timestamp,bytes32 payloadHash,bytes32 prev)");
    bytes32 internal constant BATCH_TYPEHASH =
        keccak256("Batch(bytes32 streamId,uint64 firstSeq,uint64 lastSeq,bytes32 root)");
    bytes32 internal constant ACK_TYPEHASH =
        keccak256("Ack(uint256 channelId,uint64 seq,bytes32 digest,uint256 cost,uint64 timestamp)");
    bytes32 internal constant STOP_TYPEHASH = keccak256("Stop(uint256 channelId,uint64 seq,uint64 timestamp)");
    bytes32 internal constant PEER_AUTH_TYPEHASH =
        keccak256("PeerAuth(address from,address to,bytes32 nonceFrom,bytes32 nonceTo)");

    /// @dev Offer: 11 words; seller, buyer, token are addresses, window, startSeq, validUntil uint64, tAck, tClosure
    ///      uint32.
    function hash(Offer calldata o) internal pure returns (bytes32 h) {
        bytes32 typeHash = OFFER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), o, 0x160)
            let dirty := or(shr(160, mload(add(m, 0x40))), shr(160, mload(add(m, 0x60))))
            dirty := or(dirty, shr(160, mload(add(m, 0xa0))))
            dirty := or(dirty, or(shr(64, mload(add(m, 0xc0))), shr(64, mload(add(m, 0xe0)))))
            dirty := or(dirty, or(shr(32, mload(add(m, 0x100))), shr(32, mload(add(m, 0x120)))))
            dirty := or(dirty, shr(64, mload(add(m, 0x140))))
            if dirty { revert(0, 0) }
            h := keccak256(m, 0x180)
        }
    }

    /// @dev Message: 5 words; seq and timestamp are uint64.
    function hash(Message calldata msg_) internal pure returns (bytes32 h) {
        bytes32 typeHash = MESSAGE_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), msg_, 0xa0)
            if or(shr(64, mload(add(m, 0x40))), shr(64, mload(add(m, 0x60)))) { revert(0, 0) }
            h := keccak256(m, 0xc0)
        }
    }

    /// @dev Batch: 4 words; firstSeq and lastSeq are uint64. A `Batch` inside a calldata `BatchProof` lies
    ///      inline at the proof's offset (it is a static struct), so `proof.batch` hashes in place.
    function hash(Batch calldata b) internal pure returns (bytes32 h) {
        bytes32 typeHash = BATCH_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), b, 0x80)
            if or(shr(64, mload(add(m, 0x40))), shr(64, mload(add(m, 0x60)))) { revert(0, 0) }
            h := keccak256(m, 0xa0)
        }
    }

    /// @dev Ack: 5 words; seq and timestamp are uint64.
    function hash(Ack calldata a) internal pure returns (bytes32 h) {
        bytes32 typeHash = ACK_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), a, 0xa0)
            if or(shr(64, mload(add(m, 0x40))), shr(64, mload(add(m, 0xa0)))) { revert(0, 0) }
            h := keccak256(m, 0xc0)
        }
    }

    /// @dev Stop: 3 words; seq and timestamp are uint64.
    function hash(Stop calldata s) internal pure returns (bytes32 h) {
        bytes32 typeHash = STOP_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), s, 0x60)
            if or(shr(64, mload(add(m, 0x40))), shr(64, mload(add(m, 0x60)))) { revert(0, 0) }
            h := keccak256(m, 0x80)
        }
    }

    /// @dev PeerAuth: 4 words; from and to are addresses.
    function hash(PeerAuth calldata p) internal pure returns (bytes32 h) {
        bytes32 typeHash = PEER_AUTH_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), p, 0x80)
            if or(shr(160, mload(add(m, 0x20))), shr(160, mload(add(m, 0x40)))) { revert(0, 0) }
            h := keccak256(m, 0xa0)
        }
    }
}
