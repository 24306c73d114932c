//! An answer's body read on demand: framed by Content-Length, chunked encoding or the end of
//! the connection, the connection handed back to its endpoint's pool at the body's end.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Conn, Endpoint, ErrorKind, Http1Error, MAX_LINE_BYTES};

/// How the rest of a body is delimited.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk: trailer lines up to an empty one.
    Trailers,
}

/// The body of an answer, read on demand; the connection goes back to the pool when the body
/// has been read to its end (and is closed if the reader is dropped before).
pub(crate) struct BodyReader {
    pub(super) conn: Option<Conn>,
    pub(super) framing: Framing,
    pub(super) reusable: bool,
    pub(super) deadline: Instant,
    pub(super) endpoint: Arc<Endpoint>,
}

impl BodyReader {
    /// The next piece of the body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Http1Error> {
        let authority: &str = &self.endpoint.authority;
        let Some(conn) = self.conn.as_mut() else { return Ok(None) };
        let cut_short = |what: &str| Http1Error::new(ErrorKind::Connection, format!("{authority} closed the connection {what}"));
        loop {
            match self.framing {
                Framing::Length(0) => break,
                Framing::Length(left) => {
                    if conn.buf.is_empty() && conn.read_more(self.deadline, authority).await? == 0 {
                        return Err(cut_short(&format!("{left} bytes before the end of the body")));
                    }
                    let take = left.min(conn.buf.len() as u64);
                    self.framing = Framing::Length(left - take);
                    return Ok(Some(conn.buf.split_to(take as usize).freeze()));
                }
                Framing::UntilClose => {
                    if conn.buf.is_empty() && conn.read_more(self.deadline, authority).await? == 0 {
                        break;
                    }
                    return Ok(Some(conn.buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if conn.buf.is_empty() && conn.read_more(self.deadline, authority).await? == 0 {
                        return Err(cut_short("inside a chunk of the body"));
                    }
                    let take = left.min(conn.buf.len() as u64);
                    self.framing = Framing::Chunked(if take == left { Chunk::DataEnd } else { Chunk::Data(left - take) });
                    return Ok(Some(conn.buf.split_to(take as usize).freeze()));
                }
                Framing::Chunked(state) => {
                    let Some(end) = conn.buf.windows(2).position(|w| w == b"\r\n") else {
                        if conn.buf.len() > MAX_LINE_BYTES {
                            return Err(Http1Error::new(ErrorKind::Connection, format!("{authority} sent a chunk line over {MAX_LINE_BYTES} bytes")));
                        }
                        if conn.read_more(self.deadline, authority).await? == 0 {
                            return Err(cut_short("before the end of a chunked body"));
                        }
                        continue;
                    };
                    let line = conn.buf.split_to(end + 2);
                    let line = &line[..end];
                    self.framing = match state {
                        Chunk::DataEnd if line.is_empty() => Framing::Chunked(Chunk::Size),
                        Chunk::DataEnd => return Err(Http1Error::new(ErrorKind::Connection, format!("{authority} sent a chunk longer than its size"))),
                        Chunk::Size => match chunk_size(line) {
                            Some(0) => Framing::Chunked(Chunk::Trailers),
                            Some(n) => Framing::Chunked(Chunk::Data(n)),
                            None => {
                                return Err(Http1Error::new(
                                    ErrorKind::Connection,
                                    format!("{authority} sent an invalid chunk size {:?}", String::from_utf8_lossy(line)),
                                ))
                            }
                        },
                        Chunk::Trailers if line.is_empty() => Framing::Length(0),
                        Chunk::Trailers => Framing::Chunked(Chunk::Trailers),
                        Chunk::Data(_) => unreachable!("handled above"),
                    };
                }
            }
        }
        // The end of the body: the connection is free again (unless the server said otherwise
        // or sent more than the answer).
        let conn = self.conn.take().expect("checked above");
        if self.reusable && conn.buf.is_empty() {
            self.endpoint.checkin(conn);
        }
        Ok(None)
    }
}

/// The size of a chunk from its line (hex digits, then optional `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|b| *b == b';').next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}
