// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop, PeerAuth} from "../contracts/SupraTypes.sol";
import {vm} from "./utils/Vm.sol";
import {SupraTestBase} from "./utils/SupraTestBase.sol";

/// @dev EIP-712 views and domain, `open`, `topUp`, and signature rejection (forged, high-s, wrong domain).
contract SupraJudgeOpenTest is SupraTestBase {
    // --------------------------------------------------------------------------------------------
    // EIP-712
    // --------------------------------------------------------------------------------------------

    function test_eip712Domain_isSupraV1() public view {
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifying,
            bytes32 salt,
            uint256[] memory extensions
        ) = judge.eip712Domain();
        assertEq(uint256(uint8(fields)), 0x0f, "fields: name, version, chainId, verifyingContract");
        assertEq(name, "Supra", "name");
        assertEq(version, "1", "version");
        assertEq(chainId, block.chainid, "chainId");
        assertEq(verifying, address(judge), "verifyingContract");
        assertEq(salt, bytes32(0), "salt");
        assertEq(extensions.length, 0, "extensions");
    }

    function test_hashViews_matchFieldByFieldEip712() public {
        Offer memory o = makeOffer(5);
        assertEq(judge.hashOffer(o), ownDigest(structHash(o)), "offer");
        ensureChain(3);
        Message memory m = chain[3];
        assertEq(judge.hashMessage(m), ownDigest(structHash(m)), "message");
        Ack memory a = Ack({channelId: 7, seq: 3, digest: judge.hashMessage(m), cost: 4 * PRICE, timestamp: 1234});
        assertEq(judge.hashAck(a), ownDigest(structHash(a)), "ack");
        Stop memory s = Stop({channelId: 7, seq: 3, timestamp: 99});
        assertEq(judge.hashStop(s), ownDigest(structHash(s)), "stop");
        PeerAuth memory p = PeerAuth({from: seller, to: buyer, nonceFrom: keccak256("a"), nonceTo: keccak256("b")});
        assertEq(judge.hashPeerAuth(p), ownDigest(structHash(p)), "peerAuth");
    }

    function testFuzz_hashViews_matchFieldByFieldEip712(Offer memory o, Message memory m, Ack memory a) public view {
        assertEq(judge.hashOffer(o), ownDigest(structHash(o)), "offer");
        assertEq(judge.hashMessage(m), ownDigest(structHash(m)), "message");
        assertEq(judge.hashAck(a), ownDigest(structHash(a)), "ack");
    }

    function test_hashViews_distinguishKinds() public view {
        // Same words, different type hashes: an ack can never pass for a stop.
        Stop memory s = Stop({channelId: 1, seq: 2, timestamp: 3});
        Ack memory a = Ack({channelId: 1, seq: 2, digest: bytes32(uint256(3)), cost: 0, timestamp: 0});
        assertTrue(judge.hashStop(s) != judge.hashAck(a), "kinds differ");
    }

    function test_hashViews_revertOnDirtyEncoding() public {
        ensureChain(1);
        bytes memory good = abi.encodeCall(judge.hashMessage, (chain[1]));
        (bool ok,) = address(judge).staticcall(good);
        assertTrue(ok, "canonical encoding accepted");
        bytes memory dirty = good;
        dirty[4 + 32 + 23] = 0x01; // a bit above the 64 low bits of `seq`
        (ok,) = address(judge).staticcall(dirty);
        assertTrue(!ok, "dirty uint64 rejected");
        Offer memory o = makeOffer(0);
        dirty = abi.encodeCall(judge.hashOffer, (o));
        dirty[4 + 32 + 11] = 0x01; // a bit above the 160 low bits of `seller`
        (ok,) = address(judge).staticcall(dirty);
        assertTrue(!ok, "dirty address rejected");
        dirty = abi.encodeCall(judge.hashOffer, (o));
        dirty[4 + 4 * 32 + 11] = 0x01; // a bit above the 160 low bits of `token` (issue 14)
        (ok,) = address(judge).staticcall(dirty);
        assertTrue(!ok, "dirty token rejected");
        dirty = abi.encodeCall(judge.hashOffer, (o));
        dirty[4 + 5 * 32 + 23] = 0x01; // a bit above the 64 low bits of `window`
        (ok,) = address(judge).staticcall(dirty);
        assertTrue(!ok, "dirty window rejected");
    }

    // --------------------------------------------------------------------------------------------
    // open
    // --------------------------------------------------------------------------------------------

    function test_open_storesChannelAndEmits() public {
        Offer memory o = makeOffer(5);
        bytes memory sig = signOffer(o);
        uint256 expectedId = uint256(ownDigest(structHash(o)));
        vm.expectEmit(address(judge));
        emit ISupraJudge.ChannelOpened(expectedId, streamId, buyer, DEPOSIT);
        vm.prank(buyer);
        uint256 id = judge.open{value: DEPOSIT}(o, sig);

        assertEq(id, expectedId, "channelId = digest of the offer");
        assertEq(id, uint256(judge.hashOffer(o)), "channelId = hashOffer");
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        assertEq(uint256(c.status), uint256(ISupraJudge.Status.Open), "status");
        assertEq(c.streamId, streamId, "streamId");
        assertEq(c.seller, seller, "seller");
        assertEq(c.buyer, buyer, "buyer");
        assertEq(c.price, PRICE, "price");
        assertEq(c.window, WINDOW, "window");
        assertEq(c.startSeq, 5, "startSeq");
        assertEq(c.tAck, T_ACK, "tAck");
        assertEq(c.tClosure, T_CLOSURE, "tClosure");
        assertEq(c.deposit, DEPOSIT, "deposit");
        assertEq(c.claimed, 0, "claimed");
        assertEq(c.acked, 0, "acked");
        assertEq(c.postedClaim, 0, "postedClaim");
        assertEq(c.closeRequestedAt, 0, "closeRequestedAt");
        assertEq(c.disputeDeadline, 0, "disputeDeadline");
        assertEq(address(judge).balance, DEPOSIT, "judge holds the deposit");
    }

    function test_open_packsExtremeTerms() public {
        // The packed record round-trips the widest values it accepts.
        Offer memory o = makeOffer(type(uint64).max);
        o.price = 1;
        o.window = type(uint32).max;
        o.tAck = 86_400; // MAX_T_ACK
        o.tClosure = 604_800; // MAX_T_CLOSURE
        uint256 deposit = type(uint96).max;
        vm.deal(buyer, deposit);
        uint256 id = openWith(o, deposit);
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        assertEq(c.price, 1, "price");
        assertEq(c.window, type(uint32).max, "window");
        assertEq(c.startSeq, type(uint64).max, "startSeq");
        assertEq(c.tAck, 86_400, "tAck");
        assertEq(c.tClosure, 604_800, "tClosure");
        assertEq(judge.channelTiming(id).openedAt, block.timestamp, "openedAt");
        assertEq(c.deposit, type(uint96).max, "deposit");
        assertEq(c.buyer, buyer, "buyer");
        o = makeOffer(0);
        o.price = (uint256(1) << 72) - 1; // MAX_PRICE
        o.window = 1;
        vm.deal(buyer, deposit);
        id = openWith(o, deposit);
        assertEq(judge.channel(id).price, (uint256(1) << 72) - 1, "max price");
    }

    function test_open_acceptsUntilValidUntil() public {
        Offer memory o = makeOffer(0);
        vm.warp(o.validUntil);
        openWith(o, DEPOSIT);
    }

    function test_open_revertsWhenOfferExpired() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        vm.warp(uint256(o.validUntil) + 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.OfferExpired.selector, o.validUntil, block.timestamp));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsForWrongOpener() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotBuyer.selector, other, buyer));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsForReusedOffer() public {
        Offer memory o = makeOffer(0);
        o.validUntil = uint64(block.timestamp + 2 * T_CLOSURE);
        uint256 id = openWith(o, DEPOSIT);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ChannelExists.selector, id));
        judge.open{value: DEPOSIT}(o, sig);
        // Still refused once the first channel is settled: ids are never reused.
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ChannelExists.selector, id));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsWhenSellerIsNotTheStreamOwner() public {
        Offer memory o = makeOffer(0);
        o.seller = other; // streamId still belongs to `seller`
        bytes memory sig = sign(OTHER_PK, judge.hashOffer(o));
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.SellerMismatch.selector, other, streamId));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsWhenSomeoneSellsAnotherSellersStream() public {
        // `other` cannot sell `seller`'s stream: the stream id names the signer.
        Offer memory o = makeOffer(0);
        bytes memory sig = sign(OTHER_PK, judge.hashOffer(o));
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, other));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsOnZeroTerms() public {
        for (uint256 i = 0; i < 4; ++i) {
            Offer memory o = makeOffer(0);
            if (i == 0) o.price = 0;
            if (i == 1) o.window = 0;
            if (i == 2) o.tAck = 0;
            if (i == 3) o.tClosure = 0;
            bytes memory sig = signOffer(o);
            vm.prank(buyer);
            vm.expectRevert(
                abi.encodeWithSelector(ISupraJudge.InvalidTerms.selector, o.price, o.window, o.tAck, o.tClosure)
            );
            judge.open{value: DEPOSIT}(o, sig);
        }
    }

    function test_open_revertsWhenDepositTooSmall() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        uint256 required = PRICE * WINDOW;
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DepositTooSmall.selector, required - 1, required));
        judge.open{value: required - 1}(o, sig);
        vm.prank(buyer);
        judge.open{value: required}(o, sig); // exactly P * W is enough
    }

    function test_open_revertsWhenPriceOrWindowTooLarge() public {
        Offer memory o = makeOffer(0);
        o.price = uint256(1) << 72; // MAX_PRICE + 1
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AmountTooLarge.selector, o.price, (uint256(1) << 72) - 1));
        judge.open{value: DEPOSIT}(o, sig);

        o = makeOffer(0);
        o.price = 1;
        o.window = uint64(type(uint32).max) + 1;
        sig = signOffer(o);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WindowTooLarge.selector, o.window, uint64(type(uint32).max)));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsWhenDepositTooLarge() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        uint256 deposit = uint256(type(uint96).max) + 1;
        vm.deal(buyer, deposit);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.AmountTooLarge.selector, deposit, uint256(type(uint96).max)));
        judge.open{value: deposit}(o, sig);
    }

    function testFuzz_open_depositBounds(uint256 price, uint64 window, uint256 deposit) public {
        price = bound(price, 1, (uint256(1) << 72) - 1);
        window = uint64(bound(window, 1, type(uint32).max));
        deposit = bound(deposit, 0, uint256(type(uint96).max) + 10);
        Offer memory o = makeOffer(0);
        o.price = price;
        o.window = window;
        bytes memory sig = signOffer(o);
        vm.deal(buyer, deposit);
        uint256 required = price * window;
        vm.prank(buyer);
        if (deposit < required) {
            vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DepositTooSmall.selector, deposit, required));
        } else if (deposit > type(uint96).max) {
            vm.expectRevert(
                abi.encodeWithSelector(ISupraJudge.AmountTooLarge.selector, deposit, uint256(type(uint96).max))
            );
        }
        uint256 id = judge.open{value: deposit}(o, sig);
        if (deposit >= required && deposit <= type(uint96).max) {
            assertEq(judge.channel(id).deposit, deposit, "deposit stored");
            assertEq(address(judge).balance, deposit, "balance");
        }
    }

    // --------------------------------------------------------------------------------------------
    // Signatures: forged, high-s, wrong domain, malformed
    // --------------------------------------------------------------------------------------------

    function test_open_revertsOnHighS() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = highS(signOffer(o));
        (, bytes32 s,) = split(sig);
        // The flipped signature is valid for the bare precompile: only the low-s rule rejects it.
        (bytes32 r,, uint8 v) = split(sig);
        assertEq(ecrecover(judge.hashOffer(o), v, r, s), seller, "malleable twin recovers the seller");
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, s));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_open_revertsOnSignatureForAnotherChain() public {
        Offer memory o = makeOffer(0);
        bytes32 foreign = typedDigest(domainSeparator(block.chainid + 1, address(judge)), structHash(o));
        _expectOpenRejects(o, sign(SELLER_PK, foreign), foreign);
    }

    function test_open_revertsOnSignatureForAnotherJudge() public {
        Offer memory o = makeOffer(0);
        bytes32 foreign = typedDigest(domainSeparator(block.chainid, address(0xBEEF)), structHash(o));
        _expectOpenRejects(o, sign(SELLER_PK, foreign), foreign);
    }

    function test_open_revertsOnSignatureOfAnotherOffer() public {
        Offer memory o = makeOffer(0);
        Offer memory cheaper = makeOffer(0);
        cheaper.price = PRICE / 2; // the buyer edits the price of a signed offer
        bytes memory sig = signOffer(o);
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        address recovered = ecrecover(judge.hashOffer(cheaper), v, r, s);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, recovered));
        judge.open{value: DEPOSIT}(cheaper, sig);
    }

    function test_open_revertsOnMalformedSignature() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        bytes memory short = new bytes(64);
        for (uint256 i = 0; i < 64; ++i) {
            short[i] = sig[i];
        }
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureLength.selector, 64));
        judge.open{value: DEPOSIT}(o, short);

        sig[64] = bytes1(uint8(29)); // v must be 27 or 28
        vm.prank(buyer);
        vm.expectRevert(ECDSA.ECDSAInvalidSignature.selector);
        judge.open{value: DEPOSIT}(o, sig);
    }

    function _expectOpenRejects(Offer memory o, bytes memory sig, bytes32 signedDigest) internal {
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        assertEq(ecrecover(signedDigest, v, r, s), seller, "signed by the seller, for another domain");
        address recovered = ecrecover(judge.hashOffer(o), v, r, s);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongSigner.selector, seller, recovered));
        judge.open{value: DEPOSIT}(o, sig);
    }

    // --------------------------------------------------------------------------------------------
    // topUp
    // --------------------------------------------------------------------------------------------

    function test_topUp_addsToDeposit() public {
        (uint256 id,) = openDefault(0);
        vm.expectEmit(address(judge));
        emit ISupraJudge.ToppedUp(id, 5 * PRICE, DEPOSIT + 5 * PRICE);
        vm.prank(buyer);
        judge.topUp{value: 5 * PRICE}(id);
        assertEq(judge.channel(id).deposit, DEPOSIT + 5 * PRICE, "deposit");
        assertEq(address(judge).balance, DEPOSIT + 5 * PRICE, "balance");
    }

    function test_topUp_rejections() public {
        (uint256 id,) = openDefault(0);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotBuyer.selector, other, buyer));
        judge.topUp{value: 1}(id);

        vm.prank(buyer);
        vm.expectRevert(ISupraJudge.ZeroAmount.selector);
        judge.topUp(id);

        uint256 tooMuch = uint256(type(uint96).max) - DEPOSIT + 1;
        vm.deal(buyer, tooMuch);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(ISupraJudge.AmountTooLarge.selector, DEPOSIT + tooMuch, uint256(type(uint96).max))
        );
        judge.topUp{value: tooMuch}(id);

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, 12345, ISupraJudge.Status.None));
        judge.topUp{value: 1}(12345);

        vm.prank(buyer);
        judge.requestClose(id);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Closing));
        judge.topUp{value: 1}(id);
    }
}
