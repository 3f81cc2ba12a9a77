//! Byte offsets of the 120-byte header (protocol reference 2.1). The fault injector uses these to
//! corrupt single fields of an encoded frame.

use std::ops::Range;

/// Header bytes before the payload.
pub const HEADER_SIZE: usize = 120;
/// The value encoders write into HeaderLength: the offset of PayloadLength.
pub const HEADER_LENGTH_VALUE: u32 = 116;
/// Width of the MessageType field.
pub const MESSAGE_TYPE_WIDTH: usize = 32;

pub const HEADER_LENGTH: Range<usize> = 0..4;
pub const MESSAGE_TYPE: Range<usize> = 4..36;
pub const SCHEMA_VERSION: Range<usize> = 36..40;
pub const CREATED_DATE: Range<usize> = 40..48;
pub const SEQUENCE_NUMBER: Range<usize> = 48..56;
pub const FLAGS: Range<usize> = 56..64;
pub const MESSAGE_ID: Range<usize> = 64..80;
pub const PAYLOAD_DIGEST: Range<usize> = 80..112;
pub const PAYLOAD_TYPE: Range<usize> = 112..116;
pub const PAYLOAD_LENGTH: Range<usize> = 116..120;

/// Every header field with its name, in wire order.
pub const FIELDS: [(&str, Range<usize>); 10] = [
    ("HeaderLength", HEADER_LENGTH),
    ("MessageType", MESSAGE_TYPE),
    ("SchemaVersion", SCHEMA_VERSION),
    ("CreatedDate", CREATED_DATE),
    ("SequenceNumber", SEQUENCE_NUMBER),
    ("Flags", FLAGS),
    ("MessageId", MESSAGE_ID),
    ("PayloadDigest", PAYLOAD_DIGEST),
    ("PayloadType", PAYLOAD_TYPE),
    ("PayloadLength", PAYLOAD_LENGTH),
];
