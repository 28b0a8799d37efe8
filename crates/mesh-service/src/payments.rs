//! How the mesh settles accounts: direct channel transfers to neighbours, and checking
//! on our channels that a neighbour's announced transfer really arrived.

use smartmesh_node::{NodeHandle, PaymentStatus};
use smartmesh_primitives::{Address, TokenAmount};

/// Channel payments for the mesh's accounts.
#[async_trait::async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Pays `amount` base units to the neighbour `to` by a direct transfer; returns its
    /// payment id once it is durable and on its way.
    async fn pay(&self, to: Address, amount: u128) -> Result<u64, String>;
    /// The payer and amount of a direct transfer we received, if we did.
    async fn received(&self, payment_id: u64) -> Option<(Address, u128)>;
}

#[async_trait::async_trait]
impl Payments for NodeHandle {
    async fn pay(&self, to: Address, amount: u128) -> Result<u64, String> {
        self.pay_direct(to, TokenAmount::from_u128(amount))
            .await
            .map_err(|e| e.to_string())
    }

    async fn received(&self, payment_id: u64) -> Option<(Address, u128)> {
        match self.payment(payment_id).await.ok()?? {
            PaymentStatus::Received { initiator, amount } => {
                u128::try_from(amount.0).ok().map(|a| (initiator, a))
            }
            _ => None,
        }
    }
}
