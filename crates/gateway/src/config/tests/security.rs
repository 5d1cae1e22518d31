//! Config unit tests: `auth` and `cors`.

use super::*;

#[test]
fn auth_keys_from_env_and_files_never_print_the_keys() {
    // Relative key files are resolved against the config file's directory.
    let file = Path::new("/etc/ssegate/ssegate.toml");
    let source = MapSource::new()
        .with_env("SSEGATE_T_AUTH_KEYS", "env-key-1, env-key-2\nenv-key-3")
        .with_env("SSEGATE_T_AUTH_BLANK", " , \n")
        .with_file("/etc/ssegate/keys.txt", "# comment\nfile-key-1\n\nfile-key-2\n")
        .with_file("/etc/ssegate/empty.txt", "# nothing\n");
    let src =
        format!("{MINIMAL}auth = {{ keys_env = [\"SSEGATE_T_AUTH_KEYS\"], keys_file = [\"keys.txt\"] }}\n");
    let c = Config::from_str_with(file, &src, &source).unwrap();
    let keys = c.routes[0].auth.as_ref().unwrap();
    assert_eq!(keys.len(), 5);
    assert!(keys.matches(b"env-key-2") && keys.matches(b"file-key-2") && !keys.matches(b"comment"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("env-key") && !debug.contains("file-key"), "{debug}");

    // The [route.auth] table form, and every error naming the variable / file only.
    let src = format!(
        "{MINIMAL}[route.auth]\nkeys_env = [\"SSEGATE_T_AUTH_MISSING\", \"SSEGATE_T_AUTH_BLANK\", \"1X\"]\n\
         keys_file = [\"nope.txt\", \"empty.txt\"]\n"
    );
    let errs = Config::from_str_with(file, &src, &source).unwrap_err().0;
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].contains("environment variable SSEGATE_T_AUTH_MISSING is not set"), "{errs:#?}");
    assert!(errs[1].contains("SSEGATE_T_AUTH_BLANK holds no key"), "{errs:#?}");
    assert!(errs[2].contains("not an environment variable name"), "{errs:#?}");
    assert!(errs[3].contains("nope.txt"), "{errs:#?}");
    assert!(errs[4].contains("empty.txt") && errs[4].contains("holds no key"), "{errs:#?}");
    one_error(&format!("{MINIMAL}auth = {{}}"), 8, 8, "auth needs keys_env and/or keys_file");
    // Empty lists would leave the route open: an error, not a route without auth.
    one_error(&format!("{MINIMAL}auth = {{ keys_env = [] }}"), 8, 8, "auth needs keys_env and/or keys_file");
    one_error(&format!("{MINIMAL}auth = {{ keys_env = [], keys_file = [] }}"), 8, 8, "auth needs keys_env");
    one_error(&format!("{MINIMAL}auth = {{ keys = [\"k\"] }}"), 8, 10, "unknown field `keys`");
}

#[test]
fn cors_rules() {
    let c =
        load(&route_with("cors = { allow_origins = [\"https://App.example\", \"http://localhost:3000\"] }"))
            .unwrap();
    let cors = c.routes[0].cors.as_ref().unwrap();
    assert_eq!(
        cors.origins.as_deref(),
        Some(&["https://app.example".to_string(), "http://localhost:3000".to_string()][..])
    );
    assert_eq!(cors.allow_headers, ["content-type", "authorization", "x-api-key", "last-event-id"]);
    assert_eq!(cors.allow_methods, ["GET", "POST", "OPTIONS"]);
    assert_eq!(cors.max_age, Duration::from_secs(600));
    assert_eq!(cors.max_age_value, "600");
    assert_eq!(cors.allow_methods_value, "GET, POST, OPTIONS");
    assert!(!cors.allow_credentials);
    let c = load(&route_with(
        "[route.cors]\nallow_origins = [\"*\"]\nallow_headers = [\"X-Trace\"]\nallow_methods = [\"GET\"]\nmax_age = \"1h\"",
    ))
    .unwrap();
    let cors = c.routes[0].cors.as_ref().unwrap();
    assert_eq!((cors.origins.is_none(), cors.max_age_value.to_str().unwrap()), (true, "3600"));
    assert_eq!(cors.allow_headers, ["x-trace"]);
    one_error(
        &route_with("cors = { allow_origins = [\"*\"], allow_credentials = true }"),
        8,
        26,
        "cannot be combined with allow_credentials = true",
    );
    one_error(&route_with("cors = { allow_origins = [] }"), 8, 26, "must not be empty");
    one_error(&route_with("cors = { max_age = \"1m\" }"), 8, 8, "missing key `allow_origins`");
    one_error(&route_with("cors = { allow_origins = [\"https://a.example/\"] }"), 8, 27, "no path");
    one_error(&route_with("cors = { allow_origins = [\"a.example\"] }"), 8, 27, "expected http://host");
    one_error(&route_with("cors = { allow_origins = [\"*\", \"https://a.b\"] }"), 8, 26, "only entry");
    one_error(
        &route_with("cors = { allow_origins = [\"*\"], allow_methods = [\"G T\"] }"),
        8,
        50,
        "not an HTTP method",
    );
}
