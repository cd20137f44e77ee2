//! [`ChangeBus`]: "the catalog changed" from the process whose admin API changed it to every
//! other process, at once.
//!
//! A write publishes the store's new catalog version on `<prefix>bus:catalog` and keeps it in
//! `<prefix>bus:catalog:version`; every other process's subscription puts it in a
//! `tokio::sync::watch` channel, whose receivers wake. After a subscription is made again
//! (Redis restarted, the connection broke) the kept version is read and passed on if it
//! differs, since messages published meanwhile were lost. The bus says *that* something
//! changed; what changed is always read from the store, so a lost or repeated message costs
//! at most a reload (the gateway also polls the store's version as a safety net).

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::{Conn, Unavailable};
use crate::pubsub::{self, Event};

/// The catalog-change bus; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct ChangeBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    conn: Arc<Conn>,
    channel: String,
    version_key: String,
    pid: Arc<str>,
    sender: watch::Sender<i64>,
}

impl std::fmt::Debug for ChangeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBus")
            .field("channel", &self.inner.channel)
            .field("version", &*self.inner.sender.borrow())
            .finish_non_exhaustive()
    }
}

impl ChangeBus {
    pub(crate) fn start(
        conn: Arc<Conn>,
        prefix: &str,
        pid: Arc<str>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> ChangeBus {
        let (sender, _) = watch::channel(0);
        let inner = Arc::new(BusInner {
            conn,
            channel: format!("{prefix}bus:catalog"),
            version_key: format!("{prefix}bus:catalog:version"),
            pid,
            sender,
        });
        let bus = ChangeBus { inner };
        let follower = bus.clone();
        let client = bus.inner.conn.client().clone();
        let channel = bus.inner.channel.clone();
        let tasks_for_catch_up = tasks.clone();
        tasks.spawn(pubsub::follow(
            client,
            channel,
            stop,
            move |event| match event {
                Event::Subscribed => {
                    let bus = follower.clone();
                    tasks_for_catch_up.spawn(async move { bus.catch_up().await });
                }
                Event::Message(payload) => follower.received(payload),
            },
        ));
        bus
    }

    /// Tells every other process that the catalog is now at `version` (call it after an
    /// admin write is stored).
    pub async fn publish(&self, version: i64) -> Result<(), Unavailable> {
        let inner = &self.inner;
        let message = format!("{} {version}", inner.pid);
        // This process knows already: keep the version without waking its own receivers, so
        // that reading it back after a re-subscription is no news either.
        inner.sender.send_if_modified(|current| {
            *current = version;
            false
        });
        inner
            .conn
            .run(async |c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(&inner.version_key)
                    .arg(version)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(&inner.channel)
                    .arg(&message)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// A receiver that wakes whenever another process publishes a version (its value is
    /// that version).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.sender.subscribe()
    }

    fn received(&self, payload: &[u8]) {
        let Some((pid, version)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.split_once(' '))
        else {
            return;
        };
        if pid == &*self.inner.pid {
            return;
        }
        if let Ok(version) = version.parse::<i64>() {
            self.inner.sender.send_replace(version);
        }
    }

    /// Reads the kept version after (re)subscribing and passes it on if it is news.
    async fn catch_up(&self) {
        let inner = &self.inner;
        let kept = inner
            .conn
            .run(async |c| {
                redis::cmd("GET")
                    .arg(&inner.version_key)
                    .query_async::<Option<i64>>(c)
                    .await
            })
            .await;
        // Versions only grow: a read that raced this process's own newer publish is stale,
        // not news (it would wake this process's receivers for its own change).
        if let Ok(Some(version)) = kept {
            inner.sender.send_if_modified(|current| {
                let news = version > *current;
                if news {
                    *current = version;
                }
                news
            });
        }
    }
}
