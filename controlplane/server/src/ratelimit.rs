//! Failed-authentication rate limiting per client address: after `limit` failures in
//! a minute an address is refused (429, even with good credentials, so guessing stops)
//! until its failures age out. Other addresses are unaffected.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
// Bounded memory under a flood of addresses: the oldest are dropped first.
const MAX_ADDRESSES: usize = 10_000;

/// The limiter.
#[derive(Debug)]
pub struct FailedAuth {
    limit: usize,
    seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailedAuth {
    /// Allows `limit` failures per address per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit.max(1) as usize,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds until it may try again)` when `ip` is blocked now.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("rate limiter lock");
        let q = seen.get_mut(&ip)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= self.limit {
            let oldest = *q.front().expect("non-empty");
            Some((WINDOW - now.duration_since(oldest)).as_secs().max(1))
        } else {
            None
        }
    }

    /// Records a failure from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().expect("rate limiter lock");
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&ip) {
            let now = Instant::now();
            seen.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
            if seen.len() >= MAX_ADDRESSES {
                seen.clear();
            }
        }
        let q = seen.entry(ip).or_default();
        q.push_back(Instant::now());
        // Keep no more than needed to decide.
        while q.len() > self.limit {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_blocked_after_its_failures_and_another_is_not() {
        let l = FailedAuth::new(3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(l.blocked(a).is_none());
            l.failed(a);
        }
        assert!(l.blocked(a).is_some_and(|s| s <= 60));
        assert!(l.blocked(b).is_none());
    }
}
