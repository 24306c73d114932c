//! Reading a journal line by line for the sinks and the readers beside them: each whole line
//! (ending in a newline; a torn last line is skipped) with its index, a missing journal read as
//! empty.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::error::SinkError;

pub(crate) fn for_each_line(path: &Path, mut f: impl FnMut(u64, &[u8])) -> Result<(), SinkError> {
    let io = |source| SinkError::Io { path: path.to_path_buf(), source };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut index = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            f(index, &buf);
        }
        index += 1;
    }
}
