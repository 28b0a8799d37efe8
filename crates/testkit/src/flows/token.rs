//! SmartMeshToken: fixed supply, EIP-2612 permit and the signed authorized payment
//! agent (`transferWithFee`, `cancelAuthorization`), including CVE-2018-10376.

use super::{FlowResult, balances, events, expect_revert, high_s_twin, keys, revert_reason, word};
use crate::{Lifecycle, smt};
use alloy::sol_types::SolCall;
use smartmesh_chain::ChainError;
use smartmesh_contracts::{SmartMeshToken, artifacts};
use smartmesh_primitives::{Address, B256, Bytes, ChainId, PrivateKey, U256, eip712};

/// A `TransferWithFee` valid for the next hour.
async fn authorization(
    lc: &Lifecycle,
    from: Address,
    to: Address,
    value: U256,
    fee: U256,
    agent: Address,
    nonce: B256,
) -> Result<eip712::TransferWithFee, ChainError> {
    let now = lc.now().await?;
    Ok(eip712::TransferWithFee {
        from,
        to,
        value,
        fee,
        agent,
        validAfter: U256::ZERO,
        validBefore: U256::from(now + 3_600),
        nonce,
    })
}

/// A key with SMT but no ether, funded by `funder`.
pub async fn gasless_user(
    lc: &Lifecycle,
    funder: &PrivateKey,
    amount: U256,
) -> Result<PrivateKey, ChainError> {
    let user = PrivateKey::random();
    lc.smt_transfer(funder, user.address(), amount).await?;
    assert_eq!(
        lc.chain.balance(user.address()).await?,
        U256::ZERO,
        "the user holds no ether"
    );
    Ok(user)
}

/// Fresh lifecycle: the supply is `expected_supply`, all of it held by the deployer and
/// the participants (minted once, nothing else), 18 decimals, name and symbol; the ABI
/// has no way to mint or burn. Participants: any.
pub async fn fixed_supply(lc: &mut Lifecycle, expected_supply: U256) -> FlowResult {
    let token = lc.deployment.token;
    assert_eq!(
        lc.view(token, SmartMeshToken::totalSupplyCall {}).await?,
        expected_supply
    );
    assert_eq!(lc.view(token, SmartMeshToken::decimalsCall {}).await?, 18);
    assert_eq!(
        lc.view(token, SmartMeshToken::nameCall {}).await?,
        "SmartMesh Token"
    );
    assert_eq!(lc.view(token, SmartMeshToken::symbolCall {}).await?, "SMT");
    let mut holders = vec![lc.deployment.deployer];
    holders.extend(lc.keys.iter().map(PrivateKey::address));
    holders.extend(lc.deployment.vesting.iter().map(|v| v.wallet));
    let held = balances(lc, &holders)
        .await?
        .into_iter()
        .fold(U256::ZERO, |sum, b| sum + b);
    assert_eq!(
        held, expected_supply,
        "the whole supply sits with the deployer, the grants and the vesting wallets"
    );
    for function in artifacts::smart_mesh_token().abi().functions() {
        let name = function.name.to_lowercase();
        assert!(
            !name.contains("mint") && !name.contains("burn"),
            "unexpected supply function {}",
            function.name
        );
    }
    // Moving tokens, with or without an agent, never changes the supply.
    let k = keys(lc, 2);
    lc.smt_transfer(&k[0], k[1].address(), smt(5)).await?;
    assert_eq!(
        lc.view(token, SmartMeshToken::totalSupplyCall {}).await?,
        expected_supply
    );
    Ok(())
}

/// EIP-2612 permit: valid (allowance set, nonce used, the spender can pull), replay,
/// expired, wrong signer, another chain's domain. Participants: 3 (owner, spender,
/// submitter).
pub async fn permit(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (owner, spender, submitter) = (&k[0], &k[1], &k[2]);
    let token = lc.deployment.token;
    let now = lc.now().await?;
    let deadline = U256::from(now + 3_600);
    let value = smt(250);

    let sig = lc
        .sign_permit(owner, spender.address(), value, deadline)
        .await?;
    let receipt = lc
        .submit_permit(
            submitter,
            owner.address(),
            spender.address(),
            value,
            deadline,
            &sig,
        )
        .await?;
    let approvals = events::<SmartMeshToken::Approval>(&receipt);
    assert_eq!(approvals.len(), 1);
    assert_eq!(
        (approvals[0].owner, approvals[0].spender, approvals[0].value),
        (owner.address(), spender.address(), value)
    );
    let allowance = SmartMeshToken::allowanceCall {
        owner: owner.address(),
        spender: spender.address(),
    };
    assert_eq!(lc.view(token, allowance.clone()).await?, value);
    assert_eq!(
        lc.view(
            token,
            SmartMeshToken::noncesCall {
                owner: owner.address()
            }
        )
        .await?,
        U256::from(1)
    );

    // The spender uses it.
    let before = balances(lc, &[owner.address(), spender.address()]).await?;
    let pull = SmartMeshToken::transferFromCall {
        from: owner.address(),
        to: spender.address(),
        value: smt(100),
    };
    lc.token_send(spender, pull.abi_encode().into()).await?;
    assert_eq!(
        balances(lc, &[owner.address(), spender.address()]).await?,
        vec![before[0] - smt(100), before[1] + smt(100)]
    );
    assert_eq!(lc.view(token, allowance.clone()).await?, smt(150));

    // Replay: the nonce moved on, so the same signature recovers someone else.
    let replay = lc
        .submit_permit(
            submitter,
            owner.address(),
            spender.address(),
            value,
            deadline,
            &sig,
        )
        .await;
    expect_revert(replay, "ERC2612InvalidSigner");

    // Expired.
    let past = U256::from(now - 1);
    let expired = lc
        .permit(submitter, owner, spender.address(), value, past)
        .await;
    expect_revert(expired, "ERC2612ExpiredSignature");

    // Signed by somebody else than the owner.
    let forged = lc
        .sign_permit(spender, spender.address(), smt(1_000), deadline)
        .await?;
    let wrong = lc
        .submit_permit(
            submitter,
            owner.address(),
            spender.address(),
            smt(1_000),
            deadline,
            &forged,
        )
        .await;
    expect_revert(wrong, "ERC2612InvalidSigner");

    // Signed for another chain.
    let nonce = lc
        .view(
            token,
            SmartMeshToken::noncesCall {
                owner: owner.address(),
            },
        )
        .await?;
    let permit = eip712::Permit {
        owner: owner.address(),
        spender: spender.address(),
        value,
        nonce,
        deadline,
    };
    let other_chain = eip712::token_domain(ChainId(lc.deployment.chain_id.0 + 1), token);
    let sig = eip712::sign(owner, &permit, &other_chain);
    let wrong = lc
        .submit_permit(
            submitter,
            owner.address(),
            spender.address(),
            value,
            deadline,
            &sig,
        )
        .await;
    expect_revert(wrong, "ERC2612InvalidSigner");

    assert_eq!(
        lc.view(token, allowance).await?,
        smt(150),
        "no failed permit changed the allowance"
    );
    Ok(())
}

/// The signed authorized payment agent, happy path: a user without ether pays `to`
/// through an agent; `to` gets the value, the agent the fee, the nonce is used, the
/// events are `AuthorizationUsed` then the two `Transfer`s (one when the fee is zero).
/// Participants: 3 (funder, recipient, agent).
pub async fn transfer_with_fee(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (funder, to, agent) = (&k[0], &k[1], &k[2]);
    let user = gasless_user(lc, funder, smt(1_000)).await?;
    let nonce = word("twf-1");
    let auth = authorization(
        lc,
        user.address(),
        to.address(),
        smt(100),
        smt(3),
        agent.address(),
        nonce,
    )
    .await?;
    let sig = lc.sign_transfer_with_fee(&user, &auth);
    assert!(!lc.authorization_state(user.address(), nonce).await?);

    let who = [user.address(), to.address(), agent.address()];
    let before = balances(lc, &who).await?;
    let receipt = lc.submit_transfer_with_fee(agent, &auth, sig).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            before[0] - smt(103),
            before[1] + smt(100),
            before[2] + smt(3)
        ]
    );
    assert!(lc.authorization_state(user.address(), nonce).await?);
    assert_eq!(
        lc.chain.balance(user.address()).await?,
        U256::ZERO,
        "the user never needed ether"
    );

    let used = events::<SmartMeshToken::AuthorizationUsed>(&receipt);
    assert_eq!(used.len(), 1);
    assert_eq!((used[0].authorizer, used[0].nonce), (user.address(), nonce));
    let transfers = events::<SmartMeshToken::Transfer>(&receipt);
    let moves: Vec<_> = transfers.iter().map(|t| (t.from, t.to, t.value)).collect();
    assert_eq!(
        moves,
        vec![
            (user.address(), to.address(), smt(100)),
            (user.address(), agent.address(), smt(3))
        ]
    );
    let first_topic = receipt
        .logs
        .first()
        .and_then(|log| log.topics.first())
        .copied();
    assert_eq!(
        first_topic,
        Some(<SmartMeshToken::AuthorizationUsed as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
    );

    // No fee: a single Transfer.
    let auth = authorization(
        lc,
        user.address(),
        to.address(),
        smt(7),
        U256::ZERO,
        agent.address(),
        word("twf-2"),
    )
    .await?;
    let sig = lc.sign_transfer_with_fee(&user, &auth);
    let receipt = lc.submit_transfer_with_fee(agent, &auth, sig).await?;
    assert_eq!(events::<SmartMeshToken::Transfer>(&receipt).len(), 1);
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            before[0] - smt(110),
            before[1] + smt(107),
            before[2] + smt(3)
        ]
    );
    Ok(())
}

/// Every way a `transferWithFee` is refused: not the agent, outside the validity window
/// (exact boundaries), nonce reuse, cancelled, another chain's or contract's domain,
/// high-s, bad length, CVE-2018-10376 wrap-around, insufficient balance for value + fee.
/// No failed attempt moves a token. Participants: 3 (funder, recipient, agent).
pub async fn transfer_with_fee_refusals(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (funder, to, agent) = (&k[0], &k[1], &k[2]);
    let user = gasless_user(lc, funder, smt(1_000)).await?;
    let token = lc.deployment.token;
    let who = [user.address(), to.address(), agent.address()];
    let start = balances(lc, &who).await?;
    let supply = lc.view(token, SmartMeshToken::totalSupplyCall {}).await?;

    let auth = authorization(
        lc,
        user.address(),
        to.address(),
        smt(10),
        smt(1),
        agent.address(),
        word("r-1"),
    )
    .await?;
    let sig = lc.sign_transfer_with_fee(&user, &auth);

    // Only the named agent may submit.
    let err = expect_revert(
        lc.submit_transfer_with_fee(to, &auth, sig.clone()).await,
        "CallerNotAgent",
    );
    assert!(
        revert_reason(&err).contains(&format!("{}", to.address())),
        "{err}"
    );

    // Validity window, exact boundaries: valid iff validAfter < now < validBefore.
    let now = lc.now().await?;
    let window = eip712::TransferWithFee {
        validAfter: U256::from(now + 100),
        validBefore: U256::from(now + 200),
        nonce: word("r-window"),
        ..auth.clone()
    };
    let wsig = lc.sign_transfer_with_fee(&user, &window);
    expect_revert(
        lc.submit_transfer_with_fee(agent, &window, wsig.clone())
            .await,
        "AuthorizationNotYetValid",
    );
    lc.set_next_block_timestamp(now + 100).await?;
    expect_revert(
        lc.submit_transfer_with_fee(agent, &window, wsig.clone())
            .await,
        "AuthorizationNotYetValid",
    );
    lc.set_next_block_timestamp(now + 200).await?;
    expect_revert(
        lc.submit_transfer_with_fee(agent, &window, wsig.clone())
            .await,
        "AuthorizationExpired",
    );
    lc.set_next_block_timestamp(now + 199).await?;
    lc.submit_transfer_with_fee(agent, &window, wsig).await?;
    let after_window = balances(lc, &who).await?;
    assert_eq!(
        after_window,
        vec![start[0] - smt(11), start[1] + smt(10), start[2] + smt(1)]
    );
    // Later authorizations need a window around the new time.
    let auth = authorization(
        lc,
        user.address(),
        to.address(),
        smt(10),
        smt(1),
        agent.address(),
        word("r-1"),
    )
    .await?;
    let sig = lc.sign_transfer_with_fee(&user, &auth);

    // Nonce reuse: the same authorization twice, or another one with a used nonce.
    lc.submit_transfer_with_fee(agent, &auth, sig.clone())
        .await?;
    expect_revert(
        lc.submit_transfer_with_fee(agent, &auth, sig).await,
        "AuthorizationAlreadyUsed",
    );
    let other = eip712::TransferWithFee {
        value: smt(1),
        ..auth.clone()
    };
    let osig = lc.sign_transfer_with_fee(&user, &other);
    expect_revert(
        lc.submit_transfer_with_fee(agent, &other, osig).await,
        "AuthorizationAlreadyUsed",
    );
    let spent = balances(lc, &who).await?;
    assert_eq!(
        spent,
        vec![
            after_window[0] - smt(11),
            after_window[1] + smt(10),
            after_window[2] + smt(1)
        ]
    );

    // Cancelled before use: anyone submits the signed cancellation.
    let cancelled = eip712::TransferWithFee {
        nonce: word("r-cancel"),
        ..auth.clone()
    };
    let csig = lc.sign_transfer_with_fee(&user, &cancelled);
    // Signed by the wrong key: refused.
    let bad_cancel = lc.sign_cancel_authorization(to, cancelled.nonce);
    let err = lc
        .submit_cancel_authorization(to, user.address(), cancelled.nonce, bad_cancel)
        .await;
    expect_revert(err, "InvalidSigner");
    let cancel = lc.sign_cancel_authorization(&user, cancelled.nonce);
    let receipt = lc
        .submit_cancel_authorization(to, user.address(), cancelled.nonce, cancel.clone())
        .await?;
    let ev = events::<SmartMeshToken::AuthorizationCanceled>(&receipt);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].authorizer, ev[0].nonce),
        (user.address(), cancelled.nonce)
    );
    assert!(
        lc.authorization_state(user.address(), cancelled.nonce)
            .await?
    );
    expect_revert(
        lc.submit_transfer_with_fee(agent, &cancelled, csig).await,
        "AuthorizationAlreadyUsed",
    );
    expect_revert(
        lc.submit_cancel_authorization(to, user.address(), cancelled.nonce, cancel)
            .await,
        "AuthorizationAlreadyUsed",
    );
    // A used authorization cannot be cancelled either.
    let late = lc.sign_cancel_authorization(&user, auth.nonce);
    expect_revert(
        lc.submit_cancel_authorization(agent, user.address(), auth.nonce, late)
            .await,
        "AuthorizationAlreadyUsed",
    );

    // Signatures for another chain or another contract are dead here.
    let fresh = eip712::TransferWithFee {
        nonce: word("r-domain"),
        ..auth.clone()
    };
    let other_chain = eip712::token_domain(ChainId(lc.deployment.chain_id.0 + 1), token);
    let other_contract = eip712::token_domain(lc.deployment.chain_id, lc.deployment.token_network);
    for domain in [other_chain, other_contract] {
        let sig = Bytes::copy_from_slice(eip712::sign(&user, &fresh, &domain).as_bytes());
        expect_revert(
            lc.submit_transfer_with_fee(agent, &fresh, sig).await,
            "InvalidSigner",
        );
    }
    // Tampered content: the signature no longer matches.
    let good = lc.sign_transfer_with_fee(&user, &fresh);
    let tampered = eip712::TransferWithFee {
        value: smt(500),
        ..fresh.clone()
    };
    expect_revert(
        lc.submit_transfer_with_fee(agent, &tampered, good.clone())
            .await,
        "InvalidSigner",
    );
    // The malleable high-s twin of a valid signature, and a truncated signature.
    expect_revert(
        lc.submit_transfer_with_fee(agent, &fresh, high_s_twin(&good))
            .await,
        "ECDSAInvalidSignatureS",
    );
    let short = Bytes::copy_from_slice(&good[..64]);
    expect_revert(
        lc.submit_transfer_with_fee(agent, &fresh, short).await,
        "ECDSAInvalidSignatureLength",
    );
    assert!(!lc.authorization_state(user.address(), fresh.nonce).await?);

    // CVE-2018-10376: value + fee wraps around 2^256 (the original exploit's numbers sum
    // to exactly 2^256, i.e. 0). Signed correctly: only the checked sum refuses it.
    let cve_value = U256::from_str_radix(
        "8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        16,
    )
    .expect("hex");
    let cve_fee = U256::from_str_radix(
        "7000000000000000000000000000000000000000000000000000000000000001",
        16,
    )
    .expect("hex");
    for (value, fee, label) in [
        (cve_value, cve_fee, "cve-1"),
        (U256::MAX, U256::from(1), "cve-2"),
        (U256::from(1), U256::MAX, "cve-3"),
    ] {
        let wrap = eip712::TransferWithFee {
            value,
            fee,
            nonce: word(label),
            ..auth.clone()
        };
        let sig = lc.sign_transfer_with_fee(&user, &wrap);
        expect_revert(
            lc.submit_transfer_with_fee(agent, &wrap, sig).await,
            "AmountOverflow",
        );
    }
    assert_eq!(
        lc.view(token, SmartMeshToken::totalSupplyCall {}).await?,
        supply,
        "nothing was minted"
    );

    // Enough for the value but not for value + fee.
    let balance = lc.smt_balance(user.address()).await?;
    let short_of_fee = eip712::TransferWithFee {
        value: balance,
        fee: U256::from(1),
        nonce: word("r-poor"),
        ..auth.clone()
    };
    let sig = lc.sign_transfer_with_fee(&user, &short_of_fee);
    let err = expect_revert(
        lc.submit_transfer_with_fee(agent, &short_of_fee, sig).await,
        "ERC20InsufficientBalance",
    );
    assert!(
        revert_reason(&err).contains(&format!("{}", balance + U256::from(1))),
        "{err}"
    );
    assert_eq!(
        balances(lc, &who).await?,
        spent,
        "no refused authorization moved a token"
    );

    // Exactly the balance: the user is emptied.
    let all = eip712::TransferWithFee {
        value: balance - U256::from(1),
        fee: U256::from(1),
        nonce: word("r-all"),
        ..auth.clone()
    };
    let sig = lc.sign_transfer_with_fee(&user, &all);
    lc.submit_transfer_with_fee(agent, &all, sig).await?;
    assert_eq!(lc.smt_balance(user.address()).await?, U256::ZERO);
    assert_eq!(
        lc.view(token, SmartMeshToken::totalSupplyCall {}).await?,
        supply
    );
    Ok(())
}
