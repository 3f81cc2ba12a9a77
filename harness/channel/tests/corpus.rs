//! Replays the committed `channel_ops` fuzz inputs on stable: every file of
//! `fuzz/corpus/channel_ops/` goes through [`ssm_channel::fuzz::channel_ops_body`], the body the
//! cargo-fuzz target calls, so an input that once broke the machine keeps failing `cargo test`.
//!
//! A missing corpus directory, or one without `seed-*` files, is a failure, not a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ssm_channel::fuzz::channel_ops_body;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/channel_ops")
}

#[test]
fn channel_ops_corpus_replays_without_panics() {
    let dir = corpus_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    let seeds = files
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")))
        .count();
    assert!(seeds > 0, "corpus directory {} has no seed-* files", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        let data = fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| channel_ops_body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    eprintln!("channel_ops: replayed {} inputs ({seeds} seeds)", files.len());
    assert!(failed.is_empty(), "{} input(s) panicked:\n  {}", failed.len(), failed.join("\n  "));
}

/// A smoke run on stable: pseudo-random inputs through the body, so that `cargo test` exercises
/// it beyond the committed seeds.
#[test]
fn channel_ops_body_survives_pseudo_random_inputs() {
    let mut state = 0x5eed_u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in 0..300 {
        let len = (next() % 1024) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if catch_unwind(AssertUnwindSafe(|| channel_ops_body(&data))).is_err() {
            panic!("input {i} panicked: {}", hex_string(&data));
        }
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
