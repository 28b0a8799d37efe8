//! Deploys the SmartMesh contracts to any chain and describes where they are.
//!
//! [`plan`] turns a [`DeployConfig`] into the exact transactions (the contract
//! addresses follow from the deployer's nonce), so the embedded chain runs the same plan
//! at genesis that [`deploy`] sends to an external node.

use crate::{Chain, ChainError, TxRequest};
use alloy::sol_types::{SolCall, SolConstructor};
use serde::{Deserialize, Serialize};
use smartmesh_contracts::{SmartMeshToken, SmartMeshVesting, TokenNetwork, artifacts};
use smartmesh_primitives::{Address, BlockNumber, Bytes, ChainId, PrivateKey, U256};
use std::path::Path;

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// SMT supply in base units (18 decimals), minted once to the deployer.
    pub smt_supply: U256,
    /// Shortest settle timeout a channel may have, in seconds.
    pub min_settle_timeout: u64,
    /// Longest settle timeout a channel may have, in seconds.
    pub max_settle_timeout: u64,
    /// Vesting allocations, each a wallet funded from the deployer's SMT.
    pub vesting: Vec<VestingAllocation>,
    /// Plain SMT grants from the deployer (development accounts, faucets).
    pub grants: Vec<Grant>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            smt_supply: smartmesh_contracts::default_smt_supply(),
            // Dev chains use short timeouts; a production deployment sets days.
            min_settle_timeout: 10,
            max_settle_timeout: 60 * 60 * 24 * 365,
            vesting: Vec::new(),
            grants: Vec::new(),
        }
    }
}

impl DeployConfig {
    /// Reads a TOML or JSON config file (by extension).
    pub fn from_file(path: &Path) -> Result<Self, ChainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let parsed = if path.extension().is_some_and(|ext| ext == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| ChainError::Invalid(format!("{}: {e}", path.display())))
    }

    fn validate(&self) -> Result<(), ChainError> {
        if self.min_settle_timeout == 0 || self.min_settle_timeout > self.max_settle_timeout {
            return Err(ChainError::Invalid(format!(
                "settle timeouts must satisfy 0 < min ({}) <= max ({})",
                self.min_settle_timeout, self.max_settle_timeout
            )));
        }
        let mut total = U256::ZERO;
        for amount in self
            .vesting
            .iter()
            .map(|v| v.amount)
            .chain(self.grants.iter().map(|g| g.amount))
        {
            total = total
                .checked_add(amount)
                .ok_or_else(|| ChainError::Invalid("allocations overflow".into()))?;
        }
        if total > self.smt_supply {
            return Err(ChainError::Invalid(format!(
                "allocations ({total}) exceed the SMT supply ({})",
                self.smt_supply
            )));
        }
        for v in &self.vesting {
            if v.release_period == 0 || v.cliff > v.duration {
                return Err(ChainError::Invalid(format!(
                    "vesting for {}: need release_period > 0 and cliff <= duration",
                    v.beneficiary
                )));
            }
        }
        Ok(())
    }
}

/// A vesting allocation: nothing before `start + cliff`, then released in steps of
/// `release_period` until `start + duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VestingAllocation {
    /// Who receives the tokens.
    pub beneficiary: Address,
    /// SMT base units.
    pub amount: U256,
    /// Start, chain time in seconds.
    pub start: u64,
    /// Total duration in seconds.
    pub duration: u64,
    /// Cliff in seconds from `start`.
    pub cliff: u64,
    /// Step size in seconds (a quarter by default).
    #[serde(default = "quarter")]
    pub release_period: u64,
}

fn quarter() -> u64 {
    smartmesh_contracts::QUARTER_SECONDS
}

/// A plain SMT transfer from the deployer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Recipient.
    pub to: Address,
    /// SMT base units.
    pub amount: U256,
}

/// Where the contracts are; the file nodes read (`deployment.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain they are on.
    pub chain_id: ChainId,
    /// The deploying account, which received the SMT supply.
    pub deployer: Address,
    /// The SMT token.
    pub token: Address,
    /// The secret registry.
    pub secret_registry: Address,
    /// The token network for SMT.
    pub token_network: Address,
    /// The block of the first deployment transaction: event scanning starts here.
    pub start_block: BlockNumber,
    /// Shortest settle timeout allowed, seconds.
    pub min_settle_timeout: u64,
    /// Longest settle timeout allowed, seconds.
    pub max_settle_timeout: u64,
    /// The vesting wallets created.
    pub vesting: Vec<VestingWallet>,
}

impl Deployment {
    /// Writes the deployment as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), ChainError> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ChainError::Invalid(format!("cannot encode deployment: {e}")))?;
        std::fs::write(path, json + "\n")
            .map_err(|e| ChainError::Invalid(format!("cannot write {}: {e}", path.display())))
    }

    /// Reads a deployment file.
    pub fn read(path: &Path) -> Result<Self, ChainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            ChainError::Invalid(format!("{} is not a deployment file: {e}", path.display()))
        })
    }
}

/// One vesting wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VestingWallet {
    /// Its address.
    pub wallet: Address,
    /// The allocation it holds.
    pub allocation: VestingAllocation,
}

/// The transactions of a deployment and the addresses they will create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    /// To be sent in order from the deployer, starting at `start_nonce`.
    pub txs: Vec<TxRequest>,
    /// The deployment they produce (`start_block` is 0 until executed).
    pub deployment: Deployment,
}

fn creation(code: &Bytes, args: Vec<u8>) -> TxRequest {
    let mut data = code.to_vec();
    data.extend_from_slice(&args);
    TxRequest::deploy(data)
}

/// The deployment transactions for `config`, sent by `deployer` from `start_nonce` on.
pub fn plan(
    config: &DeployConfig,
    chain_id: ChainId,
    deployer: Address,
    start_nonce: u64,
) -> Result<DeployPlan, ChainError> {
    config.validate()?;
    let mut nonce = start_nonce;
    let mut next_address = || {
        let address = deployer.create(nonce);
        nonce += 1;
        address
    };
    let mut txs = Vec::new();

    let secret_registry = next_address();
    txs.push(creation(&artifacts::secret_registry().bytecode, Vec::new()));

    let token = next_address();
    let token_args = SmartMeshToken::constructorCall {
        initialSupply: config.smt_supply,
        holder: deployer,
    };
    txs.push(creation(
        &artifacts::smart_mesh_token().bytecode,
        token_args.abi_encode(),
    ));

    let token_network = next_address();
    let network_args = TokenNetwork::constructorCall {
        token_: token,
        secretRegistry_: secret_registry,
        minSettleTimeout_: config.min_settle_timeout,
        maxSettleTimeout_: config.max_settle_timeout,
    };
    txs.push(creation(
        &artifacts::token_network().bytecode,
        network_args.abi_encode(),
    ));

    let transfer = |to: Address, amount: U256| {
        TxRequest::call(
            token,
            SmartMeshToken::transferCall { to, value: amount }.abi_encode(),
        )
    };
    let mut vesting = Vec::new();
    for allocation in &config.vesting {
        let wallet = next_address();
        let args = SmartMeshVesting::constructorCall {
            beneficiary: allocation.beneficiary,
            startTimestamp: allocation.start,
            durationSeconds: allocation.duration,
            cliffSeconds: allocation.cliff,
            releasePeriodSeconds: allocation.release_period,
        };
        txs.push(creation(
            &artifacts::smart_mesh_vesting().bytecode,
            args.abi_encode(),
        ));
        txs.push(transfer(wallet, allocation.amount));
        next_address(); // the transfer uses a nonce too
        vesting.push(VestingWallet {
            wallet,
            allocation: allocation.clone(),
        });
    }
    for grant in &config.grants {
        txs.push(transfer(grant.to, grant.amount));
        next_address();
    }

    Ok(DeployPlan {
        txs,
        deployment: Deployment {
            chain_id,
            deployer,
            token,
            secret_registry,
            token_network,
            start_block: BlockNumber(0),
            min_settle_timeout: config.min_settle_timeout,
            max_settle_timeout: config.max_settle_timeout,
            vesting,
        },
    })
}

/// Deploys to `chain` from `deployer`, reporting each step to `progress`, and checks
/// that every contract landed where the plan said.
pub async fn deploy(
    chain: &dyn Chain,
    deployer: &PrivateKey,
    config: &DeployConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<Deployment, ChainError> {
    let chain_id = chain.chain_id().await?;
    let start_nonce = chain.nonce(deployer.address()).await?;
    let DeployPlan {
        txs,
        mut deployment,
    } = plan(config, chain_id, deployer.address(), start_nonce)?;
    let total = txs.len();
    for (i, tx) in txs.into_iter().enumerate() {
        let expected = tx
            .to
            .is_none()
            .then(|| deployer.address().create(start_nonce + i as u64));
        let receipt = chain.send(deployer, tx).await?;
        if i == 0 {
            deployment.start_block = receipt.block_number;
        }
        if expected.is_some() && receipt.contract_address != expected {
            return Err(ChainError::InvalidResponse(format!(
                "deployment {i} created {:?}, expected {expected:?} (was the deployer used concurrently?)",
                receipt.contract_address
            )));
        }
        progress(i + 1, total);
    }
    Ok(deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_predicts_addresses_from_the_nonce() {
        let deployer = Address::repeat_byte(7);
        let config = DeployConfig {
            grants: vec![Grant {
                to: Address::repeat_byte(1),
                amount: U256::from(5),
            }],
            ..DeployConfig::default()
        };
        let plan = plan(&config, ChainId(1337), deployer, 3).expect("valid config");
        assert_eq!(plan.txs.len(), 4);
        assert_eq!(plan.deployment.secret_registry, deployer.create(3));
        assert_eq!(plan.deployment.token, deployer.create(4));
        assert_eq!(plan.deployment.token_network, deployer.create(5));
        assert_eq!(plan.txs[3].to, Some(plan.deployment.token));
    }

    #[test]
    fn bad_configs_are_refused() {
        let over = DeployConfig {
            smt_supply: U256::from(10),
            grants: vec![Grant {
                to: Address::repeat_byte(1),
                amount: U256::from(11),
            }],
            ..DeployConfig::default()
        };
        assert!(plan(&over, ChainId(1), Address::ZERO, 0).is_err());
        let overflow = DeployConfig {
            grants: vec![
                Grant {
                    to: Address::ZERO,
                    amount: U256::MAX,
                },
                Grant {
                    to: Address::ZERO,
                    amount: U256::from(1),
                },
            ],
            ..DeployConfig::default()
        };
        assert!(plan(&overflow, ChainId(1), Address::ZERO, 0).is_err());
        let timeouts = DeployConfig {
            min_settle_timeout: 100,
            max_settle_timeout: 10,
            ..DeployConfig::default()
        };
        assert!(plan(&timeouts, ChainId(1), Address::ZERO, 0).is_err());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let err = toml::from_str::<DeployConfig>("min_settle_timeout = 5\nbogus = 1\n");
        assert!(err.is_err());
    }
}
