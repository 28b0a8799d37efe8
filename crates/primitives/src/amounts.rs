//! Newtypes: an amount is never confused with a nonce, a time or an id.

use crate::PrimitivesError;
use alloy::primitives::U256;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A token amount in the token's smallest unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TokenAmount(pub U256);

impl TokenAmount {
    /// Zero tokens.
    pub const ZERO: Self = Self(U256::ZERO);

    /// An amount from a plain integer.
    pub fn from_u128(v: u128) -> Self {
        Self(U256::from(v))
    }

    /// `self + rhs`, or an error on overflow.
    pub fn checked_add(self, rhs: Self) -> Result<Self, PrimitivesError> {
        self.0
            .checked_add(rhs.0)
            .map(Self)
            .ok_or(PrimitivesError::Overflow("token amount addition"))
    }

    /// `self - rhs`, or an error when `rhs > self`.
    pub fn checked_sub(self, rhs: Self) -> Result<Self, PrimitivesError> {
        self.0
            .checked_sub(rhs.0)
            .map(Self)
            .ok_or(PrimitivesError::Overflow("token amount subtraction"))
    }

    /// The smaller of two amounts.
    pub fn min(self, rhs: Self) -> Self {
        if self <= rhs { self } else { rhs }
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TokenAmount {
    type Err = PrimitivesError;
    /// Decimal integer in the smallest unit.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        U256::from_str_radix(s.trim(), 10)
            .map(Self)
            .map_err(|_| PrimitivesError::Parse {
                what: "token amount",
                input: s.chars().take(80).collect(),
            })
    }
}

/// A balance-proof nonce: strictly increasing per signer and channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nonce(pub u64);

impl Nonce {
    /// The nonce after this one, or an error at the end of the range.
    pub fn next(self) -> Result<Self, PrimitivesError> {
        self.0
            .checked_add(1)
            .map(Self)
            .ok_or(PrimitivesError::Overflow("nonce"))
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Chain time: seconds since the Unix epoch, as `block.timestamp`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChainTime(pub u64);

impl ChainTime {
    /// `self + seconds`, or an error on overflow.
    pub fn checked_add_secs(self, seconds: u64) -> Result<Self, PrimitivesError> {
        self.0
            .checked_add(seconds)
            .map(Self)
            .ok_or(PrimitivesError::Overflow("chain time"))
    }

    /// Seconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: ChainTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for ChainTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// A channel identifier assigned by the TokenNetwork contract; never reused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChannelId(pub U256);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An EIP-155 chain id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChainId(pub u64);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A block height.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BlockNumber(pub u64);

impl fmt::Display for BlockNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_overflow_is_an_error() {
        let max = TokenAmount(U256::MAX);
        assert!(max.checked_add(TokenAmount::from_u128(1)).is_err());
        assert!(
            TokenAmount::ZERO
                .checked_sub(TokenAmount::from_u128(1))
                .is_err()
        );
        assert_eq!(
            TokenAmount::from_u128(2).checked_add(TokenAmount::from_u128(3)),
            Ok(TokenAmount::from_u128(5))
        );
    }

    #[test]
    fn nonce_and_time_overflow_are_errors() {
        assert!(Nonce(u64::MAX).next().is_err());
        assert_eq!(Nonce(1).next(), Ok(Nonce(2)));
        assert!(ChainTime(u64::MAX).checked_add_secs(1).is_err());
        assert_eq!(ChainTime(10).saturating_since(ChainTime(20)), 0);
    }

    #[test]
    fn amount_parses_decimal_only() {
        assert_eq!("42".parse::<TokenAmount>(), Ok(TokenAmount::from_u128(42)));
        assert!("-1".parse::<TokenAmount>().is_err());
        assert!("0x10".parse::<TokenAmount>().is_err());
        assert!("1".repeat(100).parse::<TokenAmount>().is_err());
    }
}
