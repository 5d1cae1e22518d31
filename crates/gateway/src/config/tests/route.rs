//! Config unit tests: the route keys of the route section itself (name, prefix, format, event_field, done_event...).

use std::time::Duration;

use super::*;
use crate::config::route::format_choice_name;

#[test]
fn route_name_and_prefix_rules() {
    one_error(&route_with("").replace("name = \"r\"", "name = \"a b\""), 5, 8, "invalid route name \"a b\"");
    one_error(&route_with("").replace("name = \"r\"", "name = \"\""), 5, 8, "invalid route name");
    let long = "x".repeat(65);
    one_error(&route_with("").replace("name = \"r\"", &format!("name = \"{long}\"")), 5, 8, "1 to 64");
    load(&route_with("").replace("name = \"r\"", &format!("name = \"{}\"", "A-z_0.9".repeat(9)))).unwrap();

    for (bad, why) in [
        ("r", "must start with `/`"),
        ("/r/", "must not end with `/` (write \"/r\")"),
        ("/a//b", "empty segment"),
        ("/a/../b", "`..`"),
        ("/a?x", "no query"),
        ("/a b", "not allowed"),
        ("/a%2", "percent escape"),
    ] {
        let src = route_with("").replace("path_prefix = \"/r\"", &format!("path_prefix = {bad:?}"));
        one_error(&src, 6, 15, why);
    }
    load(&route_with("").replace("path_prefix = \"/r\"", "path_prefix = \"/v1/chat%20x/@me:1\"")).unwrap();

    let src = format!("{MINIMAL}\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstream = \"http://h\"\n");
    let errs = errors(&src);
    assert_eq!(
        errs,
        vec![
            "test.toml:10:8: duplicate route name \"r\" (first used on line 5)",
            "test.toml:11:15: duplicate path_prefix \"/r\": route \"r\" (line 6) already uses it",
        ]
    );
}

#[test]
fn format_and_event_field() {
    for name in
        ["auto", "passthrough", "sse", "ndjson", "json-stream", "json-seq", "json-array", "lines", "chunks"]
    {
        let c = load(&route_with(&format!("format = {name:?}"))).unwrap();
        assert_eq!(format_choice_name(c.routes[0].format), name);
    }
    one_error(
        &route_with("format = \"ndjsn\""),
        8,
        10,
        "unknown format \"ndjsn\"; expected one of auto, passthrough, sse, ndjson, json-stream, json-seq, json-array, lines, chunks, aws-eventstream",
    );
    for ok in ["auto", "ndjson", "json-stream", "json-seq", "json-array"] {
        load(&route_with(&format!("format = {ok:?}\nevent_field = \"type\""))).unwrap();
    }
    for bad in ["sse", "lines", "chunks", "passthrough"] {
        one_error(
            &route_with(&format!("format = {bad:?}\nevent_field = \"type\"")),
            9,
            15,
            "event_field only applies to JSON formats",
        );
    }
    one_error(&route_with("event_field = \"\""), 8, 15, "must not be empty");
    one_error(
        &route_with("on_decode_error = \"ignore\""),
        8,
        19,
        "unknown on_decode_error \"ignore\"; expected skip or close",
    );
    one_error(&route_with("done_event = { event = \"a\\nb\", data = \"x\" }"), 8, 24, "CR, LF or NUL");
    let c = load(&route_with("done_event = { data = \"[DONE]\" }")).unwrap();
    assert_eq!(c.routes[0].done_event, Some(DoneEvent { event: None, data: "[DONE]".into() }));
}

#[test]
fn a_route_without_its_required_keys_still_reports_every_other_key() {
    // `route()` validates every key before a missing required key drops the route (the required keys
    // are written last in its struct literal): keep it that way.
    let src = "[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[route]]\nidle_timeout = \"0s\"\nmax_streams = -1\n\
               cors = { allow_origins = [] }\ndone_event = { event = \"\" , data = \"x\" }\n";
    let errs = errors(src);
    assert_eq!(
        errs,
        [
            "test.toml:4:1: missing key `name` in [[route]]",
            "test.toml:4:1: missing key `path_prefix` in [[route]]",
            "test.toml:4:1: missing key `upstream` in [[route]]",
            "test.toml:5:16: idle_timeout must be greater than 0",
            "test.toml:6:15: max_streams must be between 0 (unlimited) and 1000000, got -1",
            "test.toml:7:26: cors.allow_origins must not be empty",
            "test.toml:8:24: done_event.event must not be empty (leave it out for a plain message)",
        ]
    );
}

#[test]
fn unknown_route_key_lists_the_keys_in_documentation_order() {
    // The field order of `RawRoute` is part of the output (only its start is pinned here, so that a new
    // key appended at the end needs no edit).
    one_error(
        &route_with("bogus = 1"),
        8,
        1,
        "unknown field `bogus`, expected one of `name`, `path_prefix`, `strip_prefix`, `upstream`, `ca_file`, \
         `format`, ",
    );
}

#[test]
fn outputs_and_ndjson_heartbeats() {
    use ssegate_frame::encode::Output;
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.routes[0].outputs, vec![Output::Sse]);
    assert!(!c.routes[0].ndjson_heartbeats);
    let c = load(&route_with("outputs = [\"ndjson\", \"sse\"]\nndjson_heartbeats = true")).unwrap();
    assert_eq!(c.routes[0].outputs, vec![Output::Ndjson, Output::Sse]);
    assert!(c.routes[0].ndjson_heartbeats);
    one_error(
        &route_with("outputs = [\"sse\", \"xml\"]"),
        8,
        19,
        "unknown output \"xml\"; expected sse or ndjson",
    );
    one_error(&route_with("outputs = [\"sse\", \"sse\"]"), 8, 19, "output \"sse\" listed twice");
    one_error(&route_with("outputs = []"), 8, 11, "outputs must list at least one of sse, ndjson");
}

#[test]
fn on_disconnect_values_default_and_detach_refusal() {
    use crate::config::DisconnectPolicy;
    assert_eq!(load(&route_with("")).unwrap().routes[0].on_disconnect, DisconnectPolicy::Abort);
    for (value, policy) in [("abort", DisconnectPolicy::Abort), ("drain", DisconnectPolicy::Drain)] {
        let c = load(&route_with(&format!("on_disconnect = {value:?}"))).unwrap();
        assert_eq!(c.routes[0].on_disconnect, policy, "{value}");
    }
    one_error(
        &route_with("on_disconnect = \"detach\""),
        8,
        17,
        "on_disconnect = \"detach\" needs resume on the route (e.g. resume = { store = \"memory\" })",
    );
    one_error(
        &route_with("on_disconnect = \"close\""),
        8,
        17,
        "unknown on_disconnect \"close\"; expected abort, drain or detach",
    );
}

#[test]
fn resume_table_defaults_and_detach() {
    use crate::config::{DisconnectPolicy, Resume, StoreKind};
    let c = load(&route_with("resume = { store = \"memory\" }")).unwrap();
    let r = &c.routes[0];
    let want = Resume { store: StoreKind::Memory, max_bytes: 4 << 20, ttl: Duration::from_secs(600) };
    assert_eq!(r.resume, Some(want));
    assert_eq!(r.on_disconnect, DisconnectPolicy::Detach, "detach is the default with resume");
    assert_eq!(r.detach_timeout, Duration::from_secs(60));
    assert_eq!(c.server.resume_memory_max_bytes, 256 << 20);
    let c = load(&route_with(
        "resume = { store = \"memory\", max_bytes = \"64KiB\", ttl = \"30s\" }\non_disconnect = \"drain\"\ndetach_timeout = \"5s\"",
    ))
    .unwrap();
    let r = &c.routes[0];
    assert_eq!(r.resume.as_ref().map(|r| (r.max_bytes, r.ttl)), Some((64 << 10, Duration::from_secs(30))));
    assert_eq!((r.on_disconnect, r.detach_timeout), (DisconnectPolicy::Drain, Duration::from_secs(5)));
    let c = load(&route_with("resume = { store = \"memory\" }\non_disconnect = \"detach\"")).unwrap();
    assert_eq!(c.routes[0].on_disconnect, DisconnectPolicy::Detach);
    assert_eq!(load(&route_with("")).unwrap().routes[0].resume, None);

    one_error(&route_with("resume = { max_bytes = 4096 }"), 8, 10, "missing key `store` in resume");
    one_error(&route_with("resume = { store = \"disk\" }"), 8, 20, "unknown resume store \"disk\"");
    one_error(
        &route_with("resume = { store = \"redis\" }"),
        8,
        20,
        "resume store \"redis\" needs a [redis] table",
    );
    one_error(&route_with("resume = { store = \"memory\", max_bytes = 10 }"), 8, 42, "resume.max_bytes");
    one_error(&route_with("resume = { store = \"memory\", ttl = \"0s\" }"), 8, 36, "resume.ttl");
    one_error(&route_with("resume = { store = \"memory\", keep = 1 }"), 8, 30, "unknown field `keep`");
    one_error(
        &route_with("format = \"passthrough\"\nresume = { store = \"memory\" }"),
        9,
        10,
        "resume needs events",
    );
}

#[test]
fn provider_presets_and_expect_end() {
    use crate::provider::Provider;
    use ssegate_frame::Format;
    let c = load(MINIMAL).unwrap();
    assert_eq!((c.routes[0].provider, c.routes[0].expect_end), (None, false));
    for (p, format) in [
        ("openai", "sse"),
        ("openai-responses", "sse"),
        ("anthropic", "sse"),
        ("cohere", "sse"),
        ("gemini", "auto"),
        ("ollama", "ndjson"),
        ("bedrock", "aws-eventstream"),
    ] {
        let c = load(&route_with(&format!("provider = {p:?}"))).unwrap();
        assert_eq!(c.routes[0].provider, Provider::from_name(p));
        assert_eq!(format_choice_name(c.routes[0].format), format, "{p}");
        assert!(c.routes[0].expect_end);
    }
    // Explicit keys override the preset, within what the provider streams.
    let c = load(&route_with("provider = \"gemini\"\nformat = \"json-array\"\nexpect_end = false")).unwrap();
    assert_eq!(c.routes[0].format, FormatChoice::Fixed(Format::JsonArray));
    assert!(!c.routes[0].expect_end);
    load(&route_with("provider = \"ollama\"\nformat = \"auto\"")).unwrap();
    one_error(
        &route_with("provider = \"bedrock\"\nformat = \"ndjson\""),
        9,
        10,
        "provider \"bedrock\" streams aws-eventstream; format \"ndjson\" contradicts it",
    );
    one_error(
        &route_with("provider = \"claude\""),
        8,
        12,
        "unknown provider \"claude\"; expected one of openai, ",
    );
    one_error(&route_with("expect_end = true"), 8, 14, "expect_end needs `provider`");
}
