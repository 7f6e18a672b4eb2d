// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Ack, Stop, BatchProof} from "../contracts/SupraTypes.sol";
import {SupraTestToken} from "../contracts/SupraTestToken.sol";
import {vm} from "./utils/Vm.sol";
import {SupraTokenBase} from "./utils/SupraTokenBase.sol";
import {FalseToken, FeeToken, HookToken, ITransferHook} from "./utils/TestTokens.sol";

/// @dev Issue 14: channels priced and funded in an ERC-20 (OpenZeppelin ERC20Permit) beside ETH channels:
///      one-transaction opens with EIP-2612 permit, approve + open, token top-ups, every payout path in
///      tokens, currency mismatches, and hostile tokens (false returns, fee on transfer, re-entrant hooks).
contract SupraJudgeTokenTest is SupraTokenBase {
    // --------------------------------------------------------------------------------------------
    // Opening
    // --------------------------------------------------------------------------------------------

    function test_openWithPermit_locksTokensInOneTransaction() public {
        Offer memory o = offerIn(address(usd), 0);
        uint256 before = usd.balanceOf(buyer);
        uint256 expectedId = uint256(judge.hashOffer(o));
        vm.expectEmit(address(judge));
        emit ISupraJudge.ChannelOpened(expectedId, streamId, buyer, TOKEN_DEPOSIT);
        uint256 id = openWithPermitOf(o, TOKEN_DEPOSIT);
        assertEq(id, expectedId, "channelId = offer digest");
        assertEq(before - usd.balanceOf(buyer), TOKEN_DEPOSIT, "buyer paid the deposit in tokens");
        assertEq(usd.balanceOf(address(judge)), TOKEN_DEPOSIT, "judge holds it");
        assertEq(address(judge).balance, 0, "no ether moved");
        assertEq(judge.channelToken(id), address(usd), "channel currency");
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        assertEq(c.deposit, TOKEN_DEPOSIT, "F");
        assertEq(c.price, TOKEN_PRICE, "P");
        assertStatus(id, ISupraJudge.Status.Open, "open");
        assertEq(usd.allowance(buyer, address(judge)), 0, "the permit's allowance is used up");
    }

    function test_openWithToken_afterApprove() public {
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        usd.approve(address(judge), TOKEN_DEPOSIT);
        vm.prank(buyer);
        uint256 id = judge.openWithToken(o, sig, TOKEN_DEPOSIT);
        assertEq(judge.channel(id).deposit, TOKEN_DEPOSIT, "F");
        assertEq(usd.balanceOf(address(judge)), TOKEN_DEPOSIT, "judge holds it");
    }

    function test_open_withEther_refusesATokenOffer() public {
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CurrencyMismatch.selector, address(usd)));
        judge.open{value: DEPOSIT}(o, sig);
    }

    function test_tokenOpens_refuseAnEtherOffer() public {
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CurrencyMismatch.selector, address(0)));
        judge.openWithToken(o, sig, TOKEN_DEPOSIT);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_DEPOSIT, deadline);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CurrencyMismatch.selector, address(0)));
        judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
    }

    function test_openWithPermit_offerCurrencyIsSigned() public {
        // The buyer swaps the currency of a signed ETH offer for a token: the digest changes, the seller's
        // signature no longer holds.
        Offer memory o = makeOffer(0);
        bytes memory sig = signOffer(o);
        o.token = address(usd);
        o.price = TOKEN_PRICE;
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_DEPOSIT, deadline);
        vm.prank(buyer);
        vm.expectPartialRevert(ISupraJudge.WrongSigner.selector);
        judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
    }

    function test_openWithPermit_wrongSigner_reverts() public {
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(OTHER_PK, TOKEN_DEPOSIT, deadline); // not the owner's key
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(judge), 0, TOKEN_DEPOSIT)
        );
        judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
        assertEq(usd.balanceOf(address(judge)), 0, "nothing moved");
    }

    function test_openWithPermit_expiredDeadline_reverts() public {
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_DEPOSIT, deadline);
        vm.prank(buyer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(judge), 0, TOKEN_DEPOSIT)
        );
        judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
    }

    function test_openWithPermit_frontRunPermit_stillOpens() public {
        // Someone copies the buyer's permit from the mempool and submits it first: the permit in
        // openWithPermit then fails (nonce used), but the allowance it set is there, and the open goes on.
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_DEPOSIT, deadline);
        vm.prank(other);
        usd.permit(buyer, address(judge), TOKEN_DEPOSIT, deadline, v, r, s);
        vm.prank(buyer);
        uint256 id = judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
        assertEq(judge.channel(id).deposit, TOKEN_DEPOSIT, "opened anyway");
    }

    function test_openWithPermit_someoneElse_cannotUseTheBuyersPermit() public {
        Offer memory o = offerIn(address(usd), 0);
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, TOKEN_DEPOSIT, deadline);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotBuyer.selector, other, buyer));
        judge.openWithPermit(o, sig, TOKEN_DEPOSIT, deadline, v, r, s);
    }

    function test_openWithPermit_depositTooSmall_reverts() public {
        Offer memory o = offerIn(address(usd), 0);
        uint256 required = TOKEN_PRICE * WINDOW;
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, required - 1, deadline);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DepositTooSmall.selector, required - 1, required));
        judge.openWithPermit(o, sig, required - 1, deadline, v, r, s);
    }

    function test_openWithToken_twice_reverts() public {
        (uint256 id, Offer memory o) = openToken(0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        usd.approve(address(judge), TOKEN_DEPOSIT);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.ChannelExists.selector, id));
        judge.openWithToken(o, sig, TOKEN_DEPOSIT);
    }

    // --------------------------------------------------------------------------------------------
    // Top-ups
    // --------------------------------------------------------------------------------------------

    function test_topUpWithPermit_and_topUpWithToken() public {
        (uint256 id,) = openToken(0);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, 5 * TOKEN_PRICE, deadline);
        vm.expectEmit(address(judge));
        emit ISupraJudge.ToppedUp(id, 5 * TOKEN_PRICE, TOKEN_DEPOSIT + 5 * TOKEN_PRICE);
        vm.prank(buyer);
        judge.topUpWithPermit(id, 5 * TOKEN_PRICE, deadline, v, r, s);
        vm.prank(buyer);
        usd.approve(address(judge), 7);
        vm.prank(buyer);
        judge.topUpWithToken(id, 7);
        assertEq(judge.channel(id).deposit, TOKEN_DEPOSIT + 5 * TOKEN_PRICE + 7, "F grew");
        assertEq(usd.balanceOf(address(judge)), TOKEN_DEPOSIT + 5 * TOKEN_PRICE + 7, "judge holds it");
        assertEq(judge.channelTiming(id).extendedAt, block.timestamp, "extendedAt");
    }

    function test_topUp_currencyMismatch() public {
        (uint256 tokenId,) = openToken(0);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CurrencyMismatch.selector, address(usd)));
        judge.topUp{value: 1}(tokenId);
        (uint256 ethId,) = openDefault(0);
        vm.prank(buyer);
        usd.approve(address(judge), 1);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.CurrencyMismatch.selector, address(0)));
        judge.topUpWithToken(ethId, 1);
    }

    function test_topUpWithToken_checks() public {
        (uint256 id,) = openToken(0);
        vm.prank(buyer);
        vm.expectRevert(ISupraJudge.ZeroAmount.selector);
        judge.topUpWithToken(id, 0);
        usd.mint(other, 10);
        vm.prank(other);
        usd.approve(address(judge), 10);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NotBuyer.selector, other, buyer));
        judge.topUpWithToken(id, 10);
        vm.prank(buyer);
        judge.requestClose(id);
        vm.prank(buyer);
        usd.approve(address(judge), 10);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.WrongStatus.selector, id, ISupraJudge.Status.Closing));
        judge.topUpWithToken(id, 10);
    }

    // --------------------------------------------------------------------------------------------
    // Payouts in tokens
    // --------------------------------------------------------------------------------------------

    function test_claim_paysTheSellerInTokens() public {
        (uint256 id, Offer memory o) = openToken(0);
        uint256 ethBefore = seller.balance;
        claimAck(id, o, 9);
        assertEq(usd.balanceOf(seller), 10 * TOKEN_PRICE, "seller paid 10 messages in tokens");
        assertEq(seller.balance, ethBefore, "no ether");
        assertEq(usd.balanceOf(address(judge)), TOKEN_DEPOSIT - 10 * TOKEN_PRICE, "judge holds F - R");
        claimAck(id, o, 14);
        assertEq(usd.balanceOf(seller), 15 * TOKEN_PRICE, "cumulative");
    }

    function test_claimPosted_settle_paysBothSidesInTokens() public {
        (uint256 id, Offer memory o) = openToken(0);
        claimAck(id, o, 3);
        for (uint64 s = 4; s <= 6; ++s) {
            postSeq(s);
        }
        vm.prank(seller);
        judge.claimPosted(id, 6);
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        uint256 buyerBefore = usd.balanceOf(buyer);
        judge.settle(id);
        assertEq(usd.balanceOf(seller), 7 * TOKEN_PRICE, "acked 4 + posted 3");
        assertEq(usd.balanceOf(buyer) - buyerBefore, TOKEN_DEPOSIT - 7 * TOKEN_PRICE, "buyer gets F - R");
        assertEq(usd.balanceOf(address(judge)), 0, "nothing locked");
    }

    function test_closeCooperatively_inTokens() public {
        (uint256 id, Offer memory o) = openToken(0);
        Ack memory a = makeAck(id, 4, costOf(o, 4));
        Stop memory st = Stop({channelId: id, seq: 4, timestamp: uint64(block.timestamp) * 1000});
        uint256 buyerBefore = usd.balanceOf(buyer);
        judge.closeCooperatively(a, ackSig(a), st, sign(SELLER_PK, judge.hashStop(st)));
        assertEq(usd.balanceOf(seller), 5 * TOKEN_PRICE, "seller");
        assertEq(usd.balanceOf(buyer) - buyerBefore, TOKEN_DEPOSIT - 5 * TOKEN_PRICE, "buyer");
        assertEq(usd.balanceOf(address(judge)), 0, "nothing locked");
    }

    function test_proveWrongCost_penaltyInTokens() public {
        (uint256 id, Offer memory o) = openToken(0);
        Ack memory a = makeAck(id, 2, costOf(o, 2) + 1);
        judge.proveWrongCost(a, ackSig(a));
        assertEq(usd.balanceOf(seller), TOKEN_DEPOSIT, "seller takes F");
        assertEq(usd.balanceOf(address(judge)), 0, "nothing locked");
    }

    function test_resolve_refundsInTokens() public {
        (uint256 id,) = openToken(0);
        ensureChain(3);
        BatchProof memory proof = msgProof(chain[3]);
        vm.prank(buyer);
        judge.accuse(id, chain[3], proof, 1);
        vm.warp(block.timestamp + T_ACK + 1);
        uint256 buyerBefore = usd.balanceOf(buyer);
        judge.resolve(id);
        assertEq(usd.balanceOf(buyer) - buyerBefore, TOKEN_DEPOSIT, "buyer refunded F");
        assertEq(usd.balanceOf(address(judge)), 0, "nothing locked");
    }

    function test_ethAndTokenChannels_areAccountedApart() public {
        (uint256 ethId, Offer memory eo) = openDefault(0);
        (uint256 tokId, Offer memory to) = openToken(0);
        claimAck(ethId, eo, 9);
        claimAck(tokId, to, 19);
        assertEq(address(judge).balance, DEPOSIT - 10 * PRICE, "ether: F - R of the ETH channel");
        assertEq(usd.balanceOf(address(judge)), TOKEN_DEPOSIT - 20 * TOKEN_PRICE, "tokens: F - R of the token channel");
        vm.startPrank(buyer);
        judge.requestClose(ethId);
        judge.requestClose(tokId);
        vm.stopPrank();
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(ethId);
        judge.settle(tokId);
        assertEq(address(judge).balance, 0, "no ether left");
        assertEq(usd.balanceOf(address(judge)), 0, "no tokens left");
    }

    /// Payout = min(C, F) in tokens over random prices, windows, deposits and acks; after settle the judge
    /// holds nothing and seller + buyer = F.
    function testFuzz_tokenChannel_paysMinCostDeposit(uint256 price, uint64 window, uint256 deposit, uint64 seq)
        public
    {
        price = bound(price, 1, 1e12);
        window = uint64(bound(window, 1, 64));
        deposit = bound(deposit, price * window, price * window * 10);
        seq = uint64(bound(seq, 0, 1000));
        Offer memory o = offerIn(address(usd), 0);
        o.price = price;
        o.window = window;
        usd.mint(buyer, deposit);
        uint256 id = openWithPermitOf(o, deposit);
        uint256 buyerBefore = usd.balanceOf(buyer);
        Ack memory a = makeAck(id, seq, costOf(o, seq));
        judge.claim(a, ackSig(a));
        uint256 expected = costOf(o, seq) < deposit ? costOf(o, seq) : deposit;
        assertEq(usd.balanceOf(seller), expected, "seller gets min(C, F)");
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        assertEq(usd.balanceOf(seller) + usd.balanceOf(buyer) - buyerBefore, deposit, "seller + buyer = F");
        assertEq(usd.balanceOf(address(judge)), 0, "nothing locked");
    }

    // --------------------------------------------------------------------------------------------
    // Hostile tokens
    // --------------------------------------------------------------------------------------------

    function _openIn(address token, uint256 amount) internal returns (uint256 id, Offer memory o) {
        o = offerIn(token, 0);
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        (bool ok,) = token.call(abi.encodeWithSignature("approve(address,uint256)", address(judge), amount));
        assertTrue(ok, "approve");
        vm.prank(buyer);
        id = judge.openWithToken(o, sig, amount);
    }

    function test_falseToken_payoutIsDeferred_thenWithdrawn() public {
        FalseToken t = new FalseToken();
        t.mint(buyer, TOKEN_DEPOSIT);
        (uint256 id, Offer memory o) = _openIn(address(t), TOKEN_DEPOSIT);
        t.setFailing(true);
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        bytes memory sig = ackSig(a);
        vm.expectEmit(address(judge));
        emit ISupraJudge.TokenPayoutDeferred(address(t), seller, 10 * TOKEN_PRICE);
        judge.claim(a, sig);
        assertEq(judge.channel(id).claimed, 10 * TOKEN_PRICE, "R counts it");
        assertEq(judge.owedToken(address(t), seller), 10 * TOKEN_PRICE, "credited");
        // The settlement is not blocked either.
        vm.prank(buyer);
        judge.requestClose(id);
        vm.warp(block.timestamp + T_CLOSURE);
        judge.settle(id);
        assertStatus(id, ISupraJudge.Status.Settled, "settled despite the token");
        assertEq(judge.owedToken(address(t), buyer), TOKEN_DEPOSIT - 10 * TOKEN_PRICE, "buyer credited");
        // While the token keeps failing, a withdrawal reverts and the credit stays.
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(t)));
        judge.withdrawToken(address(t));
        t.setFailing(false);
        vm.expectEmit(address(judge));
        emit ISupraJudge.TokenWithdrawn(address(t), seller, 10 * TOKEN_PRICE);
        vm.prank(seller);
        judge.withdrawToken(address(t));
        vm.prank(buyer);
        judge.withdrawToken(address(t));
        assertEq(t.balanceOf(seller), 10 * TOKEN_PRICE, "seller paid");
        assertEq(t.balanceOf(address(judge)), 0, "nothing left");
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.NothingToWithdraw.selector, seller));
        judge.withdrawToken(address(t));
    }

    function test_feeOnTransferToken_creditsWhatArrived() public {
        FeeToken t = new FeeToken();
        t.mint(buyer, 2 * TOKEN_DEPOSIT);
        (uint256 id,) = _openIn(address(t), TOKEN_DEPOSIT);
        uint256 arrived = TOKEN_DEPOSIT - TOKEN_DEPOSIT / 100;
        assertEq(judge.channel(id).deposit, arrived, "F = what arrived, not what was sent");
        assertEq(t.balanceOf(address(judge)), arrived, "judge balance = F");
        vm.prank(buyer);
        t.approve(address(judge), 1000);
        vm.prank(buyer);
        judge.topUpWithToken(id, 1000);
        assertEq(judge.channel(id).deposit, arrived + 990, "top-up credited net of the fee");
        assertEq(t.balanceOf(address(judge)), arrived + 990, "judge balance = F");
    }

    function test_feeOnTransferToken_belowTheFloorAfterTheFee_reverts() public {
        FeeToken t = new FeeToken();
        t.mint(buyer, TOKEN_DEPOSIT);
        Offer memory o = offerIn(address(t), 0);
        uint256 required = TOKEN_PRICE * WINDOW;
        bytes memory sig = signOffer(o);
        vm.prank(buyer);
        t.approve(address(judge), required);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ISupraJudge.DepositTooSmall.selector, required - required / 100, required));
        judge.openWithToken(o, sig, required);
    }

    function test_reentrantToken_depositCannotBeCreditedTwice() public {
        // The buyer is a contract that also receives the token's hook: while the judge pulls its deposit
        // for one channel, it tops up another. Without the lock, the outer open would count the inner
        // top-up's tokens as its own (balance delta), crediting 3x for 2x received.
        HookToken t = new HookToken();
        DepositReenterer attacker = new DepositReenterer(judge, t);
        t.mint(address(attacker), 10 * TOKEN_DEPOSIT);
        t.setHook(attacker);

        Offer memory o1 = offerIn(address(t), 0);
        o1.buyer = address(attacker);
        uint256 first = attacker.open(o1, signOffer(o1), TOKEN_DEPOSIT);
        Offer memory o2 = offerIn(address(t), 0);
        o2.buyer = address(attacker);
        attacker.arm(first, TOKEN_DEPOSIT);
        uint256 second = attacker.open(o2, signOffer(o2), TOKEN_DEPOSIT);

        uint256 credited = judge.channel(first).deposit + judge.channel(second).deposit;
        assertEq(t.balanceOf(address(judge)), credited, "conservation: judge balance = sum of deposits");
        assertEq(judge.channel(second).deposit, TOKEN_DEPOSIT, "the outer open credited its own deposit only");
        assertEq(attacker.innerError(), ISupraJudge.Reentrant.selector, "the inner deposit was refused");
    }

    function test_reentrantToken_payoutCannotBeClaimedTwice() public {
        HookToken t = new HookToken();
        t.mint(buyer, TOKEN_DEPOSIT);
        (uint256 id, Offer memory o) = _openIn(address(t), TOKEN_DEPOSIT);
        Ack memory a = makeAck(id, 9, costOf(o, 9));
        bytes memory sig = ackSig(a);
        ClaimReenterer hook = new ClaimReenterer(judge, a, sig);
        t.setHook(hook);
        judge.claim(a, sig);
        assertEq(hook.innerError(), ISupraJudge.NothingToClaim.selector, "the re-entrant claim got nothing");
        assertEq(t.balanceOf(seller), 10 * TOKEN_PRICE, "paid once");
        assertEq(t.balanceOf(address(judge)), TOKEN_DEPOSIT - 10 * TOKEN_PRICE, "judge holds F - R");
    }
}

/// @dev A buyer contract that re-enters the judge's deposit functions from the token's transfer hook.
contract DepositReenterer is ITransferHook {
    ISupraJudge internal immutable judge;
    HookToken internal immutable token;
    uint256 internal target;
    uint256 internal amount;
    bytes4 public innerError;

    constructor(ISupraJudge judge_, HookToken token_) {
        judge = judge_;
        token = token_;
        token_.approve(address(judge_), type(uint256).max);
    }

    function arm(uint256 target_, uint256 amount_) external {
        target = target_;
        amount = amount_;
    }

    function open(Offer calldata o, bytes calldata sig, uint256 deposit) external returns (uint256) {
        return judge.openWithToken(o, sig, deposit);
    }

    function onTransfer(address from, address, uint256) external {
        if (target == 0 || from != address(this)) return;
        uint256 t = target;
        target = 0;
        try judge.topUpWithToken(t, amount) {}
        catch (bytes memory err) {
            innerError = bytes4(err);
        }
    }
}

/// @dev A token hook that re-enters `claim` with the same ack while the judge pays the seller.
contract ClaimReenterer is ITransferHook {
    ISupraJudge internal immutable judge;
    Ack internal ack;
    bytes internal sig;
    bool internal done;
    bytes4 public innerError;

    constructor(ISupraJudge judge_, Ack memory a, bytes memory s) {
        judge = judge_;
        ack = a;
        sig = s;
    }

    function onTransfer(address from, address, uint256) external {
        if (done || from != address(judge)) return;
        done = true;
        try judge.claim(ack, sig) {}
        catch (bytes memory err) {
            innerError = bytes4(err);
        }
    }
}
