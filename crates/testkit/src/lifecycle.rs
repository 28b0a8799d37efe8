//! Funded participants driving the TokenNetwork through its operations on any chain
//! backend — the embedded chain, `smartmesh devchain`, or a third-party node — returning
//! each transaction's receipt. Used by the contract tests, `gas-report` and the demo.

use alloy::sol_types::SolCall;
use smartmesh_chain::deploy::{DeployConfig, Deployment, Grant, deploy};
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, dev_keys};
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_chain::token_network::{
    Balance, Channel, ChannelTracker, TokenNetworkSigner, calls, no_balance, opened_channel_id,
};
use smartmesh_chain::{CallRequest, Chain, ChainError, TxReceipt, TxRequest};
use smartmesh_contracts::{SecretRegistry, SmartMeshToken, TokenNetwork};
use smartmesh_primitives::{Address, B256, Bytes, PrivateKey, Signature, U256, eip712, keccak256};
use std::sync::Arc;

/// Settle timeout used by the lifecycle, seconds.
pub const SETTLE_TIMEOUT: u64 = 600;

/// How chain time is moved forward on a backend.
#[derive(Clone)]
enum Clock {
    Embedded(EmbeddedChain),
    /// `evm_increaseTime` + `evm_mine` over JSON-RPC (devchain, Hardhat, Anvil, Ganache).
    Rpc(String),
}

/// A chain with the contracts, funded participants and a channel tracker.
pub struct Lifecycle {
    /// The chain.
    pub chain: Arc<dyn Chain>,
    clock: Clock,
    /// Where the contracts are.
    pub deployment: Deployment,
    /// Signs the TokenNetwork's typed data.
    pub signer: TokenNetworkSigner,
    /// Channel states rebuilt from events.
    pub tracker: ChannelTracker,
    /// Development keys 1.. (key 0 deployed the contracts).
    pub keys: Vec<PrivateKey>,
}
/// One SMT in base units.
pub fn smt(whole: u64) -> U256 {
    U256::from(whole) * U256::from(10u64).pow(U256::from(18u64))
}

/// An SMT amount with three decimals, for reports.
pub fn fmt_smt(amount: U256) -> String {
    let unit = smt(1);
    let whole = amount / unit;
    let frac = (amount % unit) / (unit / U256::from(1000u64));
    format!("{whole}.{frac:03}")
}

impl Lifecycle {
    /// An embedded chain whose genesis deploys the contracts; dev accounts
    /// 1..=`participants` hold 1,000,000 SMT each and have approved the TokenNetwork.
    pub async fn embedded(participants: usize) -> Result<Self, ChainError> {
        Self::embedded_with(participants, |_| {}).await
    }

    /// Like [`Lifecycle::embedded`], with the chain configuration (including the genesis
    /// deployment, prefilled with the participants' grants) adjusted by `configure`.
    pub async fn embedded_with(
        participants: usize,
        configure: impl FnOnce(&mut EmbeddedConfig),
    ) -> Result<Self, ChainError> {
        let keys = participant_keys(participants)?;
        let mut config = EmbeddedConfig {
            deploy: Some(deploy_config(&keys)),
            ..EmbeddedConfig::default()
        };
        configure(&mut config);
        let chain = EmbeddedChain::new(config)?;
        let deployment = chain
            .deployment()
            .ok_or_else(|| ChainError::Invalid("embedded chain has no deployment".into()))?;
        Self::start(
            Arc::new(chain.clone()),
            Clock::Embedded(chain),
            deployment,
            keys,
        )
        .await
    }

    /// The same over JSON-RPC: deploys from dev account 0 to the node at `url` (whose
    /// dev accounts come from the well-known mnemonic and which answers
    /// `evm_increaseTime`).
    pub async fn over_rpc(url: &str, participants: usize) -> Result<Self, ChainError> {
        let keys = participant_keys(participants)?;
        let chain = RpcChain::connect(RpcConfig {
            confirmations: 0,
            ..RpcConfig::new(url)
        })?;
        let deployment = deploy(&chain, &deployer_key()?, &deploy_config(&keys), |_, _| {}).await?;
        Self::start(
            Arc::new(chain),
            Clock::Rpc(url.to_string()),
            deployment,
            keys,
        )
        .await
    }

    async fn start(
        chain: Arc<dyn Chain>,
        clock: Clock,
        deployment: Deployment,
        keys: Vec<PrivateKey>,
    ) -> Result<Self, ChainError> {
        let signer = TokenNetworkSigner::new(deployment.chain_id, deployment.token_network);
        let tracker = ChannelTracker::new(deployment.token_network);
        let me = Self {
            chain,
            clock,
            deployment,
            signer,
            tracker,
            keys,
        };
        for key in &me.keys {
            let approve = SmartMeshToken::approveCall {
                spender: me.deployment.token_network,
                value: U256::MAX,
            };
            me.send(key, me.deployment.token, approve.abi_encode().into())
                .await?;
        }
        Ok(me)
    }

    /// Sends `data` to `to` from `from`.
    pub async fn send(
        &self,
        from: &PrivateKey,
        to: Address,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.chain.send(from, TxRequest::call(to, data)).await
    }

    /// Mines a block `seconds` after the newest one (as Hardhat's `time.increase`:
    /// relative to the newest block, not to a wall clock that fast mining ran ahead of).
    pub async fn increase_time(&self, seconds: u64) -> Result<(), ChainError> {
        let target = self
            .chain
            .head()
            .await?
            .timestamp
            .0
            .saturating_add(seconds.max(1));
        match &self.clock {
            Clock::Embedded(chain) => {
                chain.set_next_block_timestamp(target)?;
                chain.mine();
            }
            Clock::Rpc(url) => {
                rpc_request(
                    url,
                    "evm_setNextBlockTimestamp",
                    serde_json::json!([target]),
                )
                .await?;
                rpc_request(url, "evm_mine", serde_json::json!([])).await?;
            }
        }
        Ok(())
    }

    /// Sends `data` to the TokenNetwork from `from` and tracks the channel events.
    pub async fn tn(&mut self, from: &PrivateKey, data: Bytes) -> Result<TxReceipt, ChainError> {
        let receipt = self.send(from, self.deployment.token_network, data).await?;
        self.tracker.apply_all(&receipt.logs);
        Ok(receipt)
    }

    /// The tracked state of channel `id`.
    pub fn channel(&self, id: U256) -> Result<Channel, ChainError> {
        self.tracker
            .channel(id)
            .cloned()
            .ok_or_else(|| ChainError::Invalid(format!("channel {id} is not open")))
    }

    /// Opens a channel between `a` and `b` with no deposit.
    pub async fn open(
        &mut self,
        a: &PrivateKey,
        b: &PrivateKey,
    ) -> Result<(U256, TxReceipt), ChainError> {
        let receipt = self
            .tn(a, calls::open(a.address(), b.address(), SETTLE_TIMEOUT))
            .await?;
        let id = opened_channel_id(&receipt.logs)
            .ok_or_else(|| ChainError::InvalidResponse("no ChannelOpened".into()))?;
        Ok((id, receipt))
    }

    /// Opens a channel from `a` to `b` depositing `deposit` for `a`.
    pub async fn open_with_deposit(
        &mut self,
        a: &PrivateKey,
        b: &PrivateKey,
        deposit: U256,
    ) -> Result<(U256, TxReceipt), ChainError> {
        let receipt = self
            .tn(
                a,
                calls::open_with_deposit(b.address(), SETTLE_TIMEOUT, deposit),
            )
            .await?;
        let id = opened_channel_id(&receipt.logs)
            .ok_or_else(|| ChainError::InvalidResponse("no ChannelOpened".into()))?;
        Ok((id, receipt))
    }

    /// Raises `who`'s total deposit in channel `id`.
    pub async fn deposit(
        &mut self,
        id: U256,
        who: &PrivateKey,
        total: U256,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        self.tn(who, calls::set_total_deposit(id, &ch, who.address(), total))
            .await
    }

    /// A balance proof `sender` signs in channel `id` (no locks).
    pub fn proof(
        &self,
        sender: &PrivateKey,
        id: U256,
        nonce: u64,
        transferred: U256,
    ) -> SignedBalance {
        self.proof_with_locks(sender, id, nonce, transferred, &[])
    }

    /// A balance proof with pending locks.
    pub fn proof_with_locks(
        &self,
        sender: &PrivateKey,
        id: U256,
        nonce: u64,
        transferred: U256,
        locks: &[eip712::Lock],
    ) -> SignedBalance {
        let locked = locks.iter().fold(U256::ZERO, |sum, lock| sum + lock.amount);
        let balance = Balance {
            nonce,
            transferredAmount: transferred,
            lockedAmount: locked,
            locksroot: eip712::locksroot(locks),
        };
        let message_hash = keccak256(format!("message {id}/{nonce}"));
        let signature = self
            .signer
            .balance_proof(sender, id, &balance, message_hash);
        SignedBalance {
            balance,
            message_hash,
            signature,
        }
    }

    /// `closer` closes channel `id` with the partner's proof (or none) and its declaration.
    pub async fn close(
        &mut self,
        id: U256,
        closer: &PrivateKey,
        partner_proof: Option<&SignedBalance>,
        declared: &Balance,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        let (proof, hash, sig) = match partner_proof {
            Some(p) => (p.balance.clone(), p.message_hash, p.signature.clone()),
            None => (no_balance(), B256::ZERO, Default::default()),
        };
        self.tn(
            closer,
            calls::close(id, &ch, proof, hash, sig, declared.clone()),
        )
        .await
    }

    /// The non-closer presents the closer's signed proof.
    pub async fn update(
        &mut self,
        id: U256,
        non_closer: &PrivateKey,
        closer_proof: &SignedBalance,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        self.tn(
            non_closer,
            calls::update(
                id,
                &ch,
                closer_proof.balance.clone(),
                closer_proof.message_hash,
                closer_proof.signature.clone(),
                Default::default(),
            ),
        )
        .await
    }

    /// Moves chain time past the settle timeout and settles channel `id`.
    pub async fn settle(&mut self, id: U256, by: &PrivateKey) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        self.increase_time(ch.settleTimeout + 1).await?;
        self.tn(by, calls::settle(id, &ch)).await
    }

    /// Both sign and `by` submits a cooperative settlement.
    pub async fn cooperative_settle(
        &mut self,
        id: U256,
        a: &PrivateKey,
        b: &PrivateKey,
        balance1: U256,
        balance2: U256,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        let (k1, k2) = if ch.participant1 == a.address() {
            (a, b)
        } else {
            (b, a)
        };
        let sig1 = self
            .signer
            .cooperative_settle(k1, id, &ch, balance1, balance2);
        let sig2 = self
            .signer
            .cooperative_settle(k2, id, &ch, balance1, balance2);
        self.tn(
            a,
            calls::cooperative_settle(id, &ch, balance1, balance2, sig1, sig2),
        )
        .await
    }

    /// Registers `secret` in the SecretRegistry.
    pub async fn register_secret(
        &mut self,
        by: &PrivateKey,
        secret: B256,
    ) -> Result<TxReceipt, ChainError> {
        let call = SecretRegistry::registerSecretCall { secret };
        self.send(
            by,
            self.deployment.secret_registry,
            call.abi_encode().into(),
        )
        .await
    }

    /// SMT balance of `who`.
    pub async fn smt_balance(&self, who: Address) -> Result<U256, ChainError> {
        let call = SmartMeshToken::balanceOfCall { account: who };
        let out = self
            .chain
            .call(CallRequest::new(self.deployment.token, call.abi_encode()))
            .await?;
        SmartMeshToken::balanceOfCall::abi_decode_returns(&out)
            .map_err(|e| ChainError::InvalidResponse(format!("balanceOf: {e}")))
    }
}

/// Helpers added for the contract tests and the shared flows (`crate::flows`).
impl Lifecycle {
    /// The embedded chain behind this lifecycle, when it runs on one (for snapshots and
    /// other development controls the `Chain` interface does not have).
    pub fn embedded_chain(&self) -> Option<&EmbeddedChain> {
        match &self.clock {
            Clock::Embedded(chain) => Some(chain),
            Clock::Rpc(_) => None,
        }
    }

    /// Chain time of the newest block, in seconds.
    pub async fn now(&self) -> Result<u64, ChainError> {
        Ok(self.chain.time().await?.0)
    }

    /// The next block gets exactly `timestamp` (which must be after the newest block's).
    pub async fn set_next_block_timestamp(&self, timestamp: u64) -> Result<(), ChainError> {
        match &self.clock {
            Clock::Embedded(chain) => chain.set_next_block_timestamp(timestamp),
            Clock::Rpc(url) => {
                rpc_request(
                    url,
                    "evm_setNextBlockTimestamp",
                    serde_json::json!([timestamp]),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Runs `call` against `to` read-only and decodes its return value.
    pub async fn view<C: SolCall>(&self, to: Address, call: C) -> Result<C::Return, ChainError> {
        let out = self
            .chain
            .call(CallRequest::new(to, call.abi_encode()))
            .await?;
        C::abi_decode_returns(&out)
            .map_err(|e| ChainError::InvalidResponse(format!("{}: {e}", C::SIGNATURE)))
    }

    /// Deploys `creation_code` (bytecode followed by the ABI-encoded constructor
    /// arguments) from `from` and returns the new contract's address.
    pub async fn deploy_contract(
        &self,
        from: &PrivateKey,
        creation_code: Vec<u8>,
    ) -> Result<Address, ChainError> {
        let receipt = self
            .chain
            .send(from, TxRequest::deploy(creation_code))
            .await?;
        receipt
            .contract_address
            .ok_or_else(|| ChainError::InvalidResponse("deployment without an address".into()))
    }

    /// SMT balance of the TokenNetwork (what all its channels hold).
    pub async fn network_balance(&self) -> Result<U256, ChainError> {
        self.smt_balance(self.deployment.token_network).await
    }

    /// Sends `data` to the SMT token from `from`.
    pub async fn token_send(
        &self,
        from: &PrivateKey,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.send(from, self.deployment.token, data).await
    }

    /// Transfers `amount` SMT from `from` to `to`.
    pub async fn smt_transfer(
        &self,
        from: &PrivateKey,
        to: Address,
        amount: U256,
    ) -> Result<TxReceipt, ChainError> {
        self.token_send(
            from,
            SmartMeshToken::transferCall { to, value: amount }
                .abi_encode()
                .into(),
        )
        .await
    }

    /// The SMT token's EIP-712 domain.
    pub fn token_domain(&self) -> alloy::sol_types::Eip712Domain {
        eip712::token_domain(self.deployment.chain_id, self.deployment.token)
    }

    /// `owner`'s EIP-2612 permit for `spender`, with `owner`'s current permit nonce.
    pub async fn sign_permit(
        &self,
        owner: &PrivateKey,
        spender: Address,
        value: U256,
        deadline: U256,
    ) -> Result<Signature, ChainError> {
        let nonce = self
            .view(
                self.deployment.token,
                SmartMeshToken::noncesCall {
                    owner: owner.address(),
                },
            )
            .await?;
        let permit = eip712::Permit {
            owner: owner.address(),
            spender,
            value,
            nonce,
            deadline,
        };
        Ok(eip712::sign(owner, &permit, &self.token_domain()))
    }

    /// `submitter` sends `owner`'s signed permit to the token.
    pub async fn submit_permit(
        &self,
        submitter: &PrivateKey,
        owner: Address,
        spender: Address,
        value: U256,
        deadline: U256,
        signature: &Signature,
    ) -> Result<TxReceipt, ChainError> {
        let sig = signature.as_bytes();
        let call = SmartMeshToken::permitCall {
            owner,
            spender,
            value,
            deadline,
            v: sig[64],
            r: B256::from_slice(&sig[..32]),
            s: B256::from_slice(&sig[32..64]),
        };
        self.token_send(submitter, call.abi_encode().into()).await
    }

    /// `owner` signs a permit for `spender` and `submitter` sends it (gasless approval).
    pub async fn permit(
        &self,
        submitter: &PrivateKey,
        owner: &PrivateKey,
        spender: Address,
        value: U256,
        deadline: U256,
    ) -> Result<TxReceipt, ChainError> {
        let signature = self.sign_permit(owner, spender, value, deadline).await?;
        self.submit_permit(
            submitter,
            owner.address(),
            spender,
            value,
            deadline,
            &signature,
        )
        .await
    }

    /// `from`'s signature of a `TransferWithFee` authorization.
    pub fn sign_transfer_with_fee(
        &self,
        from: &PrivateKey,
        auth: &eip712::TransferWithFee,
    ) -> Bytes {
        Bytes::copy_from_slice(eip712::sign(from, auth, &self.token_domain()).as_bytes())
    }

    /// `submitter` (normally `auth.agent`) executes a signed `TransferWithFee`.
    pub async fn submit_transfer_with_fee(
        &self,
        submitter: &PrivateKey,
        auth: &eip712::TransferWithFee,
        signature: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        let call = SmartMeshToken::transferWithFeeCall {
            from: auth.from,
            to: auth.to,
            value: auth.value,
            fee: auth.fee,
            agent: auth.agent,
            validAfter: auth.validAfter,
            validBefore: auth.validBefore,
            nonce: auth.nonce,
            signature,
        };
        self.token_send(submitter, call.abi_encode().into()).await
    }

    /// `authorizer`'s signature cancelling its authorization `nonce`.
    pub fn sign_cancel_authorization(&self, authorizer: &PrivateKey, nonce: B256) -> Bytes {
        let cancel = eip712::CancelAuthorization {
            authorizer: authorizer.address(),
            nonce,
        };
        Bytes::copy_from_slice(eip712::sign(authorizer, &cancel, &self.token_domain()).as_bytes())
    }

    /// `submitter` sends a signed cancellation of `authorizer`'s `nonce`.
    pub async fn submit_cancel_authorization(
        &self,
        submitter: &PrivateKey,
        authorizer: Address,
        nonce: B256,
        signature: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        let call = SmartMeshToken::cancelAuthorizationCall {
            authorizer,
            nonce,
            signature,
        };
        self.token_send(submitter, call.abi_encode().into()).await
    }

    /// Whether `authorizer`'s `nonce` is used or cancelled.
    pub async fn authorization_state(
        &self,
        authorizer: Address,
        nonce: B256,
    ) -> Result<bool, ChainError> {
        self.view(
            self.deployment.token,
            SmartMeshToken::authorizationStateCall { authorizer, nonce },
        )
        .await
    }

    /// Both participants sign a `WithdrawProof` and `participant` submits it.
    pub async fn withdraw(
        &mut self,
        id: U256,
        participant: &PrivateKey,
        partner: &PrivateKey,
        total_withdraw: U256,
        expiration: U256,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        let mine = self.signer.withdraw(
            participant,
            id,
            participant.address(),
            total_withdraw,
            expiration,
        );
        let theirs = self.signer.withdraw(
            partner,
            id,
            participant.address(),
            total_withdraw,
            expiration,
        );
        self.tn(
            participant,
            calls::withdraw(
                id,
                &ch,
                participant.address(),
                total_withdraw,
                expiration,
                mine,
                theirs,
            ),
        )
        .await
    }

    /// `agent` submits `participant`'s signed `DepositAuthorization` (the participant
    /// needs an SMT allowance for the TokenNetwork, e.g. from [`Lifecycle::permit`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn deposit_with_authorization(
        &mut self,
        id: U256,
        agent: &PrivateKey,
        participant: &PrivateKey,
        total_deposit: U256,
        fee: U256,
        deadline: U256,
    ) -> Result<TxReceipt, ChainError> {
        let auth = self.signer.deposit_authorization(
            participant,
            id,
            total_deposit,
            agent.address(),
            fee,
            deadline,
        );
        self.submit_deposit_with_authorization(
            id,
            agent,
            participant.address(),
            total_deposit,
            fee,
            deadline,
            auth,
        )
        .await
    }

    /// `submitter` sends a `depositWithAuthorization` with the given signature.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_deposit_with_authorization(
        &mut self,
        id: U256,
        submitter: &PrivateKey,
        participant: Address,
        total_deposit: U256,
        fee: U256,
        deadline: U256,
        auth_sig: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        let call = TokenNetwork::depositWithAuthorizationCall {
            id,
            ch,
            participant,
            totalDeposit: total_deposit,
            fee,
            deadline,
            authSig: auth_sig,
        };
        self.tn(submitter, call.abi_encode().into()).await
    }

    /// A delegate (watchtower) presents the closer's proof with the non-closer's
    /// `UpdateAuthorization` signature.
    pub async fn update_by_delegate(
        &mut self,
        id: U256,
        delegate: &PrivateKey,
        non_closer: &PrivateKey,
        closer_proof: &SignedBalance,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        let auth = self.signer.update_authorization(
            non_closer,
            id,
            ch.closer,
            &closer_proof.balance,
            closer_proof.message_hash,
        );
        self.tn(
            delegate,
            calls::update(
                id,
                &ch,
                closer_proof.balance.clone(),
                closer_proof.message_hash,
                closer_proof.signature.clone(),
                auth,
            ),
        )
        .await
    }

    /// Settles channel `id` now, without moving chain time.
    pub async fn settle_now(&mut self, id: U256, by: &PrivateKey) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        self.tn(by, calls::settle(id, &ch)).await
    }

    /// `by` unlocks the locks `sender` had pending towards `receiver` at settlement.
    pub async fn unlock(
        &mut self,
        id: U256,
        by: &PrivateKey,
        sender: Address,
        receiver: Address,
        locks: &[eip712::Lock],
    ) -> Result<TxReceipt, ChainError> {
        self.tn(
            by,
            calls::unlock(id, sender, receiver, eip712::encode_locks(locks)),
        )
        .await
    }

    /// The amount retained at settlement for `sender -> receiver` with `locksroot`.
    pub async fn pending_locked_amount(
        &self,
        id: U256,
        sender: Address,
        receiver: Address,
        locksroot: B256,
    ) -> Result<U256, ChainError> {
        let call = TokenNetwork::pendingLockedAmountCall {
            id,
            sender,
            receiver,
            locksroot,
        };
        self.view(self.deployment.token_network, call).await
    }

    /// The stored commitment of channel `id` (zero when unknown or finished).
    pub async fn channel_hash(&self, id: U256) -> Result<B256, ChainError> {
        self.view(
            self.deployment.token_network,
            TokenNetwork::channelHashCall { id },
        )
        .await
    }

    /// Registers several secrets in one transaction.
    pub async fn register_secrets(
        &self,
        by: &PrivateKey,
        secrets: &[B256],
    ) -> Result<TxReceipt, ChainError> {
        let call = SecretRegistry::registerSecretBatchCall {
            secrets: secrets.to_vec(),
        };
        self.send(
            by,
            self.deployment.secret_registry,
            call.abi_encode().into(),
        )
        .await
    }

    /// When the secret of `secrethash` was registered (0 if never).
    pub async fn secret_reveal_time(&self, secrethash: B256) -> Result<u64, ChainError> {
        let call = SecretRegistry::getSecretRevealTimeCall { secrethash };
        let time = self.view(self.deployment.secret_registry, call).await?;
        u64::try_from(time)
            .map_err(|_| ChainError::InvalidResponse(format!("reveal time {time} out of range")))
    }
}

/// A balance proof with its message hash and signature.
#[derive(Debug, Clone)]
pub struct SignedBalance {
    /// The balance data.
    pub balance: Balance,
    /// Hash of the message that carried it.
    pub message_hash: B256,
    /// The sender's signature.
    pub signature: Bytes,
}

fn participant_keys(participants: usize) -> Result<Vec<PrivateKey>, ChainError> {
    Ok(dev_keys(participants + 1).into_iter().skip(1).collect())
}

fn deployer_key() -> Result<PrivateKey, ChainError> {
    dev_keys(1)
        .into_iter()
        .next()
        .ok_or_else(|| ChainError::Invalid("no development key".into()))
}

fn deploy_config(keys: &[PrivateKey]) -> DeployConfig {
    DeployConfig {
        min_settle_timeout: 10,
        grants: keys
            .iter()
            .map(|k| Grant {
                to: k.address(),
                amount: smt(1_000_000),
            })
            .collect(),
        ..DeployConfig::default()
    }
}

/// One JSON-RPC call (for the development methods the `Chain` trait does not cover).
async fn rpc_request(
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, ChainError> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let unreachable = |e: reqwest::Error| ChainError::Unreachable {
        endpoint: url.to_string(),
        reason: e.to_string(),
    };
    let response: serde_json::Value = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(unreachable)?
        .json()
        .await
        .map_err(unreachable)?;
    match response.get("error") {
        Some(error) => Err(ChainError::Rejected(format!("{method}: {error}"))),
        None => Ok(response.get("result").cloned().unwrap_or_default()),
    }
}
