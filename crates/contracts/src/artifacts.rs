//! The compiled contracts, embedded from `contracts/artifacts/`.

use alloy::json_abi::JsonAbi;
use alloy::primitives::Bytes;

use crate::bindings;

/// One compiled contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Contract name, e.g. `"TokenNetwork"`.
    pub name: &'static str,
    /// The JSON ABI (an array), exactly as written by `build.js`.
    pub abi_json: &'static str,
    /// Creation code (append ABI-encoded constructor arguments to deploy).
    pub bytecode: Bytes,
    /// Runtime code, as stored on chain after deployment.
    pub deployed_bytecode: Bytes,
    /// The whole artifact file (`contractName`, `abi`, `bytecode`, `deployedBytecode`,
    /// `solcVersion`, `sourceHash`, `settings`, ...).
    pub artifact_json: &'static str,
}

impl Artifact {
    /// Parses [`Artifact::abi_json`].
    pub fn abi(&self) -> JsonAbi {
        serde_json::from_str(self.abi_json).expect("embedded ABI is valid JSON ABI")
    }

    /// The `sourceHash` recorded in the artifact (sha256 over all compiled sources).
    pub fn source_hash(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(self.artifact_json).expect("embedded artifact is valid JSON");
        v["sourceHash"].as_str().unwrap_or_default().to_owned()
    }

    /// The solc version that produced the artifact.
    pub fn solc_version(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(self.artifact_json).expect("embedded artifact is valid JSON");
        v["solcVersion"].as_str().unwrap_or_default().to_owned()
    }
}

macro_rules! artifact_fn {
    ($(#[$doc:meta])* $fn_name:ident, $module:ident, $name:literal) => {
        $(#[$doc])*
        pub fn $fn_name() -> Artifact {
            Artifact {
                name: $name,
                abi_json: include_str!(concat!("../../../contracts/artifacts/", $name, ".abi.json")),
                bytecode: bindings::$module::BYTECODE.clone(),
                deployed_bytecode: bindings::$module::DEPLOYED_BYTECODE.clone(),
                artifact_json: include_str!(concat!("../../../contracts/artifacts/", $name, ".json")),
            }
        }
    };
}

artifact_fn!(
    /// `TokenNetwork(address token, address secretRegistry, uint64 minSettleTimeout, uint64 maxSettleTimeout)`.
    token_network, TokenNetwork, "TokenNetwork"
);
artifact_fn!(
    /// `SmartMeshToken(uint256 initialSupply, address holder)`.
    smart_mesh_token, SmartMeshToken, "SmartMeshToken"
);
artifact_fn!(
    /// `SecretRegistry()`.
    secret_registry, SecretRegistry, "SecretRegistry"
);
artifact_fn!(
    /// `SmartMeshVesting(address beneficiary, uint64 start, uint64 duration, uint64 cliffSeconds, uint64 releasePeriod)`.
    smart_mesh_vesting, SmartMeshVesting, "SmartMeshVesting"
);
artifact_fn!(
    /// `ReentrantToken()` — test only: an ERC-20 whose transfers call back into a target.
    reentrant_token, ReentrantToken, "ReentrantToken"
);

/// Every artifact, in a fixed order.
pub fn all() -> Vec<Artifact> {
    vec![
        token_network(),
        smart_mesh_token(),
        secret_registry(),
        smart_mesh_vesting(),
        reentrant_token(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_consistent() {
        for a in all() {
            let v: serde_json::Value = serde_json::from_str(a.artifact_json).expect("json");
            assert_eq!(v["contractName"], a.name);
            assert_eq!(
                v["bytecode"].as_str(),
                Some(a.bytecode.to_string().as_str()),
                "{}",
                a.name
            );
            assert_eq!(
                v["deployedBytecode"].as_str(),
                Some(a.deployed_bytecode.to_string().as_str()),
                "{}",
                a.name
            );
            assert!(
                !a.deployed_bytecode.is_empty() && a.deployed_bytecode.len() <= 24_576,
                "{}",
                a.name
            );
            let from_artifact: JsonAbi = serde_json::from_value(v["abi"].clone()).expect("abi");
            assert_eq!(a.abi(), from_artifact, "{}", a.name);
            assert!(a.abi().functions().next().is_some(), "{}", a.name);
            assert!(a.source_hash().starts_with("0x") && a.source_hash().len() == 66);
            assert!(a.solc_version().starts_with("0.8.37"));
        }
    }
}
