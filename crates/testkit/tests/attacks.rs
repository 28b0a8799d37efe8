//! Attacks on the embedded chain (`smartmesh_testkit::flows::attacks`): the penalty
//! rule, honest closers, replays, malleable signatures, token reentrancy, arithmetic.
#![allow(clippy::unwrap_used, missing_docs)]

use smartmesh_testkit::Lifecycle;
use smartmesh_testkit::flows::{attacks, channel, registry, token};

async fn lc(participants: usize) -> Lifecycle {
    Lifecycle::embedded(participants)
        .await
        .expect("embedded chain with contracts")
}

#[tokio::test]
async fn penalty_stale_close_higher_nonce() {
    attacks::penalty_higher_nonce(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn penalty_same_nonce_different_content() {
    attacks::penalty_same_nonce_different_content(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn penalty_lower_nonce_higher_transferred() {
    attacks::penalty_lower_nonce_higher_transferred(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn penalty_through_a_watchtower_pays_the_non_closer() {
    attacks::penalty_by_delegate(&mut lc(3).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn honest_closer_is_never_punished() {
    attacks::honest_closer_never_punished(&mut lc(3).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn known_limitation_higher_declared_nonce_as_specified() {
    attacks::known_limitation_higher_declared_nonce(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn reopened_channel_has_new_id_and_old_signatures_are_dead() {
    attacks::reopened_channel_old_signatures_dead(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn replay_across_chain_contract_and_channel_fails() {
    attacks::replay_across_domains(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn high_s_signatures_are_rejected() {
    attacks::high_s_signatures_rejected(&mut lc(3).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn token_reentrancy_is_refused_and_nothing_drained() {
    attacks::token_reentrancy_refused(&mut lc(3).await)
        .await
        .unwrap();
}

/// Regression: `TokenNetwork._clampedNet` overflowed (Panic 0x11) when participant1's
/// deposit was near 2^255, so a closer could freeze both deposits by declaring a huge
/// transferred amount. Settlement must never revert.
#[tokio::test]
async fn regression_clamped_net_overflow_froze_settlement() {
    attacks::settlement_never_overflows_with_huge_deposits(&mut lc(2).await)
        .await
        .unwrap();
}

/// Every backend-agnostic flow, one after the other on a single chain, as they would
/// run against a shared devchain or Hardhat node: none assumes a fresh chain.
#[tokio::test]
async fn all_flows_compose_on_one_chain() {
    smartmesh_testkit::flows::run_all(&mut lc(3).await)
        .await
        .unwrap();
}
