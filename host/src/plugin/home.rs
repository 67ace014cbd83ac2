//! Where network work a plugin asks for runs: on the serving runtime, even when the call
//! itself runs on the lane of demoted entries (`cpu.rs`).

tokio::task_local! {
    /// The runtime a lane call came from, for the work it must not do on the lane.
    pub(super) static HOME: tokio::runtime::Handle;
}

/// Runs `work` on the serving runtime when called from a lane call, else here. Network
/// work a plugin asks for goes through clients and key sets that every entry shares: a
/// connection opened on the lane would be registered with the lane's reactor and driven by
/// its tasks, and a key-set refresh started there would hold its single-flight lock, so
/// healthy routes reusing them would wait on threads a misbehaving plugin keeps busy.
/// `None` when the serving runtime dropped the work (it is shutting down).
pub async fn at_home<F>(work: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    run_at(home(), work).await
}

/// The serving runtime, when called from a lane call: for work that is started later,
/// from a task of its own, where [`at_home`] could no longer tell (`wasi:http`'s sends).
pub fn home() -> Option<tokio::runtime::Handle> {
    HOME.try_with(tokio::runtime::Handle::clone).ok()
}

/// Runs `work` on `home` when given (see [`at_home`]), else here.
pub async fn run_at<F>(home: Option<tokio::runtime::Handle>, work: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(home) = home else {
        return Some(work.await);
    };
    let work = tracing::Instrument::in_current_span(work);
    match AbortOnDrop(home.spawn(work)).wait().await {
        Ok(output) => Some(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// Starts `work` on the serving runtime when called from a lane call (see [`at_home`]),
/// else on the current one.
pub fn spawn_at_home<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let work = tracing::Instrument::in_current_span(work);
    match home() {
        Some(home) => drop(home.spawn(work)),
        None => drop(tokio::spawn(work)),
    }
}

/// A task (on the lane, or at home for a lane call) aborted when its waiter goes away.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    pub(super) async fn wait(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
