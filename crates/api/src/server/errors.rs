//! Every failure as a JSON [`ErrorBody`] with a stable code and the right HTTP status.

use crate::types::{ErrorBody, ErrorDetail, codes};
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use smartmesh_chain::ChainError;
use smartmesh_engine::{ActionError, PaymentFailure};
use smartmesh_node::NodeError;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiFailure {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    pub(crate) fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "this endpoint does not accept that method (see /openapi.json)",
        )
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            "the request body is too large",
        )
    }

    pub(crate) fn parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_PARAMETER, message)
    }

    pub(crate) fn unknown_channel(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_CHANNEL,
            format!("no channel {id} known to this node"),
        )
    }

    pub(crate) fn overflow(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::AMOUNT_OVERFLOW, message)
    }

    /// A body that did not parse: the serde message says whether an amount was at fault.
    pub(crate) fn body(message: String) -> Self {
        if message.contains("amount overflow") {
            Self::new(StatusCode::BAD_REQUEST, codes::AMOUNT_OVERFLOW, message)
        } else if message.contains("amount must be a decimal string") {
            Self::new(StatusCode::BAD_REQUEST, codes::INVALID_AMOUNT, message)
        } else {
            Self::new(StatusCode::BAD_REQUEST, codes::MALFORMED_JSON, message)
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn action_failure(e: &ActionError) -> ApiFailure {
    match e {
        ActionError::UnknownChannel => {
            ApiFailure::new(StatusCode::NOT_FOUND, codes::UNKNOWN_CHANNEL, e.to_string())
        }
        ActionError::Overflow => ApiFailure::overflow(e.to_string()),
        _ => ApiFailure::new(StatusCode::CONFLICT, codes::REJECTED, e.to_string()),
    }
}

fn payment_failure(reason: &PaymentFailure) -> ApiFailure {
    match reason {
        PaymentFailure::Rejected(e) => action_failure(e),
        other => ApiFailure::new(
            StatusCode::CONFLICT,
            codes::PAYMENT_FAILED,
            super::convert::failure_text(other),
        ),
    }
}

impl From<NodeError> for ApiFailure {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Rejected(reason) => action_failure(&reason),
            NodeError::PaymentFailed(reason) => payment_failure(&reason),
            NodeError::ChainUnreachable | NodeError::Chain(ChainError::Unreachable { .. }) => {
                ApiFailure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::CHAIN_UNREACHABLE,
                    "the chain is unreachable: nothing new is done on chain until it returns \
                     (payments over open channels continue)",
                )
            }
            NodeError::Chain(other) => {
                ApiFailure::new(StatusCode::CONFLICT, codes::CHAIN_ERROR, other.to_string())
            }
            NodeError::Invalid(message) => {
                ApiFailure::new(StatusCode::CONFLICT, codes::REJECTED, message)
            }
            NodeError::Timeout(what) => ApiFailure::new(
                StatusCode::GATEWAY_TIMEOUT,
                codes::TIMEOUT,
                format!("timed out waiting for {what}"),
            ),
            NodeError::Stopped => ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::STOPPED,
                "the node is stopping",
            ),
            other @ (NodeError::Storage(_) | NodeError::Codec(_)) => {
                tracing::error!(error = %other, "internal error answering an API request");
                ApiFailure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    other.to_string(),
                )
            }
        }
    }
}
