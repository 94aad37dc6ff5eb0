//! The injected clock. Pure code takes `now` from a [`Clock`] (or as a parameter) instead of reading
//! the system time, so tests can control time exactly.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;

use crate::error::Error;

/// A source of the current time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told otherwise. Thread-safe: share it (e.g. in an [`Arc`]) and
/// [`set`](ManualClock::set) or [`advance`](ManualClock::advance) it from a test.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Sets the time (it may go backwards, to test clock skew).
    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Moves the time forward by `by` and returns the new time. Errors (and leaves the time
    /// unchanged) when the result would leave jiff's range.
    pub fn advance(&self, by: Duration) -> Result<Timestamp, Error> {
        let mut now = self.lock();
        let next = now.checked_add(by).map_err(|_| Error::TimeOverflow {
            operation: "advancing the manual clock",
        })?;
        *now = next;
        Ok(next)
    }

    /// Moves the time backward by `by` and returns the new time. Errors (and leaves the time
    /// unchanged) when the result would leave jiff's range.
    pub fn rewind(&self, by: Duration) -> Result<Timestamp, Error> {
        let mut now = self.lock();
        let next = now.checked_sub(by).map_err(|_| Error::TimeOverflow {
            operation: "rewinding the manual clock",
        })?;
        *now = next;
        Ok(next)
    }

    fn lock(&self) -> MutexGuard<'_, Timestamp> {
        // A panic while holding this lock cannot leave a Timestamp half-written, so a poisoned lock
        // still holds a valid time.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn manual_clock_stands_still_and_moves_when_told() {
        let clock = ManualClock::new(ts(1_000));
        assert_eq!(clock.now(), ts(1_000));
        assert_eq!(clock.now(), ts(1_000));
        assert_eq!(clock.advance(Duration::from_secs(60)).unwrap(), ts(1_060));
        assert_eq!(clock.now(), ts(1_060));
        clock.set(ts(10));
        assert_eq!(clock.now(), ts(10));
        assert_eq!(clock.rewind(Duration::from_secs(5)).unwrap(), ts(5));
    }

    #[test]
    fn manual_clock_overflow_is_an_error_and_keeps_the_time() {
        let clock = ManualClock::new(Timestamp::MAX);
        assert!(matches!(
            clock.advance(Duration::from_secs(1)),
            Err(Error::TimeOverflow { .. })
        ));
        assert_eq!(clock.now(), Timestamp::MAX);
        clock.set(Timestamp::MIN);
        assert!(clock.rewind(Duration::from_nanos(1)).is_err());
        assert_eq!(clock.now(), Timestamp::MIN);
    }

    #[test]
    fn manual_clock_is_shared_across_threads() {
        let clock = Arc::new(ManualClock::new(ts(0)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        clock.advance(Duration::from_secs(1)).unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(clock.now(), ts(400));
        let as_dyn: Arc<dyn Clock> = clock;
        assert_eq!(as_dyn.now(), ts(400));
    }

    #[test]
    fn system_clock_is_after_2025_and_non_decreasing() {
        let clock = SystemClock;
        let first = clock.now();
        assert!(first > ts(1_735_689_600), "system clock reads {first}");
        assert!(clock.now() >= first);
    }

    #[test]
    fn mock_clock_can_script_readings() {
        let mut mock = MockClock::new();
        let mut readings = vec![ts(2), ts(1)];
        mock.expect_now()
            .times(2)
            .returning(move || readings.pop().unwrap_or(Timestamp::UNIX_EPOCH));
        let clock: &dyn Clock = &mock;
        assert_eq!(clock.now(), ts(1));
        assert_eq!(clock.now(), ts(2));
    }
}
