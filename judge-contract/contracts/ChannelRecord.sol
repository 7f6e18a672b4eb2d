// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Storage layout of a channel: five words, each a user-defined value type with pure accessors (as
// Uniswap v4's Slot0), so that every function reads each word it needs once and writes it once.
//
//   word      bits      field
//   streamId  0..255    stream id (the seller is its high 20 bytes)                 written by open
//   Account   0..159    buyer                                                       written by open
//             160..255  deposit F (wei, uint96)
//   Terms     0..71     price P (wei, uint72: MAX_PRICE)                            written by open
//             72..103   window W (uint32)
//             104..167  startSeq (uint64)
//             168..191  tAck (seconds, uint24: MAX_T_ACK < 2^24)
//             192..215  tClosure (seconds, uint24: MAX_T_CLOSURE < 2^24)
//             216..254  openedAt (seconds, uint39: until the year 19 400)
//             255       token channel: the currency is the ERC-20 of `_tokens[channelId]`, not ETH
//   Progress  0..95     claimed R (wei, uint96)                                     zero at open
//             96..167   acked: messages covered by the highest claimed ack (uint72)
//             168..207  closeRequestedAt (seconds, uint40)
//             208..215  phase: 0 Open, 1 Closing, 2 Settled
//             216..255  extendedAt (seconds, uint40): last claim raising acked, or top-up
//   Pending   0..71     postedClaim: messages covered by the recorded posted claim  zero at open
//             72..135   disputeSeq (uint64)
//             136..175  disputeDeadline (seconds, uint40; 0 = no accusation open)
//             176..215  disputePostBy (seconds, uint40): a posting answers if mined by then
//             216..255  sellerStop: 0 = none, else 1 + messages the seller's lowest Stop leaves owed
//                       (counted from startSeq; clamped to 2^40 - 2, i.e. a Stop more than ~10^12
//                       messages after startSeq bounds as if it were there)
//
// `open` writes only the first three words (a fresh storage word costs 22.1k gas); what `open` would
// set to zero lives in Progress and Pending. No buyer means no channel (status None). Counts are uint72
// because `seq - startSeq + 1` can reach 2^64. Setters assume in-range values: callers check amounts
// against uint96 on entry, and every other value is bounded by construction (documented at each call).

type Account is uint256;
type Terms is uint256;
type Progress is uint256;
type Pending is uint256;

struct ChannelRecord {
    bytes32 streamId;
    Account account;
    Terms terms;
    Progress progress;
    Pending pending;
}

/// @dev Phase values stored in Progress.
uint256 constant PHASE_OPEN = 0;
uint256 constant PHASE_CLOSING = 1;
uint256 constant PHASE_SETTLED = 2;

uint256 constant MASK_24 = (1 << 24) - 1;
uint256 constant MASK_32 = (1 << 32) - 1;
uint256 constant MASK_39 = (1 << 39) - 1;
uint256 constant MASK_40 = (1 << 40) - 1;
uint256 constant MASK_64 = (1 << 64) - 1;
uint256 constant MASK_72 = (1 << 72) - 1;
uint256 constant MASK_96 = (1 << 96) - 1;
uint256 constant MASK_160 = (1 << 160) - 1;

using AccountLib for Account global;
using TermsLib for Terms global;
using ProgressLib for Progress global;
using PendingLib for Pending global;

library AccountLib {
    function pack(address buyer_, uint256 deposit_) internal pure returns (Account) {
        return Account.wrap(uint256(uint160(buyer_)) | (deposit_ << 160));
    }

    function buyer(Account a) internal pure returns (address) {
        return address(uint160(Account.unwrap(a)));
    }

    function deposit(Account a) internal pure returns (uint256) {
        return Account.unwrap(a) >> 160;
    }

    function withDeposit(Account a, uint256 deposit_) internal pure returns (Account) {
        return Account.wrap((Account.unwrap(a) & MASK_160) | (deposit_ << 160));
    }
}

library TermsLib {
    /// @dev `price_ < 2^72`, `window_ < 2^32`, `startSeq_ < 2^64`, `tAck_`, `tClosure_ < 2^24` (checked by
    ///      `open`); `openedAt_` is a block timestamp (masked to 39 bits); `isToken_`: the channel is paid
    ///      in an ERC-20 token (stored beside the record), not in ETH.
    function pack(
        uint256 price_,
        uint256 window_,
        uint256 startSeq_,
        uint256 tAck_,
        uint256 tClosure_,
        uint256 openedAt_,
        bool isToken_
    ) internal pure returns (Terms) {
        return Terms.wrap(
            price_ | (window_ << 72) | (startSeq_ << 104) | (tAck_ << 168) | (tClosure_ << 192)
                | ((openedAt_ & MASK_39) << 216) | (isToken_ ? 1 << 255 : 0)
        );
    }

    function price(Terms t) internal pure returns (uint256) {
        return Terms.unwrap(t) & MASK_72;
    }

    function window(Terms t) internal pure returns (uint256) {
        return (Terms.unwrap(t) >> 72) & MASK_32;
    }

    function startSeq(Terms t) internal pure returns (uint64) {
        return uint64(Terms.unwrap(t) >> 104);
    }

    function tAck(Terms t) internal pure returns (uint256) {
        return (Terms.unwrap(t) >> 168) & MASK_24;
    }

    function tClosure(Terms t) internal pure returns (uint256) {
        return (Terms.unwrap(t) >> 192) & MASK_24;
    }

    function openedAt(Terms t) internal pure returns (uint256) {
        return (Terms.unwrap(t) >> 216) & MASK_39;
    }

    /// @dev True when the channel's currency is an ERC-20 token, false for ETH.
    function isToken(Terms t) internal pure returns (bool) {
        return Terms.unwrap(t) >> 255 != 0;
    }
}

library ProgressLib {
    function claimed(Progress p) internal pure returns (uint256) {
        return Progress.unwrap(p) & MASK_96;
    }

    function acked(Progress p) internal pure returns (uint256) {
        return (Progress.unwrap(p) >> 96) & MASK_72;
    }

    function closeRequestedAt(Progress p) internal pure returns (uint256) {
        return (Progress.unwrap(p) >> 168) & MASK_40;
    }

    function phase(Progress p) internal pure returns (uint256) {
        return (Progress.unwrap(p) >> 208) & 0xff;
    }

    function extendedAt(Progress p) internal pure returns (uint256) {
        return Progress.unwrap(p) >> 216;
    }

    /// @dev `time` is a block timestamp (masked to 40 bits).
    function withExtendedAt(Progress p, uint256 time) internal pure returns (Progress) {
        return Progress.wrap((Progress.unwrap(p) & ~(MASK_40 << 216)) | ((time & MASK_40) << 216));
    }

    /// @dev `claimed_ <= deposit <= type(uint96).max`.
    function withClaimed(Progress p, uint256 claimed_) internal pure returns (Progress) {
        return Progress.wrap((Progress.unwrap(p) & ~MASK_96) | claimed_);
    }

    /// @dev `acked_ <= 2^64` (a count of seqs).
    function withAcked(Progress p, uint256 acked_) internal pure returns (Progress) {
        return Progress.wrap((Progress.unwrap(p) & ~(MASK_72 << 96)) | (acked_ << 96));
    }

    /// @dev Moves an Open channel to Closing at `time` (a block timestamp: < 2^40 until the year 36812;
    ///      masked so that it can never spill into the phase).
    function closing(Progress p, uint256 time) internal pure returns (Progress) {
        return Progress.wrap(
            (Progress.unwrap(p) & (MASK_96 | (MASK_72 << 96) | (MASK_40 << 216))) | ((time & MASK_40) << 168)
                | (PHASE_CLOSING << 208)
        );
    }

    function settled(Progress p) internal pure returns (Progress) {
        return Progress.wrap((Progress.unwrap(p) & ~(uint256(0xff) << 208)) | (PHASE_SETTLED << 208));
    }
}

library PendingLib {
    function postedClaim(Pending p) internal pure returns (uint256) {
        return Pending.unwrap(p) & MASK_72;
    }

    function disputeSeq(Pending p) internal pure returns (uint64) {
        return uint64(Pending.unwrap(p) >> 72);
    }

    function disputeDeadline(Pending p) internal pure returns (uint256) {
        return (Pending.unwrap(p) >> 136) & MASK_40;
    }

    /// @dev `postedClaim_ <= 2^64` (a count of seqs).
    function withPostedClaim(Pending p, uint256 postedClaim_) internal pure returns (Pending) {
        return Pending.wrap((Pending.unwrap(p) & ~MASK_72) | postedClaim_);
    }

    function disputePostBy(Pending p) internal pure returns (uint256) {
        return (Pending.unwrap(p) >> 176) & MASK_40;
    }

    /// @dev 0: no seller Stop recorded; else 1 + the messages it leaves owed (clamped).
    function sellerStop(Pending p) internal pure returns (uint256) {
        return Pending.unwrap(p) >> 216;
    }

    /// @dev `deadline` and `postBy` are block timestamps plus a uint24 (< 2^40 for millennia; masked all
    ///      the same).
    function withDispute(Pending p, uint64 seq, uint256 deadline, uint256 postBy) internal pure returns (Pending) {
        return Pending.wrap(
            (Pending.unwrap(p) & (MASK_72 | (MASK_40 << 216))) | (uint256(seq) << 72) | ((deadline & MASK_40) << 136)
                | ((postBy & MASK_40) << 176)
        );
    }

    function withoutDispute(Pending p) internal pure returns (Pending) {
        return Pending.wrap(Pending.unwrap(p) & (MASK_72 | (MASK_40 << 216)));
    }

    /// @dev `stop` < 2^40 (callers clamp).
    function withSellerStop(Pending p, uint256 stop) internal pure returns (Pending) {
        return Pending.wrap((Pending.unwrap(p) & ~(MASK_40 << 216)) | (stop << 216));
    }
}
