//! The endpoint handlers, the JSON body extractor and the event collector.

use super::convert;
use super::errors::ApiFailure;
use super::metrics::Gauges;
use super::openapi::Route;
use super::{AppState, json_header};
use crate::types::{
    Amount, ChainInfo, ChannelInfo, EventInfo, FeeRequest, NodeInfo, OpenChannelRequest,
    PaymentInfo, PaymentMode, PaymentRequest, StatusInfo, TokenInfo, TotalRequest,
};
use axum::Json;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde::de::DeserializeOwned;
use smartmesh_engine::{ChainStatus, ChannelState, Event, FeeSchedule, Input};
use smartmesh_node::{Applied, PaymentStatus};
use smartmesh_primitives::{ChannelId, TokenAmount, U256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

type Shared = State<Arc<AppState>>;
type Answer<T> = Result<T, ApiFailure>;

/// A JSON body whose errors are [`ApiFailure`]s (malformed JSON, bad amounts, too big).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiFailure::too_large()
                } else {
                    ApiFailure::body(rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiFailure::body(format!("invalid JSON body: {e}")))
    }
}

/// The handler of one route of the table.
pub(crate) fn method_router(route: &Route) -> MethodRouter<Arc<AppState>> {
    use axum::routing::{get, post};
    match (route.method, route.path) {
        ("get", "/address") => get(address),
        ("get", "/peers") => get(peers),
        ("get", "/tokens") => get(tokens),
        ("get", "/channels") => get(channels),
        ("post", "/channels") => post(open_channel),
        ("get", "/channels/{id}") => get(channel),
        ("post", "/channels/{id}/deposit") => post(deposit),
        ("post", "/channels/{id}/withdraw") => post(withdraw),
        ("post", "/channels/{id}/close") => post(close),
        ("post", "/channels/{id}/settle") => post(settle),
        ("post", "/payments") => post(pay),
        ("get", "/payments") => get(payments),
        ("get", "/payments/{id}") => get(payment),
        ("get", "/events") => get(events),
        ("get", "/chain") => get(chain),
        ("get", "/status") => get(status),
        ("post", "/fees") => post(set_fee),
        ("post", "/mesh/messages") => post(super::mesh::send_message),
        ("post", "/mesh/files") => post(super::mesh::send_file).layer(
            axum::extract::DefaultBodyLimit::max(smartmesh_mesh::payload::MAX_MESSAGE),
        ),
        ("get", "/mesh/inbox") => get(super::mesh::inbox),
        ("get", "/mesh/inbox/{message}") => get(super::mesh::inbox_message),
        ("get", "/mesh/outbox") => get(super::mesh::outbox),
        ("get", "/mesh/routes") => get(super::mesh::routes),
        ("get", "/mesh/stats") => get(super::mesh::stats),
        ("get", "/mesh/accounts") => get(super::mesh::accounts),
        ("get", "/mesh/gateways") => get(super::mesh::gateways),
        _ => axum::routing::any(|| async { ApiFailure::not_found("route without a handler") }),
    }
}

fn node_info(state: &AppState) -> NodeInfo {
    let deployment = &state.node.chain_access().deployment;
    NodeInfo {
        address: state.node.address(),
        peer_id: state.peers.peer_id(),
        listen_addrs: state.peers.listen_addrs(),
        chain_id: deployment.chain_id.0,
        token_network: deployment.token_network,
        token: deployment.token,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

async fn address(State(state): Shared) -> Json<NodeInfo> {
    Json(node_info(&state))
}

async fn peers(State(state): Shared) -> Json<Vec<crate::types::PeerInfo>> {
    Json(state.peers.peers())
}

async fn token_infos(state: &AppState) -> Answer<Vec<TokenInfo>> {
    let balances = state.node.balance().await?;
    let deployment = &state.node.chain_access().deployment;
    Ok(vec![TokenInfo {
        token: deployment.token,
        symbol: state.config.token_symbol.clone(),
        token_network: deployment.token_network,
        onchain_balance: balances.onchain.map(Amount),
        offchain_capacity: convert::amount(balances.offchain),
    }])
}

async fn tokens(State(state): Shared) -> Answer<Json<Vec<TokenInfo>>> {
    token_infos(&state).await.map(Json)
}

async fn channels(State(state): Shared) -> Answer<Json<Vec<ChannelInfo>>> {
    let channels = state.node.channels().await?;
    Ok(Json(channels.iter().map(convert::channel).collect()))
}

fn channel_id(text: &str) -> Answer<ChannelId> {
    if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiFailure::parameter(format!(
            "channel id must be a decimal number, got {:?}",
            text.chars().take(80).collect::<String>()
        )));
    }
    U256::from_str_radix(text, 10)
        .map(ChannelId)
        .map_err(|_| ApiFailure::parameter("channel id does not fit in 256 bits"))
}

async fn known_channel(state: &AppState, text: &str) -> Answer<ChannelState> {
    let id = channel_id(text)?;
    state
        .node
        .channel(id)
        .await?
        .ok_or_else(|| ApiFailure::unknown_channel(id.0))
}

async fn channel(State(state): Shared, Path(id): Path<String>) -> Answer<Json<ChannelInfo>> {
    Ok(Json(convert::channel(&known_channel(&state, &id).await?)))
}

/// The channel after an action, waiting briefly for the node to apply what the chain
/// watcher saw.
async fn channel_after(state: &AppState, id: ChannelId) -> Answer<ChannelInfo> {
    for _ in 0..100 {
        if let Some(c) = state.node.channel(id).await? {
            return Ok(convert::channel(&c));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ApiFailure::unknown_channel(id.0))
}

async fn open_channel(
    State(state): Shared,
    JsonBody(request): JsonBody<OpenChannelRequest>,
) -> Answer<(StatusCode, Json<ChannelInfo>)> {
    if request.partner == state.node.address() {
        return Err(ApiFailure::parameter(
            "a channel needs another node as partner",
        ));
    }
    let deposit = TokenAmount(request.deposit.0);
    ensure_funds(&state, request.deposit.0).await?;
    let id = match request
        .settle_timeout
        .or(state.config.default_settle_timeout)
    {
        Some(timeout) => {
            state
                .node
                .open_channel_with(request.partner, deposit, timeout)
                .await?
        }
        None => state.node.open_channel(request.partner, deposit).await?,
    };
    Ok((StatusCode::CREATED, Json(channel_after(&state, id).await?)))
}

async fn deposit(
    State(state): Shared,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<TotalRequest>,
) -> Answer<Json<ChannelInfo>> {
    let channel = known_channel(&state, &id).await?;
    let id = channel.channel_id;
    // The contract holds both deposits in one 256-bit sum: refuse totals that overflow.
    if request
        .total
        .0
        .checked_add(channel.partner.deposit.0)
        .is_none()
    {
        return Err(ApiFailure::overflow(
            "the total deposit plus the partner's would overflow 256 bits",
        ));
    }
    let increase = request
        .total
        .0
        .checked_sub(channel.our.deposit.0)
        .filter(|i| !i.is_zero())
        .ok_or_else(|| {
            ApiFailure::new(
                StatusCode::CONFLICT,
                crate::types::codes::REJECTED,
                format!(
                    "the total deposit must grow (it is {})",
                    channel.our.deposit.0
                ),
            )
        })?;
    ensure_funds(&state, increase).await?;
    state.node.deposit(id, TokenAmount(request.total.0)).await?;
    wait_for(&state, id, |c| c.our.deposit.0 >= request.total.0).await
}

/// Refuses (before any transaction) to deposit more SMT than we hold on chain.
async fn ensure_funds(state: &AppState, amount: U256) -> Answer<()> {
    if amount.is_zero() {
        return Ok(());
    }
    let held = state
        .node
        .chain_access()
        .smt_balance(state.node.address())
        .await
        .map_err(|e| ApiFailure::from(smartmesh_node::NodeError::from(e)))?;
    if held < amount {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            crate::types::codes::REJECTED,
            format!("insufficient SMT on chain: {amount} needed, {held} held"),
        ));
    }
    Ok(())
}

/// Waits (bounded) until the node's view of the channel satisfies `done`.
async fn wait_for(
    state: &AppState,
    id: ChannelId,
    done: impl Fn(&ChannelState) -> bool,
) -> Answer<Json<ChannelInfo>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let channel = state
            .node
            .channel(id)
            .await?
            .ok_or_else(|| ApiFailure::unknown_channel(id.0))?;
        if done(&channel) || tokio::time::Instant::now() >= deadline {
            return Ok(Json(convert::channel(&channel)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn withdraw(
    State(state): Shared,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<TotalRequest>,
) -> Answer<Json<ChannelInfo>> {
    let id = known_channel(&state, &id).await?.channel_id;
    state
        .node
        .withdraw(id, TokenAmount(request.total.0))
        .await?;
    Ok(Json(channel_after(&state, id).await?))
}

async fn close(State(state): Shared, Path(id): Path<String>) -> Answer<Json<ChannelInfo>> {
    let id = known_channel(&state, &id).await?.channel_id;
    state.node.close(id).await?;
    Ok(Json(channel_after(&state, id).await?))
}

async fn settle(State(state): Shared, Path(id): Path<String>) -> Answer<Json<ChannelInfo>> {
    let id = known_channel(&state, &id).await?.channel_id;
    state.node.settle(id).await?;
    wait_for(&state, id, |c| c.outcome.is_some()).await
}

async fn pay(
    State(state): Shared,
    JsonBody(request): JsonBody<PaymentRequest>,
) -> Answer<(StatusCode, Json<PaymentInfo>)> {
    if request.amount.0.is_zero() {
        return Err(ApiFailure::parameter("amount must be positive"));
    }
    if request.target == state.node.address() {
        return Err(ApiFailure::parameter("cannot pay ourselves"));
    }
    let amount = TokenAmount(request.amount.0);
    let target = request.target;
    let direct = match request.mode {
        PaymentMode::Direct => true,
        PaymentMode::Mediated => false,
        PaymentMode::Auto => state
            .node
            .query(move |s| {
                s.channels.values().any(|c| {
                    c.is_open() && c.partner_address() == target && c.our_capacity() >= amount
                })
            })
            .await
            .map_err(ApiFailure::from)?,
    };
    let payment_id = if direct {
        state.node.pay_direct(target, amount).await?
    } else {
        state.node.pay_mediated(target, amount).await?
    };
    state.metrics.started(payment_id);
    let status = if request.wait {
        let limit = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(state.config.default_wait)
            .min(state.config.max_wait);
        state.node.wait_payment(payment_id, limit).await?
    } else {
        state
            .node
            .payment(payment_id)
            .await?
            .unwrap_or(PaymentStatus::Pending)
    };
    let mut info = convert::payment(payment_id, &status);
    if info.status == "pending" {
        info.target = Some(target);
        info.amount = Some(request.amount);
    }
    Ok((StatusCode::CREATED, Json(info)))
}

async fn payments(State(state): Shared) -> Answer<Json<Vec<PaymentInfo>>> {
    let records = state.node.payments().await?;
    Ok(Json(
        records
            .iter()
            .map(|(id, status)| convert::payment(*id, status))
            .collect(),
    ))
}

async fn payment(State(state): Shared, Path(id): Path<String>) -> Answer<Json<PaymentInfo>> {
    let parsed: u64 = id.parse().map_err(|_| {
        ApiFailure::parameter(format!(
            "payment id must be a decimal number below 2^64, got {:?}",
            id.chars().take(80).collect::<String>()
        ))
    })?;
    let status = state.node.payment(parsed).await?.ok_or_else(|| {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            crate::types::codes::UNKNOWN_PAYMENT,
            format!("no payment {parsed} known to this node"),
        )
    })?;
    Ok(Json(convert::payment(parsed, &status)))
}

/// Query of `GET /events`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

async fn events(
    State(state): Shared,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Json<Vec<EventInfo>>> {
    let Query(query) = query.map_err(|e| ApiFailure::parameter(e.body_text()))?;
    let limit = query
        .limit
        .unwrap_or(state.config.event_buffer)
        .min(state.config.event_buffer);
    let since = query.since.unwrap_or(0);
    let events = state.events();
    let matching: Vec<EventInfo> = events
        .iter()
        .filter(|e| query.since.is_none() || e.seq > since)
        .cloned()
        .collect();
    let skip = matching.len().saturating_sub(limit);
    Ok(Json(matching.into_iter().skip(skip).collect()))
}

fn status_name(status: ChainStatus) -> &'static str {
    match status {
        ChainStatus::Unreachable => "unreachable",
        ChainStatus::Syncing => "syncing",
        ChainStatus::Synced => "synced",
    }
}

async fn chain_info(state: &AppState) -> Answer<ChainInfo> {
    let (status, chain_time, onchain, messages) = state
        .node
        .query(|s| {
            (
                s.chain_status,
                s.chain_time.0,
                s.pending_onchain.len() as u64,
                s.queued_messages.len() as u64,
            )
        })
        .await?;
    let access = state.node.chain_access();
    let head = match tokio::time::timeout(Duration::from_secs(2), access.chain.head()).await {
        Ok(Ok(head)) => Some(head.number.0),
        _ => None,
    };
    let scanned = *access.scanned.borrow();
    Ok(ChainInfo {
        status: status_name(status).to_owned(),
        endpoint: state.config.chain_endpoint.clone(),
        chain_id: access.deployment.chain_id.0,
        head_block: head,
        scanned_block: scanned,
        chain_time,
        queued_onchain_actions: onchain,
        queued_messages: messages,
    })
}

async fn chain(State(state): Shared) -> Answer<Json<ChainInfo>> {
    chain_info(&state).await.map(Json)
}

async fn status(State(state): Shared) -> Answer<Json<StatusInfo>> {
    let chain = chain_info(&state).await?;
    let tokens = token_infos(&state).await?;
    let (open, other) = state
        .node
        .query(|s| {
            let open = s.channels.values().filter(|c| c.is_open()).count() as u64;
            (open, s.channels.len() as u64 - open)
        })
        .await?;
    Ok(Json(StatusInfo {
        node: node_info(&state),
        chain,
        tokens,
        connected_peers: state.peers.peers().iter().filter(|p| p.connected).count() as u64,
        channels_open: open,
        channels_other: other,
        links: state.peers.link_stats(),
    }))
}

async fn set_fee(
    State(state): Shared,
    JsonBody(request): JsonBody<FeeRequest>,
) -> Answer<Json<FeeRequest>> {
    if request.proportional_ppm > 1_000_000 {
        return Err(ApiFailure::parameter(
            "proportional_ppm is in millionths: at most 1000000",
        ));
    }
    state
        .node
        .set_fee_schedule(
            request.node,
            FeeSchedule {
                flat: TokenAmount(request.flat.0),
                proportional_ppm: request.proportional_ppm,
            },
        )
        .await?;
    Ok(Json(request))
}

pub(crate) async fn metrics(State(state): Shared) -> Answer<Response> {
    let (open, queued_messages, queued_onchain, chain_status) = state
        .node
        .query(|s| {
            (
                s.channels.values().filter(|c| c.is_open()).count() as u64,
                s.queued_messages.len() as u64,
                s.pending_onchain.len() as u64,
                s.chain_status,
            )
        })
        .await?;
    let gauges = Gauges {
        peers_connected: state.peers.peers().iter().filter(|p| p.connected).count() as u64,
        channels_open: open,
        queued_messages,
        queued_onchain_actions: queued_onchain,
        chain_synced: chain_status == ChainStatus::Synced,
        chain_reachable: chain_status != ChainStatus::Unreachable,
        links: state.peers.link_stats(),
        events_buffered: state.events().len() as u64,
    };
    let text = state.metrics.render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub(crate) async fn openapi_document() -> Response {
    let body = super::openapi::document().to_string();
    ([(header::CONTENT_TYPE, json_header())], body).into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One line per event worth showing; message sends and ticks are noise.
fn describe(input: &Input, event: Option<&Event>) -> Option<(&'static str, String)> {
    if let Some(event) = event {
        return match event {
            Event::PaymentSent {
                payment_id,
                target,
                amount,
            } => Some((
                "payment_sent",
                format!("paid {} to {target} (payment {payment_id})", amount.0),
            )),
            Event::PaymentReceived {
                payment_id,
                initiator,
                amount,
            } => Some((
                "payment_received",
                format!(
                    "received {} from {initiator} (payment {payment_id})",
                    amount.0
                ),
            )),
            Event::PaymentFailed { payment_id, reason } => Some((
                "payment_failed",
                format!(
                    "payment {payment_id} failed: {}",
                    convert::failure_text(reason)
                ),
            )),
            Event::MediationFinished {
                payment_id,
                received,
                paid,
            } => Some((
                "payment_mediated",
                format!(
                    "mediated payment {payment_id}: received {}, paid {}",
                    received.0, paid.0
                ),
            )),
            Event::ChannelStatusChanged { channel_id, status } => Some((
                "channel_status",
                format!(
                    "channel {} is {}",
                    channel_id.0,
                    convert::status_name(*status)
                ),
            )),
            Event::PenaltyDetected {
                channel_id,
                declared,
                ours,
            } => Some((
                "penalty_detected",
                format!(
                    "channel {}: the partner closed declaring nonce {} but we hold its nonce {}; claiming its whole deposit",
                    channel_id.0, declared.nonce.0, ours.nonce.0
                ),
            )),
            Event::ChannelFinished {
                channel_id,
                outcome,
            } => Some((
                "channel_finished",
                format!("channel {} finished: {outcome:?}", channel_id.0),
            )),
            Event::WithdrawConfirmed {
                channel_id,
                total_withdraw,
            } => Some((
                "withdraw_confirmed",
                format!(
                    "channel {}: withdraw to {} co-signed",
                    channel_id.0, total_withdraw.0
                ),
            )),
            Event::ContractSend { action, .. } => Some((
                "onchain_action",
                format!("on-chain: {}", action_name(action)),
            )),
            Event::InvalidReceived {
                sender,
                kind,
                reason,
            } => Some((
                "invalid_message",
                format!("refused a {kind} from {sender}: {reason:?}"),
            )),
            Event::SendMessage { .. } | Event::ActionRejected { .. } => None,
        };
    }
    match input {
        Input::ChainUnreachable => Some((
            "chain_unreachable",
            "chain unreachable: payments over open channels continue; on-chain actions are queued"
                .into(),
        )),
        Input::ChainReachable => Some(("chain_syncing", "chain reachable again: syncing".into())),
        _ => None,
    }
}

fn action_name(action: &smartmesh_engine::ContractSend) -> String {
    let debug = format!("{action:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("action")
        .to_owned()
}

/// Feeds the event buffer and the payment counters from the node's notifications.
pub(crate) async fn collect_events(
    state: Arc<AppState>,
    mut notifications: broadcast::Receiver<Arc<Applied>>,
) {
    let mut synced = false;
    loop {
        let applied = match notifications.recv().await {
            Ok(applied) => applied,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "event collector lagged");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut lines = Vec::new();
        if let Some(line) = describe(&applied.input, None) {
            lines.push(line);
        }
        match &applied.input {
            Input::ChainSynced { .. } if !synced => {
                synced = true;
                lines.push((
                    "chain_synced",
                    "chain synced: on-chain actions go out".into(),
                ));
            }
            Input::ChainUnreachable | Input::ChainReachable => synced = false,
            _ => {}
        }
        for event in &applied.events {
            match event {
                Event::PaymentSent { payment_id, .. } => {
                    state.metrics.count_payment("initiator", "sent");
                    state.metrics.finished(*payment_id);
                }
                Event::PaymentFailed { payment_id, .. } => {
                    state.metrics.count_payment("initiator", "failed");
                    state.metrics.finished(*payment_id);
                }
                Event::PaymentReceived { .. } => state.metrics.count_payment("target", "received"),
                Event::MediationFinished { .. } => {
                    state.metrics.count_payment("mediator", "mediated")
                }
                _ => {}
            }
            if let Some(line) = describe(&applied.input, Some(event)) {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            continue;
        }
        let time_ms = now_ms();
        let mut buffer = state.events();
        for (kind, detail) in lines {
            if buffer.len() >= state.config.event_buffer {
                buffer.pop_front();
            }
            buffer.push_back(EventInfo {
                seq: applied.seq,
                time_ms,
                kind: kind.to_owned(),
                detail,
            });
        }
    }
}
