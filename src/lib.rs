//! gridcall: the backend of a 95598-style power-utility customer-service centre.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod errors;
pub mod event_hub;
pub mod jobs;
pub mod notify;
pub mod schema;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
