// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack} from "../contracts/SupraTypes.sol";
import {vm} from "./utils/Vm.sol";
import {SupraTestBase} from "./utils/SupraTestBase.sol";

/// @dev `post`, `claim`, `claimPosted`, `requestClose`, `settle`.
contract SupraJudgeClaimTest is SupraTestBase {
    // --------------------------------------------------------------------------------------------
    // post
    // --------------------------------------------------------------------------------------------

    function test_post_storesDigestPrefixAndBlockTime() public {
        ensureChain(2);
        Message memory m = chain[2];
        BatchProof memory sig = msgProof(m);
        bytes32 digest = judge.hashMessage(m);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Posted(streamId, 2, digest, m.timestamp, m.prev, payloads[2], sig);
        vm.warp(block.timestamp + 7); // the posting's time is its block time, not the signed timestamp
        vm.prank(other); // anyone may submit a seller-signed message
        judge.post(m, payloads[2], sig);
        (bytes24 prefix, uint64 ts) = judge.posting(streamId, 2);
        assertEq(bytes32(prefix), bytes32(bytes24(digest)), "digest prefix");
        assertEq(ts, block.timestamp, "postedAt");
        (prefix, ts) = judge.posting(streamId, 1);
        assertEq(bytes32(prefix), bytes32(0), "seq 1 not posted");
    }

    function test_post_sameMessageAgainIsANoOp() public {
        postSeq(0);
        vm.recordLogs();
        postSeq(0);
        assertEq(vm.getRecordedLogs().length, 0, "no second Posted event");
    }

    function test_post_revertsOnPayloadMismatch() public {
        ensureChain(0);
        Message memory m = chain[0];
        BatchProof memory sig = msgProof(m);
        bytes memory wrong = payloadFor(99, 64);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.PayloadMismatch.selector, m.payloadHash, keccak256(wrong)));
        judge.post(m, wrong, sig);
    }

    function test_post_revertsWhenNotSignedByTheStreamSeller() public {
        ensureChain(0);
        Message memory m = chain[0];
        BatchProof memory forged = singleProof(OTHER_PK, m);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, other));
        judge.post(m, payloads[0], forged);

        BatchProof memory proof = msgProof(m);
        proof.sig = highS(proof.sig);
        (, bytes32 s,) = split(proof.sig);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, s));
        judge.post(m, payloads[0], proof);
    }

    function test_post_conflictingMessageReverts() public {
        postSeq(1);
        Message memory twin = chain[1];
        bytes memory payload = payloadFor(1000, 64);
        twin.payloadHash = keccak256(payload);
        bytes32 digest = judge.hashMessage(twin);
        BatchProof memory sig = msgProof(twin);
        (bytes24 posted,) = judge.posting(streamId, 1);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ConflictingPost.selector, streamId, 1, posted, digest));
        judge.post(twin, payload, sig);
    }

    function test_post_256BytePayload() public {
        bytes memory payload = payloadFor(0, 256);
        Message memory m =
            Message({streamId: streamId, seq: 0, timestamp: 1, payloadHash: keccak256(payload), prev: bytes32(0)});
        judge.post(m, payload, msgProof(m));
        (bytes24 prefix,) = judge.posting(streamId, 0);
        assertTrue(prefix != bytes24(0), "posted");
    }

    // --------------------------------------------------------------------------------------------
    // claim
    // --------------------------------------------------------------------------------------------

    function test_claim_paysTheSellerCumulatively() public {
        (uint256 id, Offer memory o) = openDefault(10);
        uint256 before = seller.balance;
        Ack memory a = makeAck(id, 12, costOf(o, 12));
        bytes memory sig = ackSig(a);
        vm.expectEmit(address(judge));
        emit ISupraJudge.Claimed(id, 12, 3 * PRICE, 3 * PRICE);
        vm.prank(other); // anyone may submit; the seller is paid
        judge.claim(a, sig);
        assertEq(seller.balance - before, 3 * PRICE, "paid 3 messages");
        assertEq(judge.channel(id).claimed, 3 * PRICE, "R");
        assertEq(judge.channel(id).acked, 3, "acked");

        claimAck(id, o, 16);
        assertEq(seller.balance - before, 7 * PRICE, "paid 7 messages in total");
        assertEq(judge.channel(id).acked, 7, "acked");
        assertEq(address(judge).balance, DEPOSIT - 7 * PRICE, "judge keeps F - R");
    }

    function test_claim_replayedAckPaysNothing() public {
        (uint256 id, Offer memory o) = openDefault(0);
        Ack memory a = claimAck(id, o, 4);
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToClaim.selector, id, 4));
        judge.claim(a, sig);
    }

    function test_claim_olderAckPaysNothing() public {
        (uint256 id, Offer memory o) = openDefault(0);
        Ack memory older = makeAck(id, 2, costOf(o, 2));
        bytes memory sig = ackSig(older);
        claimAck(id, o, 6);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToClaim.selector, id, 2));
        judge.claim(older, sig);
        assertEq(judge.channel(id).acked, 7, "acked never goes down");
    }

    function test_claim_aboveDepositIsCapped() public {
        (uint256 id, Offer memory o) = openDefault(0);
        uint256 before = seller.balance;
        Ack memory a = claimAck(id, o, 149); // cost 150 P, deposit 100 P
        assertEq(seller.balance - before, DEPOSIT, "capped at F");
        assertEq(judge.channel(id).claimed, DEPOSIT, "R = F");
        assertEq(address(judge).balance, 0, "nothing left");
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToClaim.selector, id, 149));
        judge.claim(a, sig);

        // A top-up makes the rest of the same ack payable.
        vm.prank(buyer);
        judge.topUp{value: 80 * PRICE}(id);
        judge.claim(a, sig);
        assertEq(seller.balance - before, 150 * PRICE, "paid the full cost");
        assertEq(judge.channel(id).claimed, 150 * PRICE, "R = C");
    }

    function test_claim_revertsOnWrongCost() public {
        (uint256 id, Offer memory o) = openDefault(3);
        Ack memory a = makeAck(id, 5, costOf(o, 5) + 1);
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongCost.selector, 5, a.cost, costOf(o, 5)));
        judge.claim(a, sig);
    }

    function test_claim_revertsForSeqBeforeStart() public {
        (uint256 id,) = openDefault(3);
        Ack memory a = makeAck(id, 2, 0);
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.SeqBeforeStart.selector, 2, 3));
        judge.claim(a, sig);
    }

    function test_claim_revertsOnForgedAck() public {
        (uint256 id, Offer memory o) = openDefault(0);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        // The seller (or anyone) signs an ack in the buyer's name.
        bytes memory forged = sign(SELLER_PK, judge.hashAck(a));
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, seller));
        judge.claim(a, forged);
        // A genuine ack with an inflated seq (and matching cost) is not the buyer's statement either.
        bytes memory sig = ackSig(a);
        a.seq = 40;
        a.cost = costOf(o, 40);
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        address recovered = ecrecover(judge.hashAck(a), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, recovered));
        judge.claim(a, sig);
    }

    function test_claim_revertsOnHighS() public {
        (uint256 id, Offer memory o) = openDefault(0);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory sig = highS(ackSig(a));
        (, bytes32 s,) = split(sig);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, s));
        judge.claim(a, sig);
    }

    function test_claim_revertsOnAckSignedForAnotherDomain() public {
        (uint256 id, Offer memory o) = openDefault(0);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes32[2] memory foreign = [
            typedDigest(domainSeparator(block.chainid + 1, address(judge)), structHash(a)),
            typedDigest(domainSeparator(block.chainid, address(0xBEEF)), structHash(a))
        ];
        for (uint256 i = 0; i < 2; ++i) {
            bytes memory sig = sign(BUYER_PK, foreign[i]);
            (bytes32 r, bytes32 s, uint8 v) = split(sig);
            address recovered = ecrecover(judge.hashAck(a), v, r, s);
            vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, recovered));
            judge.claim(a, sig);
        }
    }

    function test_claim_ackOfAnotherChannelIsWorthless() public {
        // Two channels of the same buyer on the same stream: an ack binds one channel only.
        (uint256 idA, Offer memory oA) = openDefault(0);
        (uint256 idB,) = openDefault(0);
        Ack memory a = makeAck(idA, 4, costOf(oA, 4));
        bytes memory sig = ackSig(a);
        a.channelId = idB; // replay A's ack against B
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        address recovered = ecrecover(judge.hashAck(a), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, buyer, recovered));
        judge.claim(a, sig);
        assertEq(judge.channel(idB).claimed, 0, "B untouched");
    }

    function test_claim_ackOfAnEarlierChannelCannotBeReplayedInALaterOne() public {
        // Lemma 4: same seller, buyer, stream and terms, next offer: a new channelId, so the old ack is void.
        (uint256 first, Offer memory o1) = openDefault(0);
        Ack memory old = claimAck(first, o1, 9);
        bytes memory oldSig = ackSig(old);
        vm.prank(buyer);
        judge.requestClose(first);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(first);

        (uint256 second,) = openDefault(0);
        assertTrue(second != first, "fresh channel id");
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, first, ISupraJudge.Status.Settled));
        judge.claim(old, oldSig);
        old.channelId = second;
        vm.expectPartialRevert(ISupraJudge.WrongSigner.selector);
        judge.claim(old, oldSig);
    }

    function test_claim_worksWhileClosingAndNotAfterSettle() public {
        (uint256 id, Offer memory o) = openDefault(0);
        vm.prank(buyer);
        judge.requestClose(id);
        claimAck(id, o, 3);
        assertEq(judge.channel(id).claimed, 4 * PRICE, "claim during T_closure");
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        Ack memory a = makeAck(id, 5, costOf(o, 5));
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.claim(a, sig);
    }

    function test_claim_countAtTheEdgeOfUint64() public {
        // startSeq 0 and seq 2^64 - 1: the ack covers 2^64 messages, one more than a uint64 holds.
        Offer memory o = makeOffer(0);
        o.price = 1;
        uint256 id = openWith(o, DEPOSIT);
        uint64 seq = type(uint64).max;
        Ack memory a = makeAck(id, seq, uint256(seq) + 1);
        bytes memory sig = ackSig(a);
        judge.claim(a, sig);
        assertEq(judge.channel(id).acked, uint256(type(uint64).max) + 1, "acked = 2^64");
        assertEq(judge.channel(id).claimed, DEPOSIT, "capped at F");
    }

    function test_claim_unknownChannel() public {
        Ack memory a = makeAck(42, 0, PRICE);
        bytes memory sig = ackSig(a);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, 42, ISupraJudge.Status.None));
        judge.claim(a, sig);
    }

    function testFuzz_claim_paysMinOfCostAndDeposit(
        uint256 price,
        uint64 startSeq,
        uint64 seq,
        uint256 deposit,
        uint64 window
    ) public {
        price = bound(price, 1, (uint256(1) << 72) - 1);
        window = uint64(bound(window, 1, 1000));
        startSeq = uint64(bound(startSeq, 0, type(uint64).max - 1));
        seq = uint64(bound(seq, startSeq, type(uint64).max));
        deposit = bound(deposit, price * window, type(uint96).max);
        Offer memory o = makeOffer(startSeq);
        o.price = price;
        o.window = window;
        vm.deal(buyer, deposit);
        uint256 id = openWith(o, deposit);
        uint256 cost = costOf(o, seq);
        Ack memory a = Ack({channelId: id, seq: seq, digest: keccak256("d"), cost: cost, timestamp: 0});
        bytes memory sig = ackSig(a);
        uint256 before = seller.balance;
        judge.claim(a, sig);
        uint256 expected = cost < deposit ? cost : deposit;
        assertEq(seller.balance - before, expected, "paid min(C, F)");
        assertEq(judge.channel(id).claimed, expected, "R");
        assertEq(judge.channel(id).acked, uint256(seq) - startSeq + 1, "acked");
        assertEq(address(judge).balance, deposit - expected, "F - R stays");
    }

    function testFuzz_claim_randomAckOrder(uint8[8] memory seqs, uint256 topUp) public {
        (uint256 id, Offer memory o) = openDefault(0);
        uint256 maxCost;
        uint256 deposit = DEPOSIT;
        uint256 lastR;
        for (uint256 i = 0; i < seqs.length; ++i) {
            if (i == 4) {
                topUp = bound(topUp, 1, 200 * PRICE);
                vm.prank(buyer);
                judge.topUp{value: topUp}(id);
                deposit += topUp;
            }
            uint64 seq = seqs[i];
            Ack memory a = makeAck(id, seq, costOf(o, seq));
            bytes memory sig = ackSig(a);
            uint256 cost = costOf(o, seq);
            uint256 cap = cost < deposit ? cost : deposit;
            if (cap <= lastR) {
                vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToClaim.selector, id, seq));
                judge.claim(a, sig);
            } else {
                judge.claim(a, sig);
            }
            if (cost > maxCost) maxCost = cost;
            uint256 r = judge.channel(id).claimed;
            assertGe(r, lastR, "R never decreases");
            assertLe(r, deposit, "R <= F");
            assertLe(r, maxCost, "R <= highest acked cost");
            lastR = r;
        }
    }

    // --------------------------------------------------------------------------------------------
    // claimPosted, requestClose, settle
    // --------------------------------------------------------------------------------------------

    function test_requestClose_byEitherParty() public {
        (uint256 id,) = openDefault(0);
        vm.expectEmit(address(judge));
        emit ISupraJudge.CloseRequested(id, seller, block.timestamp + T_CLOSURE);
        vm.prank(seller);
        judge.requestClose(id);
        assertStatus(id, ISupraJudge.Status.Closing, "closing");
        assertEq(judge.channel(id).closeRequestedAt, block.timestamp, "closeRequestedAt");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Closing));
        judge.requestClose(id);

        (uint256 id2,) = openDefault(0);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotParty.selector, other));
        judge.requestClose(id2);
        vm.prank(buyer);
        judge.requestClose(id2);
    }

    function test_settle_refundsTheBuyerAfterClosure() public {
        (uint256 id, Offer memory o) = openDefault(0);
        claimAck(id, o, 9);
        vm.prank(buyer);
        judge.requestClose(id);
        uint256 settleAfter = block.timestamp + T_CLOSURE;
        vm.warp(settleAfter - 1);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ClosureNotElapsed.selector, settleAfter, settleAfter - 1));
        judge.settle(id);

        vm.warp(settleAfter);
        uint256 buyerBefore = buyer.balance;
        uint256 sellerBefore = seller.balance;
        vm.expectEmit(address(judge));
        emit ISupraJudge.Settled(id, 0, DEPOSIT - 10 * PRICE);
        judge.settle(id);
        assertEq(buyer.balance - buyerBefore, DEPOSIT - 10 * PRICE, "buyer gets F - R");
        assertEq(seller.balance, sellerBefore, "no posted claim");
        assertStatus(id, ISupraJudge.Status.Settled, "settled");
        assertEq(address(judge).balance, 0, "nothing locked");

        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Settled));
        judge.settle(id);
    }

    function test_settle_requiresClosing() public {
        (uint256 id,) = openDefault(0);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Open));
        judge.settle(id);
    }

    function test_claimPosted_isPaidAtSettle() public {
        (uint256 id, Offer memory o) = openDefault(0);
        claimAck(id, o, 3);
        for (uint64 s = 4; s <= 11; ++s) {
            postSeq(s);
        }
        vm.expectEmit(address(judge));
        emit ISupraJudge.PostedClaimRecorded(id, 11);
        vm.prank(seller);
        judge.claimPosted(id, 11); // W = 8 posted messages after the last ack
        assertEq(judge.channel(id).postedClaim, 12, "postedClaim count");
        assertEq(judge.channel(id).claimed, 4 * PRICE, "not paid yet");

        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        uint256 sellerBefore = seller.balance;
        uint256 buyerBefore = buyer.balance;
        judge.settle(id);
        assertEq(seller.balance - sellerBefore, 8 * PRICE, "posted messages paid");
        assertEq(buyer.balance - buyerBefore, DEPOSIT - 12 * PRICE, "buyer gets the rest");
        assertEq(judge.channel(id).claimed, 12 * PRICE, "R includes the posted claim");
    }

    function test_claimPosted_rejections() public {
        (uint256 id, Offer memory o) = openDefault(2);
        claimAck(id, o, 3); // acked: seqs 2..3
        for (uint64 s = 4; s <= 13; ++s) {
            postSeq(s);
        }
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotSeller.selector, buyer, seller));
        judge.claimPosted(id, 5);

        vm.startPrank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.SeqBeforeStart.selector, 1, 2));
        judge.claimPosted(id, 1);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ClaimOutOfWindow.selector, 3, 4, 11));
        judge.claimPosted(id, 3); // already acked
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ClaimOutOfWindow.selector, 12, 4, 11));
        judge.claimPosted(id, 12); // W + 1 beyond the last ack
        judge.claimPosted(id, 11); // the whole window: 4..11, all posted
        vm.stopPrank();
        assertEq(judge.channel(id).postedClaim, 10, "count from startSeq 2 to 11");
    }

    function test_claimPosted_revertsWhenAMessageIsNotPosted() public {
        (uint256 id, Offer memory o) = openDefault(0);
        claimAck(id, o, 3);
        postSeq(4);
        postSeq(6);
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotPosted.selector, streamId, 5));
        judge.claimPosted(id, 6);
    }

    function test_claimPosted_extendsAndNeverShrinks() public {
        (uint256 id,) = openDefault(0);
        for (uint64 s = 0; s <= 5; ++s) {
            postSeq(s);
        }
        vm.startPrank(seller);
        judge.claimPosted(id, 2);
        judge.claimPosted(id, 5); // checks only 3..5
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToClaim.selector, id, 4));
        judge.claimPosted(id, 4);
        vm.stopPrank();
        assertEq(judge.channel(id).postedClaim, 6, "postedClaim");
    }

    function test_claimPosted_rejectsPostingsMinedLaterThanTAckAfterTheClose() public {
        (uint256 id,) = openDefault(0);
        ensureChain(3); // all timestamped before the close
        postSeq(0);
        vm.warp(block.timestamp + 10);
        vm.prank(buyer);
        judge.requestClose(id);
        uint256 limit = judge.channel(id).closeRequestedAt + T_ACK;
        vm.warp(limit);
        postSeq(1); // in flight at the close, posted within T_ack: owed
        vm.warp(limit + 1);
        postSeq(2); // mined one second too late, whatever its signed timestamp says
        vm.startPrank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.PostedAfterClose.selector, 2, limit + 1, limit));
        judge.claimPosted(id, 2);
        judge.claimPosted(id, 1);
        vm.stopPrank();
    }

    function test_claimPosted_isCappedByTheDeposit() public {
        Offer memory o = makeOffer(0);
        uint256 id = openWith(o, PRICE * WINDOW + PRICE / 2); // 8.5 messages
        for (uint64 s = 0; s < WINDOW; ++s) {
            postSeq(s);
        }
        vm.prank(seller);
        judge.claimPosted(id, WINDOW - 1);
        vm.prank(seller);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        uint256 before = buyer.balance;
        judge.settle(id);
        assertEq(buyer.balance - before, PRICE / 2, "buyer keeps what exceeds the claim");
    }

    function test_claimPosted_supersededByLaterAcks() public {
        (uint256 id, Offer memory o) = openDefault(0);
        for (uint64 s = 0; s <= 4; ++s) {
            postSeq(s);
        }
        vm.prank(seller);
        judge.claimPosted(id, 4);
        claimAck(id, o, 6); // the buyer acked beyond: R = 7 P > 5 P
        vm.prank(seller);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        uint256 before = seller.balance;
        judge.settle(id);
        assertEq(seller.balance, before, "posted claim already covered by R");
        assertEq(judge.channel(id).claimed, 7 * PRICE, "R");
    }

    function testFuzz_settle_splitsTheDepositExactly(uint256 deposit, uint8 ackSeq, uint8 postedExtra, bool doAck)
        public
    {
        deposit = bound(deposit, PRICE * WINDOW, 40 * PRICE);
        postedExtra = uint8(bound(postedExtra, 0, WINDOW));
        Offer memory o = makeOffer(0);
        uint256 id = openWith(o, deposit);
        uint256 sellerBefore = seller.balance;
        uint256 buyerBefore = buyer.balance;
        uint64 acked;
        if (doAck) {
            ackSeq = uint8(bound(ackSeq, 0, 50));
            claimAck(id, o, ackSeq);
            acked = uint64(ackSeq) + 1;
        }
        if (postedExtra > 0) {
            for (uint64 s = acked; s < acked + postedExtra; ++s) {
                postSeq(s);
            }
            vm.prank(seller);
            judge.claimPosted(id, acked + postedExtra - 1);
        }
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        uint256 toSeller = seller.balance - sellerBefore;
        uint256 toBuyer = buyer.balance - buyerBefore;
        uint256 owedToSeller = (uint256(acked) + postedExtra) * PRICE;
        assertEq(toSeller + toBuyer, deposit, "seller + buyer = F");
        assertEq(toSeller, owedToSeller < deposit ? owedToSeller : deposit, "seller gets min(owed, F)");
        assertEq(judge.channel(id).claimed, toSeller, "R = seller total");
        assertEq(address(judge).balance, 0, "nothing locked");
    }

    function testFuzz_claimPosted_window(uint8 ackSeq, uint16 upto) public {
        (uint256 id, Offer memory o) = openDefault(0);
        ackSeq = uint8(bound(ackSeq, 0, 40));
        claimAck(id, o, ackSeq);
        upto = uint16(bound(upto, 0, 60));
        for (uint64 s = uint64(ackSeq) + 1; s <= upto; ++s) {
            postSeq(s);
        }
        vm.prank(seller);
        if (upto <= ackSeq || upto > uint256(ackSeq) + WINDOW) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISupraJudge.ClaimOutOfWindow.selector, upto, uint256(ackSeq) + 1, uint256(ackSeq) + WINDOW
                )
            );
        }
        judge.claimPosted(id, upto);
    }
}
