//! The devchain JSON-RPC server, driven by alloy's HTTP provider and by raw requests.

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, U256, address};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use serde_json::{Value, json};
use smartmesh_chain::devchain::{self, DevchainServer};
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig};
use smartmesh_contracts::{SmartMeshToken, artifacts};

const DEV0: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const DEV1: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");

async fn start() -> (EmbeddedChain, DevchainServer) {
    let chain = EmbeddedChain::new(EmbeddedConfig::default()).expect("chain");
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("server");
    (chain, server)
}

fn signer(chain: &EmbeddedChain, index: usize) -> PrivateKeySigner {
    let key = chain.dev_keys()[index].to_bytes();
    PrivateKeySigner::from_bytes(&B256::from(key)).expect("key")
}

fn token_code(supply: u64) -> Vec<u8> {
    let args = SmartMeshToken::constructorCall {
        initialSupply: U256::from(supply),
        holder: DEV0,
    };
    let mut code = artifacts::smart_mesh_token().bytecode.to_vec();
    code.extend_from_slice(&args.abi_encode());
    code
}

async fn post(url: &str, body: &str) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn alloy_provider_end_to_end() {
    let (chain, server) = start().await;
    let url = server.url().parse().expect("url");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer(&chain, 0)))
        .connect_http(url);

    assert_eq!(provider.get_chain_id().await.expect("chain id"), 1337);
    assert_eq!(provider.get_block_number().await.expect("block number"), 0);
    let ether = U256::from(10u64).pow(U256::from(18u64));
    assert_eq!(
        provider.get_balance(DEV1).await.expect("balance"),
        U256::from(10_000u64) * ether
    );
    assert_eq!(provider.get_accounts().await.expect("accounts")[0], DEV0);

    // A signed EIP-1559 transfer.
    let before = provider.get_balance(DEV1).await.expect("balance");
    let tx = TransactionRequest::default()
        .with_to(DEV1)
        .with_value(U256::from(12345));
    let receipt = provider
        .send_transaction(tx)
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status());
    assert_eq!(receipt.gas_used, 21_000);
    assert_eq!(receipt.from, DEV0);
    assert_eq!(
        receipt.transaction_type(),
        alloy::consensus::TxType::Eip1559
    );
    assert_eq!(
        provider.get_balance(DEV1).await.expect("balance"),
        before + U256::from(12345)
    );
    let fetched = provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await
        .expect("tx")
        .expect("known tx");
    assert_eq!(
        alloy::consensus::Transaction::to(fetched.inner.inner()),
        Some(DEV1)
    );
    assert_eq!(fetched.inner.signer(), DEV0);

    // A legacy (EIP-155) transaction too.
    let legacy = TransactionRequest::default()
        .with_to(DEV1)
        .with_value(U256::from(1))
        .with_gas_price(2_000_000_000);
    let receipt = provider
        .send_transaction(legacy)
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status());
    assert_eq!(receipt.transaction_type(), alloy::consensus::TxType::Legacy);

    // Deploy the token and call it.
    let deploy = TransactionRequest::default().with_deploy_code(token_code(1_000));
    let receipt = provider
        .send_transaction(deploy)
        .await
        .expect("deploy")
        .get_receipt()
        .await
        .expect("receipt");
    let token = receipt.contract_address.expect("created");
    assert_eq!(
        provider.get_code_at(token).await.expect("code"),
        chain.code(token)
    );

    let transfer = SmartMeshToken::transferCall {
        to: DEV1,
        value: U256::from(300),
    };
    let tx = TransactionRequest::default()
        .with_to(token)
        .with_input(transfer.abi_encode());
    let receipt = provider
        .send_transaction(tx)
        .await
        .expect("transfer")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status());
    let logs = receipt.inner.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].block_hash, receipt.block_hash);
    assert_eq!(logs[0].transaction_hash, Some(receipt.transaction_hash));
    let event = SmartMeshToken::Transfer::decode_log(&logs[0].inner).expect("Transfer");
    assert_eq!(
        (event.from, event.to, event.value),
        (DEV0, DEV1, U256::from(300))
    );

    // eth_call.
    let call = TransactionRequest::default()
        .with_to(token)
        .with_input(SmartMeshToken::balanceOfCall { account: DEV1 }.abi_encode());
    let out = provider.call(call).await.expect("call");
    assert_eq!(
        SmartMeshToken::balanceOfCall::abi_decode_returns(&out).expect("decode"),
        U256::from(300)
    );

    // eth_getLogs: by address and topic, with a null position and an OR set.
    let filter = Filter::new()
        .address(token)
        .event_signature(SmartMeshToken::Transfer::SIGNATURE_HASH)
        .from_block(0u64)
        .to_block(BlockNumberOrTag::Latest);
    let found = provider.get_logs(&filter).await.expect("logs");
    assert_eq!(found.len(), 2, "mint and transfer");
    assert!(
        found
            .windows(2)
            .all(|w| w[0].block_number < w[1].block_number)
    );
    let to_dev1 = Filter::new()
        .address(token)
        .topic2(DEV1.into_word())
        .from_block(0u64);
    assert_eq!(provider.get_logs(&to_dev1).await.expect("logs").len(), 1);
    let by_hash = Filter::new().at_block_hash(receipt.block_hash.expect("hash"));
    assert_eq!(provider.get_logs(&by_hash).await.expect("logs").len(), 1);

    // Blocks in both shapes.
    let block = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .full()
        .await
        .expect("block")
        .expect("latest");
    assert_eq!(block.header.hash, receipt.block_hash.expect("hash"));
    assert_eq!(block.transactions.len(), 1);
    let by_hash = provider
        .get_block_by_hash(block.header.hash)
        .await
        .expect("block")
        .expect("known");
    assert_eq!(by_hash.header.number, block.header.number);
    assert_eq!(
        by_hash.header.parent_hash,
        chain.block(block.header.number - 1).expect("parent").hash
    );

    server.stop().await.expect("stop");
}

#[tokio::test]
async fn reverts_carry_the_error_data() {
    let (chain, server) = start().await;
    let url = server.url().parse().expect("url");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer(&chain, 1)))
        .connect_http(url);
    let token = chain
        .execute(DEV0, smartmesh_chain::TxRequest::deploy(token_code(10)))
        .expect("deploy")
        .contract_address
        .expect("created");
    let transfer = SmartMeshToken::transferCall {
        to: DEV0,
        value: U256::from(1),
    };
    let tx = TransactionRequest::default()
        .with_from(DEV1)
        .with_to(token)
        .with_input(transfer.abi_encode());

    let err = provider.call(tx.clone()).await.expect_err("reverts");
    let payload = err.as_error_resp().expect("an error response");
    assert_eq!(payload.code, 3);
    let data = payload.as_revert_data().expect("revert data");
    assert_eq!(
        smartmesh_contracts::revert_reason(&data)
            .as_deref()
            .and_then(|r| r.split('(').next()),
        Some("ERC20InsufficientBalance")
    );
    let decoded = payload
        .as_decoded_error::<SmartMeshToken::ERC20InsufficientBalance>()
        .expect("decoded");
    assert_eq!(decoded.sender, DEV1);

    // Sending estimates first, which fails the same way.
    let err = provider
        .send_transaction(tx.clone())
        .await
        .expect_err("estimate reverts");
    assert!(
        err.as_error_resp()
            .and_then(|p| p.as_revert_data())
            .is_some(),
        "{err}"
    );

    // With an explicit gas limit it is mined and fails with status 0.
    let receipt = provider
        .send_transaction(tx.with_gas_limit(100_000))
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(!receipt.status());
    assert!(receipt.gas_used > 21_000);
    assert_eq!(chain.nonce(DEV1), 1);
    let stored = chain.receipt(receipt.transaction_hash).expect("stored");
    assert_eq!(
        smartmesh_chain::ChainError::reverted(stored.revert_data, None).revert_name(),
        Some("ERC20InsufficientBalance")
    );
}

#[tokio::test]
async fn time_and_snapshot_methods() {
    let (chain, server) = start().await;
    let url = server.url().parse().expect("url");
    let provider = ProviderBuilder::new().connect_http(url);
    let latest = || async {
        provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .expect("block")
            .expect("latest")
            .header
    };
    let before = latest().await;
    let _: Value = provider
        .raw_request("evm_increaseTime".into(), (3_600u64,))
        .await
        .expect("increase");
    let _: Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine");
    let after = latest().await;
    assert_eq!(after.number, before.number + 1);
    assert!(
        after.timestamp >= before.timestamp + 3_600,
        "{} -> {}",
        before.timestamp,
        after.timestamp
    );

    let target = after.timestamp + 1_000;
    let _: Value = provider
        .raw_request("evm_setNextBlockTimestamp".into(), (target,))
        .await
        .expect("set");
    let _: Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine");
    assert_eq!(latest().await.timestamp, target);

    let snapshot: String = provider
        .raw_request("evm_snapshot".into(), ())
        .await
        .expect("snapshot");
    let _: Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine");
    assert_eq!(
        provider.get_block_number().await.expect("number"),
        after.number + 2
    );
    let reverted: bool = provider
        .raw_request("evm_revert".into(), (snapshot.clone(),))
        .await
        .expect("revert");
    assert!(reverted);
    assert_eq!(
        provider.get_block_number().await.expect("number"),
        after.number + 1
    );
    let again: bool = provider
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .expect("revert");
    assert!(!again);
    assert_eq!(chain.head().timestamp.0, target);
}

#[tokio::test]
async fn malformed_requests_and_batches() {
    let (_chain, server) = start().await;
    let url = server.url();

    let (_, reply) = post(&url, "{not json").await;
    assert_eq!(reply["error"]["code"], -32700);
    assert_eq!(reply["id"], Value::Null);

    let (_, reply) = post(&url, r#"{"jsonrpc":"2.0","id":1}"#).await;
    assert_eq!(reply["error"]["code"], -32600);
    let (_, reply) = post(&url, r#""eth_chainId""#).await;
    assert_eq!(reply["error"]["code"], -32600);
    let (_, reply) = post(&url, r#"{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}"#).await;
    assert_eq!(reply["error"]["code"], -32600);
    let (_, reply) = post(&url, "[]").await;
    assert_eq!(reply["error"]["code"], -32600);

    let (_, reply) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":7,"method":"eth_nope","params":[]}"#,
    )
    .await;
    assert_eq!(reply["error"]["code"], -32601);
    assert_eq!(reply["id"], 7);
    let (_, reply) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":8,"method":"eth_getBalance","params":["0x12"]}"#,
    )
    .await;
    assert_eq!(reply["error"]["code"], -32602);
    let (_, reply) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":9,"method":"eth_getBalance","params":[]}"#,
    )
    .await;
    assert_eq!(reply["error"]["code"], -32602);
    let (_, reply) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":10,"method":"eth_sendRawTransaction","params":["0x02ff"]}"#,
    )
    .await;
    assert_eq!(reply["error"]["code"], -32000);
    let (_, reply) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":11,"method":"eth_getBalance","params":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","0x99"]}"#,
    )
    .await;
    assert_eq!(reply["error"]["code"], -32000);

    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": "two", "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "method": "evm_mine"},
        {"jsonrpc": "2.0", "id": 3, "method": "net_version"},
        5
    ]);
    let (_, reply) = post(&url, &batch.to_string()).await;
    let replies = reply.as_array().expect("batch reply");
    assert_eq!(replies.len(), 4, "the notification gets no reply: {reply}");
    assert_eq!(
        replies[0],
        json!({"jsonrpc": "2.0", "id": 1, "result": "0x539"})
    );
    assert_eq!(replies[1]["id"], "two");
    assert_eq!(replies[2]["result"], "1337");
    assert_eq!(replies[3]["error"]["code"], -32600);

    // Only notifications: nothing to answer.
    let (status, _) = post(&url, r#"{"jsonrpc":"2.0","method":"evm_mine"}"#).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);

    let too_many: Vec<Value> = (0..devchain::MAX_BATCH + 1)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}))
        .collect();
    let (_, reply) = post(&url, &Value::Array(too_many).to_string()).await;
    assert_eq!(reply["error"]["code"], -32600);

    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["{}"]}}"#,
        "a".repeat(devchain::MAX_BODY_BYTES)
    );
    let (status, _) = post(&url, &huge).await;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn banner_lists_accounts_and_contracts() {
    let chain = EmbeddedChain::new(EmbeddedConfig::with_contracts()).expect("chain");
    let banner = devchain::startup_banner(&chain);
    assert!(
        banner.contains("Account #0: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        "{banner}"
    );
    assert!(banner.contains(
        "Private Key: 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    ));
    assert!(banner.contains("Account #9:"));
    let deployment = chain.deployment().expect("deployed");
    assert!(banner.contains(&deployment.token_network.to_string()));
    assert!(banner.contains(&deployment.token.to_string()));
}

#[tokio::test]
async fn interval_mining_over_rpc() {
    let chain = EmbeddedChain::new(EmbeddedConfig {
        mining: smartmesh_chain::embedded::Mining::Interval(std::time::Duration::from_millis(50)),
        ..Default::default()
    })
    .expect("chain");
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("server");
    let url = server.url().parse().expect("url");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer(&chain, 2)))
        .connect_http(url);
    let from = chain.dev_accounts()[2];
    let first = provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(DEV1)
                .with_value(U256::from(1)),
        )
        .await
        .expect("send");
    // Pending nonce counts the queued transaction.
    assert_eq!(
        provider
            .get_transaction_count(from)
            .pending()
            .await
            .expect("nonce"),
        1
    );
    let second = provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(DEV1)
                .with_value(U256::from(2)),
        )
        .await
        .expect("send");
    let first = first.get_receipt().await.expect("receipt");
    let second = second.get_receipt().await.expect("receipt");
    assert!(first.status() && second.status());
    assert!(first.block_number <= second.block_number);
    assert_eq!(chain.nonce(from), 2);
    server.stop().await.expect("stop");
}
