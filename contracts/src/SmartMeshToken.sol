// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title SmartMeshToken (SMT)
/// @notice Fixed-supply ERC-20 with EIP-2612 `permit` and a signed authorized payment agent:
/// a holder without ETH signs a `TransferWithFee` authorization and the named agent submits it,
/// paying the gas and receiving `fee` in SMT. All arithmetic is checked (CVE-2018-10376).
/// EIP-712 domain: name "SmartMesh Token", version "1", chain id, this contract.
contract SmartMeshToken is ERC20Permit {
    /// @notice keccak256 of the TransferWithFee type string.
    bytes32 public constant TRANSFER_WITH_FEE_TYPEHASH = keccak256(
        "TransferWithFee(address from,address to,uint256 value,uint256 fee,address agent,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice keccak256 of the CancelAuthorization type string.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    /// @dev authorizer => nonce => used or cancelled
    mapping(address authorizer => mapping(bytes32 nonce => bool)) private _authorizationStates;

    /// @notice An authorization was executed.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice An authorization was cancelled before use.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice `msg.sender` is not the agent named in the authorization.
    error CallerNotAgent(address caller, address agent);
    /// @notice The authorization is not valid yet (`now <= validAfter`).
    error AuthorizationNotYetValid(uint256 now, uint256 validAfter);
    /// @notice The authorization has expired (`now >= validBefore`).
    error AuthorizationExpired(uint256 now, uint256 validBefore);
    /// @notice The `(authorizer, nonce)` pair was already used or cancelled.
    error AuthorizationAlreadyUsed(address authorizer, bytes32 nonce);
    /// @notice The signature does not recover to the expected signer.
    error InvalidSigner(address signer, address expected);
    /// @notice `value + fee` does not fit in uint256.
    error AmountOverflow(uint256 value, uint256 fee);

    /// @param initialSupply whole supply in base units (default 3,141,592,653 * 10^18)
    /// @param holder receives the whole supply
    constructor(uint256 initialSupply, address holder) ERC20("SmartMesh Token", "SMT") ERC20Permit("SmartMesh Token") {
        _mint(holder, initialSupply);
    }

    /// @notice True iff `nonce` of `authorizer` was used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationStates[authorizer][nonce];
    }

    /// @notice Executes `from`'s signed authorization: moves `value` to `to` and `fee` to `agent`.
    /// Only `agent` may submit; valid while `validAfter < block.timestamp < validBefore`.
    function transferWithFee(
        address from,
        address to,
        uint256 value,
        uint256 fee,
        address agent,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        if (msg.sender != agent) revert CallerNotAgent(msg.sender, agent);
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(block.timestamp, validAfter);
        if (block.timestamp >= validBefore) revert AuthorizationExpired(block.timestamp, validBefore);
        if (_authorizationStates[from][nonce]) revert AuthorizationAlreadyUsed(from, nonce);
        if (value > type(uint256).max - fee) revert AmountOverflow(value, fee);
        uint256 total = value + fee; // checked as well
        bytes32 structHash = keccak256(
            abi.encode(TRANSFER_WITH_FEE_TYPEHASH, from, to, value, fee, agent, validAfter, validBefore, nonce)
        );
        address signer = ECDSA.recoverCalldata(_hashTypedDataV4(structHash), signature);
        if (signer != from) revert InvalidSigner(signer, from);
        uint256 balance = balanceOf(from);
        if (balance < total) revert ERC20InsufficientBalance(from, balance, total);

        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
        if (fee != 0) _transfer(from, agent, fee);
    }

    /// @notice Cancels `authorizer`'s unused authorization `nonce` with its signed
    /// `CancelAuthorization`; anyone may submit.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external {
        if (_authorizationStates[authorizer][nonce]) revert AuthorizationAlreadyUsed(authorizer, nonce);
        bytes32 structHash = keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce));
        address signer = ECDSA.recoverCalldata(_hashTypedDataV4(structHash), signature);
        if (signer != authorizer) revert InvalidSigner(signer, authorizer);
        _authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }
}
