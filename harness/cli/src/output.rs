//! Where results and diagnostics go: data to stdout, diagnostics to stderr.
//!
//! A closed stdout (the reader of a pipe went away) is not an error: further output is dropped
//! and the command still exits with its verdict.

use std::fmt;
use std::io::{self, Write};

/// Writes one diagnostic line to stderr, prefixed with the program name. Never fails: if stderr
/// itself is gone there is nowhere left to complain to.
pub fn write_diag(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "ssm-harness: {args}");
}

/// `diag!("...", args)`: a diagnostic line on stderr.
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::output::write_diag(format_args!($($arg)*))
    };
}
pub(crate) use diag;

/// The data output of a command.
pub struct Output {
    sink: Box<dyn Write>,
    closed: bool,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").field("closed", &self.closed).finish_non_exhaustive()
    }
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Self {
        Output { sink: Box::new(io::stdout()), closed: false }
    }

    /// Writes `bytes` and flushes. A broken pipe marks the output closed and is not reported.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.sink.write_all(bytes).and_then(|()| self.sink.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}
