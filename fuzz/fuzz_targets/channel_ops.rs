//! `cargo +nightly fuzz run channel_ops`; the body lives in `ssm_channel::fuzz` so that
//! `cargo test -p ssm-channel --test corpus` replays the committed corpus through the same code on
//! stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssm_channel::fuzz::channel_ops_body(data));
