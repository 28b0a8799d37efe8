//! `sol!` bindings generated from the committed artifacts in `contracts/artifacts/`.
#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(all_derives, abi)]
    TokenNetwork,
    "../../contracts/artifacts/TokenNetwork.json"
);

sol!(
    #[sol(all_derives, abi)]
    SmartMeshToken,
    "../../contracts/artifacts/SmartMeshToken.json"
);

sol!(
    #[sol(all_derives, abi)]
    SecretRegistry,
    "../../contracts/artifacts/SecretRegistry.json"
);

sol!(
    #[sol(all_derives, abi)]
    SmartMeshVesting,
    "../../contracts/artifacts/SmartMeshVesting.json"
);

sol!(
    #[sol(all_derives, abi)]
    ReentrantToken,
    "../../contracts/artifacts/ReentrantToken.json"
);
