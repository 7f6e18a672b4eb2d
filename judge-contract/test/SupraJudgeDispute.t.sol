// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack} from "../contracts/SupraTypes.sol";
import {vm} from "./utils/Vm.sol";
import {SupraTestBase} from "./utils/SupraTestBase.sol";

/// @dev Runtime code etched at a payee's address (as an EIP-7702 delegation could): rejects ether.
contract Rejecter {
    receive() external payable {
        revert("no thanks");
    }
}

/// @dev Runtime code etched at a payee's address: burns all the gas it is given.
contract GasBurner {
    receive() external payable {
        while (true) {}
    }
}

/// @dev Runtime code etched at a payee's address: calls back the test, which re-enters the judge.
contract Reenterer {
    address internal immutable script;

    constructor(address script_) {
        script = script_;
    }

    receive() external payable {
        (bool ok,) = script.call(abi.encodeWithSignature("onPayout()"));
        ok; // whatever the re-entry did, accept the payment
    }
}

/// @dev `accuse`, `defend`, `defendWithAck`, `resolve`, `proveWrongCost`, `proveEquivocation`, payouts.
contract SupraJudgeDisputeTest is SupraTestBase {
    uint256 internal id;
    Offer internal o;

    function setUp() public override {
        super.setUp();
        (id, o) = openDefault(0);
        ensureChain(20);
    }

    function accuse(uint64 seenSeq, uint64 missingSeq) internal {
        BatchProof memory sig = msgProof(chain[seenSeq]);
        vm.prank(buyer);
        judge.accuse(id, chain[seenSeq], sig, missingSeq);
    }

    // --------------------------------------------------------------------------------------------
    // accuse
    // --------------------------------------------------------------------------------------------

    function test_accuse_opensADispute() public {
        BatchProof memory sig = msgProof(chain[5]);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Accused(id, 3, 5, block.timestamp + T_ACK);
        vm.prank(buyer);
        judge.accuse(id, chain[5], sig, 3);
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        assertEq(c.disputeSeq, 3, "disputeSeq");
        assertEq(c.disputeDeadline, block.timestamp + T_ACK, "deadline");
    }

    function test_accuse_rejections() public {
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotBuyer.selector, other, buyer));
        judge.accuse(id, chain[5], sig, 3);

        vm.startPrank(buyer);
        // seen must be signed by the seller
        BatchProof memory forged = singleProof(OTHER_PK, chain[5]);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, other));
        judge.accuse(id, chain[5], forged, 3);
        // seen must be on the channel's stream
        Message memory elsewhere = chain[5];
        elsewhere.streamId = streamOf(seller, 2);
        BatchProof memory elsewhereSig = msgProof(elsewhere);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStream.selector, streamId, elsewhere.streamId));
        judge.accuse(id, elsewhere, elsewhereSig, 3);
        // missing must be before seen
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.MissingSeqOutOfRange.selector, 5, 0, 5));
        judge.accuse(id, chain[5], sig, 5);
        vm.stopPrank();

        // missing must not be covered by a claimed ack
        claimAck(id, o, 2);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.MissingSeqOutOfRange.selector, 2, 3, 5));
        judge.accuse(id, chain[5], sig, 2);
        // missing must not be posted
        postSeq(3);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AlreadyPosted.selector, streamId, 3));
        judge.accuse(id, chain[5], sig, 3);
        // one accusation at a time
        accuse(5, 4);
        BatchProof memory sig6 = msgProof(chain[6]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AccusationOpen.selector, id, 4));
        judge.accuse(id, chain[6], sig6, 5);
    }

    function test_accuse_beforeStartSeqIsOutOfRange() public {
        (uint256 late,) = openDefault(10);
        BatchProof memory sig = msgProof(chain[12]);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.MissingSeqOutOfRange.selector, 9, 10, 12));
        judge.accuse(late, chain[12], sig, 9);
    }

    // --------------------------------------------------------------------------------------------
    // defend, defendWithAck, resolve
    // --------------------------------------------------------------------------------------------

    function test_defend_byPosting() public {
        accuse(5, 3);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotPosted.selector, streamId, 3));
        judge.defend(id);
        postSeq(3);
        vm.warp(block.timestamp + T_ACK); // the deadline itself is still in time
        vm.expectEmit(address(judge));
        emit ISupraJudge.Defended(id, 3);
        vm.prank(other);
        judge.defend(id);
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
        assertStatus(id, ISupraJudge.Status.Open, "still open");
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NoAccusation.selector, id));
        judge.resolve(id);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NoAccusation.selector, id));
        judge.defend(id);
    }

    function test_defend_tooLate() public {
        accuse(5, 3);
        uint256 deadline = block.timestamp + T_ACK;
        vm.warp(deadline + 1);
        postSeq(3);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DeadlinePassed.selector, deadline, deadline + 1));
        judge.defend(id);
    }

    function test_defendWithAck_clearsAndPays() public {
        accuse(5, 3);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory sig = ackSig(a);
        uint256 before = seller.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.Defended(id, 3);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Claimed(id, 4, 5 * PRICE, 5 * PRICE);
        judge.defendWithAck(a, sig);
        assertEq(seller.balance - before, 5 * PRICE, "counts as a claim");
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
        assertEq(judge.channel(id).acked, 5, "acked");
    }

    function test_defendWithAck_withAnAlreadyClaimedAck() public {
        accuse(5, 3);
        Ack memory a = claimAck(id, o, 4); // claimed, but claim() does not answer the accusation
        assertEq(judge.channel(id).disputeDeadline, block.timestamp + T_ACK, "still open");
        bytes memory sig = ackSig(a);
        vm.recordLogs();
        judge.defendWithAck(a, sig);
        assertEq(vm.getRecordedLogs().length, 1, "Defended only: nothing paid, acked unchanged");
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
    }

    function test_defendWithAck_rejections() public {
        accuse(5, 3);
        Ack memory low = makeAck(id, 2, costOf(o, 2));
        bytes memory lowSig = ackSig(low);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AckTooLow.selector, 2, 3));
        judge.defendWithAck(low, lowSig);

        Ack memory wrong = makeAck(id, 4, costOf(o, 4) - 1);
        bytes memory wrongSig = ackSig(wrong);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongCost.selector, 4, wrong.cost, costOf(o, 4)));
        judge.defendWithAck(wrong, wrongSig);

        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory forged = sign(SELLER_PK, judge.hashAck(a));
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, seller));
        judge.defendWithAck(a, forged);

        bytes memory sig = ackSig(a);
        uint256 deadline = block.timestamp + T_ACK;
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DeadlinePassed.selector, deadline, deadline + 1));
        judge.defendWithAck(a, sig);
    }

    function test_defendWithAck_withoutAccusation() public {
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NoAccusation.selector, id));
        judge.defendWithAck(a, sig);
    }

    function test_settledChannelRejectsEveryAction() public {
        postSeq(0);
        accuse(5, 3);
        vm.warp(block.timestamp + T_ACK + 1);
        judge.resolve(id);
        bytes memory wrongStatus =
            abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory ackSignature = ackSig(a);
        Ack memory bad = makeAck(id, 4, 1);
        bytes memory badSig = ackSig(bad);
        BatchProof memory sig5 = msgProof(chain[5]);
        Message memory twin = twinOf(4);
        BatchProof memory sig4 = msgProof(chain[4]);
        BatchProof memory twinSig = msgProof(twin);

        vm.startPrank(buyer);
        vm.expectRevert(wrongStatus);
        judge.topUp{value: 1}(id);
        vm.expectRevert(wrongStatus);
        judge.requestClose(id);
        vm.expectRevert(wrongStatus);
        judge.accuse(id, chain[5], sig5, 4);
        vm.stopPrank();
        vm.startPrank(seller);
        vm.expectRevert(wrongStatus);
        judge.claim(a, ackSignature);
        vm.expectRevert(wrongStatus);
        judge.claimPosted(id, 0);
        vm.expectRevert(wrongStatus);
        judge.defend(id);
        vm.expectRevert(wrongStatus);
        judge.defendWithAck(a, ackSignature);
        vm.expectRevert(wrongStatus);
        judge.settle(id);
        vm.expectRevert(wrongStatus);
        judge.proveWrongCost(bad, badSig);
        vm.stopPrank();
        vm.expectRevert(wrongStatus);
        judge.proveEquivocation(id, chain[4], sig4, twin, twinSig);
        vm.expectRevert(wrongStatus);
        judge.resolve(id);
    }

    function test_resolve_refundsTheBuyerWhenUndefended() public {
        claimAck(id, o, 1);
        accuse(5, 3);
        uint256 deadline = block.timestamp + T_ACK;
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DeadlineNotPassed.selector, deadline, deadline));
        judge.resolve(id);
        vm.warp(deadline + 1);
        uint256 before = buyer.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.AccusationUpheld(id, 3);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, 0, DEPOSIT - 2 * PRICE);
        vm.prank(other);
        judge.resolve(id);
        assertEq(buyer.balance - before, DEPOSIT - 2 * PRICE, "refund F - R");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
        assertEq(address(judge).balance, 0, "nothing locked");
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.resolve(id);
    }

    function test_resolve_forfeitsThePostedClaim() public {
        postSeq(0);
        postSeq(1);
        vm.prank(seller);
        judge.claimPosted(id, 1);
        accuse(5, 3);
        vm.warp(block.timestamp + T_ACK + 1);
        uint256 before = buyer.balance;
        judge.resolve(id);
        assertEq(buyer.balance - before, DEPOSIT, "the whole deposit back");
    }

    function test_settle_waitsForTheAccusation() public {
        vm.prank(seller);
        judge.requestClose(id);
        accuse(5, 3);
        vm.warp(block.timestamp + T_CLOSURE);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AccusationOpen.selector, id, 3));
        judge.settle(id);
        // Defended late in T_closure? No: a posting mined after the posting limit does not answer.
        postSeq(3);
        vm.expectPartialRevert(ISupraJudge.DeadlinePassed.selector);
        judge.defend(id);
        judge.resolve(id);
        assertStatus(id, ISupraJudge.Status.Settled, "settled by resolve");
    }

    function test_settle_afterADefendedAccusation() public {
        vm.prank(buyer);
        judge.requestClose(id);
        accuse(5, 3);
        postSeq(3);
        judge.defend(id);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    // --------------------------------------------------------------------------------------------
    // proveWrongCost
    // --------------------------------------------------------------------------------------------

    function test_proveWrongCost_givesTheSellerTheRest() public {
        claimAck(id, o, 1);
        Ack memory a = makeAck(id, 6, costOf(o, 6) - PRICE); // the buyer under-declares
        bytes memory sig = ackSig(a);
        uint256 before = seller.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.WrongCostProven(id, 6, a.cost);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, DEPOSIT - 2 * PRICE, 0);
        vm.prank(other);
        judge.proveWrongCost(a, sig);
        assertEq(seller.balance - before, DEPOSIT - 2 * PRICE, "seller takes F - R");
        assertEq(judge.channel(id).claimed, DEPOSIT, "R = F");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.proveWrongCost(a, sig);
    }

    function test_proveWrongCost_seqBeforeStart() public {
        (uint256 late, Offer memory lateOffer) = openDefault(10);
        Ack memory a = makeAck(late, 9, 0);
        bytes memory sig = ackSig(a);
        judge.proveWrongCost(a, sig);
        assertEq(judge.channel(late).claimed, lateOffer.price * 100, "penalty");
    }

    function test_proveWrongCost_rejections() public {
        Ack memory good = makeAck(id, 6, costOf(o, 6));
        bytes memory sig = ackSig(good);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CostIsCorrect.selector, 6, good.cost));
        judge.proveWrongCost(good, sig);

        Ack memory bad = makeAck(id, 6, 1);
        bytes memory forged = sign(SELLER_PK, judge.hashAck(bad)); // the seller cannot fake one
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, seller));
        judge.proveWrongCost(bad, forged);
    }

    function testFuzz_proveWrongCost(uint64 seq, uint256 cost, bool correct) public {
        seq = uint64(bound(seq, 0, 1e6));
        if (correct) cost = costOf(o, seq);
        Ack memory a = makeAckRaw(seq, cost);
        bytes memory sig = ackSig(a);
        if (cost == costOf(o, seq)) {
            vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CostIsCorrect.selector, seq, cost));
            judge.proveWrongCost(a, sig);
        } else {
            vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongCost.selector, seq, cost, costOf(o, seq)));
            judge.claim(a, sig);
            uint256 before = seller.balance;
            judge.proveWrongCost(a, sig);
            assertEq(seller.balance - before, DEPOSIT, "seller takes F");
            assertStatus(id, ISupraJudge.Status.Settled, "settled");
        }
    }

    function makeAckRaw(uint64 seq, uint256 cost) internal view returns (Ack memory) {
        return Ack({channelId: id, seq: seq, digest: keccak256(abi.encode(seq)), cost: cost, timestamp: 1});
    }

    // --------------------------------------------------------------------------------------------
    // proveEquivocation
    // --------------------------------------------------------------------------------------------

    function twinPayload(uint64 seq) internal pure returns (bytes memory) {
        return abi.encode("another payload", seq);
    }

    function twinOf(uint64 seq) internal view returns (Message memory twin) {
        twin = chain[seq];
        twin.payloadHash = keccak256(twinPayload(seq));
    }

    function test_proveEquivocation_sameSeqTwoMessages() public {
        claimAck(id, o, 2);
        Message memory a = chain[4];
        Message memory b = twinOf(4);
        BatchProof memory sigA = msgProof(a);
        BatchProof memory sigB = msgProof(b);
        uint256 before = buyer.balance;
        bytes32 digestA = judge.hashMessage(a);
        bytes32 digestB = judge.hashMessage(b);
        vm.expectEmit(address(judge));
        emit ISupraJudge.EquivocationProven(id, 4, 4, digestA, digestB);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, 0, DEPOSIT - 3 * PRICE);
        vm.prank(other);
        judge.proveEquivocation(id, a, sigA, b, sigB);
        assertEq(buyer.balance - before, DEPOSIT - 3 * PRICE, "buyer takes F - R");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    function test_proveEquivocation_brokenLink() public {
        Message memory a = chain[4];
        Message memory b = chain[5];
        b.prev = keccak256("not message 4");
        BatchProof memory sigA = msgProof(a);
        BatchProof memory sigB = msgProof(b);
        judge.proveEquivocation(id, a, sigA, b, sigB);
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    function test_proveEquivocation_afterAConflictingPost() public {
        postSeq(7);
        Message memory twin = twinOf(7);
        BatchProof memory twinSig = msgProof(twin);
        vm.expectPartialRevert(ISupraJudge.ConflictingPost.selector);
        judge.post(twin, twinPayload(7), twinSig);
        BatchProof memory sig7 = msgProof(chain[7]);
        judge.proveEquivocation(id, chain[7], sig7, twin, twinSig); // the rejected post was proof enough
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
    }

    function test_proveEquivocation_clearsAnOpenAccusation() public {
        accuse(6, 3);
        Message memory b = twinOf(4);
        BatchProof memory sigA = msgProof(chain[4]);
        BatchProof memory sigB = msgProof(b);
        judge.proveEquivocation(id, chain[4], sigA, b, sigB);
        assertEq(judge.channel(id).disputeDeadline, 0, "cleared");
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.resolve(id);
    }

    function test_proveEquivocation_rejections() public {
        BatchProof memory sig4 = msgProof(chain[4]);
        BatchProof memory sig5 = msgProof(chain[5]);
        BatchProof memory sig7 = msgProof(chain[7]);
        bytes32 d4 = judge.hashMessage(chain[4]);
        bytes32 d5 = judge.hashMessage(chain[5]);
        bytes32 d7 = judge.hashMessage(chain[7]);
        // the same message twice
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotEquivocation.selector, d4, d4));
        judge.proveEquivocation(id, chain[4], sig4, chain[4], sig4);
        // a correct link
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotEquivocation.selector, d4, d5));
        judge.proveEquivocation(id, chain[4], sig4, chain[5], sig5);
        // unrelated seqs
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotEquivocation.selector, d4, d7));
        judge.proveEquivocation(id, chain[4], sig4, chain[7], sig7);
        // the twin must be signed by the seller
        Message memory twin = twinOf(4);
        BatchProof memory forged = singleProof(OTHER_PK, twin);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, other));
        judge.proveEquivocation(id, chain[4], sig4, twin, forged);
        // both on the channel's stream
        Message memory elsewhere = twinOf(4);
        elsewhere.streamId = streamOf(seller, 2);
        BatchProof memory elsewhereSig = msgProof(elsewhere);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStream.selector, streamId, elsewhere.streamId));
        judge.proveEquivocation(id, chain[4], sig4, elsewhere, elsewhereSig);
        // within the channel's range
        (uint256 late,) = openDefault(10);
        BatchProof memory twinSig = msgProof(twin);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.SeqBeforeStart.selector, 4, 10));
        judge.proveEquivocation(late, chain[4], sig4, twin, twinSig);
    }

    // --------------------------------------------------------------------------------------------
    // Payouts: deferred, withdrawn, re-entered
    // --------------------------------------------------------------------------------------------

    function closeAndWait() internal {
        vm.prank(seller);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
    }

    function test_payout_deferredWhenThePayeeRejectsEther() public {
        claimAck(id, o, 9);
        closeAndWait();
        vm.etch(buyer, type(Rejecter).runtimeCode);
        uint256 refund = DEPOSIT - 10 * PRICE;
        vm.expectEmit(address(judge));
        emit ISupraJudge.PayoutDeferred(buyer, refund);
        judge.settle(id); // the seller's settlement is not blocked by the buyer's code
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
        assertEq(judge.owed(buyer), refund, "credited");
        assertEq(address(judge).balance, refund, "held for the buyer");

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.TransferFailed.selector, buyer, refund));
        judge.withdraw();

        vm.etch(buyer, "");
        uint256 before = buyer.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.Withdrawn(buyer, refund);
        vm.prank(buyer);
        judge.withdraw();
        assertEq(buyer.balance - before, refund, "withdrawn");
        assertEq(judge.owed(buyer), 0, "no longer owed");
        assertEq(address(judge).balance, 0, "empty");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToWithdraw.selector, buyer));
        judge.withdraw();
    }

    function test_payout_gasBurnerCannotGriefTheCaller() public {
        vm.etch(seller, type(GasBurner).runtimeCode);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory sig = ackSig(a);
        uint256 gasBefore = gasleft();
        judge.claim{gas: 200_000}(a, sig);
        assertLe(gasBefore - gasleft(), 200_000, "bounded");
        assertEq(judge.owed(seller), 5 * PRICE, "deferred, not lost");
        assertEq(judge.channel(id).claimed, 5 * PRICE, "claimed");
    }

    // Re-entrancy: the payee calls back into the judge while being paid.
    Ack internal reentryAck;
    bytes internal reentrySig;
    uint256 internal reentries;
    bytes4 internal reentryClaimError;
    bytes4 internal reentrySettleError;
    bytes4 internal reentryWithdrawError;

    /// @dev Makes the recorder's storage non-zero so that recording fits in a payout's gas allowance.
    function primeRecorder() internal {
        reentries = 1;
        reentryClaimError = 0xffffffff;
        reentrySettleError = 0xffffffff;
        reentryWithdrawError = 0xffffffff;
    }

    function onPayout() external {
        reentries++;
        try judge.withdraw() {}
        catch (bytes memory err) {
            reentryWithdrawError = bytes4(err);
        }
        if (reentryAck.channelId != 0) {
            try judge.claim(reentryAck, reentrySig) {}
            catch (bytes memory err) {
                reentryClaimError = bytes4(err);
            }
        }
        try judge.settle(id) {}
        catch (bytes memory err) {
            reentrySettleError = bytes4(err);
        }
    }

    function test_payout_reentrantClaimWithinThePayoutAllowance() public {
        vm.deal(seller, 0);
        // Runtime code of a deployed Reenterer: its immutable `script` (this test) is part of the code.
        vm.etch(seller, address(new Reenterer(address(this))).code);
        reentryAck = makeAck(id, 4, costOf(o, 4));
        reentrySig = ackSig(reentryAck);
        judge.claim(reentryAck, reentrySig);
        // Whatever the re-entry managed within PAYOUT_GAS, the ack was paid exactly once.
        assertEq(seller.balance + judge.owed(seller), 5 * PRICE, "paid exactly once");
        assertEq(judge.channel(id).claimed, 5 * PRICE, "R");
        assertEq(address(judge).balance, DEPOSIT - seller.balance, "the judge holds the rest");
    }

    function test_payout_reentrantReplayDuringWithdrawPaysNothing() public {
        // With all the gas of a withdrawal, the payee re-enters withdraw, claim (the paid ack) and settle.
        vm.deal(seller, 0);
        vm.etch(seller, type(Rejecter).runtimeCode);
        reentryAck = claimAck(id, o, 4); // deferred: the seller's code rejected it
        reentrySig = ackSig(reentryAck);
        assertEq(judge.owed(seller), 5 * PRICE, "deferred");
        vm.etch(seller, address(new Reenterer(address(this))).code);
        vm.prank(seller);
        judge.withdraw();
        assertEq(reentries, 1, "re-entered once");
        assertEq(reentryWithdrawError, ISupraJudge.NothingToWithdraw.selector, "owed was zeroed before paying");
        assertEq(reentryClaimError, ISupraJudge.NothingToClaim.selector, "R was raised before paying");
        assertEq(reentrySettleError, ISupraJudge.WrongStatus.selector, "not closing");
        assertEq(seller.balance, 5 * PRICE, "paid exactly once");
        assertEq(judge.owed(seller), 0, "nothing owed");
        assertEq(address(judge).balance, DEPOSIT - 5 * PRICE, "F - R held");
    }

    function test_payout_reentrantSettleCannotDoubleRefund() public {
        closeAndWait();
        vm.etch(buyer, address(new Reenterer(address(this))).code);
        primeRecorder();
        uint256 before = buyer.balance;
        judge.settle(id);
        assertEq(reentries, 2, "re-entered once");
        assertEq(
            reentrySettleError,
            ISupraJudge.WrongStatus.selector,
            "the channel is already Settled when the buyer is paid"
        );
        assertEq(buyer.balance - before + judge.owed(buyer), DEPOSIT, "refunded exactly once");
        assertEq(address(judge).balance, judge.owed(buyer), "nothing else held");
    }

    function test_payoutGas_isTheDocumentedConstant() public view {
        assertEq(judge.PAYOUT_GAS(), 50_000, "PAYOUT_GAS");
    }
}
