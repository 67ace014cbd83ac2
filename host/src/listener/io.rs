//! The client connection's byte stream, watched on its way to hyper: it records when
//! bytes last moved (for the idle timeout), when the client stopped taking what the
//! gateway sends (for the send timeout), and feeds the HTTP/1 framing guard.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::FramingGuard;

/// Activity of one connection: when bytes last moved, how many requests are open, since
/// when a request head has been arriving, and whether the client is taking what is sent
/// to it.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    pub open_requests: AtomicUsize,
    /// Since when (ms after `epoch`, plus one; 0 = not) the socket has refused writes.
    write_blocked: AtomicU64,
    /// When bytes were last written (ms after `epoch`).
    last_write_ms: AtomicU64,
    /// Since when (ms after `epoch`, plus one; 0 = not) an HTTP/1 request head has been
    /// arriving: from the connection's start for its first request, from the first byte
    /// of each later one. This, not hyper's timer, is `header_read_timeout`: hyper's also
    /// runs while a keep-alive connection waits for its next request, which cut every
    /// idle connection at the header timeout instead of `idle_timeout`.
    head_since: AtomicU64,
    /// Woken when a head starts arriving (or a pipelined one gets its turn), so the
    /// connection's timer can move closer.
    pub head_started: tokio::sync::Notify,
    /// The responses in flight, each with the time a chunk was handed out and not yet
    /// followed by another poll of the body.
    sends: Mutex<Vec<Weak<SendProgress>>>,
}

/// One response's progress towards the client. hyper polls a response body for its
/// next chunk only once the previous one could be sent (into the TCP socket, or into an
/// HTTP/2 stream's flow-control window): a chunk handed out and not followed by another
/// poll is a client that stopped reading, which the socket alone cannot show on HTTP/2.
#[derive(Debug, Default)]
pub struct SendProgress {
    /// Since when (ms after the connection's epoch, plus one; 0 = not) a chunk waits.
    waiting: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            open_requests: AtomicUsize::new(0),
            write_blocked: AtomicU64::new(0),
            last_write_ms: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            head_started: tokio::sync::Notify::new(),
            sends: Mutex::default(),
        }
    }

    /// Starts the head clock now, for the first request of an HTTP/1 connection.
    pub fn expect_head(&self) {
        self.head_since.store(self.mark(), Ordering::Relaxed);
    }

    /// Since when a request head has been arriving, if one is.
    pub fn head_since(&self) -> Option<Instant> {
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            mark => Some(self.epoch + std::time::Duration::from_millis(mark - 1)),
        }
    }

    /// Follows what the framing guard saw in the bytes just read: a head cut by the end of
    /// the read starts the clock (unless it runs already), anything else stops it.
    fn head_seen(&self, partial: bool) {
        if !partial {
            self.head_since.store(0, Ordering::Relaxed);
        } else if self
            .head_since
            .compare_exchange(0, self.mark(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.head_started.notify_one();
        }
    }

    /// The last open request has ended: a pipelined head that arrived in part while it
    /// was served gets its whole header timeout from now, as from hyper, which starts
    /// reading it now; the connection's timer is told, or it would look only at its next
    /// periodic check.
    fn head_gets_its_turn(&self) {
        if self.head_since.load(Ordering::Relaxed) != 0 {
            self.head_since.store(self.mark(), Ordering::Relaxed);
            self.head_started.notify_one();
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long the client has left the gateway unable to send: the socket refusing
    /// writes (or flushes), or a response chunk it has not taken while nothing at all was
    /// written — nginx's rule of time between two successive writes, so one HTTP/2 stream
    /// paused by flow control does not cut a connection whose other streams move.
    pub fn send_stalled_for(&self) -> std::time::Duration {
        let now = self.now_ms();
        let since = |mark: u64| {
            if mark == 0 {
                0
            } else {
                now.saturating_sub(mark - 1)
            }
        };
        let blocked = since(self.write_blocked.load(Ordering::Relaxed));
        let mut waiting = 0;
        if let Ok(mut sends) = self.sends.lock() {
            sends.retain(|s| match s.upgrade() {
                Some(s) => {
                    waiting = waiting.max(since(s.waiting.load(Ordering::Relaxed)));
                    true
                }
                None => false,
            });
        }
        let since_write = now.saturating_sub(self.last_write_ms.load(Ordering::Relaxed));
        std::time::Duration::from_millis(blocked.max(waiting.min(since_write)))
    }

    fn mark(&self) -> u64 {
        self.now_ms() + 1
    }

    /// When bytes last moved.
    pub fn last(&self) -> Instant {
        self.epoch + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl SendProgress {
    /// Called on every poll of the response body: the previous chunk went out.
    fn polled(&self) {
        self.waiting.store(0, Ordering::Relaxed);
    }
}

/// Counts a request as open until dropped (with its response body), and watches its
/// response's progress towards the client.
#[derive(Debug)]
pub struct OpenRequest {
    activity: Arc<Activity>,
    progress: Arc<SendProgress>,
}

impl OpenRequest {
    pub fn new(activity: Arc<Activity>) -> Self {
        activity.open_requests.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(SendProgress::default());
        if let Ok(mut sends) = activity.sends.lock() {
            // Finished responses are pruned here too, so a busy keep-alive connection
            // keeps about as many entries as it has requests in flight.
            if sends.len() >= 128 {
                sends.retain(|s| s.strong_count() > 0);
            }
            sends.push(Arc::downgrade(&progress));
        }
        Self { activity, progress }
    }
}

impl crate::body::SendWatch for OpenRequest {
    fn chunk_sent(&self) {
        self.progress
            .waiting
            .store(self.activity.mark(), Ordering::Relaxed);
    }

    fn polled(&self) {
        self.progress.polled();
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.touch();
        if activity.open_requests.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity.head_gets_its_turn();
        }
    }
}

pin_project_lite::pin_project! {
    #[derive(Debug)]
    pub struct WatchedIo<S> {
        #[pin]
        inner: S,
        activity: Arc<Activity>,
        framing: Option<FramingGuard>,
    }
}

impl<S> WatchedIo<S> {
    pub fn new(inner: S, activity: Arc<Activity>, framing: Option<FramingGuard>) -> Self {
        activity.touch();
        Self {
            inner,
            activity,
            framing,
        }
    }
}

impl<S: AsyncRead> AsyncRead for WatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.activity.touch();
                if let Some(guard) = this.framing.as_mut() {
                    guard.feed(new);
                    this.activity.head_seen(guard.partial_head());
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        record_write(this.activity, Written::of(&polled, |n| *n));
        polled
    }

    // A TLS stream accepts writes into its own buffer while the socket is full; the
    // stall then shows only here.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_flush(cx);
        record_write(this.activity, Written::of(&polled, |()| 0));
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_shutdown(cx);
        record_write(this.activity, Written::of(&polled, |()| 0));
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        record_write(this.activity, Written::of(&polled, |n| *n));
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a write, flush or shutdown of the client stream came to.
enum Written {
    Bytes(usize),
    Refused,
    Failed,
}

impl Written {
    fn of<T>(polled: &Poll<std::io::Result<T>>, bytes: impl Fn(&T) -> usize) -> Self {
        match polled {
            Poll::Ready(Ok(t)) => Self::Bytes(bytes(t)),
            Poll::Pending => Self::Refused,
            Poll::Ready(Err(_)) => Self::Failed,
        }
    }
}

/// Bytes written move the idle clock and end a write stall; a refused write starts one.
fn record_write(activity: &Activity, written: Written) {
    match written {
        Written::Bytes(n) => {
            if n > 0 {
                activity.touch();
                activity
                    .last_write_ms
                    .store(activity.now_ms(), Ordering::Relaxed);
            }
            activity.write_blocked.store(0, Ordering::Relaxed);
        }
        Written::Refused => {
            let _ = activity.write_blocked.compare_exchange(
                0,
                activity.mark(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Written::Failed => {}
    }
}
