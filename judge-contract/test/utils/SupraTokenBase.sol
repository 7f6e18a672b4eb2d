// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Offer} from "../../contracts/SupraTypes.sol";
import {SupraTestToken} from "../../contracts/SupraTestToken.sol";
import {vm} from "./Vm.sol";
import {SupraTestBase} from "./SupraTestBase.sol";

/// @dev The fixture of the token tests (issue 14): SupraTestToken (OpenZeppelin ERC20Permit, 6 decimals) with
///      the buyer funded, offers priced in it, and EIP-2612 permit signatures.
abstract contract SupraTokenBase is SupraTestBase {
    uint256 internal constant TOKEN_PRICE = 1_000; // 0.001 tUSD per message
    uint256 internal constant TOKEN_DEPOSIT = 100 * TOKEN_PRICE;

    SupraTestToken internal usd;

    function setUp() public virtual override {
        super.setUp();
        usd = new SupraTestToken();
        vm.label(address(usd), "tUSD");
        usd.mint(buyer, 1_000_000e6);
    }

    /// @dev An offer priced in `token`.
    function offerIn(address token, uint64 startSeq) internal returns (Offer memory o) {
        o = makeOffer(startSeq);
        o.token = token;
        o.price = TOKEN_PRICE;
    }

    function permitDigest(SupraTestToken token, address owner, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                owner,
                spender,
                value,
                token.nonces(owner),
                deadline
            )
        );
        return keccak256(abi.encodePacked(hex"1901", token.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev `pk`'s permit of `value` tokens from the buyer to the judge.
    function permitBy(uint256 pk, uint256 value, uint256 deadline) internal view returns (uint8 v, bytes32 r, bytes32 s) {
        (v, r, s) = vm.sign(pk, permitDigest(usd, buyer, address(judge), value, deadline));
    }

    /// @dev Opens `o` (priced in tUSD) with the buyer's permit of `amount`, in one transaction.
    function openWithPermitOf(Offer memory o, uint256 amount) internal returns (uint256 id) {
        bytes memory sig = signOffer(o);
        uint256 deadline = block.timestamp + 600;
        (uint8 v, bytes32 r, bytes32 s) = permitBy(BUYER_PK, amount, deadline);
        vm.prank(o.buyer);
        id = judge.openWithPermit(o, sig, amount, deadline, v, r, s);
    }

    function openToken(uint64 startSeq) internal returns (uint256 id, Offer memory o) {
        o = offerIn(address(usd), startSeq);
        id = openWithPermitOf(o, TOKEN_DEPOSIT);
    }
}
