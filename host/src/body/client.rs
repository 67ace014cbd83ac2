//! The client's request body as every later stage reads it: counted for the access log,
//! cut off at the route's size limit, and given a deadline between reads.
//!
//! The deadline is nginx's `client_body_timeout` (and, for HTTP/2 streams, the request
//! half of Envoy's `stream_idle_timeout`): a client that sends its head and then stalls
//! would otherwise hold a connection slot, a plugin permit and an upstream connection
//! for as long as it likes. The timer runs only while the body is waited on, and starts
//! again after each frame, so a slow but steady upload is never cut.
//!
//! Failures are typed ([`ClientBodyError`]) so the request path can tell the client's
//! fault from the upstream's wherever the body is read: while buffered for plugins, or
//! while streamed to the upstream (where hyper hands it back inside its own error).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// Why the client's body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the client sent no body bytes for {0:?}")]
    Timeout(Duration),
    #[error("the request body is larger than allowed")]
    TooLarge,
    /// Invalid chunked framing, or the client closed the connection mid-body.
    #[error("the request body could not be read")]
    Malformed(#[source] super::BoxError),
}

impl ClientBodyError {
    /// The answer the client gets, decided here so both places that read the body agree.
    pub fn to_gateway_error(&self) -> GatewayError {
        match self {
            Self::Timeout(_) => GatewayError::BodyTimeout,
            Self::TooLarge => GatewayError::BodyTooLarge,
            Self::Malformed(_) => GatewayError::BadBody,
        }
    }

    /// The client-body failure somewhere in `e`'s source chain, if that is what it is.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        std::iter::successors(Some(e), |err| err.source()).find_map(|err| err.downcast_ref())
    }
}

pin_project_lite::pin_project! {
    /// A client's request body under the route's limits.
    #[derive(Debug)]
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
        // Bytes still allowed.
        remaining: u64,
        read_timeout: Duration,
        // Made the first time the body has to be waited on, then reset after progress.
        timer: Option<Pin<Box<Sleep>>>,
        // A frame arrived since the timer was last armed.
        progressed: bool,
    }
}

impl<B> ClientBody<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>, max_bytes: u64, read_timeout: Duration) -> Self {
        Self {
            inner,
            counter,
            remaining: max_bytes,
            read_timeout,
            timer: None,
            progressed: false,
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<super::BoxError>,
{
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.progressed = true;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    this.counter.fetch_add(len, Ordering::Relaxed);
                    if len > *this.remaining {
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge)));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(ClientBodyError::Malformed(e.into()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = Instant::now() + *this.read_timeout;
                let timer = match this.timer {
                    Some(timer) => {
                        if std::mem::take(this.progressed) {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => {
                        *this.progressed = false;
                        this.timer
                            .insert(Box::pin(tokio::time::sleep_until(deadline)))
                    }
                };
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(ClientBodyError::Timeout(*this.read_timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_stalled_body_times_out_after_what_it_sent_is_read() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .expect("send");
        let counter = Arc::new(AtomicU64::new(0));
        let mut body = ClientBody::new(
            StreamBody::new(tokio_stream_from(rx)),
            Arc::clone(&counter),
            1024,
            Duration::from_millis(50),
        );
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        assert_eq!(counter.load(Ordering::Relaxed), 3);
        // The sender stays alive and silent.
        match body.frame().await {
            Some(Err(ClientBodyError::Timeout(_))) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(tx);
    }

    #[tokio::test]
    async fn bytes_past_the_limit_are_refused() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(2);
        tx.send(Ok(Frame::data(Bytes::from_static(b"12345"))))
            .await
            .expect("send");
        tx.send(Ok(Frame::data(Bytes::from_static(b"678"))))
            .await
            .expect("send");
        drop(tx);
        let mut body = ClientBody::new(
            StreamBody::new(tokio_stream_from(rx)),
            Arc::new(AtomicU64::new(0)),
            6,
            Duration::from_secs(5),
        );
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        assert!(matches!(
            body.frame().await,
            Some(Err(ClientBodyError::TooLarge))
        ));
    }

    /// An mpsc receiver as a stream, without pulling in tokio-stream for two tests.
    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
