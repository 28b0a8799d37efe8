//! The commands of a [`NodeHandle`]: payments, channel operations, queries, shutdown.
//! The REST API and the CLI of the next step call exactly these.

use crate::error::NodeError;
use crate::node::{Applied, Command, NodeHandle, PaymentStatus};
use smartmesh_chain::ChainError;
use smartmesh_chain::token_network::{calls, opened_channel_id};
use smartmesh_engine::{
    ChainStatus, ChannelState, Event, FeeSchedule, Input, NodeState, PaymentFailure, TransferVia,
};
use smartmesh_primitives::{Address, B256, ChannelId, TokenAmount, U256};
use smartmesh_wire::PaymentId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// How long a channel operation waits for the node's chain watcher to see its
/// transaction.
const WATCHER_WAIT: Duration = Duration::from_secs(10);

/// Our balances: on chain (SMT in the account) and off chain (what we can still send
/// over open channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balances {
    /// SMT held by our account on chain (`None` while the chain is unreachable).
    pub onchain: Option<U256>,
    /// Sum of our sending capacity over open channels.
    pub offchain: TokenAmount,
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without OS randomness, a clock-derived id still keeps payments apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return nanos as u64;
    }
    u64::from_le_bytes(bytes)
}

fn random_secret() -> Result<B256, NodeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| NodeError::Invalid(format!("no randomness for a secret: {e}")))?;
    Ok(B256::from(bytes))
}

fn rejected(events: &[Event]) -> Option<NodeError> {
    events.iter().find_map(|e| match e {
        Event::ActionRejected { reason } => Some(NodeError::Rejected(reason.clone())),
        Event::PaymentFailed {
            reason: PaymentFailure::Rejected(reason),
            ..
        } => Some(NodeError::Rejected(reason.clone())),
        _ => None,
    })
}

impl NodeHandle {
    /// The node's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Applies `input` and waits until it is durable; returns its events.
    pub async fn submit(&self, input: Input) -> Result<Arc<Vec<Event>>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Input {
                input,
                meta: Vec::new(),
                reply: Some(reply),
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    async fn action(&self, input: Input) -> Result<Arc<Vec<Event>>, NodeError> {
        let events = self.submit(input).await?;
        match rejected(&events) {
            Some(e) => Err(e),
            None => Ok(events),
        }
    }

    /// Reads the node state inside the actor.
    pub async fn query<T: Send + 'static>(
        &self,
        read: impl FnOnce(&NodeState) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Query(Box::new(move |state, _| {
                let _ = tx.send(read(state));
            })))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Pays `amount` to channel partner `partner` with one signed transfer. Returns the
    /// payment id once the signed transfer is durable and on its way.
    pub async fn pay_direct(
        &self,
        partner: Address,
        amount: TokenAmount,
    ) -> Result<PaymentId, NodeError> {
        let payment_id = random_u64();
        self.action(Input::ActionDirectTransfer {
            via: TransferVia::Partner(partner),
            amount,
            payment_id,
        })
        .await?;
        Ok(payment_id)
    }

    /// Pays `amount` to `target` over a route of hash-locked transfers (fees on top).
    /// Returns the payment id once the first lock is durable and on its way; follow it
    /// with [`wait_payment`](Self::wait_payment).
    pub async fn pay_mediated(
        &self,
        target: Address,
        amount: TokenAmount,
    ) -> Result<PaymentId, NodeError> {
        let payment_id = random_u64();
        self.action(Input::ActionMediatedTransfer {
            target,
            amount,
            payment_id,
            secret: random_secret()?,
        })
        .await?;
        Ok(payment_id)
    }

    /// The status of a payment this node took part in.
    pub async fn payment(&self, payment_id: PaymentId) -> Result<Option<PaymentStatus>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Query(Box::new(move |_, records| {
                let _ = tx.send(records.get(payment_id));
            })))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Every payment record kept in memory.
    pub async fn payments(&self) -> Result<BTreeMap<PaymentId, PaymentStatus>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Query(Box::new(move |_, records| {
                let _ = tx.send(records.all());
            })))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Waits (at most `limit`) until the payment has a final status and returns it.
    pub async fn wait_payment(
        &self,
        payment_id: PaymentId,
        limit: Duration,
    ) -> Result<PaymentStatus, NodeError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.payment(payment_id).await?
                && status.is_final()
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Timeout(format!("payment {payment_id}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Our channels.
    pub async fn channels(&self) -> Result<Vec<ChannelState>, NodeError> {
        self.query(|s| s.channels.values().cloned().collect()).await
    }

    /// One channel.
    pub async fn channel(&self, id: ChannelId) -> Result<Option<ChannelState>, NodeError> {
        self.query(move |s| s.channels.get(&id).cloned()).await
    }

    /// A copy of the whole engine state.
    pub async fn state(&self) -> Result<NodeState, NodeError> {
        self.query(NodeState::clone).await
    }

    /// What the engine knows of the chain connection.
    pub async fn chain_status(&self) -> Result<ChainStatus, NodeError> {
        self.query(|s| s.chain_status).await
    }

    /// On-chain SMT and off-chain sending capacity.
    pub async fn balance(&self) -> Result<Balances, NodeError> {
        let offchain = self
            .query(|s| {
                s.channels
                    .values()
                    .filter(|c| c.is_open())
                    .try_fold(TokenAmount::ZERO, |acc, c| {
                        acc.checked_add(c.our_capacity()).ok()
                    })
                    .unwrap_or(TokenAmount(U256::MAX))
            })
            .await?;
        let onchain = self.chain.smt_balance(self.address).await.ok();
        Ok(Balances { onchain, offchain })
    }

    /// Our advertised mediation fee, or another node's (for routing; the mesh gossips
    /// these in a later step).
    pub async fn set_fee_schedule(&self, node: Address, fee: FeeSchedule) -> Result<(), NodeError> {
        self.action(Input::ActionUpdateFeeSchedule { node, fee })
            .await?;
        Ok(())
    }

    /// Opens a channel with `partner` depositing `deposit` for us, with the default
    /// settle timeout. Needs the chain. Returns once the node's watcher has seen it.
    pub async fn open_channel(
        &self,
        partner: Address,
        deposit: TokenAmount,
    ) -> Result<ChannelId, NodeError> {
        self.open_channel_with(partner, deposit, self.settle_timeout_default)
            .await
    }

    /// [`open_channel`](Self::open_channel) with a settle timeout, seconds.
    pub async fn open_channel_with(
        &self,
        partner: Address,
        deposit: TokenAmount,
        settle_timeout: u64,
    ) -> Result<ChannelId, NodeError> {
        if !deposit.is_zero() {
            self.chain.approve(deposit.0).await.map_err(chain_error)?;
        }
        let receipt = self
            .chain
            .send_tn(calls::open_with_deposit(partner, settle_timeout, deposit.0))
            .await
            .map_err(chain_error)?;
        let id = opened_channel_id(&receipt.logs)
            .ok_or_else(|| NodeError::Invalid("no ChannelOpened in the receipt".into()))?;
        self.chain
            .wait_scanned(receipt.block_number.0, WATCHER_WAIT)
            .await?;
        Ok(ChannelId(id))
    }

    /// Raises our total deposit in `channel_id` to `total`. Needs the chain.
    pub async fn deposit(
        &self,
        channel_id: ChannelId,
        total: TokenAmount,
    ) -> Result<(), NodeError> {
        self.catch_up().await?;
        let ch = self.chain.channel(channel_id).ok_or_else(|| {
            NodeError::Invalid(format!("channel {} not open on chain", channel_id.0))
        })?;
        let current = if ch.participant1 == self.address {
            ch.deposit1
        } else {
            ch.deposit2
        };
        let increase = total
            .0
            .checked_sub(current)
            .filter(|i| !i.is_zero())
            .ok_or_else(|| NodeError::Invalid("total deposit must grow".into()))?;
        self.chain.approve(increase).await.map_err(chain_error)?;
        let receipt = self
            .chain
            .send_tn(calls::set_total_deposit(
                channel_id.0,
                &ch,
                self.address,
                total.0,
            ))
            .await
            .map_err(chain_error)?;
        self.chain
            .wait_scanned(receipt.block_number.0, WATCHER_WAIT)
            .await
    }

    /// Waits until the node's watcher has scanned the chain's current head (so the
    /// tracked channel structs are current).
    async fn catch_up(&self) -> Result<(), NodeError> {
        let head = self.chain.chain.head().await.map_err(chain_error)?;
        self.chain.wait_scanned(head.number.0, WATCHER_WAIT).await
    }

    /// Closes `channel_id` on chain with the partner's newest proof (queued by the
    /// engine until the chain is reachable and synced).
    pub async fn close(&self, channel_id: ChannelId) -> Result<(), NodeError> {
        self.action(Input::ActionClose { channel_id })
            .await
            .map(|_| ())
    }

    /// Settles a closed channel now (the engine also settles by itself once the settle
    /// timeout passed). Needs the chain.
    pub async fn settle(&self, channel_id: ChannelId) -> Result<(), NodeError> {
        self.catch_up().await?;
        let ch = self
            .chain
            .channel(channel_id)
            .ok_or_else(|| NodeError::Invalid(format!("channel {} not on chain", channel_id.0)))?;
        self.chain
            .send_tn(calls::settle(channel_id.0, &ch))
            .await
            .map_err(chain_error)?;
        Ok(())
    }

    /// Withdraws up to a new total from `channel_id` (co-signed by the partner, then
    /// submitted on chain).
    pub async fn withdraw(
        &self,
        channel_id: ChannelId,
        total_withdraw: TokenAmount,
    ) -> Result<(), NodeError> {
        self.action(Input::ActionWithdraw {
            channel_id,
            total_withdraw,
        })
        .await
        .map(|_| ())
    }

    /// Every input applied from now on, with its events, once durable and acted on.
    /// Bounded: a subscriber that falls behind loses notifications (`Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.notifications.subscribe()
    }

    /// The node's chain access (contract addresses, tracked channel structs).
    pub fn chain_access(&self) -> &crate::chain_io::ChainAccess {
        &self.chain
    }

    /// Stops the node: no new inputs; what is durable is acted on; the data directory
    /// is released when this returns.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }
}

fn chain_error(e: ChainError) -> NodeError {
    match e {
        ChainError::Unreachable { .. } => NodeError::ChainUnreachable,
        other => NodeError::Chain(other),
    }
}
