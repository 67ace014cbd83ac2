//! Starting and stopping the gateway: bind every listener, serve, and on shutdown stop
//! accepting, let in-flight requests finish within the drain timeout, then return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::listener::{BoundListener, Connection, Handler};
use crate::runtime::Runtime;

/// The gateway's request path (`gateway.rs`) over one runtime, as the listeners' handler.
#[derive(Debug)]
struct GatewayHandler {
    runtime: Arc<Runtime>,
}

impl Handler for GatewayHandler {
    fn handle(
        &self,
        conn: &Connection,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        crate::gateway::handle(&self.runtime, conn, req)
    }
}

/// How often idle rate-limit keys are forgotten.
const RATE_LIMIT_SWEEP: Duration = Duration::from_secs(60);

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    /// Bound addresses, in listener order (port 0 resolved).
    pub addresses: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tracker: TaskTracker,
    /// Cancelled when the drain timeout ends: closes what is still open (tunnels).
    closing: CancellationToken,
    accept_loops: Vec<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    drain_timeout: Duration,
}

impl RunningGateway {
    /// Binds every listener (failing if any cannot be bound) and starts serving.
    pub async fn start(runtime: Runtime) -> std::io::Result<Self> {
        let mut bound = Vec::new();
        for spec in &runtime.listeners {
            let listener = BoundListener::bind(spec).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", spec.address))
            })?;
            bound.push(listener);
        }
        let runtime = Arc::new(runtime);
        let handler = Arc::new(GatewayHandler {
            runtime: Arc::clone(&runtime),
        });
        let (shutdown, rx) = watch::channel(false);
        let tracker = TaskTracker::new();
        let closing = CancellationToken::new();
        let addresses: Vec<SocketAddr> = bound.iter().map(|l| l.local_addr).collect();
        let accept_loops = bound
            .into_iter()
            .map(|l| {
                tokio::spawn(l.serve(
                    Arc::clone(&handler),
                    rx.clone(),
                    tracker.clone(),
                    closing.clone(),
                ))
            })
            .collect();
        if let Some(services) = runtime.plugin_services.clone() {
            tokio::spawn(async move { services.key_sets.fetch_configured().await });
        }
        let policies = runtime.rate_limits.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(RATE_LIMIT_SWEEP);
            loop {
                tick.tick().await;
                for p in &policies {
                    p.forget_idle_keys();
                }
            }
        });
        Ok(Self {
            addresses,
            shutdown,
            tracker,
            closing,
            accept_loops,
            sweeper,
            drain_timeout: runtime.drain_timeout,
        })
    }

    /// Stops accepting, asks every connection to finish its in-flight requests, and
    /// waits up to the drain timeout. Returns whether everything drained in time.
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown.send(true);
        for task in self.accept_loops {
            let _ = task.await;
        }
        self.sweeper.abort();
        self.tracker.close();
        let open = self.tracker.len();
        tracing::info!(open_connections = open, drain_timeout = ?self.drain_timeout, "draining");
        let drained = tokio::time::timeout(self.drain_timeout, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                open_connections = self.tracker.len(),
                "drain timeout reached; closing remaining connections"
            );
        }
        self.closing.cancel();
        drained
    }
}
