// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISupraJudge} from "../../contracts/ISupraJudge.sol";
import {Offer, Message, Batch, BatchProof, Ack, Stop, PeerAuth} from "../../contracts/SupraTypes.sol";
import {vm} from "./Vm.sol";
import {Assertions} from "./Assertions.sol";
import {MerkleBuilder} from "./MerkleBuilder.sol";

/// @dev Shared fixture: a judge, a seller with one stream, a buyer, signing helpers, and an independent
///      (field-by-field) EIP-712 implementation used to check the judge's hash views and to forge
///      signatures for other domains.
abstract contract SupraTestBase is Assertions {
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant START_TIME = 1_700_000_000;

    uint256 internal constant SELLER_PK = 0x5E11E7;
    uint256 internal constant BUYER_PK = 0xB0B;
    uint256 internal constant OTHER_PK = 0x07E7;

    uint256 internal constant PRICE = 1e12; // wei per message
    uint64 internal constant WINDOW = 8;
    uint32 internal constant T_ACK = 60;
    uint32 internal constant T_CLOSURE = 3600;
    uint256 internal constant DEPOSIT = 100 * PRICE;

    ISupraJudge internal judge;
    address internal seller;
    address internal buyer;
    address internal other;
    bytes32 internal streamId;
    uint256 internal nonce;

    /// The stream's signed chain, seq 0.., built on demand by `ensureChain`.
    Message[] internal chain;
    bytes[] internal payloads;

    function setUp() public virtual {
        vm.warp(START_TIME);
        // Deployed from its artifact: the judge is compiled alone with via-IR (foundry.toml), tests are not.
        judge = ISupraJudge(vm.deployCode("contracts/SupraJudge.sol:SupraJudge"));
        seller = vm.addr(SELLER_PK);
        buyer = vm.addr(BUYER_PK);
        other = vm.addr(OTHER_PK);
        vm.label(seller, "seller");
        vm.label(buyer, "buyer");
        vm.label(other, "other");
        vm.label(address(judge), "judge");
        // Brokers pay their own gas, so their accounts exist (a payout to an empty account costs 25k more).
        vm.deal(seller, 1 ether);
        vm.deal(buyer, 1000 ether);
        vm.deal(other, 1000 ether);
        streamId = streamOf(seller, 1);
    }

    // --------------------------------------------------------------------------------------------
    // Offers and channels
    // --------------------------------------------------------------------------------------------

    function streamOf(address s, uint96 number) internal pure returns (bytes32) {
        return bytes32((uint256(uint160(s)) << 96) | number);
    }

    function makeOffer(uint64 startSeq) internal returns (Offer memory o) {
        o = Offer({
            streamId: streamId,
            seller: seller,
            buyer: buyer,
            price: PRICE,
            token: address(0),
            window: WINDOW,
            startSeq: startSeq,
            tAck: T_ACK,
            tClosure: T_CLOSURE,
            validUntil: uint64(block.timestamp + 600),
            nonce: uint256(keccak256(abi.encode("nonce", ++nonce))) // random-looking, as a broker's
        });
    }

    function sign(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The same signature with s' = n - s and the other v: valid for ecrecover, rejected by the judge.
    function highS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function split(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
    }

    function signOffer(Offer memory o) internal view returns (bytes memory) {
        return sign(SELLER_PK, judge.hashOffer(o));
    }

    function openWith(Offer memory o, uint256 deposit) internal returns (uint256 id) {
        bytes memory sig = signOffer(o);
        vm.prank(o.buyer);
        id = judge.open{value: deposit}(o, sig);
    }

    function openDefault(uint64 startSeq) internal returns (uint256 id, Offer memory o) {
        o = makeOffer(startSeq);
        id = openWith(o, DEPOSIT);
    }

    function costOf(Offer memory o, uint64 seq) internal pure returns (uint256) {
        return (uint256(seq) - o.startSeq + 1) * o.price;
    }

    // --------------------------------------------------------------------------------------------
    // The stream's chain
    // --------------------------------------------------------------------------------------------

    function payloadFor(uint64 seq, uint256 len) internal pure returns (bytes memory p) {
        p = new bytes(len);
        bytes32 seed = keccak256(abi.encode("payload", seq));
        for (uint256 i = 0; i < len; ++i) {
            p[i] = seed[i % 32];
        }
    }

    /// @dev Extends the chain up to `upto` (inclusive) with 64-byte payloads, messages timestamped now.
    function ensureChain(uint64 upto) internal {
        while (chain.length <= upto) {
            uint64 seq = uint64(chain.length);
            bytes32 prev = seq == 0 ? bytes32(0) : judge.hashMessage(chain[seq - 1]);
            bytes memory payload = payloadFor(seq, 64);
            chain.push(
                Message({
                    streamId: streamId,
                    seq: seq,
                    timestamp: uint64(block.timestamp) * 1000,
                    payloadHash: keccak256(payload),
                    prev: prev
                })
            );
            payloads.push(payload);
        }
    }

    /// @dev The seller's proof of `m` as a batch of one message (root = its digest, empty path).
    function msgProof(Message memory m) internal view returns (BatchProof memory) {
        return singleProof(SELLER_PK, m);
    }

    /// @dev `pk`'s proof of `m` as a batch of one message.
    function singleProof(uint256 pk, Message memory m) internal view returns (BatchProof memory p) {
        p.batch = Batch({streamId: m.streamId, firstSeq: m.seq, lastSeq: m.seq, root: judge.hashMessage(m)});
        p.sig = sign(pk, judge.hashBatch(p.batch));
        p.path = new bytes32[](0);
    }

    /// @dev One seller-signed batch over `ms` (consecutive seqs of one stream): every message's proof, in order.
    function batchProofs(Message[] memory ms) internal view returns (BatchProof[] memory) {
        return batchProofsBy(SELLER_PK, ms);
    }

    function batchProofsBy(uint256 pk, Message[] memory ms) internal view returns (BatchProof[] memory proofs) {
        bytes32[] memory leaves = new bytes32[](ms.length);
        for (uint256 i = 0; i < ms.length; ++i) {
            leaves[i] = judge.hashMessage(ms[i]);
        }
        Batch memory b = Batch({
            streamId: ms[0].streamId,
            firstSeq: ms[0].seq,
            lastSeq: ms[ms.length - 1].seq,
            root: merkleRoot(leaves)
        });
        bytes memory sig = sign(pk, judge.hashBatch(b));
        proofs = new BatchProof[](ms.length);
        for (uint256 i = 0; i < ms.length; ++i) {
            proofs[i] = BatchProof({batch: b, sig: sig, path: merklePath(leaves, i)});
        }
    }

    /// @dev The seller's proofs of chain[first..=last] under one batch.
    function chainBatch(uint64 first, uint64 last) internal returns (BatchProof[] memory) {
        ensureChain(last);
        Message[] memory ms = new Message[](last - first + 1);
        for (uint64 s = first; s <= last; ++s) {
            ms[s - first] = chain[s];
        }
        return batchProofs(ms);
    }

    /// @dev `n` linked messages of `sid` from seq `first` (after `prev`) with 64-byte payloads, in memory only.
    function memChain(bytes32 sid, uint64 first, uint256 n, bytes32 prev)
        internal
        view
        returns (Message[] memory ms, bytes[] memory ps)
    {
        ms = new Message[](n);
        ps = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            ps[i] = payloadFor(uint64(first + i), 64);
            ms[i] = Message({
                streamId: sid,
                seq: uint64(first + i),
                timestamp: uint64(block.timestamp) * 1000,
                payloadHash: keccak256(ps[i]),
                prev: prev
            });
            prev = judge.hashMessage(ms[i]);
        }
    }

    /// @dev The seller's proof of `ms[index]` under one batch over all of `ms` (one path only).
    function proofAt(Message[] memory ms, uint256 index) internal view returns (BatchProof memory p) {
        bytes32[] memory leaves = new bytes32[](ms.length);
        for (uint256 i = 0; i < ms.length; ++i) {
            leaves[i] = judge.hashMessage(ms[i]);
        }
        p.batch = Batch({
            streamId: ms[0].streamId,
            firstSeq: ms[0].seq,
            lastSeq: ms[ms.length - 1].seq,
            root: MerkleBuilder.root(leaves)
        });
        p.sig = sign(SELLER_PK, judge.hashBatch(p.batch));
        p.path = MerkleBuilder.path(leaves, index);
    }

    function merkleRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        return MerkleBuilder.root(leaves);
    }

    function merklePath(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory) {
        return MerkleBuilder.path(leaves, index);
    }

    function digestOf(uint64 seq) internal returns (bytes32) {
        ensureChain(seq);
        return judge.hashMessage(chain[seq]);
    }

    function postSeq(uint64 seq) internal {
        ensureChain(seq);
        judge.post(chain[seq], payloads[seq], msgProof(chain[seq]));
    }

    /// @dev An ack for `seq`; its digest is message seq's when the chain already has it (the judge never
    ///      reads Ack.digest, so tests with long ack sequences need not build the chain).
    function makeAck(uint256 id, uint64 seq, uint256 cost) internal view returns (Ack memory) {
        bytes32 digest = seq < chain.length ? judge.hashMessage(chain[seq]) : keccak256(abi.encode("digest", seq));
        return Ack({channelId: id, seq: seq, digest: digest, cost: cost, timestamp: uint64(block.timestamp) * 1000});
    }

    function ackSig(Ack memory a) internal view returns (bytes memory) {
        return sign(BUYER_PK, judge.hashAck(a));
    }

    function claimAck(uint256 id, Offer memory o, uint64 seq) internal returns (Ack memory a) {
        a = makeAck(id, seq, costOf(o, seq));
        judge.claim(a, ackSig(a));
    }

    // --------------------------------------------------------------------------------------------
    // Independent EIP-712
    // --------------------------------------------------------------------------------------------

    function domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Supra"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
    }

    function typedDigest(bytes32 separator, bytes32 hashStruct) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", separator, hashStruct));
    }

    function ownDigest(bytes32 hashStruct) internal view returns (bytes32) {
        return typedDigest(domainSeparator(block.chainid, address(judge)), hashStruct);
    }

    function structHash(Offer memory o) internal pure returns (bytes32) {
        bytes memory enc = abi.encodePacked(
            keccak256(
                "Offer(bytes32 streamId,address seller,address buyer,uint256 price,address token,uint64 window,uint64 startSeq,uint32 tAck,uint32 tClosure,uint64 validUntil,uint256 nonce)"
            ),
            o.streamId,
            uint256(uint160(o.seller)),
            uint256(uint160(o.buyer)),
            o.price,
            uint256(uint160(o.token)),
            uint256(o.window),
            uint256(o.startSeq)
        );
        return keccak256(abi.encodePacked(enc, uint256(o.tAck), uint256(o.tClosure), uint256(o.validUntil), o.nonce));
    }

    function structHash(Message memory m) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                keccak256("Message(bytes32 streamId,uint64 seq,uint64 timestamp,bytes32 payloadHash,bytes32 prev)"),
                m.streamId,
                uint256(m.seq),
                uint256(m.timestamp),
                m.payloadHash,
                m.prev
            )
        );
    }

    function structHash(Batch memory b) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                keccak256("Batch(bytes32 streamId,uint64 firstSeq,uint64 lastSeq,bytes32 root)"),
                b.streamId,
                uint256(b.firstSeq),
                uint256(b.lastSeq),
                b.root
            )
        );
    }

    function structHash(Ack memory a) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                keccak256("Ack(uint256 channelId,uint64 seq,bytes32 digest,uint256 cost,uint64 timestamp)"),
                a.channelId,
                uint256(a.seq),
                a.digest,
                a.cost,
                uint256(a.timestamp)
            )
        );
    }

    function structHash(Stop memory s) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                keccak256("Stop(uint256 channelId,uint64 seq,uint64 timestamp)"),
                s.channelId,
                uint256(s.seq),
                uint256(s.timestamp)
            )
        );
    }

    function structHash(PeerAuth memory p) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                keccak256("PeerAuth(address from,address to,bytes32 nonceFrom,bytes32 nonceTo)"),
                uint256(uint160(p.from)),
                uint256(uint160(p.to)),
                p.nonceFrom,
                p.nonceTo
            )
        );
    }

    function status(uint256 id) internal view returns (ISupraJudge.Status) {
        return judge.channel(id).status;
    }

    function assertStatus(uint256 id, ISupraJudge.Status expected, string memory what) internal view {
        assertEq(uint256(judge.channel(id).status), uint256(expected), what);
    }
}
