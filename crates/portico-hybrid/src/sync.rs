//! [`SnapshotSync`]: keeps a gateway's engine on its control plane's latest snapshot, and
//! [`Readiness`]: whether the gateway has a catalog to serve from at all.
//!
//! The sync task long-polls `GET /gateway/v1/snapshot` with the version (and spend
//! fingerprint) it holds. A new snapshot is verified on arrival ([`crate::ControlPlane`]),
//! put in force (the [`SnapshotStore`] swapped, the engine reloaded from it, the ledger
//! restored), and only then saved to the data dir, so a snapshot the engine refused is never
//! the one a restart starts from. While the control plane is unreachable the gateway keeps
//! the snapshot it has; without one it is not ready, and says why.
//!
//! A second task delivers the spend outbox about once a second ([`SnapshotSync::deliver_spend`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use portico_core::Clock;
use portico_engine::Gateway;
use portico_limits::Ledger;
use tokio_util::sync::CancellationToken;

use crate::at_rest::{SnapshotFile, Verified};
use crate::client::{ControlPlane, Poll};
use crate::spend::{SpendOutbox, restore_ledger};
use crate::store::SnapshotStore;

/// The first wait after a failed poll; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between polls of an unreachable control plane: with the long poll, what
/// bounds how late a gateway learns of a change once the control plane is back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the spend outbox is delivered.
const DELIVER_EVERY: Duration = Duration::from_secs(1);

/// Whether the gateway has a snapshot to serve from; cheap to read on every request.
#[derive(Debug)]
pub struct Readiness {
    /// `None` when ready; otherwise why not, as the 503s say it.
    not_ready: ArcSwap<Option<String>>,
}

impl Readiness {
    /// Not ready yet, for `reason`.
    pub fn not_ready(reason: impl Into<String>) -> Arc<Readiness> {
        Arc::new(Readiness {
            not_ready: ArcSwap::from_pointee(Some(reason.into())),
        })
    }

    /// Why the gateway cannot serve, or `None` when it can.
    pub fn reason(&self) -> Option<String> {
        self.not_ready.load().as_ref().clone()
    }

    fn set_ready(&self) {
        self.not_ready.store(Arc::new(None));
    }

    fn set_not_ready(&self, reason: String) {
        self.not_ready.store(Arc::new(Some(reason)));
    }
}

/// What the snapshot in force says about spend: sent back on every poll.
#[derive(Debug, Default, Clone)]
struct Held {
    fingerprint: Option<String>,
}

/// The gateway's link to its control plane; see the module docs.
pub struct SnapshotSync {
    control_plane: Arc<ControlPlane>,
    file: SnapshotFile,
    store: Arc<SnapshotStore>,
    gateway: Arc<Gateway>,
    ledger: Arc<Ledger>,
    outbox: Arc<SpendOutbox>,
    readiness: Arc<Readiness>,
    clock: Arc<dyn Clock>,
    held: Mutex<Held>,
}

impl std::fmt::Debug for SnapshotSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSync")
            .field("control_plane", &self.control_plane.url())
            .finish_non_exhaustive()
    }
}

/// What [`SnapshotSync::new`] wires together.
pub struct SyncParts {
    /// The control plane.
    pub control_plane: Arc<ControlPlane>,
    /// Where the snapshot is kept.
    pub file: SnapshotFile,
    /// The store the engine reloads from.
    pub store: Arc<SnapshotStore>,
    /// The engine.
    pub gateway: Arc<Gateway>,
    /// The ledger its limits policy enforces on.
    pub ledger: Arc<Ledger>,
    /// The spend on its way to the control plane.
    pub outbox: Arc<SpendOutbox>,
    /// What `/readyz` and the data plane answer by.
    pub readiness: Arc<Readiness>,
    /// The gateway's clock.
    pub clock: Arc<dyn Clock>,
}

impl SnapshotSync {
    /// The link, with nothing in force yet.
    pub fn new(parts: SyncParts) -> SnapshotSync {
        SnapshotSync {
            control_plane: parts.control_plane,
            file: parts.file,
            store: parts.store,
            gateway: parts.gateway,
            ledger: parts.ledger,
            outbox: parts.outbox,
            readiness: parts.readiness,
            clock: parts.clock,
            held: Mutex::new(Held::default()),
        }
    }

    /// Puts the snapshot an earlier run saved in force, if there is one that verifies; a
    /// file that does not is refused with a log line saying why. Answers its version.
    pub async fn start_from_saved(&self) -> Option<i64> {
        let saved = match self.file.load() {
            Ok(Some(saved)) => saved,
            Ok(None) => return None,
            Err(err) => {
                tracing::error!(
                    "refusing the saved snapshot: {err}; waiting for the control plane at {} for a new one",
                    self.control_plane.url()
                );
                return None;
            }
        };
        let version = saved.document.version;
        match self.install(saved, false).await {
            Ok(()) => {
                tracing::info!(
                    version,
                    path = %self.file.path().display(),
                    "serving the saved snapshot until the control plane answers"
                );
                Some(version)
            }
            Err(err) => {
                tracing::error!("refusing the saved snapshot: {err}");
                None
            }
        }
    }

    /// Puts a verified snapshot in force: store, engine, ledger, readiness; then saves it
    /// (when `save`).
    async fn install(&self, snapshot: Verified, save: bool) -> Result<(), String> {
        let document = &snapshot.document;
        // A snapshot of the version in force brings fresh spend only (the control plane
        // answers one when its spend moved): the engine keeps its catalog.
        if self.store.version() != Some(document.version) {
            let records = document.records().map_err(|e| e.to_string())?;
            let (old, old_version) = self.store.replace(records, document.version);
            if let Err(err) = self.gateway.reload(&*self.store).await {
                self.store.restore(old, old_version);
                return Err(format!(
                    "the catalog of snapshot version {} cannot be served: {err}",
                    document.version
                ));
            }
        }
        let own = self.outbox.undelivered(document.spend_at_ms);
        restore_ledger(&self.ledger, &document.spend, &own, self.clock.now_ms());
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fingerprint = Some(document.spend_fingerprint());
        self.readiness.set_ready();
        if save {
            match self.file.save(&snapshot) {
                Ok(()) => self.outbox.covered_by(document.spend_at_ms),
                Err(err) => tracing::error!(
                    "cannot save the snapshot (a restart without the control plane would serve an older one, or none): {err}"
                ),
            }
        }
        Ok(())
    }

    /// Long-polls the control plane until `stop`, putting each new snapshot in force.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut failing: Option<String> = None;
        loop {
            let version = self.store.version();
            let fingerprint = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .fingerprint
                .clone();
            let polled = tokio::select! {
                () = stop.cancelled() => return,
                polled = self.control_plane.poll_snapshot(version, fingerprint.as_deref()) => polled,
            };
            let problem = match polled {
                Ok(Poll::Unchanged) => None,
                Ok(Poll::Changed(snapshot)) => {
                    let version = snapshot.document.version;
                    let fresh = Some(version) != self.store.version();
                    match self.install(*snapshot, true).await {
                        Ok(()) if fresh => {
                            tracing::info!(version, "control plane snapshot in force");
                            None
                        }
                        Ok(()) => None,
                        Err(err) => Some(format!(
                            "the control plane at {} sent a snapshot this gateway refused: {err}",
                            self.control_plane.url()
                        )),
                    }
                }
                Err(err) => Some(format!(
                    "the control plane at {} {err}",
                    self.control_plane.url()
                )),
            };
            let Some(problem) = problem else {
                if failing.take().is_some() {
                    tracing::info!(
                        "the control plane at {} answers again",
                        self.control_plane.url()
                    );
                }
                backoff = MIN_BACKOFF;
                continue;
            };
            if self.store.version().is_none() {
                self.readiness
                    .set_not_ready(format!("no snapshot yet: {problem}"));
            }
            if failing.as_deref() != Some(problem.as_str()) {
                match self.store.version() {
                    Some(version) => tracing::warn!(
                        version,
                        "{problem}; serving the snapshot in force meanwhile"
                    ),
                    None => tracing::warn!("{problem}; not ready until a snapshot arrives"),
                }
                failing = Some(problem);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Delivers the spend outbox about once a second until `stop`.
    pub async fn deliver_spend(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(DELIVER_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            let delivered = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => tokio::select! {
                    () = stop.cancelled() => return,
                    delivered = self.outbox.deliver(&self.control_plane) => delivered,
                },
            };
            match delivered {
                Ok(_) => {
                    if failing.take().is_some() {
                        tracing::info!("spend: the spooled batches were delivered");
                    }
                }
                Err(err) => {
                    let text = err.to_string();
                    if failing.as_deref() != Some(text.as_str()) {
                        tracing::warn!(
                            "spend: the control plane at {} {text}; batches stay in the spool and are resent",
                            self.control_plane.url()
                        );
                        failing = Some(text);
                    }
                }
            }
        }
    }

    /// At shutdown, after the server stopped: spools what is pending, then tries to deliver
    /// the spool within `limit`; what is not delivered waits in the spool for the next start.
    pub async fn final_delivery(&self, limit: Duration) {
        // Spooled first, so that a delivery that does not even start in time loses nothing.
        self.outbox.cut();
        let delivered = tokio::time::timeout(limit, self.outbox.deliver(&self.control_plane)).await;
        let (left, _) = self.outbox.backlog();
        match delivered {
            Ok(Ok(_)) if left == 0 => tracing::info!("spend delivered to the control plane"),
            Ok(Err(err)) => tracing::warn!(
                batches = left,
                "spend: the control plane at {} {err}; the spool is delivered at the next start",
                self.control_plane.url()
            ),
            _ => tracing::warn!(
                batches = left,
                "spend: not all delivered in time; the spool is delivered at the next start"
            ),
        }
    }
}
