//! The embedded chain: accounts, deployment, calls, reverts, events, time, snapshots.

use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, Mining};
use smartmesh_chain::{CallRequest, Chain, ChainError, EventCursor, EventFilter, TxRequest};
use smartmesh_contracts::{SmartMeshToken, artifacts};
use smartmesh_primitives::{Address, BlockNumber, ChainTime, U256, address};

const DEV0: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const DEV1: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");

fn chain() -> EmbeddedChain {
    EmbeddedChain::new(EmbeddedConfig {
        genesis_time: Some(ChainTime(1_700_000_000)),
        ..Default::default()
    })
    .expect("chain")
}

fn deploy_token(chain: &EmbeddedChain, supply: u64) -> Address {
    let args = SmartMeshToken::constructorCall {
        initialSupply: U256::from(supply),
        holder: DEV0,
    };
    let mut code = artifacts::smart_mesh_token().bytecode.to_vec();
    code.extend_from_slice(&args.abi_encode());
    let receipt = chain
        .execute(DEV0, TxRequest::deploy(code))
        .expect("deploy");
    receipt.contract_address.expect("created")
}

fn token_balance(chain: &EmbeddedChain, token: Address, who: Address) -> U256 {
    let out = chain
        .call_sync(CallRequest::new(
            token,
            SmartMeshToken::balanceOfCall { account: who }.abi_encode(),
        ))
        .expect("call");
    SmartMeshToken::balanceOfCall::abi_decode_returns(&out).expect("decode")
}

fn transfer(token: Address, to: Address, value: u64) -> TxRequest {
    TxRequest::call(
        token,
        SmartMeshToken::transferCall {
            to,
            value: U256::from(value),
        }
        .abi_encode(),
    )
}

#[test]
fn dev_accounts_are_the_well_known_ones() {
    let chain = chain();
    let keys = chain.dev_keys();
    assert_eq!(keys.len(), 10);
    assert_eq!(keys[0].address(), DEV0);
    assert_eq!(keys[1].address(), DEV1);
    assert_eq!(
        alloy::hex::encode(keys[0].to_bytes()),
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    );
    let ether = U256::from(10u64).pow(U256::from(18u64));
    assert_eq!(chain.balance(DEV0), U256::from(10_000u64) * ether);
    assert_eq!(chain.head().number, BlockNumber(0));
    assert_eq!(chain.head().timestamp, ChainTime(1_700_000_000));
}

#[test]
fn deploy_call_transfer_and_gas_is_charged() {
    let chain = chain();
    let before = chain.balance(DEV0);
    let token = deploy_token(&chain, 1_000);
    assert!(!chain.code(token).is_empty());
    assert_eq!(chain.head().number, BlockNumber(1));
    assert_eq!(token_balance(&chain, token, DEV0), U256::from(1_000));

    let receipt = chain
        .execute(DEV0, transfer(token, DEV1, 300))
        .expect("transfer");
    assert_eq!(receipt.block_number, BlockNumber(2));
    assert!(
        receipt.gas_used > 21_000 && receipt.gas_used < 100_000,
        "{}",
        receipt.gas_used
    );
    assert_eq!(receipt.logs.len(), 1);
    let log = SmartMeshToken::Transfer::decode_log(&receipt.logs[0].to_log()).expect("Transfer");
    assert_eq!((log.from, log.to, log.value), (DEV0, DEV1, U256::from(300)));
    assert_eq!(token_balance(&chain, token, DEV1), U256::from(300));
    assert_eq!(chain.nonce(DEV0), 2);

    // Gas is paid at the 1 gwei base fee.
    let stored = chain.receipt(receipt.tx_hash).expect("stored receipt");
    assert_eq!(stored.gas_used, receipt.gas_used);
    assert!(stored.success);
    let spent = before - chain.balance(DEV0);
    assert!(spent > U256::ZERO);
    assert_eq!(
        chain.block(2).expect("block 2").tx_hashes,
        vec![receipt.tx_hash]
    );

    // Estimation covers what the transaction uses.
    let estimate = chain
        .estimate_gas(DEV0, &transfer(token, DEV1, 1))
        .expect("estimate");
    let sent = chain
        .execute(
            DEV0,
            TxRequest {
                gas_limit: Some(estimate),
                ..transfer(token, DEV1, 1)
            },
        )
        .expect("with the estimate");
    assert!(sent.gas_used <= estimate);
}

#[test]
fn a_revert_names_the_custom_error_and_changes_nothing() {
    let chain = chain();
    let token = deploy_token(&chain, 10);
    let head = chain.head();
    let nonce = chain.nonce(DEV0);
    let err = chain
        .execute(DEV0, transfer(token, DEV1, 11))
        .expect_err("reverts");
    assert_eq!(err.revert_name(), Some("ERC20InsufficientBalance"), "{err}");
    assert!(matches!(err, ChainError::Reverted { tx_hash: None, .. }));
    assert_eq!(
        chain.head(),
        head,
        "no block for a reverted in-process transaction"
    );
    assert_eq!(chain.nonce(DEV0), nonce);

    let call = CallRequest {
        from: Some(DEV1),
        to: token,
        data: SmartMeshToken::transferCall {
            to: DEV0,
            value: U256::from(1),
        }
        .abi_encode()
        .into(),
    };
    let err = chain.call_sync(call).expect_err("call reverts");
    assert_eq!(err.revert_name(), Some("ERC20InsufficientBalance"));
    let err = chain
        .estimate_gas(DEV0, &transfer(token, DEV1, 11))
        .expect_err("estimate reverts");
    assert_eq!(err.revert_name(), Some("ERC20InsufficientBalance"));
}

#[test]
fn rejected_transactions() {
    let chain = chain();
    let poor = Address::repeat_byte(0x42);
    let err = chain
        .execute(
            poor,
            TxRequest {
                to: Some(DEV1),
                value: U256::from(1),
                ..Default::default()
            },
        )
        .expect_err("no funds");
    assert!(matches!(err, ChainError::Rejected(_)), "{err}");
    let err = chain
        .execute(
            DEV0,
            TxRequest {
                to: Some(DEV1),
                gas_limit: Some(1u64 << 25),
                ..Default::default()
            },
        )
        .expect_err("over the cap");
    assert!(matches!(err, ChainError::Rejected(_)), "{err}");
    let err = chain
        .execute(
            DEV0,
            TxRequest {
                to: Some(DEV1),
                gas_limit: Some(20_000),
                ..Default::default()
            },
        )
        .expect_err("below intrinsic gas");
    assert!(matches!(err, ChainError::Rejected(_)), "{err}");

    chain.fund(poor, U256::from(10u64).pow(U256::from(18u64)));
    let receipt = chain
        .execute(
            poor,
            TxRequest {
                to: Some(DEV1),
                value: U256::from(5),
                ..Default::default()
            },
        )
        .expect("funded");
    assert_eq!(receipt.gas_used, 21_000);
}

#[tokio::test]
async fn events_in_order_and_cursor_resumes() {
    let chain = chain();
    let token = deploy_token(&chain, 1_000);
    for i in 1..=5u64 {
        chain
            .execute(DEV0, transfer(token, DEV1, i))
            .expect("transfer");
    }
    let filter = EventFilter {
        addresses: vec![token],
        max_blocks: 3,
    };
    let mut cursor = EventCursor::from_block(BlockNumber(0));
    let mut values = Vec::new();
    let mut last_position = (0u64, 0u64);
    loop {
        let batch = chain.events_since(&cursor, &filter).await.expect("events");
        for event in &batch.events {
            assert!((event.block_number.0, event.log_index) >= last_position);
            last_position = (event.block_number.0, event.log_index);
            let transfer = SmartMeshToken::Transfer::decode_log(&event.to_log()).expect("Transfer");
            values.push(transfer.value.to::<u64>());
        }
        cursor = batch.cursor;
        if batch.caught_up {
            break;
        }
    }
    // The mint at deployment, then the five transfers.
    assert_eq!(values, vec![1_000, 1, 2, 3, 4, 5]);
    assert_eq!(cursor.next_block, BlockNumber(7));

    // Nothing new: an empty caught-up batch; then resume after a new event.
    let batch = chain.events_since(&cursor, &filter).await.expect("events");
    assert!(batch.events.is_empty() && batch.caught_up);
    chain
        .execute(DEV0, transfer(token, DEV1, 6))
        .expect("transfer");
    let batch = chain.events_since(&cursor, &filter).await.expect("events");
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].block_number, BlockNumber(7));

    // Other contracts' events are filtered out.
    let other = EventFilter {
        addresses: vec![Address::repeat_byte(9)],
        max_blocks: 0,
    };
    let batch = chain
        .events_since(&EventCursor::default(), &other)
        .await
        .expect("events");
    assert!(batch.events.is_empty() && batch.caught_up);
}

#[tokio::test]
async fn increase_time_moves_chain_time() {
    let chain = chain();
    let before = chain.time().await.expect("time");
    let head = chain.increase_time(3_600);
    assert!(head.timestamp.0 >= before.0 + 3_600);
    assert_eq!(chain.time().await.expect("time"), head.timestamp);

    chain
        .set_next_block_timestamp(head.timestamp.0 + 100_000)
        .expect("in the future");
    let mined = chain.mine();
    assert_eq!(mined.timestamp.0, head.timestamp.0 + 100_000);
    assert!(chain.set_next_block_timestamp(mined.timestamp.0).is_err());
    // The clock continues from the pinned time.
    let next = chain.mine();
    assert!(next.timestamp.0 > mined.timestamp.0 && next.timestamp.0 < mined.timestamp.0 + 100);
}

#[tokio::test]
async fn snapshot_revert_restores_state_and_history() {
    let chain = chain();
    let token = deploy_token(&chain, 1_000);
    let filter = EventFilter {
        addresses: vec![token],
        max_blocks: 0,
    };
    let snapshot = chain.snapshot();
    let head = chain.head();

    chain
        .execute(DEV0, transfer(token, DEV1, 7))
        .expect("transfer");
    let batch = chain
        .events_since(&EventCursor::default(), &filter)
        .await
        .expect("events");
    assert_eq!(batch.events.len(), 2);
    let cursor = batch.cursor;
    let tx = batch.events[1].tx_hash;

    assert!(chain.revert_to(snapshot));
    assert!(!chain.revert_to(snapshot), "a snapshot is used up");
    assert_eq!(chain.head(), head);
    assert_eq!(token_balance(&chain, token, DEV1), U256::ZERO);
    assert!(chain.receipt(tx).is_none());

    // The cursor saw a block that no longer exists.
    let err = chain
        .events_since(&cursor, &filter)
        .await
        .expect_err("reorg");
    assert!(matches!(err, ChainError::ReorgTooDeep { .. }), "{err}");
    // ... and still after the chain grows past it again, with a different block.
    chain
        .execute(DEV0, transfer(token, DEV1, 8))
        .expect("transfer");
    chain.mine();
    let err = chain
        .events_since(&cursor, &filter)
        .await
        .expect_err("reorg");
    assert!(matches!(err, ChainError::ReorgTooDeep { .. }), "{err}");
}

#[tokio::test]
async fn unreachable_mode_fails_every_chain_method() {
    let chain = chain();
    chain.set_reachable(false);
    let unreachable = |e: ChainError| matches!(e, ChainError::Unreachable { endpoint, .. } if endpoint == "embedded");
    assert!(unreachable(Chain::head(&chain).await.expect_err("head")));
    assert!(unreachable(chain.chain_id().await.expect_err("chain id")));
    assert!(unreachable(
        Chain::balance(&chain, DEV0).await.expect_err("balance")
    ));
    assert!(unreachable(chain.time().await.expect_err("time")));
    let key = chain.dev_keys()[0].clone();
    let send = chain
        .send(
            &key,
            TxRequest {
                to: Some(DEV1),
                ..Default::default()
            },
        )
        .await;
    assert!(unreachable(send.expect_err("send")));
    let events = chain
        .events_since(&EventCursor::default(), &EventFilter::default())
        .await;
    assert!(unreachable(events.expect_err("events")));
    chain.set_reachable(true);
    let receipt = chain
        .send(
            &key,
            TxRequest {
                to: Some(DEV1),
                ..Default::default()
            },
        )
        .await
        .expect("send");
    assert_eq!(receipt.gas_used, 21_000);
}

#[tokio::test]
async fn interval_mining_batches_transactions() {
    let chain = EmbeddedChain::new(EmbeddedConfig {
        mining: Mining::Interval(std::time::Duration::from_millis(50)),
        ..Default::default()
    })
    .expect("chain");
    let keys = chain.dev_keys();
    let sends = (0..3).map(|i| {
        let chain = chain.clone();
        let key = keys[i].clone();
        async move {
            chain
                .send(
                    &key,
                    TxRequest {
                        to: Some(DEV1),
                        ..Default::default()
                    },
                )
                .await
        }
    });
    let receipts: Vec<_> = futures_join_all(sends).await;
    let blocks: Vec<_> = receipts
        .into_iter()
        .map(|r| r.expect("mined").block_number)
        .collect();
    assert!(
        blocks.iter().all(|b| *b == blocks[0]),
        "one block: {blocks:?}"
    );
}

/// A tiny join_all without the futures crate.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[test]
fn genesis_deployment() {
    let chain = EmbeddedChain::new(EmbeddedConfig::with_contracts()).expect("chain");
    let deployment = chain.deployment().expect("deployed");
    assert_eq!(deployment.deployer, DEV0);
    assert_eq!(deployment.start_block, BlockNumber(1));
    for contract in [
        deployment.token,
        deployment.secret_registry,
        deployment.token_network,
    ] {
        assert!(!chain.code(contract).is_empty());
    }
    assert_eq!(
        token_balance(&chain, deployment.token, DEV0),
        smartmesh_contracts::default_smt_supply()
    );
}

#[test]
fn many_token_transfers_keep_exact_balances() {
    // Throughput is measured by benchmarks, not here; this pins correctness over a long run.
    let chain = chain();
    let token = deploy_token(&chain, 1_000_000);
    let n = 2_000u64;
    for _ in 0..n {
        chain
            .execute(DEV0, transfer(token, DEV1, 1))
            .expect("transfer");
    }
    assert_eq!(token_balance(&chain, token, DEV1), U256::from(n));
    assert!(chain.head().number.0 >= n);
}

fn signed_transfer(chain_id: u64, nonce: u64, to: Address, value: u64) -> Vec<u8> {
    use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy::eips::eip2718::Encodable2718;
    use alloy::signers::SignerSync;
    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(
        &chain().dev_keys()[0].to_bytes().into(),
    )
    .expect("signer");
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 0,
        to: alloy::primitives::TxKind::Call(to),
        value: U256::from(value),
        ..Default::default()
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).expect("sign");
    TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718()
}

#[test]
fn signed_raw_transactions_are_checked() {
    let chain = chain();
    let before = chain.balance(DEV1);
    let raw = signed_transfer(1337, 0, DEV1, 77);
    let hash = chain.execute_signed_raw(&raw).expect("accepted");
    let receipt = chain.receipt(hash).expect("mined");
    assert!(receipt.success);
    assert_eq!(receipt.from, DEV0);
    assert_eq!(chain.balance(DEV1), before + U256::from(77));
    let tx = chain.transaction(hash).expect("stored");
    assert!(tx.signed);
    assert_eq!(receipt.effective_gas_price, 1_000_000_000);

    let rejected = |raw: &[u8]| match chain.execute_signed_raw(raw) {
        Err(ChainError::Rejected(message)) => message,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert!(rejected(&raw).contains("already known"));
    assert!(rejected(&signed_transfer(1337, 0, DEV1, 78)).contains("nonce too low"));
    assert!(rejected(&signed_transfer(1337, 5, DEV1, 78)).contains("nonce too high"));
    assert!(rejected(&signed_transfer(1, 1, DEV1, 78)).contains("chain id"));
    assert!(rejected(&raw[..raw.len() - 3]).contains("decode"));
    assert!(rejected(&[]).contains("decode"));
    assert_eq!(chain.nonce(DEV0), 1);
}

#[test]
fn interval_mode_without_runtime_mines_on_demand() {
    let chain = EmbeddedChain::new(EmbeddedConfig {
        mining: Mining::Interval(std::time::Duration::from_millis(10)),
        ..Default::default()
    })
    .expect("chain");
    let receipt = chain
        .execute(
            DEV0,
            TxRequest {
                to: Some(DEV1),
                ..Default::default()
            },
        )
        .expect("mined at once");
    assert_eq!(receipt.block_number, BlockNumber(1));
}

#[test]
fn interval_mode_blocks_a_plain_thread_until_the_block() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let chain = runtime
        .block_on(async {
            EmbeddedChain::new(EmbeddedConfig {
                mining: Mining::Interval(std::time::Duration::from_millis(20)),
                ..Default::default()
            })
        })
        .expect("chain");
    let raw = signed_transfer(1337, 0, DEV1, 1);
    let hash = chain.execute_signed_raw(&raw).expect("queued");
    assert!(chain.receipt(hash).is_none());
    assert_eq!(chain.pending_nonce(DEV0), 1);
    // Queued behind the signed one: gets nonce 1 at inclusion.
    let receipt = chain
        .execute(
            DEV0,
            TxRequest {
                to: Some(DEV1),
                ..Default::default()
            },
        )
        .expect("mined");
    let signed = chain.receipt(hash).expect("mined");
    assert!(signed.block_number <= receipt.block_number.0);
    assert_eq!(chain.nonce(DEV0), 2);
    // Empty blocks keep coming.
    let head = chain.head().number;
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(chain.head().number > head);
    drop(runtime);
}
