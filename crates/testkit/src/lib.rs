//! Scenarios on an embedded chain shared by the contract tests, the gas report and the
//! demo: funded participants driving the TokenNetwork through its operations.

pub mod flows;
pub mod lifecycle;
pub mod netns;
pub mod procs;

pub use lifecycle::{Lifecycle, SETTLE_TIMEOUT, SignedBalance, fmt_smt, smt};
