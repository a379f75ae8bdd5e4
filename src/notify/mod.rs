//! Notifications: mail templates, the outbox (written in the same transaction as the event
//! that causes a mail), and the mailer backends (SMTP through lettre, or .eml files).

pub mod alerts;
pub mod mailer;
pub mod templates;

pub use mailer::Mailer;
pub use templates::Templates;
