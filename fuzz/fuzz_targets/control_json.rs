//! `cargo +nightly fuzz run control_json`; the body lives in `ssm_wire::fuzz` so that `cargo test`
//! replays the committed corpus through the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssm_wire::fuzz::control_json_body(data));
