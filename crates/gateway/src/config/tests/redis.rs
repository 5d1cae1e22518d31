//! Config unit tests: `[redis]`.

use super::*;

fn with_redis(table: &str) -> String {
    format!("{MINIMAL}\n[redis]\n{table}\n")
}

#[test]
fn redis_table_is_optional_and_key_prefix_defaults() {
    assert!(load(MINIMAL).unwrap().redis.is_none());
    let c = load(&with_redis("url = \"redis://127.0.0.1:6379/0\"")).unwrap();
    let r = c.redis.unwrap();
    assert_eq!(r.url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(r.shown, "redis://127.0.0.1:6379/0");
    assert_eq!(r.key_prefix, "ssegate:");
    assert!(!r.tls);
    let c = load(&with_redis("url = \"rediss://cache.example:6380\"\nkey_prefix = \"app1:sse:\"")).unwrap();
    let r = c.redis.unwrap();
    assert!(r.tls);
    assert_eq!(r.key_prefix, "app1:sse:");
}

#[test]
fn redis_url_credentials_from_env_and_file_are_never_printed() {
    let file = Path::new("/etc/ssegate/ssegate.toml");
    let source = MapSource::new()
        .with_env("SSEGATE_T_REDIS_PASS", "s3cret-env")
        .with_file("/etc/ssegate/redis.pass", "s3cret-file\n");
    let src = with_redis("url = \"redis://gw:${env:SSEGATE_T_REDIS_PASS}@10.0.0.5:6379/2\"");
    let c = Config::from_str_with(file, &src, &source).unwrap();
    let r = c.redis.as_ref().unwrap();
    assert_eq!(r.url.expose(), "redis://gw:s3cret-env@10.0.0.5:6379/2");
    assert_eq!(r.shown, "redis://gw:***@10.0.0.5:6379/2");
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");

    // ${file:} relative to the config's directory, trailing newline dropped.
    let src = with_redis("url = \"rediss://:${file:redis.pass}@cache.example\"");
    let c = Config::from_str_with(file, &src, &source).unwrap();
    assert_eq!(c.redis.as_ref().unwrap().url.expose(), "rediss://:s3cret-file@cache.example");
    assert_eq!(c.redis.as_ref().unwrap().shown, "rediss://:***@cache.example");

    // A bad URL's error shows it masked.
    let src = with_redis("url = \"http://:${env:SSEGATE_T_REDIS_PASS}@h\"");
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("must start with redis:// or rediss://"), "{errs:#?}");
    assert!(!errs[0].contains("s3cret") && errs[0].contains("***"), "{errs:#?}");

    // Unresolvable references name the key.
    let src = with_redis("url = \"redis://:${env:SSEGATE_T_REDIS_NOPE}@h\"");
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    assert!(errs[0].contains("redis.url: environment variable SSEGATE_T_REDIS_NOPE is not set"), "{errs:#?}");
    let src = with_redis("url = \"redis://:${file:nope.pass}@h\"");
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    assert!(errs[0].contains("redis.url: cannot read /etc/ssegate/nope.pass"), "{errs:#?}");
    let src = with_redis("url = \"redis://:${vault:x}@h\"");
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    assert!(errs[0].contains("redis.url: unknown reference"), "{errs:#?}");
}

#[test]
fn redis_table_errors() {
    // MINIMAL is 7 lines, then an empty line: `[redis]` is line 9, its first key line 10.
    one_error(&with_redis(""), 9, 1, "missing key `url` in [redis]");
    one_error(&with_redis("url = \"127.0.0.1:6379\""), 10, 7, "must start with redis:// or rediss://");
    one_error(&with_redis("url = \"redis+unix:///tmp/r.sock\""), 10, 7, "must start with redis://");
    one_error(&with_redis("url = \"redis://h/x y\""), 10, 7, "whitespace");
    one_error(&with_redis("url = \"rediss://h/0#insecure\""), 10, 7, "always verified");
    one_error(&with_redis("url = \"redis://127.0.0.1:6379/notadb\""), 10, 7, "not a valid Redis URL");
    one_error(&with_redis("url = \"redis://h\"\nkey_prefix = \"\""), 11, 14, "key_prefix must not be empty");
    one_error(&with_redis("url = \"redis://h\"\nkey_prefix = \"a b\""), 11, 14, "whitespace");
    let long = "k".repeat(129);
    one_error(
        &with_redis(&format!("url = \"redis://h\"\nkey_prefix = \"{long}\"")),
        11,
        14,
        "longer than 128",
    );
    one_error(&with_redis("url = \"redis://h\"\npassword = \"x\""), 11, 1, "unknown field `password`");
}

#[test]
fn shown_masks_only_the_password() {
    use crate::config::redis::shown;
    assert_eq!(shown("redis://h:1/0"), "redis://h:1/0");
    assert_eq!(shown("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(shown("redis://:p@h"), "redis://:***@h");
    assert_eq!(shown("rediss://tokenonly@h"), "rediss://***@h");
    assert_eq!(shown("redis://u:p@ss@h/0?x=@"), "redis://u:***@h/0?x=@");
}

#[test]
fn a_redis_store_needs_the_redis_table() {
    use crate::config::StoreKind;
    // The route's table comes before [redis] in the file: the check does not depend on the order.
    let src = format!(
        "{}\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n",
        route_with("resume = { store = \"redis\" }")
    );
    let c = load(&src).unwrap();
    assert_eq!(c.routes[0].resume.as_ref().map(|r| r.store), Some(StoreKind::Redis));
    assert_eq!(c.redis.as_ref().map(|r| r.key_prefix.as_str()), Some("ssegate:"));
    // Without it: one error, at the store value.
    one_error(
        &route_with("resume = { store = \"redis\" }"),
        8,
        20,
        "resume store \"redis\" needs a [redis] table",
    );
    // An invalid [redis] is reported once, not again by the route.
    let src = format!("{}\n[redis]\nurl = \"http://h\"\n", route_with("resume = { store = \"redis\" }"));
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("must start with redis://"), "{errs:#?}");
    // A [redis] nobody uses is fine (validated all the same).
    assert!(load(&with_redis("url = \"redis://h\"")).unwrap().routes[0].resume.is_none());
}
