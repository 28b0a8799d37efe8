//! Flows shared by the JSON-RPC backend tests: the same checks run against a Hardhat
//! node (`rpc_hardhat.rs`) and against our devchain (`rpc_devchain.rs`).
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use serde_json::{Value, json};
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_chain::{
    CallRequest, Chain, ChainError, ChainEvent, EventCursor, EventFilter, TxRequest,
};
use smartmesh_contracts::{SmartMeshToken, artifacts};
use smartmesh_primitives::{Address, PrivateKey, U256};

/// Private keys of the first accounts of the standard dev mnemonic ("test test ... junk"),
/// funded by Hardhat, Anvil and Ganache (deterministic).
pub const DEV_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];

pub fn dev_key(index: usize) -> PrivateKey {
    PrivateKey::from_hex(DEV_KEYS[index]).unwrap()
}

/// A node under test that the flows can stop and start again.
pub trait TestNode {
    /// `http://127.0.0.1:<port>`.
    fn url(&self) -> String;
    /// Stops the node; its port refuses connections afterwards.
    fn stop(&mut self) -> impl Future<Output = ()>;
    /// Starts it again on the same port and waits until it answers.
    fn restart(&mut self) -> impl Future<Output = ()>;
}

/// An RPC chain for an automining dev node with the given confirmation depth.
pub fn rpc(url: &str, confirmations: u64) -> RpcChain {
    RpcChain::connect(RpcConfig::dev(url, confirmations)).unwrap()
}

/// Waits (at most `limit`) until the node at `url` answers `eth_chainId`.
pub async fn wait_until_ready(url: &str, limit: Duration) -> Result<(), ChainError> {
    let chain = rpc(url, 0);
    let deadline = Instant::now() + limit;
    loop {
        match chain.chain_id().await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A raw JSON-RPC request (for node-specific methods such as `evm_snapshot`).
pub async fn raw_rpc(url: &str, method: &'static str, params: Value) -> Value {
    let client = alloy::rpc::client::RpcClient::new_http(url.parse().unwrap());
    client
        .request::<Value, Value>(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Deploys SmartMeshToken with `supply` held by `holder`, returning its address.
pub async fn deploy_token(
    chain: &RpcChain,
    deployer: &PrivateKey,
    supply: U256,
    holder: Address,
) -> Address {
    let mut code = artifacts::smart_mesh_token().bytecode.to_vec();
    code.extend(
        SmartMeshToken::constructorCall {
            initialSupply: supply,
            holder,
        }
        .abi_encode(),
    );
    let receipt = chain.send(deployer, TxRequest::deploy(code)).await.unwrap();
    let token = receipt
        .contract_address
        .expect("deployment receipt has the contract address");
    // The constructor's mint is in the receipt.
    let minted = decode_transfers(&receipt.logs);
    assert_eq!(minted, vec![(Address::ZERO, holder, supply)]);
    token
}

pub fn transfer(token: Address, to: Address, value: u64) -> TxRequest {
    TxRequest::call(
        token,
        SmartMeshToken::transferCall {
            to,
            value: U256::from(value),
        }
        .abi_encode(),
    )
}

pub async fn token_balance(chain: &RpcChain, token: Address, account: Address) -> U256 {
    let out = chain
        .call(CallRequest::new(
            token,
            SmartMeshToken::balanceOfCall { account }.abi_encode(),
        ))
        .await
        .unwrap();
    SmartMeshToken::balanceOfCall::abi_decode_returns(&out).unwrap()
}

/// `(from, to, value)` of every Transfer event among `events`.
pub fn decode_transfers(events: &[ChainEvent]) -> Vec<(Address, Address, U256)> {
    events
        .iter()
        .filter(|e| e.topics.first() == Some(&SmartMeshToken::Transfer::SIGNATURE_HASH))
        .map(|e| {
            let t = SmartMeshToken::Transfer::decode_log(&e.to_log()).unwrap();
            (t.from, t.to, t.value)
        })
        .collect()
}

/// Scans until caught up, returning all events and the final cursor.
pub async fn scan_all(
    chain: &RpcChain,
    cursor: EventCursor,
    filter: &EventFilter,
) -> (Vec<ChainEvent>, EventCursor) {
    let mut cursor = cursor;
    let mut events = Vec::new();
    for _ in 0..10_000 {
        let batch = chain.events_since(&cursor, filter).await.unwrap();
        events.extend(batch.events);
        cursor = batch.cursor;
        if batch.caught_up {
            return (events, cursor);
        }
    }
    panic!("events_since never caught up");
}

fn assert_chain_order(events: &[ChainEvent]) {
    for pair in events.windows(2) {
        assert!(
            (pair[0].block_number, pair[0].log_index) < (pair[1].block_number, pair[1].log_index),
            "events out of order: {pair:?}"
        );
    }
}

/// Chain id, head, balances, deployment, back-to-back transfers from one key, calls,
/// events in order with paging, a resumed cursor, reverting calls and sends (named by
/// the contract's custom error, nothing sent), and a transaction that fails on chain.
pub async fn basic_flow(url: &str, expected_chain_id: u64) {
    let chain = rpc(url, 0);
    assert_eq!(chain.chain_id().await.unwrap().0, expected_chain_id);
    assert_eq!(
        chain.chain_id().await.unwrap().0,
        expected_chain_id,
        "cached"
    );

    let deployer = dev_key(0);
    let alice = dev_key(1);
    let bob = PrivateKey::random().address();
    assert!(chain.balance(deployer.address()).await.unwrap() > U256::ZERO);
    assert_eq!(chain.balance(bob).await.unwrap(), U256::ZERO);

    let start = chain.head().await.unwrap();
    assert!(start.timestamp.0 > 0);
    let nonce_before = chain.nonce(deployer.address()).await.unwrap();

    let supply = U256::from(1_000_000u64);
    let token = deploy_token(&chain, &deployer, supply, deployer.address()).await;

    // Several sends from one key in a row (the local nonce cache).
    let r1 = chain
        .send(&deployer, transfer(token, alice.address(), 300))
        .await
        .unwrap();
    let r2 = chain
        .send(&deployer, transfer(token, bob, 200))
        .await
        .unwrap();
    let r3 = chain
        .send(&deployer, transfer(token, bob, 100))
        .await
        .unwrap();
    assert!(r1.block_number < r2.block_number && r2.block_number < r3.block_number);
    assert!(r1.gas_used > 21_000);
    assert_eq!(
        decode_transfers(&r1.logs),
        vec![(deployer.address(), alice.address(), U256::from(300))]
    );
    assert_eq!(
        chain.nonce(deployer.address()).await.unwrap(),
        nonce_before + 4
    );
    assert_eq!(token_balance(&chain, token, bob).await, U256::from(300));
    assert_eq!(
        token_balance(&chain, token, alice.address()).await,
        U256::from(300)
    );

    // Events from the start, two blocks per call so that paging is exercised.
    let filter = EventFilter {
        addresses: vec![token],
        max_blocks: 2,
    };
    let (events, cursor) = scan_all(&chain, EventCursor::from_block(start.number), &filter).await;
    assert_chain_order(&events);
    assert_eq!(
        decode_transfers(&events),
        vec![
            (Address::ZERO, deployer.address(), supply),
            (deployer.address(), alice.address(), U256::from(300)),
            (deployer.address(), bob, U256::from(200)),
            (deployer.address(), bob, U256::from(100)),
        ]
    );
    // Events as scanned are exactly the receipts' logs (block hash, time, index...).
    assert_eq!(
        events[1..],
        [r1.logs.clone(), r2.logs.clone(), r3.logs.clone()].concat()[..]
    );
    assert!(
        events
            .iter()
            .all(|e| e.address == token && e.block_time.0 >= start.timestamp.0)
    );

    // A resumed cursor returns nothing new.
    let again = chain.events_since(&cursor, &filter).await.unwrap();
    assert!(again.events.is_empty() && again.caught_up);
    assert_eq!(again.cursor, cursor);
    // Other contracts' events are filtered out.
    let other = EventFilter::contracts(vec![Address::repeat_byte(0x42)]);
    let (none, _) = scan_all(&chain, EventCursor::from_block(start.number), &other).await;
    assert!(none.is_empty());

    // A reverting call names the custom error.
    let too_much = SmartMeshToken::transferCall {
        to: deployer.address(),
        value: U256::from(301),
    };
    let err = chain
        .call(CallRequest {
            from: Some(alice.address()),
            to: token,
            data: too_much.abi_encode().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.revert_name(),
        Some("ERC20InsufficientBalance"),
        "{err:?}"
    );

    // A reverting send is named and not sent at all.
    let alice_nonce = chain.nonce(alice.address()).await.unwrap();
    let err = chain
        .send(&alice, TxRequest::call(token, too_much.abi_encode()))
        .await
        .unwrap_err();
    assert_eq!(
        err.revert_name(),
        Some("ERC20InsufficientBalance"),
        "{err:?}"
    );
    assert!(
        matches!(err, ChainError::Reverted { tx_hash: None, .. }),
        "{err:?}"
    );
    assert_eq!(
        chain.nonce(alice.address()).await.unwrap(),
        alice_nonce,
        "nothing was sent"
    );

    // A transaction that fails on chain (too little gas) is mined, reported with its
    // hash, and the key's next send still works.
    let mut starved = transfer(token, bob, 1);
    starved.gas_limit = Some(30_000);
    let err = chain.send(&alice, starved).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Reverted {
                tx_hash: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        chain.nonce(alice.address()).await.unwrap(),
        alice_nonce + 1,
        "it was mined"
    );
    chain.send(&alice, transfer(token, bob, 1)).await.unwrap();
    assert_eq!(token_balance(&chain, token, bob).await, U256::from(301));

    // Plain ether transfer, and a key whose cached nonce went stale (sent elsewhere).
    let value = U256::from(10u64).pow(U256::from(15u64));
    let other_chain = rpc(url, 0);
    other_chain
        .send(
            &deployer,
            TxRequest {
                to: Some(bob),
                value,
                ..TxRequest::default()
            },
        )
        .await
        .unwrap();
    // `chain` still has the nonce `other_chain` just used: rejected once, re-synced, sent.
    chain
        .send(
            &deployer,
            TxRequest {
                to: Some(bob),
                value,
                ..TxRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(chain.balance(bob).await.unwrap(), value * U256::from(2));
}

/// No node at all: connecting works, every call is `Unreachable` naming the endpoint.
pub async fn nothing_listening_flow() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let chain = rpc(&url, 0);
    assert_unreachable(&chain, &url).await;
}

async fn assert_unreachable(chain: &RpcChain, url: &str) {
    let key = dev_key(0);
    let results = [
        chain.head().await.map(|_| ()),
        chain.balance(key.address()).await.map(|_| ()),
        chain.nonce(key.address()).await.map(|_| ()),
        chain
            .call(CallRequest::new(Address::ZERO, vec![]))
            .await
            .map(|_| ()),
        chain
            .send(
                &key,
                TxRequest {
                    to: Some(Address::ZERO),
                    ..TxRequest::default()
                },
            )
            .await
            .map(|_| ()),
        chain
            .events_since(
                &EventCursor::from_block(smartmesh_primitives::BlockNumber(0)),
                &EventFilter::contracts(vec![]),
            )
            .await
            .map(|_| ()),
    ];
    for result in results {
        match result {
            Err(ChainError::Unreachable { endpoint, reason }) => {
                assert_eq!(endpoint, url);
                assert!(!reason.is_empty());
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}

/// A node that goes away gives `Unreachable`; once it is back the same `RpcChain` works.
pub async fn unreachable_flow(node: &mut impl TestNode) {
    let url = node.url();
    let chain = rpc(&url, 0);
    let key = dev_key(0);
    chain.head().await.unwrap();
    node.stop().await;
    assert_unreachable(&chain, &url).await;
    node.restart().await;
    chain.head().await.unwrap();
    chain
        .send(
            &key,
            TxRequest {
                to: Some(Address::repeat_byte(7)),
                value: U256::from(1),
                ..TxRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(chain.balance(Address::repeat_byte(7)).await.unwrap() > U256::ZERO);
}

/// Reorgs made with `evm_snapshot` / `evm_revert`: with 2 confirmations, events of the
/// abandoned branch are never delivered and nothing is lost; with 0, the cursor's hash
/// check reports `ReorgTooDeep` instead of delivering a second history.
pub async fn reorg_flow(url: &str) {
    let sender = rpc(url, 0);
    let safe = rpc(url, 2);
    let deployer = dev_key(0);
    let [x, y, z] = [1u8, 2, 3].map(Address::repeat_byte);

    let token = deploy_token(&sender, &deployer, U256::from(1_000u64), deployer.address()).await;
    let filter = EventFilter::contracts(vec![token]);
    let deployed_at = sender.head().await.unwrap().number;
    sender.send(&deployer, transfer(token, x, 1)).await.unwrap(); // T0, not final yet

    let snapshot = raw_rpc(url, "evm_snapshot", json!([])).await;
    sender.send(&deployer, transfer(token, y, 5)).await.unwrap(); // A1: abandoned branch
    let mut delivered = Vec::new();
    let (events, cursor) = scan_all(&safe, EventCursor::from_block(deployed_at), &filter).await;
    delivered.extend(events);
    assert_eq!(
        raw_rpc(url, "evm_revert", json!([snapshot])).await,
        json!(true)
    );

    // A fresh sender: the old one's cached nonce counts the reverted transaction (on a
    // real chain a reorged-out transaction returns to the pool; here it is gone).
    let sender = rpc(url, 0);
    sender.send(&deployer, transfer(token, z, 7)).await.unwrap(); // B1
    sender.send(&deployer, transfer(token, z, 8)).await.unwrap(); // B2
    let (events, cursor) = scan_all(&safe, cursor, &filter).await;
    delivered.extend(events);
    for _ in 0..2 {
        raw_rpc(url, "evm_mine", json!([])).await;
    }
    let (events, cursor) = scan_all(&safe, cursor, &filter).await;
    delivered.extend(events);
    let (events, _) = scan_all(&safe, cursor, &filter).await;
    assert!(events.is_empty());

    let expected = vec![
        (Address::ZERO, deployer.address(), U256::from(1_000u64)),
        (deployer.address(), x, U256::from(1)),
        (deployer.address(), z, U256::from(7)),
        (deployer.address(), z, U256::from(8)),
    ];
    assert_eq!(
        decode_transfers(&delivered),
        expected,
        "no A1, nothing twice, nothing lost"
    );
    // And it is exactly what a fresh scan of the surviving chain sees.
    let (fresh, _) = scan_all(&safe, EventCursor::from_block(deployed_at), &filter).await;
    assert_eq!(fresh, delivered);

    // Without confirmations the abandoned event is delivered; the reorg is then detected.
    let fast = rpc(url, 0);
    let (_, cursor) = scan_all(&fast, EventCursor::from_block(deployed_at), &filter).await;
    let snapshot = raw_rpc(url, "evm_snapshot", json!([])).await;
    sender.send(&deployer, transfer(token, y, 5)).await.unwrap();
    let (events, cursor) = scan_all(&fast, cursor, &filter).await;
    assert_eq!(
        decode_transfers(&events),
        vec![(deployer.address(), y, U256::from(5))]
    );
    assert_eq!(
        raw_rpc(url, "evm_revert", json!([snapshot])).await,
        json!(true)
    );
    let sender = rpc(url, 0); // (the old one's cached nonce was reverted away)
    sender.send(&deployer, transfer(token, z, 9)).await.unwrap();
    sender
        .send(&deployer, transfer(token, z, 10))
        .await
        .unwrap();
    let err = fast.events_since(&cursor, &filter).await.unwrap_err();
    assert_eq!(
        err,
        ChainError::ReorgTooDeep {
            block: cursor.next_block
        }
    );
}
