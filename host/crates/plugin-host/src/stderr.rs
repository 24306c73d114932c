//! A bounded in-memory stderr for plugins. wasmtime-wasi's `MemoryOutputPipe` traps the
//! guest once full, which would turn a chatty plugin into a failing one; this pipe instead
//! keeps the most recent bytes (where a panic message lands) and drops older ones.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub(crate) struct StderrCapture {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    buf: Vec<u8>,
    capacity: usize,
    /// Total bytes ever written, so callers can take "what was written since mark".
    written: u64,
}

impl StderrCapture {
    pub(crate) fn new(capacity: usize) -> Self {
        StderrCapture { inner: Arc::new(Mutex::new(Inner { buf: Vec::new(), capacity, written: 0 })) }
    }

    fn push(&self, bytes: &[u8]) {
        let mut g = self.inner.lock().unwrap();
        g.written += bytes.len() as u64;
        let cap = g.capacity;
        if bytes.len() >= cap {
            g.buf.clear();
            g.buf.extend_from_slice(&bytes[bytes.len() - cap..]);
        } else {
            if g.buf.len() + bytes.len() > cap {
                let drop = g.buf.len() + bytes.len() - cap;
                g.buf.drain(..drop);
            }
            g.buf.extend_from_slice(bytes);
        }
    }

    /// A position to pass to [`StderrCapture::since`].
    pub(crate) fn mark(&self) -> u64 {
        self.inner.lock().unwrap().written
    }

    /// Text written after `mark` (as much of it as is still retained), lossily decoded.
    pub(crate) fn since(&self, mark: u64) -> String {
        let g = self.inner.lock().unwrap();
        let new = (g.written - mark).min(g.buf.len() as u64) as usize;
        String::from_utf8_lossy(&g.buf[g.buf.len() - new..]).into_owned()
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrCapture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrCapture {
    fn poll_write(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_reports_since_mark() {
        let s = StderrCapture::new(8);
        s.push(b"abc");
        let m = s.mark();
        s.push(b"defghijk");
        assert_eq!(s.since(m), "defghijk");
        s.push(b"XY");
        assert_eq!(s.since(m), "fghijkXY"); // older bytes dropped, capacity 8
        let m2 = s.mark();
        assert_eq!(s.since(m2), "");
        s.push(&[b'z'; 20]);
        assert_eq!(s.since(m2), "zzzzzzzz");
    }
}
