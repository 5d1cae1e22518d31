//! The file as serde sees it: a 1:1 mirror of the TOML, nothing validated yet. Everything that is
//! validated later keeps its span. Required keys are `Option` so that a missing key is reported together
//! with every other problem. The field order of each struct is the order serde lists the accepted keys
//! in an "unknown field" message: append new keys where they belong in the documentation's order.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<Spanned<RawServer>>,
    pub(super) admin: Option<Spanned<RawAdmin>>,
    pub(super) route: Option<Vec<Spanned<RawRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<StrList>>,
    pub(super) threads: Option<Spanned<i64>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) shutdown_drain: Option<Spanned<DurationStr>>,
    pub(super) shutdown_retry: Option<Spanned<DurationStr>>,
    pub(super) write_timeout: Option<Spanned<DurationStr>>,
    pub(super) max_request_body: Option<Spanned<SizeValue>>,
    pub(super) max_header_size: Option<Spanned<SizeValue>>,
    pub(super) request_header_timeout: Option<Spanned<DurationStr>>,
    pub(super) request_body_timeout: Option<Spanned<DurationStr>>,
    pub(super) pid_file: Option<Spanned<String>>,
    pub(super) upgrade_sock: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) name: Option<Spanned<String>>,
    pub(super) path_prefix: Option<Spanned<String>>,
    pub(super) strip_prefix: Option<bool>,
    pub(super) upstream: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) format: Option<Spanned<String>>,
    pub(super) heartbeat_interval: Option<Spanned<DurationStr>>,
    pub(super) event_field: Option<Spanned<String>>,
    pub(super) ids: Option<bool>,
    pub(super) done_event: Option<Spanned<RawDoneEvent>>,
    pub(super) forward_comments: Option<bool>,
    pub(super) connect_timeout: Option<Spanned<DurationStr>>,
    pub(super) header_timeout: Option<Spanned<DurationStr>>,
    pub(super) idle_timeout: Option<Spanned<DurationStr>>,
    pub(super) max_duration: Option<Spanned<DurationStr>>,
    pub(super) max_event_size: Option<Spanned<SizeValue>>,
    pub(super) on_decode_error: Option<Spanned<String>>,
    pub(super) auth: Option<Spanned<RawAuth>>,
    pub(super) upstream_headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub(super) max_streams: Option<Spanned<i64>>,
    pub(super) retry_after: Option<Spanned<DurationStr>>,
    pub(super) cors: Option<Spanned<RawCors>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) keys_env: Option<Vec<Spanned<String>>>,
    pub(super) keys_file: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    pub(super) allow_origins: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) allow_headers: Option<Vec<Spanned<String>>>,
    pub(super) allow_methods: Option<Vec<Spanned<String>>>,
    pub(super) max_age: Option<Spanned<DurationStr>>,
    pub(super) allow_credentials: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDoneEvent {
    pub(super) event: Option<Spanned<String>>,
    pub(super) data: Option<Spanned<String>>,
}

/// A duration string (`"15s"`); its own type only for a helpful "expected ..." in type errors.
#[derive(Debug)]
pub(super) struct DurationStr(pub(super) String);

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"15s\", \"250ms\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationStr, E> {
                Ok(DurationStr(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A size: integer bytes or a string with a unit (`"64KiB"`).
#[derive(Debug)]
pub(super) enum SizeValue {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: integer bytes or a string such as \"64KiB\", \"1MiB\" or \"10MB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`.
#[derive(Debug)]
pub(super) enum StrList {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or an array of address strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrList, E> {
                Ok(StrList::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    out.push(item);
                }
                Ok(StrList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}
