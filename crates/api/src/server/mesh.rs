//! The mesh endpoints: send messages and files to a node address, read the inbox and
//! the outbox, see routes and counters.

use super::AppState;
use super::errors::ApiFailure;
use super::handlers::JsonBody;
use crate::types::{
    Amount, InboxEntry, MeshAccount, MeshGateway, MeshNeighbour, MeshRoute, MeshRoutes,
    MeshStatsInfo, MessageQueued, OutboxEntry, SendMessageRequest, codes,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use smartmesh_mesh_service::{MeshHandle, MeshServiceError};
use smartmesh_primitives::Address;
use std::collections::HashMap;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;
type Answer<T> = Result<T, ApiFailure>;

impl From<MeshServiceError> for ApiFailure {
    fn from(e: MeshServiceError) -> Self {
        let status = match e {
            MeshServiceError::Stopped | MeshServiceError::NoGateway => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            MeshServiceError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MeshServiceError::OutboxFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match e {
            MeshServiceError::Stopped => codes::STOPPED,
            MeshServiceError::NoGateway => codes::MESH_UNAVAILABLE,
            MeshServiceError::TooLarge { .. } => codes::TOO_LARGE,
            MeshServiceError::OutboxFull { .. } => codes::OUTBOX_FULL,
            _ => codes::INVALID_PARAMETER,
        };
        ApiFailure::new(status, code, e.to_string())
    }
}

fn mesh(state: &AppState) -> Answer<&MeshHandle> {
    state.mesh.as_ref().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::MESH_UNAVAILABLE,
            "this node runs without the mesh",
        )
    })
}

async fn queue(state: &AppState, to: Address, name: String, body: Vec<u8>) -> Answer<Response> {
    let bytes = body.len() as u64;
    let id = mesh(state)?.send(to, name, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageQueued {
            id: hex::encode(id),
            bytes,
        }),
    )
        .into_response())
}

pub(crate) async fn send_message(
    State(state): Shared,
    JsonBody(request): JsonBody<SendMessageRequest>,
) -> Answer<Response> {
    let body = match (request.text, request.body_hex) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(hex_body)) => hex::decode(hex_body.trim_start_matches("0x"))
            .map_err(|e| ApiFailure::parameter(format!("body_hex is not hex: {e}")))?,
        _ => {
            return Err(ApiFailure::parameter(
                "give exactly one of `text` and `body_hex`",
            ));
        }
    };
    queue(&state, request.to, String::new(), body).await
}

pub(crate) async fn send_file(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer<Response> {
    let to: Address = query
        .get("to")
        .ok_or_else(|| ApiFailure::parameter("missing query parameter `to` (a node address)"))?
        .parse()
        .map_err(|_| ApiFailure::parameter("`to` is not an address (0x and 40 hex digits)"))?;
    let name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiFailure::parameter("missing query parameter `name` (the file name)"))?
        .clone();
    if name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        return Err(ApiFailure::parameter(
            "the file name must not contain a path separator",
        ));
    }
    queue(&state, to, name, body.to_vec()).await
}

pub(crate) async fn inbox(State(state): Shared) -> Answer<Json<Vec<InboxEntry>>> {
    let messages = mesh(&state)?.inbox().await?;
    Ok(Json(
        messages
            .into_iter()
            .map(|m| InboxEntry {
                id: hex::encode(m.id),
                from: m.from,
                bytes: m.body.len() as u64,
                received_unix_ms: m.received_unix_ms,
                text: if m.name.is_empty() {
                    String::from_utf8(m.body).ok()
                } else {
                    None
                },
                name: m.name,
            })
            .collect(),
    ))
}

pub(crate) async fn inbox_message(
    State(state): Shared,
    Path(id): Path<String>,
) -> Answer<Response> {
    let wanted = hex::decode(&id)
        .ok()
        .filter(|b| b.len() == 16)
        .ok_or_else(|| ApiFailure::parameter("a message id is 32 hex digits"))?;
    let message = mesh(&state)?
        .inbox()
        .await?
        .into_iter()
        .find(|m| m.id[..] == wanted[..])
        .ok_or_else(|| {
            ApiFailure::new(
                StatusCode::NOT_FOUND,
                codes::UNKNOWN_MESSAGE,
                format!("no message {id} in the inbox"),
            )
        })?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        message.body,
    )
        .into_response())
}

pub(crate) async fn outbox(State(state): Shared) -> Answer<Json<Vec<OutboxEntry>>> {
    let messages = mesh(&state)?.outbox().await?;
    Ok(Json(
        messages
            .into_iter()
            .map(|m| OutboxEntry {
                id: hex::encode(m.id),
                to: m.to,
                name: m.name,
                bytes: m.bytes,
                parts: m.parts,
                acked: m.acked,
                status: m.status.as_str().to_owned(),
                delivery_us: m.delivery_us,
            })
            .collect(),
    ))
}

pub(crate) async fn routes(State(state): Shared) -> Answer<Json<MeshRoutes>> {
    let (routes, neighbours) = mesh(&state)?.routes().await?;
    Ok(Json(MeshRoutes {
        neighbours: neighbours
            .into_iter()
            .map(|n| MeshNeighbour {
                address: n.address,
                cost: n.cost,
                rtt_us: n.rtt_us,
            })
            .collect(),
        routes: routes
            .into_iter()
            .map(|r| MeshRoute {
                destination: r.destination,
                next_hop: r.next_hop,
                metric: r.metric,
                price_per_kib: r.price_per_kib,
            })
            .collect(),
    }))
}

pub(crate) async fn stats(State(state): Shared) -> Answer<Json<MeshStatsInfo>> {
    let s = mesh(&state)?.stats().await?;
    Ok(Json(MeshStatsInfo {
        forwarded_packets: s.forwarded_packets,
        forwarded_bytes: s.forwarded_bytes,
        dropped_packets: s.dropped_packets,
        stored_packets: s.stored_packets,
        bad_packets: s.bad_packets,
        messages_received: s.messages_received,
        messages_delivered: s.messages_delivered,
        sessions: s.sessions,
        cut_off_packets: s.cut_off_packets,
        throttled_packets: s.throttled_packets,
        receipts_signed: s.receipts_signed,
        settlements: s.settlements,
    }))
}

pub(crate) async fn accounts(State(state): Shared) -> Answer<Json<Vec<MeshAccount>>> {
    let amount = |v: u128| Amount(smartmesh_primitives::U256::from(v));
    let views = mesh(&state)?.accounts().await?;
    Ok(Json(
        views
            .into_iter()
            .map(|a| MeshAccount {
                neighbour: a.neighbour,
                owed_to_us: amount(a.owed_to_us),
                owed_by_us: amount(a.owed_by_us),
                paid_to_them: amount(a.paid_to_them),
                credited_from_them: amount(a.credited_from_them),
                earned: amount(a.earned),
                bytes_carried_for_them: a.bytes_carried_for_them,
                bytes_carried_by_them: a.bytes_carried_by_them,
                standing: a.standing.to_owned(),
            })
            .collect(),
    ))
}

pub(crate) async fn gateways(State(state): Shared) -> Answer<Json<Vec<MeshGateway>>> {
    let list = mesh(&state)?.gateways().await?;
    Ok(Json(
        list.into_iter()
            .map(|g| MeshGateway {
                gateway: g.gateway,
                price_per_kib: g.price_per_kib,
                metric: g.metric,
                route_price_per_kib: g.route_price_per_kib,
            })
            .collect(),
    ))
}
