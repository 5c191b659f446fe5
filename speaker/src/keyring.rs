//! The speakers' shared gossip keys: every membership packet carries an HMAC-SHA256 over its
//! payload, made with the primary key; a packet is accepted when any key of the ring verifies
//! it (so a key can be rotated without a partition). Pure: the keys come from the Secret the
//! controller creates ([`SECRET`]), read by the announcer.
//!
//! Rotation, as with memberlist's keyring (each step applied to the Secret; every speaker picks
//! it up from its watch within a second):
//! 1. add the new key as `secretkey-next` — every speaker now accepts it, still signs with the old;
//! 2. set `secretkey` to the new key and `secretkey-previous` to the old — signing moves over,
//!    packets signed with the old key are still accepted;
//! 3. remove `secretkey-previous` — the old key is dead.
//!
//! Replay: a recorded packet re-sent verbatim is accepted; SWIM's incarnation numbers make an
//! old membership claim lose to a newer one, so a replay cannot hold a live speaker down for
//! longer than its next gossip round (as with memberlist, which has no replay window either).

use std::collections::BTreeMap;

use ring::hmac;

/// The Secret (in the speakers' namespace) that holds the keys; the controller creates it with
/// a random `secretkey` when it is missing.
pub const SECRET: &str = metalgate_k8s::MEMBERLIST_SECRET;
/// The signing key's entry in the Secret.
pub const PRIMARY: &str = "secretkey";
/// Entries whose keys are accepted but not used to sign: `secretkey-<anything>`.
pub const SECONDARY_PREFIX: &str = "secretkey-";
/// The shortest key accepted, in bytes (HMAC-SHA256 wants at least 32 bytes of entropy; a
/// random 32-byte key base64-encoded is 44).
pub const MIN_KEY_LEN: usize = 16;

/// Marks an authenticated packet (and its format version).
const MAGIC: &[u8; 4] = b"MGk1";
const TAG_LEN: usize = 32;

/// The gossip keys: the first signs, all verify.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<hmac::Key>,
    ids: Vec<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material: only which entries are loaded.
        f.debug_struct("Keyring").field("keys", &self.ids).finish()
    }
}

/// Why a Secret's data does not make a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No `secretkey` entry.
    NoPrimary,
    /// An entry shorter than [`MIN_KEY_LEN`] bytes.
    TooShort(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NoPrimary => write!(f, "data.{PRIMARY} is missing"),
            KeyError::TooShort(k) => {
                write!(f, "data.{k} is shorter than {MIN_KEY_LEN} bytes")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a packet was dropped before it reached the gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not an authenticated packet (no marker, or too short to hold a tag).
    Unsigned,
    /// Signed, but no key of the ring verifies it (wrong key, or altered).
    BadSignature,
}

impl Keyring {
    /// A ring from raw keys, the first signing. Each key must be at least [`MIN_KEY_LEN`]
    /// bytes.
    pub fn new(keys: &[&[u8]]) -> Result<Keyring, KeyError> {
        let mut ids = Vec::new();
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let id = if i == 0 {
                PRIMARY.to_string()
            } else {
                format!("{SECONDARY_PREFIX}{i}")
            };
            if k.len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort(id));
            }
            out.push(hmac::Key::new(hmac::HMAC_SHA256, k));
            ids.push(id);
        }
        if out.is_empty() {
            return Err(KeyError::NoPrimary);
        }
        Ok(Keyring { keys: out, ids })
    }

    /// A ring from a Secret's data: `secretkey` signs; `secretkey-*` entries are also accepted.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Keyring, KeyError> {
        let primary = data.get(PRIMARY).ok_or(KeyError::NoPrimary)?;
        let mut names = vec![PRIMARY.to_string()];
        let mut keys: Vec<&[u8]> = vec![primary];
        for (k, v) in data {
            if k.starts_with(SECONDARY_PREFIX) {
                names.push(k.clone());
                keys.push(v);
            }
        }
        for (name, key) in names.iter().zip(&keys) {
            if key.len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort(name.clone()));
            }
        }
        let mut ring = Keyring::new(&keys)?;
        ring.ids = names;
        Ok(ring)
    }

    /// The Secret entries this ring was made from (for logs; never the keys).
    pub fn entries(&self) -> &[String] {
        &self.ids
    }

    /// The packet to send: marker, payload, tag (by the primary key).
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&self.keys[0], payload);
        let mut out = Vec::with_capacity(MAGIC.len() + payload.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(payload);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The payload of a received packet, if some key of the ring signed it (checked in
    /// constant time).
    pub fn open<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], Reject> {
        let body = packet.strip_prefix(MAGIC).ok_or(Reject::Unsigned)?;
        if body.len() < TAG_LEN {
            return Err(Reject::Unsigned);
        }
        let (payload, tag) = body.split_at(body.len() - TAG_LEN);
        if self
            .keys
            .iter()
            .any(|k| hmac::verify(k, payload, tag).is_ok())
        {
            Ok(payload)
        } else {
            Err(Reject::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &[u8] = b"0123456789abcdef0123456789abcdef";
    const K2: &[u8] = b"fedcba9876543210fedcba9876543210";
    const K3: &[u8] = b"an attacker's key, long enough!!";

    #[test]
    fn a_sealed_packet_opens_with_the_same_key_and_not_with_another() {
        let ring = Keyring::new(&[K1]).unwrap();
        let p = ring.seal(b"ping from a");
        assert_eq!(ring.open(&p), Ok(&b"ping from a"[..]));
        let other = Keyring::new(&[K3]).unwrap();
        assert_eq!(other.open(&p), Err(Reject::BadSignature));
    }

    #[test]
    fn unsigned_truncated_and_altered_packets_are_rejected() {
        let ring = Keyring::new(&[K1]).unwrap();
        assert_eq!(ring.open(b"plain foca bytes"), Err(Reject::Unsigned));
        assert_eq!(ring.open(b""), Err(Reject::Unsigned));
        assert_eq!(ring.open(b"MGk1short"), Err(Reject::Unsigned));
        let p = ring.seal(b"leave: node b");
        for i in MAGIC.len()..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 0x01;
            assert_eq!(ring.open(&bad), Err(Reject::BadSignature), "byte {i}");
        }
        // Dropping or adding bytes breaks the tag too.
        assert!(ring.open(&p[..p.len() - 1]).is_err());
        let mut longer = p.clone();
        longer.push(0);
        assert!(ring.open(&longer).is_err());
    }

    #[test]
    fn during_rotation_both_keys_are_accepted_and_the_primary_signs() {
        // Step 1 on one speaker, step 2 on another: they still hear each other.
        let step1 = Keyring::new(&[K1, K2]).unwrap();
        let step2 = Keyring::new(&[K2, K1]).unwrap();
        assert!(step2.open(&step1.seal(b"x")).is_ok());
        assert!(step1.open(&step2.seal(b"y")).is_ok());
        // After step 3 the old key is dead.
        let step3 = Keyring::new(&[K2]).unwrap();
        assert!(step3.open(&step2.seal(b"z")).is_ok());
        assert_eq!(
            step3.open(&Keyring::new(&[K1]).unwrap().seal(b"old")),
            Err(Reject::BadSignature)
        );
        // The primary signs: a ring holding only the secondary cannot read step1's packets
        // unless it has K1.
        assert_eq!(
            Keyring::new(&[K2]).unwrap().open(&step1.seal(b"w")),
            Err(Reject::BadSignature)
        );
    }

    #[test]
    fn secret_data_names_the_entry_that_is_wrong() {
        let mut data = BTreeMap::new();
        assert_eq!(
            Keyring::from_secret_data(&data).unwrap_err().to_string(),
            "data.secretkey is missing"
        );
        data.insert("secretkey".to_string(), K1.to_vec());
        data.insert("secretkey-previous".to_string(), b"short".to_vec());
        assert_eq!(
            Keyring::from_secret_data(&data).unwrap_err().to_string(),
            "data.secretkey-previous is shorter than 16 bytes"
        );
        data.insert("secretkey-previous".to_string(), K2.to_vec());
        data.insert("unrelated".to_string(), b"x".to_vec());
        let ring = Keyring::from_secret_data(&data).unwrap();
        assert_eq!(ring.entries(), ["secretkey", "secretkey-previous"]);
        assert!(ring.open(&Keyring::new(&[K2]).unwrap().seal(b"v")).is_ok());
        // Debug output never shows key bytes.
        assert!(!format!("{ring:?}").contains("0123"));
    }
}
