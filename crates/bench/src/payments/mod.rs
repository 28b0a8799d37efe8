//! The payment benchmarks: durable direct transfers, the signing limit, and mediated
//! payment latency. Included by `src/bin/bench_payments.rs`.

pub mod cpu;
pub mod direct;
pub mod mediated;
pub mod node;
pub mod replay;
pub mod sign;
