//! The integration suite: drives the HTTP API of a real server against a real database.
//! `cargo test` runs it on SQLite; with TEST_DATABASE_URL=postgres://… on PostgreSQL.

mod appeals;
mod auth;
mod authorization;
mod bad_input;
mod concurrency;
mod events;
mod hardening;
mod helpers;
mod mail;
mod operations;
mod outages;
mod reference;
mod repeat_calls;
mod reports;
mod routing;
mod scanner;
mod sla;
mod smtp;
mod status_table;
mod work_orders;
