//! Login rate limiting: 10 failed attempts for one account from one address
//! within 5 minutes, then every attempt for that pair is refused until the
//! oldest failure leaves the window. Other accounts and addresses are
//! unaffected. In memory: a restart forgets (documented).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed inside the window.
pub const MAX_FAILURES: usize = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Failed-login bookkeeping keyed by (account, address).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, IpAddr), VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `Err(seconds)` to wait if this account/address pair is locked out now.
    pub fn check(&self, account: &str, addr: IpAddr) -> Result<(), u64> {
        self.check_at(account, addr, Instant::now())
    }

    fn check_at(&self, account: &str, addr: IpAddr, now: Instant) -> Result<(), u64> {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(q) = map.get_mut(&(account.to_owned(), addr)) else {
            return Ok(());
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= MAX_FAILURES {
            let oldest = *q.front().unwrap_or(&now);
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            // Round up so a client that waits Retry-After seconds is let through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        Ok(())
    }

    /// Record a failed attempt.
    pub fn record_failure(&self, account: &str, addr: IpAddr) {
        self.record_failure_at(account, addr, Instant::now());
    }

    fn record_failure_at(&self, account: &str, addr: IpAddr, now: Instant) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bound memory: drop stale keys once the map grows.
        if map.len() > 10_000 {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = map.entry((account.to_owned(), addr)).or_default();
        q.push_back(now);
        while q.len() > MAX_FAILURES {
            q.pop_front();
        }
    }

    /// Forget failures after a successful login.
    pub fn record_success(&self, account: &str, addr: IpAddr) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&(account.to_owned(), addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn eleventh_attempt_is_refused_until_window_passes() {
        let l = LoginLimiter::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(l.check_at("a@x", ip, t0).is_ok(), "attempt {i}");
            l.record_failure_at("a@x", ip, t0);
        }
        let wait = l.check_at("a@x", ip, t0).expect_err("locked");
        assert_eq!(wait, 300);
        assert!(
            l.check_at("b@x", ip, t0).is_ok(),
            "other account unaffected"
        );
        let other_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(
            l.check_at("a@x", other_ip, t0).is_ok(),
            "other address unaffected"
        );
        assert!(l.check_at("a@x", ip, t0 + WINDOW).is_ok(), "window passed");
    }
}
