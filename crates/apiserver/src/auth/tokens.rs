//! ServiceAccount tokens: `mgsa.<payload>.<signature>`, the payload naming the account, its uid
//! and when the token expires, signed with HMAC-SHA256 under a key only the store holds. A
//! token is good while its signature holds, it has not expired, and the ServiceAccount it names
//! still exists with the same uid (so deleting an account revokes its tokens).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The ServiceAccount's namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
    /// Its uid when the token was issued.
    pub uid: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

const PREFIX: &str = "mgsa.";

/// The signing key, from 32 secret bytes.
pub fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// A signed token carrying `claims`.
pub fn issue(key: &hmac::Key, claims: &Claims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = B64.encode(hmac::sign(key, payload.as_bytes()).as_ref());
    format!("{PREFIX}{payload}.{sig}")
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of this store's form.
    NotOurs,
    /// The signature does not hold.
    BadSignature,
    /// Past its expiry.
    Expired,
}

/// The claims of a token whose signature holds and which has not expired at `now` (seconds).
pub fn verify(key: &hmac::Key, token: &str, now: i64) -> Result<Claims, Refused> {
    let rest = token.strip_prefix(PREFIX).ok_or(Refused::NotOurs)?;
    let (payload, sig) = rest.split_once('.').ok_or(Refused::NotOurs)?;
    let sig = B64.decode(sig).map_err(|_| Refused::NotOurs)?;
    hmac::verify(key, payload.as_bytes(), &sig).map_err(|_| Refused::BadSignature)?;
    let bytes = B64.decode(payload).map_err(|_| Refused::NotOurs)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| Refused::NotOurs)?;
    if claims.exp <= now {
        return Err(Refused::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            ns: "metalgate-system".into(),
            name: "metalgate-speaker".into(),
            uid: "u-1".into(),
            exp: 2_000,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let k = key(&[7; 32]);
        let t = issue(&k, &claims());
        assert_eq!(verify(&k, &t, 1_000), Ok(claims()));
        assert_eq!(verify(&k, &t, 2_000), Err(Refused::Expired));
    }

    #[test]
    fn a_forged_or_foreign_token_is_refused() {
        let k = key(&[7; 32]);
        let t = issue(&k, &claims());
        assert_eq!(
            verify(&key(&[8; 32]), &t, 1_000),
            Err(Refused::BadSignature)
        );
        // Changing the payload (another account) breaks the signature.
        let (payload, sig) = t.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut other = claims();
        other.name = "metalgate-gitops".into();
        let forged = format!(
            "{PREFIX}{}.{sig}",
            B64.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_ne!(payload, forged);
        assert_eq!(verify(&k, &forged, 1_000), Err(Refused::BadSignature));
        assert_eq!(verify(&k, "0123abcd", 1_000), Err(Refused::NotOurs));
    }
}
