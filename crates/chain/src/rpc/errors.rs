//! Mapping of JSON-RPC and transport failures onto [`ChainError`].

use std::error::Error as StdError;

use alloy::transports::{RpcError, TransportError, TransportErrorKind};
use serde_json::Value;
use smartmesh_primitives::Bytes;

use crate::ChainError;

/// Walks an error's source chain into one line, so that "error sending request" says
/// *why* ("Connection refused", "operation timed out").
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

/// Whether a transport failure certainly happened before the request reached the node
/// (a refused or failed connection), so a transaction in it was certainly not received.
pub(crate) fn certainly_not_delivered(error: &TransportError) -> bool {
    let RpcError::Transport(kind) = error else {
        return false;
    };
    match kind {
        TransportErrorKind::Custom(inner) => {
            let mut source: Option<&(dyn StdError + 'static)> = Some(inner.as_ref());
            while let Some(err) = source {
                if let Some(reqwest_err) =
                    err.downcast_ref::<alloy::transports::http::reqwest::Error>()
                {
                    return reqwest_err.is_connect() || reqwest_err.is_builder();
                }
                source = err.source();
            }
            false
        }
        TransportErrorKind::BackendGone => true,
        _ => false,
    }
}

/// Maps a failed request. JSON-RPC errors that say "revert" become
/// [`ChainError::Reverted`] only when `revert_aware` (calls and gas estimation);
/// otherwise they are [`ChainError::Rejected`].
pub(crate) fn map_error(endpoint: &str, error: TransportError, revert_aware: bool) -> ChainError {
    match error {
        RpcError::Transport(kind) => ChainError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason: error_chain(&kind),
        },
        RpcError::ErrorResp(payload) => {
            let data: Option<Value> = payload
                .data
                .as_ref()
                .and_then(|raw| serde_json::from_str(raw.get()).ok());
            if revert_aware && is_revert(payload.code, &payload.message) {
                let bytes = data
                    .as_ref()
                    .and_then(revert_data_in)
                    .or_else(|| revert_data_in_message(&payload.message))
                    .unwrap_or_default();
                return ChainError::reverted(bytes, None);
            }
            ChainError::Rejected(format!("{} (code {})", payload.message, payload.code))
        }
        RpcError::NullResp => {
            ChainError::InvalidResponse("null result where a value was expected".to_owned())
        }
        RpcError::DeserError { err, text } => {
            let mut text = text;
            text.truncate(300);
            ChainError::InvalidResponse(format!("{err}: {text}"))
        }
        other => ChainError::InvalidResponse(error_chain(&other)),
    }
}

/// Geth uses code 3 for reverts; everyone (geth, Hardhat, Ganache, Anvil, our devchain)
/// says "revert" in the message.
fn is_revert(code: i64, message: &str) -> bool {
    code == 3 || message.to_ascii_lowercase().contains("revert")
}

/// Finds revert bytes in a JSON-RPC error's `data`: a hex string (geth, Anvil, our
/// devchain), `{ "data": "0x.." }` (Hardhat, Ganache 7), `{ "originalError": { "data": .. } }`
/// (some proxies) or Ganache 6's `{ "<tx hash>": { "return": "0x.." } }`.
pub(crate) fn revert_data_in(value: &Value) -> Option<Bytes> {
    match value {
        Value::String(text) => parse_hex(text),
        Value::Object(map) => {
            for key in ["data", "originalError", "return", "result"] {
                if let Some(found) = map.get(key).and_then(revert_data_in) {
                    return Some(found);
                }
            }
            map.values()
                .filter_map(|inner| inner.as_object()?.get("return"))
                .find_map(revert_data_in)
        }
        _ => None,
    }
}

/// Hardhat-style messages end with "(return data: 0x...)".
fn revert_data_in_message(message: &str) -> Option<Bytes> {
    let start = message.find("return data: ")? + "return data: ".len();
    let hex: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == 'x')
        .collect();
    parse_hex(&hex)
}

fn parse_hex(text: &str) -> Option<Bytes> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() % 2 != 0 {
        return None;
    }
    alloy::hex::decode(digits).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_revert_data_in_every_known_shape() {
        let bytes = Bytes::from(vec![0xe4, 0x50, 0xd3, 0x8c]);
        for shape in [
            json!("0xe450d38c"),
            json!({"message": "Error: VM Exception", "data": "0xe450d38c"}),
            json!({"originalError": {"code": 3, "data": "0xe450d38c"}}),
            json!({"0xabc": {"error": "revert", "return": "0xe450d38c"}}),
        ] {
            assert_eq!(revert_data_in(&shape), Some(bytes.clone()), "{shape}");
        }
        assert_eq!(revert_data_in(&json!({"message": "x", "data": null})), None);
        assert_eq!(
            revert_data_in_message(
                "reverted with an unrecognized custom error (return data: 0xe450d38c)"
            ),
            Some(bytes)
        );
    }

    #[test]
    fn revert_detection() {
        assert!(is_revert(3, "execution reverted"));
        assert!(is_revert(
            -32603,
            "Error: VM Exception while processing transaction: reverted with"
        ));
        assert!(!is_revert(
            -32000,
            "insufficient funds for gas * price + value"
        ));
    }
}
