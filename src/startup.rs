//! Wires the application: keys, state, background refreshers, middleware and routes.

use std::net::TcpListener;
use std::time::Duration;

use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::body::EitherBody;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse, HttpServer};

use crate::client::TrustedProxies;
use crate::clock;
use crate::config::{JwtAlg, MfaKeySource, Settings};
use crate::db::Db;
use crate::limits::{head_size, BODY_LIMIT, HEAD_LIMIT};
use crate::metrics::{self, Metrics, RequestMetrics};
use crate::mfa::MfaKey;
use crate::passkeys::Passkeys;
use crate::passwords::Hasher;
use crate::revocation::RevokedSessions;
use crate::state::AppState;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::tokens::access::AccessTokens;
use crate::tokens::keys::{usable_since, KeySet, Keys};
use crate::tokens::refresh::SuccessorKey;
use crate::{api, cookies, error, notices, pages, request_id};

pub struct Application {
    server: Server,
    port: u16,
    issuer: String,
    /// The `LATCHKEY_METRICS_BIND` listener and its port.
    metrics: Option<(Server, u16)>,
    /// The background work, stopped when the server has stopped.
    tasks: Tasks,
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and prepares the server.
    pub fn build(settings: Settings, db: Db) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind).map_err(|e| {
            anyhow::anyhow!("LATCHKEY_BIND: cannot listen on {}: {e}", settings.bind)
        })?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let mut settings = settings;
        // The default public URL is the bind address; with port 0 that is the port the
        // system picked.
        if settings.public_url == format!("http://{}", settings.bind)
            && settings.bind.ends_with(":0")
        {
            settings.public_url = format!("http://{bound}");
        }
        let issuer = settings.public_url.clone();
        let metrics_listener = match &settings.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind).map_err(|e| {
                anyhow::anyhow!("LATCHKEY_METRICS_BIND: cannot listen on {bind}: {e}")
            })?),
            None => None,
        };
        let metrics = if metrics_listener.is_some() {
            Metrics::on()
        } else {
            Metrics::off()
        };
        let store = Store::new(db, metrics.clone());
        let state = Data::new(build_state(settings, store, metrics)?);
        let tasks = Tasks::start(&state);
        if let Some(url) = state.store.postgres_url() {
            let weak = std::sync::Arc::downgrade(&state.clone().into_inner());
            notices::spawn(url.to_owned(), weak)
                .map_err(|e| anyhow::anyhow!("cannot start the notification listener: {e}"))?;
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let session_key = session_key(&state.store)?;
        let metrics = match metrics_listener {
            Some(listener) => Some(metrics_server(state.clone(), listener)?),
            None => None,
        };
        let worker_state = state.clone();
        let trusted = Data::new(TrustedProxies(state.settings.trusted_proxies.clone()));
        let server = HttpServer::new(move || {
            let state = worker_state.clone();
            let requests = state.metrics.for_worker();
            App::new()
                .app_data(state.clone())
                .app_data(trusted.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(BODY_LIMIT)
                        .error_handler(error::json_error),
                )
                .app_data(
                    web::FormConfig::default()
                        .limit(BODY_LIMIT)
                        .error_handler(pages::form_error),
                )
                .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .wrap(cookie_session(
                    session_key.clone(),
                    state.settings.secure_cookies,
                ))
                .wrap(security_headers(state.settings.secure_cookies))
                .wrap_fn(head_as_get)
                .wrap_fn(with_request_id)
                .wrap_fn(head_limit)
                .wrap_fn(move |req, routes| counted(&requests, req, routes))
                .configure(api::configure)
                .configure(pages::configure)
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Application {
            server,
            port,
            issuer,
            metrics,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The issuer of this server's tokens (`LATCHKEY_PUBLIC_URL`, or the bound address).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port of the metrics listener, if `LATCHKEY_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests; the metrics listener
    /// and the background tasks stop with the main one.
    pub async fn run(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let served = self.server.await;
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        self.tasks.stop();
        served
    }
}

fn build_state(settings: Settings, store: Store, metrics: Metrics) -> anyhow::Result<AppState> {
    let keys = match &settings.jwt_alg {
        JwtAlg::Hs256 { secret } => KeySet::hs256(secret),
        JwtAlg::Stored(alg) => {
            let now = clock::now();
            let usable = store.usable_keys_blocking(alg.name(), now)?;
            if usable.iter().filter(|k| k.is_live()).count() < 2 {
                // The first start with this algorithm: a current and a next key.
                let fresh = [
                    alg.generate(now)?,
                    alg.generate(now + Duration::from_millis(1))?,
                ];
                store.ensure_signing_keys_blocking(fresh)?;
            }
            let since = usable_since(now, settings.token_horizon());
            KeySet::stored(*alg, &store.usable_keys_blocking(alg.name(), since)?)
        }
    };
    let revoked = RevokedSessions::new(settings.token_horizon());
    revoked.sync_blocking(&store)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let successor_key = successor_key(&store)?;
    let mfa_key = mfa_key(&settings.mfa_key, &store)?;
    Ok(AppState {
        successor_key,
        mfa_key,
        passkeys: Passkeys::for_public_url(&settings.public_url),
        tokens: AccessTokens::new(
            Keys::new(keys),
            settings.public_url.clone(),
            i64::try_from(settings.access_ttl.as_secs()).unwrap_or(i64::MAX),
        ),
        hasher: Hasher::new(workers)?,
        revoked,
        store,
        settings,
        metrics,
    })
}

/// `LATCHKEY_METRICS_BIND`: a listener of its own, one worker, `GET /metrics` and
/// nothing else (never on the main listener, so the public cannot read it).
fn metrics_server(state: Data<AppState>, listener: TcpListener) -> anyhow::Result<(Server, u16)> {
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(api::metrics::exposition))
            .default_service(web::to(api::metrics::not_here))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((server, port))
}

/// Counts and times each request by the route that answered it: the outermost layer,
/// so refusals by the layers inside (431, 403 from the origin check) count too.
fn counted<S, B>(
    requests: &RequestMetrics,
    req: ServiceRequest,
    routes: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, S::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    let started = requests.start();
    let requests = requests.clone();
    let call = routes.call(req);
    async move {
        let response = call.await?;
        if started.is_some() {
            // Every resource is named by its full pattern (see `api` and `pages`).
            let route = response
                .request()
                .match_name()
                .unwrap_or(metrics::UNMATCHED);
            requests.answered(started, route, response.status().as_u16());
        }
        Ok(response)
    }
}

/// A secret shared by every instance on the database (and every restart): made by the
/// first to ask, kept in `app_secrets`.
fn shared_secret<const N: usize>(store: &Store, name: &'static str) -> anyhow::Result<[u8; N]> {
    let mut fresh = [0u8; N];
    rand::fill(&mut fresh[..]);
    let stored = store.shared_secret_blocking(name, fresh.to_vec())?;
    stored
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the stored secret {name} is malformed (app_secrets)"))
}

/// The key second-factor secrets are sealed with, from where `source` says. The database
/// keeps a check value of it, so an instance started with another key than the one the
/// stored factors were sealed with stops at once instead of refusing every code.
fn mfa_key(source: &MfaKeySource, store: &Store) -> anyhow::Result<MfaKey> {
    let key = match source {
        MfaKeySource::Given(key) => key.clone(),
        MfaKeySource::File(path) => mfa_key_file(path)?,
        MfaKeySource::Database => {
            tracing::warn!(
                "LATCHKEY_MFA_KEY is not set: the key sealing second factors is kept in the database"
            );
            MfaKey::new(&shared_secret(store, "mfa_key")?)
        }
    };
    let check = key.check_value();
    let stored = store.shared_secret_blocking("mfa_key_check", check.clone())?;
    if stored != check {
        if store.any_totp_factor_blocking()? {
            anyhow::bail!(
                "LATCHKEY_MFA_KEY: not the key this database's second factors were sealed with ({source:?})"
            );
        }
        store.replace_secret_blocking("mfa_key_check", check)?;
    }
    Ok(key)
}

/// The key in `path`, or a new one written there (readable by this user only).
fn mfa_key_file(path: &std::path::Path) -> anyhow::Result<MfaKey> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => MfaKey::parse(&text)
            .ok_or_else(|| anyhow::anyhow!("the second-factor key file {shown} is malformed")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = MfaKey::generate_text();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    anyhow::anyhow!("cannot create the second-factor key file {shown}: {e}")
                })?;
            writeln!(file, "{text}").map_err(|e| {
                anyhow::anyhow!("cannot write the second-factor key file {shown}: {e}")
            })?;
            tracing::info!(file = %shown, "made the key second factors are sealed with");
            Ok(MfaKey::parse(&text).expect("a generated key parses"))
        }
        Err(e) => anyhow::bail!("cannot read the second-factor key file {shown}: {e}"),
    }
}

/// The key that signs and encrypts the pages' cookie session (CSRF token, flash), so
/// every instance on the database, and every restart, accepts the same cookies.
fn session_key(store: &Store) -> anyhow::Result<Key> {
    let stored: [u8; 64] = shared_secret(store, "session_key")?;
    Ok(Key::from(&stored))
}

/// The secret refresh-token successors are derived with: every instance must derive the
/// same successor for a repeat within the grace.
fn successor_key(store: &Store) -> anyhow::Result<SuccessorKey> {
    Ok(SuccessorKey::new(shared_secret(
        store,
        "refresh_successor_key",
    )?))
}

/// `lk_session`: the pages' cookie session, `HttpOnly; SameSite=Lax; Path=/`, ending
/// with the browser session, content encrypted and authenticated.
fn cookie_session(key: Key, https: bool) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name(cookies::SESSION.to_owned())
        .cookie_secure(https)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(BrowserSession::default())
        .build()
}

/// HEAD is GET without the body (RFC 9110 §9.3.2): GET routes answer it, and the HTTP
/// layer, which saw the request as HEAD, sends the headers only. Not under `/auth/`:
/// `GET /auth/renew` rotates the refresh token, which a HEAD must not do.
fn head_as_get<S>(mut req: ServiceRequest, routes: &S) -> S::Future
where
    S: Service<ServiceRequest>,
{
    if req.method() == Method::HEAD && !req.path().starts_with("/auth/") {
        req.head_mut().method = Method::GET;
    }
    routes.call(req)
}

/// Heads over `HEAD_LIMIT` get an empty 431 (RFC 6585) before anything else runs.
fn head_limit<S, B>(
    req: ServiceRequest,
    routes: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, S::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    let call = if head_size(&req) > HEAD_LIMIT {
        Err(req)
    } else {
        Ok(routes.call(req))
    };
    async move {
        match call {
            Err(req) => Ok(req
                .into_response(HttpResponse::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ))
                .map_into_right_body()),
            Ok(call) => call.await.map(ServiceResponse::map_into_left_body),
        }
    }
}

/// Gives the request its id (see `request_id`): a span around everything it logs, and the
/// `X-Request-Id` of its response.
fn with_request_id<S, B>(
    req: ServiceRequest,
    routes: &S,
) -> impl std::future::Future<Output = Result<S::Response, S::Error>>
where
    S: Service<ServiceRequest, Response = actix_web::dev::ServiceResponse<B>>,
{
    use tracing::Instrument as _;
    let id = request_id::of(&req);
    let span = tracing::info_span!("request", id = id.as_str());
    // The handler's future is created inside the span too: what it logs synchronously
    // at its start carries the id as well.
    let call = span.in_scope(|| routes.call(req));
    async move {
        let mut response = call.await?;
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static(request_id::HEADER),
                value,
            );
        }
        Ok(response)
    }
    .instrument(span)
}

fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cache-Control", "no-store"));
    if https {
        headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}
