//! Panics on any thread of the process, counted: a panic in a request task is swallowed
//! by tokio (the client only sees a closed connection), so the checks compare this count
//! before and after each input.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Starts counting panics (once per process), keeping the hook already installed (the
/// default one, or libFuzzer's, which aborts) behind ours.
pub fn watch() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Panics seen so far.
pub fn count() -> usize {
    PANICS.load(Ordering::SeqCst)
}
