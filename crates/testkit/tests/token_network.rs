//! TokenNetwork functions on the embedded chain, one test per flow of
//! `smartmesh_testkit::flows::channel`, exact balances and exact revert names.
#![allow(clippy::unwrap_used, missing_docs)]

use smartmesh_testkit::{Lifecycle, flows::channel};

async fn lc(participants: usize) -> Lifecycle {
    Lifecycle::embedded(participants)
        .await
        .expect("embedded chain with contracts")
}

#[tokio::test]
async fn channel_lifecycle_exact_balances() {
    channel::channel_lifecycle(&mut lc(2).await).await.unwrap();
}

#[tokio::test]
async fn open_rules() {
    channel::open_rules(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn open_with_deposit() {
    channel::open_with_deposit(&mut lc(2).await).await.unwrap();
}

#[tokio::test]
async fn deposit_rules() {
    channel::deposit_rules(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn gasless_deposit_with_authorization() {
    channel::gasless_deposit(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn withdraw_rules() {
    channel::withdraw_rules(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn cooperative_settle() {
    channel::cooperative_settle(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn close_rules() {
    channel::close_rules(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn update_by_non_closer() {
    channel::update_rules(&mut lc(2).await).await.unwrap();
}

#[tokio::test]
async fn update_by_delegate() {
    channel::delegate_update(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn settle_rules() {
    channel::settle_rules(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn settlement_matches_ledger() {
    channel::settlement_matches_ledger(&mut lc(2).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn settlement_clamps_absurd_amounts() {
    channel::settlement_clamps(&mut lc(2).await).await.unwrap();
}

#[tokio::test]
async fn unlock_paid_returned_twice() {
    channel::unlock(&mut lc(3).await).await.unwrap();
}

#[tokio::test]
async fn unlock_undecided_and_caps() {
    channel::unlock_undecided_and_caps(&mut lc(3).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn views_and_constructor() {
    channel::views_and_constructor(&mut lc(2).await)
        .await
        .unwrap();
}
