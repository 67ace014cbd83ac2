//! The gateway's process allocator, kept in its own crate because returning memory to
//! the system needs one foreign call, and the gateway's crate forbids `unsafe` code.
//!
//! mimalloc instead of glibc malloc: the request path makes many short-lived small
//! allocations, and glibc's malloc/free were a tenth of the CPU time per proxied request
//! under load (bench/proxy.sh with perf).
//!
//! It is built without its transparent-huge-page advice (feature `no_thp`, workspace
//! `Cargo.toml`): mimalloc 3 reserves a 1 GiB arena and advises huge pages on it, and
//! every 2 MiB region it touched then stayed resident whole, 29 MiB more at rest. On a
//! host whose THP mode is `always` rather than `madvise`, the kernel does the same
//! unasked; `MIMALLOC_ALLOW_THP=0` in the environment turns it off there.

pub use mimalloc::MiMalloc;

/// Gives the memory that is free in the allocator back to the system now, instead of
/// when later allocations on the same thread get round to it.
///
/// Loading a config (parsing, building plugins, instantiating components) allocates and
/// frees tens of megabytes, which mimalloc returns only after a delay and when the same
/// thread allocates again: a gateway without traffic kept it, 9 MiB of the 33 MiB a
/// 20-route config held after start, 13 MiB after a first start that compiled
/// (bench/memory.sh, BENCHMARKS.md "Memory"). Call it once a load is over; it is cheap
/// but not free (it walks the calling thread's heap), so not on the request path.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` has no preconditions: it may be called from any thread at any
    // time, whether or not mimalloc is the global allocator (its heaps are then empty).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
