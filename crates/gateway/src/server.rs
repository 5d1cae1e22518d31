//! The process: pingora's server (listeners, TLS with h2 by ALPN, h2c, graceful upgrade, signals), the
//! HTTP app that hands every request to [`crate::edge::serve`], and the admin background service.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Digest, Stream};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::AdminService;
use crate::config::{Config, System};
use crate::edge;
use crate::error::ErrorType;
use crate::exchange::downstream::send_json_error;
use crate::gateway::{Gateway, SharedGateway};
use crate::metrics::listener::H2Listener;
use crate::metrics::{self, EdgeReason};
use crate::preface::{self, Sniffed};
use crate::reload::{ReloadService, Reloader};
use crate::tls::CertStore;
use crate::upstream::health::HealthChecks;

/// `ssegate run` flags that shape the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Take the listening sockets over from a running ssegate (`-u`).
    pub upgrade: bool,
    /// Detach into the background (`-d`).
    pub daemon: bool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot load the TLS certificate {cert} / key {key}: {reason}")]
    Tls { cert: String, key: String, reason: String },
}

/// The pingora HTTP app.
#[derive(Debug)]
pub struct App {
    gateway: Arc<SharedGateway>,
    options: HttpServerOptions,
    /// Which listener's HTTP/2 connections this app serves (for `ssegate_h2_connection_errors_total`).
    h2_listener: H2Listener,
}

impl App {
    /// `server.request_header_timeout` of the current gateway (a reload changes it for the next request).
    fn header_timeout(&self) -> Duration {
        self.gateway.load().settings.request_header_timeout
    }
}

/// How long an idle keep-alive connection waits for the next request (pingora's HTTP/1.1 default; also the
/// idle limit of HTTP/2 connections without open streams).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// The size of a request head as ssegate counts it for `max_header_size`: the request target plus, per
/// header, name + value + 4 (`: ` and CRLF).
fn head_size(req: &pingora::http::RequestHeader) -> usize {
    req.raw_path().len() + req.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>()
}

#[async_trait]
impl HttpServerApp for App {
    // By hand, not `async fn`: `#[async_trait]` moves the arguments into the boxed future once as
    // captured and once as bindings, so the `ServerSession` (680 bytes) would be kept twice in every
    // connection's state; `App::serve_http` holds it once.
    fn process_new_http<'s, 'w, 'f>(
        self: &'s Arc<Self>,
        session: ServerSession,
        shutdown: &'w ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'f>>
    where
        's: 'f,
        'w: 'f,
        Self: 'f,
    {
        Box::pin(self.serve_http(session, shutdown))
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }

    /// An HTTP/2 connection ended with an error (pingora-core patch, `docs/pingora-h2-errors.md`): counted
    /// when it was the client's fault (a flood, a protocol violation).
    fn h2_connection_error(&self, error: &pingora::Error, _digest: &Digest) {
        crate::h2_watch::count(self.h2_listener, error);
    }
}

impl App {
    /// One connection's requests (pingora calls this per request, and again for a reused connection).
    /// Not an `async fn`: the session would be held twice (captured and re-bound), as above.
    #[allow(clippy::manual_async_fn)]
    fn serve_http<'s>(
        self: &'s Arc<Self>,
        mut session: ServerSession,
        shutdown: &'s ShutdownWatch,
    ) -> impl Future<Output = Option<ReusedHttpStream>> + Send + 's {
        async move {
            // The whole head within request_header_timeout (pingora only bounds each read, so a client that
            // trickles a byte now and then would otherwise hold the connection forever). Nothing can be
            // answered without a parsed request: the connection is closed.
            let header_timeout = self.header_timeout();
            match tokio::time::timeout(header_timeout, session.read_request()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return None,
                Ok(Err(e)) => {
                    // Only the kind: the error's context quotes the raw request bytes, which may hold a key.
                    tracing::debug!(error = e.etype().as_str(), "could not read a request");
                    // A head pingora refused is answered with a 400 when the connection still works.
                    crate::http_rules::unreadable(&mut session, &e).await;
                    return None;
                }
                Err(_) => {
                    metrics::downstream_rejected(EdgeReason::HeaderTimeout);
                    tracing::debug!(timeout = ?header_timeout, "request head not received in time; closing");
                    return None;
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            // A snapshot of the gateway for this request: a swap (reload) never changes a request in flight.
            let gateway = self.gateway.load_full();
            let reusable = if head_size(session.req_header()) > gateway.settings.max_header_size {
                metrics::downstream_rejected(EdgeReason::HeaderTooLarge);
                session.set_keepalive(None);
                let msg = "the request head is larger than max_header_size";
                let answer = crate::headers::Answer::bare(crate::headers::request_id(session.req_header()));
                send_json_error(&mut session, ErrorType::HeaderTooLarge, msg, &answer).await;
                false
            } else {
                static SIZE: std::sync::Once = std::sync::Once::new();
                SIZE.call_once(|| {
                    // Measured on a future that is never polled: `let f = …; f.await` would keep the future in
                    // this one's state twice (the binding and the awaited value), a whole exchange per stream.
                    let bytes = std::mem::size_of_val(&edge::serve(&gateway, &mut session, shutdown));
                    tracing::debug!(bytes, "exchange future size");
                });
                edge::serve(&gateway, &mut session, shutdown).await
            };
            if !reusable {
                session.set_keepalive(None);
            }
            let idle = match session.get_keepalive() {
                Some(0) | None => KEEPALIVE_IDLE,
                Some(s) => Duration::from_secs(s),
            };
            let persistent = HttpPersistentSettings::for_session(&session);
            let reused = match session.finish().await {
                Ok(Some(stream)) if reusable => stream,
                _ => return None,
            };
            // Wait here, up to the keep-alive idle time, for the first byte of the next request, so that the
            // next head's timeout starts when the client starts sending (TLS streams cannot peek: there the
            // timeout also covers the idle time).
            let (mut stream, prefix) = reused.into_parts();
            if prefix.as_ref().is_none_or(|p| p.is_empty()) {
                let mut first = [0u8; 1];
                let mut shutdown = shutdown.clone();
                tokio::select! {
                    r = tokio::time::timeout(idle, stream.try_peek(&mut first)) => {
                        if !matches!(r, Ok(Ok(_))) {
                            return None;
                        }
                    }
                    _ = shutdown.changed() => return None,
                }
            }
            let mut persistent = persistent;
            if let Some(p) = prefix {
                persistent.set_pipelined_prefix(p);
            }
            Some(ReusedHttpStream::new(stream, Some(persistent)))
        }
    }
}

/// Counts downstream connections around the HTTP app, and chooses h2c or HTTP/1 on plaintext connections.
#[derive(Debug)]
struct Counted {
    /// With pingora's h2c detection on: plaintext connections that sent the HTTP/2 preface.
    h2c: Arc<App>,
    /// TLS connections (ALPN decides between h2 and HTTP/1.1).
    tls: Arc<App>,
    /// With h2c off: plaintext connections that sent anything else.
    http1: Arc<App>,
}

#[async_trait]
impl ServerApp for Counted {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let _open = metrics::connection_opened();
        // pingora's h2c detection reads exactly the 24-byte HTTP/2 preface, with no time limit, before it
        // chooses: a client that sends nothing would hold the connection forever, and a whole request
        // shorter than 24 bytes would never be answered. ssegate decides itself (`preface::sniff`: as soon as
        // a byte differs from the preface), within request_header_timeout, and hands the connection to the
        // app with h2c on or off. TLS streams (not an L4 stream) pass at once: ALPN decides there.
        if !stream.as_any().is::<L4Stream>() {
            return ServerApp::process_new(&self.tls, stream, shutdown).await;
        }
        let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else { return None };
        let header_timeout = self.h2c.header_timeout();
        let app = match tokio::time::timeout(header_timeout, preface::sniff(&mut l4)).await {
            Ok(Ok(Sniffed::H2c)) => &self.h2c,
            Ok(Ok(Sniffed::Http1)) => &self.http1,
            Ok(Ok(Sniffed::Closed)) | Ok(Err(_)) => return None,
            Err(_) => {
                metrics::downstream_rejected(EdgeReason::HeaderTimeout);
                tracing::debug!(timeout = ?header_timeout, "no request within request_header_timeout; closing");
                return None;
            }
        };
        ServerApp::process_new(app, l4, shutdown).await
    }
}

/// Starts the gateway and blocks until it exits.
pub fn run(config: Config, opts: RunOptions) -> Result<(), StartError> {
    let server_cfg = &config.server;
    let mut traffic: Vec<SocketAddr> = server_cfg.listen.clone();
    traffic.extend(server_cfg.tls.as_ref().map(|t| t.listen));
    if !opts.upgrade {
        // pingora panics when a listener cannot be bound; find out first and say so plainly.
        for addr in traffic.iter().chain(config.admin.as_ref().map(|a| &a.listen)) {
            TcpListener::bind(addr).map_err(|source| StartError::Bind { addr: *addr, source })?;
        }
    }
    // The certificate is served through a resolver so that a reload can swap it (see `tls.rs`).
    let mut certs = None;
    let tls = match &server_cfg.tls {
        Some(t) => {
            let cert = t.cert.display().to_string();
            let key = t.key.display().to_string();
            let err = |reason: String| StartError::Tls { cert: cert.clone(), key: key.clone(), reason };
            let store = CertStore::new(crate::tls::load(t, &System).map_err(|e| err(e.message))?);
            let mut settings = TlsSettings::intermediate(&cert, &key).map_err(|e| err(e.to_string()))?;
            settings.set_cert_resolver(store.clone());
            settings.enable_h2();
            certs = Some(store);
            Some((t.listen, settings))
        }
        None => None,
    };

    metrics::init();
    crate::upstream::dns::init(&server_cfg.dns_servers);
    let gateway = Gateway::build(&config).shared();
    let checked = gateway.clone();
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    // An HTTP/2 connection without open streams is closed after the keep-alive idle time, like HTTP/1.1.
    options.h2_idle_timeout = Some(KEEPALIVE_IDLE);
    let mut http1_options = options.clone();
    http1_options.h2c = false;
    let app = |options: &HttpServerOptions, h2_listener| {
        Arc::new(App { gateway: gateway.clone(), options: options.clone(), h2_listener })
    };
    let (h2c, tls_app) = (app(&options, H2Listener::H2c), app(&options, H2Listener::Tls));
    let http1 = app(&http1_options, H2Listener::H2c);

    let conf = ServerConf {
        threads: server_cfg.threads,
        daemon: opts.daemon,
        pid_file: server_cfg.pid_file.display().to_string(),
        upgrade_sock: server_cfg.upgrade_sock.display().to_string(),
        // Streams get `shutdown_drain` to finish, then a moment to write their `retry:` and close.
        grace_period_seconds: Some(server_cfg.shutdown_drain.as_secs() + 1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let opt = Opt { upgrade: opts.upgrade, daemon: opts.daemon, ..Opt::default() };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut service = Service::new("ssegate".to_string(), Counted { h2c, tls: tls_app, http1 });
    // No L4 read buffer: pingora's default is 64 KiB per downstream connection, most of it resident for the
    // life of a stream, while an SSE client sends one small request and then nothing. Request heads are read
    // into the HTTP layer's own buffer; TLS records into rustls' buffer. No L4 write buffer either (1.4 KiB
    // per connection): every write ssegate makes is flushed at once, and a chunk goes out as one `writev` of
    // its size line, data and CRLF instead of being copied into the buffer first.
    let l4 = L4BufferSettings::unbuffered();
    for addr in &server_cfg.listen {
        service.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(l4));
    }
    if let Some((addr, settings)) = tls {
        service.add_listener(ListenerConfig::tcp(addr.to_string()).tls(settings).l4_buffer(l4));
    }
    server.add_service(service);
    let pid_file = (!opts.daemon).then(|| server_cfg.pid_file.clone());
    let reloader = Reloader::new(config.clone(), gateway, certs);
    server.add_service(background_service("reload", ReloadService::new(reloader, pid_file)));
    // Always running (a tick finds nothing to do without `health`), so a reloaded config's checks start too.
    let pools = move || checked.load().checked_pools();
    server.add_service(background_service("health checks", HealthChecks { pools }));
    if let Some(admin) = &config.admin {
        server
            .add_service(background_service("admin", AdminService { listen: admin.listen, probe: traffic }));
    }
    tracing::info!(listen = ?server_cfg.listen, tls = ?server_cfg.tls.as_ref().map(|t| t.listen),
        admin = ?config.admin.as_ref().map(|a| a.listen), routes = config.routes.len(), "ssegate starting");
    server.run_forever()
}
