//! Body types shared by the request path: one boxed body for everything the gateway
//! sends, a wrapper that counts bytes as they stream (for the access log) and can hold a
//! guard that runs when the body is finished or dropped, and the client's request body
//! under its size limit and read deadline ([`ClientBody`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

mod client;
pub use client::{ClientBody, ClientBodyError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the gateway writes: to clients and to upstreams.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Told how a response body moves towards the client: a chunk is handed out, and the
/// body is polled again once that chunk could be sent (see the listener's send timeout).
pub trait SendWatch: Send + Sync {
    fn polled(&self);
    fn chunk_sent(&self);
}

pin_project_lite::pin_project! {
    /// Counts the data bytes that pass through; `guard` is dropped with the body, which
    /// is when a streamed response is really over.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
        guard: Option<Box<dyn Send + Sync>>,
        watch: Option<Box<dyn SendWatch>>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            counter,
            guard: None,
            watch: None,
        }
    }

    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Reports each chunk and poll to `watch` (and drops it with the body).
    pub fn with_watch(mut self, watch: impl SendWatch + 'static) -> Self {
        self.watch = Some(Box::new(watch));
        self
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Some(watch) = this.watch.as_deref() {
            watch.polled();
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            if let Some(watch) = this.watch.as_deref()
                && !data.is_empty()
            {
                watch.chunk_sent();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
