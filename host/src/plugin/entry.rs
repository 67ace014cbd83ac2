//! One pipeline entry: a compiled, pre-linked plugin with its config, budgets, grants and
//! failure policy, and the instances it runs requests on.
//!
//! By default every request gets a fresh instance from the pooling allocator, so nothing a
//! plugin keeps in memory outlives the request. In reuse mode a bounded pool of warm
//! instances serves one request at a time each; an instance is thrown away after a failure
//! or after `max_requests` requests.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime::component::Resource;

use super::bindings::{Action, Phases, PluginFull, PluginFullPre};
use super::cpu::{self, Metered};
use super::engine::{IdleInstances, PluginEngine};
pub use super::failure::{FailurePolicy, PluginFailure};
use super::failure::{classify, error_text, lane_gone, truncate};
pub use super::info::{Budgets, EntryInfo, Grants, HostGrant};
use super::state::{PluginRequest, PluginResponse, PluginState, new_store};
use crate::telemetry::PluginLabels;

/// How instances are had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceMode {
    Fresh,
    Reuse {
        max_instances: usize,
        max_requests: u32,
    },
}

/// A live instance of an entry's plugin, serving one request.
pub struct Instance {
    /// Always `Some` until the instance is dropped (and maybe handed back to its pool).
    live: Option<Warm>,
    /// Requests served, for reuse mode's `max_requests`.
    served: u32,
    /// Set after any failure: the instance's state can no longer be trusted.
    poisoned: bool,
    /// Reuse mode: the slot this instance returns to.
    slot: Option<(Arc<WarmPool>, OwnedSemaphorePermit)>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("served", &self.served)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Instance {
    fn live(&mut self) -> Result<&mut Warm, PluginFailure> {
        self.live
            .as_mut()
            .ok_or_else(|| PluginFailure::Unavailable("instance already released".into()))
    }

    /// Marks the instance unusable for the length of a call: a call that never finishes
    /// (the request was dropped half-way, say when its client went away) leaves the
    /// component mid-call, and wasmtime refuses to enter it again. Returns whether it was
    /// poisoned before.
    fn begin_call(&mut self) -> bool {
        std::mem::replace(&mut self.poisoned, true)
    }

    /// After any failure the instance's state can no longer be trusted: it is not reused.
    fn record<T>(
        &mut self,
        was_poisoned: bool,
        result: Result<T, PluginFailure>,
    ) -> Result<T, PluginFailure> {
        self.poisoned = was_poisoned || result.is_err();
        result
    }
}

impl Instance {
    /// Takes the instance out, leaving one that refuses calls: what a call moved to the
    /// lane carries there and back.
    fn take(&mut self) -> Self {
        Self {
            live: self.live.take(),
            served: self.served,
            poisoned: self.poisoned,
            slot: self.slot.take(),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((pool, _permit)) = self.slot.take()
            && !self.poisoned
            && self.served < pool.max_requests
            && self
                .live
                .as_ref()
                .is_some_and(|w| w.store.data().reusable())
            && let (Some(mut warm), Ok(mut idle)) = (self.live.take(), pool.idle.lock())
        {
            warm.served = self.served;
            idle.push(warm);
            return;
        }
        // Resetting a store that grew to its budget decommits every page it touched: a
        // demoted entry's instances are dropped on the lane, like its calls run there.
        if let Some(warm) = self.live.take()
            && warm.store.data().entry.demotion.is_demoted()
            && cpu::lane_running()
        {
            cpu::drop_on_lane(warm);
        }
    }
}

struct Warm {
    store: Store<PluginState>,
    bindings: PluginFull,
    served: u32,
    /// The engine slot this instance occupies; released after the store is dropped.
    _slot: OwnedSemaphorePermit,
}

/// Reuse mode's pool: idle warm instances (most recently used last), and a semaphore
/// bounding how many serve at once.
struct WarmPool {
    idle: Mutex<Vec<Warm>>,
    slots: Arc<Semaphore>,
    max_requests: u32,
}

impl IdleInstances for WarmPool {
    fn drop_idle(&self) -> bool {
        let coldest = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| (!idle.is_empty()).then(|| idle.remove(0)));
        // Dropped here, outside the lock: the store goes, then its engine slot.
        coldest.is_some()
    }
}

/// A pipeline entry, ready to serve.
pub struct Entry {
    pub info: Arc<EntryInfo>,
    pub phases: Phases,
    pub failure: FailurePolicy,
    /// As configured, or the built-in's default (`reuse_by_default`).
    pub mode: InstanceMode,
    pre: PluginFullPre<PluginState>,
    engine: PluginEngine,
    pool: Option<Arc<WarmPool>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("route", &self.info.route)
            .field("plugin", &self.info.plugin)
            .field("failure", &self.failure)
            .field("reuse", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

impl Entry {
    pub(super) fn new(
        info: Arc<EntryInfo>,
        phases: Phases,
        failure: FailurePolicy,
        mode: InstanceMode,
        pre: PluginFullPre<PluginState>,
        engine: PluginEngine,
    ) -> Self {
        let pool = match mode {
            InstanceMode::Fresh => None,
            InstanceMode::Reuse {
                max_instances,
                max_requests,
            } => {
                let pool = Arc::new(WarmPool {
                    idle: Mutex::new(Vec::new()),
                    slots: Arc::new(Semaphore::new(max_instances.max(1))),
                    max_requests: max_requests.max(1),
                });
                let weak: std::sync::Weak<dyn IdleInstances> =
                    Arc::downgrade(&(Arc::clone(&pool) as Arc<dyn IdleInstances>));
                engine.register_pool(weak);
                Some(pool)
            }
        };
        Self {
            info,
            phases,
            failure,
            mode,
            pre,
            engine,
            pool,
        }
    }

    /// A new instance in a free engine slot, made on the lane for a demoted entry. The
    /// slot is waited for here: waited for on the lane, it would hold a lane turn (and the
    /// entry's share of them) for nothing.
    async fn fresh(self: &Arc<Self>) -> Result<Warm, PluginFailure> {
        let slot = self
            .engine
            .slot(self.info.budgets.deadline)
            .await
            .ok_or_else(|| {
                PluginFailure::Unavailable("every plugin instance slot is busy".into())
            })?;
        if self.on_lane() {
            let turn = self.lane_turn().await?;
            let entry = Arc::clone(self);
            let call = async move { entry.make_fresh(slot, true).await };
            // Making an instance proves nothing about the plugin's calls, nor demotes it
            // again: what its calls cost decides.
            return cpu::on_lane(turn, &self.info, call, None)
                .await
                .unwrap_or_else(|| Err(lane_gone()));
        }
        self.make_fresh(slot, false).await
    }

    /// Whether this entry's calls run on the lane now.
    fn on_lane(&self) -> bool {
        self.info.demotion.is_demoted() && cpu::lane_running()
    }

    /// Runs `call` on the lane in a turn of its own, moving the instance and what the
    /// plugin edits there and back.
    async fn call_on_lane<T, R, Fut>(
        self: &Arc<Self>,
        instance: &mut Instance,
        edited: &mut T,
        call: impl FnOnce(Arc<Self>, Instance, T) -> Fut,
    ) -> Result<R, PluginFailure>
    where
        T: Default + Send + 'static,
        R: Send + 'static,
        Fut: Future<Output = Moved<T, R>> + Send + 'static,
    {
        let turn = self.lane_turn().await?;
        let call = call(Arc::clone(self), instance.take(), std::mem::take(edited));
        let succeeded: fn(&Moved<T, R>) -> bool = |(_, _, r)| r.is_ok();
        let (moved, back, result) = cpu::on_lane(turn, &self.info, call, Some(succeeded))
            .await
            .ok_or_else(lane_gone)?;
        (*instance, *edited) = (moved, back);
        result
    }

    /// A turn on the lane for one of this demoted entry's calls, within its deadline.
    async fn lane_turn(&self) -> Result<cpu::LaneTurn, PluginFailure> {
        let turn = cpu::lane_turn(&self.info, self.info.budgets.deadline)
            .await
            .ok_or_else(|| {
                PluginFailure::Unavailable(
                    "the plugin computes for long and no turn for such plugins came free".into(),
                )
            })?;
        self.info
            .services
            .metrics
            .plugin_lane_calls
            .get_or_create(&PluginLabels {
                route: self.info.route.to_string(),
                plugin: self.info.plugin.to_string(),
            })
            .inc();
        Ok(turn)
    }

    /// A new instance in `slot`; its instantiation counts against the entry's allowance on
    /// a serving thread (not the wait for the slot, in which other entries' idle instances
    /// may be dropped).
    async fn make_fresh(
        &self,
        slot: OwnedSemaphorePermit,
        on_lane: bool,
    ) -> Result<Warm, PluginFailure> {
        let mut store = new_store(&self.engine, PluginState::new(Arc::clone(&self.info)));
        let bindings = if on_lane {
            self.instantiate(&mut store).await?
        } else {
            Metered::serving(&self.info, self.instantiate(&mut store)).await?
        };
        Ok(Warm {
            store,
            bindings,
            served: 0,
            _slot: slot,
        })
    }

    /// An instance for one request: a fresh one, or a warm one in reuse mode.
    pub async fn instance(self: &Arc<Self>) -> Result<Instance, PluginFailure> {
        let Some(pool) = &self.pool else {
            return Ok(Instance {
                live: Some(self.fresh().await?),
                served: 0,
                poisoned: false,
                slot: None,
            });
        };
        // A free warm instance is taken without arming the wait's timer.
        let permit = match Arc::clone(&pool.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(
                self.info.budgets.deadline,
                Arc::clone(&pool.slots).acquire_owned(),
            )
            .await
            .map_err(|_| PluginFailure::Unavailable("every warm instance is busy".into()))?
            .map_err(|_| PluginFailure::Unavailable("pool closed".into()))?,
        };
        let warm = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
        let warm = match warm {
            Some(w) => w,
            None => self.fresh().await?,
        };
        Ok(Instance {
            served: warm.served,
            live: Some(warm),
            poisoned: false,
            slot: Some((Arc::clone(pool), permit)),
        })
    }

    async fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> Result<PluginFull, PluginFailure> {
        store.data_mut().begin_instantiation();
        let result = tokio::time::timeout(
            self.info.budgets.deadline,
            self.pre.instantiate_async(&mut *store),
        )
        .await;
        match result {
            Ok(Ok(bindings)) => Ok(bindings),
            Ok(Err(e)) => Err(
                classify(store.data_mut().fault.take(), &e).unwrap_or_else(|| {
                    // The pool being full is the usual cause; it is overload, not a bug.
                    PluginFailure::Unavailable(error_text(&e))
                }),
            ),
            Err(_) => Err(PluginFailure::Timeout),
        }
    }

    /// Runs `on-request`, on the lane for a demoted entry. Whatever happens, `request` is
    /// left as the plugin left it.
    pub async fn on_request(
        self: &Arc<Self>,
        instance: &mut Instance,
        request: &mut PluginRequest,
    ) -> Result<Action, PluginFailure> {
        if !self.on_lane() {
            return Metered::serving_call(&self.info, self.call_on_request(instance, request))
                .await;
        }
        self.call_on_lane(
            instance,
            request,
            |entry, mut instance, mut request| async move {
                let result = entry.call_on_request(&mut instance, &mut request).await;
                (instance, request, result)
            },
        )
        .await
    }

    async fn call_on_request(
        &self,
        instance: &mut Instance,
        request: &mut PluginRequest,
    ) -> Result<Action, PluginFailure> {
        let was_poisoned = instance.begin_call();
        let live = instance.live()?;
        let store = &mut live.store;
        let state = store.data_mut();
        state.serve(&request.request_id);
        state.request = Some(std::mem::take(request));
        state.begin_call(true);
        let handler = live.bindings.portcullis_plugin_handler();
        let call = handler.call_on_request(&mut *store, Resource::new_own(0));
        let outcome = tokio::time::timeout(self.call_budget(), call).await;
        // Only the host takes the request out of the store, and only here.
        *request = store.data_mut().request.take().unwrap_or_default();
        let result = self.outcome(store, outcome);
        instance.served += 1;
        instance.record(was_poisoned, result)
    }

    /// Runs `on-response` on the instance that served this request's `on-request`, on the
    /// lane for a demoted entry. Whatever happens, `response` is left as the plugin left it.
    pub async fn on_response(
        self: &Arc<Self>,
        instance: &mut Instance,
        response: &mut PluginResponse,
        request_id: &Arc<str>,
    ) -> Result<(), PluginFailure> {
        if !self.on_lane() {
            return Metered::serving_call(
                &self.info,
                self.call_on_response(instance, response, request_id),
            )
            .await;
        }
        let request_id = Arc::clone(request_id);
        self.call_on_lane(
            instance,
            response,
            |entry, mut instance, mut response| async move {
                let result = entry
                    .call_on_response(&mut instance, &mut response, &request_id)
                    .await;
                (instance, response, result)
            },
        )
        .await
    }

    async fn call_on_response(
        &self,
        instance: &mut Instance,
        response: &mut PluginResponse,
        request_id: &Arc<str>,
    ) -> Result<(), PluginFailure> {
        let was_poisoned = instance.begin_call();
        let live = instance.live()?;
        let store = &mut live.store;
        // An entry with no request phase is served here first: what it logs is filed
        // under this request too.
        store.data_mut().serve(request_id);
        store.data_mut().response = Some(std::mem::take(response));
        // An entry with no request phase gets its request's budget here.
        store
            .data_mut()
            .begin_call(!self.phases.contains(Phases::ON_REQUEST));
        let handler = live.bindings.portcullis_plugin_handler();
        let call = handler.call_on_response(&mut *store, Resource::new_own(0));
        let outcome = tokio::time::timeout(self.call_budget(), call).await;
        *response = store.data_mut().response.take().unwrap_or_default();
        let result = self.outcome(store, outcome);
        instance.record(was_poisoned, result)
    }

    /// The outer timeout: the epoch callback stops a plugin that computes past its deadline;
    /// this also stops one that waits past it inside a host import.
    fn call_budget(&self) -> Duration {
        self.info.budgets.deadline + EPOCH_GRACE
    }

    fn outcome<T>(
        &self,
        store: &mut Store<PluginState>,
        outcome: Result<wasmtime::Result<Result<T, String>>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginFailure> {
        let fault = store.data_mut().fault.take();
        match outcome {
            Err(_) => Err(PluginFailure::Timeout),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(PluginFailure::Error(truncate(message))),
            Ok(Err(e)) => Err(classify(fault, &e)
                .unwrap_or_else(|| PluginFailure::Trap(truncate(error_text(&e))))),
        }
    }

    /// Runs `check-config` on a throwaway instance and returns the phases it asked for.
    pub(super) async fn check_config(
        pre: &PluginFullPre<PluginState>,
        engine: &PluginEngine,
        info: &Arc<EntryInfo>,
    ) -> Result<Phases, String> {
        let state = PluginState::loading(Arc::clone(info));
        // Loading gets more time than a request: a guest may parse a large document here.
        let budget = info.budgets.deadline.max(CHECK_CONFIG_DEADLINE);
        let _slot = engine.slot(budget).await.ok_or_else(|| {
            "no plugin instance slot became free; raise `[plugins] max_instances`".to_owned()
        })?;
        let mut store = new_store(engine, state);
        store.data_mut().deadline = Instant::now() + budget;
        let bindings = tokio::time::timeout(budget, pre.instantiate_async(&mut store))
            .await
            .map_err(|_| "instantiating it took longer than its deadline".to_owned())?
            .map_err(|e| {
                let fault = store.data_mut().fault.take();
                classify(fault, &e).map_or_else(|| error_text(&e), |f| f.to_string())
            })?;
        store.data_mut().deadline = Instant::now() + budget;
        let handler = bindings.portcullis_plugin_handler();
        let call = handler.call_check_config(&mut store, &info.config);
        let checked = tokio::time::timeout(budget, call).await;
        info.demotion.clear();
        match checked {
            Err(_) => Err("its config check ran past its deadline".to_owned()),
            Ok(Err(e)) => {
                let fault = store.data_mut().fault.take();
                Err(format!(
                    "its config check failed: {}",
                    classify(fault, &e).map_or_else(|| error_text(&e), |f| f.to_string())
                ))
            }
            Ok(Ok(result)) => result,
        }
    }

    /// Runs `check-config` again in an instrumented instance of `bytes` and compiles the
    /// component snapshotted after it (`snapshot.rs`), within the config check's budget.
    pub(super) async fn snapshot(
        engine: &PluginEngine,
        linker: &wasmtime::component::Linker<PluginState>,
        bytes: &[u8],
        info: &Arc<EntryInfo>,
    ) -> Result<wasmtime::component::Component, String> {
        // Compiled before the deadline is armed and a slot taken: compiling is not the
        // plugin's time.
        let instrumented = super::snapshot::instrument(engine.engine(), bytes)?;
        let mut state = PluginState::loading(Arc::clone(info));
        state.seeded = Some(super::snapshot::Seeded::new(
            engine.snapshot_key()?,
            bytes,
            &info.config,
        ));
        let budget = info.budgets.deadline.max(CHECK_CONFIG_DEADLINE);
        let slot = engine
            .slot(budget)
            .await
            .ok_or_else(|| "no plugin instance slot became free".to_owned())?;
        let mut store = new_store(engine, state);
        store.data_mut().deadline = Instant::now() + budget;
        let made = tokio::time::timeout(
            budget,
            super::snapshot::preinitialise(&mut store, linker, instrumented, &info.config),
        )
        .await;
        // The instance and its slot are not needed to compile what it left.
        drop((store, slot));
        info.demotion.clear();
        let bytes = made.map_err(|_| "its snapshot ran past the config check's deadline")??;
        engine
            .compile(&bytes)
            .map_err(|e| format!("its snapshot did not compile: {e}"))
    }
}

/// Time a config check may take at least, whatever the request deadline.
const CHECK_CONFIG_DEADLINE: Duration = Duration::from_secs(5);

/// Slack on top of the deadline before the outer timeout fires, so a computing plugin is
/// normally stopped by its epoch deadline (and reported as such) first.
const EPOCH_GRACE: Duration = Duration::from_millis(5);

/// What a call moved to the lane hands back: the instance, what the plugin edited, and
/// the call's result.
type Moved<T, R> = (Instance, T, Result<R, PluginFailure>);
