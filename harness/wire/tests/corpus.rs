//! Replays the committed fuzz inputs on stable: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the body its cargo-fuzz target calls, so a crash
//! found once by the fuzzer keeps failing `cargo test` until it is fixed.
//!
//! A missing corpus directory, or one without seed files, is a failure, not a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Regular files of `dir`, sorted, skipping only README files. `None` if `dir` does not exist.
fn inputs(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("README")))
        .collect();
    files.sort();
    Some(files)
}

/// Runs every input through `body`, collecting failures instead of stopping at the first one.
fn replay(target: &str, body: fn(&[u8])) {
    let corpus_dir = fuzz_dir().join("corpus").join(target);
    let corpus =
        inputs(&corpus_dir).unwrap_or_else(|| panic!("corpus directory {} is missing", corpus_dir.display()));
    let seeds = corpus
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")))
        .count();
    assert!(seeds > 0, "corpus directory {} has no seed-* files", corpus_dir.display());

    let regressions_dir = fuzz_dir().join("regressions").join(target);
    let regressions = inputs(&regressions_dir)
        .unwrap_or_else(|| panic!("regressions directory {} is missing", regressions_dir.display()));

    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    eprintln!(
        "{target}: replayed {} inputs ({} corpus, {seeds} of them seeds; {} regressions)",
        corpus.len() + regressions.len(),
        corpus.len(),
        regressions.len()
    );
    assert!(failed.is_empty(), "{target}: {} input(s) panicked:\n  {}", failed.len(), failed.join("\n  "));
}

#[test]
fn decode_corpus() {
    replay("decode", ssm_wire::fuzz::decode_body);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", ssm_wire::fuzz::roundtrip_body);
}

#[test]
fn control_json_corpus() {
    replay("control_json", ssm_wire::fuzz::control_json_body);
}

/// The decode corpus starts from the golden vectors: every vector that has bytes is a seed.
#[test]
fn decode_corpus_holds_every_golden_vector() {
    let doc: serde_json::Value = serde_json::from_str(include_str!("vectors/frames.json")).unwrap();
    let dir = fuzz_dir().join("corpus/decode");
    let seeds: Vec<Vec<u8>> = inputs(&dir)
        .unwrap_or_else(|| panic!("corpus directory {} is missing", dir.display()))
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let Some(h) = v["hex"].as_str() else { continue };
        let bytes = hex::decode(h).unwrap();
        assert!(seeds.contains(&bytes), "golden vector {} is not in {}", v["name"], dir.display());
        n += 1;
    }
    assert_eq!(n, 16, "vectors with bytes");
}
