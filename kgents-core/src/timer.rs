//! The injected [`Timer`]: a monotonic clock and a sleep, so pure code (the ghost protocol's
//! budgets, the probe runner's timeouts and latency) can measure and wait without depending on an
//! async runtime.
//!
//! [`Clock`](crate::clock::Clock) answers "what time is it" (wall time, for timestamps); a
//! [`Timer`] answers "how long did this take" and "wake me in 500 ms" (monotonic time).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed, sendable future: the same type as `futures::future::BoxFuture`, written out so this
/// crate needs no `futures` dependency.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Monotonic time and sleeping, injected so budgets and timeouts are testable.
///
/// An embedder implements it over its runtime (for tokio: `tokio::time::Instant::now().into_std()`
/// and `Box::pin(tokio::time::sleep(d))`, which also makes tests with paused time deterministic).
/// `kgents-ghost` ships a runtime-independent `ThreadTimer`.
pub trait Timer: Send + Sync {
    /// The current monotonic instant. If an implementation's clock ever goes backwards, callers
    /// clamp the measured durations to zero rather than failing.
    fn now(&self) -> Instant;

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timer whose sleeps complete at once; enough to show the trait is object-safe and that
    /// its future type is the boxed one callers race against.
    struct Immediate;

    impl Timer for Immediate {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
            Box::pin(std::future::ready(()))
        }
    }

    #[test]
    fn a_timer_is_usable_as_a_shared_trait_object() {
        let timer: std::sync::Arc<dyn Timer> = std::sync::Arc::new(Immediate);
        let before = timer.now();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
        assert!(timer.now() >= before);
    }
}
