//! Who may act: anonymous visitors read; the buttons and the JSON API's actions need the admin
//! password (the Secret `metalgate-gitops-admin`, key `password`, created with a random one when
//! missing, as ArgoCD's `argocd-initial-admin-secret`). A login gets a session: a random id in
//! an HttpOnly, SameSite=Strict cookie and a CSRF token that every form carries. Pure but for
//! the randomness; the clock is a parameter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ring::rand::SecureRandom;

/// The Secret with the admin password, in the module's namespace.
pub const SECRET: &str = "metalgate-gitops-admin";
/// Its key.
pub const KEY: &str = "password";
/// The session cookie's name.
pub const COOKIE: &str = "metalgate_session";
/// How long a session lasts without use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept (the oldest go first).
const MAX_SESSIONS: usize = 1000;

/// 32 random bytes, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    // SystemRandom fails only without an OS source of randomness; then nobody can log in.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time comparison (for passwords and CSRF tokens).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    used: Instant,
}

/// The logged-in sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// A new session: its id (for the cookie) and CSRF token. `None` without randomness.
    pub fn open(&mut self, now: Instant) -> Option<(String, String)> {
        let (id, csrf) = (token(), token());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        self.by_id.retain(|_, s| now.duration_since(s.used) < IDLE);
        if self.by_id.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
            {
                self.by_id.remove(&oldest);
            }
        }
        self.by_id.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                used: now,
            },
        );
        Some((id, csrf))
    }

    /// The CSRF token of a live session, touching it.
    pub fn csrf(&mut self, id: &str, now: Instant) -> Option<String> {
        let s = self.by_id.get_mut(id)?;
        if now.duration_since(s.used) >= IDLE {
            self.by_id.remove(id);
            return None;
        }
        s.used = now;
        Some(s.csrf.clone())
    }

    /// End a session.
    pub fn close(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// The session id in a Cookie header.
pub fn session_id(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The Set-Cookie value for a session (`secure` when served over TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        IDLE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The Set-Cookie value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_has_a_csrf_token_until_it_idles_out_or_closes() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let (id, csrf) = s.open(t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert_eq!(
            s.csrf(&id, t0 + Duration::from_secs(60)),
            Some(csrf.clone())
        );
        assert_eq!(s.csrf("forged", t0), None);
        let later = t0 + Duration::from_secs(60) + IDLE;
        assert_eq!(s.csrf(&id, later), None);
        let (id2, _) = s.open(later).unwrap();
        s.close(&id2);
        assert_eq!(s.csrf(&id2, later), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let c = set_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert_eq!(session_id("a=1; metalgate_session=abc; b=2"), Some("abc"));
        assert_eq!(session_id("metalgate_sessionx=abc"), None);
    }

    #[test]
    fn comparison_needs_equal_bytes() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secre"));
    }
}
