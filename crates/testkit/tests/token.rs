//! SmartMeshToken on the embedded chain: fixed supply, EIP-2612 permit, the signed
//! authorized payment agent (`transferWithFee`, `cancelAuthorization`) and
//! CVE-2018-10376. The scenarios live in `smartmesh_testkit::flows::token`.
#![allow(clippy::unwrap_used, missing_docs)]

use smartmesh_chain::deploy::DeployConfig;
use smartmesh_primitives::U256;
use smartmesh_testkit::{Lifecycle, flows, smt};

async fn lc(participants: usize) -> Lifecycle {
    Lifecycle::embedded(participants)
        .await
        .expect("embedded chain with contracts")
}

#[tokio::test]
async fn default_supply_is_minted_once_with_18_decimals() {
    let mut lc = lc(2).await;
    flows::token::fixed_supply(&mut lc, smartmesh_contracts::default_smt_supply())
        .await
        .unwrap();
    assert_eq!(
        smartmesh_contracts::default_smt_supply(),
        U256::from(3_141_592_653u64) * smt(1)
    );
}

#[tokio::test]
async fn supply_is_configurable() {
    let supply = smt(5_000_000) + U256::from(7);
    let mut lc = Lifecycle::embedded_with(2, |config| {
        config.deploy = Some(DeployConfig {
            smt_supply: supply,
            ..config.deploy.clone().unwrap()
        });
    })
    .await
    .unwrap();
    flows::token::fixed_supply(&mut lc, supply).await.unwrap();
    assert_eq!(
        lc.smt_balance(lc.deployment.deployer).await.unwrap(),
        supply - smt(2_000_000)
    );
}

#[tokio::test]
async fn permit_valid_expired_wrong_signer_replay() {
    flows::token::permit(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn transfer_with_fee_pays_recipient_and_agent() {
    flows::token::transfer_with_fee(&mut lc(3).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn transfer_with_fee_refusals_incl_cve_2018_10376() {
    flows::token::transfer_with_fee_refusals(&mut lc(3).await)
        .await
        .unwrap();
}
