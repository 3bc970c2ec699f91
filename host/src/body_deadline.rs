//! One deadline for a whole request body: `[http] body_timeout_secs` from the first time the
//! body is read. Written by hand because tower-http's `RequestBodyTimeoutLayer` restarts its
//! timer at every frame, so a client trickling a byte every few seconds held a connection
//! (and, before it logs in, one of `max_connections`) for as long as its `Content-Length`
//! lasted.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body took longer than its deadline to arrive.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within its deadline")]
pub struct BodyDeadlineExceeded;

/// A request body that fails once `limit` has passed since it was first polled.
pub struct Deadline {
    inner: Body,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// `request` with its body under one deadline of `limit`.
    pub fn wrap(request: Request<Body>, limit: Duration) -> Request<Body> {
        request.map(|inner| {
            Body::new(Self {
                inner,
                limit,
                sleep: None,
            })
        })
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyDeadlineExceeded.into())));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
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
    use http_body_util::BodyExt as _;

    /// A body that yields one byte every `gap`, `left` more times.
    struct Trickle {
        left: usize,
        gap: Duration,
        sleep: Pin<Box<Sleep>>,
    }

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            ready!(self.sleep.as_mut().poll(cx));
            let next = Instant::now() + self.gap;
            self.sleep.as_mut().reset(next);
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    fn trickle(left: usize, gap: Duration) -> Request<Body> {
        let sleep = Box::pin(tokio::time::sleep(gap));
        Request::new(Body::new(Trickle { left, gap, sleep }))
    }

    #[tokio::test]
    async fn a_trickle_fails_at_the_deadline_though_every_gap_is_short() {
        let limit = Duration::from_millis(300);
        let req = Deadline::wrap(trickle(100, Duration::from_millis(20)), limit);
        let started = Instant::now();
        let err = req.into_body().collect().await.unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
        let took = started.elapsed();
        assert!(took >= limit && took < limit * 5, "{took:?}");
    }

    #[tokio::test]
    async fn a_body_within_its_deadline_arrives_whole() {
        let req = Deadline::wrap(
            trickle(5, Duration::from_millis(10)),
            Duration::from_secs(10),
        );
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"xxxxx");
    }
}
