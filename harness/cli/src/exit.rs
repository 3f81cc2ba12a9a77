//! Exit statuses shared by every command, and the help text that documents them.

/// The command did what was asked and found nothing wrong.
pub const SUCCESS: u8 = 0;
/// The input breaks a protocol requirement, or is not a decodable frame at all.
pub const VIOLATION: u8 = 1;
/// The command could not do its job: bad arguments, bad hex, unreadable input, a frame
/// description that is not a JSON object of the known fields, or an I/O error.
pub const USAGE: u8 = 2;

/// `run`: the harness itself failed (a scenario ended in ERROR), so the run says nothing
/// reliable about the system under test.
pub const HARNESS: u8 = 3;

/// The verdict of a command that ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit with [`SUCCESS`].
    Success,
    /// Exit with [`VIOLATION`].
    Violation,
    /// Exit with [`HARNESS`].
    Harness,
    /// Exit with this status (`client`: the remote command's exit code).
    Exit(u8),
}

impl Status {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Status::Success => SUCCESS,
            Status::Violation => VIOLATION,
            Status::Harness => HARNESS,
            Status::Exit(c) => c,
        }
    }
}

/// The "Exit status" section appended to the help of a command; `violation` says what exit
/// status 1 means for it.
pub fn help(violation: &str) -> String {
    format!(
        "Exit status:\n  \
         {SUCCESS}  success\n  \
         {VIOLATION}  {violation}; the requirement IDs are on stderr\n  \
         {USAGE}  usage or input error: bad arguments, unreadable or malformed input"
    )
}

/// What exit status 1 means for any command.
pub const VIOLATION_ANY: &str = "a protocol requirement is broken";
/// What exit status 1 means for `frame decode`.
pub const VIOLATION_DECODE: &str = "the frame breaks a requirement or cannot be decoded";
/// What exit status 1 means for `frame encode`.
pub const VIOLATION_ENCODE: &str = "the frame would break a requirement and was not written";
