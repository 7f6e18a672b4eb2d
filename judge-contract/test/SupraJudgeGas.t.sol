// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Offer, Message, Batch, BatchProof, Ack, Stop} from "../contracts/SupraTypes.sol";
import {vm, Vm} from "./utils/Vm.sol";
import {SupraTokenBase} from "./utils/SupraTokenBase.sol";

/// @dev Gas budgets, enforced: each test makes one realistic call per judge function and FAILS when the
///      call's transaction gas exceeds its budget. `isolate = true` (inline config below) runs every
///      top-level call as its own transaction, so `vm.lastCallGas().gasTotalUsed` is what a chain charges:
///      21000 base + calldata + cold accounts and storage + execution - refunds (the figures equal the
///      `--gas-report` table of the README). Budgets (docs/PROTOCOL.md): open <= 100k, claim <= 70k, post of
///      a 256-byte payload <= 70k, settle <= 60k, and one per other function (BUDGET_* below). Issue 11: a
///      message is proven by a `BatchProof`; `post`, `accuse` and `proveEquivocation` are measured with a
///      batch of one message (no path) and with full paths (batches of 64 and 256: 6 and 8 hashes). Each budgeted
///      function is measured in its worst realistic case (fresh channel, first claim of a channel, fresh
///      posting, settle paying both sides). Each call is made by the party that benefits (the seller claims,
///      the buyer settles), whose account is then warm as the transaction's sender.
/// forge-config: default.isolate = true
contract SupraJudgeGasTest is SupraTokenBase {
    uint256 internal constant BUDGET_OPEN = 100_000;
    uint256 internal constant BUDGET_TOP_UP = 55_000;
    uint256 internal constant BUDGET_CLAIM = 70_000;
    uint256 internal constant BUDGET_POST_256 = 70_000;
    uint256 internal constant BUDGET_POST_256_BATCH_64 = 76_000;
    uint256 internal constant BUDGET_POST_256_BATCH_256 = 78_000;
    uint256 internal constant BUDGET_CLAIM_POSTED_2 = 70_000;
    uint256 internal constant BUDGET_REQUEST_CLOSE = 35_000;
    uint256 internal constant BUDGET_SETTLE = 60_000;
    uint256 internal constant BUDGET_ACCUSE = 70_000;
    uint256 internal constant BUDGET_ACCUSE_BATCH_256 = 77_000;
    uint256 internal constant BUDGET_DEFEND = 35_000;
    uint256 internal constant BUDGET_DEFEND_WITH_ACK = 75_000;
    uint256 internal constant BUDGET_RESOLVE = 65_000;
    uint256 internal constant BUDGET_PROVE_WRONG_COST = 75_000;
    uint256 internal constant BUDGET_PROVE_EQUIVOCATION = 90_000;
    uint256 internal constant BUDGET_PROVE_EQUIVOCATION_BATCH_256 = 100_000;
    uint256 internal constant BUDGET_SUBMIT_STOP = 65_000;
    uint256 internal constant BUDGET_CLOSE_COOPERATIVELY = 90_000;
    // Issue 14: channels in an ERC-20 (SupraTestToken: OpenZeppelin ERC20Permit). The judge already holds the
    // token (another channel's deposit) and the seller already holds some: the common case. A first deposit
    // of a token into the judge, or a first payment to an account without the token, writes a fresh
    // balance slot of the token (+17.1k), measured too.
    uint256 internal constant BUDGET_OPEN_WITH_PERMIT = 160_000;
    uint256 internal constant BUDGET_OPEN_WITH_PERMIT_FIRST = 195_000;
    uint256 internal constant BUDGET_OPEN_WITH_TOKEN = 145_000;
    uint256 internal constant BUDGET_TOP_UP_WITH_PERMIT = 95_000;
    uint256 internal constant BUDGET_CLAIM_TOKEN = 80_000;
    uint256 internal constant BUDGET_CLAIM_TOKEN_FRESH_PAYEE = 98_000;
    uint256 internal constant BUDGET_SETTLE_TOKEN = 65_000;

    uint256 internal id;
    Offer internal o;

    event GasUsed(string what, uint256 gas, uint256 budget);

    function setUp() public override {
        super.setUp();
        ensureChain(20);
    }

    /// @dev Fails the test when the last call's transaction gas exceeds `budget`.
    function within(string memory what, uint256 budget) internal {
        uint256 used = vm.lastCallGas().gasTotalUsed;
        emit GasUsed(what, used, budget);
        assertLe(used, budget, what);
    }

    function claimAsSeller(uint64 seq) internal returns (Ack memory a) {
        a = makeAck(id, seq, costOf(o, seq));
        bytes memory sig = ackSig(a);
        vm.prank(seller);
        judge.claim(a, sig);
    }

    function stopOf(uint64 seq) internal view returns (Stop memory s, bytes memory sig) {
        s = Stop({channelId: id, seq: seq, timestamp: uint64(block.timestamp) * 1000});
        sig = sign(SELLER_PK, judge.hashStop(s));
    }

    function test_gas_open() public {
        (id, o) = openDefault(0);
        within("open", BUDGET_OPEN);
    }

    function test_gas_topUp() public {
        (id, o) = openDefault(0);
        vm.prank(buyer);
        judge.topUp{value: PRICE}(id);
        within("topUp (first write of the progress word)", BUDGET_TOP_UP);
    }

    function test_gas_claim_firstOfTheChannel() public {
        (id, o) = openDefault(0);
        claimAsSeller(3);
        within("claim (first of the channel)", BUDGET_CLAIM);
    }

    function test_gas_claim_next() public {
        (id, o) = openDefault(0);
        claimAsSeller(3);
        claimAsSeller(7);
        within("claim (next)", BUDGET_CLAIM);
    }

    /// @dev The seller's proof of `first` as the first message of a batch of `size` (the messages after it
    ///      follow `first`): a full path, log2(size) hashes for a power of two.
    function firstOfBatch(Message memory first, uint256 size) internal view returns (BatchProof memory) {
        Message[] memory ms = new Message[](size);
        ms[0] = first;
        if (size > 1) {
            (Message[] memory rest,) = memChain(first.streamId, first.seq + 1, size - 1, judge.hashMessage(first));
            for (uint256 i = 1; i < size; ++i) {
                ms[i] = rest[i - 1];
            }
        }
        return proofAt(ms, 0);
    }

    /// @dev Posts message 21 with a 256-byte payload, first of a batch of `size` messages.
    function post256InBatch(uint256 size) internal returns (uint256 depth) {
        bytes memory payload = payloadFor(21, 256);
        Message memory m = Message({
            streamId: streamId,
            seq: 21,
            timestamp: uint64(block.timestamp) * 1000,
            payloadHash: keccak256(payload),
            prev: digestOf(20)
        });
        BatchProof memory proof = firstOfBatch(m, size);
        depth = proof.path.length;
        vm.prank(seller);
        judge.post(m, payload, proof);
    }

    function test_gas_post256() public {
        assertEq(post256InBatch(1), 0, "a batch of one: no path");
        within("post 256 B (batch of 1)", BUDGET_POST_256);
    }

    function test_gas_post256_batchOf64() public {
        assertEq(post256InBatch(64), 6, "depth");
        within("post 256 B (batch of 64)", BUDGET_POST_256_BATCH_64);
    }

    function test_gas_post256_batchOf256() public {
        assertEq(post256InBatch(256), 8, "depth");
        within("post 256 B (batch of 256)", BUDGET_POST_256_BATCH_256);
    }

    function test_gas_claimPosted_requestClose_settle() public {
        (id, o) = openDefault(0);
        claimAsSeller(3);
        postSeq(4);
        postSeq(5);
        vm.prank(seller);
        judge.claimPosted(id, 5);
        within("claimPosted (2 postings)", BUDGET_CLAIM_POSTED_2);
        vm.prank(buyer);
        judge.requestClose(id);
        within("requestClose", BUDGET_REQUEST_CLOSE);
        vm.warp(block.timestamp + T_CLOSURE);
        vm.prank(buyer);
        judge.settle(id); // pays the seller's posted claim and refunds the buyer
        within("settle (pays both sides)", BUDGET_SETTLE);
    }

    function test_gas_accuse_defend() public {
        (id, o) = openDefault(0);
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(buyer);
        judge.accuse(id, chain[5], sig, 3);
        within("accuse", BUDGET_ACCUSE);
        postSeq(3);
        vm.prank(seller);
        judge.defend(id);
        within("defend", BUDGET_DEFEND);
    }

    function test_gas_accuse_batchOf256() public {
        (id, o) = openDefault(0);
        BatchProof memory proof = firstOfBatch(chain[5], 256);
        assertEq(proof.path.length, 8, "depth");
        vm.prank(buyer);
        judge.accuse(id, chain[5], proof, 3);
        within("accuse (seen message of a batch of 256)", BUDGET_ACCUSE_BATCH_256);
    }

    function test_gas_accuse_defendWithAck() public {
        (id, o) = openDefault(0);
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(buyer);
        judge.accuse(id, chain[5], sig, 3);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        bytes memory ackSignature = ackSig(a);
        vm.prank(seller);
        judge.defendWithAck(a, ackSignature);
        within("defendWithAck", BUDGET_DEFEND_WITH_ACK);
    }

    function test_gas_accuse_resolve() public {
        (id, o) = openDefault(0);
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(buyer);
        judge.accuse(id, chain[5], sig, 3);
        vm.warp(block.timestamp + T_ACK + 1);
        vm.prank(buyer);
        judge.resolve(id);
        within("resolve (refund)", BUDGET_RESOLVE);
    }

    function test_gas_resolve_postedInTime() public {
        (id, o) = openDefault(0);
        BatchProof memory sig = msgProof(chain[5]);
        vm.prank(buyer);
        judge.accuse(id, chain[5], sig, 3);
        postSeq(3);
        vm.warp(block.timestamp + T_ACK + 1);
        vm.prank(seller);
        judge.resolve(id);
        within("resolve (answered by an in-time posting)", BUDGET_RESOLVE);
    }

    function test_gas_proveWrongCost() public {
        (id, o) = openDefault(0);
        Ack memory a = makeAck(id, 4, 1);
        bytes memory sig = ackSig(a);
        vm.prank(seller);
        judge.proveWrongCost(a, sig);
        within("proveWrongCost", BUDGET_PROVE_WRONG_COST);
    }

    function test_gas_proveEquivocation() public {
        (id, o) = openDefault(0);
        Message memory twin = chain[4];
        twin.payloadHash = keccak256("twin");
        BatchProof memory sigA = msgProof(chain[4]);
        BatchProof memory sigB = msgProof(twin);
        vm.prank(buyer);
        judge.proveEquivocation(id, chain[4], sigA, twin, sigB);
        within("proveEquivocation (batches of 1)", BUDGET_PROVE_EQUIVOCATION);
    }

    function test_gas_proveEquivocation_batchesOf256() public {
        (id, o) = openDefault(0);
        Message memory twin = chain[4];
        twin.payloadHash = keccak256("twin");
        BatchProof memory proofA = firstOfBatch(chain[4], 256);
        BatchProof memory proofB = firstOfBatch(twin, 256);
        vm.prank(buyer);
        judge.proveEquivocation(id, chain[4], proofA, twin, proofB);
        within("proveEquivocation (two batches of 256)", BUDGET_PROVE_EQUIVOCATION_BATCH_256);
    }

    function test_gas_submitStop_record() public {
        (id, o) = openDefault(0);
        (Stop memory s, bytes memory sig) = stopOf(9);
        vm.prank(buyer);
        judge.submitStop(s, sig);
        within("submitStop (record)", BUDGET_SUBMIT_STOP);
    }

    function test_gas_submitStop_answersAnAccusation() public {
        (id, o) = openDefault(0);
        BatchProof memory mSig = msgProof(chain[7]);
        vm.prank(buyer);
        judge.accuse(id, chain[7], mSig, 6);
        (Stop memory s, bytes memory sig) = stopOf(5);
        vm.prank(seller);
        judge.submitStop(s, sig);
        within("submitStop (answers an accusation)", BUDGET_SUBMIT_STOP);
    }

    function test_gas_submitStop_penalty() public {
        (id, o) = openDefault(0);
        claimAsSeller(3);
        postSeq(4);
        postSeq(5);
        postSeq(6);
        vm.prank(seller);
        judge.claimPosted(id, 6);
        (Stop memory s, bytes memory sig) = stopOf(5);
        vm.prank(buyer);
        judge.submitStop(s, sig);
        within("submitStop (penalty)", BUDGET_SUBMIT_STOP);
    }

    function test_gas_closeCooperatively() public {
        (id, o) = openDefault(0);
        claimAsSeller(3);
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        bytes memory aSig = ackSig(a);
        (Stop memory s, bytes memory sSig) = stopOf(9);
        vm.prank(buyer);
        judge.closeCooperatively(a, aSig, s, sSig);
        within("closeCooperatively (pays both sides)", BUDGET_CLOSE_COOPERATIVELY);
    }

    function test_gas_closeCooperatively_firstWriteOfTheChannel() public {
        (id, o) = openDefault(0);
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        bytes memory aSig = ackSig(a);
        (Stop memory s, bytes memory sSig) = stopOf(9);
        vm.prank(buyer);
        judge.closeCooperatively(a, aSig, s, sSig);
        within("closeCooperatively (no claim before)", BUDGET_CLOSE_COOPERATIVELY);
    }

    // --------------------------------------------------------------------------------------------
    // Issue 14: token channels
    // --------------------------------------------------------------------------------------------

    /// @dev Another buyer's token channel first, so that the judge already holds the token.
    function tokenInJudge() internal {
        Offer memory first = offerIn(address(usd), 0);
        openWithPermitOf(first, TOKEN_DEPOSIT);
    }

    function test_gas_openWithPermit() public {
        tokenInJudge();
        o = offerIn(address(usd), 0);
        id = openWithPermitOf(o, TOKEN_DEPOSIT);
        within("openWithPermit", BUDGET_OPEN_WITH_PERMIT);
    }

    function test_gas_openWithPermit_firstDepositOfTheToken() public {
        o = offerIn(address(usd), 0);
        id = openWithPermitOf(o, TOKEN_DEPOSIT);
        within("openWithPermit (the judge's first deposit of this token)", BUDGET_OPEN_WITH_PERMIT_FIRST);
    }

    function test_gas_openWithToken() public {
        tokenInJudge();
        o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        usd.approve(address(judge), TOKEN_DEPOSIT);
        vm.prank(buyer);
        id = judge.openWithToken(o, sig, TOKEN_DEPOSIT);
        within("openWithToken (after approve)", BUDGET_OPEN_WITH_TOKEN);
    }

    function test_gas_topUpWithPermit() public {
        (id, o) = openToken(0);
        uint256 deadline = block.timestamp + 600;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_PRICE, deadline);
        vm.prank(buyer);
        judge.topUpWithPermit(id, TOKEN_PRICE, deadline, v, r, s);
        within("topUpWithPermit", BUDGET_TOP_UP_WITH_PERMIT);
    }

    function test_gas_claim_token() public {
        (id, o) = openToken(0);
        usd.mint(seller, 1); // the seller already holds the token
        claimAsSeller(9);
        within("claim, token channel (first of the channel)", BUDGET_CLAIM_TOKEN);
    }

    function test_gas_claim_token_freshPayee() public {
        (id, o) = openToken(0);
        claimAsSeller(9);
        within("claim, token channel, seller without the token yet", BUDGET_CLAIM_TOKEN_FRESH_PAYEE);
    }

    function test_gas_settle_token() public {
        (id, o) = openToken(0);
        usd.mint(seller, 1);
        claimAsSeller(3);
        for (uint64 s = 4; s <= 5; ++s) {
            postSeq(s);
        }
        vm.prank(seller);
        judge.claimPosted(id, 5);
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        vm.prank(buyer);
        judge.settle(id);
        within("settle, token channel (posted claim and refund)", BUDGET_SETTLE_TOKEN);
    }
}
