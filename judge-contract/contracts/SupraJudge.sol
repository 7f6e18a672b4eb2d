// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop, PeerAuth} from "./SupraTypes.sol";
import {ISupraJudge} from "./ISupraJudge.sol";
import {SupraHashing} from "./SupraHashing.sol";
import {
    ChannelRecord,
    Account,
    AccountLib,
    Terms,
    TermsLib,
    Progress,
    Pending,
    PHASE_OPEN,
    PHASE_CLOSING,
    PHASE_SETTLED,
    MASK_32,
    MASK_40
} from "./ChannelRecord.sol";

/// @title SupraJudge
/// @notice Judge of Supra payment channels: per-message payment for live MQTT streams sold between brokers,
///         with the rules of docs/PROTOCOL.md section 2. See {ISupraJudge} for the behaviour of each function.
///
/// @dev Storage. A channel is five words (ChannelRecord.sol), of which `open` writes only three: the stream
///      id, the buyer with the deposit, and the terms. Claims, acks, closing and disputes live in two words
///      that are zero at open. The seller is not stored: it is the high 20 bytes of the stream id. Amounts
///      are uint96 (79 billion ether), checked on entry; the window is uint32.
///      A posting is one word per `(streamId, seq)`: the first 24 bytes of the message digest (enough to tell
///      a repeat from a conflicting post; every proof recomputes full digests from signed messages) and the
///      block time of the `post` (seconds): a posting's time is when it was mined, never a timestamp the
///      seller signs, and every deadline about postings ({claimPosted} after a close, {accuse}, {defend},
///      {resolve}) compares that block time.
///
///      Time. Besides postings, the judge records when a channel was opened (`openedAt`) and when what it
///      is owed last grew (`extendedAt`: a claim raising `acked`, or a top-up). An accusation's posting
///      limit runs from the latest of those and the seen message's timestamp, capped at the accusation.
///
///      Signatures of messages. The seller signs batches, never single messages (docs/PROTOCOL.md section 1,
///      Batches): a message is seller-signed when its `BatchProof` holds, which {_checkSigned} checks for
///      {post}, {accuse} and {proveEquivocation} alike: the batch is of the message's stream, its range
///      holds the message's seq and spans at most {MAX_BATCH} seqs, the Merkle path (at most
///      {MAX_PROOF_DEPTH} hashes) folds the message's digest, which the judge recomputes from the message,
///      onto the batch's root, and the seller signed the batch.
///
///      Payments. Every transfer is the last step of a call, after all its state changes
///      (checks-effects-interactions): a payee that re-enters sees the final state, and no function uses a
///      cached value after a transfer. Payments are pushed, so that a seller's claim or a buyer's refund is
///      one transaction, but with a bounded gas allowance ({PAYOUT_GAS}) and no return data copy; if a push
///      fails (a payee whose code reverts or needs more gas), the amount is credited to the payee, who pulls
///      it with {withdraw}. Hence no payee can block a settlement or make its caller spend more than
///      {PAYOUT_GAS} on it, and no ether can get stuck.
///
///      Currencies (issue 14). An offer names its currency, `token` (address(0): ETH). A token channel is
///      flagged in its terms word and its token stored beside the record (`_tokens`, one word written only
///      for token channels, read only when the flag says so: ETH channels pay no extra storage read). Every
///      payout goes through {_pay}: ETH as above; a token with OpenZeppelin's `trySafeTransfer` (a failure,
///      revert or `false`, is credited for {withdrawToken}, so a token that refuses a payee cannot block a
///      settlement either). Token deposits credit what actually arrived (the judge's balance delta around
///      `transferFrom`), so a fee-on-transfer token is credited net. The deposit functions make an external
///      call before their effects (the balance delta needs it), so they hold a transient lock ({Reentrant})
///      and read the channel record only after the transfer; every other function keeps
///      checks-effects-interactions. The judge trusts a token's `balanceOf` and `transfer` only for that
///      token's own channels: each channel's deposit is accounted in its own currency.
contract SupraJudge is ISupraJudge, EIP712 {
    /// @inheritdoc ISupraJudge
    uint256 public constant PAYOUT_GAS = 50_000;
    /// @inheritdoc ISupraJudge
    uint256 public constant MAX_PAYLOAD_BYTES = 98_304;
    /// @inheritdoc ISupraJudge
    uint32 public constant MAX_T_ACK = 1 days;
    /// @inheritdoc ISupraJudge
    uint32 public constant MAX_T_CLOSURE = 7 days;
    /// @inheritdoc ISupraJudge
    uint256 public constant MAX_PRICE = (1 << 72) - 1;
    /// @inheritdoc ISupraJudge
    uint256 public constant MAX_BATCH = 256;
    /// @inheritdoc ISupraJudge
    uint256 public constant MAX_PROOF_DEPTH = 8;

    mapping(uint256 channelId => ChannelRecord) private _channels;
    /// @dev bytes24 digest prefix (high) ‖ uint32 message timestamp in seconds (clamped) ‖ uint32 block timestamp of
    ///      the post (low; good until 2106); zero = not posted.
    mapping(bytes32 streamId => mapping(uint64 seq => bytes32)) private _postings;
    mapping(address account => uint256) private _owed;
    /// @dev The ERC-20 of a token channel (Terms' token flag set); absent for ETH channels.
    mapping(uint256 channelId => address) private _tokens;
    mapping(address token => mapping(address account => uint256)) private _owedTokens;

    /// @dev Transient slot of the token deposit functions' lock: keccak256("supra.judge.deposit-lock") - 1.
    uint256 private constant _LOCK_SLOT = 0x944b9719ca57b212af8e6e240f07ad346e7c8d2fd3df63bef2e8500a003bf194;

    /// @dev The token deposit functions' lock ({Reentrant}): they call the token before their effects (the
    ///      balance delta needs it), so a token that re-enters one of them could be counted in another's
    ///      delta. Transient storage: cleared at the end of the call (and of the transaction in any case).
    ///      The judge only ever pulls tokens from `msg.sender`, so an allowance given to it cannot be spent
    ///      by anyone but its owner's own deposit calls.
    modifier depositLock() {
        uint256 locked;
        assembly ("memory-safe") {
            locked := tload(_LOCK_SLOT)
        }
        if (locked != 0) revert Reentrant();
        assembly ("memory-safe") {
            tstore(_LOCK_SLOT, 1)
        }
        _;
        assembly ("memory-safe") {
            tstore(_LOCK_SLOT, 0)
        }
    }

    constructor() EIP712("Supra", "1") {}

    // ------------------------------------------------------------------------------------------------
    // Channel life cycle
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc ISupraJudge
    function open(Offer calldata o, bytes calldata sellerSig) external payable returns (uint256 channelId) {
        bytes32 streamId;
        Terms terms;
        address token;
        (channelId, streamId, terms, token) = _checkOffer(o, sellerSig);
        if (token != address(0)) revert CurrencyMismatch(token);
        _record(channelId, streamId, terms, address(0), msg.value);
    }

    /// @inheritdoc ISupraJudge
    function openWithPermit(
        Offer calldata o,
        bytes calldata sellerSig,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external depositLock returns (uint256 channelId) {
        bytes32 streamId;
        Terms terms;
        address token;
        (channelId, streamId, terms, token) = _checkOffer(o, sellerSig);
        if (token == address(0)) revert CurrencyMismatch(address(0));
        _permit(token, amount, deadline, v, r, s);
        _record(channelId, streamId, terms, token, _pull(token, amount));
    }

    /// @inheritdoc ISupraJudge
    function openWithToken(Offer calldata o, bytes calldata sellerSig, uint256 amount)
        external
        depositLock
        returns (uint256 channelId)
    {
        bytes32 streamId;
        Terms terms;
        address token;
        (channelId, streamId, terms, token) = _checkOffer(o, sellerSig);
        if (token == address(0)) revert CurrencyMismatch(address(0));
        _record(channelId, streamId, terms, token, _pull(token, amount));
    }

    /// @inheritdoc ISupraJudge
    function topUp(uint256 channelId) external payable {
        if (_channels[channelId].terms.isToken()) revert CurrencyMismatch(_tokens[channelId]);
        _credit(channelId, msg.value);
    }

    /// @inheritdoc ISupraJudge
    function topUpWithPermit(uint256 channelId, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        depositLock
    {
        address token = _tokenOf(channelId);
        _permit(token, amount, deadline, v, r, s);
        _credit(channelId, _pull(token, amount));
    }

    /// @inheritdoc ISupraJudge
    function topUpWithToken(uint256 channelId, uint256 amount) external depositLock {
        _credit(channelId, _pull(_tokenOf(channelId), amount));
    }

    /// @inheritdoc ISupraJudge
    function post(Message calldata m, bytes calldata payload, BatchProof calldata proof) external {
        if (payload.length > MAX_PAYLOAD_BYTES) revert PayloadTooLarge(payload.length, MAX_PAYLOAD_BYTES);
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != m.payloadHash) revert PayloadMismatch(m.payloadHash, payloadHash);
        bytes32 digest = _hashTypedDataV4(SupraHashing.hash(m));
        bytes32 streamId = m.streamId;
        uint64 seq = m.seq;
        bytes32 stored = _postings[streamId][seq];
        if (stored != 0 && bytes24(stored) == bytes24(digest)) return; // the same message again
        _checkSigned(m, digest, proof, _seller(streamId));
        if (stored != 0) revert ConflictingPost(streamId, seq, bytes24(stored), digest);
        uint256 signedSecs = m.timestamp / 1000;
        if (signedSecs > MASK_32) signedSecs = MASK_32;
        _postings[streamId][seq] = bytes32(bytes24(digest)) | bytes32((signedSecs << 32) | (block.timestamp & MASK_32));
        emit Posted(streamId, seq, digest, m.timestamp, m.prev, payload, proof);
    }

    /// @inheritdoc ISupraJudge
    function claim(Ack calldata a, bytes calldata buyerSig) external {
        uint256 channelId = a.channelId;
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        Terms terms = c.terms;
        uint256 count = _checkAck(a, buyerSig, account.buyer(), terms);
        (Progress next, uint256 paid) = _applyAck(progress, account.deposit(), count * terms.price(), count);
        if (paid == 0) revert NothingToClaim(channelId, a.seq);
        c.progress = next;
        emit Claimed(channelId, a.seq, paid, next.claimed());
        _pay(channelId, terms, _seller(c.streamId), paid);
    }

    /// @inheritdoc ISupraJudge
    function claimPosted(uint256 channelId, uint64 uptoSeq) external {
        (ChannelRecord storage c,, Progress progress) = _live(channelId);
        bytes32 streamId = c.streamId;
        address seller = _seller(streamId);
        if (msg.sender != seller) revert NotSeller(msg.sender, seller);
        Terms terms = c.terms;
        uint64 startSeq = terms.startSeq();
        if (uptoSeq < startSeq) revert SeqBeforeStart(uptoSeq, startSeq);
        uint256 count = uint256(uptoSeq) - startSeq + 1;
        uint256 acked = progress.acked();
        uint256 window = terms.window();
        if (count <= acked || count > acked + window) {
            revert ClaimOutOfWindow(uptoSeq, startSeq + acked, startSeq + acked + window - 1);
        }
        Pending pending = c.pending;
        uint256 recorded = pending.postedClaim();
        if (count <= recorded) revert NothingToClaim(channelId, uptoSeq);
        uint256 stop = pending.sellerStop();
        if (stop != 0 && count >= stop) revert PastSellerStop(uptoSeq, stop - 1);

        // Seqs up to max(acked, recorded) are covered by a claimed ack or were checked by an earlier record
        // (made while Open, hence posted before the close, or while Closing, hence checked against it).
        // A Closing channel is owed what was in flight at the close: posted (mined) within T_ack of it.
        uint256 closeAt = progress.phase() == PHASE_CLOSING ? progress.closeRequestedAt() : type(uint256).max;
        uint256 limit = progress.phase() == PHASE_CLOSING ? closeAt + terms.tAck() : type(uint256).max;
        mapping(uint64 => bytes32) storage postings = _postings[streamId];
        for (uint256 seq = startSeq + (acked > recorded ? acked : recorded); seq <= uptoSeq; ++seq) {
            bytes32 p = postings[uint64(seq)];
            if (p == 0) revert NotPosted(streamId, uint64(seq));
            uint64 postedAt = _postedAt(p);
            if (postedAt > limit) revert PostedAfterClose(uint64(seq), postedAt, limit);
            // Also refused: a message the seller itself stamped after the close (never sent before it).
            uint64 signedSecs = _signedSecs(p);
            if (signedSecs > closeAt) revert PostedAfterClose(uint64(seq), signedSecs, closeAt);
        }

        c.pending = pending.withPostedClaim(count);
        emit PostedClaimRecorded(channelId, uptoSeq);
    }

    /// @inheritdoc ISupraJudge
    function requestClose(uint256 channelId) external {
        ChannelRecord storage c = _channels[channelId];
        Account account = c.account;
        Progress progress = c.progress;
        if (account.buyer() == address(0) || progress.phase() != PHASE_OPEN) {
            revert WrongStatus(channelId, _status(account, progress));
        }
        if (msg.sender != account.buyer() && msg.sender != _seller(c.streamId)) revert NotParty(msg.sender);
        c.progress = progress.closing(block.timestamp);
        emit CloseRequested(channelId, msg.sender, block.timestamp + c.terms.tClosure());
    }

    /// @inheritdoc ISupraJudge
    function settle(uint256 channelId) external {
        ChannelRecord storage c = _channels[channelId];
        Account account = c.account;
        Progress progress = c.progress;
        if (account.buyer() == address(0) || progress.phase() != PHASE_CLOSING) {
            revert WrongStatus(channelId, _status(account, progress));
        }
        Terms terms = c.terms;
        uint256 settleAfter = progress.closeRequestedAt() + terms.tClosure();
        if (block.timestamp < settleAfter) revert ClosureNotElapsed(settleAfter, block.timestamp);
        Pending pending = c.pending;
        if (pending.disputeDeadline() != 0) revert AccusationOpen(channelId, pending.disputeSeq());

        uint256 deposit = account.deposit();
        uint256 claimed = progress.claimed();
        uint256 toSeller = 0; // explicit (slither uninitialized-local); set below when a posted claim is due
        uint256 postedCost = pending.postedClaim() * terms.price();
        if (postedCost > claimed) toSeller = _min(postedCost - claimed, deposit - claimed);
        claimed += toSeller;
        uint256 toBuyer = deposit - claimed;

        c.progress = progress.withClaimed(claimed).settled();
        emit Settled(channelId, toSeller, toBuyer);
        if (toSeller != 0) _pay(channelId, terms, _seller(c.streamId), toSeller);
        _pay(channelId, terms, account.buyer(), toBuyer);
    }

    // ------------------------------------------------------------------------------------------------
    // Disputes and proofs
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc ISupraJudge
    function accuse(uint256 channelId, Message calldata seen, BatchProof calldata proof, uint64 missingSeq)
        external
    {
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        if (msg.sender != account.buyer()) revert NotBuyer(msg.sender, account.buyer());
        Terms terms = c.terms;
        if (progress.phase() == PHASE_CLOSING) {
            // Bounded delay: settle waits for at most one T_ack past T_closure.
            uint256 settleAfter = progress.closeRequestedAt() + terms.tClosure();
            if (block.timestamp >= settleAfter) revert ClosureElapsed(settleAfter, block.timestamp);
        }
        Pending pending = c.pending;
        if (pending.disputeDeadline() != 0) revert AccusationOpen(channelId, pending.disputeSeq());
        bytes32 streamId = c.streamId;
        if (seen.streamId != streamId) revert WrongStream(streamId, seen.streamId);
        _checkSigned(seen, _hashTypedDataV4(SupraHashing.hash(seen)), proof, _seller(streamId));
        uint256 startSeq = terms.startSeq();
        uint256 acked = progress.acked();
        if (missingSeq < startSeq + acked || missingSeq >= seen.seq) {
            revert MissingSeqOutOfRange(missingSeq, startSeq + acked, seen.seq);
        }
        uint256 owedCount = _owedCount(terms, acked, account.deposit(), pending);
        if (missingSeq - startSeq >= owedCount) revert NotOwed(missingSeq, startSeq + owedCount);

        uint256 tAck = terms.tAck();
        uint256 postBy = _anchor(seen.timestamp / 1000, terms.openedAt(), progress.extendedAt()) + tAck;
        bytes32 p = _postings[streamId][missingSeq];
        if (p != 0 && _postedAt(p) <= postBy) revert AlreadyPosted(streamId, missingSeq);

        uint256 deadline = block.timestamp + tAck;
        c.pending = pending.withDispute(missingSeq, deadline, postBy);
        emit Accused(channelId, missingSeq, seen.seq, deadline);
    }

    /// @inheritdoc ISupraJudge
    function defend(uint256 channelId) external {
        (ChannelRecord storage c,,) = _live(channelId);
        Pending pending = c.pending;
        if (pending.disputeDeadline() == 0) revert NoAccusation(channelId);
        uint64 missingSeq = pending.disputeSeq();
        bytes32 streamId = c.streamId;
        bytes32 p = _postings[streamId][missingSeq];
        if (p == 0) revert NotPosted(streamId, missingSeq);
        uint256 postBy = pending.disputePostBy();
        if (_postedAt(p) > postBy) revert DeadlinePassed(postBy, _postedAt(p));
        c.pending = pending.withoutDispute();
        emit Defended(channelId, missingSeq);
    }

    /// @inheritdoc ISupraJudge
    function defendWithAck(Ack calldata a, bytes calldata buyerSig) external {
        uint256 channelId = a.channelId;
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        Pending pending = c.pending;
        uint64 missingSeq = _answerable(channelId, pending);
        Terms terms = c.terms;
        uint256 count = _checkAck(a, buyerSig, account.buyer(), terms);
        if (a.seq < missingSeq) revert AckTooLow(a.seq, missingSeq);

        c.pending = pending.withoutDispute();
        emit Defended(channelId, missingSeq);
        (Progress next, uint256 paid) = _applyAck(progress, account.deposit(), count * terms.price(), count);
        if (Progress.unwrap(next) != Progress.unwrap(progress)) {
            c.progress = next;
            emit Claimed(channelId, a.seq, paid, next.claimed());
        }
        if (paid != 0) _pay(channelId, terms, _seller(c.streamId), paid);
    }

    /// @inheritdoc ISupraJudge
    function resolve(uint256 channelId) external {
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        Pending pending = c.pending;
        uint256 deadline = pending.disputeDeadline();
        if (deadline == 0) revert NoAccusation(channelId);
        if (block.timestamp <= deadline) revert DeadlineNotPassed(deadline, block.timestamp);
        uint64 missingSeq = pending.disputeSeq();
        bytes32 p = _postings[c.streamId][missingSeq];
        if (p != 0 && _postedAt(p) <= pending.disputePostBy()) {
            // Posted in time; its `defend` did not land before the deadline: the accusation is answered.
            c.pending = pending.withoutDispute();
            emit Defended(channelId, missingSeq);
            return;
        }
        uint256 refund = account.deposit() - progress.claimed();

        c.pending = pending.withoutDispute();
        c.progress = progress.settled();
        emit AccusationUpheld(channelId, missingSeq);
        emit Settled(channelId, 0, refund);
        _pay(channelId, c.terms, account.buyer(), refund);
    }

    /// @inheritdoc ISupraJudge
    function proveWrongCost(Ack calldata a, bytes calldata buyerSig) external {
        uint256 channelId = a.channelId;
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        _checkSigner(_hashTypedDataV4(SupraHashing.hash(a)), buyerSig, account.buyer());
        Terms terms = c.terms;
        uint64 startSeq = terms.startSeq();
        if (a.seq >= startSeq && a.cost == (uint256(a.seq) - startSeq + 1) * terms.price()) {
            revert CostIsCorrect(a.seq, a.cost);
        }
        uint256 deposit = account.deposit();
        uint256 penalty = deposit - progress.claimed();

        c.progress = progress.withClaimed(deposit).settled();
        _clearDispute(c);
        emit WrongCostProven(channelId, a.seq, a.cost);
        emit Settled(channelId, penalty, 0);
        _pay(channelId, terms, _seller(c.streamId), penalty);
    }

    /// @inheritdoc ISupraJudge
    function proveEquivocation(
        uint256 channelId,
        Message calldata a,
        BatchProof calldata proofA,
        Message calldata b,
        BatchProof calldata proofB
    ) external {
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        bytes32 streamId = c.streamId;
        if (a.streamId != streamId) revert WrongStream(streamId, a.streamId);
        if (b.streamId != streamId) revert WrongStream(streamId, b.streamId);
        Terms terms = c.terms;
        uint64 startSeq = terms.startSeq();
        if (a.seq < startSeq) revert SeqBeforeStart(a.seq, startSeq);
        bytes32 digestA = _hashTypedDataV4(SupraHashing.hash(a));
        bytes32 digestB = _hashTypedDataV4(SupraHashing.hash(b));
        bool sameSeq = a.seq == b.seq && digestA != digestB;
        bool brokenLink = uint256(b.seq) == uint256(a.seq) + 1 && b.prev != digestA;
        if (!sameSeq && !brokenLink) revert NotEquivocation(digestA, digestB);
        address seller = _seller(streamId);
        _checkSigned(a, digestA, proofA, seller);
        _checkSigned(b, digestB, proofB, seller);
        uint256 refund = account.deposit() - progress.claimed();

        c.progress = progress.settled();
        _clearDispute(c);
        emit EquivocationProven(channelId, a.seq, b.seq, digestA, digestB);
        emit Settled(channelId, 0, refund);
        _pay(channelId, terms, account.buyer(), refund);
    }

    /// @inheritdoc ISupraJudge
    function submitStop(Stop calldata s, bytes calldata sellerSig) external {
        uint256 channelId = s.channelId;
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        _checkSigner(_hashTypedDataV4(SupraHashing.hash(s)), sellerSig, _seller(c.streamId));
        Terms terms = c.terms;
        uint64 startSeq = terms.startSeq();
        uint256 count = s.seq >= startSeq ? uint256(s.seq) - startSeq + 1 : 0;
        if (count > MASK_40 - 2) count = MASK_40 - 2;
        Pending pending = c.pending;
        uint256 stop = pending.sellerStop();
        if (stop == 0 || count + 1 < stop) stop = count + 1;
        uint256 stopCount = stop - 1;
        pending = pending.withSellerStop(stop);

        uint256 postedClaim = pending.postedClaim();
        if (postedClaim > stopCount) {
            // The seller claimed posted messages past its own Stop: Lemma 3's penalty.
            uint256 refund = account.deposit() - progress.claimed();
            c.pending = pending.withoutDispute();
            c.progress = progress.settled();
            emit StopViolationProven(channelId, s.seq, postedClaim, stopCount);
            emit Settled(channelId, 0, refund);
            _pay(channelId, terms, account.buyer(), refund);
            return;
        }
        uint256 deadline = pending.disputeDeadline();
        if (deadline != 0 && block.timestamp <= deadline && pending.disputeSeq() - startSeq >= stopCount) {
            // The accused seq is after the seller's Stop: it was not owed.
            emit Defended(channelId, pending.disputeSeq());
            pending = pending.withoutDispute();
        }
        c.pending = pending;
        emit StopRecorded(channelId, s.seq, stopCount);
    }

    /// @inheritdoc ISupraJudge
    function closeCooperatively(Ack calldata a, bytes calldata buyerSig, Stop calldata s, bytes calldata sellerSig)
        external
    {
        uint256 channelId = a.channelId;
        (ChannelRecord storage c, Account account, Progress progress) = _live(channelId);
        Terms terms = c.terms;
        uint256 count = _checkAck(a, buyerSig, account.buyer(), terms);
        if (s.channelId != channelId || s.seq != a.seq) revert StopMismatch(channelId, a.seq, s.channelId, s.seq);
        address seller = _seller(c.streamId);
        _checkSigner(_hashTypedDataV4(SupraHashing.hash(s)), sellerSig, seller);
        uint256 deposit = account.deposit();
        (Progress next, uint256 toSeller) = _applyAck(progress, deposit, count * terms.price(), count);
        uint256 toBuyer = deposit - next.claimed();

        c.progress = next.settled();
        _clearDispute(c);
        emit ClosedCooperatively(channelId, a.seq);
        emit Settled(channelId, toSeller, toBuyer);
        if (toSeller != 0) _pay(channelId, terms, seller, toSeller);
        _pay(channelId, terms, account.buyer(), toBuyer);
    }

    /// @inheritdoc ISupraJudge
    function withdraw() external {
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        bool ok;
        assembly ("memory-safe") {
            ok := call(gas(), caller(), amount, 0, 0, 0, 0)
        }
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @inheritdoc ISupraJudge
    function withdrawToken(address token) external {
        uint256 amount = _owedTokens[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _owedTokens[token][msg.sender] = 0;
        emit TokenWithdrawn(token, msg.sender, amount);
        SafeERC20.safeTransfer(IERC20(token), msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc ISupraJudge
    function hashOffer(Offer calldata o) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(o));
    }

    /// @inheritdoc ISupraJudge
    function hashMessage(Message calldata m) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(m));
    }

    /// @inheritdoc ISupraJudge
    function hashBatch(Batch calldata b) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(b));
    }

    /// @inheritdoc ISupraJudge
    function hashAck(Ack calldata a) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(a));
    }

    /// @inheritdoc ISupraJudge
    function hashStop(Stop calldata s) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(s));
    }

    /// @inheritdoc ISupraJudge
    function hashPeerAuth(PeerAuth calldata p) external view returns (bytes32) {
        return _hashTypedDataV4(SupraHashing.hash(p));
    }

    /// @inheritdoc ISupraJudge
    function channel(uint256 channelId) external view returns (ChannelInfo memory info) {
        ChannelRecord storage c = _channels[channelId];
        Account account = c.account;
        Terms terms = c.terms;
        Progress progress = c.progress;
        Pending pending = c.pending;
        info.status = _status(account, progress);
        info.streamId = c.streamId;
        info.seller = _seller(c.streamId);
        info.buyer = account.buyer();
        info.price = terms.price();
        info.window = uint64(terms.window());
        info.startSeq = terms.startSeq();
        info.tAck = uint32(terms.tAck());
        info.tClosure = uint32(terms.tClosure());
        info.deposit = account.deposit();
        info.claimed = progress.claimed();
        info.acked = progress.acked();
        info.postedClaim = pending.postedClaim();
        info.closeRequestedAt = uint64(progress.closeRequestedAt());
        info.disputeSeq = pending.disputeSeq();
        info.disputeDeadline = uint64(pending.disputeDeadline());
    }

    /// @inheritdoc ISupraJudge
    function posting(bytes32 streamId, uint64 seq) external view returns (bytes24 digestPrefix, uint64 postedAt) {
        bytes32 p = _postings[streamId][seq];
        return (bytes24(p), _postedAt(p));
    }

    /// @inheritdoc ISupraJudge
    function channelTiming(uint256 channelId) external view returns (ChannelTiming memory t) {
        ChannelRecord storage c = _channels[channelId];
        Pending pending = c.pending;
        t.openedAt = uint64(c.terms.openedAt());
        t.extendedAt = uint64(c.progress.extendedAt());
        t.disputePostBy = uint64(pending.disputePostBy());
        uint256 stop = pending.sellerStop();
        t.sellerStopped = stop != 0;
        t.sellerStopCount = stop == 0 ? 0 : stop - 1;
    }

    /// @inheritdoc ISupraJudge
    function owed(address account) external view returns (uint256) {
        return _owed[account];
    }

    /// @inheritdoc ISupraJudge
    function owedToken(address token, address account) external view returns (uint256) {
        return _owedTokens[token][account];
    }

    /// @inheritdoc ISupraJudge
    function channelToken(uint256 channelId) external view returns (address) {
        return _tokens[channelId];
    }

    // ------------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------------

    /// @dev Checks an offer for opening (all of {open}'s rules but the deposit and the channel's freshness,
    ///      which {_record} checks once the deposit is known); returns the channel id (the offer's digest),
    ///      its stream, packed terms and currency.
    function _checkOffer(Offer calldata o, bytes calldata sellerSig)
        private
        view
        returns (uint256 channelId, bytes32 streamId, Terms terms, address token)
    {
        // Hash first: SupraHashing rejects any non-canonical field, so the raw reads below are clean.
        bytes32 digest = _hashTypedDataV4(SupraHashing.hash(o));
        channelId = uint256(digest);
        address offerSeller;
        address offerBuyer;
        uint256 price;
        uint256 window;
        uint256 startSeq;
        uint256 tAck;
        uint256 tClosure;
        uint256 validUntil;
        assembly ("memory-safe") {
            streamId := calldataload(o)
            offerSeller := calldataload(add(o, 0x20))
            offerBuyer := calldataload(add(o, 0x40))
            price := calldataload(add(o, 0x60))
            token := calldataload(add(o, 0x80))
            window := calldataload(add(o, 0xa0))
            startSeq := calldataload(add(o, 0xc0))
            tAck := calldataload(add(o, 0xe0))
            tClosure := calldataload(add(o, 0x100))
            validUntil := calldataload(add(o, 0x120))
        }
        if (msg.sender != offerBuyer) revert NotBuyer(msg.sender, offerBuyer);
        if (block.timestamp > validUntil) revert OfferExpired(uint64(validUntil), block.timestamp);
        address seller = _seller(streamId);
        if (offerSeller != seller) revert SellerMismatch(offerSeller, streamId);
        if (price == 0 || window == 0 || tAck == 0 || tClosure == 0) {
            revert InvalidTerms(price, uint64(window), uint32(tAck), uint32(tClosure));
        }
        if (tAck > MAX_T_ACK || tClosure > MAX_T_CLOSURE) {
            revert TermsTooLong(uint32(tAck), uint32(tClosure), MAX_T_ACK, MAX_T_CLOSURE);
        }
        if (price > MAX_PRICE) revert AmountTooLarge(price, MAX_PRICE);
        if (window > type(uint32).max) revert WindowTooLarge(uint64(window), type(uint32).max);
        _checkSigner(digest, sellerSig, seller);
        terms = TermsLib.pack(price, window, startSeq, tAck, tClosure, block.timestamp, token != address(0));
    }

    /// @dev Records a new channel of `deposit` (wei or `token` units) for the caller, the offer's buyer.
    function _record(uint256 channelId, bytes32 streamId, Terms terms, address token, uint256 deposit) private {
        uint256 required = terms.price() * terms.window();
        if (deposit < required) revert DepositTooSmall(deposit, required);
        if (deposit > type(uint96).max) revert AmountTooLarge(deposit, type(uint96).max);
        ChannelRecord storage c = _channels[channelId];
        if (c.account.buyer() != address(0)) revert ChannelExists(channelId);
        c.streamId = streamId;
        c.account = AccountLib.pack(msg.sender, deposit);
        c.terms = terms;
        if (token != address(0)) _tokens[channelId] = token;
        emit ChannelOpened(channelId, streamId, msg.sender, deposit);
    }

    /// @dev Adds `amount` to the deposit of an Open channel of the caller (its buyer). Reads the record here,
    ///      after any token transfer, so a token's re-entrant calls cannot leave it stale.
    function _credit(uint256 channelId, uint256 amount) private {
        ChannelRecord storage c = _channels[channelId];
        Account account = c.account;
        Progress progress = c.progress;
        if (account.buyer() == address(0) || progress.phase() != PHASE_OPEN) {
            revert WrongStatus(channelId, _status(account, progress));
        }
        if (msg.sender != account.buyer()) revert NotBuyer(msg.sender, account.buyer());
        if (amount == 0) revert ZeroAmount();
        uint256 deposit = account.deposit() + amount;
        if (deposit > type(uint96).max) revert AmountTooLarge(deposit, type(uint96).max);
        c.account = account.withDeposit(deposit);
        c.progress = progress.withExtendedAt(block.timestamp);
        emit ToppedUp(channelId, amount, deposit);
    }

    /// @dev The token of a token channel; reverts {CurrencyMismatch} for an ETH (or unknown) channel.
    function _tokenOf(uint256 channelId) private view returns (address) {
        if (!_channels[channelId].terms.isToken()) revert CurrencyMismatch(address(0));
        return _tokens[channelId];
    }

    /// @dev Tries the caller's EIP-2612 permit of `amount` to the judge. A failure is ignored: the permit may
    ///      have been front-run (its signature used by someone else, which sets the same allowance), and the
    ///      transfer that follows checks the allowance anyway.
    function _permit(address token, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) private {
        try IERC20Permit(token).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
    }

    /// @dev Pulls `amount` of `token` from the caller; returns what arrived (the judge's balance delta).
    function _pull(address token, uint256 amount) private returns (uint256 received) {
        uint256 before = IERC20(token).balanceOf(address(this));
        SafeERC20.safeTransferFrom(IERC20(token), msg.sender, address(this), amount);
        received = IERC20(token).balanceOf(address(this)) - before;
    }

    /// @dev The seller of a stream: the high 20 bytes of its id.
    function _seller(bytes32 streamId) private pure returns (address) {
        return address(bytes20(streamId));
    }

    function _status(Account account, Progress progress) private pure returns (Status) {
        if (account.buyer() == address(0)) return Status.None;
        return Status(progress.phase() + 1);
    }

    /// @dev Loads a channel that must be Open or Closing.
    function _live(uint256 channelId)
        private
        view
        returns (ChannelRecord storage c, Account account, Progress progress)
    {
        c = _channels[channelId];
        account = c.account;
        progress = c.progress;
        if (account.buyer() == address(0) || progress.phase() == PHASE_SETTLED) {
            revert WrongStatus(channelId, _status(account, progress));
        }
    }

    /// @dev Reverts unless an accusation is open and its deadline (inclusive) has not passed; returns its seq.
    function _answerable(uint256 channelId, Pending pending) private view returns (uint64) {
        uint256 deadline = pending.disputeDeadline();
        if (deadline == 0) revert NoAccusation(channelId);
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        return pending.disputeSeq();
    }

    /// @dev Block time of a posting (its low 32 bits).
    function _postedAt(bytes32 p) private pure returns (uint64) {
        return uint64(uint32(uint256(p)));
    }

    /// @dev The posted message's own timestamp, in seconds (bits 32..63 of a posting).
    function _signedSecs(bytes32 p) private pure returns (uint64) {
        return uint64(uint32(uint256(p) >> 32));
    }

    /// @dev Messages the channel is owed, counted from startSeq: the window after the last claimed ack, what
    ///      the deposit covers, and no further than the seller's recorded Stop.
    function _owedCount(Terms terms, uint256 acked, uint256 deposit, Pending pending)
        private
        pure
        returns (uint256 owedCount)
    {
        owedCount = acked + terms.window();
        uint256 covered = deposit / terms.price();
        if (covered < owedCount) owedCount = covered;
        uint256 stop = pending.sellerStop();
        if (stop != 0 && stop - 1 < owedCount) owedCount = stop - 1;
    }

    /// @dev The anchor of an accusation's posting limit: the latest of the seen message's time (s), the
    ///      channel's opening and its last extension; never after the accusation itself.
    function _anchor(uint256 seenSecs, uint256 openedAt, uint256 extendedAt) private view returns (uint256 anchor) {
        anchor = seenSecs;
        if (openedAt > anchor) anchor = openedAt;
        if (extendedAt > anchor) anchor = extendedAt;
        if (block.timestamp < anchor) anchor = block.timestamp;
    }

    function _clearDispute(ChannelRecord storage c) private {
        Pending pending = c.pending;
        if (pending.disputeDeadline() != 0) c.pending = pending.withoutDispute();
    }

    /// @dev Checks the buyer's signature, the seq and the cost of an ack; returns the number of messages it
    ///      covers, `seq - startSeq + 1`.
    function _checkAck(Ack calldata a, bytes calldata buyerSig, address buyer, Terms terms)
        private
        view
        returns (uint256 count)
    {
        _checkSigner(_hashTypedDataV4(SupraHashing.hash(a)), buyerSig, buyer);
        uint64 startSeq = terms.startSeq();
        if (a.seq < startSeq) revert SeqBeforeStart(a.seq, startSeq);
        count = uint256(a.seq) - startSeq + 1;
        uint256 expected = count * terms.price();
        if (a.cost != expected) revert WrongCost(a.seq, a.cost, expected);
    }

    /// @dev Effects of a valid ack covering `count` messages at `cost`: pays `min(cost - R, F - R)` (0 when
    ///      the ack is not ahead of R) and raises `acked` (then `extendedAt` = now: the window moved).
    ///      R stays <= F <= type(uint96).max.
    function _applyAck(Progress progress, uint256 deposit, uint256 cost, uint256 count)
        private
        view
        returns (Progress next, uint256 paid)
    {
        next = progress;
        uint256 claimed = progress.claimed();
        if (cost > claimed) {
            paid = _min(cost - claimed, deposit - claimed);
            next = next.withClaimed(claimed + paid);
        }
        if (count > progress.acked()) next = next.withAcked(count).withExtendedAt(block.timestamp);
    }

    /// @dev Reverts unless `p` shows that `seller` signed message `m`, whose EIP-712 digest is `digest`
    ///      (docs/PROTOCOL.md section 1, Batches): the batch is of `m`'s stream ({WrongStream}), its range holds
    ///      `m.seq` ({NotInBatch}), it spans at most {MAX_BATCH} seqs and the path has at most
    ///      {MAX_PROOF_DEPTH} hashes ({BatchTooLarge}), the path folds `digest` onto the batch's root
    ///      (sorted pairs, OpenZeppelin's `processProofCalldata`; {WrongRoot}), and `p.sig` is the seller's
    ///      signature of the batch's digest ({WrongSigner}, or OpenZeppelin's ECDSA errors).
    ///      The leaf is always the digest the judge computed from a `Message`: an inner node of a tree, or a
    ///      message digest signed directly (stage 1), is not a seller-signed message.
    function _checkSigned(Message calldata m, bytes32 digest, BatchProof calldata p, address seller) private view {
        Batch calldata b = p.batch;
        if (b.streamId != m.streamId) revert WrongStream(m.streamId, b.streamId);
        uint64 seq = m.seq;
        uint64 firstSeq = b.firstSeq;
        uint64 lastSeq = b.lastSeq;
        if (seq < firstSeq || seq > lastSeq) revert NotInBatch(seq, firstSeq, lastSeq);
        // firstSeq <= lastSeq here.
        if (lastSeq - firstSeq >= MAX_BATCH || p.path.length > MAX_PROOF_DEPTH) {
            revert BatchTooLarge(firstSeq, lastSeq, p.path.length);
        }
        bytes32 root = MerkleProof.processProofCalldata(p.path, digest);
        if (root != b.root) revert WrongRoot(b.root, root);
        _checkSigner(_hashTypedDataV4(SupraHashing.hash(b)), p.sig, seller);
    }

    /// @dev Reverts unless `sig` is a valid low-s 65-byte signature of `digest` by `expected`.
    function _checkSigner(bytes32 digest, bytes calldata sig, address expected) private pure {
        if (sig.length != 65) revert ECDSA.ECDSAInvalidSignatureLength(sig.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 32))
            v := byte(0, calldataload(add(sig.offset, 64)))
        }
        address recovered = ECDSA.recover(digest, v, r, s);
        if (recovered != expected) revert WrongSigner(expected, recovered);
    }

    /// @dev Pays `amount` of channel `channelId`'s currency (`terms`' token flag) to `to`: the one payout path.
    ///      ETH is pushed with {PAYOUT_GAS}; a token with OpenZeppelin's `trySafeTransfer`. On failure the
    ///      amount is credited to `to` for {withdraw} / {withdrawToken}. Called only as the last step of a state
    ///      change (checks-effects-interactions).
    function _pay(uint256 channelId, Terms terms, address to, uint256 amount) private {
        if (amount == 0) return;
        if (terms.isToken()) {
            address token = _tokens[channelId];
            if (!SafeERC20.trySafeTransfer(IERC20(token), to, amount)) {
                _owedTokens[token][to] += amount;
                emit TokenPayoutDeferred(token, to, amount);
            }
            return;
        }
        bool ok;
        assembly ("memory-safe") {
            ok := call(PAYOUT_GAS, to, amount, 0, 0, 0, 0)
        }
        if (!ok) {
            _owed[to] += amount;
            emit PayoutDeferred(to, amount);
        }
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
