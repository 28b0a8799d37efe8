// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title SecretRegistry
/// @notice Records when the preimage (secret) of a hash lock was first revealed on chain.
/// A lock with hash `keccak256(abi.encodePacked(secret))` is claimable on chain iff its secret
/// was registered no later than the lock's expiration.
contract SecretRegistry {
    /// @dev secrethash => block.timestamp of the first registration (0 if never registered).
    mapping(bytes32 secrethash => uint256 revealTime) private _revealTime;

    /// @notice A secret was registered for the first time.
    event SecretRevealed(bytes32 indexed secrethash, bytes32 secret);

    /// @notice Registers `secret`. Returns false (and changes nothing) if the secret is zero or
    /// was already registered.
    function registerSecret(bytes32 secret) public returns (bool) {
        if (secret == bytes32(0)) return false;
        bytes32 secrethash = keccak256(abi.encodePacked(secret));
        if (_revealTime[secrethash] != 0) return false;
        _revealTime[secrethash] = block.timestamp;
        emit SecretRevealed(secrethash, secret);
        return true;
    }

    /// @notice Registers every secret; returns true iff all of them were newly registered.
    function registerSecretBatch(bytes32[] calldata secrets) external returns (bool) {
        bool all = true;
        for (uint256 i = 0; i < secrets.length; ++i) {
            if (!registerSecret(secrets[i])) all = false;
        }
        return all;
    }

    /// @notice The block.timestamp at which the secret of `secrethash` was registered, 0 if never.
    function getSecretRevealTime(bytes32 secrethash) external view returns (uint256) {
        return _revealTime[secrethash];
    }
}
