//! SmartMeshVesting on the embedded chain: wallets created and funded by the deployment
//! config, nothing before the cliff, stepped quarterly release after it, everything at
//! the end, only the beneficiary receives.
#![allow(clippy::unwrap_used, missing_docs)]

use alloy::sol_types::{SolCall, SolConstructor};
use smartmesh_chain::deploy::VestingAllocation;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, dev_keys};
use smartmesh_contracts::{QUARTER_SECONDS as Q, SmartMeshVesting, artifacts};
use smartmesh_primitives::{Address, ChainTime, PrivateKey, U256};
use smartmesh_testkit::flows::{events, expect_revert};
use smartmesh_testkit::{Lifecycle, smt};

const GENESIS: u64 = 1_700_000_000;
const START: u64 = GENESIS + 1_000;

/// Two allocations: 1,000,000 SMT over 4 years with a one-year cliff, quarterly; and an
/// odd amount over 1,000 s in steps of 100 s without a cliff.
async fn setup() -> (Lifecycle, PrivateKey, PrivateKey, U256) {
    let keys = dev_keys(5);
    let (alice, bob) = (keys[3].clone(), keys[4].clone());
    let odd = smt(777) + U256::from(1);
    let allocations = vec![
        VestingAllocation {
            beneficiary: alice.address(),
            amount: smt(1_000_000),
            start: START,
            duration: 16 * Q,
            cliff: 4 * Q,
            release_period: Q,
        },
        VestingAllocation {
            beneficiary: bob.address(),
            amount: odd,
            start: GENESIS,
            duration: 1_000,
            cliff: 0,
            release_period: 100,
        },
    ];
    let lc = Lifecycle::embedded_with(2, |config| {
        config.genesis_time = Some(ChainTime(GENESIS));
        config.deploy.as_mut().unwrap().vesting = allocations;
    })
    .await
    .unwrap();
    (lc, alice, bob, odd)
}

async fn vested(lc: &Lifecycle, wallet: Address, t: u64) -> U256 {
    let token = lc.deployment.token;
    lc.view(
        wallet,
        SmartMeshVesting::vestedAmount_1Call {
            token,
            timestamp: t,
        },
    )
    .await
    .unwrap()
}

async fn releasable(lc: &Lifecycle, wallet: Address) -> U256 {
    lc.view(
        wallet,
        SmartMeshVesting::releasable_0Call {
            token: lc.deployment.token,
        },
    )
    .await
    .unwrap()
}

async fn release(lc: &Lifecycle, by: &PrivateKey, wallet: Address) -> smartmesh_chain::TxReceipt {
    let call = SmartMeshVesting::release_0Call {
        token: lc.deployment.token,
    };
    lc.send(by, wallet, call.abi_encode().into()).await.unwrap()
}

#[tokio::test]
async fn deployment_creates_funded_wallets() {
    let (lc, alice, bob, odd) = setup().await;
    assert_eq!(lc.deployment.vesting.len(), 2);
    let expected = [
        (alice.address(), smt(1_000_000), START, 16 * Q, 4 * Q, Q),
        (bob.address(), odd, GENESIS, 1_000, 0, 100),
    ];
    for (wallet, (beneficiary, amount, start, duration, cliff, period)) in
        lc.deployment.vesting.iter().zip(expected)
    {
        let w = wallet.wallet;
        assert_eq!(wallet.allocation.beneficiary, beneficiary);
        assert_eq!(
            lc.smt_balance(w).await.unwrap(),
            amount,
            "funded with the allocation"
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::ownerCall {}).await.unwrap(),
            beneficiary
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::startCall {}).await.unwrap(),
            U256::from(start)
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::durationCall {}).await.unwrap(),
            U256::from(duration)
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::cliffCall {}).await.unwrap(),
            U256::from(start + cliff)
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::endCall {}).await.unwrap(),
            U256::from(start + duration)
        );
        assert_eq!(
            lc.view(w, SmartMeshVesting::releasePeriodCall {})
                .await
                .unwrap(),
            U256::from(period)
        );
    }
    // The supply is conserved: deployer + grants + wallets.
    let supply = smartmesh_contracts::default_smt_supply();
    let deployer = lc.smt_balance(lc.deployment.deployer).await.unwrap();
    assert_eq!(deployer + smt(2_000_000) + smt(1_000_000) + odd, supply);
}

#[tokio::test]
async fn schedule_is_zero_before_the_cliff_then_stepped_quarterly() {
    let (lc, _alice, _bob, _) = setup().await;
    let w = lc.deployment.vesting[0].wallet;
    let total = smt(1_000_000);
    let cliff = START + 4 * Q;
    let end = START + 16 * Q;
    let sixteenth = |n: u64| total * U256::from(n) / U256::from(16);
    for (t, amount) in [
        (GENESIS, U256::ZERO),
        (START - 1, U256::ZERO),
        (START, U256::ZERO),
        (START + Q, U256::ZERO), // a quarter accrued, but before the cliff
        (cliff - 1, U256::ZERO),
        (cliff, sixteenth(4)), // the four quarters accrued at the cliff
        (cliff + Q - 1, sixteenth(4)),
        (cliff + Q, sixteenth(5)),
        (cliff + 2 * Q + 7, sixteenth(6)),
        (START + 15 * Q, sixteenth(15)),
        (end - 1, sixteenth(15)),
        (end, total),
        (end + 10 * Q, total),
    ] {
        assert_eq!(
            vested(&lc, w, t).await,
            amount,
            "vested at start + {}",
            t as i64 - START as i64
        );
    }
    // Rounding of an odd amount: floor(A * stepped / duration).
    let w2 = lc.deployment.vesting[1].wallet;
    let odd = smt(777) + U256::from(1);
    assert_eq!(vested(&lc, w2, GENESIS + 99).await, U256::ZERO);
    assert_eq!(vested(&lc, w2, GENESIS + 150).await, odd / U256::from(10));
    assert_eq!(
        vested(&lc, w2, GENESIS + 999).await,
        odd * U256::from(9) / U256::from(10)
    );
    assert_eq!(vested(&lc, w2, GENESIS + 1_000).await, odd);
}

#[tokio::test]
async fn release_pays_only_the_beneficiary_step_by_step() {
    let (lc, alice, _bob, _) = setup().await;
    let stranger = lc.keys[0].clone();
    let w = lc.deployment.vesting[0].wallet;
    let total = smt(1_000_000);
    let cliff = START + 4 * Q;
    let stranger_before = lc.smt_balance(stranger.address()).await.unwrap();

    // Before the cliff: nothing, whoever asks.
    assert_eq!(releasable(&lc, w).await, U256::ZERO);
    release(&lc, &stranger, w).await;
    assert_eq!(lc.smt_balance(alice.address()).await.unwrap(), U256::ZERO);
    lc.set_next_block_timestamp(cliff - 1).await.unwrap();
    release(&lc, &stranger, w).await;
    assert_eq!(lc.smt_balance(w).await.unwrap(), total);

    // At the cliff a stranger triggers the release; the beneficiary is paid.
    lc.set_next_block_timestamp(cliff + 10).await.unwrap();
    let receipt = release(&lc, &stranger, w).await;
    let released = events::<SmartMeshVesting::ERC20Released>(&receipt);
    assert_eq!(
        (released[0].token, released[0].amount),
        (lc.deployment.token, total / U256::from(4))
    );
    assert_eq!(
        lc.smt_balance(alice.address()).await.unwrap(),
        total / U256::from(4)
    );
    assert_eq!(
        lc.smt_balance(stranger.address()).await.unwrap(),
        stranger_before,
        "the caller gets nothing"
    );
    assert_eq!(
        releasable(&lc, w).await,
        U256::ZERO,
        "nothing more within the quarter"
    );

    // One quarter later: one sixteenth more.
    lc.set_next_block_timestamp(cliff + Q + 5).await.unwrap();
    lc.embedded_chain().unwrap().mine();
    assert_eq!(releasable(&lc, w).await, total / U256::from(16));
    release(&lc, &alice, w).await;
    assert_eq!(
        lc.smt_balance(alice.address()).await.unwrap(),
        total * U256::from(5) / U256::from(16)
    );
    let released = lc
        .view(
            w,
            SmartMeshVesting::released_1Call {
                token: lc.deployment.token,
            },
        )
        .await
        .unwrap();
    assert_eq!(released, total * U256::from(5) / U256::from(16));

    // Only the owner can hand the wallet over.
    let hijack = SmartMeshVesting::transferOwnershipCall {
        newOwner: stranger.address(),
    };
    expect_revert(
        lc.send(&stranger, w, hijack.abi_encode().into()).await,
        "OwnableUnauthorizedAccount",
    );

    // At the end: everything, and the wallet is empty.
    lc.set_next_block_timestamp(START + 16 * Q).await.unwrap();
    release(&lc, &stranger, w).await;
    assert_eq!(lc.smt_balance(alice.address()).await.unwrap(), total);
    assert_eq!(lc.smt_balance(w).await.unwrap(), U256::ZERO);
    assert_eq!(
        lc.smt_balance(stranger.address()).await.unwrap(),
        stranger_before
    );
}

#[tokio::test]
async fn bad_schedules_are_refused() {
    let (lc, alice, _, _) = setup().await;
    let deployer = lc.keys[0].clone();
    let code = |cliff: u64, period: u64| {
        let args = SmartMeshVesting::constructorCall {
            beneficiary: alice.address(),
            startTimestamp: START,
            durationSeconds: 1_000,
            cliffSeconds: cliff,
            releasePeriodSeconds: period,
        };
        let mut data = artifacts::smart_mesh_vesting().bytecode.to_vec();
        data.extend_from_slice(&args.abi_encode());
        data
    };
    expect_revert(
        lc.deploy_contract(&deployer, code(1_001, 100)).await,
        "InvalidCliffDuration",
    );
    expect_revert(
        lc.deploy_contract(&deployer, code(10, 0)).await,
        "InvalidReleasePeriod",
    );
    let zero_owner = SmartMeshVesting::constructorCall {
        beneficiary: Address::ZERO,
        startTimestamp: START,
        durationSeconds: 1_000,
        cliffSeconds: 0,
        releasePeriodSeconds: 100,
    };
    let mut data = artifacts::smart_mesh_vesting().bytecode.to_vec();
    data.extend_from_slice(&zero_owner.abi_encode());
    expect_revert(
        lc.deploy_contract(&deployer, data).await,
        "OwnableInvalidOwner",
    );
    lc.deploy_contract(&deployer, code(1_000, 100))
        .await
        .unwrap();

    // The deployment config refuses such allocations before sending anything.
    let bad = VestingAllocation {
        beneficiary: alice.address(),
        amount: smt(1),
        start: START,
        duration: 10,
        cliff: 11,
        release_period: 5,
    };
    let config = EmbeddedConfig {
        deploy: Some(smartmesh_chain::deploy::DeployConfig {
            vesting: vec![bad],
            ..Default::default()
        }),
        ..EmbeddedConfig::default()
    };
    assert!(EmbeddedChain::new(config).is_err());
}
