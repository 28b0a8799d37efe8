//! A typed client of the REST API (the CLI's `channel`, `pay` and `status` commands and
//! the demo use it).

use crate::types::{
    API_PREFIX, ChainInfo, ChannelInfo, ErrorBody, EventInfo, FeeRequest, InboxEntry, MeshAccount,
    MeshGateway, MeshRoutes, MeshStatsInfo, MessageQueued, NodeInfo, OpenChannelRequest,
    OutboxEntry, PaymentInfo, PaymentRequest, PeerInfo, SendMessageRequest, StatusInfo, TokenInfo,
    TotalRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached (not running, wrong address).
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code (see `types::codes`).
        code: String,
        /// The node's message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the node (HTTP {status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The API error code, when the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client for one node's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:5880`) with the node's
    /// bearer token.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base_url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, API_PREFIX, path)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, String), ClientError> {
        let (status, bytes) = self.send_bytes(request, url).await?;
        String::from_utf8(bytes)
            .map(|text| (status, text))
            .map_err(|_| ClientError::Decode {
                status,
                reason: "the answer is not UTF-8".into(),
            })
    }

    async fn send_bytes(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            ClientError::Unreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ClientError::Decode {
            status,
            reason: e.to_string(),
        })?;
        if (200..300).contains(&status) {
            return Ok((status, bytes.to_vec()));
        }
        let text = String::from_utf8_lossy(&bytes);
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api {
                status,
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(ClientError::Decode {
                status,
                reason: format!(
                    "not an error body: {}",
                    text.chars().take(200).collect::<String>()
                ),
            }),
        }
    }

    fn decode<T: DeserializeOwned>(status: u16, text: &str) -> Result<T, ClientError> {
        serde_json::from_str(text).map_err(|e| ClientError::Decode {
            status,
            reason: e.to_string(),
        })
    }

    /// `GET /v1{path}`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let (status, text) = self.send(self.http.get(&url), &url).await?;
        Self::decode(status, &text)
    }

    /// `POST /v1{path}` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let (status, text) = self.send(self.http.post(&url).json(body), &url).await?;
        Self::decode(status, &text)
    }

    /// `POST /v1{path}` with a raw body (tests send malformed JSON with it).
    pub async fn post_raw(&self, path: &str, body: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let request = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(request, &url).await.map(|(_, text)| text)
    }

    /// Sends a text message over the mesh.
    pub async fn send_message(&self, to: &str, text: &str) -> Result<MessageQueued, ClientError> {
        let to = to.parse().map_err(|_| ClientError::Api {
            status: 400,
            code: crate::types::codes::INVALID_PARAMETER.into(),
            message: format!("{to} is not an address (0x and 40 hex digits)"),
        })?;
        let request = SendMessageRequest {
            to,
            text: Some(text.to_owned()),
            body_hex: None,
        };
        self.post("/mesh/messages", &request).await
    }

    /// Sends a file over the mesh.
    pub async fn send_file(
        &self,
        to: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<MessageQueued, ClientError> {
        let url = self.url("/mesh/files");
        let request = self
            .http
            .post(&url)
            .query(&[("to", to), ("name", name)])
            .header("content-type", "application/octet-stream")
            .body(bytes);
        let (status, text) = self.send(request, &url).await?;
        Self::decode(status, &text)
    }

    /// Messages received over the mesh.
    pub async fn inbox(&self) -> Result<Vec<InboxEntry>, ClientError> {
        self.get("/mesh/inbox").await
    }

    /// The bytes of one received message.
    pub async fn inbox_message(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(&format!("/mesh/inbox/{id}"));
        self.send_bytes(self.http.get(&url), &url)
            .await
            .map(|(_, bytes)| bytes)
    }

    /// Messages sent over the mesh.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, ClientError> {
        self.get("/mesh/outbox").await
    }

    /// Mesh neighbours and routes.
    pub async fn mesh_routes(&self) -> Result<MeshRoutes, ClientError> {
        self.get("/mesh/routes").await
    }

    /// Pay-for-forward accounts per neighbour.
    pub async fn mesh_accounts(&self) -> Result<Vec<MeshAccount>, ClientError> {
        self.get("/mesh/accounts").await
    }

    /// Gateways out of the mesh, best first.
    pub async fn mesh_gateways(&self) -> Result<Vec<MeshGateway>, ClientError> {
        self.get("/mesh/gateways").await
    }

    /// Mesh counters.
    pub async fn mesh_stats(&self) -> Result<MeshStatsInfo, ClientError> {
        self.get("/mesh/stats").await
    }

    /// Who the node is.
    pub async fn node_info(&self) -> Result<NodeInfo, ClientError> {
        self.get("/address").await
    }

    /// Its peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.get("/peers").await
    }

    /// Its tokens and balances.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.get("/tokens").await
    }

    /// Its channels.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, ClientError> {
        self.get("/channels").await
    }

    /// One channel.
    pub async fn channel(&self, channel_id: &str) -> Result<ChannelInfo, ClientError> {
        self.get(&format!("/channels/{channel_id}")).await
    }

    /// Opens a channel (needs the chain).
    pub async fn open_channel(
        &self,
        request: &OpenChannelRequest,
    ) -> Result<ChannelInfo, ClientError> {
        self.post("/channels", request).await
    }

    /// Raises our total deposit.
    pub async fn deposit(
        &self,
        channel_id: &str,
        total: &TotalRequest,
    ) -> Result<ChannelInfo, ClientError> {
        self.post(&format!("/channels/{channel_id}/deposit"), total)
            .await
    }

    /// Withdraws up to a new total (co-signed by the partner).
    pub async fn withdraw(
        &self,
        channel_id: &str,
        total: &TotalRequest,
    ) -> Result<ChannelInfo, ClientError> {
        self.post(&format!("/channels/{channel_id}/withdraw"), total)
            .await
    }

    /// Closes the channel on chain (queued while the chain is unreachable).
    pub async fn close(&self, channel_id: &str) -> Result<ChannelInfo, ClientError> {
        self.post(
            &format!("/channels/{channel_id}/close"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Settles a closed channel whose settle timeout passed.
    pub async fn settle(&self, channel_id: &str) -> Result<ChannelInfo, ClientError> {
        self.post(
            &format!("/channels/{channel_id}/settle"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Sends a payment.
    pub async fn pay(&self, request: &PaymentRequest) -> Result<PaymentInfo, ClientError> {
        self.post("/payments", request).await
    }

    /// Payments this node took part in.
    pub async fn payments(&self) -> Result<Vec<PaymentInfo>, ClientError> {
        self.get("/payments").await
    }

    /// One payment.
    pub async fn payment(&self, payment_id: &str) -> Result<PaymentInfo, ClientError> {
        self.get(&format!("/payments/{payment_id}")).await
    }

    /// Events after `since` (all kept ones when `None`).
    pub async fn events(&self, since: Option<u64>) -> Result<Vec<EventInfo>, ClientError> {
        match since {
            Some(seq) => self.get(&format!("/events?since={seq}")).await,
            None => self.get("/events").await,
        }
    }

    /// The chain connection.
    pub async fn chain(&self) -> Result<ChainInfo, ClientError> {
        self.get("/chain").await
    }

    /// Everything on one screen.
    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        self.get("/status").await
    }

    /// Sets a node's mediation fee (ours or another's, for routing).
    pub async fn set_fee(&self, request: &FeeRequest) -> Result<serde_json::Value, ClientError> {
        self.post("/fees", request).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        self.send(self.http.get(&url), &url)
            .await
            .map(|(_, text)| text)
    }
}
