//! Reading command input: a FILE, `-` or standard input, bounded in size, and hex text.

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};

/// The largest input any command reads: 16 MiB.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Where a command reads its input from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input; `explicit` when it was asked for with `-`.
    Stdin { explicit: bool },
    /// A file.
    File(PathBuf),
}

impl Source {
    /// The source named by an optional FILE argument: nothing or `-` is standard input.
    pub fn from_arg(file: Option<&Path>) -> Self {
        match file {
            None => Source::Stdin { explicit: false },
            Some(p) if p.as_os_str() == "-" => Source::Stdin { explicit: true },
            Some(p) => Source::File(p.to_path_buf()),
        }
    }

    /// Reads the whole input, refusing more than [`MAX_INPUT_BYTES`]. Standard input is not
    /// read from a terminal unless it was asked for explicitly with `-`.
    pub fn read(&self) -> Result<Vec<u8>, InputError> {
        match self {
            Source::Stdin { explicit } => {
                let stdin = io::stdin();
                if !explicit && stdin.is_terminal() {
                    return Err(InputError::StdinIsTerminal);
                }
                read_bounded(stdin.lock(), self)
            }
            Source::File(path) => {
                let file =
                    File::open(path).map_err(|source| InputError::Io { what: self.to_string(), source })?;
                read_bounded(file, self)
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin { .. } => f.write_str("standard input"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn read_bounded(reader: impl Read, source: &Source) -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|source_err| InputError::Io { what: source.to_string(), source: source_err })?;
    check_size(&source.to_string(), buf.len())?;
    Ok(buf)
}

/// Refuses an input longer than [`MAX_INPUT_BYTES`].
pub fn check_size(what: &str, len: usize) -> Result<(), InputError> {
    if len > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { what: what.to_owned() });
    }
    Ok(())
}

/// Why input could not be read.
#[derive(Debug)]
pub enum InputError {
    /// Opening or reading failed.
    Io { what: String, source: io::Error },
    /// More than [`MAX_INPUT_BYTES`].
    TooLarge { what: String },
    /// No input was named and standard input is a terminal.
    StdinIsTerminal,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The I/O error itself is the `source`, shown by whoever prints the chain.
            InputError::Io { what, .. } => write!(f, "cannot read {what}"),
            InputError::TooLarge { what } => {
                write!(f, "{what} is larger than the {} MiB input limit", MAX_INPUT_BYTES / (1024 * 1024))
            }
            InputError::StdinIsTerminal => {
                f.write_str("no input: give a FILE, or `-` to read standard input from the terminal")
            }
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why text is not hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// A byte that is neither a hex digit nor white space, at a byte offset of the text.
    InvalidDigit { offset: usize, byte: u8 },
    /// An odd number of hex digits.
    OddDigits { digits: usize },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HexError::InvalidDigit { offset, byte } if byte.is_ascii_graphic() => {
                write!(f, "invalid hex digit {:?} at offset {offset}", char::from(byte))
            }
            HexError::InvalidDigit { offset, byte } => {
                write!(f, "invalid hex digit (byte 0x{byte:02x}) at offset {offset}")
            }
            HexError::OddDigits { digits } => {
                write!(f, "odd number of hex digits ({digits}); every byte needs two")
            }
        }
    }
}

impl std::error::Error for HexError {}

/// The text after leading white space and an optional `0x`/`0X` prefix, with its offset.
fn strip_prefix(text: &[u8]) -> (usize, &[u8]) {
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let rest = &text[start..];
    match rest {
        [b'0', b'x' | b'X', tail @ ..] => (start + 2, tail),
        _ => (start, rest),
    }
}

/// True when `data` is hex text: hex digits and white space, after an optional `0x` prefix.
pub fn looks_like_hex(data: &[u8]) -> bool {
    strip_prefix(data).1.iter().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
}

/// Parses hex text. White space anywhere and a leading `0x` are allowed; digits of either case.
pub fn parse_hex(text: &[u8]) -> Result<Vec<u8>, HexError> {
    let (base, body) = strip_prefix(text);
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<u8> = None;
    let mut digits = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if b.is_ascii_whitespace() {
            continue;
        }
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(HexError::InvalidDigit { offset: base + i, byte: b }),
        };
        digits += 1;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(HexError::OddDigits { digits });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_prefix_case_and_white_space() {
        assert_eq!(parse_hex(b"  0xDE ad\n be\tEF \n"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(parse_hex(b"0X00"), Ok(vec![0]));
        assert_eq!(parse_hex(b""), Ok(vec![]));
        assert_eq!(parse_hex(b" \n"), Ok(vec![]));
    }

    #[test]
    fn hex_errors_name_the_place() {
        assert_eq!(parse_hex(b"00 0g"), Err(HexError::InvalidDigit { offset: 4, byte: b'g' }));
        assert_eq!(parse_hex(b" 0x0x00"), Err(HexError::InvalidDigit { offset: 4, byte: b'x' }));
        assert_eq!(parse_hex(b"abc"), Err(HexError::OddDigits { digits: 3 }));
        assert_eq!(
            HexError::InvalidDigit { offset: 1, byte: 0xc3 }.to_string(),
            "invalid hex digit (byte 0xc3) at offset 1"
        );
        assert_eq!(
            HexError::InvalidDigit { offset: 0, byte: b'z' }.to_string(),
            "invalid hex digit 'z' at offset 0"
        );
    }

    #[test]
    fn hex_detection() {
        assert!(looks_like_hex(b"0x00ff\n"));
        assert!(looks_like_hex(b"00 74 69\r\n"));
        assert!(!looks_like_hex(b"\x00\x00\x00\x74input_stream_data"));
        assert!(!looks_like_hex(b"00g"));
    }

    #[test]
    fn sources() {
        assert_eq!(Source::from_arg(None), Source::Stdin { explicit: false });
        assert_eq!(Source::from_arg(Some(Path::new("-"))), Source::Stdin { explicit: true });
        assert_eq!(Source::from_arg(Some(Path::new("f.bin"))), Source::File(PathBuf::from("f.bin")));
        assert!(check_size("x", MAX_INPUT_BYTES).is_ok());
        assert!(check_size("x", MAX_INPUT_BYTES + 1).is_err());
    }
}
