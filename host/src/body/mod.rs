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

pin_project_lite::pin_project! {
    /// Counts the data bytes that pass through; `guard` is dropped with the body, which
    /// is when a streamed response is really over.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
        guard: Option<Box<dyn Send + Sync>>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            counter,
            guard: None,
        }
    }

    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.guard = Some(Box::new(guard));
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
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
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
