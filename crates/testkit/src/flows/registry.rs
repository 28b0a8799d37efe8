//! SecretRegistry: registration time, batches, re-registration and the zero secret.

use super::{FlowResult, block_time, events, keys, word};
use crate::Lifecycle;
use smartmesh_contracts::SecretRegistry;
use smartmesh_primitives::{B256, keccak256};

/// Register, reveal time = block time, the event, re-registering keeps the first time,
/// the zero secret is refused, batches report whether every secret was new.
/// Participants: 2.
pub async fn secret_registry(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let registry = lc.deployment.secret_registry;
    let s1 = word("secret-1");
    let h1 = keccak256(s1);
    assert_eq!(lc.secret_reveal_time(h1).await?, 0, "never registered");

    // The return value, as a call would see it, then the registration itself.
    assert!(
        lc.view(registry, SecretRegistry::registerSecretCall { secret: s1 })
            .await?
    );
    let receipt = lc.register_secret(&k[0], s1).await?;
    let time = block_time(lc, &receipt);
    assert!(time > 0);
    assert_eq!(
        lc.secret_reveal_time(h1).await?,
        time,
        "reveal time is the block time"
    );
    let revealed = events::<SecretRegistry::SecretRevealed>(&receipt);
    assert_eq!(revealed.len(), 1);
    assert_eq!((revealed[0].secrethash, revealed[0].secret), (h1, s1));

    // Re-registering later, by anyone, changes nothing.
    lc.increase_time(100).await?;
    assert!(
        !lc.view(registry, SecretRegistry::registerSecretCall { secret: s1 })
            .await?
    );
    let again = lc.register_secret(&k[1], s1).await?;
    assert!(events::<SecretRegistry::SecretRevealed>(&again).is_empty());
    assert_eq!(
        lc.secret_reveal_time(h1).await?,
        time,
        "the first time stays"
    );

    // The zero secret is never registered.
    assert!(
        !lc.view(
            registry,
            SecretRegistry::registerSecretCall { secret: B256::ZERO }
        )
        .await?
    );
    let zero = lc.register_secret(&k[0], B256::ZERO).await?;
    assert!(zero.logs.is_empty());
    assert_eq!(lc.secret_reveal_time(keccak256(B256::ZERO)).await?, 0);

    // A batch of new secrets: true, all at the block's time.
    let (s2, s3) = (word("secret-2"), word("secret-3"));
    let batch = SecretRegistry::registerSecretBatchCall {
        secrets: vec![s2, s3],
    };
    assert!(lc.view(registry, batch.clone()).await?);
    let receipt = lc.register_secrets(&k[1], &[s2, s3]).await?;
    let batch_time = block_time(lc, &receipt);
    assert!(batch_time > time);
    assert_eq!(events::<SecretRegistry::SecretRevealed>(&receipt).len(), 2);
    assert_eq!(lc.secret_reveal_time(keccak256(s2)).await?, batch_time);
    assert_eq!(lc.secret_reveal_time(keccak256(s3)).await?, batch_time);

    // A batch with an old and a zero secret: false, but the new one is registered.
    let s4 = word("secret-4");
    let mixed = vec![s4, s1, B256::ZERO];
    assert!(
        !lc.view(
            registry,
            SecretRegistry::registerSecretBatchCall {
                secrets: mixed.clone()
            }
        )
        .await?
    );
    let receipt = lc.register_secrets(&k[0], &mixed).await?;
    let mixed_time = block_time(lc, &receipt);
    let revealed = events::<SecretRegistry::SecretRevealed>(&receipt);
    assert_eq!(revealed.len(), 1);
    assert_eq!(revealed[0].secret, s4);
    assert_eq!(lc.secret_reveal_time(keccak256(s4)).await?, mixed_time);
    assert_eq!(
        lc.secret_reveal_time(h1).await?,
        time,
        "still the first time"
    );
    let empty = SecretRegistry::registerSecretBatchCall {
        secrets: Vec::new(),
    };
    assert!(
        lc.view(registry, empty).await?,
        "an empty batch registers every one of its (no) secrets"
    );
    Ok(())
}
