//! Futures a connection task watches beside its connection (the shutdown signal, the
//! head-started notice, the connection's timer), polled only when one of them woke.
//!
//! `tokio::select!` polls every branch each time the task wakes, and a connection task
//! wakes about three times per request (the request arrives, the upstream's answer
//! arrives, the answer is written): the three side futures cost ~1 600 instructions a
//! request that way, 3 % of a plain proxied request (bench/instructions.sh). Polled with
//! a waker of their own, they are looked at once when they are made and then only when
//! they wake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A waker for the side futures that remembers it fired and wakes the task.
#[derive(Debug, Default)]
pub struct SideWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl SideWake {
    /// A side waker, and the `Waker` to poll the side futures with.
    pub fn new() -> (Arc<Self>, Waker) {
        let side = Arc::new(Self::default());
        let waker = Waker::from(Arc::clone(&side));
        (side, waker)
    }

    /// New side futures were made: they must be polled once, to register.
    pub fn mark(&self) {
        self.woken.store(true, Ordering::Release);
    }

    /// Whether the side futures are due a poll, registering the task to be woken when
    /// they next are.
    pub fn due(&self, cx: &Context<'_>) -> bool {
        self.task.register(cx.waker());
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn side_futures_are_polled_once_made_and_then_only_when_woken() {
        let (side, waker) = SideWake::new();
        let count = Arc::new(Count::default());
        let task = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&task);
        assert!(!side.due(&cx), "nothing made yet");
        side.mark();
        assert!(side.due(&cx), "made: polled once");
        assert!(!side.due(&cx), "then not until woken");

        let notify = tokio::sync::Notify::new();
        let mut notified = pin!(notify.notified());
        let mut scx = Context::from_waker(&waker);
        assert!(notified.as_mut().poll(&mut scx).is_pending());
        notify.notify_one();
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "the task was woken");
        assert!(side.due(&cx), "the notice woke the side waker");
        assert_eq!(notified.as_mut().poll(&mut scx), Poll::Ready(()));
        assert!(!side.due(&cx));
    }
}
