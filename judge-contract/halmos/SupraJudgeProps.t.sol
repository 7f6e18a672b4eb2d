// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SupraJudge} from "../contracts/SupraJudge.sol";
import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop} from "../contracts/SupraTypes.sol";
import {SupraTestToken} from "../contracts/SupraTestToken.sol";

/// @dev halmos' symbolic value cheatcodes (declared here: no extra Solidity library).
interface SVM {
    function createUint(uint256 bits, string calldata name) external pure returns (uint256);
    function createBytes32(string calldata name) external pure returns (bytes32);
    function createBytes(uint256 len, string calldata name) external pure returns (bytes memory);
    function createBool(string calldata name) external pure returns (bool);
    function createAddress(string calldata name) external pure returns (address);
}

/// @dev The Foundry cheatcodes halmos supports that these checks use.
interface HVM {
    function prank(address sender) external;
    function deal(address who, uint256 amount) external;
    function warp(uint256 time) external;
    function assume(bool condition) external pure;
}

/// @title Symbolic properties of the judge (halmos, scripts/halmos-check; what is proven: README "Proofs").
/// @dev Each check opens one channel with symbolic terms (price, window <= 3, startSeq, tAck, tClosure,
///      deposit) between fixed buyer and seller EOAs, then runs a bounded sequence of calls with symbolic
///      arguments, each by a symbolic one of {buyer, seller, a third party}, at a symbolic later time.
///      Signatures: halmos models ecrecover as an uninterpreted function of (digest, v, r, s), so for
///      any symbolic signature the solver may choose who signed it: the checks hold even if anyone could
///      sign as anyone (what a call needs signed is never an obstacle to the attacker), which is stronger
///      than the real setting, except where a property is about a *valid* statement: then the statement's
///      content (cost, chain link) is what makes it valid. keccak256 is an uninterpreted injective function.
///      Messages are signed through a `BatchProof` (issue 11): in the sequences, a batch of the one message
///      with a symbolic signature (`_proof`), so any message may be "seller-signed" as before;
///      {check_postNeedsMembership} is about the proof itself (symbolic batch, range and path).
contract SupraJudgeProps {
    SVM internal constant svm = SVM(0xF3993A62377BCd56AE39D773740A5390411E8BC9);
    HVM internal constant vm = HVM(address(uint160(uint256(keccak256("hevm cheat code")))));

    address internal constant SELLER = address(0x5E11E7);
    address internal constant BUYER = address(0xB0B);
    address internal constant OTHER = address(0x07E7);
    address internal constant BYSTANDER = address(0xB0B2);
    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant PRICE = 1e12;
    /// @dev The price of the money sequences: 2^40 wei (about 10^12), a power of two, so that the solver
    ///      multiplies by a shift; products by 10^12 take past the 60 s solver budget on 2-call sequences.
    uint256 internal constant SHIFT_PRICE = 1 << 40;

    SupraJudge internal judge;
    bytes32 internal streamId;
    uint256 internal id;
    uint256 internal price;
    uint256 internal window;
    uint64 internal startSeq;

    // Bookkeeping of the sequence.
    uint256 internal deposits; // F over time (open + top-ups)
    uint256 internal sellerIn; // what the seller received from the judge (pushed or withdrawn)
    uint256 internal buyerIn; // what the buyer received from the judge
    uint256 internal maxAckCost; // cost of the highest ack a successful claim-like call presented
    uint256 internal sellerStart; // balances before the sequence
    uint256 internal buyerStart;

    function setUp() public {
        vm.warp(START);
        judge = new SupraJudge();
        streamId = bytes32((uint256(uint160(SELLER)) << 96) | 1);
    }

    // ------------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------------

    /// @dev A signature whose signer the solver picks: r is symbolic (ecrecover is uninterpreted), s and v
    ///      are fixed valid values (low s, v = 27), which spares the solver OpenZeppelin's malleability
    ///      branches (proven by its own tests, not ours).
    function _sig(string memory name) internal pure returns (bytes memory) {
        return abi.encodePacked(svm.createBytes32(name), bytes32(uint256(1)), uint8(27));
    }

    /// @dev A proof that makes `m` seller-signed if the solver wants: a batch of `m` alone (root = the
    ///      judge's digest of `m`, the very term the judge compares it with) and a symbolic signature
    ///      (ecrecover picks the signer). A symbolic root constrained to the digest took the solver past
    ///      its budget on the late-posting mutant; this one is the same set of proofs.
    function _proof(string memory name, Message memory m) internal view returns (BatchProof memory p) {
        p.batch = Batch({streamId: m.streamId, firstSeq: m.seq, lastSeq: m.seq, root: judge.hashMessage(m)});
        p.sig = _sig(string.concat(name, ".sig"));
        p.path = new bytes32[](0);
    }

    /// @dev Opens the channel with symbolic terms; the seller's offer signature is symbolic. The price is
    ///      symbolic (any 72-bit value) in the checks where the solver copes with 256-bit products of two
    ///      unknowns, and PRICE in the others (sequences of claims compare such products at every step).
    function _open(bool symbolicPrice) internal {
        _openPriced(symbolicPrice ? 0 : PRICE);
    }

    /// @dev Opens the channel at price `fixedPrice`, or a symbolic price if it is 0.
    function _openPriced(uint256 fixedPrice) internal {
        price = fixedPrice == 0 ? svm.createUint(72, "price") : fixedPrice;
        window = svm.createUint(2, "window"); // 0..3, 0 is refused by open
        startSeq = uint64(svm.createUint(64, "startSeq"));
        uint256 deposit = svm.createUint(96, "deposit");
        Offer memory o = Offer({
            streamId: streamId,
            seller: SELLER,
            buyer: BUYER,
            price: price,
            token: address(0),
            window: uint64(window),
            startSeq: startSeq,
            tAck: uint32(svm.createUint(17, "tAck")),
            tClosure: uint32(svm.createUint(20, "tClosure")),
            validUntil: uint64(START),
            nonce: 1
        });
        vm.deal(BUYER, deposit);
        vm.prank(BUYER);
        id = judge.open{value: deposit}(o, _sig("offerSig"));
        deposits = deposit;
    }

    /// @dev Any account but the judge: the buyer, the seller or a third party (the solver chooses).
    function _caller(string memory name) internal view returns (address who) {
        who = svm.createAddress(name);
        vm.assume(who != address(judge));
    }

    /// @dev The buyer, the seller or a third party (the solver chooses). The judge tells callers apart only by
    ///      comparing them with the channel's buyer and seller, so one third party stands for every other
    ///      account; concrete addresses keep the balance queries of long sequences within the solver budget.
    function _party(string memory name) internal pure returns (address) {
        uint256 k = svm.createUint(2, name);
        vm.assume(k < 3);
        return k == 0 ? BUYER : k == 1 ? SELLER : OTHER;
    }

    /// @dev Whether a step of the sequence is taken: a reverted call changes nothing, so the checks call the
    ///      judge directly (a revert ends the path, halmos does not count it) and cover shorter sequences by
    ///      skipping steps instead.
    function _take(string memory name) internal pure returns (bool) {
        return svm.createBool(name);
    }

    function _later(string memory name) internal {
        vm.warp(block.timestamp + svm.createUint(24, name));
    }

    function _ack(string memory name) internal pure returns (Ack memory a) {
        a.seq = uint64(svm.createUint(64, string.concat(name, ".seq")));

        a.digest = svm.createBytes32(string.concat(name, ".digest"));
        a.cost = svm.createUint(256, string.concat(name, ".cost"));
        a.timestamp = uint64(svm.createUint(64, string.concat(name, ".ts")));
    }

    function _stop(string memory name) internal view returns (Stop memory s) {
        s.channelId = id;
        s.seq = uint64(svm.createUint(64, string.concat(name, ".seq")));
        s.timestamp = uint64(svm.createUint(64, string.concat(name, ".ts")));
    }

    function _message(string memory name) internal view returns (Message memory m) {
        m.streamId = streamId;
        m.seq = uint64(svm.createUint(64, string.concat(name, ".seq")));
        m.timestamp = uint64(svm.createUint(64, string.concat(name, ".ts")));
        m.payloadHash = svm.createBytes32(string.concat(name, ".payloadHash"));
        m.prev = svm.createBytes32(string.concat(name, ".prev"));
    }

    function _claimed() internal view returns (uint256) {
        return judge.channel(id).claimed;
    }

    function _status() internal view returns (ISupraJudge.Status) {
        return judge.channel(id).status;
    }

    /// @dev Payouts so far, measured on the parties' balances (the buyer's top-ups are dealt to it first).
    function _measure() internal {
        sellerIn = SELLER.balance - sellerStart;
        buyerIn = BUYER.balance - buyerStart;
    }

    /// @dev Deferred payouts the judge still holds.
    function _deferred() internal view returns (uint256) {
        return judge.owed(SELLER) + judge.owed(BUYER);
    }

    /// @dev Another channel of the same stream (another buyer, concrete terms), whose deposit sits in the
    ///      judge: money a broken judge could pay out of a settled channel.
    function _openBystander() internal {
        Offer memory o = Offer({
            streamId: streamId,
            seller: SELLER,
            buyer: BYSTANDER,
            price: PRICE,
            token: address(0),
            window: 1,
            startSeq: 0,
            tAck: 60,
            tClosure: 60,
            validUntil: uint64(START),
            nonce: 2
        });
        vm.deal(BYSTANDER, 1 ether);
        vm.prank(BYSTANDER);
        judge.open{value: 1 ether}(o, _sig("bystanderSig"));
    }

    function _startMeasuring() internal {
        sellerStart = SELLER.balance;
        buyerStart = BUYER.balance;
    }

    // ------------------------------------------------------------------------------------------------
    // One step of a sequence: any function of the judge, symbolic arguments, any caller, any later time
    // ------------------------------------------------------------------------------------------------

    /// @dev Runs action `action` (0..14) by `who`. Returns normally only if the call succeeded.
    function _act(uint256 action, address who) internal {
        if (action == 0) {
            uint256 value = svm.createUint(96, "topUp.value");
            vm.deal(who, who.balance + value); // spent by the call: the caller's balance ends where it was
            vm.prank(who);
            judge.topUp{value: value}(id);
            deposits += value;
        } else if (action == 1) {
            Ack memory a = _ack("claim.ack");
            a.channelId = id;
            vm.prank(who);
            judge.claim(a, _sig("claim.sig"));
            if (a.cost > maxAckCost) maxAckCost = a.cost;
        } else if (action == 2) {
            Message memory m = _message("post.msg");
            bytes memory payload = svm.createBytes(32, "post.payload");
            m.payloadHash = keccak256(payload);
            BatchProof memory proof = _proof("post.proof", m); // before the prank: it calls the judge
            vm.prank(who);
            judge.post(m, payload, proof);
        } else if (action == 3) {
            vm.prank(who);
            judge.claimPosted(id, uint64(svm.createUint(64, "claimPosted.upto")));
        } else if (action == 4) {
            vm.prank(who);
            judge.requestClose(id);
        } else if (action == 5) {
            vm.prank(who);
            judge.settle(id);
        } else if (action == 6) {
            Message memory seen = _message("accuse.seen");
            BatchProof memory proof = _proof("accuse.proof", seen);
            vm.prank(who);
            judge.accuse(id, seen, proof, uint64(svm.createUint(64, "accuse.missing")));
        } else if (action == 7) {
            vm.prank(who);
            judge.defend(id);
        } else if (action == 8) {
            Ack memory a = _ack("defendWithAck.ack");
            a.channelId = id;
            vm.prank(who);
            judge.defendWithAck(a, _sig("defendWithAck.sig"));
            if (a.cost > maxAckCost) maxAckCost = a.cost;
        } else if (action == 9) {
            vm.prank(who);
            judge.resolve(id);
        } else if (action == 10) {
            Ack memory a = _ack("proveWrongCost.ack");
            a.channelId = id;
            vm.prank(who);
            judge.proveWrongCost(a, _sig("proveWrongCost.sig"));
        } else if (action == 11) {
            Message memory a = _message("eqA");
            Message memory b = _message("eqB");
            BatchProof memory proofA = _proof("eqA.proof", a);
            BatchProof memory proofB = _proof("eqB.proof", b);
            vm.prank(who);
            judge.proveEquivocation(id, a, proofA, b, proofB);
        } else if (action == 12) {
            vm.prank(who);
            judge.submitStop(_stop("submitStop.stop"), _sig("submitStop.sig"));
        } else if (action == 13) {
            Ack memory a = _ack("coop.ack");
            a.channelId = id;
            Stop memory st = _stop("coop.stop");
            vm.prank(who);
            judge.closeCooperatively(a, _sig("coop.ackSig"), st, _sig("coop.stopSig"));
            if (a.cost > maxAckCost) maxAckCost = a.cost;
        } else {
            vm.prank(who);
            judge.withdraw();
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Money: payouts, R, settled channels, who gets paid
    // ------------------------------------------------------------------------------------------------

    /// @notice The judge never pays out more than was deposited (its balance is exactly deposits minus
    ///         payouts); R never decreases, never exceeds F, and is what the seller received; a settled
    ///         channel pays nothing more; every wei leaving the judge goes to the channel's buyer or seller
    ///         (nobody else can move the buyer's refund anywhere else; a third party never gains).
    /// @dev Bound: open (symbolic P), then 1 call, any of the 15 state-changing functions (or none), by any
    ///      caller, at any later time, with symbolic arguments. Sequences of 2 calls: the check_money_after_*
    ///      checks below.
    function check_money() public {
        _open(true);
        _startMeasuring();
        if (!_take("take")) return;
        _moneyStep(_anyAction("action"), "who");
    }

    /// @dev Sequences of 2 calls, split by the first call (each check stays within the solver budget; run
    ///      in parallel): open (fixed P: products of two unknowns at every step exhaust the solver), then
    ///      the first call (its function fixed, arguments symbolic), then any of the 15 functions (or none),
    ///      each by any caller (buyer, seller or a third party), at any later time, the money properties
    ///      asserted after each call. The first calls are every function that can succeed right after open;
    ///      the others revert there (claimPosted: nothing posted; settle: not Closing; defend,
    ///      defendWithAck, resolve: no accusation; withdraw: nothing owed), so a sequence starting with
    ///      one of them is a 1-call sequence (check_money).
    function _moneySequence(uint256 first) internal {
        _openPriced(SHIFT_PRICE);
        _startMeasuring();
        _moneyStep(first, "who1");
        if (!_take("second")) return;
        _moneyStep(_anyAction("action2"), "who2");
    }

    /// @notice The money properties of check_money over 2 calls: topUp, then any call.
    function check_money_after_topUp() public {
        _moneySequence(0);
    }

    /// @notice The money properties of check_money over 2 calls: claim of any ack, then any call.
    /// @custom:release-only 4 400 paths, about 13 min on 2 shared cores:
    ///      scripts/halmos-check with no flag, not --ci.
    function check_money_after_claim() public {
        _moneySequence(1);
    }

    /// @notice The money properties of check_money over 2 calls: post of any message, then any call.
    /// @custom:release-only 2 250 paths, about 6.5 min on 2 shared cores:
    ///      scripts/halmos-check with no flag, not --ci.
    function check_money_after_post() public {
        _moneySequence(2);
    }

    /// @notice The money properties of check_money over 2 calls: requestClose, then any call.
    function check_money_after_requestClose() public {
        _moneySequence(4);
    }

    /// @notice The money properties of check_money over 2 calls: accuse of any seq, then any call.
    /// @custom:release-only 1 440 paths, about 9 min on 2 shared cores:
    ///      scripts/halmos-check with no flag, not --ci.
    function check_money_after_accuse() public {
        _moneySequence(6);
    }

    /// @notice The money properties of check_money over 2 calls: a call that settles at once
    ///         (proveWrongCost, proveEquivocation or closeCooperatively), then any call.
    /// @custom:release-only 1 600 paths, about 9 min on 2 shared cores:
    ///      scripts/halmos-check with no flag, not --ci.
    function check_money_after_settling() public {
        uint256 k = svm.createUint(2, "first");
        vm.assume(k < 3);
        _moneySequence(k == 0 ? 10 : k == 1 ? 11 : 13);
    }

    /// @notice The money properties of check_money over 2 calls: submitStop of any Stop, then any call.
    /// @custom:release-only 563 s (3 270 paths) on 2 shared cores: scripts/halmos-check with no
    ///      flag, not --ci.
    function check_money_after_submitStop() public {
        _moneySequence(12);
    }

    /// @notice Issue 14, token conservation: a channel priced and funded in an ERC-20 (OpenZeppelin's, the
    ///         test stablecoin) keeps the money properties in tokens: the judge's token balance is exactly
    ///         deposits minus payouts, R never decreases, never exceeds F and is what the seller received, a
    ///         settled channel holds nothing, a third party never gains, and no ether moves.
    /// @dev Bound: openWithToken (symbolic P, W, startSeq, deposit, T_ack, T_closure), then 1 call, any of
    ///      the 15 functions (topUp as topUpWithToken of a symbolic amount), by any party, at any later time.
    function check_tokenMoney() public {
        SupraTestToken usd = new SupraTestToken();
        price = svm.createUint(72, "price");
        window = svm.createUint(2, "window");
        startSeq = uint64(svm.createUint(64, "startSeq"));
        uint256 deposit = svm.createUint(96, "deposit");
        Offer memory o = Offer({
            streamId: streamId,
            seller: SELLER,
            buyer: BUYER,
            price: price,
            token: address(usd),
            window: uint64(window),
            startSeq: startSeq,
            tAck: uint32(svm.createUint(17, "tAck")),
            tClosure: uint32(svm.createUint(20, "tClosure")),
            validUntil: uint64(START),
            nonce: 1
        });
        usd.mint(BUYER, deposit);
        vm.prank(BUYER);
        usd.approve(address(judge), deposit);
        vm.prank(BUYER);
        id = judge.openWithToken(o, _sig("offerSig"), deposit);
        deposits = deposit;
        if (!_take("take")) return;

        _later("who.dt");
        address who = _party("who");
        uint256 action = _anyAction("action");
        uint256 claimedBefore = _claimed();
        uint256 whoBefore = usd.balanceOf(who);
        if (action == 0) {
            // Only the buyer's top-up succeeds (a path whose call reverts ends there): it is minted the
            // amount and spends all of it, so its balance stays what the judge paid it.
            uint256 value = svm.createUint(96, "topUp.value");
            usd.mint(who, value);
            vm.prank(who);
            usd.approve(address(judge), value);
            vm.prank(who);
            judge.topUpWithToken(id, value);
            deposits += value;
        } else {
            _act(action, who);
        }
        // Seller and buyer held no tokens after the open: their balances are what the judge paid them.
        uint256 toSeller = usd.balanceOf(SELLER);
        uint256 toBuyer = usd.balanceOf(BUYER);
        uint256 claimedAfter = _claimed();
        assert(claimedAfter >= claimedBefore);
        assert(claimedAfter <= deposits);
        assert(toSeller == claimedAfter);
        assert(toSeller + toBuyer <= deposits);
        assert(usd.balanceOf(address(judge)) == deposits - toSeller - toBuyer);
        if (_status() == ISupraJudge.Status.Settled) assert(usd.balanceOf(address(judge)) == 0);
        if (who != BUYER && who != SELLER) assert(usd.balanceOf(who) <= whoBefore);
        assert(address(judge).balance == 0);
        assert(judge.channelToken(id) == address(usd));
    }

    /// @dev Any of the 15 functions (the solver picks).
    function _anyAction(string memory name) internal pure returns (uint256 action) {
        action = svm.createUint(4, name);
        vm.assume(action < 15);
    }

    /// @dev One call of a money sequence, by any caller at any later time, and the money properties after it.
    function _moneyStep(uint256 action, string memory whoName) internal {
        _later(string.concat(whoName, ".dt"));
        address who = _party(whoName);
        uint256 claimedBefore = _claimed();
        bool settledBefore = _status() == ISupraJudge.Status.Settled;
        uint256 judgeBefore = address(judge).balance;
        uint256 whoBefore = who.balance;
        _act(action, who);
        _measure();
        uint256 claimedAfter = _claimed();
        // R never decreases and never exceeds F; it is exactly what the seller received.
        assert(claimedAfter >= claimedBefore);
        assert(claimedAfter <= deposits);
        assert(sellerIn == claimedAfter);
        // Payouts never exceed deposits; the judge holds exactly the rest.
        assert(sellerIn + buyerIn <= deposits);
        assert(address(judge).balance == deposits - sellerIn - buyerIn);
        // A settled channel pays nothing more; once settled, everything was paid out.
        if (settledBefore) {
            assert(address(judge).balance == judgeBefore);
            assert(claimedAfter == claimedBefore);
        }
        if (_status() == ISupraJudge.Status.Settled) assert(address(judge).balance == 0);
        // Nobody but the buyer and the seller is paid; the buyer's refund address never changes.
        if (who != BUYER && who != SELLER && action != 0) assert(who.balance <= whoBefore);
        assert(judge.channel(id).buyer == BUYER);
    }

    /// @notice A settled channel pays nothing more: after it is settled (by settle, resolve, proveWrongCost,
    ///         proveEquivocation or closeCooperatively), no call moves any of the judge's money (another
    ///         channel's deposit is there to be taken), changes R, credits anyone or reopens it.
    /// @dev Bound: a bystander channel (another buyer, same stream) and the channel; the channel is settled
    ///      by one of the five ways (the solver picks; symbolic arguments, callers and times), then 1 call
    ///      of any of the 15 functions, by any caller, at any later time.
    function check_settledPaysNothing() public {
        _openBystander();
        _open(true);
        uint256 way = svm.createUint(3, "settleBy");
        _later("dt0");
        if (way == 0) {
            _act(4, _caller("closer"));
            vm.warp(block.timestamp + judge.channel(id).tClosure + svm.createUint(24, "dtSettle"));
            _act(5, _caller("settler"));
        } else if (way == 1) {
            _act(6, _caller("accuser"));
            _later("dtResolve");
            _act(9, _caller("resolver"));
        } else if (way == 2) {
            _act(10, _caller("prover"));
        } else if (way == 3) {
            _act(11, _caller("prover"));
        } else {
            _act(13, _caller("closer"));
        }
        vm.assume(_status() == ISupraJudge.Status.Settled);
        uint256 judgeBefore = address(judge).balance;
        uint256 claimedBefore = _claimed();
        uint256 deferredBefore = _deferred();
        _later("dt");
        address who = _caller("who");
        uint256 action = svm.createUint(4, "action");
        vm.assume(action < 15);
        _act(action, who);
        assert(address(judge).balance == judgeBefore);
        assert(_claimed() == claimedBefore);
        assert(_deferred() == deferredBefore);
        assert(_status() == ISupraJudge.Status.Settled);
    }

    // ------------------------------------------------------------------------------------------------
    // Acks: what the seller receives never exceeds the cost of the highest valid ack
    // ------------------------------------------------------------------------------------------------

    /// @notice The seller never receives more for acks than the cost of the highest ack the judge accepted,
    ///         by any of the three calls that pay for an ack: claim, defendWithAck and closeCooperatively
    ///         (acks are valid because the judge accepted them); R is what the seller received.
    /// @dev Bound: open (P fixed at SHIFT_PRICE: with a symbolic P, closeCooperatively's paths went past
    ///      10 min), an optional claim of any ack, then one of: a second claim; the buyer's accusation of any
    ///      seq and defendWithAck; closeCooperatively (with any Stop). Any acks, by any caller, each at any
    ///      later time.
    function check_ackPayoutsBoundedByHighestAck() public {
        _openPriced(SHIFT_PRICE);
        _startMeasuring();
        if (_take("claimFirst")) {
            _later("dt0");
            _act(1, _caller("claimer"));
        }
        uint256 then = svm.createUint(2, "then");
        vm.assume(then < 3);
        if (then == 1) _accuseAny("dtAccuse");
        _later("dt");
        _act(then == 0 ? 1 : then == 1 ? 8 : 13, _caller("who"));
        _measure();
        assert(sellerIn <= maxAckCost);
        assert(_claimed() == sellerIn);
    }

    /// @dev The buyer's accusation of any seq, with any seen message, at any later time.
    function _accuseAny(string memory dtName) internal returns (uint64 missing) {
        _later(dtName);
        missing = uint64(svm.createUint(64, "missing"));
        Message memory seen = _message("seen");
        BatchProof memory proof = _proof("seen.proof", seen);
        vm.prank(BUYER);
        judge.accuse(id, seen, proof, missing);
    }

    // ------------------------------------------------------------------------------------------------
    // Postings: claims from postings never exceed W * P past the last ack
    // ------------------------------------------------------------------------------------------------

    /// @dev Postings of check_postedClaimsWithinWindow: W + 1 for W <= 2 (a fourth multiplies the paths past
    ///      the solver budget; W = 3 with 4 postings is fuzzed).
    uint256 internal constant POSTS = 3;

    /// @notice A posted claim never goes past W messages after the last claimed ack, and at settlement the
    ///         seller receives at most (acked + W) * P in all: W * P past the cost of the highest ack.
    /// @dev Bound: open (W <= 3, P fixed, no ack claimed first: acked = 0), up to POSTS postings of the
    ///      first seqs (any content and message time, each mined at any later time), an optional
    ///      requestClose, claimPosted up to any seq, then the close and settle, by the seller or anyone.
    function check_postedClaimsWithinWindow() public {
        _open(false);
        _startMeasuring();
        uint256 acked = judge.channel(id).acked;
        _postNext(acked, POSTS);
        if (_take("closeFirst")) {
            _later("dt1");
            vm.prank(SELLER);
            judge.requestClose(id);
        }
        _later("dt2");
        vm.prank(SELLER);
        judge.claimPosted(id, uint64(svm.createUint(64, "upto")));
        assert(judge.channel(id).postedClaim <= acked + window);
        if (_status() == ISupraJudge.Status.Open) {
            vm.prank(SELLER);
            judge.requestClose(id);
        }
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        vm.warp(uint256(c.closeRequestedAt) + c.tClosure + svm.createUint(24, "dtSettle"));
        vm.prank(_caller("settler"));
        judge.settle(id);
        _measure();
        assert(sellerIn <= (acked + window) * price);
    }

    /// @dev Posts up to `most` messages (the solver picks how many) at the seqs after the first `acked`
    ///      ones, any content, each mined at a later time, signed as the seller.
    function _postNext(uint256 acked, uint256 most) internal {
        uint256 next = uint256(startSeq) + acked;
        for (uint256 i = 0; i < most; ++i) {
            if (!_take("post")) break;
            _later("dtPost");
            vm.assume(next + i <= type(uint64).max);
            Message memory m = _message("post.msg");
            m.seq = uint64(next + i);
            bytes memory payload = svm.createBytes(32, "post.payload");
            m.payloadHash = keccak256(payload);
            judge.post(m, payload, _proof("post.proof", m));
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Penalties only with a valid proof
    // ------------------------------------------------------------------------------------------------

    /// @notice A correct ack (seq >= startSeq, cost = (seq - startSeq + 1) * P) cannot be "proven" wrong,
    ///         whatever the channel's state (reached by up to 2 prior claims) and whoever submits it.
    function check_correctAckNotProvenWrong() public {
        _open(true);
        for (uint256 i = 0; i < 2; ++i) {
            if (!_take("take")) continue;
            _later("dt");
            _act(1, _caller("who"));
        }
        Ack memory a = _ack("proof.ack");
        a.channelId = id;
        vm.assume(a.seq >= startSeq);
        a.cost = (uint256(a.seq) - startSeq + 1) * price;
        vm.prank(_caller("prover"));
        try judge.proveWrongCost(a, _sig("proof.sig")) {
            assert(false);
        } catch {}
    }

    /// @notice Two consecutive honest messages (b.seq = a.seq + 1, b.prev = digest(a)), or the same
    ///         message twice, cannot be "proven" equivocation, whatever the signatures.
    function check_honestMessagesNotEquivocation() public {
        _open(true);
        Message memory a = _message("a");
        Message memory b = _message("b");
        if (_take("consecutive")) {
            vm.assume(a.seq < type(uint64).max);
            b.seq = a.seq + 1;
            b.prev = judge.hashMessage(a);
        } else {
            b = a;
        }
        BatchProof memory proofA = _proof("a.proof", a);
        BatchProof memory proofB = _proof("b.proof", b);
        vm.prank(_caller("prover"));
        try judge.proveEquivocation(id, a, proofA, b, proofB) {
            assert(false);
        } catch {}
    }

    /// @notice An honest seller's Stop is never "proven" a violation: when the recorded posted claim is
    ///         within the Stop (it claims no message after the Stop's seq), submitStop records it and moves
    ///         no money, whoever submits it.
    /// @dev Bound: open (W <= 3, P fixed), an optional posting of the first seq, an optional claimPosted up
    ///      to any seq (so a posted claim of 0 or 1 message), then submitStop of any Stop covering the posted
    ///      claim, by any caller at any later time.
    function check_honestStopNotPenalized() public {
        _open(false);
        _postNext(0, 1);
        if (_take("claimPosted")) {
            _later("dt1");
            vm.prank(SELLER);
            judge.claimPosted(id, uint64(svm.createUint(64, "upto")));
        }
        uint256 posted = judge.channel(id).postedClaim;
        Stop memory st = _stop("stop");
        vm.assume(posted == 0 || (st.seq >= startSeq && uint256(st.seq) - startSeq + 1 >= posted));
        _startMeasuring();
        uint256 judgeBefore = address(judge).balance;
        _later("dt2");
        vm.prank(_caller("submitter"));
        judge.submitStop(st, _sig("stop.sig"));
        _measure();
        assert(_status() != ISupraJudge.Status.Settled);
        assert(address(judge).balance == judgeBefore);
        assert(sellerIn == 0 && buyerIn == 0);
    }

    // ------------------------------------------------------------------------------------------------
    // The v2 rules (issue 10)
    // ------------------------------------------------------------------------------------------------

    /// @notice A posting mined after its accusation's posting limit never answers it: `defend` refuses it
    ///         and `resolve` refunds the buyer F - R.
    /// @dev Bound: open, an optional claim, an accusation, a post of the missing seq at a symbolic later time
    ///      after the posting limit, then defend (must fail) and resolve after the deadline.
    function check_latePostingNeverAnswers() public {
        _open(true);
        if (_take("claimFirst")) {
            _later("dt0");
            _act(1, _caller("claimer"));
        }
        uint64 missing = _accuseAny("dt1");
        uint256 postBy = judge.channelTiming(id).disputePostBy;
        _later("dt2");
        vm.assume(block.timestamp > postBy);
        // The late message is any message at the missing seq (any time stamp, any link), with a fixed
        // payload: what the rule is about is when its posting was mined, and a symbolic payload under the
        // batch's nested hashes took the late-posting-defends mutant's counterexample past the solver budget.
        Message memory m = _message("late");
        m.seq = missing;
        bytes memory payload = "late";
        m.payloadHash = keccak256(payload);
        judge.post(m, payload, _proof("late.proof", m));
        vm.prank(_caller("defender"));
        try judge.defend(id) {
            assert(false);
        } catch {}
        uint256 refund = judge.channel(id).deposit - _claimed();
        uint256 b0 = BUYER.balance;
        vm.warp(judge.channel(id).disputeDeadline + 1 + svm.createUint(24, "dt3"));
        vm.prank(_caller("resolver"));
        judge.resolve(id);
        assert(_status() == ISupraJudge.Status.Settled);
        assert(BUYER.balance == b0 + refund);
    }

    /// @notice Nothing is claimed past a recorded seller Stop: once the seller's Stop leaving k messages
    ///         owed is recorded, a posted claim past k is refused, and a posted claim already past k
    ///         costs the seller the rest of the deposit (the buyer takes F - R at once).
    /// @dev Bound: open (W <= 3), then 3 steps among post, claimPosted, submitStop (or none), by any caller,
    ///      at any later time, with symbolic arguments.
    function check_nothingClaimedPastStop() public {
        _open(true);
        _startMeasuring();
        for (uint256 i = 0; i < 3; ++i) {
            if (!_take("take")) continue;
            _later("dt");
            uint256 k = svm.createUint(2, "action");
            vm.assume(k < 3);
            _act(k == 0 ? 2 : k == 1 ? 3 : 12, _caller("who"));
        }
        _measure();
        ISupraJudge.ChannelTiming memory t = judge.channelTiming(id);
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        if (t.sellerStopped) {
            if (c.status == ISupraJudge.Status.Settled) {
                // the penalty: the buyer took everything, the seller nothing
                assert(sellerIn == 0 && buyerIn == c.deposit);
            } else {
                assert(c.postedClaim <= t.sellerStopCount);
            }
        }
    }

    /// @notice A cooperative close pays the seller exactly min(C - R, F - R) (0 if C <= R) for the ack
    ///         (cost C) and the buyer the rest, at once.
    /// @dev Bound: open, an optional claim of any valid ack, then closeCooperatively with any valid ack and
    ///      the seller's Stop at its seq (the only pair it accepts), by any caller at any later time.
    function check_cooperativeClosePaysExactly() public {
        _open(true);
        if (_take("claimFirst")) {
            _later("dt");
            judge.claim(_validAck("first"), _sig("first.sig"));
        }
        uint256 r = _claimed();
        uint256 f = judge.channel(id).deposit;
        _startMeasuring();
        _later("dt2");
        Ack memory a = _validAck("coop.ack");
        Stop memory st = _stop("coop.stop");
        st.seq = a.seq;
        vm.prank(_caller("closer"));
        judge.closeCooperatively(a, _sig("coop.ackSig"), st, _sig("coop.stopSig"));
        _measure();
        uint256 expected = a.cost <= r ? 0 : (a.cost - r < f - r ? a.cost - r : f - r);
        assert(sellerIn == expected);
        assert(buyerIn == f - r - expected);
        assert(_status() == ISupraJudge.Status.Settled);
    }

    /// @notice Accusations only for owed seqs: an accusation stands only for a seq the channel is owed,
    ///         within W after the last claimed ack, covered by the deposit, and before a recorded seller Stop.
    /// @dev Bound: open (W <= 3, P fixed, any deposit), an optional submitStop of any Stop, by any caller
    ///      at any later time; then the buyer's accusation of any seq, with any seen message, at any later
    ///      time. No ack is claimed first (acked = 0): a claim multiplies the paths past the solver budget;
    ///      the window bound after acks is fuzzed (test/). A top-up only raises F, symbolic already.
    function check_accusationsOnlyForOwedSeqs() public {
        _open(false);
        if (_take("stopFirst")) {
            _later("dt1");
            _act(12, _caller("stopper"));
        }
        uint64 missing = _accuseAny("dtAccuse");
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        ISupraJudge.ChannelTiming memory t = judge.channelTiming(id);
        uint256 n = uint256(missing) - startSeq; // accuse refuses a seq before startSeq + acked
        assert(n < c.acked + window);
        assert(n < c.deposit / price); // (n + 1) * P <= F, in the form the solver proves fast
        if (t.sellerStopped) assert(n < t.sellerStopCount);
    }

    /// @dev An ack of the channel with the correct cost for its (symbolic) seq.
    function _validAck(string memory name) internal view returns (Ack memory a) {
        a = _ack(name);
        a.channelId = id;
        vm.assume(a.seq >= startSeq);
        a.cost = (uint256(a.seq) - startSeq + 1) * price;
    }

    // ------------------------------------------------------------------------------------------------
    // Amortised signatures (issue 11): what a BatchProof must show
    // ------------------------------------------------------------------------------------------------

    /// @notice A message is posted only under a proof that holds: the batch is of the message's stream, its
    ///         range holds the message's seq and spans fewer than MAX_BATCH (256) seqs, and the path folds the
    ///         message's digest (sorted pairs) onto the batch's root. Whatever the signature (the solver may
    ///         pick the signer: the signature rule is the one of every other statement).
    /// @dev Bound: one post, by any caller, of any message (any stream, seq and content; a 32-byte payload)
    ///      with any batch (stream, range, root) and a path of 0, 1 or 2 hashes, each any value.
    function check_postNeedsMembership() public {
        Message memory m = _message("m");
        m.streamId = svm.createBytes32("m.streamId");
        bytes memory payload = svm.createBytes(32, "payload");
        m.payloadHash = keccak256(payload);
        BatchProof memory p;
        p.batch = Batch({
            streamId: svm.createBytes32("batch.streamId"),
            firstSeq: uint64(svm.createUint(64, "batch.firstSeq")),
            lastSeq: uint64(svm.createUint(64, "batch.lastSeq")),
            root: svm.createBytes32("batch.root")
        });
        p.sig = _sig("batch.sig");
        uint256 depth = _take("deeper") ? (_take("deepest") ? 2 : 1) : 0;
        p.path = new bytes32[](depth);
        if (depth > 0) p.path[0] = svm.createBytes32("path0");
        if (depth > 1) p.path[1] = svm.createBytes32("path1");
        bytes32 digest = judge.hashMessage(m);
        vm.prank(_caller("poster"));
        judge.post(m, payload, p);
        assert(p.batch.streamId == m.streamId);
        assert(p.batch.firstSeq <= m.seq && m.seq <= p.batch.lastSeq);
        assert(p.batch.lastSeq - p.batch.firstSeq < 256);
        bytes32 node = digest;
        for (uint256 i = 0; i < depth; ++i) {
            bytes32 sibling = p.path[i];
            node = node < sibling ? keccak256(abi.encodePacked(node, sibling)) : keccak256(abi.encodePacked(sibling, node));
        }
        assert(node == p.batch.root);
    }
}
