//! SecretRegistry on the embedded chain (`smartmesh_testkit::flows::registry`).
#![allow(clippy::unwrap_used, missing_docs)]

use smartmesh_testkit::{Lifecycle, flows};

#[tokio::test]
async fn register_batch_reregister_zero() {
    let mut lc = Lifecycle::embedded(2).await.unwrap();
    flows::registry::secret_registry(&mut lc).await.unwrap();
}
