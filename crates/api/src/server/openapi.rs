//! The route table (the router and the OpenAPI document both come from it) and the
//! OpenAPI 3.1 document.

use serde_json::{Value, json};

/// One endpoint under `/v1`.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path under `/v1` (axum and OpenAPI share the `{param}` syntax).
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Request body schema, if any.
    pub request: Option<&'static str>,
    /// Response schema; `[]X` is an array of `X`.
    pub response: &'static str,
    /// Success status.
    pub status: u16,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    response: &'static str,
    status: u16,
) -> Route {
    Route {
        method,
        path,
        summary,
        request,
        response,
        status,
    }
}

/// Every endpoint under `/v1` (`@bytes`: a raw `application/octet-stream` body).
pub const ROUTES: &[Route] = &[
    r(
        "post",
        "/mesh/messages",
        "Send a text message (or small bytes) over the mesh",
        Some("SendMessageRequest"),
        "MessageQueued",
        202,
    ),
    r(
        "post",
        "/mesh/files",
        "Send a file over the mesh (query: to, name; body: the bytes, at most 16 MiB)",
        Some("@bytes"),
        "MessageQueued",
        202,
    ),
    r(
        "get",
        "/mesh/inbox",
        "Messages received over the mesh",
        None,
        "[]InboxEntry",
        200,
    ),
    r(
        "get",
        "/mesh/inbox/{message}",
        "The bytes of one received message",
        None,
        "@bytes",
        200,
    ),
    r(
        "get",
        "/mesh/outbox",
        "Messages sent over the mesh and their delivery",
        None,
        "[]OutboxEntry",
        200,
    ),
    r(
        "get",
        "/mesh/routes",
        "Mesh neighbours and selected routes",
        None,
        "MeshRoutes",
        200,
    ),
    r(
        "get",
        "/mesh/stats",
        "Mesh counters",
        None,
        "MeshStatsInfo",
        200,
    ),
    r(
        "get",
        "/mesh/accounts",
        "Pay-for-forward accounts per neighbour (earnings, debts, standing)",
        None,
        "[]MeshAccount",
        200,
    ),
    r(
        "get",
        "/mesh/gateways",
        "Gateways out of the mesh, best first (route metric + prices)",
        None,
        "[]MeshGateway",
        200,
    ),
    r("get", "/address", "Who this node is", None, "NodeInfo", 200),
    r(
        "get",
        "/peers",
        "Known peers and their links",
        None,
        "[]PeerInfo",
        200,
    ),
    r(
        "get",
        "/tokens",
        "Tokens with on-chain balance and off-chain capacity",
        None,
        "[]TokenInfo",
        200,
    ),
    r(
        "get",
        "/channels",
        "Our channels",
        None,
        "[]ChannelInfo",
        200,
    ),
    r(
        "post",
        "/channels",
        "Open a channel (needs the chain)",
        Some("OpenChannelRequest"),
        "ChannelInfo",
        201,
    ),
    r(
        "get",
        "/channels/{id}",
        "One channel",
        None,
        "ChannelInfo",
        200,
    ),
    r(
        "post",
        "/channels/{id}/deposit",
        "Raise our total deposit (needs the chain)",
        Some("TotalRequest"),
        "ChannelInfo",
        200,
    ),
    r(
        "post",
        "/channels/{id}/withdraw",
        "Withdraw up to a new total (co-signed by the partner)",
        Some("TotalRequest"),
        "ChannelInfo",
        200,
    ),
    r(
        "post",
        "/channels/{id}/close",
        "Close on chain (queued while the chain is unreachable)",
        None,
        "ChannelInfo",
        200,
    ),
    r(
        "post",
        "/channels/{id}/settle",
        "Settle a closed channel after its timeout",
        None,
        "ChannelInfo",
        200,
    ),
    r(
        "post",
        "/payments",
        "Send a payment (direct or over a route)",
        Some("PaymentRequest"),
        "PaymentInfo",
        201,
    ),
    r(
        "get",
        "/payments",
        "Payments this node took part in",
        None,
        "[]PaymentInfo",
        200,
    ),
    r(
        "get",
        "/payments/{id}",
        "One payment",
        None,
        "PaymentInfo",
        200,
    ),
    r(
        "get",
        "/events",
        "Recent events (`since`, `limit` query parameters)",
        None,
        "[]EventInfo",
        200,
    ),
    r(
        "get",
        "/chain",
        "The chain connection as the node sees it",
        None,
        "ChainInfo",
        200,
    ),
    r(
        "get",
        "/status",
        "Everything on one screen",
        None,
        "StatusInfo",
        200,
    ),
    r(
        "post",
        "/fees",
        "Set a node's mediation fee (ours or another's)",
        Some("FeeRequest"),
        "FeeRequest",
        200,
    ),
];

fn schema_ref(name: &str) -> Value {
    match name.strip_prefix("[]") {
        Some(item) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}})
        }
        None => json!({"$ref": format!("#/components/schemas/{name}")}),
    }
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn schemas() -> Value {
    let amount = json!({"$ref": "#/components/schemas/Amount"});
    let address = json!({"$ref": "#/components/schemas/Address"});
    let int = json!({"type": "integer", "minimum": 0});
    let string = json!({"type": "string"});
    let opt = |v: &Value| json!({"oneOf": [v, {"type": "null"}]});
    let balance = object(
        &["nonce", "transferred_amount", "locked_amount", "locksroot"],
        json!({"nonce": int, "transferred_amount": amount, "locked_amount": amount, "locksroot": string}),
    );
    json!({
        "Amount": {"type": "string", "pattern": "^[0-9]{1,78}$", "description": "Token amount in base units, decimal, at most 2^256-1"},
        "Address": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
        "ErrorBody": object(&["error"], json!({"error": object(&["code", "message"], json!({"code": string, "message": string}))})),
        "NodeInfo": object(&["address", "peer_id", "listen_addrs", "chain_id", "token_network", "token", "version"], json!({
            "address": address, "peer_id": string, "listen_addrs": {"type": "array", "items": string},
            "chain_id": int, "token_network": address, "token": address, "version": string})),
        "PeerInfo": object(&["address", "peer_id", "addrs", "connected", "source"], json!({
            "address": address, "peer_id": string, "addrs": {"type": "array", "items": string},
            "connected": {"type": "boolean"}, "source": {"enum": ["mdns", "static", "inbound"]}})),
        "TokenInfo": object(&["token", "symbol", "token_network", "offchain_capacity"], json!({
            "token": address, "symbol": string, "token_network": address,
            "onchain_balance": opt(&amount), "offchain_capacity": amount})),
        "BalanceInfo": balance,
        "ChannelInfo": object(&["channel_id", "partner", "status", "settle_timeout"], json!({
            "channel_id": string, "partner": address,
            "status": {"enum": ["opened", "settling", "closing", "closed", "settled"]},
            "settle_timeout": int, "our_deposit": amount, "our_withdrawn": amount,
            "partner_deposit": amount, "partner_withdrawn": amount,
            "our_capacity": amount, "partner_capacity": amount,
            "our_balance": {"$ref": "#/components/schemas/BalanceInfo"},
            "partner_balance": {"$ref": "#/components/schemas/BalanceInfo"},
            "closer": opt(&address),
            "outcome": {"oneOf": [{"type": "null"}, object(&["kind"], json!({
                "kind": {"enum": ["settled", "cooperatively_settled", "penalized"]},
                "ours": amount, "partner": amount, "beneficiary": address, "amount": amount}))]}})),
        "OpenChannelRequest": object(&["partner", "deposit"], json!({"partner": address, "deposit": amount, "settle_timeout": int})),
        "TotalRequest": object(&["total"], json!({"total": amount})),
        "PaymentRequest": object(&["target", "amount"], json!({
            "target": address, "amount": amount, "mode": {"enum": ["auto", "direct", "mediated"]},
            "wait": {"type": "boolean"}, "timeout_ms": int})),
        "PaymentInfo": object(&["payment_id", "status", "role"], json!({
            "payment_id": string, "status": {"enum": ["pending", "sent", "received", "mediated", "failed"]},
            "role": {"enum": ["initiator", "target", "mediator"]}, "target": opt(&address),
            "initiator": opt(&address), "amount": opt(&amount), "fee_earned": opt(&amount), "failure": opt(&string)})),
        "EventInfo": object(&["seq", "time_ms", "kind", "detail"], json!({"seq": int, "time_ms": int, "kind": string, "detail": string})),
        "ChainInfo": object(&["status", "endpoint", "chain_id", "scanned_block", "chain_time", "queued_onchain_actions", "queued_messages"], json!({
            "status": {"enum": ["unreachable", "syncing", "synced"]}, "endpoint": string, "chain_id": int,
            "head_block": opt(&int), "scanned_block": int, "chain_time": int,
            "queued_onchain_actions": int, "queued_messages": int})),
        "LinkStatsInfo": object(&[], json!({"messages_sent": int, "messages_acked": int, "messages_dropped": int,
            "messages_received": int, "outbound_queue_depth": int, "inbound_queue_depth": int, "connections": int})),
        "StatusInfo": object(&["node", "chain", "tokens"], json!({
            "node": {"$ref": "#/components/schemas/NodeInfo"}, "chain": {"$ref": "#/components/schemas/ChainInfo"},
            "tokens": {"type": "array", "items": {"$ref": "#/components/schemas/TokenInfo"}},
            "connected_peers": int, "channels_open": int, "channels_other": int,
            "links": {"$ref": "#/components/schemas/LinkStatsInfo"}})),
        "SendMessageRequest": object(&["to"], json!({"to": address, "text": string, "body_hex": string})),
        "MessageQueued": object(&["id", "bytes"], json!({"id": string, "bytes": int})),
        "InboxEntry": object(&["id", "from", "name", "bytes", "received_unix_ms"], json!({
            "id": string, "from": address, "name": string, "bytes": int, "received_unix_ms": int, "text": opt(&string)})),
        "OutboxEntry": object(&["id", "to", "name", "bytes", "parts", "acked", "status"], json!({
            "id": string, "to": address, "name": string, "bytes": int, "parts": int, "acked": int,
            "status": {"enum": ["waiting", "sending", "delivered", "expired"]}, "delivery_us": opt(&int)})),
        "MeshRoutes": object(&["neighbours", "routes"], json!({
            "neighbours": {"type": "array", "items": object(&["address", "cost"], json!({"address": address, "cost": int, "rtt_us": opt(&int)}))},
            "routes": {"type": "array", "items": object(&["destination", "next_hop", "metric", "price_per_kib"], json!({
                "destination": address, "next_hop": address, "metric": int, "price_per_kib": int}))}})),
        "MeshStatsInfo": object(&[], json!({"forwarded_packets": int, "forwarded_bytes": int, "dropped_packets": int,
            "stored_packets": int, "bad_packets": int, "messages_received": int, "messages_delivered": int, "sessions": int,
            "cut_off_packets": int, "throttled_packets": int, "receipts_signed": int, "settlements": int})),
        "MeshGateway": object(&["gateway", "price_per_kib", "metric", "route_price_per_kib"], json!({
            "gateway": address, "price_per_kib": int, "metric": int, "route_price_per_kib": int})),
        "MeshAccount": object(&["neighbour", "owed_to_us", "owed_by_us", "paid_to_them", "credited_from_them", "earned",
            "bytes_carried_for_them", "bytes_carried_by_them", "standing"], json!({
            "neighbour": address, "owed_to_us": amount, "owed_by_us": amount, "paid_to_them": amount,
            "credited_from_them": amount, "earned": amount, "bytes_carried_for_them": int, "bytes_carried_by_them": int,
            "standing": {"enum": ["good", "throttled", "cut_off"]}})),
        "FeeRequest": object(&["node", "flat", "proportional_ppm"], json!({"node": address, "flat": amount, "proportional_ppm": int})),
    })
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let path = format!("{}{}", crate::types::API_PREFIX, route.path);
        let mut op = json!({
            "summary": route.summary,
            "responses": {
                route.status.to_string(): {"description": "Success", "content": {"application/json": {"schema": schema_ref(route.response)}}},
                "default": error,
            },
        });
        if route.path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9]+$"}}]);
        }
        if route.path.contains("{message}") {
            op["parameters"] = json!([{"name": "message", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}]);
        }
        if route.response == "@bytes" {
            op["responses"][route.status.to_string()] =
                json!({"description": "Success", "content": {"application/octet-stream": {}}});
        }
        match route.request {
            Some("@bytes") => {
                op["parameters"] = json!([
                    {"name": "to", "in": "query", "required": true, "schema": {"$ref": "#/components/schemas/Address"}},
                    {"name": "name", "in": "query", "required": true, "schema": {"type": "string"}}]);
                op["requestBody"] =
                    json!({"required": true, "content": {"application/octet-stream": {}}});
            }
            Some(request) => {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(request)}}});
            }
            None => {}
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    paths.insert(
        "/metrics".into(),
        json!({"get": {"summary": "Prometheus metrics (text format 0.0.4)", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}, "default": error}}}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "SmartMesh node API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Local REST API of a SmartMesh node. Amounts are decimal strings of base units. Every error is an ErrorBody with a stable code."},
        "servers": [{"url": "http://127.0.0.1:5880"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "The token in the node's data directory (file api-token, mode 0600)"}},
            "schemas": schemas(),
        },
    })
}
