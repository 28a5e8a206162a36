//! The `file` sink: appends each record's line to another file (another disk, a mounted share).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::{DeliverCtx, Pending, Sink, SinkError};

pub struct FileSink {
    name: String,
    path: PathBuf,
}

impl FileSink {
    pub fn new(name: String, path: PathBuf) -> Self {
        FileSink { name, path }
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Pending], _ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        let transient = |e: std::io::Error| SinkError::Transient {
            message: format!("{}: {e}", self.path.display()),
            retry_after: None,
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(transient)?;
        let mut buf = String::new();
        for p in batch {
            buf.push_str(&p.line);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes()).map_err(transient)?;
        f.sync_data().map_err(transient)
    }
}
