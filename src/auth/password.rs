//! Argon2id password hashes (standard PHC strings, e.g.
//! `$argon2id$v=19$m=19456,t=2,p=1$…$…`). Hashing costs tens of
//! milliseconds by design: callers run it on a dedicated thread.
//!
//! Each thread keeps its argon2 working memory (19 MiB at the default cost)
//! and reuses it. Allocating and freeing that much per hash means mapping
//! and unmapping memory every time, which takes the process-wide memory-map
//! lock and stalls every other thread of the server for milliseconds — the
//! p99 of unrelated requests tripled while logins ran, until this.
//!
//! On a thread marked with [`set_yield_to_requests`], the argon2 computation
//! itself (which touches only that memory: no locks, no allocation) runs
//! under `SCHED_IDLE`, so any request thread that wakes up takes the CPU at
//! once. Everything around it (parsing, allocation, channels) runs at normal
//! priority, so a preempted hashing thread never holds a lock that a request
//! needs.

use std::cell::{Cell, RefCell};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Largest memory cost (KiB) accepted from a stored hash.
const MAX_M_COST: u32 = 256 * 1024;

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    static YIELD_TO_REQUESTS: Cell<bool> = const { Cell::new(false) };
}

/// Make this thread's argon2 computations yield the CPU to any other thread
/// (`SCHED_IDLE` while computing), or stop doing so.
pub fn set_yield_to_requests(on: bool) {
    YIELD_TO_REQUESTS.with(|c| c.set(on));
}

/// Scheduling policy of the current thread while it computes a hash.
struct ComputePolicy {
    lowered: bool,
}

impl ComputePolicy {
    fn enter() -> ComputePolicy {
        let lowered = YIELD_TO_REQUESTS.with(Cell::get) && set_policy(true);
        ComputePolicy { lowered }
    }
}

impl Drop for ComputePolicy {
    fn drop(&mut self) {
        if self.lowered {
            set_policy(false);
        }
    }
}

/// `SCHED_IDLE` (idle = true) or the default `SCHED_OTHER`; false on failure.
fn set_policy(idle: bool) -> bool {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let policy = if idle {
        NormalThreadSchedulePolicy::Idle
    } else {
        NormalThreadSchedulePolicy::Other
    };
    // OS value 0: the only valid one for SCHED_IDLE, and niceness 0 for SCHED_OTHER.
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(policy),
    )
    .is_ok()
}

/// Run argon2id with `params` into `out`, on this thread's reusable memory.
fn argon2_into(params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    MEMORY.with(|cell| {
        let mut memory = cell.borrow_mut();
        let need = params.block_count();
        if memory.len() < need {
            memory.resize(need, Block::default());
        }
        let _policy = ComputePolicy::enter();
        hasher
            .hash_password_into_with_memory(password, salt, out, &mut memory[..need])
            .is_ok()
    })
}

/// Hash a password with a fresh salt at the default cost
/// (m = 19 MiB, t = 2, p = 1).
pub fn hash(password: &str) -> String {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let encoded = salt
        .decode_b64(&mut salt_buf)
        .ok()
        .filter(|raw| argon2_into(&params, password.as_bytes(), raw, &mut out))
        .and_then(|_| {
            Some(PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).ok()?,
                salt: Some(salt.as_salt()),
                hash: Some(Output::new(&out).ok()?),
            })
        })
        .map(|phc| phc.to_string());
    // Only invalid parameters make argon2 fail, and these are the defaults.
    encoded.unwrap_or_else(|| unreachable!("argon2id with default parameters failed"))
}

/// Check a password against a stored PHC hash in constant time; a malformed
/// or unsupported hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if !argon2_into(&params, password.as_bytes(), raw_salt, &mut out) {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A hash of a random password, verified against when the e-mail is unknown so
/// that "no such user" costs the same time as "wrong password".
pub fn dummy_hash() -> String {
    hash(&uuid::Uuid::now_v7().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hash_then_verify() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("anything", "not a hash"));
        assert_ne!(hash("same"), hash("same"), "fresh salt each time");
    }

    #[test]
    fn interoperates_with_the_reference_implementation() {
        let ours = hash("interop password");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"interop password", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"interop password", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("interop password", &theirs));
        assert!(!verify("other password", &theirs));
    }

    #[test]
    fn refuses_other_algorithms_and_absurd_costs() {
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"pw", &salt)
            .expect("hash")
            .to_string();
        assert!(!verify("pw", &argon2i));
        let huge = hash("pw").replace("m=19456", "m=4000000");
        assert!(!verify("pw", &huge));
    }
}
