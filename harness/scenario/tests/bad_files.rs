//! Malformed scenario files: each must be refused with the key, the line and a message (and,
//! where there is one, the hint) that point at the mistake. Also: every committed scenario
//! loads, ids are unique, and the loader never panics on arbitrary text.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// A scenario error is big and built once per file; the helpers return it unboxed like the API.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ssm_scenario::{load_dir, parse_scenario, ScenarioError};

/// The smallest valid scenario (four lines); the cases append to it.
const BASE: &str = "id = \"x-001\"\ntitle = \"t\"\nrequirements = [\"ORD-001\"]\nunder_test = \"client\"\n";

const VALID: &str = r##"id = "x-001"
title = "A valid scenario with every table"
description = "used as the seed of the mutation test"
tags = ["a", "b"]
requirements = ["RES-003", "ORD-001"]
under_test = "client"
peer = "agent-2024"
session = "shell"
seed = 7
duration_ms = 60000

[link]
latency_ms = 30
jitter_ms = 5
loss = 0.01

[service]
publication = true
idle_timeout_ms = 50000
terminated_resume = "null_token"

[agent_app]
kind = "echo"
prompt = "# "

[[faults.frames]]
name = "lose an output"
when = { direction = "to_client", message_type = "output_stream_data", nth = 2 }
action = { kind = "drop" }

[[faults.timed]]
at_ms = 5000
action = { kind = "partition", for_ms = 1000 }

[[faults.api]]
op = "resume_session"
nth = 1
action = { kind = "error", error = "throttled" }

[[step]]
do = "wait_for"
event = "ready"

[[step]]
do = "send"
from = "client"
text = "ls\r"
repeat = 3

[[step]]
do = "resume"

[expect]
stream_intact = true
end = "running"
"##;

fn parse(text: &str) -> Result<ssm_scenario::Scenario, ScenarioError> {
    parse_scenario(Path::new("scenarios/x/x-001.toml"), text)
}

fn bad(text: &str) -> ScenarioError {
    match parse(text) {
        Ok(s) => panic!("accepted a bad file:\n{text}\nas {s:?}"),
        Err(e) => e,
    }
}

/// Asserts the key, the line, a fragment of the message and (if given) of the hint.
#[track_caller]
fn assert_err(e: &ScenarioError, key: &str, line: usize, message: &str, hint: Option<&str>) {
    assert_eq!(e.key.as_deref(), Some(key), "key of: {e}");
    assert_eq!(e.line, Some(line), "line of: {e}");
    assert!(e.message.contains(message), "message of {e} lacks {message:?}");
    if let Some(h) = hint {
        let got = e.hint.as_deref().unwrap_or_default();
        assert!(got.contains(h), "hint of {e} lacks {h:?}");
    }
    assert_eq!(e.file, PathBuf::from("scenarios/x/x-001.toml"));
}

const UNKNOWN_KEY: &str = "keys are listed in scenarios/README.md";
const VARIANT: &str = "the allowed values are listed after `expected`";

#[test]
fn the_valid_base_files_parse() {
    let s = parse(BASE).unwrap();
    assert_eq!(s.id, "x-001");
    assert_eq!(s.duration_ms, 120_000);
    let v = parse(VALID).unwrap();
    assert_eq!(v.steps.len(), 3);
    assert_eq!(v.faults.frames.len(), 1);
    assert_eq!(v.seed, Some(7));
}

#[test]
fn unknown_top_level_key() {
    let e = bad(&format!("{BASE}colour = 3\n"));
    assert_err(&e, "colour", 5, "unknown field `colour`", Some(UNKNOWN_KEY));
    assert_eq!(e.column, Some(1));
    assert!(e.message.contains("`duration_ms`"), "lists the allowed keys: {e}");
}

#[test]
fn unknown_key_in_link() {
    let e = bad(&format!("{BASE}\n[link]\nlatency_ms = 5\nlosss = 0.1\n"));
    assert_err(&e, "link.losss", 8, "unknown field `losss`, expected one of", Some(UNKNOWN_KEY));
}

#[test]
fn unknown_key_in_the_second_step_names_that_step_and_line() {
    let text = format!(
        "{BASE}\n[[step]]\ndo = \"wait\"\nms = 5\n\n[[step]]\ndo = \"wait\"\nms = 5\nfrom = \"client\"\n"
    );
    let e = bad(&text);
    assert_err(&e, "step[1].from", 13, "unknown field `from`, expected `ms`", Some(UNKNOWN_KEY));
}

#[test]
fn unknown_key_in_a_fault_rules_when() {
    let text = format!(
        "{BASE}\n[[faults.frames]]\naction = {{ kind = \"drop\" }}\n\n[[faults.frames]]\nwhen = {{ direction = \"to_agent\", sequence = 3 }}\naction = {{ kind = \"drop\" }}\n"
    );
    let e = bad(&text);
    assert_err(&e, "faults.frames[1].when.sequence", 10, "unknown field `sequence`", Some(UNKNOWN_KEY));
    assert_eq!(e.column, Some(34));
}

#[test]
fn unknown_do_value() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"jump\"\n"));
    assert_err(&e, "step[0].do", 7, "unknown variant `jump`, expected one of `send`", Some(VARIANT));
}

#[test]
fn unknown_fault_action_kind() {
    let e = bad(&format!("{BASE}\n[[faults.frames]]\naction = {{ kind = \"explode\" }}\n"));
    assert_err(&e, "faults.frames[0].action.kind", 7, "unknown variant `explode`", Some(VARIANT));
    assert!(e.message.contains("`black_hole`"), "{e}");
}

#[test]
fn unknown_timed_and_api_kinds() {
    let e = bad(&format!("{BASE}\n[[faults.timed]]\nat_ms = 1\naction = {{ kind = \"meteor\" }}\n"));
    assert_err(&e, "faults.timed[0].action.kind", 8, "unknown variant `meteor`", Some(VARIANT));
    let e = bad(&format!(
        "{BASE}\n[[faults.api]]\nop = \"resume_session\"\naction = {{ kind = \"error\", error = \"teapot\" }}\n"
    ));
    assert_err(&e, "faults.api[0].action.error", 8, "unknown variant `teapot`", Some(VARIANT));
}

#[test]
fn unknown_requirement_id() {
    let e = bad(
        "id = \"x-001\"\ntitle = \"t\"\nrequirements = [\"ORD-001\", \"NOPE-1\"]\nunder_test = \"client\"\n",
    );
    assert_err(
        &e,
        "requirements",
        3,
        "unknown requirement id `NOPE-1`",
        Some("requirement ids are listed in scenarios/requirements.toml"),
    );
}

#[test]
fn empty_requirements() {
    let e = bad("id = \"x-001\"\ntitle = \"t\"\nrequirements = []\nunder_test = \"client\"\n");
    assert_err(&e, "requirements", 3, "at least one requirement", Some("requirements = [\"RES-006\"]"));
}

#[test]
fn missing_under_test() {
    let e = bad("id = \"x-001\"\ntitle = \"t\"\nrequirements = [\"ORD-001\"]\n");
    assert_err(&e, "under_test", 1, "missing field `under_test`", Some("this key is required"));
}

#[test]
fn missing_key_in_a_step_and_in_agent_app() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"wait\"\nms = 5\n\n[[step]]\ndo = \"wait\"\n"));
    assert_err(&e, "step[1].ms", 10, "missing field `ms`", Some("this key is required"));
    let e = bad(&format!("{BASE}\n[agent_app]\nkind = \"script\"\n"));
    assert_err(&e, "agent_app.output", 6, "missing field `output`", Some("this key is required"));
}

#[test]
fn string_where_a_number_belongs() {
    let e = bad(&format!("{BASE}duration_ms = \"60000\"\n"));
    assert_err(
        &e,
        "duration_ms",
        5,
        "invalid type: string \"60000\", expected u64",
        Some("strings are quoted"),
    );
    // Inside a step (a tagged table) the value is found by what serde says about it.
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"wait\"\nms = \"5\"\n"));
    assert_err(&e, "step[0].ms", 8, "invalid type: string \"5\"", Some("strings are quoted"));
}

#[test]
fn unknown_variant_inside_a_step() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"wait_for\"\nevent = \"lunch\"\n"));
    assert_err(&e, "step[0].event", 8, "unknown variant `lunch`", Some(VARIANT));
}

#[test]
fn id_not_matching_the_file_name() {
    let e = bad("title = \"t\"\nid = \"x-002\"\nrequirements = [\"ORD-001\"]\nunder_test = \"client\"\n");
    assert_err(
        &e,
        "id",
        2,
        "id `x-002` does not match the file name `x-001`",
        Some("name the file after its id"),
    );
}

#[test]
fn send_step_with_neither_or_both_of_text_and_hex() {
    let step = "\n[[step]]\ndo = \"wait\"\nms = 1\n\n[[step]]\ndo = \"send\"\nfrom = \"client\"\n";
    let e = bad(&format!("{BASE}{step}"));
    assert_err(&e, "step[1].text", 10, "exactly one of `text` and `hex`", None);
    let e = bad(&format!("{BASE}{step}text = \"a\"\nhex = \"00\"\n"));
    assert_err(&e, "step[1].text", 10, "exactly one of `text` and `hex`", None);
}

#[test]
fn bad_hex() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"send\"\nfrom = \"agent\"\nhex = \"0g\"\n"));
    assert_err(&e, "step[0].hex", 6, "`0g` is not hex", None);
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"send\"\nfrom = \"agent\"\nhex = \"abc\"\n"));
    assert_err(&e, "step[0].hex", 6, "`abc` is not hex", None);
}

#[test]
fn empty_text() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"send\"\nfrom = \"client\"\ntext = \"\"\n"));
    assert_err(&e, "step[0].text", 6, "empty text", None);
    assert!(e.message.contains("FRAME-012"), "{e}");
}

#[test]
fn repeat_zero_and_too_many() {
    let e = bad(&format!("{BASE}\n[[step]]\ndo = \"send\"\nfrom = \"client\"\ntext = \"a\"\nrepeat = 0\n"));
    assert_err(&e, "step[0].repeat", 6, "repeat must be in 1..=100000", None);
    let e =
        bad(&format!("{BASE}\n[[step]]\ndo = \"send\"\nfrom = \"client\"\ntext = \"a\"\nrepeat = 100001\n"));
    assert_err(&e, "step[0].repeat", 6, "repeat must be in 1..=100000", None);
}

#[test]
fn loss_out_of_range() {
    let e = bad(&format!("{BASE}\n[link]\nloss = 1.0\n"));
    assert_err(&e, "link.loss", 7, "loss 1 is not a probability in [0, 1)", None);
    let e = bad(&format!("{BASE}\n[link]\nlatency_ms = 1\nloss = -0.5\n"));
    assert_err(&e, "link.loss", 8, "loss -0.5 is not a probability", None);
    let e = bad(&format!("{BASE}\n[link]\nloss = nan\n"));
    assert_err(&e, "link.loss", 7, "is not a probability", None);
}

#[test]
fn duration_zero_and_too_long() {
    let e = bad(&format!("{BASE}duration_ms = 0\n"));
    assert_err(&e, "duration_ms", 5, "duration_ms 0 is outside 1..=86400000", None);
    let e = bad(&format!("{BASE}duration_ms = 86400001\n"));
    assert_err(&e, "duration_ms", 5, "outside 1..=86400000", None);
}

#[test]
fn unknown_expect_end() {
    let e = bad(&format!("{BASE}\n[expect]\nstream_intact = false\nend = \"exploded\"\n"));
    assert_err(&e, "expect.end", 8, "unknown end `exploded`", Some("one of running, ended, channel_closed"));
}

#[test]
fn bad_peer_implementation_name() {
    let e = bad(&format!("{BASE}peer = \"plugin-2023\"\n"));
    assert_err(
        &e,
        "peer",
        5,
        "unknown implementation `plugin-2023`",
        Some("the peer is the role not under test"),
    );
    let e = bad(&format!("{BASE}peer = \"mutant:nope\"\n"));
    assert_eq!(e.key.as_deref(), Some("peer"), "{e}");
}

#[test]
fn peer_that_names_the_role_under_test() {
    // With the client under test the peer plays the agent: plugin-2024 is a client.
    let e = bad(&format!("{BASE}peer = \"plugin-2024\"\n"));
    assert_err(&e, "peer", 5, "`plugin-2024` cannot play the agent", Some("agent-2024"));
    // ignore-pause exists only for agents.
    let agent = BASE.replace("\"client\"", "\"agent\"");
    let e = bad(&format!("{agent}peer = \"mutant:ignore-pause\"\n"));
    assert_err(&e, "peer", 5, "cannot play the client", Some("plugin-2024"));
    assert!(parse(&format!("{BASE}peer = \"agent-2024\"\n")).is_ok());
    assert!(parse(&format!("{agent}peer = \"plugin-2024\"\n")).is_ok());
    assert!(parse(&format!("{BASE}peer = \"mutant:ignore-pause\"\n")).is_ok());
}

#[test]
fn invalid_toml_syntax() {
    let e = bad(&format!("{BASE}title2 = \n"));
    assert_eq!(e.line, Some(5), "{e}");
    assert_eq!(e.column, Some(10), "{e}");
    assert!(e.message.contains("string values must be quoted"), "{e}");
    let e = bad(&format!("{BASE}\n[[step]\ndo = \"wait\"\n"));
    assert_eq!(e.line, Some(6), "{e}");
    let e = bad("id = \"x-001\"\nid = \"x-001\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("duplicate key"), "{e}");
}

#[test]
fn fault_rule_nth_zero() {
    let text = format!(
        "{BASE}\n[[faults.frames]]\naction = {{ kind = \"pass\" }}\n\n[[faults.frames]]\nname = \"n\"\nwhen = {{ nth = 0 }}\naction = {{ kind = \"drop\" }}\n"
    );
    let e = bad(&text);
    assert_err(
        &e,
        "faults.frames[1].when.nth",
        11,
        "`when.nth` = 0 is out of range (1-based: at least 1)",
        Some("[faults]"),
    );
    assert!(!e.message.starts_with("frames[1]"), "the rule is in the key, not repeated: {e}");
}

#[test]
fn fault_rule_empty_seq_range() {
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\nwhen = {{ seq = [5, 3] }}\naction = {{ kind = \"drop\" }}\n"
    ));
    assert_err(&e, "faults.frames[0].when.seq", 7, "`when.seq` = [5, 3] is empty (lo > hi)", None);
}

#[test]
fn fault_rule_empty_time_window() {
    let e = bad(&format!(
        "{BASE}\n[[faults.api]]\nop = \"resume_session\"\nfrom_ms = 10\nuntil_ms = 10\naction = {{ kind = \"error\", error = \"internal\" }}\n"
    ));
    assert_err(&e, "faults.api[0].from_ms", 8, "`from_ms` = 10 is not before `until_ms` = 10", None);
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\nwhen = {{ from_ms = 20, until_ms = 5 }}\naction = {{ kind = \"drop\" }}\n"
    ));
    assert_err(&e, "faults.frames[0].when.from_ms", 7, "`from_ms` = 20 is not before `until_ms` = 5", None);
}

#[test]
fn fault_rule_other_refusals() {
    let e = bad(&format!(
        "{BASE}\n[[faults.timed]]\nat_ms = 10\naction = {{ kind = \"close\", side = \"client\", code = 999 }}\n"
    ));
    assert_err(&e, "faults.timed[0].action.code", 8, "`action.code` = 999 is out of range", None);
    let e = bad(&format!(
        "{BASE}\n[[faults.api]]\nop = \"terminate_session\"\naction = {{ kind = \"null_token\" }}\n"
    ));
    assert_err(
        &e,
        "faults.api[0].action.kind",
        8,
        "null_token needs an operation that answers with a token",
        None,
    );
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\nname = \"a\"\naction = {{ kind = \"pass\" }}\n\n[[faults.timed]]\nname = \"a\"\nat_ms = 1\naction = {{ kind = \"reset\", side = \"agent\" }}\n"
    ));
    assert_err(&e, "faults.timed[0].name", 11, "`name` = \"a\" is already used by frames[0]", None);
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\nwhen = {{ retransmissions_only = true, first_copies_only = true }}\naction = {{ kind = \"drop\" }}\n"
    ));
    assert_err(
        &e,
        "faults.frames[0].when.retransmissions_only",
        7,
        "contradicts `when.first_copies_only`",
        None,
    );
}

#[test]
fn fault_rule_bad_trigger() {
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\nwhen = {{ after = {{ acks = 1, resume_in_flight = true }} }}\naction = {{ kind = \"drop\" }}\n"
    ));
    assert_err(&e, "faults.frames[0].when.after", 7, "`after` takes exactly one of", None);
}

#[test]
fn fault_rule_written_as_sub_tables_points_at_its_header() {
    let e = bad(&format!(
        "{BASE}\n[[faults.frames]]\n[faults.frames.when]\nnth = 0\n[faults.frames.action]\nkind = \"drop\"\n"
    ));
    assert_err(&e, "faults.frames[0].when.nth", 6, "`when.nth` = 0", None);
}

#[test]
fn zero_service_intervals() {
    let e = bad(&format!("{BASE}\n[service]\npublication = false\nbye_interval_ms = 0\n"));
    assert_err(&e, "service.bye_interval_ms", 8, "bye_interval_ms = 0", Some("at least 1 ms"));
    let e = bad(&format!("{BASE}\n[service]\nidle_timeout_ms = 0\n"));
    assert_err(&e, "service.idle_timeout_ms", 7, "idle_timeout_ms = 0", None);
}

#[test]
fn disconnect_code_needs_close_and_a_close_code() {
    let step = "\n[[step]]\ndo = \"disconnect\"\nside = \"client\"\n";
    let e = bad(&format!("{BASE}{step}code = 1000\n"));
    assert_err(&e, "step[0].code", 6, "`code` needs how = \"close\"", None);
    let e = bad(&format!("{BASE}{step}how = \"close\"\ncode = 42\n"));
    assert_err(&e, "step[0].code", 6, "close code 42 is outside 1000..=4999", None);
    assert!(parse(&format!("{BASE}{step}how = \"close\"\ncode = 4002\n")).is_ok());
}

#[test]
fn display_has_file_line_key_message_and_hint() {
    let e = bad(&format!("{BASE}\n[expect]\nend = \"exploded\"\n"));
    assert_eq!(
        e.to_string(),
        "scenarios/x/x-001.toml:7: `expect.end`: unknown end `exploded` (hint: one of running, ended, \
         channel_closed, timed_out, session_gone, resume_gave_up, resend_limit, handshake_failed, \
         handshake_timeout, encryption_failed, challenge_timeout, terminated, finished, \
         input_during_outage)"
    );
    let e = bad(&format!("{BASE}colour = 3\n"));
    assert!(e.to_string().starts_with("scenarios/x/x-001.toml:5:1: `colour`: unknown field `colour`"), "{e}");
}

#[test]
fn kms_encryption_is_a_bool_and_not_for_port_sessions() {
    let ok =
        parse(&format!("{BASE}session = \"non_interactive_commands\"\nkms_encryption = true\n")).unwrap();
    assert!(ok.kms_encryption);
    assert!(!parse(BASE).unwrap().kms_encryption, "off by default");
    let e = bad(&format!("{BASE}session = \"port\"\nkms_encryption = true\n"));
    assert_err(&e, "kms_encryption", 6, "port sessions are never encrypted", Some("session = \"shell\""));
    let e = bad(&format!("{BASE}kms_encryption = \"yes\"\n"));
    assert_eq!(e.key.as_deref(), Some("kms_encryption"), "{e}");
    assert_eq!(e.line, Some(5), "{e}");
    // A scenario without the key serialises without it (regression files stay as they were).
    assert!(!toml::to_string(&parse(BASE).unwrap()).unwrap().contains("kms_encryption"));
    assert!(toml::to_string(&ok).unwrap().contains("kms_encryption = true"));
}

// ---------------------------------------------------------------- directories

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

#[test]
fn every_committed_scenario_loads_with_a_unique_id() {
    let all = load_dir(&suite_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(all.len() >= 45, "only {} scenarios found", all.len());
    let mut ids: Vec<&str> = all.iter().map(|(_, s)| s.id.as_str()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate ids");
    for (path, s) in &all {
        assert_eq!(path.file_stem().and_then(|x| x.to_str()), Some(s.id.as_str()));
        let area = path.parent().and_then(|p| p.file_name()).and_then(|x| x.to_str()).unwrap();
        assert_ne!(area, "scenarios", "{} is not in an area folder", path.display());
    }
}

/// A fresh, empty directory below the system temporary directory.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ssm-scenario-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn load_dir_reports_the_second_file_with_a_duplicate_id() {
    let d = scratch("dup");
    for area in ["a", "b"] {
        std::fs::create_dir_all(d.join(area)).unwrap();
        std::fs::write(d.join(area).join("x-001.toml"), format!("\n{BASE}")).unwrap();
    }
    std::fs::write(d.join("requirements.toml"), "not a scenario").unwrap();
    std::fs::write(d.join("xfail.toml"), "not a scenario either").unwrap();
    let e = load_dir(&d).unwrap_err();
    assert_eq!(e.file, d.join("b").join("x-001.toml"));
    assert_eq!(e.key.as_deref(), Some("id"));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("id `x-001` is also used by"), "{e}");
    assert!(e.message.contains(&d.join("a").join("x-001.toml").display().to_string()), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn load_dir_reports_a_bad_file_by_its_path() {
    let d = scratch("badfile");
    std::fs::create_dir_all(d.join("ack")).unwrap();
    std::fs::write(d.join("ack").join("x-001.toml"), BASE).unwrap();
    std::fs::write(d.join("ack").join("x-002.toml"), BASE.replace("x-001", "x-002") + "colour = 1\n")
        .unwrap();
    let e = load_dir(&d).unwrap_err();
    assert_eq!(e.file, d.join("ack").join("x-002.toml"));
    assert_eq!(e.key.as_deref(), Some("colour"));
    let e = load_dir(&d.join("missing")).unwrap_err();
    assert!(e.message.contains("cannot read the scenario directory"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

// ---------------------------------------------------------------- never panics

fn check_error_shape(text: &str, e: &ScenarioError) {
    let lines = text.split('\n').count();
    if let Some(l) = e.line {
        assert!(l >= 1 && l <= lines, "line {l} of a {lines}-line text: {e}");
    }
    assert!(!e.message.is_empty());
    let _ = e.to_string();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        if let Err(e) = parse(&text) {
            check_error_shape(&text, &e);
        }
    }

    #[test]
    fn toml_shaped_text_never_panics(
        text in "(\\[\\[?(step|link|faults\\.frames|faults\\.api|agent_app)\\]\\]?\n|[a-z_]{1,12} = (\"[a-z]{0,6}\"|[0-9]{1,3}|\\{ [a-z]{1,5} = [0-9] \\}|\\[[0-9], [0-9]\\])\n){0,12}"
    ) {
        if let Err(e) = parse(&format!("{BASE}{text}")) {
            check_error_shape(&format!("{BASE}{text}"), &e);
        }
    }

    #[test]
    fn single_byte_mutations_never_panic(at in 0..VALID.len(), byte in any::<u8>()) {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[at] = byte;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = parse(&text) {
            check_error_shape(&text, &e);
        }
    }

    #[test]
    fn single_byte_deletions_and_insertions_never_panic(at in 0..VALID.len(), byte in any::<u8>(), insert: bool) {
        let mut bytes = VALID.as_bytes().to_vec();
        if insert {
            bytes.insert(at, byte);
        } else {
            bytes.remove(at);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = parse(&text) {
            check_error_shape(&text, &e);
        }
    }
}
