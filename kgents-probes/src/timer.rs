//! The injected [`Timer`] (a monotonic clock and a sleep), so the probe runner can measure
//! latency and enforce timeouts without depending on an async runtime. It is
//! [`kgents_core::timer::Timer`], re-exported here; the ghost protocol uses the same trait.

pub use kgents_core::timer::{BoxFuture, Timer};
