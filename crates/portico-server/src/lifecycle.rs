//! The process's serving phases, shared by the listener and every handler: serving, draining
//! after SIGTERM, and cut at the shutdown deadline.
//!
//! - **Serving**: `/readyz` answers 200.
//! - **Draining** ([`Lifecycle::begin_drain`]): `/readyz` answers 503 so load balancers send
//!   traffic elsewhere, but the listener keeps accepting, so a health check gets that 503
//!   instead of a refused connection, and a request a load balancer still routes here is
//!   served. Idle keep-alive connections are closed; busy ones close after their answer. The
//!   drain ends when no request is in flight ([`Lifecycle::drained`]).
//! - **Cut** ([`Lifecycle::cut`]): the drain took longer than its deadline. Whole answers
//!   still pending are answered 503, streams end with an in-band error event; both are
//!   logged like any other request (the handlers watch [`Lifecycle::cut_signal`]).
//!
//! Requests are counted by the listener's service wrapper ([`InFlightGuard`]), from arrival
//! until the answer's body has been sent or dropped, streams included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where the process is in its life; cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    drain_started: CancellationToken,
    cut: CancellationToken,
    in_flight: AtomicUsize,
    /// Woken whenever the in-flight count drops to zero.
    idle: Notify,
}

impl Lifecycle {
    /// A process that is serving.
    pub fn new() -> Arc<Lifecycle> {
        Arc::new(Lifecycle::default())
    }

    /// Whether `/readyz` says the process takes traffic.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts the drain: `/readyz` answers 503 from now on, idle connections close.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.drain_started.cancel();
        // A drain that starts with nothing in flight is over at once.
        self.idle.notify_waiters();
    }

    /// Completes when the drain has started.
    pub async fn drain_started(&self) {
        self.drain_started.cancelled().await;
    }

    /// Ends the drain early: whatever is still in flight is answered now (503, or an error
    /// event on a stream).
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// Whether the shutdown deadline has passed.
    pub fn is_cut(&self) -> bool {
        self.cut.is_cancelled()
    }

    /// The token that fires at the shutdown deadline; handlers race their work against it.
    pub fn cut_signal(&self) -> &CancellationToken {
        &self.cut
    }

    /// Completes once the drain has started and no request is in flight.
    pub async fn drained(&self) {
        loop {
            // Registered before the check, so a drop to zero between the check and the wait
            // is not missed.
            let idle = self.idle.notified();
            if self.is_draining() && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts one request as in flight until the guard is dropped.
    pub fn enter(self: &Arc<Lifecycle>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }
}

/// One request in flight; dropping it ends the request's count.
#[derive(Debug)]
pub struct InFlightGuard(Arc<Lifecycle>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && self.0.is_draining() {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_drain_ends_when_the_last_request_leaves() {
        let life = Lifecycle::new();
        let one = life.enter();
        let two = life.enter();
        assert!(life.is_ready());
        life.begin_drain();
        assert!(!life.is_ready());
        let drained = life.drained();
        tokio::pin!(drained);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut drained)
                .await
                .is_err(),
            "two requests are still in flight"
        );
        drop(one);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut drained)
                .await
                .is_err()
        );
        drop(two);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("drained once the last request left");
    }

    #[tokio::test]
    async fn nothing_drains_before_the_drain_starts() {
        let life = Lifecycle::new();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), life.drained())
                .await
                .is_err()
        );
        life.begin_drain();
        tokio::time::timeout(Duration::from_secs(5), life.drained())
            .await
            .expect("an idle process drains at once");
    }
}
