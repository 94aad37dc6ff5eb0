//! The injected [`Timer`]: a monotonic clock and a sleep, so the probe runner can measure
//! latency and enforce timeouts without depending on an async runtime.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// Time as the probe runner sees it.
///
/// An operator implements it over its runtime (for tokio: `tokio::time::Instant::now().into_std()`
/// and `Box::pin(tokio::time::sleep(d))`, which also makes tests with paused time deterministic).
pub trait Timer: Send + Sync {
    /// The current monotonic instant. If an implementation's clock ever goes backwards, latencies
    /// are clamped to zero rather than failing.
    fn now(&self) -> Instant;

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}
