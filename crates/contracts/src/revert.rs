//! Decoding of revert payloads into readable reasons.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use alloy::dyn_abi::{DynSolValue, ErrorExt as _};
use alloy::json_abi::{Error as AbiError, Param};
use alloy::primitives::U256;
use alloy::sol_types::{Panic, Revert, SolError};

use crate::artifacts;

fn error_table() -> &'static HashMap<[u8; 4], AbiError> {
    static TABLE: OnceLock<HashMap<[u8; 4], AbiError>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for artifact in artifacts::all() {
            for error in artifact.abi().errors() {
                table
                    .entry(error.selector().0)
                    .or_insert_with(|| error.clone());
            }
        }
        table
    })
}

/// Maps a revert payload to a readable reason: the custom error's name and decoded arguments
/// (e.g. `SettleTimeoutNotExpired(now=100, settleAt=160)`), for every error in the ABIs of our
/// contracts (including OpenZeppelin's), plus `Error(message="...")` and
/// `Panic(code=0x11: arithmetic underflow or overflow)`.
///
/// Returns `None` for an empty payload, an unknown selector, or undecodable arguments.
pub fn revert_reason(data: &[u8]) -> Option<String> {
    let selector: [u8; 4] = data.get(..4)?.try_into().ok()?;
    if selector == Revert::SELECTOR {
        let revert = Revert::abi_decode(data).ok()?;
        return Some(format!("Error(message={:?})", revert.reason));
    }
    if selector == Panic::SELECTOR {
        let panic = Panic::abi_decode(data).ok()?;
        let code = panic.code;
        return Some(match panic.kind() {
            Some(kind) => format!("Panic(code={code:#x}: {kind})"),
            None => format!("Panic(code={code:#x})"),
        });
    }
    let error = error_table().get(&selector)?;
    let decoded = error.decode_error(data).ok()?;
    let mut out = format!("{}(", error.name);
    for (i, (param, value)) in error.inputs.iter().zip(&decoded.body).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_param(&mut out, param, i, value);
    }
    out.push(')');
    Some(out)
}

fn write_param(out: &mut String, param: &Param, index: usize, value: &DynSolValue) {
    if param.name.is_empty() {
        let _ = write!(out, "arg{index}=");
    } else {
        let _ = write!(out, "{}=", param.name);
    }
    write_value(out, value);
}

fn write_value(out: &mut String, value: &DynSolValue) {
    match value {
        DynSolValue::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        DynSolValue::Int(i, _) => {
            let _ = write!(out, "{i}");
        }
        DynSolValue::Uint(u, _) => write_uint(out, *u),
        DynSolValue::FixedBytes(word, size) => {
            let _ = write!(out, "0x{}", hex::encode(&word[..*size]));
        }
        DynSolValue::Address(a) => {
            let _ = write!(out, "{a}");
        }
        DynSolValue::Function(f) => {
            let _ = write!(out, "0x{}", hex::encode(f.as_slice()));
        }
        DynSolValue::Bytes(b) => {
            let _ = write!(out, "0x{}", hex::encode(b));
        }
        DynSolValue::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            out.push('[');
            write_list(out, items);
            out.push(']');
        }
        DynSolValue::Tuple(items) => {
            out.push('(');
            write_list(out, items);
            out.push(')');
        }
        #[allow(unreachable_patterns)]
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}

fn write_uint(out: &mut String, u: U256) {
    if u == U256::MAX {
        out.push_str("MAX");
    } else {
        let _ = write!(out, "{u}");
    }
}

fn write_list(out: &mut String, items: &[DynSolValue]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(out, item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenNetwork;
    use alloy::primitives::{Address, U256};

    #[test]
    fn custom_error_with_args() {
        let err = TokenNetwork::SettleTimeoutNotExpired {
            now: U256::from(100),
            settleAt: U256::from(160),
        };
        assert_eq!(
            revert_reason(&err.abi_encode()).as_deref(),
            Some("SettleTimeoutNotExpired(now=100, settleAt=160)")
        );
    }

    #[test]
    fn generated_enums_exist() {
        use alloy::sol_types::{SolEvent, SolInterface};
        let err = TokenNetwork::ChannelStateMismatch { id: U256::from(7) };
        let decoded =
            TokenNetwork::TokenNetworkErrors::abi_decode(&err.abi_encode()).expect("decodes");
        assert!(matches!(
            decoded,
            TokenNetwork::TokenNetworkErrors::ChannelStateMismatch(_)
        ));
        let _ = TokenNetwork::ChannelClosed::SIGNATURE_HASH;
        let _ = <TokenNetwork::TokenNetworkCalls as SolInterface>::COUNT;
        let _ = TokenNetwork::TokenNetworkEvents::ChannelOpened;
    }

    #[test]
    fn oz_errors_and_builtins() {
        let err = TokenNetwork::ReentrancyGuardReentrantCall {};
        assert_eq!(
            revert_reason(&err.abi_encode()).as_deref(),
            Some("ReentrancyGuardReentrantCall()")
        );
        let err = crate::SmartMeshToken::ERC20InsufficientBalance {
            sender: Address::repeat_byte(0x11),
            balance: U256::from(1),
            needed: U256::from(2),
        };
        let s = revert_reason(&err.abi_encode()).expect("decodes");
        assert!(
            s.starts_with("ERC20InsufficientBalance(sender=0x1111"),
            "{s}"
        );
        let s = revert_reason(&Revert::from("boom").abi_encode()).expect("decodes");
        assert_eq!(s, "Error(message=\"boom\")");
        let s = revert_reason(&Panic::from(0x11u64).abi_encode()).expect("decodes");
        assert!(s.starts_with("Panic(code=0x11"), "{s}");
        assert_eq!(revert_reason(&[]), None);
        assert_eq!(revert_reason(&[1, 2, 3, 4]), None);
    }
}
