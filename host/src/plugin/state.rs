//! What a plugin's store holds: the request or response it is working on, its budgets, and
//! the record of a fault the host forced on it.
//!
//! The request and response are moved into the store for the one call that uses them and
//! taken back afterwards, so the guest's `request`/`response` resources are host-owned
//! values read through methods: nothing is copied into the sandbox that it does not ask for.
//!
//! Also how a store is made (`new_store`: its limits and the deadline checked at every
//! epoch tick) and whether a warm one may serve again (`PluginState::reusable`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{EditError, Identity};
use super::cpu;
use super::engine::PluginEngine;
use super::entry::EntryInfo;
use crate::router::RequestLimits;

/// The type behind the guest's `request` resource. The store holds at most one request, so
/// the handle carries no data of its own.
#[derive(Debug)]
pub struct RequestHandle;

/// The type behind the guest's `response` resource.
#[derive(Debug)]
pub struct ResponseHandle;

/// The request as every stage after the edge sees it: what plugins read and edit in
/// place (it is moved into a plugin's store for its call and back), what rate limits key
/// on, and what is sent upstream. The per-request context (`crate::exchange`) owns it.
#[derive(Debug, Clone)]
pub struct PluginRequest {
    pub method: Method,
    /// Percent-encoded path and query to send upstream, after the route's rewrite.
    pub target: PathAndQuery,
    pub headers: HeaderMap,
    /// Present only when a plugin of the pipeline asked for the request body.
    pub body: Option<Bytes>,
    pub identity: Option<Identity>,
    pub client_ip: IpAddr,
    pub route: Arc<str>,
    pub request_id: Arc<str>,
    /// The route's limits; plugin edits to the head are held to them.
    pub limits: RequestLimits,
}

/// The empty text of a request not routed yet, or of the placeholder below: one shared
/// allocation, since both are made on every request (and the placeholder on every call).
pub fn no_text() -> Arc<str> {
    static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    Arc::clone(&EMPTY)
}

/// An empty request: what the pipeline leaves in place while the real one is inside a
/// plugin's store.
impl Default for PluginRequest {
    fn default() -> Self {
        Self {
            method: Method::GET,
            target: PathAndQuery::from_static("/"),
            headers: HeaderMap::new(),
            body: None,
            identity: None,
            client_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            route: no_text(),
            request_id: no_text(),
            limits: RequestLimits::default(),
        }
    }
}

/// The response on its way back through the pipeline.
#[derive(Debug, Clone, Default)]
pub struct PluginResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Present only when a plugin of the pipeline asked for the response body.
    pub body: Option<Bytes>,
    pub identity: Option<Identity>,
    /// The route's limits; plugin edits to the head are held to them.
    pub limits: RequestLimits,
}

/// Why the host ended a call on its own, kept so the failure is reported as what it was
/// rather than as the bare trap it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest tried to grow its memory past the entry's cap.
    MemoryCap { requested: usize, cap: usize },
    /// The guest handed back more than its budget allows.
    OutputTooLarge(&'static str),
}

/// The data of one plugin store.
#[derive(Debug)]
pub struct PluginState {
    pub(super) entry: Arc<EntryInfo>,
    pub(super) request: Option<PluginRequest>,
    pub(super) response: Option<PluginResponse>,
    /// Request id for log lines, kept across phases.
    pub(super) request_id: Option<Arc<str>>,
    pub(super) memory_cap: usize,
    /// Bytes of linear memory this instance holds, summed over all its memories: the cap
    /// is one budget per instance, so a component of several modules cannot multiply it.
    pub(super) memory_in_use: usize,
    /// The last growth granted, taken back if the allocator then fails it.
    last_growth: usize,
    /// Outbound calls left for the current request, shared by the `outbound-http` import
    /// and `wasi:http` (`wasi_http.rs`), so the two cannot add up past the budget.
    pub(super) outbound_left: Arc<AtomicU32>,
    /// Wall-clock end of the current call; the epoch callback traps past it.
    pub(super) deadline: Instant,
    /// Epoch ticks the current call has computed through (`cpu.rs`).
    pub(super) ticks: u32,
    /// When the guest last resumed (`cpu::clock_ns`), set by the yield futures.
    pub(super) resumed: Arc<std::sync::atomic::AtomicU64>,
    /// An import awaited since the last tick: the next tick measures that wait.
    pub(super) awaited: bool,
    pub(super) fault: Option<Fault>,
    /// While the instance is being snapshotted: the keyed stream its random bytes come
    /// from, so that the same component and config give the same snapshot (`snapshot.rs`).
    pub(super) seeded: Option<super::snapshot::Seeded>,
    /// The guest's WASI context, made on its first WASI call (`wasi.rs`).
    pub(super) wasi: Option<Box<super::wasi::Wasi>>,
}

impl PluginState {
    pub(super) fn new(entry: Arc<EntryInfo>) -> Self {
        Self {
            memory_cap: entry.budgets.memory_bytes,
            memory_in_use: 0,
            last_growth: 0,
            outbound_left: Arc::new(AtomicU32::new(entry.budgets.outbound_calls)),
            deadline: Instant::now() + entry.budgets.deadline,
            ticks: 0,
            resumed: Arc::default(),
            awaited: false,
            entry,
            request: None,
            response: None,
            request_id: None,
            fault: None,
            seeded: None,
            wasi: None,
        }
    }

    /// A store for a config check or a snapshot: nothing may leave the gateway while it
    /// is only loading its config, so no outbound call is allowed.
    pub(super) fn loading(entry: Arc<EntryInfo>) -> Self {
        let state = Self::new(entry);
        state.outbound_left.store(0, Ordering::Relaxed);
        state
    }

    /// Files what the plugin logs, through its `log` import or its WASI output, under
    /// the request it is serving.
    pub(super) fn serve(&mut self, request_id: &Arc<str>) {
        if let Some(wasi) = &self.wasi {
            wasi.serve(request_id);
        }
        self.request_id = Some(Arc::clone(request_id));
    }

    /// Random bytes for the guest: the system generator's, or the snapshot's keyed stream
    /// while this instance is being snapshotted.
    pub(super) fn fill_random(&mut self, out: &mut [u8]) -> wasmtime::Result<()> {
        match &mut self.seeded {
            Some(seeded) => {
                seeded.fill(out);
                Ok(())
            }
            None => aws_lc_rs::rand::fill(out)
                .map_err(|_| wasmtime::Error::msg("the system random generator failed")),
        }
    }

    /// The most a guest may hand the host in one call or return (wasmtime's hostcall
    /// fuel): a body within `body_bytes` or a cache value, with a head within the limits,
    /// and room for the smaller strings of any call.
    pub(super) fn hostcall_bytes(&self) -> usize {
        let body = usize::try_from(self.entry.budgets.body_bytes).unwrap_or(usize::MAX);
        let head = RequestLimits::default()
            .max_header_bytes
            .max(MAX_HEADER_VALUE);
        body.max(super::services::MAX_CACHE_VALUE)
            .saturating_add(head)
            .saturating_add(64 * 1024)
    }

    /// Readies the state for the next call: a fresh deadline and, for a new request, fresh
    /// per-request budgets.
    pub(super) fn begin_call(&mut self, new_request: bool) {
        self.ticks = 0;
        self.awaited = false;
        self.resumed
            .store(super::cpu::clock_ns(), std::sync::atomic::Ordering::Relaxed);
        self.deadline = Instant::now() + self.entry.budgets.deadline;
        self.fault = None;
        if new_request {
            self.outbound_left
                .store(self.entry.budgets.outbound_calls, Ordering::Relaxed);
        }
    }

    /// Whether a warm instance may serve another request, after a call that went well.
    ///
    /// Not when the guest still holds a `wasi:http` answer: answers kept from call to call
    /// would pile up on the host, outside the memory budget. Nor when its memory has grown
    /// to 7/8 of its budget: memory never shrinks, and a garbage-collected runtime's heap
    /// creeps up call after call (StarlingMonkey reached its 32 MiB after ~7 600 calls of
    /// the redactor example); retired here, it ends in a fresh instance instead of a
    /// request that fails at the cap, and a log line says so (a plugin that lives near its
    /// cap is better given more: each retirement costs a fresh instance).
    pub(super) fn reusable(&self) -> bool {
        if self.wasi.as_ref().is_some_and(|w| w.holds_http_responses()) {
            return false;
        }
        if self.memory_in_use < self.memory_cap / 8 * 7 {
            return true;
        }
        if let Some(dropped) = self.entry.failure_lines.admit() {
            tracing::info!(
                target: "portcullis::plugin",
                route = %self.entry.route,
                plugin = %self.entry.plugin,
                memory_bytes = self.memory_in_use,
                memory_budget = self.memory_cap,
                unlogged_before = dropped,
                "warm instance replaced: its memory reached 7/8 of its budget \
                 (raise `budgets.memory_mib` if this repeats)"
            );
        }
        false
    }

    /// A store about to be instantiated: a start function gets no outbound call, the
    /// request's budget comes with the call that serves it.
    pub(super) fn begin_instantiation(&mut self) {
        self.begin_call(true);
        self.outbound_left.store(0, Ordering::Relaxed);
    }

    /// Takes one outbound call from the request's budget; `false` when none is left.
    pub(super) fn take_outbound_call(&self) -> bool {
        take_one(&self.outbound_left)
    }

    pub(super) fn request_mut(&mut self) -> wasmtime::Result<&mut PluginRequest> {
        self.request
            .as_mut()
            .ok_or_else(|| wasmtime::Error::msg("request used outside its call"))
    }

    pub(super) fn response_mut(&mut self) -> wasmtime::Result<&mut PluginResponse> {
        self.response
            .as_mut()
            .ok_or_else(|| wasmtime::Error::msg("response used outside its call"))
    }

    /// Fails the call as "output too large": a guest that hands back more than its budget
    /// is misbehaving, not making a mistake it could handle.
    pub(super) fn output_too_large(&mut self, what: &'static str) -> wasmtime::Error {
        self.fault = Some(Fault::OutputTooLarge(what));
        wasmtime::Error::msg(format!("plugin output too large: {what}"))
    }
}

/// Takes one from a budget counter; `false` when it is spent.
pub(super) fn take_one(left: &AtomicU32) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// A store with the entry's limits, and a deadline checked at every epoch tick: past it
/// the call traps; before it the plugin yields, so other requests on its thread go on.
pub(super) fn new_store(engine: &PluginEngine, state: PluginState) -> Store<PluginState> {
    let fuel = state.hostcall_bytes();
    let mut store = Store::new(engine.engine(), state);
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    // What the guest may hand the host in one call or one return, counted by wasmtime
    // before anything is copied (its default is 128 MiB, whatever the entry's budget).
    store.set_hostcall_fuel(fuel);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if Instant::now() >= state.deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        let ran = cpu::clock_ns().saturating_sub(state.resumed.load(Ordering::Relaxed));
        if !std::mem::take(&mut state.awaited) && ran >= cpu::COUNTED_RUN.as_nanos() as u64 {
            state.ticks += 1;
            // On a lane thread the ticks are stretched by preemption; the thread's CPU
            // clock decides there (`cpu::Metered`).
            if state.ticks > cpu::FREE_TICKS && !cpu::on_lane_thread() {
                cpu::demote(&state.entry);
            }
        }
        // The guest resumes when this future ends; its next tick counts from then.
        let resumed = Arc::clone(&state.resumed);
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                resumed.store(cpu::clock_ns(), Ordering::Relaxed);
            }),
        ))
    });
    store
}

/// Memory caps by store limits: growth past the entry's budget fails the call, and the
/// fault is remembered so it is reported as memory exhaustion, not as a generic trap.
///
/// The budget covers every linear memory of the instance together (wasmtime asks per
/// memory), and the counts of instances, memories and tables a store may create are held
/// far below wasmtime's defaults of 10 000, which no plugin toolchain comes near.
impl wasmtime::ResourceLimiter for PluginState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_in_use
            .saturating_add(desired.saturating_sub(current));
        if total > self.memory_cap {
            self.fault = Some(Fault::MemoryCap {
                requested: total,
                cap: self.memory_cap,
            });
            return Err(wasmtime::Error::msg(format!(
                "plugin memory cap of {} bytes reached",
                self.memory_cap
            )));
        }
        self.last_growth = total - self.memory_in_use;
        self.memory_in_use = total;
        self.entry.note_memory(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth was granted above but the allocator refused it: the guest gets -1
        // and goes on, holding no more than before.
        self.memory_in_use -= std::mem::take(&mut self.last_growth);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Core instances a plugin's store may create: a wit-component plugin has a handful (its
/// module and shims); interpreters built with componentize-py link a dozen or so.
pub const MAX_CORE_INSTANCES: usize = 32;
/// Linear memories a plugin's store may create; all of them share one memory budget.
pub const MAX_MEMORIES: usize = 4;
/// Function tables a plugin's store may create.
pub const MAX_TABLES: usize = 32;

/// Function tables only grow for dynamic linking tricks no plugin needs.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The longest header value a plugin may set (the contract's rule).
pub const MAX_HEADER_VALUE: usize = portcullis_contract::edit::MAX_HEADER_VALUE;

/// A status a plugin may end a response with, by the contract's rule.
pub fn final_status(status: u16) -> Result<StatusCode, EditError> {
    portcullis_contract::edit::final_status(status).map_err(edit_error)?;
    StatusCode::from_u16(status).map_err(|_| EditError::InvalidValue("not a status".into()))
}

/// Headers that describe the connection or the framing, which the gateway owns.
pub fn is_forbidden_header(name: &HeaderName) -> bool {
    portcullis_contract::edit::is_gateway_header(name.as_str())
}

/// Parses a header name a guest gave, refusing the ones the gateway owns.
pub fn header_name(name: &str) -> Result<HeaderName, EditError> {
    let lower = portcullis_contract::edit::header_name(name).map_err(edit_error)?;
    HeaderName::from_bytes(lower.as_bytes()).map_err(|_| EditError::InvalidName(lower.into_owned()))
}

/// Parses a header value a guest gave, by the contract's rule.
pub fn header_value(value: &str) -> Result<HeaderValue, EditError> {
    portcullis_contract::edit::header_value(value).map_err(edit_error)?;
    HeaderValue::from_bytes(value.as_bytes())
        .map_err(|_| EditError::InvalidValue("control characters are not allowed".to_owned()))
}

/// The contract's refusal as the guest's `edit-error`.
pub fn edit_error(refusal: portcullis_contract::edit::Refusal) -> EditError {
    use portcullis_contract::edit::Refusal;
    match refusal {
        Refusal::InvalidName(name) => EditError::InvalidName(name),
        Refusal::Forbidden(name) => EditError::Forbidden(name),
        Refusal::InvalidValue(why) => EditError::InvalidValue(why),
    }
}

/// A header value as the guest sees it: text, with invalid UTF-8 replaced.
pub fn value_text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// Every header as `(name, value)` pairs, repeated names kept in order.
pub fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_text(v)))
        .collect()
}

/// The first value of a header; unknown or invalid names simply have none.
pub fn first_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(value_text)
}

/// Every value of a header.
pub fn all_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().map(value_text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_connection_headers_are_refused() {
        for name in ["Host", "content-length", "Transfer-Encoding", "connection"] {
            assert!(
                matches!(header_name(name), Err(EditError::Forbidden(_))),
                "{name}"
            );
        }
        assert!(header_name("x-user").is_ok());
        assert!(matches!(
            header_name("bad name"),
            Err(EditError::InvalidName(_))
        ));
    }

    /// The host joins a checked path and query into one target without checking again:
    /// every character the contract lets through must be one the `http` crate parses.
    #[test]
    fn every_path_and_query_the_contract_accepts_is_a_target() {
        for text in ["/caf\u{e9}", "/x?q=caf\u{e9}"] {
            assert!(http::uri::PathAndQuery::try_from(text).is_ok(), "{text}");
        }
        for b in 0u8..0x80 {
            let c = char::from(b);
            let path = format!("/a{c}b");
            if let Ok(canonical) = portcullis_contract::edit::path(&path) {
                assert!(
                    http::uri::PathAndQuery::try_from(canonical.as_ref()).is_ok(),
                    "path byte {b:#x}"
                );
            }
            let query = format!("a{c}b");
            if portcullis_contract::edit::query(&query).is_ok() {
                assert!(
                    http::uri::PathAndQuery::try_from(format!("/x?{query}")).is_ok(),
                    "query byte {b:#x}"
                );
            }
        }
    }

    #[test]
    fn values_with_newlines_or_oversized_are_refused_and_utf8_kept() {
        assert!(header_value("a\r\nx-injected: 1").is_err());
        assert!(header_value(&"v".repeat(MAX_HEADER_VALUE + 1)).is_err());
        let v = header_value("café").expect("utf-8 is obs-text");
        assert_eq!(value_text(&v), "café");
    }

    #[test]
    fn the_memory_budget_covers_all_memories_of_an_instance() {
        use wasmtime::ResourceLimiter;
        let services = Arc::new(super::super::services::HostServices::new(
            Arc::default(),
            super::super::jwks::KeySetSettings::default(),
        ));
        let entry = Arc::new(EntryInfo::for_tests(services, 10 << 20));
        let mut state = PluginState::new(entry);
        const MIB: usize = 1 << 20;
        // Two memories of 6 MiB each: each alone fits the 10 MiB budget, together not.
        assert!(state.memory_growing(0, 6 * MIB, None).expect("first fits"));
        assert!(
            state
                .memory_growing(0, 4 * MIB, None)
                .expect("exactly the budget")
        );
        assert!(state.memory_growing(4 * MIB, 5 * MIB, None).is_err());
        assert_eq!(
            state.fault,
            Some(Fault::MemoryCap {
                requested: 11 * MIB,
                cap: 10 * MIB
            })
        );
    }
}
