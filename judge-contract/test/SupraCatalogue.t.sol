// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SupraCatalogue} from "../contracts/SupraCatalogue.sol";
import {vm, Vm} from "./utils/Vm.sol";
import {Assertions} from "./utils/Assertions.sol";

/// @dev A catalogue, a seller's stream and a realistic ad.
abstract contract CatalogueFixture is Assertions {
    SupraCatalogue internal cat;
    address internal seller = address(0x5E11E7);
    address internal other = address(0x07E7);
    address internal constant JUDGE = address(0x7D6E);
    bytes32 internal streamId;

    function setUp() public {
        cat = new SupraCatalogue(JUDGE);
        streamId = bytes32((uint256(uint160(seller)) << 96) | 1);
    }

    function ad(bytes32 sid) internal pure returns (SupraCatalogue.Ad memory a) {
        a = SupraCatalogue.Ad({
            streamId: sid,
            topicFilter: "sensors/+/temperature",
            price: 1_000,
            token: address(0x05D),
            window: 64,
            tAck: 60,
            tClosure: 3600,
            endpoint: "203.0.113.7:7883",
            description: "Outdoor temperature, 1 Hz, Lausanne"
        });
    }

    function bytesOf(uint256 n) internal pure returns (string memory) {
        bytes memory b = new bytes(n);
        for (uint256 i = 0; i < n; ++i) {
            b[i] = "a";
        }
        return string(b);
    }
}

/// @dev Issue 14's offer catalogue: only a stream's seller (the stream id's high 20 bytes) announces, updates
///      or withdraws its ad; string bounds; the events carry the whole ad.
contract SupraCatalogueTest is CatalogueFixture {
    function test_judge() public view {
        assertEq(cat.JUDGE(), JUDGE, "judge");
    }

    function test_announce_emitsTheAd() public {
        SupraCatalogue.Ad memory a = ad(streamId);
        vm.recordLogs();
        vm.prank(seller);
        cat.announce(a);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one event");
        assertEq(logs[0].topics[0], SupraCatalogue.Announced.selector, "Announced");
        assertEq(logs[0].topics[1], streamId, "indexed stream");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(seller))), "indexed seller");
        SupraCatalogue.Ad memory got = abi.decode(logs[0].data, (SupraCatalogue.Ad));
        assertEq(keccak256(abi.encode(got)), keccak256(abi.encode(a)), "the whole ad");
    }

    function test_updateAndWithdraw_bySeller() public {
        vm.startPrank(seller);
        cat.announce(ad(streamId));
        SupraCatalogue.Ad memory a = ad(streamId);
        a.price = 2_000;
        vm.expectEmit(address(cat));
        emit SupraCatalogue.Announced(streamId, seller, a);
        cat.announce(a);
        vm.expectEmit(address(cat));
        emit SupraCatalogue.Withdrawn(streamId, seller);
        cat.withdraw(streamId);
        vm.stopPrank();
    }

    function test_someoneElsesStream_isRefused() public {
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.NotSeller.selector, other, seller));
        cat.announce(ad(streamId));
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.NotSeller.selector, other, seller));
        cat.withdraw(streamId);
        // A stream id whose low 12 bytes differ is still the seller's; one whose high 20 bytes differ is not.
        vm.prank(seller);
        cat.announce(ad(bytes32((uint256(uint160(seller)) << 96) | type(uint96).max)));
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.NotSeller.selector, seller, other));
        cat.announce(ad(bytes32((uint256(uint160(other)) << 96) | 1)));
    }

    function testFuzz_onlyTheStreamsSellerAnnounces(address caller, bytes32 sid) public {
        address owner = address(bytes20(sid));
        SupraCatalogue.Ad memory a = ad(sid);
        vm.prank(caller);
        if (caller != owner) {
            vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.NotSeller.selector, caller, owner));
        }
        cat.announce(a);
    }

    function test_bounds() public {
        SupraCatalogue.Ad memory a = ad(streamId);
        vm.startPrank(seller);
        a.topicFilter = "";
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.BadTopicFilter.selector, 0, 256));
        cat.announce(a);
        a.topicFilter = bytesOf(257);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.BadTopicFilter.selector, 257, 256));
        cat.announce(a);
        a.topicFilter = bytesOf(256);
        a.endpoint = "";
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.BadEndpoint.selector, 0, 128));
        cat.announce(a);
        a.endpoint = bytesOf(129);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.BadEndpoint.selector, 129, 128));
        cat.announce(a);
        a.endpoint = bytesOf(128);
        a.description = bytesOf(281);
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.DescriptionTooLong.selector, 281, 280));
        cat.announce(a);
        a.description = bytesOf(280);
        cat.announce(a); // every field at its bound
        a.price = 0;
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.InvalidTerms.selector, 0, 64, 60, 3600));
        cat.announce(a);
        a.price = 1;
        a.window = 0;
        vm.expectRevert(abi.encodeWithSelector(SupraCatalogue.InvalidTerms.selector, 1, 0, 60, 3600));
        cat.announce(a);
        vm.stopPrank();
    }
}

/// @dev The catalogue's gas, asserted (isolate mode: each call is its own transaction, 21 000 base and
///      calldata included): announce <= 35 000 for the realistic ad of {ad} (21-byte topic filter, 16-byte
///      endpoint, 35-byte description), update (the same call again) the same, withdraw <= 24 000.
/// forge-config: default.isolate = true
contract SupraCatalogueGasTest is CatalogueFixture {
    uint256 internal constant BUDGET_ANNOUNCE = 35_000;
    uint256 internal constant BUDGET_ANNOUNCE_LONGEST = 60_000;
    uint256 internal constant BUDGET_WITHDRAW = 24_000;

    event GasUsed(string what, uint256 gas, uint256 budget);

    function within(string memory what, uint256 budget) internal {
        uint256 used = vm.lastCallGas().gasTotalUsed;
        emit GasUsed(what, used, budget);
        assertLe(used, budget, what);
    }

    function test_gas_catalogue() public {
        SupraCatalogue.Ad memory a = ad(streamId);
        vm.prank(seller);
        cat.announce(a);
        within("announce", BUDGET_ANNOUNCE);
        a.price = 2_000;
        vm.prank(seller);
        cat.announce(a);
        within("update (announce again)", BUDGET_ANNOUNCE);
        vm.prank(seller);
        cat.withdraw(streamId);
        within("withdraw", BUDGET_WITHDRAW);
        a.topicFilter = bytesOf(256);
        a.endpoint = bytesOf(128);
        a.description = bytesOf(280);
        vm.prank(seller);
        cat.announce(a);
        within("announce, every string at its bound", BUDGET_ANNOUNCE_LONGEST);
    }
}
