//! Graceful shutdown, in two phases so that no accepted message is lost:
//!
//! 1. `stop_input`: listeners stop accepting and every connection stops
//!    reading commands. Fan-out is synchronous inside a reader's poll, so once
//!    every reader has observed this (the `inputs` count reaches zero) no new
//!    message can enter any outbox.
//! 2. `bye`: every connection queues its shutdown notice *behind* what is
//!    already in its outbox, flushes, half-closes (FIN), drains what the
//!    client still sends (closing with unread data would send RST) and ends.
//!
//! The whole thing is bounded by `server.shutdown_grace_secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared by the listeners and every connection.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop_input: CancellationToken,
    bye: CancellationToken,
    /// Connections that may still fan messages out (phase 1 waits for 0).
    inputs: Arc<AtomicUsize>,
    /// Every connection task (and writer task), to wait for at the end.
    pub tracker: TaskTracker,
    grace: Duration,
    deadline: Arc<std::sync::OnceLock<Instant>>,
}

/// Held while a connection may still process input; dropping it tells the
/// shutdown that this connection is quiet.
#[derive(Debug)]
pub struct InputGuard(Arc<AtomicUsize>);

impl Drop for InputGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shutdown {
    pub fn new(grace: Duration) -> Self {
        Self {
            stop_input: CancellationToken::new(),
            bye: CancellationToken::new(),
            inputs: Arc::default(),
            tracker: TaskTracker::new(),
            grace,
            deadline: Arc::default(),
        }
    }

    /// Register a connection that may process input.
    pub fn input_guard(&self) -> InputGuard {
        self.inputs.fetch_add(1, Ordering::AcqRel);
        InputGuard(self.inputs.clone())
    }

    /// Phase 1 started: stop accepting and stop reading commands.
    pub fn input_stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop_input.cancelled()
    }

    /// A token cancelled with phase 1 (and by whoever holds it): a TCP
    /// peer's, so that its reader waits for one future instead of two.
    /// Creating and dropping one locks the shared token, as registering a
    /// waiter with it did.
    pub fn input_token(&self) -> CancellationToken {
        self.stop_input.child_token()
    }

    /// Phase 2 started: say goodbye and close.
    pub fn bye(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.bye.cancelled()
    }

    /// When the whole shutdown must be over (connections use it to bound
    /// their flush and drain). Far in the future before shutdown starts.
    pub fn deadline(&self) -> Instant {
        self.deadline
            .get()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Run the whole shutdown: phase 1, wait for inputs to go quiet (bounded),
    /// phase 2, wait for every connection (bounded by the grace period).
    /// Returns the number of tasks still running when the grace ran out.
    pub async fn run(&self) -> usize {
        let start = Instant::now();
        let deadline = start + self.grace;
        let _ = self.deadline.set(deadline);
        self.stop_input.cancel();
        // Phase 1 is normally a few milliseconds; never let it eat more than
        // a fifth of the grace period.
        let quiet_by = start + self.grace / 5;
        while self.inputs.load(Ordering::Acquire) > 0 && Instant::now() < quiet_by {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.bye.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            self.tracker.len()
        } else {
            0
        }
    }
}
