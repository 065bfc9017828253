//! argon2id password hashing off the async workers, with bounded concurrency and memory.
//!
//! Hashing runs on a few dedicated threads (one per CPU), each owning one reusable
//! block buffer, at a lower priority than the request workers: a sign-in storm queues
//! cheaply, memory stays at `threads × 19 MiB`, and token checks keep their latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::phc::{PasswordHash, Salt};
use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::domain::Password;

/// The security floor: m = 19456 KiB, t = 2, p = 1.
fn params() -> Params {
    Params::new(19_456, 2, 1, None).expect("static argon2 parameters are valid")
}

fn argon2_with(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub fn hash_blocking(password: &Password) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let hash = argon2_with(params())
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))?;
    Ok(hash.to_string())
}

/// Verifies `password` against a PHC string using `blocks` as the argon2 memory.
/// Any malformed hash verifies as false.
fn verify_with(password: &[u8], phc: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt.as_ref(), parsed.hash.as_ref()) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    let salt: &Salt = salt;
    if argon2_with(params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..needed])
        .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

/// A piece of password work for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// How much less CPU share a hashing thread gets than a request worker when both want
/// the core (Linux nice values are per thread): a sign-in storm then cannot starve
/// token checks, while idle CPU still goes to hashing.
const HASHING_NICENESS: i32 = 10;

/// The shared hasher: `concurrency` dedicated threads, each reusing one argon2 block
/// buffer, fed by a queue. Peak memory is `concurrency × 19 MiB` however many sign-ins
/// wait; a waiting sign-in costs only its queue entry.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    dummy_hash: Arc<str>,
    /// Jobs waiting for a hashing thread or running on one.
    queued: Arc<AtomicUsize>,
}

impl Hasher {
    /// `concurrency` hashes may run at once (normally the number of CPUs).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&queue))?;
        }
        let mut random = [0u8; 24];
        rand::fill(&mut random);
        let dummy = Password::parse(base64_of(&random)).map_err(anyhow::Error::msg)?;
        Ok(Hasher {
            jobs,
            dummy_hash: hash_blocking(&dummy)?.into(),
            queued: Arc::default(),
        })
    }

    /// How many hashes wait for a hashing thread or run on one.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Verifies against `phc`, or against a dummy hash when `phc` is `None` (unknown or
    /// disabled user) so that both take the same time. The dummy never matches.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let is_real = phc.is_some();
        let phc: Arc<str> = phc
            .map(Arc::from)
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.as_bytes().to_vec();
        let ok = self
            .run(move |blocks| verify_with(&password, &phc, blocks))
            .await
            .unwrap_or(false);
        ok && is_real
    }

    /// Hashes a new password under the same concurrency bound.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        self.run(move |_| hash_blocking(&password)).await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = oneshot::channel();
        // Counted until the work is done (or dropped unrun), even when its caller
        // stopped waiting.
        let queued = Queued::enter(&self.queued);
        let job: Job = Box::new(move |blocks| {
            let _ = done.send(work(blocks));
            drop(queued);
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing threads have stopped"))?;
        result
            .await
            .map_err(|_| anyhow::anyhow!("a hashing thread failed"))
    }
}

/// One job's place in `Hasher::queued`, given back when dropped (also by a panic).
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Queued(count.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs jobs until every `Hasher` is dropped.
fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    let mut blocks = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panic in one job fails that sign-in only; the thread keeps serving.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut blocks)));
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread; no memory is shared.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASHING_NICENESS)
    };
    if result != 0 {
        tracing::debug!("cannot lower the priority of a hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let password = Password::parse("correct horse battery".into()).unwrap();
        let phc = hash_blocking(&password).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let mut blocks = Vec::new();
        assert!(verify_with(b"correct horse battery", &phc, &mut blocks));
        assert!(!verify_with(b"correct horse batterx", &phc, &mut blocks));
        assert!(!verify_with(
            b"correct horse battery",
            "not a hash",
            &mut blocks
        ));
    }

    #[test]
    fn our_hashes_verify_with_the_reference_verifier() {
        use argon2::password_hash::PasswordVerifier as _;
        let password = Password::parse("interoperable".into()).unwrap();
        let phc = hash_blocking(&password).unwrap();
        assert!(argon2_with(params())
            .verify_password(b"interoperable", phc.as_str())
            .is_ok());
    }
}
