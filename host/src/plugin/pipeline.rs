//! A route's pipeline: its entries in order for the request phase, in reverse for the
//! response phase, each failure handled by the failing entry's policy.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::bindings::{Action, Identity, Phases, Reply};
use super::entry::{Entry, FailurePolicy, Instance, PluginFailure};
use super::state::{PluginRequest, PluginResponse};
use crate::error::GatewayError;
use crate::telemetry::{Metrics, PluginFailureLabels};

/// Route-level plugin settings (`[routes.pipeline]`).
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    /// Requests running this pipeline at once; more wait up to `queue_timeout`, then 503.
    pub max_concurrent: usize,
    pub queue_timeout: Duration,
}

/// The plugins of one route.
#[derive(Debug)]
pub struct Pipeline {
    entries: Vec<Arc<Entry>>,
    concurrency: Arc<Semaphore>,
    queue_timeout: Duration,
    /// The request body is buffered up to this many bytes when an entry asked for it.
    request_body: Option<u64>,
    response_body: Option<u64>,
    metrics: Arc<Metrics>,
}

/// What the request phase decided.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Go on to the upstream with the edited request.
    Continue,
    /// A plugin answered; the response phase of the entries before it still runs.
    Respond(Box<PluginResponse>),
}

/// The instances that asked for the response phase, kept alive (with the route's
/// concurrency permit) until the response has gone through them.
#[derive(Debug)]
pub struct ResponsePhase {
    pending: Vec<(Arc<Entry>, Instance)>,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
    /// The route's share of plugin instances, for every entry of this request.
    _share: Option<OwnedSemaphorePermit>,
}

impl Pipeline {
    pub fn new(
        entries: Vec<Arc<Entry>>,
        settings: PipelineSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cap_for = |flag: Phases| {
            entries
                .iter()
                .filter(|e| e.phases.contains(flag))
                .map(|e| e.info.budgets.body_bytes)
                .min()
        };
        Self {
            request_body: cap_for(Phases::REQUEST_BODY),
            response_body: cap_for(Phases::RESPONSE_BODY),
            entries,
            concurrency: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            queue_timeout: settings.queue_timeout,
            metrics,
        }
    }

    /// The cap up to which the request body must be buffered before the request phase,
    /// if any entry asked for it.
    pub fn request_body_cap(&self) -> Option<u64> {
        self.request_body
    }

    pub fn response_body_cap(&self) -> Option<u64> {
        self.response_body
    }

    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// Waits for a turn: backpressure, not errors, until the queue timeout.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, GatewayError> {
        // A turn that is free is taken without arming the queue's timer.
        if let Ok(permit) = Arc::clone(&self.concurrency).try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(
            self.queue_timeout,
            Arc::clone(&self.concurrency).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(GatewayError::PluginsBusy {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Runs the request phase over `request`. `on_identity` is called once, right after
    /// the first plugin that attaches an identity (rate limits keyed by it are charged
    /// there); its refusal ends the request.
    pub async fn on_request(
        &self,
        request: &mut PluginRequest,
        permit: OwnedSemaphorePermit,
        mut on_identity: impl FnMut(&Identity) -> Result<(), GatewayError>,
    ) -> (Result<RequestOutcome, GatewayError>, ResponsePhase) {
        let mut phase = ResponsePhase {
            pending: Vec::new(),
            metrics: Arc::clone(&self.metrics),
            _permit: permit,
            _share: None,
        };
        if let Some(first) = self.entries.first() {
            let info = &first.info;
            match info
                .share
                .permits(self.entries.len(), info.budgets.deadline)
                .await
            {
                Some(share) => phase._share = Some(share),
                None => {
                    // Fails closed whatever the entries' policies: going on without them
                    // would skip the route's authentication too.
                    if let Some(dropped) = info.failure_lines.admit() {
                        tracing::warn!(
                            target: "portcullis::plugin",
                            route = %info.route,
                            request_id = %request.request_id,
                            unlogged_before = dropped,
                            "the route holds all the plugin instances it may (`[plugins] max_instances_per_route`)"
                        );
                    }
                    return (
                        Err(GatewayError::PluginUnavailable {
                            retry_after: Duration::from_secs(1),
                        }),
                        phase,
                    );
                }
            }
        }
        for entry in &self.entries {
            if !entry.phases.contains(Phases::ON_REQUEST) {
                if entry.phases.contains(Phases::ON_RESPONSE) {
                    match entry.instance().await {
                        Ok(instance) => phase.pending.push((Arc::clone(entry), instance)),
                        Err(failure) => {
                            if let Err(e) =
                                handle_failure(&self.metrics, entry, &failure, &request.request_id)
                            {
                                return (Err(e), phase);
                            }
                        }
                    }
                }
                continue;
            }
            let snapshot = (entry.failure == FailurePolicy::Skip).then(|| request.clone());
            let mut instance = match entry.instance().await {
                Ok(instance) => instance,
                Err(failure) => {
                    if let Err(e) =
                        handle_failure(&self.metrics, entry, &failure, &request.request_id)
                    {
                        return (Err(e), phase);
                    }
                    continue;
                }
            };
            let had_identity = request.identity.is_some();
            match entry.on_request(&mut instance, request).await {
                Ok(Action::Continue) => {
                    if entry.phases.contains(Phases::ON_RESPONSE) {
                        phase.pending.push((Arc::clone(entry), instance));
                    }
                    if !had_identity
                        && let Some(identity) = &request.identity
                        && let Err(e) = on_identity(identity)
                    {
                        return (Err(e), phase);
                    }
                }
                Ok(Action::Respond(reply)) => {
                    if entry.phases.contains(Phases::ON_RESPONSE) {
                        phase.pending.push((Arc::clone(entry), instance));
                    }
                    match reply_response(reply, entry, request) {
                        Ok(response) => {
                            return (Ok(RequestOutcome::Respond(Box::new(response))), phase);
                        }
                        // A reply that cannot be sent is a failure like any other; under
                        // `open` or `skip` the pipeline goes on without it.
                        Err(failure) => {
                            if let Err(e) =
                                handle_failure(&self.metrics, entry, &failure, &request.request_id)
                            {
                                return (Err(e), phase);
                            }
                        }
                    }
                }
                Err(failure) => {
                    if let Some(before) = snapshot {
                        *request = before;
                    }
                    if let Err(e) =
                        handle_failure(&self.metrics, entry, &failure, &request.request_id)
                    {
                        return (Err(e), phase);
                    }
                }
            }
        }
        (Ok(RequestOutcome::Continue), phase)
    }
}

impl ResponsePhase {
    /// Whether any plugin will see the response.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Runs the response phase, in reverse pipeline order, over `response`.
    pub async fn run(
        mut self,
        response: &mut PluginResponse,
        request_id: &Arc<str>,
    ) -> Result<(), GatewayError> {
        while let Some((entry, mut instance)) = self.pending.pop() {
            let snapshot = (entry.failure == FailurePolicy::Skip).then(|| response.clone());
            if let Err(failure) = entry.on_response(&mut instance, response, request_id).await {
                if let Some(before) = snapshot {
                    *response = before;
                }
                handle_failure(&self.metrics, &entry, &failure, request_id)?;
            }
        }
        Ok(())
    }
}

/// A plugin's reply as a response, within the entry's budget.
fn reply_response(
    reply: Reply,
    entry: &Entry,
    request: &PluginRequest,
) -> Result<PluginResponse, PluginFailure> {
    let status = super::state::final_status(reply.status).map_err(|_| {
        PluginFailure::Error(format!("replied with invalid status {}", reply.status))
    })?;
    if reply.body.len() as u64 > entry.info.budgets.body_bytes {
        return Err(PluginFailure::OutputTooLarge(
            "reply body over `body_bytes`",
        ));
    }
    let mut headers = HeaderMap::with_capacity(reply.headers.len());
    for (name, value) in reply.headers {
        // The contract's rules for a header edit hold for a reply's headers too.
        let name = super::state::header_name(&name)
            .map_err(|e| PluginFailure::Error(format!("reply header refused: {e:?}")))?;
        let value = super::state::header_value(&value)
            .map_err(|e| PluginFailure::Error(format!("reply header `{name}` refused: {e:?}")))?;
        if !request.limits.admits_header(&headers, &name, &value) {
            return Err(PluginFailure::OutputTooLarge(
                "reply headers over the head limits",
            ));
        }
        headers.append(name, value);
    }
    Ok(PluginResponse {
        status,
        headers,
        body: Some(reply.body.into()),
        identity: request.identity.clone(),
        limits: request.limits,
    })
}

/// Logs and counts a failure, then applies the entry's policy: `Err` ends the request.
fn handle_failure(
    metrics: &Metrics,
    entry: &Entry,
    failure: &PluginFailure,
    request_id: &str,
) -> Result<(), GatewayError> {
    if let Some(dropped) = entry.info.failure_lines.admit() {
        tracing::warn!(
            target: "portcullis::plugin",
            route = %entry.info.route,
            plugin = %entry.info.plugin,
            request_id,
            kind = failure.kind(),
            policy = entry.failure.name(),
            error = %failure,
            unlogged_before = dropped,
            "plugin failed"
        );
    }
    metrics
        .plugin_failures
        .get_or_create(&PluginFailureLabels {
            route: entry.info.route.to_string(),
            plugin: entry.info.plugin.to_string(),
            kind: failure.kind().to_owned(),
            policy: entry.failure.name().to_owned(),
        })
        .inc();
    // Capacity exhaustion must never become an authentication bypass: an entry that
    // verifies identities fails closed when it could not run for want of capacity.
    let capacity = matches!(
        failure,
        PluginFailure::Timeout | PluginFailure::Unavailable(_)
    );
    let verifies = entry
        .info
        .attaches_identity
        .load(std::sync::atomic::Ordering::Relaxed);
    let policy = if capacity && verifies {
        FailurePolicy::Closed
    } else {
        entry.failure
    };
    match policy {
        FailurePolicy::Open | FailurePolicy::Skip => Ok(()),
        FailurePolicy::Closed => Err(match failure {
            PluginFailure::Timeout | PluginFailure::Unavailable(_) => {
                GatewayError::PluginUnavailable {
                    retry_after: Duration::from_secs(1),
                }
            }
            _ => GatewayError::PluginFailed,
        }),
    }
}
