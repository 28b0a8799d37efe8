// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken (TEST ONLY)
/// @notice An ERC-20 with free minting whose `transfer`/`transferFrom` call `target` with
/// `callData` once after the balance update (the hook disarms itself before calling, so it
/// does not recurse), bubbling up the callee's revert data. Used to test that TokenNetwork
/// rejects reentrant calls (expect `ReentrancyGuardReentrantCall`).
contract ReentrantToken is ERC20 {
    /// @notice Contract called from inside transfer/transferFrom (0 = disarmed).
    address public target;
    /// @notice Calldata sent to `target`.
    bytes public callData;

    constructor() ERC20("Reentrant Token", "RET") {}

    /// @notice Mints `amount` to `to` (anyone may call).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the hook: the next transfer/transferFrom calls `target_` with `callData_`.
    function setReentry(address target_, bytes calldata callData_) external {
        target = target_;
        callData = callData_;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        bool ok = super.transfer(to, value);
        _reenter();
        return ok;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        bool ok = super.transferFrom(from, to, value);
        _reenter();
        return ok;
    }

    function _reenter() private {
        address t = target;
        if (t == address(0)) return;
        target = address(0);
        (bool success, bytes memory ret) = t.call(callData);
        if (!success) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }
}
