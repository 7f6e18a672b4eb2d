// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev An independent Merkle tree builder for the tests (docs/PROTOCOL.md section 1, Batches): a parent is
///      keccak256 of its two children in ascending order, a level with an odd count carries its last node up
///      unchanged (no sibling in the path for it). Written from the spec, not from OpenZeppelin's verifier.
library MerkleBuilder {
    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    /// @dev The level above `level`.
    function levelUp(bytes32[] memory level) internal pure returns (bytes32[] memory up) {
        up = new bytes32[]((level.length + 1) / 2);
        for (uint256 i = 0; i < up.length; ++i) {
            up[i] = 2 * i + 1 < level.length ? hashPair(level[2 * i], level[2 * i + 1]) : level[2 * i];
        }
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            level = levelUp(level);
        }
        return level[0];
    }

    /// @dev The path of leaf `index`, from the leaf up (no entry on a level where the node has no sibling).
    function path(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory out) {
        bytes32[] memory buf = new bytes32[](16);
        uint256 n = 0;
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) buf[n++] = level[sibling];
            level = levelUp(level);
            index /= 2;
        }
        out = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            out[i] = buf[i];
        }
    }

    /// @dev What `siblings` (a path) fold `leaf` onto.
    function fold(bytes32 leaf, bytes32[] memory siblings) internal pure returns (bytes32 node) {
        node = leaf;
        for (uint256 i = 0; i < siblings.length; ++i) {
            node = hashPair(node, siblings[i]);
        }
    }
}
