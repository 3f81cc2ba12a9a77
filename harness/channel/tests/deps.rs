//! The channel crate is the pure core: it must not depend on an async runtime, a websocket
//! library, an AWS SDK or an HTTP stack (design: dependencies point down only). A textual check of
//! the `[dependencies]` table of this crate's manifest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

const FORBIDDEN_PREFIXES: &[&str] =
    &["tokio", "tungstenite", "tokio-tungstenite", "aws-", "aws_", "hyper", "getrandom", "rand"];

/// The dependency names of the `[dependencies]` table (not dev- or build-dependencies, and not
/// target-specific tables, which the crate does not use).
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            assert!(
                !line.starts_with("[target."),
                "target-specific dependency tables are not checked; extend this test: {line}"
            );
            if let Some(name) = line.strip_prefix("[dependencies.") {
                names.push(name.trim_end_matches(']').trim().to_owned());
            }
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                names.push(name.trim().trim_matches('"').to_owned());
            }
        }
    }
    names
}

fn forbidden(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    FORBIDDEN_PREFIXES.iter().any(|p| n.starts_with(p)) || n.contains("tungstenite")
}

#[test]
fn the_pure_core_has_no_io_dependencies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let deps = normal_dependencies(&manifest);
    assert!(deps.iter().any(|d| d == "ssm-wire"), "the [dependencies] table was not found: {deps:?}");
    let bad: Vec<&String> = deps.iter().filter(|d| forbidden(d)).collect();
    assert!(bad.is_empty(), "ssm-channel depends on {bad:?}");
}

/// The machine draws every random value from its seeded generator: the cipher crate comes
/// without its default features (which pull `getrandom` for OS nonces).
#[test]
fn the_cipher_comes_without_os_randomness() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let line =
        manifest.lines().find(|l| l.trim_start().starts_with("aes-gcm")).expect("aes-gcm is a dependency");
    assert!(line.contains("default-features = false"), "{line}");
    assert!(!line.contains("getrandom") && !line.contains("rand_core"), "{line}");
}

#[test]
fn the_check_recognises_forbidden_dependencies() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nserde = \"1\"\ntokio = { version = \"1\" }\naws-sdk-ssm = \"1\"\n\n[dev-dependencies]\nhyper = \"1\"\n\n[dependencies.tokio-tungstenite]\nversion = \"0.2\"\n";
    let deps = normal_dependencies(manifest);
    assert_eq!(deps, ["serde", "tokio", "aws-sdk-ssm", "tokio-tungstenite"]);
    let bad: Vec<&String> = deps.iter().filter(|d| forbidden(d)).collect();
    assert_eq!(bad, ["tokio", "aws-sdk-ssm", "tokio-tungstenite"]);
    assert!(!forbidden("serde") && !forbidden("hex") && !forbidden("aes-gcm"));
    assert!(forbidden("getrandom") && forbidden("rand_core"));
    assert!(forbidden("hyper-util") && forbidden("aws_smithy_types"));
}
