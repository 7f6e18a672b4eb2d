// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISupraJudge} from "../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop} from "../contracts/SupraTypes.sol";
import {vm} from "./utils/Vm.sol";
import {Assertions} from "./utils/Assertions.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {SupraTestToken} from "../contracts/SupraTestToken.sol";

/// @dev Drives the judge with random sequences of every action, by honest and dishonest parties: one seller
///      and its stream, three buyers, up to MAX_CHANNELS channels. It measures every payout from the
///      parties' balances (they are code-less accounts, so pushes always succeed) and keeps ghost totals.
///      Issue 14: the handler runs in one currency, ETH (`token` = 0) or an ERC-20 with permit; the token
///      handler opens with `openWithPermit` or `openWithToken` and tops up with `topUpWithPermit` or
///      `topUpWithToken` (alternating on a seed), and measures token balances.
contract JudgeHandler is Assertions {
    uint256 internal constant SELLER_PK = 0x5E11E7;
    uint256 internal constant MAX_LIVE = 6;
    uint256 internal constant MAX_CHANNELS = 40;
    uint32 internal constant T_ACK = 60;
    uint32 internal constant T_CLOSURE = 600;

    ISupraJudge public immutable judge;
    address public immutable seller;
    bytes32 public immutable streamId;
    uint256[3] internal buyerPks = [uint256(0xB0B1), 0xB0B2, 0xB0B3];

    Message[] internal chain;
    bytes[] internal payloads;
    /// The seller's signed batches (each `produce` signs one), and the batch of each seq.
    Batch[] internal batches;
    bytes[] internal batchSigs;
    uint256[] internal batchOf;
    uint256 internal nonce;

    uint256[] public ids;
    uint256[] internal live;
    mapping(uint256 id => uint256) public buyerPkOf;

    // Ghost accounting, from balance deltas.
    uint256 public ghostDeposits;
    uint256 public ghostPayouts;
    mapping(uint256 id => uint256) public ghostDeposited;
    mapping(uint256 id => uint256) public ghostToSeller;
    mapping(uint256 id => uint256) public ghostToBuyer;
    mapping(uint256 id => uint256) public lastClaimed;
    bool public claimedDecreased;
    /// Set when a payout went elsewhere than to the channel's parties, or an honest open failed.
    /// (Flags, not reverts: the campaign tolerates reverting calls, so a revert would go unnoticed.)
    bool public misaccounted;
    bool public openFailed;
    mapping(bytes32 action => uint256) public successes;

    /// The channels' currency: address(0) for ETH.
    SupraTestToken public immutable token;

    constructor(ISupraJudge judge_, SupraTestToken token_) {
        judge = judge_;
        token = token_;
        seller = vm.addr(SELLER_PK);
        streamId = bytes32(uint256(uint160(seller)) << 96 | 7);
        vm.deal(seller, 1 ether);
        for (uint256 i = 0; i < 3; ++i) {
            vm.deal(vm.addr(buyerPks[i]), 1 ether);
        }
    }

    /// @dev Balance of `who` in the handler's currency.
    function balanceIn(address who) public view returns (uint256) {
        return address(token) == address(0) ? who.balance : token.balanceOf(who);
    }

    function _fund(address who, uint256 amount) internal {
        if (address(token) == address(0)) vm.deal(who, who.balance + amount);
        else token.mint(who, amount);
    }

    /// @dev The buyer's EIP-2612 permit of `amount` to the judge.
    function _permit(uint256 pk, uint256 amount) internal view returns (uint256 deadline, uint8 v, bytes32 r, bytes32 s) {
        address owner = vm.addr(pk);
        deadline = block.timestamp + 60;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                owner,
                address(judge),
                amount,
                token.nonces(owner),
                deadline
            )
        );
        (v, r, s) = vm.sign(pk, keccak256(abi.encodePacked(hex"1901", token.DOMAIN_SEPARATOR(), structHash)));
    }

    function idsLength() external view returns (uint256) {
        return ids.length;
    }

    function buyerOf(uint256 id) public view returns (address) {
        return vm.addr(buyerPkOf[id]);
    }

    // --------------------------------------------------------------------------------------------
    // Accounting around each action
    // --------------------------------------------------------------------------------------------

    struct Snapshot {
        uint256 id;
        address buyer;
        uint256 judgeBalance;
        uint256 sellerBalance;
        uint256 buyerBalance;
    }

    function _before(uint256 id) internal view returns (Snapshot memory s) {
        s.id = id;
        s.buyer = buyerOf(id);
        s.judgeBalance = balanceIn(address(judge));
        s.sellerBalance = balanceIn(seller);
        s.buyerBalance = balanceIn(s.buyer);
    }

    /// @dev `valueIn`: ether the buyer sent to the judge in the action (open, topUp).
    function _after(Snapshot memory s, uint256 valueIn, bytes32 action, bool ok) internal {
        if (!ok) return;
        successes[action]++;
        uint256 toSeller = balanceIn(seller) - s.sellerBalance;
        uint256 toBuyer = balanceIn(s.buyer) + valueIn - s.buyerBalance;
        ghostDeposits += valueIn;
        ghostDeposited[s.id] += valueIn;
        ghostPayouts += toSeller + toBuyer;
        ghostToSeller[s.id] += toSeller;
        ghostToBuyer[s.id] += toBuyer;
        if (s.judgeBalance + valueIn - balanceIn(address(judge)) != toSeller + toBuyer) misaccounted = true;
        for (uint256 i = 0; i < ids.length; ++i) {
            uint256 claimed = judge.channel(ids[i]).claimed;
            if (claimed < lastClaimed[ids[i]]) claimedDecreased = true;
            lastClaimed[ids[i]] = claimed;
        }
        for (uint256 i = 0; i < live.length;) {
            if (judge.channel(live[i]).status == ISupraJudge.Status.Settled) {
                live[i] = live[live.length - 1];
                live.pop();
            } else {
                ++i;
            }
        }
    }

    /// @dev A channel that is not settled yet (actions on settled ones would only revert).
    function _pick(uint256 seed) internal view returns (bool found, uint256 id) {
        if (live.length == 0) return (false, 0);
        return (true, live[seed % live.length]);
    }

    function _sign(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _ack(uint256 id, uint64 seq, uint256 cost) internal view returns (Ack memory a, bytes memory sig) {
        a = Ack({channelId: id, seq: seq, digest: keccak256(abi.encode(seq)), cost: cost, timestamp: 1});
        sig = _sign(buyerPkOf[id], judge.hashAck(a));
    }

    function _cost(ISupraJudge.ChannelInfo memory c, uint64 seq) internal pure returns (uint256) {
        return (uint256(seq) - c.startSeq + 1) * c.price;
    }

    // --------------------------------------------------------------------------------------------
    // Actions
    // --------------------------------------------------------------------------------------------

    function open(uint256 buyerSeed, uint256 price, uint256 window, uint256 startSeq, uint256 deposit) external {
        if (live.length >= MAX_LIVE || ids.length >= MAX_CHANNELS) return;
        uint256 pk = buyerPks[buyerSeed % 3];
        address buyer = vm.addr(pk);
        price = bound(price, 1, 1e15);
        window = bound(window, 1, 16);
        deposit = bound(deposit, price * window, price * window * 4);
        Offer memory o = Offer({
            streamId: streamId,
            seller: seller,
            buyer: buyer,
            price: price,
            token: address(token),
            window: uint64(window),
            startSeq: uint64(bound(startSeq, 0, chain.length + 4)),
            tAck: T_ACK,
            tClosure: T_CLOSURE,
            validUntil: uint64(block.timestamp + 60),
            nonce: ++nonce
        });
        bytes memory sig = _sign(SELLER_PK, judge.hashOffer(o));
        _fund(buyer, deposit);
        uint256 id = uint256(judge.hashOffer(o));
        buyerPkOf[id] = pk;
        Snapshot memory s = _before(id);
        (bool ok, uint256 opened) = _openIn(o, sig, pk, deposit);
        if (ok) {
            if (opened != id) openFailed = true;
            ids.push(id);
            live.push(id);
            _after(s, deposit, "open", true);
        } else {
            openFailed = true;
        }
    }

    /// @dev Opens `o` in the handler's currency: ETH, or (alternating) with a permit or after an approve.
    function _openIn(Offer memory o, bytes memory sig, uint256 pk, uint256 deposit)
        internal
        returns (bool ok, uint256 opened)
    {
        if (address(token) == address(0)) {
            vm.prank(o.buyer);
            try judge.open{value: deposit}(o, sig) returns (uint256 got) {
                return (true, got);
            } catch {}
        } else if (nonce % 2 == 0) {
            return _openWithPermit(o, sig, pk, deposit);
        } else {
            vm.prank(o.buyer);
            token.approve(address(judge), deposit);
            vm.prank(o.buyer);
            try judge.openWithToken(o, sig, deposit) returns (uint256 got) {
                return (true, got);
            } catch {}
        }
    }

    function _openWithPermit(Offer memory o, bytes memory sig, uint256 pk, uint256 deposit)
        internal
        returns (bool, uint256)
    {
        (uint256 deadline, uint8 v, bytes32 r, bytes32 ps) = _permit(pk, deposit);
        vm.prank(o.buyer);
        try judge.openWithPermit(o, sig, deposit, deadline, v, r, ps) returns (uint256 got) {
            return (true, got);
        } catch {
            return (false, 0);
        }
    }

    function topUp(uint256 seed, uint256 amount) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        amount = bound(amount, 1, 1e16);
        address buyer = buyerOf(id);
        _fund(buyer, amount);
        Snapshot memory s = _before(id);
        if (address(token) == address(0)) {
            vm.prank(buyer);
            try judge.topUp{value: amount}(id) {
                _after(s, amount, "topUp", true);
            } catch {}
        } else if (seed % 2 == 0) {
            (uint256 deadline, uint8 v, bytes32 r, bytes32 ps) = _permit(buyerPkOf[id], amount);
            vm.prank(buyer);
            try judge.topUpWithPermit(id, amount, deadline, v, r, ps) {
                _after(s, amount, "topUp", true);
            } catch {}
        } else {
            vm.prank(buyer);
            token.approve(address(judge), amount);
            vm.prank(buyer);
            try judge.topUpWithToken(id, amount) {
                _after(s, amount, "topUp", true);
            } catch {}
        }
    }

    /// @dev The seller signs the next messages of its stream as one batch (delivered off-chain, not posted).
    function produce(uint8 n) external {
        n = uint8(bound(n, 1, 6));
        uint64 first = uint64(chain.length);
        for (uint256 i = 0; i < n; ++i) {
            uint64 seq = uint64(chain.length);
            bytes memory payload = abi.encode("payload", seq);
            chain.push(
                Message({
                    streamId: streamId,
                    seq: seq,
                    timestamp: uint64(block.timestamp) * 1000,
                    payloadHash: keccak256(payload),
                    prev: seq == 0 ? bytes32(0) : judge.hashMessage(chain[seq - 1])
                })
            );
            payloads.push(payload);
            batchOf.push(batches.length);
        }
        uint64 last = uint64(chain.length - 1);
        Batch memory b =
            Batch({streamId: streamId, firstSeq: first, lastSeq: last, root: MerkleBuilder.root(_leaves(first, last))});
        batches.push(b);
        batchSigs.push(_sign(SELLER_PK, judge.hashBatch(b)));
    }

    /// @dev The digests of chain[first..=last].
    function _leaves(uint64 first, uint64 last) private view returns (bytes32[] memory leaves) {
        leaves = new bytes32[](last - first + 1);
        for (uint256 i = 0; i < leaves.length; ++i) {
            leaves[i] = judge.hashMessage(chain[first + i]);
        }
    }

    /// @dev The seller's proof of chain[seq], from the batch it was signed in.
    function _proof(uint64 seq) internal view returns (BatchProof memory p) {
        uint256 i = batchOf[seq];
        p.batch = batches[i];
        p.sig = batchSigs[i];
        p.path = MerkleBuilder.path(_leaves(p.batch.firstSeq, p.batch.lastSeq), seq - p.batch.firstSeq);
    }

    /// @dev A seller-signed batch of the single message `m` (say, a second message for a seq).
    function _singleProof(Message memory m) internal view returns (BatchProof memory p) {
        p.batch = Batch({streamId: m.streamId, firstSeq: m.seq, lastSeq: m.seq, root: judge.hashMessage(m)});
        p.sig = _sign(SELLER_PK, judge.hashBatch(p.batch));
        p.path = new bytes32[](0);
    }

    function post(uint256 seqSeed) external {
        if (chain.length == 0) return;
        _post(uint64(seqSeed % chain.length));
    }

    function _post(uint64 seq) internal {
        Message memory m = chain[seq];
        judge.post(m, payloads[seq], _proof(seq));
    }

    function claim(uint256 seed, uint256 seqSeed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint64 seq = uint64(c.startSeq + seqSeed % 40);
        (Ack memory a, bytes memory sig) = _ack(id, seq, _cost(c, seq));
        Snapshot memory s = _before(id);
        vm.prank(seller);
        try judge.claim(a, sig) {
            _after(s, 0, "claim", true);
        } catch {}
    }

    /// @dev The seller posts the unacked messages it has (up to the window) and claims them.
    function claimPosted(uint256 seed, uint256 extra) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint64 upto = uint64(c.startSeq + c.acked + extra % c.window);
        for (uint256 seq = c.startSeq + c.acked; seq <= upto && seq < chain.length; ++seq) {
            _post(uint64(seq));
        }
        Snapshot memory s = _before(id);
        vm.prank(seller);
        try judge.claimPosted(id, upto) {
            _after(s, 0, "claimPosted", true);
        } catch {}
    }

    function requestClose(uint256 seed, bool bySeller) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        Snapshot memory s = _before(id);
        vm.prank(bySeller ? seller : buyerOf(id));
        try judge.requestClose(id) {
            _after(s, 0, "requestClose", true);
        } catch {}
    }

    /// @dev Anyone settles; half of the time after waiting for the end of T_closure.
    function settle(uint256 seed, bool wait) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        if (wait && c.status == ISupraJudge.Status.Closing && block.timestamp < c.closeRequestedAt + c.tClosure) {
            vm.warp(c.closeRequestedAt + c.tClosure);
        }
        Snapshot memory s = _before(id);
        try judge.settle(id) {
            _after(s, 0, "settle", true);
        } catch {}
    }

    /// @dev The buyer accuses for a message it has not acked, below one it has seen (rightly or not).
    function accuse(uint256 seed, uint256 seenSeed, uint256 missingSeed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint256 lowest = c.startSeq + c.acked;
        if (chain.length < lowest + 2) return;
        Message memory seen = chain[lowest + 1 + seenSeed % (chain.length - lowest - 1)];
        BatchProof memory sig = _proof(seen.seq);
        uint64 missing = uint64(lowest + missingSeed % (seen.seq - lowest));
        Snapshot memory s = _before(id);
        vm.prank(buyerOf(id));
        try judge.accuse(id, seen, sig, missing) {
            _after(s, 0, "accuse", true);
        } catch {}
    }

    function defend(uint256 seed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        if (c.disputeDeadline != 0 && c.disputeSeq < chain.length) {
            Message memory m = chain[c.disputeSeq];
            judge.post(m, payloads[m.seq], _proof(m.seq));
        }
        Snapshot memory s = _before(id);
        try judge.defend(id) {
            _after(s, 0, "defend", true);
        } catch {}
    }

    function defendWithAck(uint256 seed, uint256 extra) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint64 seq = uint64(c.disputeSeq + extra % 4);
        if (seq < c.startSeq) seq = c.startSeq;
        (Ack memory a, bytes memory sig) = _ack(id, seq, _cost(c, seq));
        Snapshot memory s = _before(id);
        try judge.defendWithAck(a, sig) {
            _after(s, 0, "defendWithAck", true);
        } catch {}
    }

    /// @dev Anyone resolves; half of the time after letting the deadline pass.
    function resolve(uint256 seed, bool wait) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        if (wait && c.disputeDeadline != 0 && block.timestamp <= c.disputeDeadline) {
            vm.warp(c.disputeDeadline + 1);
        }
        Snapshot memory s = _before(id);
        try judge.resolve(id) {
            _after(s, 0, "resolve", true);
        } catch {}
    }

    /// @dev A dishonest buyer signed an ack with a wrong cost.
    function proveWrongCost(uint256 seed, uint256 seqSeed, uint256 delta) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found || seqSeed % 4 != 0) return; // rarer than honest actions: it ends the channel
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint64 seq = uint64(c.startSeq + seqSeed % 40);
        delta = bound(delta, 1, c.price);
        (Ack memory a, bytes memory sig) = _ack(id, seq, _cost(c, seq) - delta);
        Snapshot memory s = _before(id);
        try judge.proveWrongCost(a, sig) {
            _after(s, 0, "proveWrongCost", true);
        } catch {}
    }

    /// @dev A dishonest seller signed a second message for a seq.
    function proveEquivocation(uint256 seed, uint256 seqSeed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found || chain.length == 0 || (seqSeed >> 128) % 4 != 0) return; // rarer: it ends the channel
        Message memory a = chain[seqSeed % chain.length];
        Message memory b = a;
        b.payloadHash = keccak256(abi.encode("twin", a.seq));
        BatchProof memory sigA = _proof(a.seq);
        BatchProof memory sigB = _singleProof(b);
        Snapshot memory s = _before(id);
        try judge.proveEquivocation(id, a, sigA, b, sigB) {
            _after(s, 0, "proveEquivocation", true);
        } catch {}
    }

    function _stop(uint256 id, uint64 seq) internal view returns (Stop memory st, bytes memory sig) {
        st = Stop({channelId: id, seq: seq, timestamp: 1});
        sig = _sign(SELLER_PK, judge.hashStop(st));
    }

    /// @dev Someone submits a seller-signed Stop, anywhere around the channel's position (before its start,
    ///      below or past a recorded posted claim, below or past an accused seq).
    function submitStop(uint256 seed, uint256 seqSeed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found) return;
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint256 seq = c.startSeq + c.acked + seqSeed % 24;
        seq = seq >= 4 ? seq - 4 : 0;
        (Stop memory st, bytes memory sig) = _stop(id, uint64(seq));
        Snapshot memory s = _before(id);
        try judge.submitStop(st, sig) {
            _after(s, 0, "submitStop", true);
        } catch {}
    }

    /// @dev Both sides agree on a final seq (the buyer's ack, the seller's Stop), possibly an old one.
    function closeCooperatively(uint256 seed, uint256 seqSeed) external {
        (bool found, uint256 id) = _pick(seed);
        if (!found || (seqSeed >> 128) % 3 != 0) return; // rarer: it ends the channel
        ISupraJudge.ChannelInfo memory c = judge.channel(id);
        uint64 seq = uint64(c.startSeq + seqSeed % 40);
        (Ack memory a, bytes memory aSig) = _ack(id, seq, _cost(c, seq));
        (Stop memory st, bytes memory sSig) = _stop(id, seq);
        Snapshot memory s = _before(id);
        try judge.closeCooperatively(a, aSig, st, sSig) {
            _after(s, 0, "closeCooperatively", true);
        } catch {}
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + bound(dt, 1, 2 * T_CLOSURE));
    }
}

/// @dev Invariants of the judge under random action sequences (docs/PROTOCOL.md section 2).
contract SupraJudgeInvariantTest is Assertions {
    ISupraJudge internal judge;
    JudgeHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        judge = ISupraJudge(vm.deployCode("contracts/SupraJudge.sol:SupraJudge"));
        handler = new JudgeHandler(judge, _currency());
    }

    /// @dev The channels' currency: ETH here, the test token in {SupraJudgeTokenInvariantTest}.
    function _currency() internal virtual returns (SupraTestToken) {
        return SupraTestToken(address(0));
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The judge never pays out more than was deposited: its balance is exactly deposits minus payouts.
    function invariant_balanceIsDepositsMinusPayouts() public view {
        assertTrue(!handler.misaccounted(), "every payout goes to the channel's seller or buyer");
        assertTrue(!handler.openFailed(), "honest opens succeed");
        assertLe(handler.ghostPayouts(), handler.ghostDeposits(), "payouts <= deposits");
        assertEq(handler.balanceIn(address(judge)), handler.ghostDeposits() - handler.ghostPayouts(), "balance");
    }

    /// R never decreases, never exceeds F, and is exactly what the seller received.
    function invariant_claimedIsMonotonicAndPaid() public view {
        assertTrue(!handler.claimedDecreased(), "R never decreases");
        uint256 n = handler.idsLength();
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = handler.ids(i);
            ISupraJudge.ChannelInfo memory c = judge.channel(id);
            assertLe(c.claimed, c.deposit, "R <= F");
            assertEq(c.claimed, handler.ghostToSeller(id), "R = paid to the seller");
            assertEq(c.deposit, handler.ghostDeposited(id), "F = deposited");
        }
    }

    /// Once settled, seller + buyer payouts = deposit; the judge holds exactly F - R of live channels.
    function invariant_settledChannelsAreFullyPaidOut() public view {
        uint256 locked;
        uint256 n = handler.idsLength();
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = handler.ids(i);
            ISupraJudge.ChannelInfo memory c = judge.channel(id);
            if (c.status == ISupraJudge.Status.Settled) {
                assertEq(handler.ghostToSeller(id) + handler.ghostToBuyer(id), c.deposit, "seller + buyer = F");
                assertEq(c.disputeDeadline, 0, "no dispute left open");
            } else {
                assertEq(handler.ghostToBuyer(id), 0, "buyer paid only at the end");
                locked += c.deposit - c.claimed;
            }
        }
        assertEq(handler.balanceIn(address(judge)), locked, "nothing locked after settle");
    }

    /// Issue 10's bounds hold on every live channel: an accusation cannot hold a Closing channel past
    /// T_closure + T_ack, its posting limit is never after its answer deadline, and no posted claim goes
    /// past the seller's recorded Stop (it would have been refused, or punished when the Stop came later).
    function invariant_disputesAndStopsAreBounded() public view {
        uint256 n = handler.idsLength();
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = handler.ids(i);
            ISupraJudge.ChannelInfo memory c = judge.channel(id);
            if (c.status == ISupraJudge.Status.Settled) continue;
            ISupraJudge.ChannelTiming memory t = judge.channelTiming(id);
            if (c.disputeDeadline != 0) {
                assertLe(t.disputePostBy, c.disputeDeadline, "postBy <= deadline");
                if (c.status == ISupraJudge.Status.Closing) {
                    assertLe(c.disputeDeadline, uint256(c.closeRequestedAt) + c.tClosure + c.tAck, "bounded delay");
                }
            }
            if (t.sellerStopped) assertLe(c.postedClaim, t.sellerStopCount, "no posted claim past the Stop");
        }
    }
}

/// @dev Issue 14: the same invariants with every channel priced and funded in an ERC-20 with permit
///      (OpenZeppelin's ERC20Permit): payouts never exceed deposits, R is what the seller received, and the
///      judge's token balance is exactly the sum of the live channels' F - R (conservation); the judge's
///      ether balance stays zero.
contract SupraJudgeTokenInvariantTest is SupraJudgeInvariantTest {
    function _currency() internal override returns (SupraTestToken) {
        return new SupraTestToken();
    }

    function invariant_noEtherMoves() public view {
        assertEq(address(judge).balance, 0, "a token judge holds no ether");
    }
}
