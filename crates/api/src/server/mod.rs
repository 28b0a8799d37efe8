//! The REST server: axum over a [`NodeHandle`], bearer token, JSON errors with codes,
//! an event ring buffer fed by the node's notifications, Prometheus metrics, and the
//! OpenAPI document built from the same route table as the router.

mod convert;
mod errors;
mod handlers;
mod mesh;
mod metrics;
pub mod openapi;

use crate::types::{EventInfo, LinkStatsInfo, PeerInfo};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use errors::ApiFailure;
use smartmesh_node::NodeHandle;
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use metrics::Metrics;

/// Counters of the link layer, for `/metrics` and `/status`.
pub type LinkStats = LinkStatsInfo;

/// What the API needs from the link layer.
pub trait PeerSource: Send + Sync + 'static {
    /// Our libp2p peer id.
    fn peer_id(&self) -> String;
    /// Addresses we listen on.
    fn listen_addrs(&self) -> Vec<String>;
    /// Known peers.
    fn peers(&self) -> Vec<PeerInfo>;
    /// Counters and queue depths.
    fn link_stats(&self) -> LinkStats;
}

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where to listen; must be a loopback address unless `allow_remote`.
    pub listen: SocketAddr,
    /// Allow a non-loopback listen address.
    pub allow_remote: bool,
    /// The bearer token every request but `/openapi.json` must carry.
    pub token: String,
    /// `embedded` or the JSON-RPC URL (shown in `/chain`).
    pub chain_endpoint: String,
    /// The token's symbol.
    pub token_symbol: String,
    /// Events kept for `/events`.
    pub event_buffer: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// How long `wait: true` payments wait without `timeout_ms`.
    pub default_wait: Duration,
    /// Upper bound of any wait.
    pub max_wait: Duration,
    /// Settle timeout of channels opened without one (the node's default when `None`).
    pub default_settle_timeout: Option<u64>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5880)),
            allow_remote: false,
            token: String::new(),
            chain_endpoint: "embedded".into(),
            token_symbol: "SMT".into(),
            event_buffer: 1024,
            max_body_bytes: 64 * 1024,
            default_wait: Duration::from_secs(10),
            max_wait: Duration::from_secs(120),
            default_settle_timeout: None,
        }
    }
}

/// Errors of the API crate's server side.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token file could not be read or written, or is unsafe.
    #[error("api token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The listen address is refused or busy.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Reads the API token at `path`, or creates one (32 random bytes, hex) with mode 0600
/// at first start. A token file readable by group or others is refused.
pub fn load_or_create_token(path: &Path) -> Result<String, ApiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |reason: String| ApiError::TokenFile {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "mode {mode:o} lets other users read it; run `chmod 600` on it or delete it"
                )));
            }
            let token = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            let token = token.trim().to_owned();
            if token.len() < 32 {
                return Err(fail("the token is shorter than 32 characters".into()));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| fail(format!("no randomness: {e}")))?;
            let token = hex::encode(bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| fail(e.to_string()))?;
            file.write_all(token.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fail(e.to_string()))?;
            Ok(token)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) node: NodeHandle,
    pub(crate) peers: Arc<dyn PeerSource>,
    pub(crate) config: ApiConfig,
    pub(crate) events: Mutex<VecDeque<EventInfo>>,
    pub(crate) metrics: Metrics,
    pub(crate) mesh: Option<smartmesh_mesh_service::MeshHandle>,
}

impl AppState {
    pub(crate) fn events(&self) -> std::sync::MutexGuard<'_, VecDeque<EventInfo>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    collector: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (open requests finish) and the event collector.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
        self.collector.abort();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.collector.abort();
    }
}

/// Starts the API server for `node`.
pub async fn start(
    config: ApiConfig,
    node: NodeHandle,
    peers: Arc<dyn PeerSource>,
) -> Result<ApiServer, ApiError> {
    start_with_mesh(config, node, peers, None).await
}

/// Starts the API server with the mesh endpoints served by `mesh` (without it they
/// answer `mesh_unavailable`).
pub async fn start_with_mesh(
    config: ApiConfig,
    node: NodeHandle,
    peers: Arc<dyn PeerSource>,
    mesh: Option<smartmesh_mesh_service::MeshHandle>,
) -> Result<ApiServer, ApiError> {
    if !config.allow_remote && !config.listen.ip().is_loopback() {
        return Err(ApiError::Listen {
            addr: config.listen.to_string(),
            reason: "the API listens on loopback only (it moves money); allow_remote is off".into(),
        });
    }
    if config.token.len() < 32 {
        return Err(ApiError::TokenFile {
            path: "(config)".into(),
            reason: "the token is shorter than 32 characters".into(),
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ApiError::Listen {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| ApiError::Listen {
        addr: config.listen.to_string(),
        reason: e.to_string(),
    })?;
    let notifications = node.subscribe();
    let state = Arc::new(AppState {
        node,
        peers,
        events: Mutex::new(VecDeque::with_capacity(config.event_buffer.min(4096))),
        config,
        metrics: Metrics::default(),
        mesh,
    });
    let collector = tokio::spawn(handlers::collect_events(state.clone(), notifications));
    let app = router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "API server stopped");
        }
    });
    Ok(ApiServer {
        addr,
        stop: Some(stop),
        task,
        collector,
    })
}

/// The router: every route of [`openapi::ROUTES`], the token check, JSON errors for
/// unknown routes and methods, a body limit.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let mut api = Router::new();
    for route in openapi::ROUTES {
        api = api.route(route.path, handlers::method_router(route));
    }
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_token,
    ));
    Router::new()
        .nest(crate::types::API_PREFIX, api)
        .route(
            "/metrics",
            axum::routing::get(handlers::metrics).route_layer(
                axum::middleware::from_fn_with_state(state.clone(), require_token),
            ),
        )
        .route(
            "/openapi.json",
            axum::routing::get(handlers::openapi_document),
        )
        .fallback(|| async { ApiFailure::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            json_errors,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    // Constant time in the token's content (the length is not secret).
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if token_matches(token.as_bytes(), state.config.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiFailure::unauthorized("wrong bearer token").into_response(),
        None => ApiFailure::unauthorized(
            "missing `Authorization: Bearer <token>` (the token is in the data directory's api-token file)",
        )
        .into_response(),
    }
}

/// Turns axum's bare 405 answers into JSON errors and counts answers by status.
async fn json_errors(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    state.metrics.count_request(status.as_u16());
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status == StatusCode::METHOD_NOT_ALLOWED && !is_json {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut failure = ApiFailure::method_not_allowed().into_response();
        if let Some(allow) = allow {
            failure.headers_mut().insert(header::ALLOW, allow);
        }
        return failure;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiFailure::too_large().into_response();
    }
    response
}

pub(crate) fn json_header() -> HeaderValue {
    HeaderValue::from_static("application/json")
}
