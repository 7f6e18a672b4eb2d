// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @dev Tokens that misbehave, for the judge's token tests (issue 14).

/// @dev `transfer` returns false (moving nothing) while `failing` is set; `transferFrom` works, so deposits
///      arrive and only payouts fail.
contract FalseToken is ERC20 {
    bool public failing;

    constructor() ERC20("False", "FALSE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setFailing(bool f) external {
        failing = f;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        if (failing) return false;
        return super.transfer(to, value);
    }
}

/// @dev Burns 1% of every transfer (a fee-on-transfer token).
contract FeeToken is ERC20 {
    constructor() ERC20("Fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

interface ITransferHook {
    function onTransfer(address from, address to, uint256 value) external;
}

/// @dev Calls `hook` before every transfer between accounts (as ERC-777's tokensToSend hook does): the hook
///      may re-enter the judge in the middle of a deposit or a payout.
contract HookToken is ERC20 {
    ITransferHook public hook;
    bool private _inHook;

    constructor() ERC20("Hook", "HOOK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setHook(ITransferHook h) external {
        hook = h;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (address(hook) != address(0) && from != address(0) && to != address(0) && !_inHook) {
            _inHook = true;
            hook.onTransfer(from, to, value);
            _inHook = false;
        }
        super._update(from, to, value);
    }
}
