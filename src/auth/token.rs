//! Access tokens (HS256 JWTs carrying `sub`, `tid`, `iat`, `exp`) and
//! refresh-token material (random, stored only as a SHA-256 digest).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// Why a presented access token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Malformed, wrong algorithm, wrong signature or missing claims.
    #[error("invalid token")]
    Invalid,
}

/// Signing and verification keys for access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    /// Tokens whose signature was already checked, by their exact text, so a
    /// client reusing its token costs a hash lookup instead of base64, JSON
    /// and HMAC work. Expiry is still checked on every use.
    verified: RwLock<rustc_hash::FxHashMap<Box<str>, Arc<Claims>>>,
}

/// Verified tokens remembered at most (the map is cleared when full).
const VERIFIED_CACHE_MAX: usize = 50_000;

impl TokenKeys {
    /// Keys from a raw secret (at least 32 bytes, checked by config).
    pub fn new(secret: &[u8], access_ttl: Duration) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: a token past `exp` is refused, no grace period.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            verified: RwLock::new(rustc_hash::FxHashMap::default()),
        }
    }

    /// Lifetime of access tokens issued by [`TokenKeys::issue`].
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Sign an access token for a user of a tenant.
    pub fn issue(&self, user_id: &str, tenant_id: &str) -> String {
        let iat = unix_now();
        let claims = Claims {
            sub: user_id.to_owned(),
            tid: tenant_id.to_owned(),
            iat,
            exp: iat + self.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_else(|e| unreachable!("HS256 signing cannot fail: {e}"))
    }

    /// Verify signature, algorithm and expiry; return the claims.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let cached = self
            .verified
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some(claims) = cached {
            return if claims.exp > unix_now() {
                Ok(claims)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| Arc::new(data.claims))
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_CACHE_MAX {
            verified.clear();
        }
        verified.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new random refresh token (256 bits, URL-safe base64).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The digest under which a refresh token is stored.
pub fn refresh_token_digest(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Random bytes as lowercase hex (generated secrets and passwords).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_verifies_with_same_key_only() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let token = keys.issue("u1", "t1");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.tid.as_str()), ("u1", "t1"));
        // a second use is served from the verified cache, same answer
        let again = keys.verify(&token).expect("valid again");
        assert_eq!(again.sub, "u1");
        // one flipped character of the signature is a different, invalid token
        let mut forged = token.clone();
        let last = forged.pop().expect("non-empty");
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(keys.verify(&forged).map(|_| ()), Err(TokenError::Invalid));
        let other = TokenKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert_eq!(other.verify(&token).map(|_| ()), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_and_garbage_tokens_are_refused() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let claims = Claims {
            sub: "u".into(),
            tid: "t".into(),
            iat: unix_now() - 100,
            exp: unix_now() - 1,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encode");
        assert_eq!(keys.verify(&expired).map(|_| ()), Err(TokenError::Expired));
        assert_eq!(keys.verify("garbage").map(|_| ()), Err(TokenError::Invalid));
    }

    #[test]
    fn a_cached_token_past_its_expiry_is_refused() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let claims = Claims {
            sub: "u".into(),
            tid: "t".into(),
            iat: unix_now() - 100,
            exp: unix_now() - 1,
        };
        keys.verified
            .write()
            .expect("lock")
            .insert("cached-token".into(), Arc::new(claims));
        assert_eq!(
            keys.verify("cached-token").map(|_| ()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn refresh_digest_is_stable_hex() {
        let t = new_refresh_token();
        assert_eq!(t.len(), 43);
        assert_eq!(refresh_token_digest(&t), refresh_token_digest(&t));
        assert_eq!(refresh_token_digest(&t).len(), 64);
    }
}
