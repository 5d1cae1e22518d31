//! Config unit tests: durations and sizes.

use super::*;
use crate::config::values::{parse_duration, parse_size, show_size};

#[test]
fn duration_rules() {
    one_error(
        &route_with("heartbeat_interval = \"5ms\""),
        8,
        22,
        "heartbeat_interval must be \"0s\" (disabled) or at least 10ms, got \"5ms\"",
    );
    let c = load(&route_with("heartbeat_interval = \"10ms\"")).unwrap();
    assert_eq!(c.routes[0].heartbeat_interval, Some(Duration::from_millis(10)));
    one_error(&route_with("connect_timeout = \"0s\""), 8, 19, "connect_timeout must be greater than 0");
    one_error(&route_with("header_timeout = \"0ms\""), 8, 18, "header_timeout must be greater than 0");
    one_error(&route_with("idle_timeout = \"fast\""), 8, 16, "idle_timeout: invalid duration \"fast\"");
    one_error(&route_with("idle_timeout = \"15\""), 8, 16, "has no unit; write e.g. \"15s\"");
    one_error(&route_with("max_duration = \"400days\""), 8, 16, "too long");
    let c = load(&route_with("max_duration = \"1h 30m\"")).unwrap();
    assert_eq!(c.routes[0].max_duration, Some(Duration::from_secs(5400)));

    assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("365days"), Ok(MAX_DURATION_VALUE));
    for bad in ["", "  ", "-1s", "1x", "s", "99999999999999999999999y", "1.5.5s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    let src = "[server]\nlisten = [\"127.0.0.1:1\"]\nshutdown_drain = \"0s\"\nshutdown_retry = \"0s\"\nwrite_timeout = \"0s\"\n[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://h\"\n";
    one_error(src, 5, 17, "write_timeout must be greater than 0");
}

#[test]
fn size_rules() {
    assert_eq!(parse_size("512B"), Ok(512));
    assert_eq!(parse_size("512"), Ok(512));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("64kib"), Ok(65536));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size("10MB"), Ok(10_000_000));
    assert_eq!(parse_size("2 KB"), Ok(2000));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
    for bad in ["", "KiB", "1.5MiB", "1 TiB", "-1", "10 M", "99999999999999999999", "18446744073709551615GiB"]
    {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
    assert!(parse_size("1.5MiB").unwrap_err().contains("whole number"));
    assert!(parse_size("18446744073709551615GiB").unwrap_err().contains("too large"));

    load(&route_with("max_event_size = \"1KiB\"")).unwrap();
    load(&route_with("max_event_size = \"256MiB\"")).unwrap();
    one_error(
        &route_with("max_event_size = 1023"),
        8,
        18,
        "max_event_size must be between 1KiB and 256MiB, got 1023",
    );
    one_error(&route_with("max_event_size = \"257MiB\""), 8, 18, "got \"257MiB\"");
    one_error(&route_with("max_event_size = -5"), 8, 18, "must not be negative");
    one_error(&route_with("max_event_size = \"lots\""), 8, 18, "max_event_size: invalid size \"lots\"");
    let src = MINIMAL.replace("]\n\n", "]\nmax_request_body = \"2GiB\"\n\n");
    one_error(&src, 3, 20, "max_request_body must be between 0B and 1GiB");
    assert_eq!(show_size(1500), "1500B");
    assert_eq!(show_size(0), "0B");
}
