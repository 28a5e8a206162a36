//! The log read in bounded batches: each batch's complete lines are checked on their own (in
//! parallel) while the batch before is walked in order, so memory holds about two batches
//! whatever the log's size, and the hashing and the walk use the cores at once.

use std::fs::File;
use std::io::Read;

use super::Problem;
use super::line::{LineInfo, check_all};
use super::walk::Walk;

/// Bytes read per batch.
const BATCH: usize = 2 << 20;

/// What the stream saw besides the records.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// The file's size as read.
    pub(super) bytes: u64,
    /// Bytes after the last newline (a torn last line).
    pub(super) torn: u64,
    /// Whether the file holds at least one complete line.
    pub(super) complete_lines: bool,
}

/// Checks and walks every complete line of `file`, in order.
pub(super) fn walk_file(
    mut file: File,
    threads: usize,
    st: &mut Walk,
    problems: &mut Vec<Problem>,
) -> std::io::Result<Streamed> {
    let mut out = Streamed::default();
    let mut buf: Vec<u8> = Vec::with_capacity(2 * BATCH);
    let mut pending: Vec<Vec<LineInfo>> = Vec::new();
    let mut line_no = 0u64;
    loop {
        let n = (&mut file).take(BATCH as u64).read_to_end(&mut buf)?;
        out.bytes += n as u64;
        // `read_to_end` on a `take` stops short only at the end of the file.
        let eof = n < BATCH;
        let end = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
        if end == 0 && !eof {
            // One line longer than a batch: read on until it ends.
            continue;
        }
        out.complete_lines |= end > 0;
        let body = &buf[..end];
        let mut lines: Vec<&[u8]> = Vec::with_capacity(body.len() / 256);
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', body) {
            lines.push(&body[start..nl]);
            start = nl + 1;
        }
        let checked = std::thread::scope(|s| {
            let batch = &lines;
            let h = s.spawn(move || check_all(batch, threads));
            for info in pending.drain(..).flatten() {
                line_no += 1;
                st.step(line_no, info, problems);
            }
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        pending = checked;
        drop(lines);
        if eof {
            out.torn = (buf.len() - end) as u64;
            break;
        }
        buf.drain(..end);
    }
    for info in pending.into_iter().flatten() {
        line_no += 1;
        st.step(line_no, info, problems);
    }
    Ok(out)
}
