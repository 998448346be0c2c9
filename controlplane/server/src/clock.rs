//! The server's clock: what token expiry and console sessions' JWT expiry are judged
//! against. Real time plus an offset that only moves forward, so a test can let a
//! token expire without sleeping (`Clock::advance`); in production the offset stays 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Real time, possibly moved forward. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now, as this clock tells it.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone) forward by `by`; a negative `by` is ignored,
    /// so time never runs backwards for what it judges.
    pub fn advance(&self, by: chrono::Duration) {
        let ms = by.num_milliseconds();
        if ms > 0 {
            self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone_forward_only() {
        let a = Clock::default();
        let b = a.clone();
        let before = a.now();
        b.advance(chrono::Duration::hours(1));
        assert!(a.now() - before >= chrono::Duration::hours(1));
        let at = a.now();
        b.advance(chrono::Duration::hours(-5));
        assert!(a.now() >= at);
    }
}
