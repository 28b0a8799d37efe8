// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SecretRegistry} from "./SecretRegistry.sol";

/// @title TokenNetwork
/// @notice Payment channels for one ERC-20 token. Each channel is stored as one word, the hash of
/// its `Channel` struct; every call that changes a channel passes the current struct in calldata.
/// See contracts/README.md for the protocol (penalty rule, settlement formula).
/// EIP-712 domain: name "SmartMesh TokenNetwork", version "1", chain id, this contract.
contract TokenNetwork is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice One participant's balance proof data (what it sent to its partner).
    struct Balance {
        uint64 nonce;
        uint256 transferredAmount;
        uint256 lockedAmount;
        bytes32 locksroot;
    }

    /// @notice The full channel state; `channelHash[id] == keccak256(abi.encode(channel))`.
    struct Channel {
        address participant1;
        address participant2;
        uint64 settleTimeout;
        uint64 closedAt;
        address closer;
        bool confirmed;
        uint256 deposit1;
        uint256 deposit2;
        uint256 withdrawn1;
        uint256 withdrawn2;
        Balance closerBalance;
        Balance partnerBalance;
    }

    /// @notice keccak256 of the BalanceProof type string.
    bytes32 public constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(uint256 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksroot,bytes32 messageHash)"
    );
    /// @notice keccak256 of the UpdateAuthorization type string.
    bytes32 public constant UPDATE_AUTHORIZATION_TYPEHASH =
        keccak256("UpdateAuthorization(uint256 channelId,address closer,bytes32 balanceProofDigest)");
    /// @notice keccak256 of the WithdrawProof type string.
    bytes32 public constant WITHDRAW_PROOF_TYPEHASH =
        keccak256("WithdrawProof(uint256 channelId,address participant,uint256 totalWithdraw,uint256 expiration)");
    /// @notice keccak256 of the CooperativeSettle type string.
    bytes32 public constant COOPERATIVE_SETTLE_TYPEHASH = keccak256(
        "CooperativeSettle(uint256 channelId,address participant1,uint256 balance1,address participant2,uint256 balance2)"
    );
    /// @notice keccak256 of the DepositAuthorization type string.
    bytes32 public constant DEPOSIT_AUTHORIZATION_TYPEHASH = keccak256(
        "DepositAuthorization(uint256 channelId,address participant,uint256 totalDeposit,address agent,uint256 fee,uint256 deadline)"
    );

    /// @notice Size in bytes of one packed lock: expiration, amount, secrethash.
    uint256 private constant LOCK_SIZE = 96;

    // ABI layout of `Channel` (every field is one 32-byte word; Balance is 4 words).
    uint256 private constant CHANNEL_SIZE = 0x240;
    uint256 private constant OFF_PARTICIPANT2 = 0x20;
    uint256 private constant OFF_SETTLE_TIMEOUT = 0x40;
    uint256 private constant OFF_CLOSED_AT = 0x60;
    uint256 private constant OFF_CLOSER = 0x80;
    uint256 private constant OFF_CONFIRMED = 0xa0;
    uint256 private constant OFF_DEPOSIT1 = 0xc0;
    uint256 private constant OFF_DEPOSIT2 = 0xe0;
    uint256 private constant OFF_WITHDRAWN1 = 0x100;
    uint256 private constant OFF_WITHDRAWN2 = 0x120;
    uint256 private constant OFF_CLOSER_BALANCE = 0x140;
    uint256 private constant OFF_PARTNER_BALANCE = 0x1c0;

    /// @notice The token of this network.
    IERC20 public immutable token;
    /// @notice The registry consulted by `unlock`.
    SecretRegistry public immutable secretRegistry;
    /// @notice Smallest allowed settle timeout (seconds).
    uint64 public immutable minSettleTimeout;
    /// @notice Largest allowed settle timeout (seconds).
    uint64 public immutable maxSettleTimeout;

    /// @dev Next channel id; starts at 1 (written in the constructor so opening never pays for a
    /// zero-to-nonzero store of the counter).
    uint256 private _nextChannelId;

    /// @notice channel id => keccak256(abi.encode(Channel)); zero when unused or finished.
    mapping(uint256 id => bytes32) public channelHash;

    /// @notice keccak256(abi.encode(id, sender, receiver, locksroot)) => amount retained at
    /// settlement for `unlock`.
    mapping(bytes32 key => uint256 amount) public pendingLocks;

    /// @notice A channel was opened.
    event ChannelOpened(
        uint256 indexed id, address indexed participant1, address indexed participant2, uint64 settleTimeout
    );
    /// @notice A participant's total deposit was raised to `totalDeposit`.
    event ChannelDeposit(uint256 indexed id, address indexed participant, uint256 totalDeposit);
    /// @notice A participant's total withdrawal was raised to `totalWithdraw`.
    event ChannelWithdraw(uint256 indexed id, address indexed participant, uint256 totalWithdraw);
    /// @notice The channel was closed by `closer` at `closedAt` with these balance data.
    event ChannelClosed(
        uint256 indexed id, address indexed closer, uint64 closedAt, Balance closerBalance, Balance partnerBalance
    );
    /// @notice The non-closer confirmed the closer's declared balance proof (`confirmed = true`).
    event NonClosingBalanceProofUpdated(uint256 indexed id, address indexed closer, uint64 nonce);
    /// @notice The closer lied; `amount` (the whole remaining deposit) went to `beneficiary` and the
    /// channel is finished.
    event ChannelPenalized(uint256 indexed id, address indexed beneficiary, uint256 amount);
    /// @notice The channel was settled: `amount1` paid to participant1 and `amount2` to participant2
    /// (pending locks are retained for `unlock`). The channel is finished.
    event ChannelSettled(uint256 indexed id, uint256 amount1, uint256 amount2);
    /// @notice The channel was settled cooperatively and is finished.
    event CooperativeSettled(uint256 indexed id, uint256 amount1, uint256 amount2);
    /// @notice Pending locks were resolved: `unlockedAmount` to `receiver`, `returnedAmount` to `sender`.
    event ChannelUnlocked(
        uint256 indexed id,
        address indexed sender,
        address indexed receiver,
        bytes32 locksroot,
        uint256 unlockedAmount,
        uint256 returnedAmount
    );

    /// @notice A constructor argument is the zero address / has no code.
    error InvalidAddress(address account);
    /// @notice `minSettleTimeout` is zero or larger than `maxSettleTimeout`.
    error InvalidSettleTimeoutRange(uint64 minSettleTimeout, uint64 maxSettleTimeout);
    /// @notice The requested settle timeout is outside [min, max].
    error SettleTimeoutOutOfRange(uint64 settleTimeout, uint64 minSettleTimeout, uint64 maxSettleTimeout);
    /// @notice A participant is the zero address.
    error ZeroParticipant();
    /// @notice Both participants are the same address.
    error SameParticipants(address participant);
    /// @notice The passed channel struct does not hash to the stored commitment (wrong state,
    /// unknown id, or the channel is already settled/penalized).
    error ChannelStateMismatch(uint256 id);
    /// @notice The operation needs an open channel but it is closed.
    error ChannelIsClosed(uint256 id);
    /// @notice The operation needs a closed channel but it is open.
    error ChannelNotClosed(uint256 id);
    /// @notice `account` is not a participant of the channel.
    error NotParticipant(address account);
    /// @notice The new total deposit does not exceed the current one.
    error DepositNotIncreasing(uint256 currentTotal, uint256 requestedTotal);
    /// @notice The new total deposit plus the partner's would not fit in uint256.
    error DepositOverflow(uint256 totalDeposit, uint256 partnerDeposit);
    /// @notice The new total withdraw does not exceed the current one.
    error WithdrawNotIncreasing(uint256 currentTotal, uint256 requestedTotal);
    /// @notice Both participants' total withdrawals would exceed both total deposits.
    error WithdrawExceedsDeposits(uint256 totalWithdraw, uint256 partnerWithdrawn, uint256 totalDeposited);
    /// @notice The withdraw proof expired (`now >= expiration`).
    error WithdrawExpired(uint256 now, uint256 expiration);
    /// @notice The deposit authorization expired (`now > deadline`).
    error AuthorizationExpired(uint256 now, uint256 deadline);
    /// @notice A signature does not recover to the expected signer.
    error InvalidSigner(address signer, address expected);
    /// @notice A balance proof with nonce 0 must be all zero (it stands for "nothing sent").
    error InvalidEmptyBalanceProof();
    /// @notice The closer's declaration was already confirmed.
    error AlreadyConfirmed(uint256 id);
    /// @notice The presented closer proof is older than the declaration and proves nothing.
    error BalanceProofTooOld(uint64 nonce, uint64 declaredNonce);
    /// @notice Settlement is not allowed before `settleAt = closedAt + settleTimeout`.
    error SettleTimeoutNotExpired(uint256 now, uint256 settleAt);
    /// @notice The cooperative settle balances do not add up to the channel's remaining deposit.
    error CooperativeSettleBalanceMismatch(uint256 balance1, uint256 balance2, uint256 total);
    /// @notice The locks' length is not a multiple of 96 bytes.
    error InvalidLocksLength(uint256 length);
    /// @notice A lock's secret is not registered and it has not expired yet; only the receiver may
    /// unlock before every lock is decided.
    error LockUndecided(bytes32 secrethash, uint256 expiration);
    /// @notice Nothing is pending for `(id, sender, receiver, keccak256(locks))` (never retained,
    /// wrong locks, or already unlocked).
    error NoPendingLocks(uint256 id, address sender, address receiver, bytes32 locksroot);

    /// @param token_ the ERC-20 token of this network
    /// @param secretRegistry_ the SecretRegistry consulted by `unlock`
    /// @param minSettleTimeout_ smallest allowed settle timeout in seconds (> 0)
    /// @param maxSettleTimeout_ largest allowed settle timeout in seconds (>= min)
    constructor(address token_, address secretRegistry_, uint64 minSettleTimeout_, uint64 maxSettleTimeout_)
        EIP712("SmartMesh TokenNetwork", "1")
    {
        if (token_.code.length == 0) revert InvalidAddress(token_);
        if (secretRegistry_.code.length == 0) revert InvalidAddress(secretRegistry_);
        if (minSettleTimeout_ == 0 || minSettleTimeout_ > maxSettleTimeout_) {
            revert InvalidSettleTimeoutRange(minSettleTimeout_, maxSettleTimeout_);
        }
        token = IERC20(token_);
        secretRegistry = SecretRegistry(secretRegistry_);
        minSettleTimeout = minSettleTimeout_;
        maxSettleTimeout = maxSettleTimeout_;
        _nextChannelId = 1;
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of channels ever opened (= the id of the newest channel, 0 if none).
    function channelCounter() external view returns (uint256) {
        return _nextChannelId - 1;
    }

    /// @notice The commitment of a channel struct: `keccak256(abi.encode(ch))`.
    function hashChannel(Channel calldata ch) external pure returns (bytes32) {
        return keccak256(abi.encode(ch));
    }

    /// @notice The amount retained at settlement for `unlock(id, sender, receiver, locks)` with
    /// `keccak256(locks) == locksroot` (0 if none or already unlocked).
    function pendingLockedAmount(uint256 id, address sender, address receiver, bytes32 locksroot)
        external
        view
        returns (uint256)
    {
        return pendingLocks[_lockKey(id, sender, receiver, locksroot)];
    }

    /// @notice The EIP-712 digest of a `BalanceProof` (what its sender signs).
    function balanceProofDigest(uint256 id, Balance calldata balance, bytes32 messageHash)
        external
        view
        returns (bytes32)
    {
        return _balanceProofDigest(id, balance, messageHash);
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ open / deposit / withdraw

    /// @notice Opens a channel between `participant1` and `participant2` with zero deposits.
    /// Makes no external call, so it needs no reentrancy guard.
    function openChannel(address participant1, address participant2, uint64 settleTimeout)
        external
        returns (uint256 id)
    {
        id = _open(participant1, participant2, settleTimeout, 0);
    }

    /// @notice Opens a channel between `msg.sender` (participant1) and `partner` and deposits
    /// `deposit` from `msg.sender` for participant1.
    function openChannelWithDeposit(address partner, uint64 settleTimeout, uint256 deposit)
        external
        nonReentrant
        returns (uint256 id)
    {
        id = _open(msg.sender, partner, settleTimeout, deposit);
        if (deposit != 0) {
            emit ChannelDeposit(id, msg.sender, deposit);
            token.safeTransferFrom(msg.sender, address(this), deposit);
        }
    }

    /// @notice Raises `participant`'s total deposit to `totalDeposit`, paying the increase from
    /// `msg.sender`.
    function setTotalDeposit(uint256 id, Channel calldata ch, address participant, uint256 totalDeposit)
        external
        nonReentrant
    {
        uint256 increase = _deposit(id, ch, participant, totalDeposit);
        token.safeTransferFrom(msg.sender, address(this), increase);
    }

    /// @notice Deposit on behalf of `participant`, submitted by the agent named in the
    /// participant's signed `DepositAuthorization`. The increase and `fee` are pulled from the
    /// participant (it needs an allowance for this contract, e.g. via `permit`); `fee` goes to the
    /// agent (`msg.sender`). Valid while `block.timestamp <= deadline`; cannot be replayed because
    /// the total must increase.
    function depositWithAuthorization(
        uint256 id,
        Channel calldata ch,
        address participant,
        uint256 totalDeposit,
        uint256 fee,
        uint256 deadline,
        bytes calldata authSig
    ) external nonReentrant {
        if (block.timestamp > deadline) revert AuthorizationExpired(block.timestamp, deadline);
        bytes32 digest = _hashTypedDataV4(
            keccak256(
                abi.encode(DEPOSIT_AUTHORIZATION_TYPEHASH, id, participant, totalDeposit, msg.sender, fee, deadline)
            )
        );
        _checkSigner(digest, authSig, participant);
        uint256 increase = _deposit(id, ch, participant, totalDeposit);
        token.safeTransferFrom(participant, address(this), increase);
        if (fee != 0) token.safeTransferFrom(participant, msg.sender, fee);
    }

    /// @notice Pays `participant` the increase of its total withdrawal to `totalWithdraw`, signed
    /// by both participants as `WithdrawProof`; valid while `block.timestamp < expiration`.
    function withdraw(
        uint256 id,
        Channel calldata ch,
        address participant,
        uint256 totalWithdraw,
        uint256 expiration,
        bytes calldata participantSig,
        bytes calldata partnerSig
    ) external nonReentrant {
        uint256 ptr = _loadChannel(id, ch);
        if (ch.closedAt != 0) revert ChannelIsClosed(id);
        if (block.timestamp >= expiration) revert WithdrawExpired(block.timestamp, expiration);
        address partner;
        uint256 current;
        uint256 partnerWithdrawn;
        uint256 offset;
        if (participant == ch.participant1) {
            partner = ch.participant2;
            current = ch.withdrawn1;
            partnerWithdrawn = ch.withdrawn2;
            offset = OFF_WITHDRAWN1;
        } else if (participant == ch.participant2) {
            partner = ch.participant1;
            current = ch.withdrawn2;
            partnerWithdrawn = ch.withdrawn1;
            offset = OFF_WITHDRAWN2;
        } else {
            revert NotParticipant(participant);
        }
        if (totalWithdraw <= current) revert WithdrawNotIncreasing(current, totalWithdraw);
        uint256 deposited = ch.deposit1 + ch.deposit2;
        if (totalWithdraw > deposited || partnerWithdrawn > deposited - totalWithdraw) {
            revert WithdrawExceedsDeposits(totalWithdraw, partnerWithdrawn, deposited);
        }

        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(WITHDRAW_PROOF_TYPEHASH, id, participant, totalWithdraw, expiration))
        );
        _checkSigner(digest, participantSig, participant);
        _checkSigner(digest, partnerSig, partner);

        _setWord(ptr, offset, totalWithdraw);
        _storeChannel(id, ptr);
        emit ChannelWithdraw(id, participant, totalWithdraw);
        token.safeTransfer(participant, totalWithdraw - current);
    }

    // ------------------------------------------------------------------ cooperative settle

    /// @notice Pays `balance1` to participant1 and `balance2` to participant2 as both signed in
    /// `CooperativeSettle`, and finishes the channel. Allowed while open or closed (not after
    /// settlement). The balances must add up to the remaining deposit.
    function cooperativeSettle(
        uint256 id,
        Channel calldata ch,
        uint256 balance1,
        uint256 balance2,
        bytes calldata sig1,
        bytes calldata sig2
    ) external nonReentrant {
        _loadChannel(id, ch);
        address p1 = ch.participant1;
        address p2 = ch.participant2;
        uint256 total = _remaining(ch);
        if (balance1 > total || balance2 != total - balance1) {
            revert CooperativeSettleBalanceMismatch(balance1, balance2, total);
        }
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(COOPERATIVE_SETTLE_TYPEHASH, id, p1, balance1, p2, balance2)));
        _checkSigner(digest, sig1, p1);
        _checkSigner(digest, sig2, p2);

        delete channelHash[id];
        emit CooperativeSettled(id, balance1, balance2);
        if (balance1 != 0) token.safeTransfer(p1, balance1);
        if (balance2 != 0) token.safeTransfer(p2, balance2);
    }

    // ------------------------------------------------------------------ close / update / settle

    /// @notice Closes the channel. `msg.sender` (a participant) submits the partner's newest
    /// balance proof (`partnerProof`, signed by the partner; all-zero with nonce 0 if the partner
    /// never sent anything) and declares its own newest proof (`closerDeclared`, unsigned).
    /// Makes no external call (ecrecover is a precompile), so it needs no reentrancy guard.
    function closeChannel(
        uint256 id,
        Channel calldata ch,
        Balance calldata partnerProof,
        bytes32 partnerMessageHash,
        bytes calldata partnerSig,
        Balance calldata closerDeclared
    ) external {
        uint256 ptr = _loadChannel(id, ch);
        if (ch.closedAt != 0) revert ChannelIsClosed(id);
        address partner;
        if (msg.sender == ch.participant1) partner = ch.participant2;
        else if (msg.sender == ch.participant2) partner = ch.participant1;
        else revert NotParticipant(msg.sender);

        uint64 partnerNonce = partnerProof.nonce; // reading validates the uint64 range
        if (partnerNonce == 0) {
            _checkEmpty(partnerProof);
        } else {
            _checkSigner(_balanceProofDigest(id, partnerProof, partnerMessageHash), partnerSig, partner);
        }
        uint64 declaredNonce = closerDeclared.nonce;
        if (declaredNonce == 0) _checkEmpty(closerDeclared);

        uint64 closedAt = uint64(block.timestamp); // a uint64 of seconds lasts 584 billion years
        _setWord(ptr, OFF_CLOSED_AT, closedAt);
        _setWord(ptr, OFF_CLOSER, uint256(uint160(msg.sender)));
        _setBalance(ptr, OFF_CLOSER_BALANCE, declaredNonce, closerDeclared);
        _setBalance(ptr, OFF_PARTNER_BALANCE, partnerNonce, partnerProof);
        _storeChannel(id, ptr);
        emit ChannelClosed(id, msg.sender, closedAt, closerDeclared, partnerProof);
    }

    /// @notice The non-closer (or anyone holding its `UpdateAuthorization` signature
    /// `nonCloserSig`) presents a balance proof signed by the closer. The same proof as declared
    /// confirms the declaration; a newer or conflicting one proves the closer lied and pays the
    /// whole remaining deposit to the non-closer (see the penalty rule); an older one is rejected.
    /// Allowed any time after close until the channel is settled. `nonCloserSig` is ignored when
    /// the non-closer itself calls. The closer's signature is only checked when it matters, i.e.
    /// for a penalty (confirming the closer's own declaration needs no proof of it).
    function updateNonClosingBalanceProof(
        uint256 id,
        Channel calldata ch,
        Balance calldata closerProof,
        bytes32 closerMessageHash,
        bytes calldata closerSig,
        bytes calldata nonCloserSig
    ) external nonReentrant {
        uint256 ptr = _loadChannel(id, ch);
        if (ch.closedAt == 0) revert ChannelNotClosed(id);
        address closer = ch.closer;
        address nonCloser = closer == ch.participant1 ? ch.participant2 : ch.participant1;

        uint64 nonce = closerProof.nonce;
        uint64 declaredNonce = ch.closerBalance.nonce;
        bool lied;
        if (nonce > declaredNonce) {
            lied = true;
        } else if (nonce == declaredNonce) {
            lied = closerProof.transferredAmount != ch.closerBalance.transferredAmount
                || closerProof.lockedAmount != ch.closerBalance.lockedAmount
                || closerProof.locksroot != ch.closerBalance.locksroot;
        } else {
            lied = closerProof.transferredAmount > ch.closerBalance.transferredAmount;
            if (!lied) revert BalanceProofTooOld(nonce, declaredNonce);
        }
        if (!lied && ch.confirmed) revert AlreadyConfirmed(id);

        bool delegated = msg.sender != nonCloser;
        if (lied || delegated) {
            bytes32 proofDigest = _balanceProofDigest(id, closerProof, closerMessageHash);
            if (lied) _checkSigner(proofDigest, closerSig, closer);
            if (delegated) {
                bytes32 authDigest =
                    _hashTypedDataV4(keccak256(abi.encode(UPDATE_AUTHORIZATION_TYPEHASH, id, closer, proofDigest)));
                _checkSigner(authDigest, nonCloserSig, nonCloser);
            }
        }

        if (lied) {
            uint256 amount = _remaining(ch);
            delete channelHash[id];
            emit ChannelPenalized(id, nonCloser, amount);
            if (amount != 0) token.safeTransfer(nonCloser, amount);
        } else {
            _setWord(ptr, OFF_CONFIRMED, 1);
            _storeChannel(id, ptr);
            emit NonClosingBalanceProofUpdated(id, closer, nonce);
        }
    }

    /// @notice Settles a closed channel once `block.timestamp >= closedAt + settleTimeout`: pays
    /// both participants their net balances minus their pending outgoing locks, which are
    /// retained under `keccak256(abi.encode(id, sender, receiver, locksroot))` for `unlock`.
    function settleChannel(uint256 id, Channel calldata ch) external nonReentrant {
        _loadChannel(id, ch);
        uint256 closedAt = ch.closedAt;
        if (closedAt == 0) revert ChannelNotClosed(id);
        uint256 settleAt = closedAt + ch.settleTimeout;
        if (block.timestamp < settleAt) revert SettleTimeoutNotExpired(block.timestamp, settleAt);

        address p1 = ch.participant1;
        address p2 = ch.participant2;
        // b1: what participant1 sent, b2: what participant2 sent
        Balance calldata b1;
        Balance calldata b2;
        if (ch.closer == p1) {
            b1 = ch.closerBalance;
            b2 = ch.partnerBalance;
        } else {
            b1 = ch.partnerBalance;
            b2 = ch.closerBalance;
        }

        uint256 total = _remaining(ch);
        uint256 net1 = _clampedNet(ch.deposit1, ch.withdrawn1, b1.transferredAmount, b2.transferredAmount, total);
        uint256 net2 = total - net1;
        uint256 kept1 = _kept(b1, net1);
        uint256 kept2 = _kept(b2, net2);

        delete channelHash[id];
        if (kept1 != 0) pendingLocks[_lockKey(id, p1, p2, b1.locksroot)] = kept1;
        if (kept2 != 0) pendingLocks[_lockKey(id, p2, p1, b2.locksroot)] = kept2;
        uint256 amount1 = net1 - kept1;
        uint256 amount2 = net2 - kept2;
        emit ChannelSettled(id, amount1, amount2);
        if (amount1 != 0) token.safeTransfer(p1, amount1);
        if (amount2 != 0) token.safeTransfer(p2, amount2);
    }

    /// @notice Resolves the locks retained at settlement for `sender -> receiver`. `locks` is the
    /// concatenation of 96-byte packed locks `(uint256 expiration, uint256 amount, bytes32
    /// secrethash)` whose keccak256 is the locksroot. A lock is paid to `receiver` iff its secret
    /// was registered in the SecretRegistry no later than its expiration; the rest (and anything
    /// above the retained amount) goes back to `sender`. Possible once.
    /// While a lock is undecided (secret not registered and `block.timestamp <= expiration`) only
    /// `receiver` may unlock (it gives up that lock); anyone else must wait until every lock has
    /// expired or been revealed, so a sender cannot unlock before the receiver registers secrets.
    function unlock(uint256 id, address sender, address receiver, bytes calldata locks) external nonReentrant {
        if (locks.length % LOCK_SIZE != 0) revert InvalidLocksLength(locks.length);
        bytes32 locksroot = keccak256(locks);
        bytes32 key = _lockKey(id, sender, receiver, locksroot);
        uint256 kept = pendingLocks[key];
        if (kept == 0) revert NoPendingLocks(id, sender, receiver, locksroot);
        delete pendingLocks[key];

        uint256 unlocked = 0;
        for (uint256 off = 0; off < locks.length; off += LOCK_SIZE) {
            uint256 expiration = uint256(bytes32(locks[off:off + 32]));
            uint256 amount = uint256(bytes32(locks[off + 32:off + 64]));
            bytes32 secrethash = bytes32(locks[off + 64:off + 96]);
            if (amount == 0) continue;
            uint256 revealedAt = secretRegistry.getSecretRevealTime(secrethash);
            if (revealedAt == 0) {
                if (block.timestamp <= expiration && msg.sender != receiver) {
                    revert LockUndecided(secrethash, expiration);
                }
                continue;
            }
            if (revealedAt > expiration) continue;
            // cap at the retained amount without overflowing
            if (amount >= kept - unlocked) {
                unlocked = kept;
                break;
            }
            unlocked += amount;
        }
        uint256 returned = kept - unlocked;
        emit ChannelUnlocked(id, sender, receiver, locksroot, unlocked, returned);
        if (unlocked != 0) token.safeTransfer(receiver, unlocked);
        if (returned != 0) token.safeTransfer(sender, returned);
    }

    // ------------------------------------------------------------------ internals

    function _open(address p1, address p2, uint64 settleTimeout, uint256 deposit1) private returns (uint256 id) {
        if (p1 == address(0) || p2 == address(0)) revert ZeroParticipant();
        if (p1 == p2) revert SameParticipants(p1);
        if (settleTimeout < minSettleTimeout || settleTimeout > maxSettleTimeout) {
            revert SettleTimeoutOutOfRange(settleTimeout, minSettleTimeout, maxSettleTimeout);
        }
        id = _nextChannelId;
        _nextChannelId = id + 1;
        // hash of Channel{participant1: p1, participant2: p2, settleTimeout, deposit1, rest zero}
        // (converted to uint256 first so the words are clean in assembly)
        uint256 w1 = uint160(p1);
        uint256 w2 = uint160(p2);
        uint256 wt = settleTimeout;
        bytes32 h;
        assembly ("memory-safe") {
            let ptr := mload(0x40) // scratch beyond the free memory pointer
            calldatacopy(ptr, calldatasize(), CHANNEL_SIZE) // zero-fill
            mstore(ptr, w1)
            mstore(add(ptr, OFF_PARTICIPANT2), w2)
            mstore(add(ptr, OFF_SETTLE_TIMEOUT), wt)
            mstore(add(ptr, OFF_DEPOSIT1), deposit1)
            h := keccak256(ptr, CHANNEL_SIZE)
        }
        channelHash[id] = h;
        emit ChannelOpened(id, p1, p2, settleTimeout);
    }

    /// @dev Validates and records a deposit increase; returns the increase to pull.
    function _deposit(uint256 id, Channel calldata ch, address participant, uint256 totalDeposit)
        private
        returns (uint256 increase)
    {
        uint256 ptr = _loadChannel(id, ch);
        if (ch.closedAt != 0) revert ChannelIsClosed(id);
        uint256 current;
        uint256 partnerDeposit;
        uint256 offset;
        if (participant == ch.participant1) {
            current = ch.deposit1;
            partnerDeposit = ch.deposit2;
            offset = OFF_DEPOSIT1;
        } else if (participant == ch.participant2) {
            current = ch.deposit2;
            partnerDeposit = ch.deposit1;
            offset = OFF_DEPOSIT2;
        } else {
            revert NotParticipant(participant);
        }
        if (totalDeposit <= current) revert DepositNotIncreasing(current, totalDeposit);
        // keep deposit1 + deposit2 representable so settlement can never overflow
        if (totalDeposit > type(uint256).max - partnerDeposit) revert DepositOverflow(totalDeposit, partnerDeposit);
        increase = totalDeposit - current;
        _setWord(ptr, offset, totalDeposit);
        _storeChannel(id, ptr);
        emit ChannelDeposit(id, participant, totalDeposit);
    }

    /// @dev Copies the calldata `Channel` (a static 576-byte ABI tuple, so its ABI encoding is
    /// exactly its calldata bytes) to new memory, checks it against the stored commitment and
    /// returns the memory copy for in-place updates. Stored commitments are always hashes of
    /// clean encodings, so a match also proves the calldata is clean.
    function _loadChannel(uint256 id, Channel calldata ch) private view returns (uint256 ptr) {
        bytes32 h;
        assembly ("memory-safe") {
            ptr := mload(0x40)
            calldatacopy(ptr, ch, CHANNEL_SIZE)
            mstore(0x40, add(ptr, CHANNEL_SIZE))
            h := keccak256(ptr, CHANNEL_SIZE)
        }
        if (channelHash[id] != h) revert ChannelStateMismatch(id);
    }

    /// @dev Overwrites one 32-byte field of the memory copy made by `_loadChannel`.
    function _setWord(uint256 ptr, uint256 offset, uint256 value) private pure {
        assembly ("memory-safe") {
            mstore(add(ptr, offset), value)
        }
    }

    /// @dev Overwrites a `Balance` in the memory copy; `nonce` must be the validated `b.nonce`
    /// (reading a calldata uint64 reverts when it is out of range; the word written is clean).
    function _setBalance(uint256 ptr, uint256 offset, uint256 nonce, Balance calldata b) private pure {
        assembly ("memory-safe") {
            let dst := add(ptr, offset)
            calldatacopy(dst, b, 0x80)
            mstore(dst, nonce)
        }
    }

    /// @dev Stores the hash of the memory copy as the channel's new commitment.
    function _storeChannel(uint256 id, uint256 ptr) private {
        bytes32 h;
        assembly ("memory-safe") {
            h := keccak256(ptr, CHANNEL_SIZE)
        }
        channelHash[id] = h;
    }

    function _checkSigner(bytes32 digest, bytes calldata signature, address expected) private pure {
        address signer = ECDSA.recoverCalldata(digest, signature);
        if (signer != expected) revert InvalidSigner(signer, expected);
    }

    function _checkEmpty(Balance calldata b) private pure {
        if (b.transferredAmount != 0 || b.lockedAmount != 0 || b.locksroot != bytes32(0)) {
            revert InvalidEmptyBalanceProof();
        }
    }

    function _balanceProofDigest(uint256 id, Balance calldata b, bytes32 messageHash) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    BALANCE_PROOF_TYPEHASH, id, b.nonce, b.transferredAmount, b.lockedAmount, b.locksroot, messageHash
                )
            )
        );
    }

    /// @dev deposit1 + deposit2 - withdrawn1 - withdrawn2 (never negative: withdraw enforces it).
    function _remaining(Channel calldata ch) private pure returns (uint256) {
        return ch.deposit1 + ch.deposit2 - ch.withdrawn1 - ch.withdrawn2;
    }

    /// @dev clamp(d1 - w1 + t2 - t1, 0, total) computed without any intermediate overflow or
    /// underflow, whatever the (signed, possibly absurd) transferred amounts are.
    function _clampedNet(uint256 d1, uint256 w1, uint256 t1, uint256 t2, uint256 total)
        private
        pure
        returns (uint256)
    {
        if (t2 >= t1) {
            uint256 gain = t2 - t1;
            // cap = total + w1 = d1 + d2 - w2 <= d1 + d2: no overflow
            uint256 cap = total + w1;
            // d1 + gain >= cap means net >= total; checked without ever computing d1 + gain
            if (d1 >= cap || gain >= cap - d1) return total;
            uint256 plus = d1 + gain; // < cap: no overflow
            if (plus <= w1) return 0;
            return plus - w1; // < cap - w1 = total
        } else {
            uint256 loss = t1 - t2;
            if (d1 <= w1) return 0; // d1 - w1 - loss < 0
            uint256 avail = d1 - w1;
            if (avail <= loss) return 0;
            uint256 net = avail - loss;
            return net < total ? net : total;
        }
    }

    /// @dev min(lockedAmount, net); nothing is retained without a locksroot (such locks can never
    /// be unlocked, so they stay with the sender).
    function _kept(Balance calldata b, uint256 net) private pure returns (uint256) {
        if (b.locksroot == bytes32(0)) return 0;
        uint256 locked = b.lockedAmount;
        return locked < net ? locked : net;
    }

    function _lockKey(uint256 id, address sender, address receiver, bytes32 locksroot)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(id, sender, receiver, locksroot));
    }
}
