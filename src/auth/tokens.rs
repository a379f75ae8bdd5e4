//! Access tokens (HS256 JWT, minutes) and refresh tokens (opaque, stored hashed, a shift).

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(secret: &str) -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn issue(
        &self,
        user_id: &str,
        role: &str,
        now: DateTime<Utc>,
        minutes: i64,
    ) -> Result<String, String> {
        let claims = Claims {
            sub: user_id.to_owned(),
            role: role.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + minutes * 60,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// Verifies signature (HS256 only: `alg: none` and other algorithms are refused) and
    /// expiry against `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, &'static str> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| "invalid token")?;
        if data.claims.exp <= now.timestamp() {
            return Err("token expired");
        }
        Ok(data.claims)
    }
}

/// A new opaque refresh token: 32 random bytes, base64url.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a refresh token: its SHA-256, hex.
pub fn hash_refresh_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn issue_verify_expire_tamper() {
        let keys = TokenKeys::new("a-secret-that-is-long-enough-for-hs256!!");
        let now = Utc::now();
        let t = keys.issue("u1", "agent", now, 15).unwrap();
        assert_eq!(keys.verify(&t, now).unwrap().sub, "u1");
        assert_eq!(
            keys.verify(&t, now + TimeDelta::minutes(16)).unwrap_err(),
            "token expired"
        );
        let other = TokenKeys::new("another-secret-that-is-long-enough!!!!!");
        assert!(other.verify(&t, now).is_err());
        let mut parts: Vec<&str> = t.split('.').collect();
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none_header;
        assert!(keys
            .verify(&format!("{}.{}.", parts[0], parts[1]), now)
            .is_err());
    }
}
