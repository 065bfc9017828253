//! Runtime settings for `serve`, read from flags or their environment variables.
//! Values arrive as strings and are checked here so that a bad one stops start-up
//! with a message naming the variable.

use std::time::Duration;

use clap::Args;

use crate::client::ProxyRange;
use crate::domain::Role;
use crate::mfa::MfaKey;
use crate::tokens::access::LEEWAY_SECS;
use crate::tokens::keys::KeyAlg;

/// Every setting of `serve`; each flag also reads its environment variable
/// (docs/configuration.md).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Create the demo accounts `admin` and `alice` (loopback binds only).
    #[arg(long)]
    pub demo: bool,
    /// Public base URL: the token issuer and the passkey relying party; https turns on
    /// Secure cookies and HSTS. Default: http:// and the bind address (with --demo on a
    /// loopback address, http://localhost and the port, where passkeys work).
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Access-token lifetime (30s, 15m, 2h, 7d).
    #[arg(long, env = "LATCHKEY_ACCESS_TTL", default_value = "15m")]
    pub access_ttl: String,
    /// Lifetime of each refresh token: the idle timeout of a session.
    #[arg(long, env = "LATCHKEY_REFRESH_TTL", default_value = "7d")]
    pub refresh_ttl: String,
    /// Absolute lifetime of a session.
    #[arg(long, env = "LATCHKEY_SESSION_MAX", default_value = "30d")]
    pub session_max: String,
    /// Window in which a just-rotated refresh token may be presented again.
    #[arg(long, env = "LATCHKEY_REFRESH_REUSE_GRACE", default_value = "10s")]
    pub refresh_reuse_grace: String,
    /// Access-token signature algorithm: EdDSA, ES256, RS256 (keys kept in the database)
    /// or HS256 (LATCHKEY_JWT_SECRET).
    #[arg(long, env = "LATCHKEY_JWT_ALG", default_value = "EdDSA")]
    pub jwt_alg: String,
    /// Automatic rotation of the signing key, counted from when the current key started
    /// signing (a duration, or `off`); EdDSA, ES256 and RS256 only.
    #[arg(long, env = "LATCHKEY_KEY_ROTATION", default_value = "30d")]
    pub key_rotation: String,
    /// HS256 secret (at least 32 bytes); prefer the environment variable over the flag.
    #[arg(long, env = "LATCHKEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Failed sign-ins per (username, client IP) before a lockout.
    #[arg(long, env = "LATCHKEY_LOGIN_MAX_FAILURES", default_value = "5")]
    pub login_max_failures: String,
    /// Lockout window.
    #[arg(long, env = "LATCHKEY_LOGIN_LOCKOUT", default_value = "15m")]
    pub login_lockout: String,
    /// Who must use two-step sign-in: off, admins or all. Those accounts enrol at their
    /// next sign-in before any other page, and API sign-ins without a second factor
    /// answer mfa_required.
    #[arg(long, env = "LATCHKEY_REQUIRE_MFA", default_value = "off")]
    pub require_mfa: String,
    /// The key second-factor secrets are sealed with: 43 base64url characters (32 bytes;
    /// `openssl rand 32 | basenc --base64url | tr -d =`). Default: a key file beside a
    /// SQLite database; on PostgreSQL set it (the same on every instance).
    #[arg(long, env = "LATCHKEY_MFA_KEY", hide_env_values = true)]
    pub mfa_key: Option<String>,
    /// Comma-separated proxy IPs or CIDR ranges whose X-Forwarded-For is believed.
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Address of a second listener serving only GET /metrics (Prometheus text format);
    /// unset: no metrics are kept.
    #[arg(long, env = "LATCHKEY_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Database connections of this process: readers on SQLite, all on PostgreSQL.
    #[arg(long, env = "LATCHKEY_DB_POOL", default_value = "16")]
    pub db_pool: String,
    /// Log filter.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Log lines as text, or as one JSON object per line (on stderr).
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// `LATCHKEY_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// `LATCHKEY_LOG_FORMAT`, checked.
    pub fn log_format(&self) -> Result<LogFormat, String> {
        match self.log_format.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "LATCHKEY_LOG_FORMAT: '{}' is not text or json",
                other.escape_debug()
            )),
        }
    }

    /// `LATCHKEY_DB_POOL`, checked: 1 to 1000 connections.
    pub fn db_pool(&self) -> Result<u32, String> {
        self.db_pool
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                format!(
                    "LATCHKEY_DB_POOL: '{}' is not a whole number from 1 to 1000",
                    self.db_pool
                )
            })
    }
}

#[derive(Clone)]
pub enum JwtAlg {
    /// Keys generated and kept in the database, published as JWKS.
    Stored(KeyAlg),
    Hs256 {
        secret: Vec<u8>,
    },
}

impl JwtAlg {
    pub fn name(&self) -> &'static str {
        match self {
            JwtAlg::Stored(alg) => alg.name(),
            JwtAlg::Hs256 { .. } => "HS256",
        }
    }

    /// The algorithm of the stored keys, unless the secret signs.
    pub fn stored(&self) -> Option<KeyAlg> {
        match self {
            JwtAlg::Stored(alg) => Some(*alg),
            JwtAlg::Hs256 { .. } => None,
        }
    }
}

impl std::fmt::Debug for JwtAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtAlg::Stored(alg) => f.write_str(alg.name()),
            JwtAlg::Hs256 { .. } => f.write_str("HS256(<secret>)"),
        }
    }
}

/// Checked settings. Durations are whole seconds, as they were given.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub public_url: String,
    pub secure_cookies: bool,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_max: Duration,
    pub refresh_reuse_grace: Duration,
    pub jwt_alg: JwtAlg,
    /// How long a key signs before the automatic rotation; `None`: off.
    pub key_rotation: Option<Duration>,
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    pub trusted_proxies: Vec<ProxyRange>,
    /// Where the second-factor key comes from (see `MfaKeySource`).
    pub mfa_key: MfaKeySource,
    pub require_mfa: MfaPolicy,
    /// `LATCHKEY_METRICS_BIND`: where `/metrics` is served; `None`: nowhere.
    pub metrics_bind: Option<String>,
}

/// `LATCHKEY_REQUIRE_MFA`: whose accounts must have a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    Off,
    Admins,
    All,
}

impl MfaPolicy {
    pub fn applies(self, role: Role) -> bool {
        match self {
            MfaPolicy::Off => false,
            MfaPolicy::Admins => role == Role::Admin,
            MfaPolicy::All => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MfaPolicy::Off => "off",
            MfaPolicy::Admins => "admins",
            MfaPolicy::All => "all",
        }
    }
}

/// The key second-factor secrets are sealed with.
#[derive(Clone)]
pub enum MfaKeySource {
    /// `LATCHKEY_MFA_KEY`.
    Given(MfaKey),
    /// A key file, made on first use (beside a SQLite database).
    File(std::path::PathBuf),
    /// Kept in the database itself (PostgreSQL without `LATCHKEY_MFA_KEY`): a copy of
    /// the database then holds it too, which start-up warns about.
    Database,
}

impl std::fmt::Debug for MfaKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MfaKeySource::Given(_) => f.write_str("<set>"),
            MfaKeySource::File(path) => write!(f, "file {}", path.display()),
            MfaKeySource::Database => f.write_str("in the database"),
        }
    }
}

/// The per-IP ceiling is this many times the per-(username, IP) limit.
pub const IP_CEILING_FACTOR: u32 = 20;

impl Settings {
    /// Failed sign-ins from one client IP, whatever the usernames, within
    /// `LATCHKEY_LOGIN_LOCKOUT` before that IP is locked out for as long: a ceiling against
    /// credential stuffing, high enough for many people behind one NAT.
    pub fn login_ip_max_failures(&self) -> u32 {
        self.login_max_failures.saturating_mul(IP_CEILING_FACTOR)
    }

    /// The longest an access token can outlive the moment its key retired or its session
    /// was revoked: its lifetime plus the verification leeway, plus a margin.
    pub fn token_horizon(&self) -> Duration {
        Self::horizon_of(self.access_ttl)
    }

    /// `token_horizon` for an access-token lifetime of `access_ttl`.
    pub fn horizon_of(access_ttl: Duration) -> Duration {
        access_ttl + Duration::from_secs(LEEWAY_SECS + 5)
    }

    pub fn from_args(args: &ServeArgs) -> Result<Self, String> {
        let public_url = match &args.public_url {
            Some(url) => lower_scheme(url.trim_end_matches('/')),
            None if args.demo => demo_public_url(&args.bind),
            None => format!("http://{}", args.bind),
        };
        let secure_cookies = if public_url.starts_with("https://") {
            true
        } else if public_url.starts_with("http://") {
            false
        } else {
            return Err(format!(
                "LATCHKEY_PUBLIC_URL: '{}' is not an http:// or https:// URL",
                public_url.escape_debug()
            ));
        };
        let jwt_alg = match args.jwt_alg.as_str() {
            name if KeyAlg::parse(name).is_some() => {
                JwtAlg::Stored(KeyAlg::parse(name).expect("checked"))
            }
            "HS256" => match &args.jwt_secret {
                Some(secret) if secret.len() < 32 => {
                    return Err(format!("LATCHKEY_JWT_SECRET: must be at least 32 bytes; {GOOD_SECRET}"))
                }
                Some(secret) if estimated_entropy_bits(secret.as_bytes()) < 128.0 => {
                    return Err(format!(
                        "LATCHKEY_JWT_SECRET: too predictable (repeated or few distinct characters); {GOOD_SECRET}"
                    ))
                }
                Some(secret) => JwtAlg::Hs256 {
                    secret: secret.as_bytes().to_vec(),
                },
                None => {
                    return Err(
                        "LATCHKEY_JWT_SECRET: required when LATCHKEY_JWT_ALG is HS256".into(),
                    )
                }
            },
            other => {
                return Err(format!(
                    "LATCHKEY_JWT_ALG: '{}' is not EdDSA, ES256, RS256 or HS256",
                    other.escape_debug()
                ))
            }
        };
        let login_max_failures = args
            .login_max_failures
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!(
                    "LATCHKEY_LOGIN_MAX_FAILURES: '{}' is not a positive whole number",
                    args.login_max_failures.escape_debug()
                )
            })?;
        let trusted_proxies = match &args.trusted_proxies {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ProxyRange>()
                        .map_err(|e| format!("LATCHKEY_TRUSTED_PROXIES: {e}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let settings = Settings {
            bind: args.bind.clone(),
            public_url,
            secure_cookies,
            access_ttl: duration("LATCHKEY_ACCESS_TTL", &args.access_ttl)?,
            refresh_ttl: duration("LATCHKEY_REFRESH_TTL", &args.refresh_ttl)?,
            session_max: duration("LATCHKEY_SESSION_MAX", &args.session_max)?,
            refresh_reuse_grace: duration_or_zero(
                "LATCHKEY_REFRESH_REUSE_GRACE",
                &args.refresh_reuse_grace,
            )?,
            jwt_alg,
            key_rotation: match args.key_rotation.as_str() {
                "off" => None,
                raw => Some(
                    duration("LATCHKEY_KEY_ROTATION", raw).map_err(|e| format!("{e}, or off"))?,
                ),
            },
            login_max_failures,
            login_lockout: duration("LATCHKEY_LOGIN_LOCKOUT", &args.login_lockout)?,
            trusted_proxies,
            mfa_key: match &args.mfa_key {
                Some(text) => MfaKeySource::Given(MfaKey::parse(text).ok_or(
                    "LATCHKEY_MFA_KEY: must be 32 random bytes as 43 base64url characters",
                )?),
                None => MfaKeySource::Database,
            },
            require_mfa: match args.require_mfa.as_str() {
                "off" => MfaPolicy::Off,
                "admins" => MfaPolicy::Admins,
                "all" => MfaPolicy::All,
                other => {
                    return Err(format!(
                        "LATCHKEY_REQUIRE_MFA: '{}' is not off, admins or all",
                        other.escape_debug()
                    ))
                }
            },
            metrics_bind: args
                .metrics_bind
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        };
        // Port 0 picks a free port for each listener: two of those never collide.
        if settings.metrics_bind.as_deref() == Some(settings.bind.as_str())
            && !settings.bind.ends_with(":0")
        {
            return Err(
                "LATCHKEY_METRICS_BIND: must not be LATCHKEY_BIND (metrics are never served on the main listener)"
                    .into(),
            );
        }
        if args.jwt_secret.is_some() && !matches!(settings.jwt_alg, JwtAlg::Hs256 { .. }) {
            return Err(
                "LATCHKEY_JWT_SECRET: set, but LATCHKEY_JWT_ALG is not HS256 (unset the secret or pick HS256)"
                    .into(),
            );
        }
        if settings.refresh_ttl < settings.access_ttl {
            return Err(
                "LATCHKEY_REFRESH_TTL: must not be shorter than LATCHKEY_ACCESS_TTL".into(),
            );
        }
        if settings.session_max < settings.refresh_ttl {
            return Err(
                "LATCHKEY_SESSION_MAX: must not be shorter than LATCHKEY_REFRESH_TTL".into(),
            );
        }
        if settings.refresh_reuse_grace >= settings.refresh_ttl {
            return Err(
                "LATCHKEY_REFRESH_REUSE_GRACE: must be shorter than LATCHKEY_REFRESH_TTL".into(),
            );
        }
        Ok(settings)
    }
}

/// The demo's default public URL: browsers offer passkeys only on a host name, so a
/// loopback IP address with a fixed port becomes `localhost` and that port.
fn demo_public_url(bind: &str) -> String {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() && addr.port() != 0 => {
            format!("http://localhost:{}", addr.port())
        }
        _ => format!("http://{bind}"),
    }
}

/// `HTTPS://Host` → `https://Host`: schemes are case-insensitive, the issuer is compared exactly.
fn lower_scheme(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    }
}

const DURATION_HELP: &str = "use whole numbers with s, m, h or d: 30s, 15m, 2h, 7d, 1h30m";

/// A duration that must be positive (a lifetime, a window).
fn duration(var: &str, raw: &str) -> Result<Duration, String> {
    match parse_duration(raw) {
        Some(0) => Err(format!("{var}: must be longer than 0s")),
        Some(secs) => Ok(seconds(secs)),
        None => Err(format!(
            "{var}: '{}' is not a duration ({DURATION_HELP})",
            raw.escape_debug()
        )),
    }
}

/// A duration where `0s` means "none" (the reuse grace: strictly single use).
fn duration_or_zero(var: &str, raw: &str) -> Result<Duration, String> {
    parse_duration(raw).map(seconds).ok_or_else(|| {
        format!(
            "{var}: '{}' is not a duration ({DURATION_HELP})",
            raw.escape_debug()
        )
    })
}

/// `parse_duration`'s seconds as a `Duration` (they are never negative).
pub fn seconds(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// A duration as `parse_duration` reads it, largest units first: `1d12h`, `15m`, `0s`
/// (whole seconds: what the settings hold).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// `30s`, `15m`, `2h`, `7d`, or several in a row from the largest unit down (`1h30m`,
/// `1d12h`) → seconds. Signs, spaces, repeated or misordered units and overflow are
/// refused; `0s` is zero (callers decide whether zero can work).
pub fn parse_duration(raw: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut last_scale = i64::MAX;
    let mut digits = String::new();
    for c in raw.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let scale = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        if digits.is_empty() || digits.len() > 9 || scale >= last_scale {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(scale)?)?;
        last_scale = scale;
        digits.clear();
    }
    (digits.is_empty() && last_scale != i64::MAX).then_some(total)
}

const GOOD_SECRET: &str = "make one with: openssl rand -base64 48";

/// A rough estimate of the secret's entropy: its length times the Shannon entropy of its
/// byte distribution. A random 32-byte base64 secret scores about 150 bits; a word
/// repeated to 32 bytes scores far below 128.
fn estimated_entropy_bits(secret: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for b in secret {
        counts[*b as usize] += 1;
    }
    let n = secret.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // A repeated block carries no more than one copy of itself.
    per_byte * repeat_period(secret) as f64
}

/// The shortest p such that the secret is a prefix of its first p bytes repeated (catches
/// "passwordpasswordpasswordpassword" cut at any length).
fn repeat_period(secret: &[u8]) -> usize {
    (1..=secret.len())
        .find(|p| secret.iter().enumerate().all(|(i, b)| *b == secret[i % p]))
        .unwrap_or(secret.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_is_served_on_localhost_where_passkeys_work() {
        use super::demo_public_url;
        assert_eq!(demo_public_url("127.0.0.1:8080"), "http://localhost:8080");
        assert_eq!(demo_public_url("[::1]:9000"), "http://localhost:9000");
        // Port 0 is picked at bind time, and a name stays as given.
        assert_eq!(demo_public_url("127.0.0.1:0"), "http://127.0.0.1:0");
        assert_eq!(demo_public_url("localhost:8080"), "http://localhost:8080");
    }

    use super::{format_duration, parse_duration};

    #[test]
    fn the_public_url_scheme_is_case_insensitive() {
        assert_eq!(
            super::lower_scheme("HTTPS://Auth.Example"),
            "https://Auth.Example"
        );
        assert_eq!(super::lower_scheme("no-scheme"), "no-scheme");
    }

    #[test]
    fn durations_in_each_unit() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("0s"), Some(0));
    }

    #[test]
    fn durations_print_as_they_parse() {
        for (secs, text) in [
            (0, "0s"),
            (900, "15m"),
            (129_600, "1d12h"),
            (3_661, "1h1m1s"),
        ] {
            assert_eq!(format_duration(super::seconds(secs)), text);
            assert_eq!(parse_duration(text), Some(secs));
        }
    }

    #[test]
    fn compound_durations_run_from_the_largest_unit_down() {
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1d12h"), Some(129_600));
        assert_eq!(parse_duration("2m5s"), Some(125));
        for bad in ["30m1h", "1h1h", "1h30", "h30m", "1h 30m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn predictable_secrets_score_below_128_bits() {
        let repeated = "secret".repeat(6);
        assert!(super::estimated_entropy_bits(repeated.as_bytes()) < 128.0);
        assert!(super::estimated_entropy_bits(&[b'a'; 64]) < 128.0);
        let random = "q3Zr8Jw0pL2vXy7Tn5Kc1Bm9Hd4Fg6Sa0Ue2Ri8Oq";
        assert!(super::estimated_entropy_bits(random.as_bytes()) >= 128.0);
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "",
            "s",
            "15",
            "-1m",
            "+1m",
            "1.5h",
            " 1m",
            "1m ",
            "1w",
            "1ms",
            "9999999999d",
            "1é",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
