//! Upgraded connections (WebSocket and the like) after the 101: bytes copied both ways
//! between the client and the upstream, under the same limits as any connection.
//!
//! A tunnel keeps the slot its connection took from `max_connections` (the slot moves
//! from the HTTP connection, which ends at the upgrade, to the tunnel), is closed after
//! `idle_timeout` without a byte either way, and is one of the tasks a graceful drain
//! waits for — then closed when the drain timeout ends, like any connection still open.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::io::{Activity, WatchedIo};

/// What a connection hands to a tunnel opened on it.
#[derive(Debug)]
pub struct Tunnels {
    /// The connection's `max_connections` slot, taken by the tunnel if one opens.
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    tracker: TaskTracker,
    /// Cancelled when the drain timeout ends.
    closing: CancellationToken,
    idle_timeout: Duration,
}

impl Tunnels {
    pub fn new(
        slot: OwnedSemaphorePermit,
        tracker: TaskTracker,
        closing: CancellationToken,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            slot: Mutex::new(Some(slot)),
            tracker,
            closing,
            idle_timeout,
        }
    }

    /// Tunnels of a connection that holds no `max_connections` slot (in process): they
    /// are tracked and closed on their own.
    pub fn detached(idle_timeout: Duration) -> Self {
        Self {
            slot: Mutex::new(None),
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            idle_timeout,
        }
    }

    /// Joins the client's and the upstream's upgraded connections once both switch.
    pub fn open(&self, client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
        let slot = self.slot.lock().ok().and_then(|mut s| s.take());
        let closing = self.closing.clone();
        let idle = self.idle_timeout;
        self.tracker.spawn(async move {
            let _slot = slot;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let activity = Arc::new(Activity::new());
            let mut client = WatchedIo::new(TokioIo::new(client), Arc::clone(&activity), None);
            let mut upstream = WatchedIo::new(TokioIo::new(upstream), Arc::clone(&activity), None);
            let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
            tokio::pin!(copy);
            let timer = tokio::time::sleep(idle);
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    result = &mut copy => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "upgraded tunnel closed with an error");
                        }
                        return;
                    }
                    () = closing.cancelled() => {
                        tracing::debug!("upgraded tunnel closed at the end of the drain");
                        return;
                    }
                    () = &mut timer => {
                        let deadline = activity.last() + idle;
                        if deadline <= std::time::Instant::now() {
                            tracing::debug!("idle upgraded tunnel closed");
                            return;
                        }
                        timer.as_mut().reset(deadline.into());
                    }
                }
            }
        });
    }
}
