//! The request-header deadline (slowloris): every plain HTTP/1 connection's reads go through
//! `HeaderDeadline`, which fails them once a request's header block has taken too long, and
//! answers 400 itself to a malformed request line (the scan is [`crate::head`]'s).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{
    ALPN, Digest, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest,
    Ssl, Stream, TimingDigest, UniqueID, UniqueIDType, raw_connect::ProxyDigest, tls::SslDigest,
    tls::TlsRef,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::head::{HeadScan, Scanned};

/// Wraps the proxy so every connection's request headers must arrive in time.
pub(crate) struct HeaderDeadlineApp<A> {
    pub(crate) inner: Arc<A>,
    pub(crate) timeout: Duration,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // h2 frames are binary: its own flow control and idle limits apply instead.
        let stream: Stream = if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            stream
        } else {
            Box::new(HeaderDeadline::new(stream, self.timeout))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// A stream whose reads fail once a request's header block (up to the blank line) has taken
/// longer than the deadline since its first byte. Re-armed after each response. A header that
/// arrives in one read (the usual case) costs a scan and no clock read: the clock is read when a
/// block goes on past a read, and the timer is only made when a read has to wait mid-block.
///
/// The same scan checks the request line as RFC 9112 has it — `method SP target SP version`,
/// no control characters — and answers 400 itself, closing the connection, when it is not:
/// Pingora would percent-escape a control character, space or tab in the target and forward the
/// request (nginx answers 400 to all of them).
#[derive(Debug)]
struct HeaderDeadline {
    inner: Stream,
    timeout: Duration,
    /// When the current header block's first byte arrived.
    started: Option<tokio::time::Instant>,
    /// Wakes a read waiting in the middle of a header block at the deadline.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Looking for the end of a header block.
    in_header: bool,
    /// The current header block, as far as it has arrived.
    scan: HeadScan,
    /// A malformed request line was read: how much of the 400 has been written (then EOF).
    rejecting: Option<usize>,
}

/// The answer to a malformed request line; the connection closes after it.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\
Cache-Control: private, no-store\r\nConnection: close\r\n\r\n";

impl HeaderDeadline {
    fn new(inner: Stream, timeout: Duration) -> Self {
        HeaderDeadline {
            inner,
            timeout,
            started: None,
            sleep: None,
            in_header: true,
            scan: HeadScan::default(),
            rejecting: None,
        }
    }

    /// Writes the 400 for a malformed request line, then reads end (Pingora sees the client
    /// gone and closes the connection).
    fn poll_reject(&mut self, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let done = self.rejecting.unwrap_or(usize::MAX);
            if done < BAD_REQUEST.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &BAD_REQUEST[done..]) {
                    Poll::Ready(Ok(0)) => self.rejecting = Some(usize::MAX),
                    Poll::Ready(Ok(n)) => self.rejecting = Some(done + n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            } else if done == BAD_REQUEST.len() {
                match Pin::new(&mut self.inner).poll_flush(cx) {
                    Poll::Ready(r) => {
                        self.rejecting = Some(usize::MAX);
                        r?;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// `data` is about to be written: when a final (non-1xx) response starts, the next bytes
    /// read begin a new request.
    fn writing(&mut self, data: &[u8]) {
        if !self.in_header
            && data.starts_with(b"HTTP/1.")
            && data.get(9..10).is_none_or(|c| c != b"1")
        {
            self.in_header = true;
            self.scan = HeadScan::default();
            self.sleep = None;
        }
    }

    fn expired() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request headers not received in time",
        )
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.rejecting.is_some() {
            return this.poll_reject(cx);
        }
        if let Some(start) = this.started {
            if start.elapsed() > this.timeout {
                return Poll::Ready(Err(Self::expired()));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if this.in_header => {
                let new = &buf.filled()[before..];
                let first_bytes = !new.is_empty() && this.started.is_none();
                match this.scan.feed(new) {
                    Scanned::Malformed => {
                        tracing::debug!("malformed request line: answering 400");
                        buf.set_filled(before);
                        this.in_header = false;
                        this.started = None;
                        this.sleep = None;
                        this.rejecting = Some(0);
                        return this.poll_reject(cx);
                    }
                    Scanned::Ended => {
                        this.in_header = false;
                        this.started = None;
                        this.sleep = None;
                    }
                    // The block's first bytes arrived in this read and it goes on: its clock
                    // starts now. A block whole in one read (the usual case) never reads it.
                    Scanned::More if first_bytes => {
                        this.started = Some(tokio::time::Instant::now());
                    }
                    Scanned::More => {}
                }
            }
            Poll::Pending if this.in_header => {
                if let Some(start) = this.started {
                    let deadline = start + this.timeout;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Self::expired()));
                    }
                }
            }
            _ => {}
        }
        r
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writing(data);
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match bufs.iter().find(|b| !b.is_empty()) {
            // The same check as `poll_write`, on what would be written first.
            Some(first) => {
                self.writing(first);
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            None => Poll::Ready(Ok(0)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}
impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}
impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}
impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}
impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, d: ProxyDigest) {
        self.inner.set_proxy_digest(d)
    }
}
impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.set_socket_digest(d)
    }
    // The wrapped stream keeps the session's digest: it is made of the wrapped stream's facts.
    fn take_session_digest(&mut self) -> Option<Box<Digest>> {
        self.inner.take_session_digest()
    }
    fn keep_session_digest(&mut self, d: Box<Digest>) {
        self.inner.keep_session_digest(d)
    }
}
#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use pingora::http::ResponseHeader;
    use pingora::protocols::http::v1::server::HttpSession;
    use pingora::protocols::l4::stream::Stream as L4;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected loopback pair: the accepted end as Pingora's listener hands it on (with its
    /// socket digest), and the client's end.
    async fn accepted() -> (L4, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let fd = server.as_raw_fd();
        let mut l4 = L4::from(server);
        l4.set_socket_digest(SocketDigest::from_raw_fd(fd));
        (l4, client)
    }

    /// Serve one request on `stream` (kept alive), answer 204, and give the stream back with
    /// what the session's digest held: its layers' timings (this test adds a mark to them) and
    /// the client address it names.
    async fn one_request(stream: Stream) -> (Stream, usize, String) {
        let mut s = HttpSession::new(stream);
        s.read_request().await.unwrap().expect("a request");
        s.set_server_keepalive(Some(60));
        let layers = s.digest().timing_digest.len();
        s.digest_mut().timing_digest.push(None);
        let client = s.client_addr().map(|a| a.to_string()).unwrap_or_default();
        let resp = ResponseHeader::build(204, None).unwrap();
        s.write_response_header(Box::new(resp)).await.unwrap();
        s.finish_body().await.unwrap();
        let reusable = s.reuse().await.unwrap().expect("kept alive");
        (reusable.into_parts().0, layers, client)
    }

    /// A kept-alive connection's HTTP/1 sessions (through the header-deadline wrapper) share the
    /// digest the first one made — not a new one per request — and a digest is of the socket
    /// the stream stands for: when that changes, the next session's digest names the new peer.
    #[tokio::test]
    async fn a_kept_alive_connections_sessions_share_one_digest_of_its_own_socket() {
        let (l4, mut client) = accepted().await;
        let stream: Stream = Box::new(HeaderDeadline::new(Box::new(l4), Duration::from_secs(10)));
        let me = client.local_addr().unwrap().to_string();
        let mut answers = vec![0u8; 4096];
        let mut stream = stream;
        let mut seen = Vec::new();
        for _ in 0..3 {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                .await
                .unwrap();
            let (back, layers, peer) = one_request(stream).await;
            let n = client.read(&mut answers).await.unwrap();
            assert!(answers[..n].starts_with(b"HTTP/1.1 204"));
            assert_eq!(peer, me, "the client's address, from the digest");
            seen.push(layers);
            stream = back;
        }
        // One TCP layer, then the mark each session before added: the same digest.
        assert_eq!(seen, [1, 2, 3], "one digest for the connection's requests");

        // The same stream told of another socket (as a listener or connector sets it): the
        // digest kept before is not handed out again.
        let (other, other_client) = accepted().await;
        let other_me = other_client.local_addr().unwrap().to_string();
        stream.set_socket_digest(SocketDigest::from_raw_fd(other.as_raw_fd()));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let (_, _, peer) = one_request(stream).await;
        assert_eq!(
            peer, other_me,
            "the digest made again from the new socket's facts"
        );
        drop(other);
    }
}
