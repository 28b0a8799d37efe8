// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {VestingWallet} from "@openzeppelin/contracts/finance/VestingWallet.sol";
import {VestingWalletCliff} from "@openzeppelin/contracts/finance/VestingWalletCliff.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title SmartMeshVesting
/// @notice An OpenZeppelin `VestingWalletCliff` whose linear schedule is released in whole steps
/// of `releasePeriod` seconds counted from `start` (a quarter is 7,889,400 s). Nothing is
/// vested before `start + cliffSeconds`; everything is vested at `start + duration`.
/// Between the two, vested = total * floor((t - start) / releasePeriod) * releasePeriod / duration.
contract SmartMeshVesting is VestingWalletCliff {
    /// @notice The release period is zero.
    error InvalidReleasePeriod(uint64 releasePeriod);

    uint64 private immutable _releasePeriod;

    /// @param beneficiary owner of the wallet, receives released funds
    /// @param startTimestamp vesting start (seconds)
    /// @param durationSeconds vesting duration (seconds)
    /// @param cliffSeconds cliff length counted from `startTimestamp` (<= duration)
    /// @param releasePeriodSeconds size of one release step (> 0)
    constructor(
        address beneficiary,
        uint64 startTimestamp,
        uint64 durationSeconds,
        uint64 cliffSeconds,
        uint64 releasePeriodSeconds
    ) VestingWallet(beneficiary, startTimestamp, durationSeconds) VestingWalletCliff(cliffSeconds) {
        if (releasePeriodSeconds == 0) revert InvalidReleasePeriod(releasePeriodSeconds);
        _releasePeriod = releasePeriodSeconds;
    }

    /// @notice Size of one release step in seconds.
    function releasePeriod() public view returns (uint256) {
        return _releasePeriod;
    }

    /// @dev Stepped linear schedule; the cliff is enforced by `VestingWalletCliff` first.
    function _vestingSchedule(uint256 totalAllocation, uint64 timestamp) internal view override returns (uint256) {
        if (timestamp < cliff()) return 0;
        uint256 s = start();
        if (timestamp < s) return 0;
        if (timestamp >= end()) return totalAllocation;
        uint256 elapsed = timestamp - s;
        uint256 stepped = elapsed - (elapsed % _releasePeriod);
        return Math.mulDiv(totalAllocation, stepped, duration());
    }
}
