//! Authentication: argon2 password hashes, HS256 access tokens, opaque refresh tokens, and
//! the `AuthUser` extractor that every protected handler takes.

pub mod actor_cache;
pub mod extractor;
pub mod password;
pub mod tokens;

pub use extractor::AuthUser;
