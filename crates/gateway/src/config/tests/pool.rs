//! Config unit tests: `upstreams`, `balance`, `health`, `passive`, `retry`.

use super::*;
use crate::config::HostPattern;

/// A route with a pool instead of `upstream` (the pool keys start on line 7).
fn pool_route(extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"r\"\npath_prefix = \"/r\"\n{extra}\n"
    )
}

#[test]
fn one_backend_shorthand_is_a_pool_of_one() {
    let c = load(MINIMAL).unwrap();
    let p = &c.routes[0].pool;
    assert_eq!(p.backends.len(), 1);
    assert_eq!(p.backends[0].name, "127.0.0.1:9000");
    assert_eq!(p.balance, Balance::RoundRobin);
    assert_eq!(p.retry.attempts, 1);
    assert_eq!(p.passive, Some(Passive { max_fails: 3, fail_timeout: Duration::from_secs(30) }));
    assert!(p.health.is_none());
}

#[test]
fn full_pool() {
    let src = pool_route(
        r#"upstreams = [
  { url = "https://a.example/v1", name = "a", weight = 3, headers = { "Authorization" = "Bearer ${env:KEY_A}" } },
  { url = "http://b.example:8080" },
  { url = "http://10.0.0.9:8000", name = "spare", backup = true },
]
balance = "hash:header:x-user-id"
health = { path = "/healthz", interval = "2s", timeout = "500ms", healthy = 1, unhealthy = 2 }
passive = { max_fails = 5, fail_timeout = "10s" }
retry = { attempts = 3, on = ["connect", "timeout", "5xx", "429"], first_event_timeout = "30s" }"#,
    );
    let c = Config::from_str_with(Path::new("test.toml"), &src, &MapSource::new().with_env("KEY_A", "sk-a"))
        .unwrap();
    let r = &c.routes[0];
    let p = &r.pool;
    let names: Vec<_> = p.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a", "b.example:8080", "spare"]);
    assert_eq!((p.backends[0].weight, p.backends[2].backup), (3, true));
    assert_eq!(p.backends[0].headers[0].value.to_str().unwrap(), "Bearer sk-a");
    assert_eq!(r.upstream.host, "a.example");
    assert_eq!(p.balance, Balance::Hash(http::HeaderName::from_static("x-user-id")));
    let h = p.health.as_ref().unwrap();
    assert_eq!(
        (h.path.as_str(), h.interval, h.healthy, h.unhealthy),
        ("/healthz", Duration::from_secs(2), 1, 2)
    );
    assert_eq!(p.passive, Some(Passive { max_fails: 5, fail_timeout: Duration::from_secs(10) }));
    assert_eq!(p.retry.attempts, 3);
    assert!(p.retry.on.connect && p.retry.on.timeout);
    assert!(p.retry.on.status(503) && p.retry.on.status(429) && !p.retry.on.status(404));
    assert_eq!(p.retry.first_event_timeout, Some(Duration::from_secs(30)));

    // Defaults of a pool: two attempts, round robin, connect + timeout.
    let c = load(&pool_route("upstreams = [{ url = \"http://a\" }, { url = \"http://b\" }]")).unwrap();
    let p = &c.routes[0].pool;
    assert_eq!((p.retry.attempts, p.balance.clone()), (2, Balance::RoundRobin));
    assert!(p.retry.on.connect && p.retry.on.timeout && !p.retry.on.status(502));
    // passive off
    let c = load(&pool_route("upstreams = [{ url = \"http://a\" }]\npassive = { max_fails = 0 }")).unwrap();
    assert_eq!(c.routes[0].pool.passive, None);
    for b in ["round_robin", "least_streams", "random"] {
        load(&pool_route(&format!("upstreams = [{{ url = \"http://a\" }}]\nbalance = {b:?}"))).unwrap();
    }
}

#[test]
fn pool_errors() {
    let both = pool_route("upstream = \"http://a\"\nupstreams = [{ url = \"http://b\" }]");
    one_error(&both, 8, 13, "either `upstream`");
    one_error(&pool_route("upstreams = []"), 7, 13, "at least one backend");
    one_error(&pool_route("upstreams = [{ name = \"a\" }]"), 7, 14, "missing key `url`");
    one_error(&pool_route("upstreams = [{ url = \"ftp://a\" }]"), 7, 22, "must start with http");
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", weight = 0 }]"),
        7,
        43,
        "weight must be between 1",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", name = \"a b\" }]"),
        7,
        41,
        "invalid backend name",
    );
    one_error(
        &pool_route(
            "upstreams = [{ url = \"http://a\", name = \"x\" }, { url = \"http://b\", name = \"x\" }]",
        ),
        7,
        75,
        "duplicate backend name \"x\"",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\" }, { url = \"http://a:80\" }]"),
        7,
        36,
        "both named",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", backup = true }]"),
        7,
        13,
        "must not be a backup",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", weigth = 2 }]"),
        7,
        34,
        "unknown field `weigth`",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", headers = { \"X\" = \"${env:NOPE}\" } }]"),
        7,
        52,
        "NOPE is not set",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\", headers = { \"Host\" = \"x\" } }]"),
        7,
        46,
        "set by the gateway",
    );
    one_error(
        &pool_route("upstreams = [{ url = \"http://a\" }]\nca_file = \"ca.pem\""),
        8,
        11,
        "only used with an https",
    );
    let base = "upstreams = [{ url = \"http://a\" }, { url = \"http://b\" }]\n";
    one_error(&pool_route(&format!("{base}balance = \"fastest\"")), 8, 11, "unknown balance \"fastest\"");
    one_error(&pool_route(&format!("{base}balance = \"hash:header:a b\"")), 8, 11, "not a valid header name");
    one_error(
        &pool_route(&format!("{base}health = {{ interval = \"0s\" }}")),
        8,
        23,
        "health.interval must be greater than 0",
    );
    one_error(&pool_route(&format!("{base}health = {{ path = \"health\" }}")), 8, 19, "must start with `/`");
    one_error(
        &pool_route(&format!("{base}health = {{ healthy = 0 }}")),
        8,
        22,
        "health.healthy must be between 1",
    );
    one_error(&pool_route(&format!("{base}health = {{ every = \"1s\" }}")), 8, 12, "unknown field `every`");
    one_error(
        &pool_route(&format!("{base}passive = {{ max_fails = -1 }}")),
        8,
        25,
        "passive.max_fails must be",
    );
    one_error(
        &pool_route(&format!("{base}passive = {{ fail_timeout = \"x\" }}")),
        8,
        28,
        "passive.fail_timeout",
    );
    one_error(
        &pool_route(&format!("{base}retry = {{ attempts = 0 }}")),
        8,
        22,
        "retry.attempts must be between 1",
    );
    one_error(
        &pool_route(&format!("{base}retry = {{ on = [\"connect\", \"5xy\"] }}")),
        8,
        28,
        "retry.on: unknown \"5xy\"",
    );
    one_error(
        &pool_route(&format!("{base}retry = {{ on = [\"200\"] }}")),
        8,
        17,
        "retry.on: unknown \"200\"",
    );
    one_error(
        &pool_route(&format!("{base}retry = {{ first_event_timeout = \"0s\" }}")),
        8,
        33,
        "retry.first_event_timeout must be greater than 0",
    );
    one_error(&pool_route(""), 4, 1, "missing key `upstream`");
}

#[test]
fn hosts_key() {
    let two = |a: &str, b: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[route]]\nname = \"a\"\npath_prefix = \"/v1\"\n\
             upstream = \"http://a\"\n{a}\n\n[[route]]\nname = \"b\"\npath_prefix = \"/v1\"\nupstream = \"http://b\"\n{b}\n"
        )
    };
    let c = load(&two("hosts = [\"API.example.com\", \"*.example.org\"]", "")).unwrap();
    assert_eq!(
        c.routes[0].hosts,
        vec![HostPattern::Exact("api.example.com".into()), HostPattern::Wildcard(".example.org".into())]
    );
    assert!(c.routes[1].hosts.is_empty());
    load(&two("hosts = [\"a.example\"]", "hosts = [\"b.example\"]")).unwrap();
    one_error(
        &two("hosts = [\"a.example\", \"*.x.org\"]", "hosts = [\"*.X.org\"]"),
        12,
        15,
        "duplicate host and path_prefix: route \"a\" (line 6) already serves \"*.x.org\" on \"/v1\"",
    );
    one_error(&two("", ""), 12, 15, "duplicate path_prefix \"/v1\"");
    one_error(&two("hosts = []", "hosts = [\"b\"]"), 8, 9, "hosts must not be empty");
    one_error(&two("hosts = [\"a:80\"]", "hosts = [\"b\"]"), 8, 10, "invalid host \"a:80\"");
    one_error(&two("hosts = [\"a\", \"A\"]", "hosts = [\"b\"]"), 8, 15, "listed twice");
}
