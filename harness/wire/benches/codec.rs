//! Codec throughput: for payloads of 64 B, 1 KiB and 64 KiB, `encode`, `decode+verify` (decode
//! and `validate()`, as a receiver does before it acknowledges) and raw SHA-256 over the same
//! payload, which bounds both. Every benchmark of a group reports `Throughput::Bytes` of the
//! payload, so the throughput ratio of two benchmarks is the inverse ratio of their times.
//!
//! After the groups run, one summary line per size gives the ratio of decode+verify to raw SHA-256
//! throughput, read from criterion's estimates of this run. A ratio near 1 means that decoding
//! and validation cost little beyond the digest they must compute. The ratios are reported, not
//! asserted.
//!
//! `cargo bench -p ssm-wire --bench codec` (criterion options after `--`, e.g.
//! `-- --measurement-time 2`).

#![allow(clippy::print_stdout)] // the summary is the point of a benchmark binary

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use sha2::Digest as _;
use ssm_wire::{decode, Frame, HeaderFlags, MessageType, PayloadType};

const SIZES: [(&str, usize); 3] = [("64B", 64), ("1KiB", 1024), ("64KiB", 64 * 1024)];

const ENCODE: &str = "encode";
const DECODE_VERIFY: &str = "decode+verify";
const SHA256: &str = "sha256";

fn group_name(label: &str) -> String {
    format!("frame_{label}")
}

/// A stream frame whose payload is `len` bytes of a fixed pseudo-random sequence.
fn frame(len: usize) -> Frame {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let payload = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Frame {
        message_type: MessageType::OutputStreamData,
        schema_version: 1,
        created_date_ms: 1_700_000_000_000,
        sequence_number: 42,
        flags: HeaderFlags::NONE,
        message_id: uuid::Uuid::from_u128(0xdd01_e56b_ff48_483e_a508_b5f0_73f3_1b16),
        payload_type: PayloadType::OUTPUT,
        payload,
    }
}

fn benches(c: &mut Criterion) {
    for (label, len) in SIZES {
        let frame = frame(len);
        let bytes = frame.encode().expect("benchmark frame is valid");
        assert_eq!(
            decode(&bytes).map(|w| w.validate()),
            Ok(Vec::new()),
            "benchmark frame must validate clean"
        );

        let mut g = c.benchmark_group(group_name(label));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(ENCODE), |b| {
            b.iter(|| black_box(&frame).encode().expect("valid"))
        });
        g.bench_function(BenchmarkId::from_parameter(DECODE_VERIFY), |b| {
            b.iter(|| {
                let w = decode(black_box(&bytes)).expect("decodes");
                let violations = w.validate();
                black_box((w.sequence_number, w.payload.len(), violations.is_empty()))
            })
        });
        g.bench_function(BenchmarkId::from_parameter(SHA256), |b| {
            b.iter(|| -> [u8; 32] { sha2::Sha256::digest(black_box(&frame.payload)).into() })
        });
        g.finish();
    }
}

/// Where criterion writes its reports, found the way criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(v["target_directory"].as_str()?).join("criterion"))
    });
    from_metadata.unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Mean time per iteration (ns) that criterion estimated for `group/bench` in this run; `None`
/// if the benchmark did not run in this process (filtered out, or test mode).
fn mean_ns(home: &Path, group: &str, bench: &str, started: SystemTime) -> Option<f64> {
    let path = home.join(group).join(bench).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified + Duration::from_secs(1) < started {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary(started: SystemTime) {
    let home = criterion_home();
    println!("\nsummary (throughput relative to raw SHA-256 of the same payload; higher is better):");
    for (label, len) in SIZES {
        let group = group_name(label);
        let get = |bench| mean_ns(&home, &group, bench, started);
        match (get(SHA256), get(DECODE_VERIFY), get(ENCODE)) {
            (Some(sha), Some(dv), Some(enc)) => {
                let mib_s = |ns: f64| len as f64 / ns * 1e9 / (1024.0 * 1024.0);
                println!(
                    "  {label:>6}: decode+verify {:.3}x SHA-256 ({:.0} vs {:.0} MiB/s), encode {:.3}x",
                    sha / dv,
                    mib_s(dv),
                    mib_s(sha),
                    sha / enc,
                );
            }
            _ => println!("  {label:>6}: not measured in this run (filtered out or test mode)"),
        }
    }
}

fn main() {
    let started = SystemTime::now();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    summary(started);
}
