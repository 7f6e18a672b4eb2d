// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop, PeerAuth} from "./SupraTypes.sol";

/// @title ISupraJudge
/// @notice The judge of Supra payment channels: a buyer locks ETH for a seller's live MQTT stream, the
///         seller is paid per message against the buyer's signed cumulative acks, and either side can prove
///         the other's misbehaviour. The rules are those of docs/PROTOCOL.md, section 2.
/// @dev Every amount is in wei, every on-chain time in seconds (`block.timestamp`); the `timestamp` fields
///      of signed statements are unix milliseconds. Signatures are 65 bytes `r ‖ s ‖ v`, low-s only.
///      The seller signs batches of messages, never single messages: wherever a function takes a message
///      as the seller's word, it takes its `BatchProof` (the batch, the seller's signature of it, and the
///      message digest's Merkle path to the batch's root; docs/PROTOCOL.md section 1, Batches).
///      "Count" fields (`acked`, `postedClaim`) are numbers of messages counted from the channel's
///      `startSeq`: the highest seq they cover is `startSeq + count - 1`, and 0 means none.
interface ISupraJudge is IERC5267 {
    // ------------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------------

    /// @notice Life cycle of a channel: None → Open → Closing → Settled (Open/Closing → Settled directly
    ///         when an accusation is upheld, a misbehaviour is proven, or both sides close cooperatively).
    ///         A channel record is never deleted.
    enum Status {
        None,
        Open,
        Closing,
        Settled
    }

    /// @notice Everything the judge knows about a channel, as returned by {channel}.
    struct ChannelInfo {
        Status status;
        /// The stream bought; its high 20 bytes are the seller.
        bytes32 streamId;
        address seller;
        address buyer;
        /// Wei per message (P).
        uint256 price;
        /// W: most messages in flight without an ack, and most posted messages claimable after the last ack.
        uint64 window;
        /// First sequence number of the stream that the channel buys.
        uint64 startSeq;
        /// T_ack, seconds.
        uint32 tAck;
        /// T_closure, seconds.
        uint32 tClosure;
        /// F: everything the buyer locked (open + top-ups).
        uint256 deposit;
        /// R: everything paid to the seller so far (including a penalty, or the posted claim once settled);
        /// the buyer gets F - R at the end.
        uint256 claimed;
        /// Messages covered by the highest claimed ack (count from startSeq; 0: no ack claimed yet).
        uint256 acked;
        /// Messages covered by the recorded posted claim, paid at {settle} (count from startSeq; 0: none).
        uint256 postedClaim;
        /// `block.timestamp` of the close request; 0 while Open.
        uint64 closeRequestedAt;
        /// Sequence number the open accusation is about (meaningful only when `disputeDeadline != 0`).
        uint64 disputeSeq;
        /// Last second at which the open accusation can be answered; 0: no accusation open.
        uint64 disputeDeadline;
    }

    /// @notice The times and bounds behind the judge's deadlines, as returned by {channelTiming}.
    struct ChannelTiming {
        /// `block.timestamp` of `open`.
        uint64 openedAt;
        /// `block.timestamp` of the last call that extended what the channel is owed: a claim that raised
        /// `acked` (the window moves) or a top-up (the deposit covers more); 0: none yet.
        uint64 extendedAt;
        /// Open accusation: a posting of the missing message answers it only if mined at or before this
        /// time (unix seconds); meaningful only when `disputeDeadline != 0`.
        uint64 disputePostBy;
        /// True once a seller-signed {Stop} of the channel was recorded ({submitStop}).
        bool sellerStopped;
        /// With `sellerStopped`: the messages the seller's lowest recorded Stop leaves owed, counted from
        /// `startSeq` (`stop.seq - startSeq + 1`, 0 if the Stop is before `startSeq`).
        uint256 sellerStopCount;
    }

    // ------------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------------

    /// @notice A buyer opened a channel with the seller's offer whose EIP-712 digest is `channelId`.
    event ChannelOpened(uint256 indexed channelId, bytes32 indexed streamId, address indexed buyer, uint256 deposit);

    /// @notice The buyer added `amount` to the channel's deposit, which is now `deposit`.
    event ToppedUp(uint256 indexed channelId, uint256 amount, uint256 deposit);

    /// @notice Message `seq` of stream `streamId` was posted on-chain, with its sealed payload and the proof
    ///         that the seller signed it, so every buyer of the stream can check it as it checks a `Data` frame
    ///         of the link and take it as delivered.
    /// @dev The message is `{streamId, seq, timestamp, keccak256(payload), prev}`; its EIP-712 digest is
    ///      `digest`. `proof` is the `BatchProof` the judge checked, as submitted.
    event Posted(
        bytes32 indexed streamId,
        uint64 indexed seq,
        bytes32 digest,
        uint64 timestamp,
        bytes32 prev,
        bytes payload,
        BatchProof proof
    );

    /// @notice An ack for `seq` was presented: `amount` paid to the seller, who has now received `claimed`.
    ///         `amount` is 0 only when {defendWithAck} presented an ack that moved `acked` without paying.
    event Claimed(uint256 indexed channelId, uint64 seq, uint256 amount, uint256 claimed);

    /// @notice The seller recorded a claim for the posted messages up to `uptoSeq`; it is paid at {settle}.
    event PostedClaimRecorded(uint256 indexed channelId, uint64 uptoSeq);

    /// @notice `by` asked to close the channel; it can be settled from `settleAfter` (unix seconds).
    event CloseRequested(uint256 indexed channelId, address indexed by, uint256 settleAfter);

    /// @notice The buyer accused the seller of not delivering `missingSeq` although it signed `seenSeq`;
    ///         the seller has until `deadline` (unix seconds, inclusive) to defend.
    event Accused(uint256 indexed channelId, uint64 missingSeq, uint64 seenSeq, uint256 deadline);

    /// @notice The accusation about `missingSeq` was answered (posting or ack) in time.
    event Defended(uint256 indexed channelId, uint64 missingSeq);

    /// @notice The accusation about `missingSeq` went unanswered; the buyer is refunded (see {Settled}).
    event AccusationUpheld(uint256 indexed channelId, uint64 missingSeq);

    /// @notice The buyer signed an ack for `seq` with a wrong `cost`; the seller takes the rest of the deposit.
    event WrongCostProven(uint256 indexed channelId, uint64 seq, uint256 cost);

    /// @notice The seller signed two messages that cannot both belong to its stream's chain; the buyer
    ///         takes the rest of the deposit.
    event EquivocationProven(uint256 indexed channelId, uint64 seqA, uint64 seqB, bytes32 digestA, bytes32 digestB);

    /// @notice The channel is over: `toSeller` and `toBuyer` were paid out by the settling call
    ///         (`toSeller` excludes what earlier claims paid). Seller total = `claimed`, buyer = deposit - claimed.
    event Settled(uint256 indexed channelId, uint256 toSeller, uint256 toBuyer);

    /// @notice A seller-signed Stop of the channel at `seq` was recorded. The lowest Stop recorded leaves
    ///         `stopCount` messages owed (counted from `startSeq`): the seller owes, and may claim, nothing after.
    event StopRecorded(uint256 indexed channelId, uint64 seq, uint256 stopCount);
    /// @notice The seller's Stop at `seq` (lowest recorded: `stopCount` messages owed) is below its recorded
    ///         posted claim of `postedClaim` messages: it claimed messages it was not owed. The buyer takes
    ///         the rest of the deposit (see {Settled}).
    event StopViolationProven(uint256 indexed channelId, uint64 seq, uint256 postedClaim, uint256 stopCount);
    /// @notice Both sides agreed on the final state (buyer ack and seller Stop at `seq`); settled at once.
    event ClosedCooperatively(uint256 indexed channelId, uint64 seq);
    /// @notice A push payment to `to` failed; `amount` was credited to it instead (see {withdraw}).
    event PayoutDeferred(address indexed to, uint256 amount);

    /// @notice `to` withdrew `amount` of deferred payouts.
    event Withdrawn(address indexed to, uint256 amount);

    /// @notice A payment of `amount` of ERC-20 `token` to `to` failed (the token reverted or returned false);
    ///         it was credited to `to` instead (see {withdrawToken}).
    event TokenPayoutDeferred(address indexed token, address indexed to, uint256 amount);

    /// @notice `to` withdrew `amount` of deferred `token` payouts.
    event TokenWithdrawn(address indexed token, address indexed to, uint256 amount);

    // ------------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------------

    /// @notice `caller` is not the channel's (or the offer's) buyer.
    error NotBuyer(address caller, address buyer);
    /// @notice `caller` is not the channel's seller.
    error NotSeller(address caller, address seller);
    /// @notice `caller` is neither the channel's buyer nor its seller.
    error NotParty(address caller);
    /// @notice The offer could open a channel only until `validUntil`; it is now `time`.
    error OfferExpired(uint64 validUntil, uint256 time);
    /// @notice The offer's `seller` is not the high 20 bytes of its `streamId`.
    error SellerMismatch(address seller, bytes32 streamId);
    /// @notice The offer has a zero price, window, T_ack or T_closure.
    error InvalidTerms(uint256 price, uint64 window, uint32 tAck, uint32 tClosure);
    /// @notice The offer's T_ack or T_closure is above the judge's maximum ({MAX_T_ACK}, {MAX_T_CLOSURE}).
    error TermsTooLong(uint32 tAck, uint32 tClosure, uint32 maxTAck, uint32 maxTClosure);
    /// @notice A posted payload of `length` bytes is above {MAX_PAYLOAD_BYTES} (`max`).
    error PayloadTooLarge(uint256 length, uint256 max);
    /// @notice The channel is not owed `missingSeq`: it is at or after `owedEnd`, the first seq past the
    ///         window after the last claimed ack, past what the deposit covers, and past the seller's Stop.
    error NotOwed(uint64 missingSeq, uint256 owedEnd);
    /// @notice An accusation on a Closing channel must be made before it can be settled (`settleAfter`).
    error ClosureElapsed(uint256 settleAfter, uint256 time);
    /// @notice A posted claim up to `uptoSeq` goes past the seller's recorded Stop, which leaves `stopCount`
    ///         messages owed.
    error PastSellerStop(uint64 uptoSeq, uint256 stopCount);
    /// @notice A cooperative close needs the buyer's ack and the seller's Stop of one channel at one seq.
    error StopMismatch(uint256 ackChannelId, uint64 ackSeq, uint256 stopChannelId, uint64 stopSeq);
    /// @notice The offer's window does not fit the judge's storage (at most `max`).
    error WindowTooLarge(uint64 window, uint64 max);
    /// @notice A price or a deposit does not fit the judge's uint96 storage (at most `max`).
    error AmountTooLarge(uint256 amount, uint256 max);
    /// @notice The deposit must cover at least `price * window` (`required`).
    error DepositTooSmall(uint256 deposit, uint256 required);
    /// @notice The offer already opened channel `channelId`; an offer opens at most one channel.
    error ChannelExists(uint256 channelId);
    /// @notice The channel is in `status`, which this function does not accept.
    error WrongStatus(uint256 channelId, Status status);
    /// @notice The signature is valid but by `recovered`, not by `expected`.
    error WrongSigner(address expected, address recovered);
    /// @notice A top-up of zero (wei or tokens).
    error ZeroAmount();
    /// @notice `keccak256(payload)` is `actual`, not the message's `payloadHash`.
    error PayloadMismatch(bytes32 payloadHash, bytes32 actual);
    /// @notice Another message (digest prefix `posted`) is already posted for `(streamId, seq)`; prove the
    ///         equivocation with {proveEquivocation}.
    error ConflictingPost(bytes32 streamId, uint64 seq, bytes24 posted, bytes32 digest);
    /// @notice The message's `seq` is outside the range `[firstSeq, lastSeq]` of the batch its proof shows.
    error NotInBatch(uint64 seq, uint64 firstSeq, uint64 lastSeq);
    /// @notice A batch spans at most {MAX_BATCH} seqs (`lastSeq - firstSeq < MAX_BATCH`) and a Merkle path has
    ///         at most {MAX_PROOF_DEPTH} hashes; this proof's batch spans `firstSeq..=lastSeq` with a path of
    ///         `pathLength` hashes.
    error BatchTooLarge(uint64 firstSeq, uint64 lastSeq, uint256 pathLength);
    /// @notice The proof's Merkle path folds the message's digest onto `computed`, not onto the batch's `root`:
    ///         the message is not one of the batch's.
    error WrongRoot(bytes32 root, bytes32 computed);
    /// @notice `seq` is before the channel's `startSeq`.
    error SeqBeforeStart(uint64 seq, uint64 startSeq);
    /// @notice The ack for `seq` carries `cost`, not `(seq - startSeq + 1) * price` (`expected`); the seller
    ///         can use {proveWrongCost} instead.
    error WrongCost(uint64 seq, uint256 cost, uint256 expected);
    /// @notice The ack for `seq` pays nothing more (replayed, older, or the deposit is exhausted), or the
    ///         posted claim up to `seq` does not go beyond the one recorded.
    error NothingToClaim(uint256 channelId, uint64 seq);
    /// @notice A posted claim must end within `[lowest, highest]`: after the last claimed ack, at most
    ///         `window` messages beyond it.
    error ClaimOutOfWindow(uint64 uptoSeq, uint256 lowest, uint256 highest);
    /// @notice Message `seq` of `streamId` is not posted.
    error NotPosted(bytes32 streamId, uint64 seq);
    /// @notice A Closing channel is not owed posted message `seq`: either its posting was mined at `time`,
    ///         after `limit` = close request + T_ack (block times), or the seller stamped it `time` (seconds),
    ///         after `limit` = the close request.
    error PostedAfterClose(uint64 seq, uint64 time, uint256 limit);
    /// @notice The channel can be settled from `settleAfter`; it is now `time`.
    error ClosureNotElapsed(uint256 settleAfter, uint256 time);
    /// @notice An accusation about `missingSeq` is open: answer or resolve it first.
    error AccusationOpen(uint256 channelId, uint64 missingSeq);
    /// @notice No accusation is open on the channel.
    error NoAccusation(uint256 channelId);
    /// @notice The message (or the batch proving it) is on stream `actual`, not on stream `expected` (the
    ///         channel's, or the message's).
    error WrongStream(bytes32 expected, bytes32 actual);
    /// @notice An accusation must be about a seq in `[lowest, seenSeq)`: not yet covered by a claimed ack,
    ///         and before the signed message the buyer has seen.
    error MissingSeqOutOfRange(uint64 missingSeq, uint256 lowest, uint64 seenSeq);
    /// @notice Message `seq` of `streamId` is posted: it was delivered.
    error AlreadyPosted(bytes32 streamId, uint64 seq);
    /// @notice The accusation could be answered until `deadline`; it is now `time`.
    error DeadlinePassed(uint256 deadline, uint256 time);
    /// @notice The accusation can be answered until `deadline`; it is now `time`.
    error DeadlineNotPassed(uint256 deadline, uint256 time);
    /// @notice The ack for `seq` does not cover the accused `missingSeq`.
    error AckTooLow(uint64 seq, uint64 missingSeq);
    /// @notice The ack for `seq` has the correct `cost`: nothing to prove.
    error CostIsCorrect(uint64 seq, uint256 cost);
    /// @notice The two messages (digests `digestA`, `digestB`) are consistent with one chain.
    error NotEquivocation(bytes32 digestA, bytes32 digestB);
    /// @notice `account` has no deferred payout.
    error NothingToWithdraw(address account);
    /// @notice Sending `amount` wei to `to` failed.
    error TransferFailed(address to, uint256 amount);
    /// @notice The channel (or offer) is priced in `token` (address(0): ETH) and this function takes the
    ///         other currency: {open} and {topUp} take ETH only, the token functions ERC-20 only.
    error CurrencyMismatch(address token);
    /// @notice A token deposit function was re-entered (by the token, during its transfer).
    error Reentrant();

    // ------------------------------------------------------------------------------------------------
    // Channel life cycle
    // ------------------------------------------------------------------------------------------------

    /// @notice Opens the channel defined by the seller's offer, locking `msg.value` as its deposit F.
    /// @dev Caller must be `o.buyer`; `block.timestamp <= o.validUntil`; `o.seller` must be the high 20
    ///      bytes of `o.streamId` and have signed the offer; price, window, T_ack and T_closure must be
    ///      non-zero; `tAck <= MAX_T_ACK`, `tClosure <= MAX_T_CLOSURE` ({TermsTooLong}); `price <=
    ///      MAX_PRICE`, `window <= type(uint32).max` (storage packing); `price * window <= msg.value <=
    ///      type(uint96).max`; `o.token == address(0)` (an offer priced in a token opens with
    ///      {openWithPermit} or {openWithToken}; else {CurrencyMismatch}). Records `openedAt = block.timestamp`.
    ///      Emits {ChannelOpened}.
    /// @param o The seller's offer.
    /// @param sellerSig The seller's EIP-712 signature of `o`.
    /// @return channelId `uint256(hashOffer(o))`; an offer opens at most one channel.
    function open(Offer calldata o, bytes calldata sellerSig) external payable returns (uint256 channelId);

    /// @notice Opens the channel of an offer priced in an ERC-20 token, in one transaction: the buyer's
    ///         EIP-2612 `permit` of `amount` to the judge, then `transferFrom` of `amount`.
    /// @dev Same checks as {open}, plus `o.token != address(0)` ({CurrencyMismatch}). The permit is tried and its
    ///      failure ignored (someone may have front-run it with the same signature; OpenZeppelin's advice):
    ///      what counts is the allowance at `transferFrom`, which reverts (the token's error) if it is short.
    ///      The deposit F is what actually arrived (the judge's balance delta), so a fee-on-transfer token is
    ///      credited net of its fee; F must cover `price * window`. Not re-entrant ({Reentrant}).
    ///      Emits {ChannelOpened}.
    /// @param o The seller's offer (`o.token`: the ERC-20).
    /// @param sellerSig The seller's EIP-712 signature of `o`.
    /// @param amount Tokens to lock (smallest unit).
    /// @param deadline The permit's deadline (unix seconds).
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    /// @return channelId `uint256(hashOffer(o))`.
    function openWithPermit(
        Offer calldata o,
        bytes calldata sellerSig,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 channelId);

    /// @notice Opens the channel of an offer priced in an ERC-20 token the buyer already approved to the judge
    ///         (`transferFrom` of `amount`).
    /// @dev As {openWithPermit} without the permit.
    /// @param o The seller's offer.
    /// @param sellerSig The seller's EIP-712 signature of `o`.
    /// @param amount Tokens to lock.
    /// @return channelId `uint256(hashOffer(o))`.
    function openWithToken(Offer calldata o, bytes calldata sellerSig, uint256 amount)
        external
        returns (uint256 channelId);

    /// @notice Adds `amount` tokens to the deposit of an Open token channel, with the buyer's EIP-2612 permit
    ///         (tried, failure ignored, as in {openWithPermit}).
    /// @dev Caller must be the buyer; the channel's currency a token ({CurrencyMismatch}); `amount > 0`. Credits
    ///      the balance delta. Sets `extendedAt`. Emits {ToppedUp}. Not re-entrant.
    /// @param channelId The channel.
    /// @param amount Tokens to add.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    function topUpWithPermit(uint256 channelId, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;

    /// @notice Adds `amount` already approved tokens to the deposit of an Open token channel.
    /// @dev As {topUpWithPermit} without the permit.
    /// @param channelId The channel.
    /// @param amount Tokens to add.
    function topUpWithToken(uint256 channelId, uint256 amount) external;

    /// @notice Adds `msg.value` to the deposit of an Open channel. Caller must be the buyer.
    /// @dev Sets `extendedAt = block.timestamp` (the channel may be owed more messages from now on). Emits {ToppedUp}. Reverts {ZeroAmount} on zero, {AmountTooLarge} beyond uint96, {CurrencyMismatch} on a token channel.
    /// @param channelId The channel.
    function topUp(uint256 channelId) external payable;

    /// @notice Posts message `m` of a stream on-chain with its sealed payload, as a delivery of last resort.
    /// @dev Anyone may submit it; `proof` must show it signed by the stream's seller ({WrongStream},
    ///      {NotInBatch}, {BatchTooLarge}, {WrongRoot}, {WrongSigner}) and `keccak256(payload)` must be
    ///      `m.payloadHash`; `payload.length <= MAX_PAYLOAD_BYTES` ({PayloadTooLarge}: a bigger transaction
    ///      would not be relayed by common tx pools). The first posting of `(streamId, seq)` is stored as one
    ///      slot (digest prefix + `block.timestamp`, the posting's time) and emits {Posted}; posting the same message again is a no-op; a different
    ///      message for a posted seq reverts {ConflictingPost}. One posting serves every channel of the stream.
    /// @param m The message.
    /// @param payload Its sealed payload.
    /// @param proof The seller's signed batch holding `m`, and `m`'s path in it (emitted in {Posted}).
    function post(Message calldata m, bytes calldata payload, BatchProof calldata proof) external;

    /// @notice Pays the seller for the buyer's cumulative ack `a`: `min(cost - R, F - R)`.
    /// @dev Anyone may submit it (payment always goes to the seller). Channel Open or Closing; `a` signed by
    ///      the channel's buyer; `a.seq >= startSeq`; `a.cost == (a.seq - startSeq + 1) * price` else
    ///      {WrongCost}; reverts {NothingToClaim} when it pays nothing (replayed or older ack, or the deposit is
    ///      exhausted). Raises `acked` to the ack's count. Emits {Claimed}.
    ///      Payment is pushed after all state changes (see {withdraw} for failed pushes).
    /// @param a The ack; `a.channelId` selects the channel.
    /// @param buyerSig The buyer's EIP-712 signature of `a`.
    function claim(Ack calldata a, bytes calldata buyerSig) external;

    /// @notice Records the seller's claim for the messages posted on-chain after the last claimed ack, up to
    ///         `uptoSeq` (at most `window` of them). It is paid at {settle}, i.e. only after T_closure.
    /// @dev Caller must be the seller; channel Open or Closing; `acked < uptoSeq - startSeq + 1 <= acked +
    ///      window`; it must go beyond any claim already recorded and not past the seller's recorded Stop
    ///      ({PastSellerStop}); every seq not yet checked by an earlier record must be posted and, when
    ///      Closing, mined no later than `closeRequestedAt + tAck` (block time of the posting: back-dating a
    ///      signed timestamp gains nothing) and not stamped by the seller after `closeRequestedAt`.
    ///      Emits {PostedClaimRecorded}.
    /// @param channelId The channel.
    /// @param uptoSeq Last posted seq claimed.
    function claimPosted(uint256 channelId, uint64 uptoSeq) external;

    /// @notice Starts closing an Open channel: the other side has T_closure to make its last claims.
    /// @dev Caller must be the buyer or the seller. Emits {CloseRequested}.
    /// @param channelId The channel.
    function requestClose(uint256 channelId) external;

    /// @notice Settles a Closing channel once T_closure has elapsed: the seller gets its recorded posted
    ///         claim `min(postedClaim * price - R, F - R)` when positive, the buyer the rest.
    /// @dev Anyone may call it. Reverts {AccusationOpen} while an accusation is open (resolve it first).
    ///      Status becomes Settled before both payments are pushed. Emits {Settled}.
    /// @param channelId The channel.
    function settle(uint256 channelId) external;

    // ------------------------------------------------------------------------------------------------
    // Disputes and proofs
    // ------------------------------------------------------------------------------------------------

    /// @notice The buyer accuses the seller of not delivering `missingSeq`, shown by a later seller-signed
    ///         message `seen`. The seller has T_ack to answer ({defend}, {defendWithAck}), else {resolve}.
    /// @dev Caller must be the buyer; channel Open or Closing, and when Closing before `closeRequestedAt +
    ///      tClosure` ({ClosureElapsed}); no accusation open; `seen` on the channel's stream and signed by
    ///      the seller through `proof`; `startSeq + acked <= missingSeq < seen.seq`; `missingSeq` owed ({NotOwed}): below
    ///      `startSeq + min(acked + window, deposit / price, sellerStopCount)`.
    ///      Posting limit `postBy = min(anchor, block.timestamp) + tAck`, with `anchor = max(seen.timestamp
    ///      / 1000, openedAt, extendedAt)`: the honest seller has every owed message before `seen` acked or
    ///      posted by then. `missingSeq` must not be posted by `postBy` ({AlreadyPosted}); a posting mined
    ///      later does not answer (the seller delivered late). Answer deadline = `block.timestamp + tAck`
    ///      (inclusive). Emits {Accused}.
    /// @param channelId The channel.
    /// @param seen A message after the missing one.
    /// @param proof The seller's signed batch holding `seen`, and `seen`'s path in it.
    /// @param missingSeq The seq the buyer did not receive.
    function accuse(uint256 channelId, Message calldata seen, BatchProof calldata proof, uint64 missingSeq)
        external;

    /// @notice Answers the open accusation by its on-chain posting: the missing message was posted (mined)
    ///         by the accusation's posting limit `postBy`.
    /// @dev Anyone may call it, at any time until the accusation is resolved: what counts is the posting's
    ///      block time, not this call's (a posting mined in time whose `defend` lands later still answers).
    ///      Reverts {NotPosted} when not posted, {DeadlinePassed} when posted after `postBy`. Emits {Defended}.
    /// @param channelId The channel.
    function defend(uint256 channelId) external;

    /// @notice Answers the open accusation with a buyer ack covering the missing message; the ack also
    ///         counts as a claim (pays what {claim} would, possibly nothing).
    /// @dev Anyone may call it, until the deadline (inclusive); the ack must be valid as for {claim} and
    ///      `a.seq >= missingSeq`. Emits {Defended}, and {Claimed} when it pays or raises `acked`.
    /// @param a The ack; `a.channelId` selects the channel.
    /// @param buyerSig The buyer's signature of `a`.
    function defendWithAck(Ack calldata a, bytes calldata buyerSig) external;

    /// @notice Upholds an accusation left unanswered past its deadline: the buyer is refunded `F - R`
    ///         and the channel is Settled (a recorded posted claim is forfeited). If the missing message was
    ///         posted by the accusation's `postBy` (its `defend` did not land in time), the accusation is
    ///         answered instead: cleared, {Defended}, nothing paid.
    /// @dev Anyone may call it, once `block.timestamp > deadline`. Emits {AccusationUpheld} and {Settled},
    ///      or {Defended}.
    /// @param channelId The channel.
    function resolve(uint256 channelId) external;

    /// @notice Proves that the buyer signed an ack with a wrong cost (or a seq before `startSeq`): the
    ///         seller takes `F - R` as a penalty and the channel is Settled.
    /// @dev Anyone may call it; channel Open or Closing. Emits {WrongCostProven} and {Settled}.
    /// @param a The ack; `a.channelId` selects the channel.
    /// @param buyerSig The buyer's signature of `a`.
    function proveWrongCost(Ack calldata a, bytes calldata buyerSig) external;

    /// @notice Proves that the seller signed two messages of the channel's stream that cannot both be in
    ///         its chain: the buyer takes `F - R` as a penalty and the channel is Settled.
    /// @dev Anyone may call it; channel Open or Closing; both messages on the channel's stream, signed by
    ///      the seller (each through its proof: from one batch or two), `a.seq >= startSeq`, and either the same seq with different digests, or
    ///      `b.seq == a.seq + 1` with `b.prev != hashMessage(a)` (a broken link). Emits
    ///      {EquivocationProven} and {Settled}.
    /// @param channelId The channel.
    /// @param a First message.
    /// @param proofA The seller's signed batch holding `a`, and `a`'s path in it.
    /// @param b Second message.
    /// @param proofB The seller's signed batch holding `b`, and `b`'s path in it.
    function proveEquivocation(
        uint256 channelId,
        Message calldata a,
        BatchProof calldata proofA,
        Message calldata b,
        BatchProof calldata proofB
    ) external;

    /// @notice Records the seller's signed Stop of a channel (it sends, and is owed, nothing after `s.seq`)
    ///         and draws its consequences. Anyone may submit it (the buyer, to bound the seller; the seller, to
    ///         answer an accusation beyond its Stop).
    /// @dev Channel (`s.channelId`) Open or Closing; `s` signed by the seller. The recorded bound is the lowest
    ///      Stop submitted. Then: if the recorded posted claim goes past the Stop, the seller claimed messages
    ///      it was not owed: the buyer takes `F - R`, Settled ({StopViolationProven}, {Settled}); else, if an
    ///      accusation is open about a seq after the Stop and its deadline has not passed, it is answered
    ///      ({Defended}). Emits {StopRecorded} (unless the channel was settled by the proof). Later
    ///      accusations and posted claims past the Stop are refused ({NotOwed}, {PastSellerStop}).
    /// @param s The seller's Stop; `s.channelId` selects the channel.
    /// @param sellerSig The seller's EIP-712 signature of `s`.
    function submitStop(Stop calldata s, bytes calldata sellerSig) external;

    /// @notice Settles at once when both sides agree on the final state: the buyer's ack and the seller's
    ///         Stop at the same seq. The seller gets `min(cost - R, F - R)` (when positive), the buyer the rest.
    /// @dev Anyone may call it; channel Open or Closing; `a` valid as for {claim}; `s.channelId ==
    ///      a.channelId`, `s.seq == a.seq` ({StopMismatch}), `s` signed by the seller. A recorded posted
    ///      claim is not paid (the seller's Stop at the acked seq says it is owed nothing more); an open
    ///      accusation is cleared. Emits {ClosedCooperatively}, {Settled}.
    /// @param a The buyer's final ack.
    /// @param buyerSig The buyer's signature of `a`.
    /// @param s The seller's Stop at `a.seq`.
    /// @param sellerSig The seller's signature of `s`.
    function closeCooperatively(Ack calldata a, bytes calldata buyerSig, Stop calldata s, bytes calldata sellerSig)
        external;

    /// @notice Withdraws the caller's deferred payouts (payments whose push failed, see {PayoutDeferred}).
    /// @dev Pull fallback of the judge's push payments: forwards all gas; reverts {TransferFailed} on failure.
    ///      Emits {Withdrawn}.
    function withdraw() external;

    /// @notice Withdraws the caller's deferred payouts in `token` (see {TokenPayoutDeferred}).
    /// @dev Reverts {NothingToWithdraw} when nothing is owed, and with OpenZeppelin's
    ///      `SafeERC20FailedOperation` when the transfer fails (the credit then stays). Emits {TokenWithdrawn}.
    /// @param token The ERC-20.
    function withdrawToken(address token) external;

    // ------------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------------

    /// @notice The full EIP-712 digest of an offer under this judge's domain (the channelId it would open).
    /// @dev Reverts on a non-canonical encoding (an address or uintN field with high bits set), as do all hash views.
    /// @param o The offer.
    /// @return The digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(o))`.
    function hashOffer(Offer calldata o) external view returns (bytes32);

    /// @notice The full EIP-712 digest of a stream message (what `prev` and `Ack.digest` refer to).
    /// @param m The message.
    /// @return The digest.
    function hashMessage(Message calldata m) external view returns (bytes32);

    /// @notice The full EIP-712 digest of a batch (what the seller signs; its `root` is the Merkle root of
    ///         the digests of messages `firstSeq..=lastSeq`).
    /// @param b The batch.
    /// @return The digest.
    function hashBatch(Batch calldata b) external view returns (bytes32);

    /// @notice The full EIP-712 digest of an ack.
    /// @param a The ack.
    /// @return The digest.
    function hashAck(Ack calldata a) external view returns (bytes32);

    /// @notice The full EIP-712 digest of a stop statement.
    /// @param s The stop statement.
    /// @return The digest.
    function hashStop(Stop calldata s) external view returns (bytes32);

    /// @notice The full EIP-712 digest of a peer-link authentication statement.
    /// @param p The statement.
    /// @return The digest.
    function hashPeerAuth(PeerAuth calldata p) external view returns (bytes32);

    /// @notice The channel record (status None and zeroes for an unknown id).
    /// @param channelId The channel.
    /// @return The record, see {ChannelInfo}.
    function channel(uint256 channelId) external view returns (ChannelInfo memory);

    /// @notice The posting of `(streamId, seq)`: the first 24 bytes of its digest and the block time at which
    ///         it was posted (unix seconds, the posting's time for every deadline). Both zero when not posted.
    /// @param streamId The stream.
    /// @param seq The message's sequence number.
    /// @return digestPrefix The first 24 bytes of the posted message's EIP-712 digest.
    /// @return postedAt `block.timestamp` of the `post` that stored it (unix seconds).
    function posting(bytes32 streamId, uint64 seq) external view returns (bytes24 digestPrefix, uint64 postedAt);

    /// @notice The times and bounds behind a channel's deadlines (zeroes for an unknown id).
    /// @param channelId The channel.
    /// @return See {ChannelTiming}.
    function channelTiming(uint256 channelId) external view returns (ChannelTiming memory);

    /// @notice Largest sealed payload {post} accepts, in bytes (98 304 = 96 KiB): with the message, the
    ///         signature and the ABI encoding, a `post` transaction stays below the 128 KiB that common
    ///         transaction pools accept. A seller must not sell messages whose sealed payload is larger.
    /// @return 98 304.
    function MAX_PAYLOAD_BYTES() external view returns (uint256);

    /// @notice Largest T_ack {open} accepts, in seconds (86 400: one day).
    /// @return 86 400.
    function MAX_T_ACK() external view returns (uint32);

    /// @notice Largest T_closure {open} accepts, in seconds (604 800: seven days; the longest a close can
    ///         keep a deposit locked, besides one T_ack for an accusation made just before settling).
    /// @return 604 800.
    function MAX_T_CLOSURE() external view returns (uint32);

    /// @notice Largest price per message {open} accepts, in wei (2^72 - 1, about 4 722 ether; storage packing).
    /// @return 2^72 - 1.
    function MAX_PRICE() external view returns (uint256);

    /// @notice Most messages one signed batch may hold: a `BatchProof` is refused unless its batch has
    ///         `lastSeq - firstSeq < MAX_BATCH`.
    /// @return 256.
    function MAX_BATCH() external view returns (uint256);

    /// @notice Most hashes a `BatchProof`'s Merkle path may have (`log2(MAX_BATCH)`).
    /// @return 8.
    function MAX_PROOF_DEPTH() external view returns (uint256);

    /// @notice Gas forwarded with each pushed payment (besides the 2300 stipend of a value transfer); a payee
    ///         needing more is credited instead (see {PayoutDeferred}, {withdraw}).
    /// @return 50 000.
    function PAYOUT_GAS() external view returns (uint256);

    /// @notice Deferred payouts that `account` can {withdraw}.
    /// @param account A payee.
    /// @return Wei owed to it.
    function owed(address account) external view returns (uint256);

    /// @notice Deferred payouts in `token` that `account` can {withdrawToken}.
    /// @param token The ERC-20.
    /// @param account A payee.
    /// @return Tokens owed to it.
    function owedToken(address token, address account) external view returns (uint256);

    /// @notice The currency of a channel: its ERC-20 token, or address(0) for ETH (and for an unknown id).
    /// @param channelId The channel.
    /// @return The token.
    function channelToken(uint256 channelId) external view returns (address);
}
