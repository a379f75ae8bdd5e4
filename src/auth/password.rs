//! Password hashing with argon2id; the cost comes from the settings.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted (API.md).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer inputs are refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

fn hasher(cost: PasswordCost) -> Result<Argon2<'static>, String> {
    let params =
        Params::new(cost.memory_kib, cost.iterations, 1, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies against a stored PHC string; the cost is read from the hash itself.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A password policy check; returns the message for the field.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err("must be at least 10 characters");
    }
    if n > MAX_PASSWORD_CHARS {
        return Err("must be at most 256 characters");
    }
    Ok(())
}

/// A hash of a fixed password, to spend the same time on unknown users as on known ones.
pub fn dummy_hash(cost: PasswordCost) -> String {
    hash_password("gridcall-timing-equaliser", cost).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let cost = PasswordCost {
            memory_kib: 1024,
            iterations: 1,
        };
        let h = hash_password("correct horse battery", cost).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn policy() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long-enough-1").is_ok());
        assert!(check_new_password(&"x".repeat(300)).is_err());
    }
}
