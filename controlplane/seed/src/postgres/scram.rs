//! SCRAM-SHA-256 password verifiers as PostgreSQL stores them
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677).
//!
//! Why here: the seeder sets role passwords by sending a verifier it computed, so the
//! plaintext never reaches the server (nor its statement log), and it checks an
//! existing verifier against the configured password locally, so a second `seed` can
//! tell that a password is unchanged without resetting it. HMAC is written out (RFC
//! 2104, a dozen lines over `sha2`) rather than adding a crate; the tests check both
//! directions against a real server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// The password as the client hashes it: SASLprep'd when that succeeds, else raw
/// (what PostgreSQL and sqlx do too).
fn prepared(password: &str) -> Vec<u8> {
    stringprep::saslprep(password)
        .map(|p| p.into_owned().into_bytes())
        .unwrap_or_else(|_| password.as_bytes().to_vec())
}

fn keys(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let salted = salted_password(&prepared(password), salt, iterations);
    let stored: [u8; 32] = Sha256::digest(hmac(&salted, b"Client Key")).into();
    let server = hmac(&salted, b"Server Key");
    (stored, server)
}

/// A fresh verifier for `password` with a random salt.
pub fn verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let (stored, server) = keys(password, &salt, ITERATIONS);
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored),
        B64.encode(server)
    )
}

/// Whether `verifier` (a `pg_authid.rolpassword`) accepts `password`. Anything that is
/// not a well-formed SCRAM-SHA-256 verifier (an MD5 hash, say) does not.
pub fn verify(verifier: &str, password: &str) -> bool {
    let parse = || -> Option<bool> {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys_part) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys_part.split_once(':')?;
        let iterations: u32 = iterations.parse().ok().filter(|i| *i > 0)?;
        let salt = B64.decode(salt).ok()?;
        let (want_stored, want_server) = (B64.decode(stored).ok()?, B64.decode(server).ok()?);
        let (got_stored, got_server) = keys(password, &salt, iterations);
        Some(want_stored == got_stored && want_server == got_server)
    };
    parse().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_verifier_accepts_its_password_only() {
        let v = verifier("s3cret'\"pw");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(verify(&v, "s3cret'\"pw"));
        assert!(!verify(&v, "s3cret'\"pW"));
        assert!(!verify("md5abc", "x"));
        assert!(!verify("SCRAM-SHA-256$0:AA==$AA==:AA==", "x"));
    }
}
