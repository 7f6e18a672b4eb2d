// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop} from "../contracts/SupraTypes.sol";
import {vm} from "./utils/Vm.sol";
import {SupraTestBase} from "./utils/SupraTestBase.sol";

/// @dev Issue 10, judge side: the attacks that today's judge let through, one test each (every one of them
///      failed on the judge before this suite), and the rules that stop them (docs/PROTOCOL.md section 2):
///      bounded terms (5), bounded payloads (8), T_ack on block time (3), bounded accusations (4), the
///      seller's Stop as evidence with its penalty (2), cooperative close (7).
contract SupraJudgeAttacksTest is SupraTestBase {
    uint256 internal id;
    Offer internal o;

    uint32 internal constant MAX_T_ACK = 86_400;
    uint32 internal constant MAX_T_CLOSURE = 604_800;
    uint256 internal constant MAX_PAYLOAD = 98_304;

    function setUp() public override {
        super.setUp();
        (id, o) = openDefault(0);
        ensureChain(30);
    }

    function stopOf(uint256 channelId, uint64 seq) internal view returns (Stop memory s) {
        s = Stop({channelId: channelId, seq: seq, timestamp: uint64(block.timestamp) * 1000});
    }

    function stopSig(Stop memory s) internal view returns (bytes memory) {
        return sign(SELLER_PK, judge.hashStop(s));
    }

    function accuse(uint64 seenSeq, uint64 missingSeq) internal {
        BatchProof memory sig = msgProof(chain[seenSeq]);
        vm.prank(buyer);
        judge.accuse(id, chain[seenSeq], sig, missingSeq);
    }

    /// @dev A message of the stream signed now (timestamp = block time), not linked to the fixture chain.
    function freshMessage(uint64 seq) internal view returns (Message memory m, bytes memory payload) {
        payload = abi.encodePacked("fresh", seq, block.timestamp);
        m = Message({
            streamId: streamId,
            seq: seq,
            timestamp: uint64(block.timestamp) * 1000,
            payloadHash: keccak256(payload),
            prev: bytes32(uint256(seq))
        });
    }

    // --------------------------------------------------------------------------------------------
    // 5. Bounded terms
    // --------------------------------------------------------------------------------------------

    function test_attack_tClosureOf136YearsIsRefused() public {
        Offer memory bad = makeOffer(0);
        bad.tClosure = type(uint32).max;
        bytes memory sig = signOffer(bad);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(ISupraJudge.TermsTooLong.selector, T_ACK, type(uint32).max, MAX_T_ACK, MAX_T_CLOSURE)
        );
        judge.open{value: DEPOSIT}(bad, sig);
    }

    function test_attack_tAckAboveMaximumIsRefused() public {
        Offer memory bad = makeOffer(0);
        bad.tAck = MAX_T_ACK + 1;
        bytes memory sig = signOffer(bad);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISupraJudge.TermsTooLong.selector, MAX_T_ACK + 1, T_CLOSURE, MAX_T_ACK, MAX_T_CLOSURE
            )
        );
        judge.open{value: DEPOSIT}(bad, sig);
    }

    function test_open_acceptsTheMaxima() public {
        Offer memory edge = makeOffer(0);
        edge.tAck = MAX_T_ACK;
        edge.tClosure = MAX_T_CLOSURE;
        uint256 edgeId = openWith(edge, DEPOSIT);
        ISupraJudge.ChannelInfo memory c = judge.channel(edgeId);
        assertEq(c.tAck, MAX_T_ACK, "tAck");
        assertEq(c.tClosure, MAX_T_CLOSURE, "tClosure");
        assertEq(judge.MAX_T_ACK(), MAX_T_ACK, "MAX_T_ACK");
        assertEq(judge.MAX_T_CLOSURE(), MAX_T_CLOSURE, "MAX_T_CLOSURE");
        assertEq(judge.channelTiming(edgeId).openedAt, block.timestamp, "openedAt");
    }

    function test_open_priceAboveMaximumIsRefused() public {
        Offer memory bad = makeOffer(0);
        bad.price = uint256(1) << 72;
        bad.window = 1;
        bytes memory sig = signOffer(bad);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AmountTooLarge.selector, bad.price, (uint256(1) << 72) - 1));
        judge.open{value: DEPOSIT}(bad, sig);
        assertEq(judge.MAX_PRICE(), (uint256(1) << 72) - 1, "MAX_PRICE");
    }

    function testFuzz_open_termsWithinBoundsOnly(uint32 tAck, uint32 tClosure) public {
        vm.assume(tAck != 0 && tClosure != 0);
        Offer memory f = makeOffer(0);
        f.tAck = tAck;
        f.tClosure = tClosure;
        bytes memory sig = signOffer(f);
        vm.prank(buyer);
        if (tAck > MAX_T_ACK || tClosure > MAX_T_CLOSURE) {
            vm.expectRevert(
                abi.encodeWithSelector(ISupraJudge.TermsTooLong.selector, tAck, tClosure, MAX_T_ACK, MAX_T_CLOSURE)
            );
        }
        judge.open{value: DEPOSIT}(f, sig);
    }

    // --------------------------------------------------------------------------------------------
    // 8. Posts that can be mined
    // --------------------------------------------------------------------------------------------

    function test_attack_payloadAboveTxPoolLimitIsRefused() public {
        bytes memory payload = new bytes(MAX_PAYLOAD + 1);
        (Message memory m,) = freshMessage(40);
        m.payloadHash = keccak256(payload);
        BatchProof memory sig = msgProof(m);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.PayloadTooLarge.selector, MAX_PAYLOAD + 1, MAX_PAYLOAD));
        judge.post(m, payload, sig);
    }

    function test_post_acceptsTheLargestPayload() public {
        bytes memory payload = new bytes(MAX_PAYLOAD);
        (Message memory m,) = freshMessage(40);
        m.payloadHash = keccak256(payload);
        BatchProof memory sig = msgProof(m);
        judge.post(m, payload, sig);
        (, uint64 postedAt) = judge.posting(streamId, 40);
        assertEq(postedAt, block.timestamp, "posting time is block time");
        assertEq(judge.MAX_PAYLOAD_BYTES(), MAX_PAYLOAD, "exported limit");
    }

    // --------------------------------------------------------------------------------------------
    // 3. T_ack enforced on block time
    // --------------------------------------------------------------------------------------------

    function test_post_storesBlockTimeNotTheSignedTimestamp() public {
        Message memory m = chain[3]; // signed at START_TIME
        vm.warp(START_TIME + 500);
        postSeq(3);
        (, uint64 postedAt) = judge.posting(streamId, 3);
        assertEq(postedAt, START_TIME + 500, "block time of the post");
        assertTrue(postedAt * 1000 != m.timestamp, "not the seller's timestamp");
    }

    /// Issue probe: the buyer accuses 10 T_ack after the seen message; the seller posts the missing one
    /// 11 T_ack after it. Today's judge took that as a defence; a posting is in time only by the seen
    /// message's timestamp + T_ack.
    function test_attack_postingElevenTAckLateDoesNotDefend() public {
        vm.warp(START_TIME + 10 * uint256(T_ACK));
        accuse(5, 3);
        ISupraJudge.ChannelTiming memory t = judge.channelTiming(id);
        assertEq(t.disputePostBy, START_TIME + T_ACK, "postBy from the seen message");
        vm.warp(START_TIME + 11 * uint256(T_ACK));
        postSeq(3);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISupraJudge.DeadlinePassed.selector, START_TIME + T_ACK, START_TIME + 11 * uint256(T_ACK)
            )
        );
        judge.defend(id);
        vm.warp(START_TIME + 11 * uint256(T_ACK) + 1);
        uint256 before = buyer.balance;
        judge.resolve(id);
        assertEq(buyer.balance - before, DEPOSIT, "late delivery: buyer refunded");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    /// A message mined by the posting limit whose separate `defend` lands after the deadline does not lose.
    function test_attack_postingInTimeWhoseDefendLandsLateStillDefends() public {
        accuse(5, 3);
        uint256 deadline = block.timestamp + T_ACK;
        vm.warp(deadline);
        postSeq(3); // mined at the deadline
        vm.warp(deadline + 1);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Defended(id, 3);
        judge.defend(id);
        assertStatus(id, ISupraJudge.Status.Open, "still open");
    }

    /// And `resolve` honours that posting even when nobody called `defend`.
    function test_attack_resolveHonoursAPostingMadeInTime() public {
        accuse(5, 3);
        uint256 deadline = block.timestamp + T_ACK;
        vm.warp(deadline);
        postSeq(3);
        vm.warp(deadline + 1);
        uint256 buyerBefore = buyer.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.Defended(id, 3);
        judge.resolve(id);
        assertEq(buyer.balance, buyerBefore, "no refund");
        assertStatus(id, ISupraJudge.Status.Open, "still open");
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
    }

    /// A seller that delivered late (posted after the limit) can be proven late: the posting does not
    /// shield it from an accusation.
    function test_attack_latePostingCanBeAccusedAndLoses() public {
        vm.warp(START_TIME + 5 * uint256(T_ACK));
        postSeq(3); // 5 T_ack after message 5 (seen) was signed
        vm.warp(START_TIME + 6 * uint256(T_ACK));
        accuse(5, 3);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISupraJudge.DeadlinePassed.selector, START_TIME + T_ACK, START_TIME + 5 * uint256(T_ACK)
            )
        );
        judge.defend(id);
        vm.warp(block.timestamp + T_ACK + 1);
        judge.resolve(id);
        assertStatus(id, ISupraJudge.Status.Settled, "accusation upheld");
    }

    /// A posting made in time keeps protecting the seller: the accusation is refused outright.
    function test_accuse_postingInTimeIsAlreadyPosted() public {
        vm.warp(START_TIME + T_ACK);
        postSeq(3);
        vm.warp(START_TIME + 3 * uint256(T_ACK));
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AlreadyPosted.selector, streamId, 3));
        judge.accuse(id, chain[5], sig, 3);
    }

    /// The limit runs from the last extension of what the channel is owed: an ack claimed (or a top-up)
    /// after the seen message was signed gives the seller T_ack from then (it could not send earlier).
    function test_accuse_postByRunsFromTheLastExtension() public {
        vm.warp(START_TIME + 1000);
        claimAck(id, o, 1);
        vm.warp(START_TIME + 1010);
        vm.prank(buyer);
        judge.topUp{value: PRICE}(id);
        assertEq(judge.channelTiming(id).extendedAt, START_TIME + 1010, "extendedAt");
        vm.warp(START_TIME + 1020);
        accuse(5, 3);
        assertEq(judge.channelTiming(id).disputePostBy, START_TIME + 1010 + T_ACK, "postBy");
        vm.warp(START_TIME + 1010 + T_ACK);
        postSeq(3);
        judge.defend(id);
        assertEq(judge.channel(id).disputeDeadline, 0, "defended");
    }

    /// A seen message stamped in the future buys the seller at most T_ack from the accusation.
    function test_accuse_futureTimestampIsCappedAtTheAccusation() public {
        (Message memory m,) = freshMessage(7);
        m.timestamp = uint64(block.timestamp + 1 days) * 1000;
        BatchProof memory sig = msgProof(m);
        vm.prank(buyer);
        judge.accuse(id, m, sig, 3);
        assertEq(judge.channelTiming(id).disputePostBy, block.timestamp + T_ACK, "capped");
    }

    // --------------------------------------------------------------------------------------------
    // 4. Bounded accusations
    // --------------------------------------------------------------------------------------------

    /// Nothing past the window after the last claimed ack was ever owed (the seller never has more than
    /// W messages unacked), even if the buyer saw a later message (e.g. posted for another channel).
    function test_attack_accusationPastTheWindowIsRefused() public {
        postSeq(25); // posted for another channel of the stream
        BatchProof memory sig = msgProof(chain[25]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotOwed.selector, WINDOW, WINDOW));
        judge.accuse(id, chain[25], sig, WINDOW);
        accuse(25, WINDOW - 1); // the last owed seq is accusable
    }

    /// Nothing past the deposit is owed (the seller stops there until a top-up).
    function test_attack_accusationPastTheDepositIsRefused() public {
        (uint256 small, Offer memory so) = (0, makeOffer(0));
        small = openWith(so, WINDOW * PRICE); // exactly W messages
        BatchProof memory sig = msgProof(chain[20]);
        Ack memory a = makeAck(small, 5, costOf(so, 5));
        judge.claim(a, ackSig(a)); // acked 6: the window would allow up to seq 13, the deposit up to 7
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotOwed.selector, 8, 8));
        judge.accuse(small, chain[20], sig, 8);
        vm.prank(buyer);
        judge.topUp{value: PRICE}(small);
        vm.prank(buyer);
        judge.accuse(small, chain[20], sig, 8); // owed now
    }

    /// Nothing past the seller's recorded Stop is owed.
    function test_attack_accusationPastTheSellerStopIsRefused() public {
        Stop memory s = stopOf(id, 4);
        judge.submitStop(s, stopSig(s));
        BatchProof memory sig = msgProof(chain[7]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotOwed.selector, 5, 5));
        judge.accuse(id, chain[7], sig, 5);
        accuse(7, 4);
    }

    /// Repeated accusations cannot delay settle: on a Closing channel they must be made before settle is
    /// possible, so settle waits at most T_ack past T_closure.
    function test_attack_accusationsCannotDelaySettleIndefinitely() public {
        vm.prank(buyer);
        judge.requestClose(id);
        uint256 settleAfter = block.timestamp + T_CLOSURE;
        vm.warp(settleAfter - 1);
        accuse(5, 3);
        vm.warp(settleAfter + T_ACK - 1);
        Ack memory a = makeAck(id, 3, costOf(o, 3));
        judge.defendWithAck(a, ackSig(a)); // answered just before the deadline
        BatchProof memory sig = msgProof(chain[6]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ClosureElapsed.selector, settleAfter, block.timestamp));
        judge.accuse(id, chain[6], sig, 4);
        judge.settle(id);
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    /// The owed range, fuzzed: an accusation is accepted exactly below
    /// startSeq + min(acked + W, F / P, sellerStopCount).
    function testFuzz_accuse_onlyOwedSeqs(uint8 acked, uint8 extraMessages, uint8 stopSeq, bool withStop, uint8 missing)
        public
    {
        uint64 start = 2;
        Offer memory fo = makeOffer(start);
        uint256 deposit = (WINDOW + uint256(extraMessages % 16)) * PRICE;
        uint256 fid = openWith(fo, deposit);
        uint256 ackedCount = acked % 12;
        if (ackedCount > 0) {
            Ack memory a = makeAck(fid, start + uint64(ackedCount) - 1, ackedCount * PRICE);
            judge.claim(a, ackSig(a));
        }
        uint256 stopCount = type(uint256).max;
        if (withStop) {
            Stop memory st = stopOf(fid, uint64(stopSeq % 24));
            judge.submitStop(st, stopSig(st));
            stopCount = st.seq >= start ? st.seq - start + 1 : 0;
        }
        uint256 owedCount = ackedCount + WINDOW;
        if (deposit / PRICE < owedCount) owedCount = deposit / PRICE;
        if (stopCount < owedCount) owedCount = stopCount;
        uint64 missingSeq = start + uint64(ackedCount) + uint64(missing % 24);
        ensureChain(60);
        BatchProof memory sig = msgProof(chain[50]);
        vm.prank(buyer);
        if (missingSeq - start >= owedCount) {
            vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotOwed.selector, missingSeq, start + owedCount));
        }
        judge.accuse(fid, chain[50], sig, missingSeq);
    }

    /// The posting limit, fuzzed: `defend` (landing whenever) and `resolve` accept a posting exactly when
    /// it was mined by min(max(seen timestamp, openedAt, extendedAt), accusation) + T_ack.
    function testFuzz_defend_postingCountsExactlyUntilPostBy(uint16 extendAfter, uint16 accuseAfter, uint16 postAfter)
        public
    {
        uint256 t0 = block.timestamp; // seen message (chain[5]) stamped t0, channel opened at t0
        uint256 extendedAt = t0 + extendAfter % 500;
        vm.warp(extendedAt);
        claimAck(id, o, 1);
        uint256 accusedAt = extendedAt + accuseAfter % 500;
        vm.warp(accusedAt);
        accuse(5, 3);
        uint256 postBy = extendedAt + T_ACK; // anchor = extendedAt <= accusedAt
        assertEq(judge.channelTiming(id).disputePostBy, postBy, "postBy");
        uint256 postedAt = accusedAt + postAfter % (2 * uint256(T_ACK));
        vm.warp(postedAt);
        postSeq(3);
        vm.warp(accusedAt + T_ACK + 1); // past the answer deadline: resolve decides
        uint256 buyerBefore = buyer.balance;
        judge.resolve(id);
        if (postedAt <= postBy) {
            assertStatus(id, ISupraJudge.Status.Open, "in time: answered");
            assertEq(buyer.balance, buyerBefore, "no refund");
        } else {
            assertStatus(id, ISupraJudge.Status.Settled, "late: upheld");
            assertEq(buyer.balance - buyerBefore, DEPOSIT - 2 * PRICE, "F - R refunded");
        }
    }

    // --------------------------------------------------------------------------------------------
    // 2. Lemma 3: posted-after-close on block time; the seller's Stop as evidence, with its penalty
    // --------------------------------------------------------------------------------------------

    /// Issue attack: the buyer acked everything and closed; the seller signs W new messages stamped at the
    /// close time, posts them 600 s later and claims them. Today's judge paid W P at settle.
    function test_attack_lemma3_backdatedPostsAfterCloseAreNotPaid() public {
        claimAck(id, o, 9);
        vm.prank(buyer);
        judge.requestClose(id);
        uint256 closeAt = block.timestamp;
        Message[] memory late = new Message[](WINDOW);
        bytes[] memory latePayloads = new bytes[](WINDOW);
        for (uint64 i = 0; i < WINDOW; ++i) {
            (late[i], latePayloads[i]) = freshMessage(31 + i); // seqs the channel never saw, stamped at close
        }
        vm.warp(closeAt + 600);
        for (uint64 i = 0; i < WINDOW; ++i) {
            // re-link them onto seq 10.. for the claim: seqs 10..17 (fixture chain has them unposted)
            late[i].seq = 10 + i;
            judge.post(late[i], latePayloads[i], msgProof(late[i]));
        }
        vm.prank(seller);
        vm.expectRevert(
            abi.encodeWithSelector(ISupraJudge.PostedAfterClose.selector, 10, closeAt + 600, closeAt + T_ACK)
        );
        judge.claimPosted(id, 9 + WINDOW);
        vm.warp(closeAt + T_CLOSURE);
        uint256 sellerBefore = seller.balance;
        judge.settle(id);
        assertEq(seller.balance, sellerBefore, "nothing paid for the late posts");
    }

    /// A message the seller stamped after the close is not owed either, however fast it is posted.
    function test_claimPosted_messageStampedAfterTheCloseIsRefused() public {
        claimAck(id, o, 9);
        vm.prank(buyer);
        judge.requestClose(id);
        uint256 closeAt = block.timestamp;
        vm.warp(closeAt + 1);
        (Message memory m, bytes memory payload) = freshMessage(10);
        judge.post(m, payload, msgProof(m));
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.PostedAfterClose.selector, 10, closeAt + 1, closeAt));
        judge.claimPosted(id, 10);
    }

    /// In-flight messages posted within T_ack of the close are still owed and paid.
    function test_claimPosted_postingWithinTAckOfTheCloseIsPaid() public {
        claimAck(id, o, 9);
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_ACK);
        postSeq(10);
        postSeq(11);
        vm.prank(seller);
        judge.claimPosted(id, 11);
        vm.warp(block.timestamp + T_CLOSURE);
        uint256 sellerBefore = seller.balance;
        judge.settle(id);
        assertEq(seller.balance - sellerBefore, 2 * PRICE, "paid");
    }

    /// The seller claims posted messages past its own signed Stop: the buyer proves it with the Stop and
    /// takes F - R.
    function test_attack_claimPastOwnStopIsPunished() public {
        claimAck(id, o, 3);
        Stop memory s = stopOf(id, 5); // the seller's answer to the buyer's Stop
        bytes memory sig = stopSig(s);
        postSeq(4);
        postSeq(5);
        postSeq(6);
        postSeq(7);
        vm.prank(seller);
        judge.claimPosted(id, 7); // 6 and 7 are past its Stop
        uint256 buyerBefore = buyer.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.StopViolationProven(id, 5, 8, 6);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, 0, DEPOSIT - 4 * PRICE);
        vm.prank(buyer);
        judge.submitStop(s, sig);
        assertEq(buyer.balance - buyerBefore, DEPOSIT - 4 * PRICE, "penalty: F - R to the buyer");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    /// Once the Stop is recorded, a claim past it is refused outright.
    function test_claimPosted_pastARecordedStopIsRefused() public {
        Stop memory s = stopOf(id, 5);
        judge.submitStop(s, stopSig(s));
        for (uint64 q = 0; q <= 7; ++q) {
            postSeq(q);
        }
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.PastSellerStop.selector, 7, 6));
        judge.claimPosted(id, 7);
        vm.prank(seller);
        judge.claimPosted(id, 5);
    }

    /// The seller answers an accusation beyond its Stop with the Stop.
    function test_submitStop_answersAnAccusationPastIt() public {
        accuse(9, 6);
        Stop memory s = stopOf(id, 5);
        bytes memory sig = stopSig(s);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Defended(id, 6);
        vm.expectEmit(address(judge));
        emit ISupraJudge.StopRecorded(id, 5, 6);
        vm.prank(seller);
        judge.submitStop(s, sig);
        assertEq(judge.channel(id).disputeDeadline, 0, "answered");
        ISupraJudge.ChannelTiming memory t = judge.channelTiming(id);
        assertTrue(t.sellerStopped, "stopped");
        assertEq(t.sellerStopCount, 6, "count");
    }

    function test_submitStop_keepsTheLowestAndChecksTheSigner() public {
        Stop memory high = stopOf(id, 9);
        Stop memory low = stopOf(id, 4);
        judge.submitStop(low, stopSig(low));
        vm.expectEmit(address(judge));
        emit ISupraJudge.StopRecorded(id, 9, 5);
        judge.submitStop(high, stopSig(high));
        assertEq(judge.channelTiming(id).sellerStopCount, 5, "lowest kept");

        bytes memory byBuyer = sign(BUYER_PK, judge.hashStop(high));
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, buyer));
        judge.submitStop(high, byBuyer);

        Stop memory unknown = stopOf(12345, 1);
        bytes memory unknownSig = stopSig(unknown);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, 12345, ISupraJudge.Status.None));
        judge.submitStop(unknown, unknownSig);
    }

    /// A Stop before startSeq leaves nothing owed.
    function test_submitStop_beforeStartSeqLeavesNothingOwed() public {
        (uint256 late, Offer memory lo) = openDefault(10);
        lo;
        Stop memory s = stopOf(late, 3);
        judge.submitStop(s, stopSig(s));
        assertEq(judge.channelTiming(late).sellerStopCount, 0, "nothing owed");
        BatchProof memory sig = msgProof(chain[12]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotOwed.selector, 10, 10));
        judge.accuse(late, chain[12], sig, 10);
    }

    // --------------------------------------------------------------------------------------------
    // 7. Cooperative close
    // --------------------------------------------------------------------------------------------

    function test_closeCooperatively_settlesAtOnce() public {
        claimAck(id, o, 3);
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        Stop memory s = stopOf(id, 9);
        bytes memory aSig = ackSig(a);
        bytes memory sSig = stopSig(s);
        uint256 sellerBefore = seller.balance;
        uint256 buyerBefore = buyer.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.ClosedCooperatively(id, 9);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, 6 * PRICE, DEPOSIT - 10 * PRICE);
        judge.closeCooperatively(a, aSig, s, sSig);
        assertEq(seller.balance - sellerBefore, 6 * PRICE, "seller: the rest of the final ack");
        assertEq(buyer.balance - buyerBefore, DEPOSIT - 10 * PRICE, "buyer: the rest");
        assertStatus(id, ISupraJudge.Status.Settled, "settled without T_closure");
        assertEq(judge.channel(id).claimed, 10 * PRICE, "R");
    }

    function test_closeCooperatively_whileClosingAndAccused() public {
        accuse(6, 4);
        vm.prank(seller);
        judge.requestClose(id);
        Ack memory a = makeAck(id, 5, costOf(o, 5));
        Stop memory s = stopOf(id, 5);
        judge.closeCooperatively(a, ackSig(a), s, stopSig(s));
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
        assertEq(judge.channel(id).disputeDeadline, 0, "accusation cleared");
    }

    function test_closeCooperatively_rejections() public {
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        bytes memory aSig = ackSig(a);
        Stop memory s8 = stopOf(id, 8);
        bytes memory s8Sig = stopSig(s8);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.StopMismatch.selector, id, 9, id, 8));
        judge.closeCooperatively(a, aSig, s8, s8Sig);

        (uint256 otherId,) = openDefault(0);
        Stop memory elsewhere = stopOf(otherId, 9);
        bytes memory elsewhereSig = stopSig(elsewhere);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.StopMismatch.selector, id, 9, otherId, 9));
        judge.closeCooperatively(a, aSig, elsewhere, elsewhereSig);

        Stop memory s = stopOf(id, 9);
        bytes memory byBuyer = sign(BUYER_PK, judge.hashStop(s));
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, buyer));
        judge.closeCooperatively(a, aSig, s, byBuyer);

        Ack memory wrong = makeAck(id, 9, costOf(o, 9) + 1);
        bytes memory wrongSig = ackSig(wrong);
        bytes memory sSig = stopSig(s);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongCost.selector, 9, wrong.cost, costOf(o, 9)));
        judge.closeCooperatively(wrong, wrongSig, s, sSig);

        judge.closeCooperatively(a, aSig, s, sSig);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.closeCooperatively(a, aSig, s, sSig);
    }

    /// An ack older than what was already claimed pays the seller nothing more.
    function test_closeCooperatively_withAnOldAckPaysNothingMore() public {
        claimAck(id, o, 9);
        Ack memory a = makeAck(id, 5, costOf(o, 5));
        Stop memory s = stopOf(id, 5);
        uint256 buyerBefore = buyer.balance;
        judge.closeCooperatively(a, ackSig(a), s, stopSig(s));
        assertEq(buyer.balance - buyerBefore, DEPOSIT - 10 * PRICE, "F - R");
    }
}
