//! `ssm-harness frame`: decode, inspect and build single data-channel frames.

mod decode;
mod encode;

use crate::exit::{self, Status};
use crate::output::Output;

/// The JSON field names of a frame, as the golden vectors spell them. `frame decode` writes
/// them and `frame encode` reads them.
pub mod fields {
    pub const HEADER_LENGTH: &str = "header_length";
    pub const MESSAGE_TYPE: &str = "message_type";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const CREATED_DATE_MS: &str = "created_date_ms";
    pub const SEQUENCE_NUMBER: &str = "sequence_number";
    pub const FLAGS: &str = "flags";
    pub const MESSAGE_ID: &str = "message_id";
    pub const PAYLOAD_DIGEST_HEX: &str = "payload_digest_hex";
    pub const PAYLOAD_TYPE: &str = "payload_type";
    pub const PAYLOAD_LENGTH: &str = "payload_length";
    pub const PAYLOAD_HEX: &str = "payload_hex";
    /// Accepted by `frame encode` instead of `payload_hex`.
    pub const PAYLOAD_UTF8: &str = "payload_utf8";
}

#[derive(Debug, clap::Args)]
#[command(subcommand_required = true, arg_required_else_help = true, after_help = exit::help(exit::VIOLATION_ANY))]
pub struct FrameArgs {
    #[command(subcommand)]
    command: FrameCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FrameCommand {
    /// Decode one frame and check it against the protocol requirements
    ///
    /// Prints every header field, the payload (typed where its type has a JSON or numeric
    /// model) and the requirement violations. The frame is read from --hex, from FILE, or
    /// from standard input; FILE and standard input may hold hex text or the raw bytes.
    #[command(verbatim_doc_comment, after_help = exit::help(exit::VIOLATION_DECODE))]
    Decode(decode::DecodeArgs),
    /// Build one frame from a JSON description of its fields
    ///
    /// Reads one JSON object with the field names that `frame decode` prints (and that the
    /// golden vectors' `input_fields` use) and writes the encoded frame. HeaderLength,
    /// PayloadLength and PayloadDigest are computed unless given.
    #[command(verbatim_doc_comment, after_help = exit::help(exit::VIOLATION_ENCODE))]
    Encode(encode::EncodeArgs),
}

/// Runs a `frame` subcommand.
pub fn run(args: &FrameArgs, out: &mut Output) -> anyhow::Result<Status> {
    match &args.command {
        FrameCommand::Decode(a) => decode::run(a, out),
        FrameCommand::Encode(a) => encode::run(a, out),
    }
}
