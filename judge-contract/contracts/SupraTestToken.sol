// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title SupraTestToken
/// @notice A test stablecoin for devnets and tests: OpenZeppelin's ERC-20 with EIP-2612 permit, 6 decimals
///         (as USDC), and a `mint` open to anyone. Never deploy it where it could be mistaken for money.
contract SupraTestToken is ERC20, ERC20Permit {
    constructor() ERC20("Supra Test USD", "tUSD") ERC20Permit("Supra Test USD") {}

    /// @notice 6, as USDC.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` to `to` (anyone may: a test token).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
