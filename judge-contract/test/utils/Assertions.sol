// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev Minimal assertions: a failed one reverts with the values, which forge decodes in its report.
abstract contract Assertions {
    error AssertionFailed(string what);
    error AssertEqUint(string what, uint256 left, uint256 right);
    error AssertEqBytes32(string what, bytes32 left, bytes32 right);
    error AssertEqAddress(string what, address left, address right);
    error AssertLe(string what, uint256 left, uint256 right);
    error AssertGe(string what, uint256 left, uint256 right);

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert AssertionFailed(what);
    }

    function assertEq(uint256 left, uint256 right, string memory what) internal pure {
        if (left != right) revert AssertEqUint(what, left, right);
    }

    function assertEq(bytes32 left, bytes32 right, string memory what) internal pure {
        if (left != right) revert AssertEqBytes32(what, left, right);
    }

    function assertEq(address left, address right, string memory what) internal pure {
        if (left != right) revert AssertEqAddress(what, left, right);
    }

    function assertEq(string memory left, string memory right, string memory what) internal pure {
        if (keccak256(bytes(left)) != keccak256(bytes(right))) revert AssertionFailed(what);
    }

    function assertLe(uint256 left, uint256 right, string memory what) internal pure {
        if (left > right) revert AssertLe(what, left, right);
    }

    function assertGe(uint256 left, uint256 right, string memory what) internal pure {
        if (left < right) revert AssertGe(what, left, right);
    }

    /// @dev Maps `x` into [lo, hi] (inclusive), uniformly enough for fuzzing; keeps small values as-is.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (lo > hi) revert AssertionFailed("bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 size = hi - lo;
        if (size == type(uint256).max) return x;
        return lo + (x % (size + 1));
    }
}
