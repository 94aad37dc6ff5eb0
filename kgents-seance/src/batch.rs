//! How a writer gathers records into one append (one transaction, one fsync): it waits for a
//! first record, then keeps the batch open for [`BATCH_WINDOW`] or until [`BATCH_RECORDS`] are
//! in. The operator's recorder writes through [`gather`], and the `witness` bench measures the
//! cost per record of the batches it forms.
//!
//! Why a window: the embedded store's cost is one fsync per transaction (about 0.2 ms on a
//! local disk) whatever the batch holds, so a writer that appended whatever happened to be
//! queued paid it for batches of one or two under moderate load. Holding the batch open for a
//! few milliseconds shares it among everything that arrives meanwhile; a record then waits at
//! most the window plus one append, which nothing waits on (reconciles never do).

use std::time::Duration;

use tokio::sync::mpsc;

/// Records appended in one transaction at most.
pub const BATCH_RECORDS: usize = 1000;
/// How long a batch stays open for more records once its first one arrived.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// Takes the next batch from `rx` into `batch` (which should be empty): waits for a first
/// message, then gathers what arrives within `window` of it, up to `max` messages, and stops
/// early once a message for which `closes` is true is in (a message that must not wait, such as
/// a request to apply retention). `batch` is left empty only when the channel is closed and
/// drained.
pub async fn gather<T>(
    rx: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    window: Duration,
    closes: impl Fn(&T) -> bool,
) {
    let max = max.max(1);
    if rx.recv_many(batch, max).await == 0 {
        return;
    }
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < max && !batch.iter().any(&closes) {
        match tokio::time::timeout_at(deadline, rx.recv_many(batch, max - batch.len())).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_what_arrives_within_the_window_and_no_more() {
        let (tx, mut rx) = mpsc::channel(64);
        let sender = tokio::spawn(async move {
            for i in 0..6u32 {
                tx.send(i).await.unwrap();
                // 0, 1, 2 within 4 ms of the first; 3 after the 5 ms window.
                tokio::time::sleep(Duration::from_millis(if i == 2 { 3 } else { 2 })).await;
            }
        });
        let mut batch = Vec::new();
        gather(&mut rx, &mut batch, 100, BATCH_WINDOW, |_| false).await;
        assert_eq!(batch, [0, 1, 2]);
        batch.clear();
        gather(&mut rx, &mut batch, 2, BATCH_WINDOW, |_| false).await;
        assert_eq!(batch, [3, 4], "at most max");
        batch.clear();
        sender.await.unwrap();
        gather(&mut rx, &mut batch, 100, BATCH_WINDOW, |_| false).await;
        assert_eq!(batch, [5]);
        batch.clear();
        gather(&mut rx, &mut batch, 100, BATCH_WINDOW, |_| false).await;
        assert!(batch.is_empty(), "closed and drained");
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_message_ends_the_batch_at_once() {
        let (tx, mut rx) = mpsc::channel(64);
        tx.send(1).await.unwrap();
        tx.send(0).await.unwrap();
        let mut batch = Vec::new();
        let started = tokio::time::Instant::now();
        gather(&mut rx, &mut batch, 100, BATCH_WINDOW, |m| *m == 0).await;
        assert_eq!(batch, [1, 0]);
        assert!(started.elapsed() < BATCH_WINDOW);
    }
}
