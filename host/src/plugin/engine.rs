//! The one wasmtime engine of the process: its configuration, the on-disk compilation cache,
//! and the epoch ticker that every plugin deadline hangs off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use wasmtime::component::Component;

use super::state::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use wasmtime::{Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy};
use wasmtime::{PoolingAllocationConfig, WasmBacktraceDetails};

/// How often the epoch advances. Deadlines are checked, and running plugins yield to the
/// async runtime, once per tick: 1 ms keeps a looping plugin from holding a worker thread
/// longer than that at a time, for a cost far below a microsecond per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The largest memory any plugin may be granted (`budgets.memory`).
pub const MAX_MEMORY_BYTES: usize = 512 * 1024 * 1024;

/// Engine-wide settings from the `[plugins]` table.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Component instances that may be alive at once across all routes (pool slots).
    pub max_instances: u32,
    /// Where compiled components are cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
}

/// The engine plus what keeps its epoch moving.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    /// One permit per pooling-allocator slot: a request waits for a free slot (bounded by
    /// its plugin's deadline) instead of failing the moment the pool is full.
    slots: Arc<Semaphore>,
    /// Reuse-mode pools, whose idle warm instances hold slots they are not using.
    pools: Arc<Mutex<Vec<Weak<dyn IdleInstances>>>>,
    /// Where compiled components are cached (`None`: not cached).
    cache_dir: Option<PathBuf>,
    /// Key of the random bytes a plugin draws while it is being snapshotted (`snapshot.rs`),
    /// made when the first snapshot needs it.
    snapshot_key: Arc<std::sync::OnceLock<[u8; 32]>>,
}

/// Something that keeps idle instances (a reuse-mode pool) and can give one up.
pub(crate) trait IdleInstances: Send + Sync {
    /// Drops one idle instance (the least recently used), freeing its engine slot; false
    /// when there is none.
    fn drop_idle(&self) -> bool;
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker, which ends with the last clone of it.
    pub fn new(settings: &EngineSettings) -> Result<Self, String> {
        let mut pool = PoolingAllocationConfig::new();
        let slots = settings.max_instances.max(1);
        pool.total_component_instances(slots)
            // A component made by wit-component holds the guest's module plus small shim
            // modules for its imports.
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots)
            // Per component, the same bounds as each store's limiter (`state.rs`): left
            // unbounded, one component could take every core-instance or memory slot of
            // the pool at instantiation, before any store limit is asked.
            .max_core_instances_per_component(MAX_CORE_INSTANCES as u32)
            .max_memories_per_component(MAX_MEMORIES as u32)
            .max_tables_per_component(MAX_TABLES as u32)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            // Reset a slot by zeroing the pages a request dirtied instead of unmapping them:
            // measured to halve the cost of a fresh instance (BENCHMARKS.md).
            .linear_memory_keep_resident(1 << 20)
            // A funcref table is filled lazily, an element each time the guest first calls
            // through it, so the pages a request filled are dirty at reset. Kept resident,
            // they are zeroed in place; decommitted, the next instance faults them in again.
            // `validate`'s table (3 115 elements, 7 pages) went past the page this was
            // once: every fresh instance then paid a madvise with its TLB shootdown and six
            // page faults, 31 µs a request against 17 µs (BENCHMARKS.md). 64 KiB covers
            // 8 192 elements, and only the pages a request dirtied stay resident.
            .table_keep_resident(64 << 10)
            // Measured within noise, kept: fewer madvise calls per fiber stack.
            .async_stack_keep_resident(1 << 16)
            // Memory past the resident megabyte is given back when its instance goes, not
            // when 32 such instances have gone: batched, 16 dropped instances of a plugin
            // granted 256 MiB kept 3.8 GiB resident (bench/misbehaving.sh). Instances
            // within the resident megabyte queue nothing, so this costs them nothing.
            .decommit_batch_size(1)
            .pagemap_scan(Enabled::Auto);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            // Component-model async (streams, futures, tasks) is not part of the contract;
            // leaving it off saves 1–3 µs per call.
            .concurrency_support(false)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable)
            // Explicit bounds checks and no guard pages: a guest's first allocation grows
            // its memory, and with guard pages every fresh instance then paid two mprotect
            // calls (and TLB shootdowns) to grow and reset it. Measured: fresh no-op
            // request phase 16–17 µs → 10.7 µs median, p99 63 → 33 µs (BENCHMARKS.md).
            .signals_based_traps(false)
            .memory_guard_size(0)
            .memory_reservation(MAX_MEMORY_BYTES as u64)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        // A diagnostic for profiling under load: with `PORTCULLIS_WASM_PERFMAP=1`, wasmtime
        // writes /tmp/perf-PID.map, so `perf report` names guest functions instead of bare
        // addresses. Off by default: the map grows with every module loaded.
        if std::env::var_os("PORTCULLIS_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = &settings.cache_dir {
            // wasmtime's cache owns its directory (its cleanup removes any file it did not
            // write there), so it gets a folder of ours: the snapshot key sits beside it.
            let mut cache = CacheConfig::new();
            cache.with_directory(dir.join("compiled"));
            let cache =
                Cache::new(cache).map_err(|e| format!("plugin cache at {}: {e}", dir.display()))?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| format!("wasmtime engine: {e}"))?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| format!("epoch ticker thread: {e}"))?;
        Ok(Self {
            engine,
            slots: Arc::new(Semaphore::new(slots as usize)),
            pools: Arc::default(),
            cache_dir: settings.cache_dir.clone(),
            snapshot_key: Arc::default(),
        })
    }

    /// The key that makes a snapshot's random bytes (`snapshot.rs`).
    pub(super) fn snapshot_key(&self) -> Result<&[u8; 32], String> {
        if let Some(key) = self.snapshot_key.get() {
            return Ok(key);
        }
        let key = snapshot_key(self.cache_dir.as_deref())?;
        Ok(self.snapshot_key.get_or_init(|| key))
    }

    /// Lets the engine take idle instances back from `pool` when it runs out of slots.
    pub(crate) fn register_pool(&self, pool: Weak<dyn IdleInstances>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|p| p.strong_count() > 0);
            pools.push(pool);
        }
    }

    /// Frees a slot held by an idle warm instance of any pool; false when none is idle.
    fn reclaim_one(&self) -> bool {
        let pools: Vec<Arc<dyn IdleInstances>> = match self.pools.lock() {
            Ok(pools) => pools.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => return false,
        };
        pools.iter().any(|p| p.drop_idle())
    }

    /// Waits up to `wait` for a free instance slot; the permit is held as long as the
    /// instance lives.
    pub async fn slot(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        // Every slot is taken. Idle warm instances hold slots without using them: without
        // this, pools that once grew (a burst on one route) would starve every other entry.
        while self.reclaim_one() {
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                return Some(permit);
            }
        }
        tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()?
            .ok()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component, or loads it from the cache when these exact bytes were
    /// compiled before by an engine configured the same way.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        Component::new(&self.engine, bytes).map_err(|e| super::failure::error_text(&e))
    }
}

/// The key of the random bytes plugins draw while being snapshotted. A snapshot holds what
/// its `check-config` drew (hash-map seeds, most often), and the compile cache finds a
/// snapshot only if its bytes are the same as at the last start: so those bytes are drawn
/// from a keyed stream, the same for the same component and config, and the key is a
/// secret kept beside the compiled code (`<cache_dir>/snapshot.key`, made on first use,
/// readable by the gateway's user only; the cache directory is made 0700, since snapshots
/// in it hold what plugins kept of their config). Without a cache nothing is reused, and
/// the key is new each start.
fn snapshot_key(cache_dir: Option<&Path>) -> Result<[u8; 32], String> {
    let random = || {
        let mut key = [0; 32];
        aws_lc_rs::rand::fill(&mut key)
            .map(|()| key)
            .map_err(|_| "the system random generator failed".to_owned())
    };
    let Some(dir) = cache_dir else {
        return random();
    };
    let path = dir.join("snapshot.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key = random()?;
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let temporary = dir.join(format!("snapshot.key.{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&key)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    });
    if let Err(e) = written {
        // Snapshots still work; they are compiled again at each start.
        tracing::warn!("cannot keep the snapshot key in {}: {e}", dir.display());
    }
    Ok(key)
}

/// The instances one route's requests may hold at once, shared by the entries of its
/// pipeline. Taken by the pipeline for all its entries before any engine slot, and held
/// until the response phase is over: a route whose upstream is slow keeps its instances through that call, and
/// without a share it could hold every slot and starve every other route's plugins.
#[derive(Debug, Clone)]
pub struct RouteShare {
    slots: Arc<Semaphore>,
    size: u32,
}

impl RouteShare {
    pub fn new(instances: u32) -> Self {
        let size = instances.max(1);
        Self {
            slots: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// The default share of a pool of `max_instances`: three quarters, at least one.
    pub fn default_size(max_instances: u32) -> u32 {
        (max_instances.saturating_mul(3) / 4).max(1)
    }

    /// Waits up to `wait` for room for one request's `instances` (one per entry of the
    /// pipeline), taken all at once: taken one entry at a time, requests holding their
    /// first entry's permit could wait for the second's until every one timed out.
    pub async fn permits(&self, instances: usize, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(instances)
            .unwrap_or(u32::MAX)
            .clamp(1, self.size);
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_many_owned(n) {
            return Some(permit);
        }
        tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }
}

/// The default cache folder: `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("portcullis").join("components"))
}
