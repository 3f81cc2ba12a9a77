//! `cargo +nightly fuzz run roundtrip`; the body lives in `ssm_wire::fuzz` so that `cargo test`
//! replays the committed corpus through the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssm_wire::fuzz::roundtrip_body(data));
