//! The load generator of `bench/run`: closed-loop GETs, refresh chains, sign-in storms,
//! a paced stream during a storm, and sequential latency probes. Single-threaded (run it
//! pinned to one core); prints one `RESULT` line per measured stream.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use latchkey_bench::http::{self, Connection};
use latchkey_bench::stats::Recorder;
use tokio::task::{JoinHandle, LocalSet};

#[derive(Parser)]
#[command(about = "Load generator for latchkey benchmarks (loopback only)")]
struct Cli {
    /// Server address on this machine, e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: String,
    /// How long each measured stream runs.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Name of the result line(s).
    #[arg(long)]
    name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed loop: CONNECTIONS connections GET PATH back to back.
    Get {
        path: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[command(flatten)]
        auth: Auth,
    },
    /// CHAINS refresh chains, each presenting the refresh cookie it last received.
    Refresh {
        #[arg(long, default_value_t = 32)]
        chains: usize,
        #[command(flatten)]
        account: Account,
    },
    /// Sign-in storm: CONNECTIONS connections POST /auth/token back to back.
    SignIn {
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[command(flatten)]
        account: Account,
    },
    /// A sign-in storm of STORM connections while GET PATH runs paced at RATE per second.
    Mixed {
        path: String,
        #[arg(long, default_value_t = 16)]
        storm: usize,
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[command(flatten)]
        account: Account,
    },
    /// Revocation reach, ROUNDS times: sign in and sign out on ADDR, then poll GET
    /// /api/me on OTHER with the signed-out access token until it is refused; the
    /// latency is from the sign-out's answer to the first refusal.
    Reach {
        #[arg(long)]
        other: String,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        #[command(flatten)]
        account: Account,
    },
    /// One connection, REQUESTS sequential GETs of PATH (a heavy page's latency).
    Latency {
        path: String,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        #[command(flatten)]
        auth: Auth,
    },
}

#[derive(Args, Clone)]
struct Account {
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
}

#[derive(Args)]
struct Auth {
    /// Sign in as --user/--password and send the access token as `Bearer`.
    #[arg(long, requires = "password")]
    user: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// GET this path first and send its body as the `Bearer` token (baseline server).
    #[arg(long, conflicts_with = "user")]
    token_from: Option<String>,
    /// Send the token as the `lk_access` cookie (as browsers do for pages).
    #[arg(long)]
    cookie: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&runtime, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let window = Duration::from_secs_f64(cli.seconds);
    let addr = cli.addr.as_str();
    match cli.command {
        Command::Get {
            path,
            connections,
            auth,
        } => {
            let request = http::get(&path, &auth_header(addr, &auth).await?);
            let recorder = closed_loop(addr, connections, window, request).await?;
            println!("{}", recorder.0.summary(&cli.name, recorder.1));
        }
        Command::SignIn {
            connections,
            account,
        } => {
            let request = sign_in_request(&account);
            let recorder = closed_loop(addr, connections, window, request).await?;
            println!("{}", recorder.0.summary(&cli.name, recorder.1));
        }
        Command::Refresh { chains, account } => {
            let (recorder, elapsed) = refresh_chains(addr, chains, window, &account).await?;
            println!("{}", recorder.summary(&cli.name, elapsed));
        }
        Command::Mixed {
            path,
            storm,
            rate,
            account,
        } => {
            let (token, _) = sign_in(addr, &account).await?;
            let get = http::get(&path, &format!("Authorization: Bearer {token}\r\n"));
            let storm_run = closed_loop(addr, storm, window, sign_in_request(&account));
            let paced_run = paced(addr, rate, window, get);
            let (storm, paced) = tokio::join!(storm_run, paced_run);
            let ((storm, storm_elapsed), (paced, paced_elapsed)) = (storm?, paced?);
            println!(
                "{}",
                paced.summary(&format!("{}.paced", cli.name), paced_elapsed)
            );
            println!(
                "{}",
                storm.summary(&format!("{}.storm", cli.name), storm_elapsed)
            );
        }
        Command::Reach {
            other,
            rounds,
            account,
        } => {
            let mut recorder = Recorder::default();
            let start = Instant::now();
            let mut here = Connection::open(addr).await?;
            let mut there = Connection::open(&other).await?;
            for _ in 0..rounds {
                let (token, cookie) = sign_in(addr, &account).await?;
                let me = http::get("/api/me", &format!("Authorization: Bearer {token}\r\n"));
                let first = there.send(&me).await?.status;
                if first != 200 {
                    bail!("the other instance refused a fresh token: {first}");
                }
                let out = here
                    .send(&http::post_with_cookie(
                        "/auth/logout",
                        &format!("lk_refresh={cookie}"),
                    ))
                    .await?
                    .status;
                if out != 204 {
                    bail!("sign-out answered {out}");
                }
                let signed_out = Instant::now();
                loop {
                    let status = there.send(&me).await?.status;
                    if status == 401 {
                        recorder.success(signed_out.elapsed());
                        break;
                    }
                    if signed_out.elapsed() > Duration::from_secs(5) {
                        recorder.error();
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }
            println!("{}", recorder.summary(&cli.name, start.elapsed()));
        }
        Command::Latency {
            path,
            requests,
            auth,
        } => {
            let request = http::get(&path, &auth_header(addr, &auth).await?);
            let mut conn = Connection::open(addr).await?;
            let mut recorder = Recorder::default();
            let start = Instant::now();
            for _ in 0..requests {
                let sent = Instant::now();
                match conn.send(&request).await {
                    Ok(r) if r.is_success() => recorder.success(sent.elapsed()),
                    Ok(r) => bail!("GET {path} answered {}", r.status),
                    Err(e) => return Err(e).context(format!("GET {path}")),
                }
            }
            println!("{}", recorder.summary(&cli.name, start.elapsed()));
        }
    }
    Ok(())
}

fn sign_in_request(account: &Account) -> Vec<u8> {
    let body = serde_json::json!({ "username": account.user, "password": account.password });
    http::post_json("/auth/token", &body.to_string())
}

/// Signs in once: the access token and the refresh cookie.
async fn sign_in(addr: &str, account: &Account) -> anyhow::Result<(String, String)> {
    let mut conn = Connection::open(addr).await.context("connecting")?;
    let response = conn.send(&sign_in_request(account)).await?;
    if !response.is_success() {
        bail!(
            "sign-in as {} answered {}: {}",
            account.user,
            response.status,
            String::from_utf8_lossy(response.body)
        );
    }
    let body: serde_json::Value = serde_json::from_slice(response.body)?;
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no access_token in the sign-in answer"))?;
    let cookie = response
        .refresh_cookie
        .ok_or_else(|| anyhow!("no lk_refresh cookie in the sign-in answer"))?;
    Ok((token.to_owned(), cookie.to_owned()))
}

/// The `Authorization` header line the options ask for (or none).
async fn auth_header(addr: &str, auth: &Auth) -> anyhow::Result<String> {
    let token = if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        let account = Account {
            user: user.clone(),
            password: password.clone(),
        };
        sign_in(addr, &account).await?.0
    } else if let Some(path) = &auth.token_from {
        let mut conn = Connection::open(addr).await?;
        let response = conn.send(&http::get(path, "")).await?;
        if !response.is_success() {
            bail!("GET {path} answered {}", response.status);
        }
        String::from_utf8(response.body.to_vec())?
    } else {
        return Ok(String::new());
    };
    Ok(if auth.cookie {
        format!("Cookie: lk_access={token}\r\n")
    } else {
        format!("Authorization: Bearer {token}\r\n")
    })
}

/// Opens `n` connections before any clock starts.
async fn connections(addr: &str, n: usize) -> anyhow::Result<Vec<Connection>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(Connection::open(addr).await.context("connecting")?);
    }
    Ok(all)
}

/// Tasks that each own a share of the result; at the end of the window whatever is
/// still in flight is abandoned (not counted) and the tasks are stopped.
struct Workers {
    recorders: Vec<Rc<RefCell<Recorder>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    fn new() -> Self {
        Workers {
            recorders: Vec::new(),
            handles: Vec::new(),
        }
    }

    fn spawn<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(Rc<RefCell<Recorder>>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let recorder = Rc::new(RefCell::new(Recorder::default()));
        self.recorders.push(recorder.clone());
        self.handles.push(tokio::task::spawn_local(work(recorder)));
    }

    async fn finish(self, start: Instant, window: Duration) -> (Recorder, Duration) {
        tokio::time::sleep_until((start + window).into()).await;
        let elapsed = start.elapsed();
        let mut total = Recorder::default();
        for recorder in self.recorders {
            total.merge(recorder.replace(Recorder::default()));
        }
        for handle in self.handles {
            handle.abort();
        }
        (total, elapsed)
    }
}

/// Sends `request` back to back on each connection; any non-2xx answer is an error.
async fn closed_loop(
    addr: &str,
    n: usize,
    window: Duration,
    request: Vec<u8>,
) -> anyhow::Result<(Recorder, Duration)> {
    let request: Rc<[u8]> = request.into();
    let mut workers = Workers::new();
    let conns = connections(addr, n).await?;
    let start = Instant::now();
    for mut conn in conns {
        let request = request.clone();
        let addr = addr.to_owned();
        workers.spawn(|recorder| async move {
            loop {
                let sent = Instant::now();
                let ok = conn.send(&request).await.map(|r| r.is_success());
                match ok {
                    Ok(true) => recorder.borrow_mut().success(sent.elapsed()),
                    Ok(false) => recorder.borrow_mut().error(),
                    Err(_) => {
                        recorder.borrow_mut().error();
                        conn = reconnect(&addr).await;
                    }
                }
            }
        });
    }
    Ok(workers.finish(start, window).await)
}

async fn reconnect(addr: &str) -> Connection {
    loop {
        if let Ok(conn) = Connection::open(addr).await {
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Open loop: request `i` is due at `start + i / rate`; its latency counts from then,
/// so a stalled server is charged for the requests it delayed (no coordinated omission).
async fn paced(
    addr: &str,
    rate: u32,
    window: Duration,
    request: Vec<u8>,
) -> anyhow::Result<(Recorder, Duration)> {
    let request: Rc<[u8]> = request.into();
    let period = Duration::from_secs(1) / rate.max(1);
    let next = Rc::new(Cell::new(0u32));
    let mut workers = Workers::new();
    let conns = connections(addr, 32).await?;
    let start = Instant::now();
    for mut conn in conns {
        let (request, next, addr) = (request.clone(), next.clone(), addr.to_owned());
        workers.spawn(|recorder| async move {
            loop {
                let i = next.get();
                next.set(i + 1);
                let due = start + period * i;
                tokio::time::sleep_until(due.into()).await;
                let ok = conn.send(&request).await.map(|r| r.is_success());
                match ok {
                    Ok(true) => recorder.borrow_mut().success(due.elapsed()),
                    Ok(false) => recorder.borrow_mut().error(),
                    Err(_) => {
                        recorder.borrow_mut().error();
                        conn = reconnect(&addr).await;
                    }
                }
            }
        });
    }
    Ok(workers.finish(start, window).await)
}

/// Each chain signs in once, then refreshes with the cookie it last received.
async fn refresh_chains(
    addr: &str,
    chains: usize,
    window: Duration,
    account: &Account,
) -> anyhow::Result<(Recorder, Duration)> {
    let mut starts = Vec::with_capacity(chains);
    for _ in 0..chains {
        starts.push((
            Connection::open(addr).await?,
            sign_in(addr, account).await?.1,
        ));
    }
    let mut workers = Workers::new();
    let start = Instant::now();
    for (mut conn, mut cookie) in starts {
        let (addr, account) = (addr.to_owned(), account.clone());
        workers.spawn(|recorder| async move {
            loop {
                let request =
                    http::post_with_cookie("/auth/refresh", &format!("lk_refresh={cookie}"));
                let sent = Instant::now();
                let next = match conn.send(&request).await {
                    Ok(r) if r.is_success() => r.refresh_cookie.map(str::to_owned),
                    Ok(_) => None,
                    Err(_) => {
                        conn = reconnect(&addr).await;
                        None
                    }
                };
                match next {
                    Some(next) => {
                        recorder.borrow_mut().success(sent.elapsed());
                        cookie = next;
                    }
                    None => {
                        // A broken chain starts over with a new session.
                        recorder.borrow_mut().error();
                        match sign_in(&addr, &account).await {
                            Ok((_, fresh)) => cookie = fresh,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
        });
    }
    Ok(workers.finish(start, window).await)
}
