//! The command line: `serve`, `user …`, `sessions …`, `keys …`, `audit …`.
//! Every command opens the database (applying migrations) and prints one line on
//! stderr with a non-zero exit when it fails.

use std::io::{BufRead, IsTerminal};
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};

use crate::api::views::{SessionList, SessionView, UserList, UserView};
use crate::clock::{self, rfc3339};
use crate::config::{self, LogFormat, MfaKeySource, ServeArgs, Settings};
use crate::db::{self, Conn};
use crate::domain::{Password, Role, SessionId, Username};
use crate::passwords;
use crate::startup::Application;
use crate::store::sessions::RevokeReason;
use crate::store::{audit, keys, mfa, sessions, users, Actor, StoreError};
use crate::tokens::keys::{published_until, KeyAlg};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Self-hosted sign-in service")]
struct Cli {
    /// Database: a SQLite file path (created if needed) or a postgres:// URL; migrated by every command.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "latchkey.db"
    )]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web service.
    Serve(Box<ServeArgs>),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List and revoke sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// List and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the configuration and the database exactly as `serve` would, print the
    /// effective settings, and exit.
    Check(Box<ServeArgs>),
    /// Print a shell completion script (e.g. `latchkey completions bash > /etc/bash_completion.d/latchkey`).
    Completions {
        /// The shell: bash, zsh or fish.
        shell: CompletionShell,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        /// The username.
        name: String,
        /// The role: user or admin.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print one JSON document (the API's field names) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// The username.
        name: String,
        /// Print one JSON document (the API's field names) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user after revoking every session (the audit log keeps its rows).
    Delete {
        /// The username.
        name: String,
    },
    /// Remove a user's second factors (TOTP, recovery codes and passkeys) and revoke their
    /// sessions: for a user who lost their authenticator.
    ResetMfa {
        /// The username.
        name: String,
    },
    /// Change a user's role.
    SetRole {
        /// The username.
        name: String,
        /// The new role: user or admin.
        role: String,
    },
    /// Disable a user and revoke their sessions.
    Disable {
        /// The username.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The username.
        name: String,
    },
    /// Set a user's password and revoke their sessions.
    Passwd {
        /// The username.
        name: String,
        /// Read the new password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List active sessions.
    List {
        /// Only this user's sessions (an unknown user has none).
        #[arg(long)]
        user: Option<String>,
        /// Print one JSON document (the API's field names) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one session by id, or every session of a user.
    Revoke {
        /// The session's id (as `sessions list` and the API show it).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Revoke every session of this user instead.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys: kid, algorithm, state (current, next, retired, revoked),
    /// created, and until when a retired key stays published.
    List {
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// The servers' access-token lifetime: a retired key stays published until the
        /// last token it signed has expired.
        #[arg(long, env = "LATCHKEY_ACCESS_TTL", default_value = "15m")]
        access_ttl: String,
    },
    /// Promote the next signing key to current and publish a new next key (for every
    /// algorithm with keys); running servers sign with the new current key within 10
    /// seconds.
    Rotate,
    /// Revoke a (compromised) key: it leaves the JWKS and running servers refuse its
    /// tokens within 10 seconds; if it was current, the next key is promoted.
    Revoke {
        /// The key's kid, as `keys list` shows it.
        kid: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Newest events first.
    List {
        /// Only events about this user (an unknown user has none).
        #[arg(long)]
        user: Option<String>,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// The most events to print.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("latchkey: a subcommand is missing (see --help)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!(
                "latchkey: {}",
                one_line_usage_error(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the message and its causes, joined.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("latchkey: {message}");
            ExitCode::FAILURE
        }
    }
}

/// clap explains a usage mistake over several lines; our errors are one line. Keep the message and
/// the hint, drop the usage block.
fn one_line_usage_error(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:"))
        .filter(|line| !line.is_empty())
        .map(|line| line.trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ")
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.database, *args),
        Command::User(cmd) => user(&mut db::connect(&cli.database)?, cmd),
        Command::Sessions(cmd) => sessions_cmd(&mut db::connect(&cli.database)?, cmd),
        Command::Keys(cmd) => keys_cmd(&mut db::connect(&cli.database)?, cmd),
        Command::Audit(cmd) => audit_cmd(&mut db::connect(&cli.database)?, cmd),
        Command::Check(args) => check(&cli.database, &args),
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "latchkey", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn check(database: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::from_args(args).map_err(anyhow::Error::msg)?;
    settings.mfa_key = mfa_key_source(database, settings.mfa_key)?;
    tracing_subscriber::EnvFilter::try_new(&args.log_filter).map_err(|e| {
        anyhow!(
            "RUST_LOG: '{}' is not a log filter: {e}",
            args.log_filter.escape_debug()
        )
    })?;
    db::connect(database)?;
    let secs = config::format_duration;
    let rows: Vec<(&str, String)> = vec![
        ("DATABASE_URL", db::display_url(database)),
        ("LATCHKEY_BIND", settings.bind.clone()),
        ("LATCHKEY_PUBLIC_URL", settings.public_url.clone()),
        (
            "LATCHKEY_METRICS_BIND",
            settings
                .metrics_bind
                .clone()
                .unwrap_or_else(|| "<unset>".into()),
        ),
        ("LATCHKEY_ACCESS_TTL", secs(settings.access_ttl)),
        ("LATCHKEY_REFRESH_TTL", secs(settings.refresh_ttl)),
        ("LATCHKEY_SESSION_MAX", secs(settings.session_max)),
        (
            "LATCHKEY_REFRESH_REUSE_GRACE",
            secs(settings.refresh_reuse_grace),
        ),
        ("LATCHKEY_JWT_ALG", settings.jwt_alg.name().into()),
        (
            "LATCHKEY_KEY_ROTATION",
            match (settings.jwt_alg.stored(), settings.key_rotation) {
                (None, _) => "off (HS256 has no stored keys)".into(),
                (Some(_), None) => "off".into(),
                (Some(_), Some(every)) => secs(every),
            },
        ),
        (
            "LATCHKEY_JWT_SECRET",
            if args.jwt_secret.is_some() {
                "<set>"
            } else {
                "<unset>"
            }
            .into(),
        ),
        ("LATCHKEY_MFA_KEY", format!("{:?}", settings.mfa_key)),
        ("LATCHKEY_REQUIRE_MFA", settings.require_mfa.name().into()),
        (
            "LATCHKEY_LOG_FORMAT",
            match args.log_format().map_err(anyhow::Error::msg)? {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        ),
        (
            "LATCHKEY_LOGIN_MAX_FAILURES",
            settings.login_max_failures.to_string(),
        ),
        ("LATCHKEY_LOGIN_LOCKOUT", secs(settings.login_lockout)),
        (
            "LATCHKEY_TRUSTED_PROXIES",
            settings
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "LATCHKEY_DB_POOL",
            args.db_pool().map_err(anyhow::Error::msg)?.to_string(),
        ),
        ("RUST_LOG", args.log_filter.clone()),
    ];
    for (name, value) in rows {
        println!("{name}={value}");
    }
    Ok(())
}

/// Without `LATCHKEY_MFA_KEY`, a SQLite database's second-factor key is a file beside it
/// (`<database>.mfa-key`): a copy of the database alone then opens no second factor.
fn mfa_key_source(database: &str, given: MfaKeySource) -> anyhow::Result<MfaKeySource> {
    Ok(match (given, db::locate(database)?) {
        (MfaKeySource::Database, db::Location::Sqlite(path)) => {
            MfaKeySource::File(format!("{path}.mfa-key").into())
        }
        (source, _) => source,
    })
}

fn serve(database: &str, args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::from_args(&args).map_err(anyhow::Error::msg)?;
    settings.mfa_key = mfa_key_source(database, settings.mfa_key)?;
    let pool = args.db_pool().map_err(anyhow::Error::msg)?;
    let log_format = args.log_format().map_err(anyhow::Error::msg)?;
    init_logging(&args.log_filter, log_format)?;
    if args.demo && !is_loopback(&settings.bind)? {
        bail!(
            "--demo only binds to a loopback address (127.0.0.1, ::1, localhost), not {}",
            settings.bind
        );
    }
    if args.demo {
        create_demo_accounts(&mut db::connect(database)?)?;
    }
    let db = db::open(database, pool)?;
    let demo = args.demo;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone(), db)?;
        if demo {
            println!("sign in at {}/login", app.issuer());
        }
        tracing::info!(
            "latchkey listening on {} (port {}), issuer {}",
            settings.bind,
            app.port(),
            app.issuer()
        );
        if let (Some(bind), Some(port)) = (&settings.metrics_bind, app.metrics_port()) {
            tracing::info!("metrics on {bind} (metrics port {port}), GET /metrics");
        }
        app.run().await.context("server failed")
    })
}

/// actix-http logs every malformed request a client sends (a bad header line, a head
/// over its limit) as an ERROR from its dispatcher, though the client already got its
/// 400 / 431 and nothing is wrong with the server. Those lines are dropped unless the
/// filter names `actix_http` itself.
const QUIET_CLIENT_ERRORS: &str = "actix_http::h1::dispatcher=off";

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let directives = if filter.contains("actix_http") {
        filter.to_owned()
    } else {
        format!("{filter},{QUIET_CLIENT_ERRORS}")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).map_err(|e| {
        anyhow!(
            "RUST_LOG: '{}' is not a log filter: {e}",
            filter.escape_debug()
        )
    })?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // One object per line: the event's fields at the top, the request's id under `span`.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    }
    .map_err(|e| anyhow!("cannot set up logging: {e}"))
}

fn is_loopback(bind: &str) -> anyhow::Result<bool> {
    let addrs: Vec<_> = bind
        .to_socket_addrs()
        .with_context(|| format!("LATCHKEY_BIND: '{bind}' is not an address"))?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

fn create_demo_accounts(conn: &mut Conn) -> anyhow::Result<()> {
    for (name, role) in [("admin", Role::Admin), ("alice", Role::User)] {
        let username = Username::parse(name).map_err(anyhow::Error::msg)?;
        if users::find_by_name(conn, &username)?.is_some() {
            println!("demo account {name} exists; its password is unchanged");
            continue;
        }
        let password = crate::tokens::random_b64(15);
        let hash = passwords::hash_blocking(
            &Password::parse(password.clone()).map_err(anyhow::Error::msg)?,
        )?;
        users::create(conn, clock::now(), &username, &hash, role, &Actor::cli())?;
        println!("demo account created: {name} / {password} (role {role})");
    }
    Ok(())
}

fn find_user(conn: &mut Conn, raw: &str) -> anyhow::Result<users::UserRow> {
    let name = Username::parse(raw).map_err(|e| anyhow!("'{raw}': {e}"))?;
    users::find_by_name(conn, &name)?.ok_or_else(|| anyhow!("no user named '{name}'"))
}

fn read_password(from_stdin: bool) -> anyhow::Result<Password> {
    let raw = if from_stdin {
        let mut line = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        if read == 0 {
            bail!("no password on standard input");
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        line
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for the password on: pipe it in with --password-stdin");
        }
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again =
            rpassword::prompt_password("Password again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    };
    Password::parse(raw).map_err(anyhow::Error::msg)
}

/// Every change is stamped when it is written (`clock::now()` at the call), never before a
/// password was read or hashed: running servers date revocations by these stamps.
fn user(conn: &mut Conn, cmd: UserCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let username = Username::parse(&name).map_err(|e| anyhow!("'{name}': {e}"))?;
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            if users::find_by_name(conn, &username)?.is_some() {
                bail!("the user '{username}' already exists");
            }
            let hash = passwords::hash_blocking(&read_password(password_stdin)?)?;
            let row = users::create(conn, clock::now(), &username, &hash, role, &actor)
                .map_err(store_error)?;
            println!(
                "created user {} (id {}, role {})",
                row.username, row.id, role
            );
        }
        UserCommand::List { json: true } => {
            let users = users::list(conn)?.into_iter().map(UserView::from).collect();
            print_json(&UserList { users })?;
        }
        UserCommand::Show { name, json } => {
            let user = find_user(conn, &name)?;
            let active =
                sessions::list_active(conn, clock::now(), Some(user.id), None, i64::MAX)?.len();
            if json {
                print_json(&UserView::from(user))?;
            } else {
                println!("id:        {}", user.id);
                println!("username:  {}", user.username);
                println!("role:      {}", user.role);
                println!(
                    "status:    {}",
                    if user.disabled { "disabled" } else { "active" }
                );
                println!("created:   {}", rfc3339(user.created_at));
                println!("sessions:  {active} active");
            }
        }
        UserCommand::List { json: false } => {
            let rows = users::list(conn)?;
            print_table(
                &["ID", "USERNAME", "ROLE", "STATUS", "CREATED"],
                rows.iter().map(|u| {
                    vec![
                        u.id.to_string(),
                        u.username.clone(),
                        u.role.to_string(),
                        if u.disabled { "disabled" } else { "active" }.to_owned(),
                        rfc3339(u.created_at),
                    ]
                }),
            );
        }
        UserCommand::Delete { name } => {
            let user = find_user(conn, &name)?;
            let revoked = users::delete(conn, clock::now(), user.id, &actor)?.sessions;
            println!(
                "deleted {} after revoking {revoked} session(s)",
                user.username
            );
        }
        UserCommand::ResetMfa { name } => {
            let user = find_user(conn, &name)?;
            let (had, _) = mfa::remove(conn, clock::now(), user.id, true, &actor)?;
            println!(
                "{}: {} and revoked their sessions",
                user.username,
                if had {
                    "removed two-step sign-in and passkeys"
                } else {
                    "had no second factor"
                }
            );
        }
        UserCommand::SetRole { name, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let user = find_user(conn, &name)?;
            users::set_role(conn, clock::now(), user.id, role, &actor)?;
            println!("{} is now {role}", user.username);
        }
        UserCommand::Disable { name } => {
            let user = find_user(conn, &name)?;
            users::set_disabled(conn, clock::now(), user.id, true, &actor)?;
            println!("disabled {} and revoked their sessions", user.username);
        }
        UserCommand::Enable { name } => {
            let user = find_user(conn, &name)?;
            users::set_disabled(conn, clock::now(), user.id, false, &actor)?;
            println!("enabled {}", user.username);
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = find_user(conn, &name)?;
            let hash = passwords::hash_blocking(&read_password(password_stdin)?)?;
            users::set_password(conn, clock::now(), user.id, &hash, None, &actor)?;
            println!(
                "changed the password of {} and revoked their sessions",
                user.username
            );
        }
    }
    Ok(())
}

fn store_error(e: StoreError) -> anyhow::Error {
    anyhow!("{e}")
}

fn sessions_cmd(conn: &mut Conn, cmd: SessionsCommand) -> anyhow::Result<()> {
    match cmd {
        SessionsCommand::List { user, json } => {
            let rows = match user {
                None => sessions::list_active(conn, clock::now(), None, None, i64::MAX)?,
                Some(raw) => {
                    let name = Username::parse(&raw).map_err(|e| anyhow!("'{raw}': {e}"))?;
                    match users::find_by_name(conn, &name)? {
                        Some(u) => {
                            sessions::list_active(conn, clock::now(), Some(u.id), None, i64::MAX)?
                        }
                        None => Vec::new(),
                    }
                }
            };
            if json {
                let sessions = rows
                    .into_iter()
                    .map(|r| SessionView::new(r, SessionId(0)))
                    .collect();
                return print_json(&SessionList {
                    sessions,
                    next_cursor: None,
                });
            }
            print_table(
                &[
                    "ID",
                    "USER",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                    "IP",
                    "USER AGENT",
                ],
                rows.iter().map(|r| {
                    let s = &r.session;
                    vec![
                        s.id.to_string(),
                        r.username.clone(),
                        rfc3339(s.created_at),
                        rfc3339(s.last_used_at),
                        rfc3339(s.expires_at),
                        s.ip.clone(),
                        s.user_agent.chars().take(60).collect(),
                    ]
                }),
            );
        }
        SessionsCommand::Revoke { id, user } => {
            if let Some(user) = user {
                let user = find_user(conn, &user)?;
                let n = sessions::revoke_all_of_user(
                    conn,
                    clock::now(),
                    user.id,
                    None,
                    RevokeReason::RevokedByAdmin,
                    &Actor::cli(),
                )?
                .sessions;
                println!("revoked {n} session(s) of {}", user.username);
            } else if let Some(id) = id {
                let id: SessionId = id.parse().map_err(anyhow::Error::msg)?;
                sessions::revoke(
                    conn,
                    clock::now(),
                    id,
                    None,
                    RevokeReason::RevokedByAdmin,
                    &Actor::cli(),
                )
                .map_err(|e| match e {
                    StoreError::NotFound => anyhow!("no session with id {id}"),
                    other => store_error(other),
                })?;
                println!("revoked session {id}");
            }
        }
    }
    Ok(())
}

fn keys_cmd(conn: &mut Conn, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { json, access_ttl } => {
            let ttl = config::parse_duration(&access_ttl)
                .filter(|secs| *secs > 0)
                .ok_or_else(|| anyhow!("LATCHKEY_ACCESS_TTL: '{access_ttl}' is not a duration"))?;
            let horizon = Settings::horizon_of(config::seconds(ttl));
            let rows = keys::list(conn)?;
            let states = keys::states(&rows);
            let until = |k: &keys::KeyRow| match (states[&k.kid], k.retired_at) {
                (keys::KeyState::Retired, Some(at)) => Some(published_until(at, horizon)),
                _ => None,
            };
            if json {
                let keys: Vec<_> = rows
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kid": k.kid,
                            "algorithm": k.algorithm,
                            "state": states[&k.kid].as_str(),
                            "created_at": rfc3339(k.created_at),
                            "activated_at": k.activated_at.map(rfc3339),
                            "retired_at": k.retired_at.map(rfc3339),
                            "published_until": until(k).map(rfc3339),
                            "revoked_at": k.revoked_at.map(rfc3339),
                        })
                    })
                    .collect();
                return print_json(&serde_json::json!({ "keys": keys }));
            }
            print_table(
                &[
                    "KID",
                    "ALG",
                    "STATE",
                    "CREATED",
                    "RETIRED",
                    "PUBLISHED UNTIL",
                ],
                rows.iter().map(|k| {
                    vec![
                        k.kid.clone(),
                        k.algorithm.clone(),
                        states[&k.kid].as_str().to_owned(),
                        rfc3339(k.created_at),
                        k.retired_at
                            .or(k.revoked_at)
                            .map(rfc3339)
                            .unwrap_or_default(),
                        until(k).map(rfc3339).unwrap_or_default(),
                    ]
                }),
            );
        }
        KeysCommand::Rotate => {
            let now = clock::now();
            let rows = keys::list(conn)?;
            let mut algorithms: Vec<KeyAlg> = rows
                .iter()
                .filter(|k| k.is_live())
                .filter_map(|k| KeyAlg::parse(&k.algorithm))
                .collect();
            algorithms.sort_by_key(|a| a.name());
            algorithms.dedup();
            if algorithms.is_empty() {
                // No server started yet: the keys of the configured algorithm.
                let alg = configured_key_alg()?;
                keys::ensure_current_and_next(
                    conn,
                    now,
                    &[
                        alg.generate(now - Duration::from_millis(2))?,
                        alg.generate(now - Duration::from_millis(1))?,
                    ],
                )?;
                algorithms.push(alg);
            }
            let fresh = algorithms
                .iter()
                .map(|alg| alg.generate(now))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for rotated in keys::rotate(conn, now, &fresh, keys::When::Now, &Actor::cli())? {
                println!(
                    "{}: signing key {} is current (running servers switch within 10 seconds); {} is next",
                    rotated.algorithm, rotated.current, rotated.next
                );
            }
        }
        KeysCommand::Revoke { kid } => {
            let rows = keys::list(conn)?;
            let row = rows
                .iter()
                .find(|k| k.kid == kid)
                .ok_or_else(|| anyhow!("no signing key {kid}"))?;
            let alg = KeyAlg::parse(&row.algorithm)
                .ok_or_else(|| anyhow!("key {kid} has an unknown algorithm {}", row.algorithm))?;
            let now = clock::now();
            let replacement = alg.generate(now)?;
            let revoked = keys::revoke(conn, now, &kid, &replacement, &Actor::cli())?;
            println!(
                "revoked {} key {kid} (was {}); running servers refuse its tokens within 10 seconds; {} signs",
                alg.name(),
                revoked.was.as_str(),
                revoked.current.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// `LATCHKEY_JWT_ALG` as `serve` reads it, when it names an algorithm with stored keys.
fn configured_key_alg() -> anyhow::Result<KeyAlg> {
    let name = std::env::var("LATCHKEY_JWT_ALG").unwrap_or_else(|_| "EdDSA".into());
    KeyAlg::parse(&name)
        .ok_or_else(|| anyhow!("LATCHKEY_JWT_ALG is {name}: there are no stored keys to rotate"))
}

fn audit_cmd(conn: &mut Conn, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List { user, json, limit } = cmd;
    let user = user
        .map(|u| Username::parse(&u).map_err(|e| anyhow!("'{u}': {e}")))
        .transpose()?;
    let rows = audit::list(conn, user.as_ref().map(Username::as_str), None, limit)?;
    if json {
        let events: Vec<_> = rows
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id.to_string(),
                    "at": rfc3339(e.at),
                    "kind": e.kind.as_str(),
                    "actor_user_id": e.actor_user_id.map(|id| id.to_string()),
                    "user_id": e.subject_user_id.map(|id| id.to_string()),
                    "username": e.subject_username,
                    "session_id": e.session_id.map(|id| id.to_string()),
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                    "detail": e.detail,
                })
            })
            .collect();
        return print_json(&serde_json::json!({ "events": events }));
    }
    print_table(
        &["ID", "AT", "EVENT", "USER", "SESSION", "IP", "DETAIL"],
        rows.iter().map(|e| {
            vec![
                e.id.to_string(),
                rfc3339(e.at),
                e.kind.as_str().to_owned(),
                e.subject_username.clone().unwrap_or_default(),
                e.session_id.map(|s| s.to_string()).unwrap_or_default(),
                e.ip.clone().unwrap_or_default(),
                e.detail.clone().unwrap_or_default(),
            ]
        }),
    );
    Ok(())
}

/// One JSON document on stdout, for scripts.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Left-aligned columns separated by two spaces, with a header row.
fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_errors_fold_into_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: latchkey user add <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::one_line_usage_error(rendered),
            "the following required arguments were not provided: <NAME>"
        );
    }

    #[test]
    fn every_command_and_flag_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<super::Cli as clap::CommandFactory>::command(),
            "",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
