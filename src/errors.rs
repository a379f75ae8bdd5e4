//! One error type for the service, rendered as `application/problem+json` (RFC 9457) with a
//! stable snake_case `code`. Internal causes are logged, never sent.

use crate::domain::Action;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One invalid field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `caller.phone`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

crate::domain::state_machine::string_enum!(
    /// The stable `code` of a problem+json answer: clients branch on it, so a code is never
    /// renamed. docs/api.md lists every one with its status (a test keeps the two equal).
    ProblemCode {
        ActionNotAllowed => "action_not_allowed",
        AlreadyClosed => "already_closed",
        AlreadyExists => "already_exists",
        AppealPending => "appeal_pending",
        AppealsPending => "appeals_pending",
        BadRequest => "bad_request",
        ConcurrentUpdate => "concurrent_update",
        Error => "error",
        Forbidden => "forbidden",
        IdempotencyInFlight => "idempotency_in_flight",
        InternalError => "internal_error",
        InvalidCredentials => "invalid_credentials",
        InvalidCursor => "invalid_cursor",
        InvalidId => "invalid_id",
        InvalidIdempotencyKey => "invalid_idempotency_key",
        InvalidIfMatch => "invalid_if_match",
        InvalidPath => "invalid_path",
        InvalidPeriod => "invalid_period",
        InvalidPosition => "invalid_position",
        InvalidQuery => "invalid_query",
        InvalidRefreshToken => "invalid_refresh_token",
        InvalidTicket => "invalid_ticket",
        LengthRequired => "length_required",
        LoginThrottled => "login_throttled",
        MalformedJson => "malformed_json",
        MethodNotAllowed => "method_not_allowed",
        NoEligibleCrew => "no_eligible_crew",
        NotAcceptable => "not_acceptable",
        NotBreached => "not_breached",
        NotClosed => "not_closed",
        NotEmpty => "not_empty",
        NotFound => "not_found",
        NotPending => "not_pending",
        OutOfScope => "out_of_scope",
        OutageEnded => "outage_ended",
        OutageMaster => "outage_master",
        PauseEnded => "pause_ended",
        PayloadTooLarge => "payload_too_large",
        PeriodClosed => "period_closed",
        PeriodNotEnded => "period_not_ended",
        PreconditionFailed => "precondition_failed",
        RefreshTokenReused => "refresh_token_reused",
        RequestTimeout => "request_timeout",
        ResumeTooOld => "resume_too_old",
        TooManyRequests => "too_many_requests",
        TooManyStreams => "too_many_streams",
        Unauthorized => "unauthorized",
        Unavailable => "unavailable",
        UnsupportedMediaType => "unsupported_media_type",
        ValidationFailed => "validation_failed",
    }
);

/// The body of every error answer (RFC 9457 `application/problem+json`), as the OpenAPI
/// document states it; `problem` writes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://gridcall.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// For a person; never a database message.
    pub detail: String,
    pub code: ProblemCode,
    /// 422 `validation_failed`: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// 409 `action_not_allowed`: the actions allowed now, within the caller's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<Action>>,
    /// 412 `precondition_failed`: the order's version now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i32>,
    /// 410 `resume_too_old`: resume from here after re-reading the work-order list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_event_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{detail}")]
    Unauthorized { code: ProblemCode, detail: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{detail}")]
    Forbidden { code: ProblemCode, detail: String },
    #[error("the resource has changed (version {current})")]
    PreconditionFailed { current: i32 },
    #[error("{detail}")]
    Conflict {
        code: ProblemCode,
        detail: String,
        allowed_actions: Option<Vec<Action>>,
    },
    #[error("{detail}")]
    AlreadyExists { detail: String },
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: ProblemCode, detail: String },
    #[error("{detail}")]
    TooManyRequests {
        code: ProblemCode,
        detail: String,
        retry_after_secs: u64,
    },
    /// 410 `resume_too_old`: the stream cannot resume that far back; resume from
    /// `newest_event_id` after re-reading the work-order list.
    #[error("resuming from event {from} would replay more than {bound} events; re-read the work-order list, then resume from event {newest_event_id}")]
    ResumeTooOld {
        from: i64,
        bound: i64,
        newest_event_id: i64,
    },
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(message: impl Into<String>) -> AppError {
        AppError::Internal(message.into().into())
    }

    pub fn forbidden(detail: impl Into<String>) -> AppError {
        AppError::Forbidden {
            code: ProblemCode::Forbidden,
            detail: detail.into(),
        }
    }

    /// 403 `out_of_scope`: the caller sees the resource, but not every area it touches.
    pub fn out_of_scope(detail: impl Into<String>) -> AppError {
        AppError::Forbidden {
            code: ProblemCode::OutOfScope,
            detail: detail.into(),
        }
    }

    fn code(&self) -> ProblemCode {
        match self {
            AppError::Unauthorized { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::BadRequest { code, .. }
            | AppError::TooManyRequests { code, .. } => *code,
            AppError::NotFound { .. } => ProblemCode::NotFound,
            AppError::Forbidden { code, .. } => *code,
            AppError::PreconditionFailed { .. } => ProblemCode::PreconditionFailed,
            AppError::AlreadyExists { .. } => ProblemCode::AlreadyExists,
            AppError::Validation(_) => ProblemCode::ValidationFailed,
            AppError::ResumeTooOld { .. } => ProblemCode::ResumeTooOld,
            AppError::Unavailable(_) => ProblemCode::Unavailable,
            AppError::Internal(_) => ProblemCode::InternalError,
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => AppError::NotFound { what: "resource" },
            E::DatabaseError(K::UniqueViolation, _) => AppError::AlreadyExists {
                detail: "a record with this key already exists".to_owned(),
            },
            E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) => {
                AppError::Unavailable(Box::new(e))
            }
            E::DatabaseError(_, ref info) if connection_lost(info.message()) => {
                AppError::Unavailable(Box::new(e))
            }
            // SQLite's busy timeout (or the writer queue's wait) ran out: the database is
            // busy with other writers, and the request may be tried again.
            E::DatabaseError(_, ref info) if info.message().contains("database is locked") => {
                AppError::Unavailable(Box::new(e))
            }
            E::DatabaseError(_, ref info) if info.message().starts_with("deadlock detected") => {
                AppError::Conflict {
                    code: ProblemCode::ConcurrentUpdate,
                    detail: "another change was committed at the same time; try again".to_owned(),
                    allowed_actions: None,
                }
            }
            E::RollbackErrorOnCommit { commit_error, .. } => AppError::from(*commit_error),
            E::BrokenTransactionManager => AppError::Unavailable(Box::new(e)),
            E::DatabaseError(K::SerializationFailure, _) => AppError::Conflict {
                code: ProblemCode::ConcurrentUpdate,
                detail: "another change was committed at the same time; try again".to_owned(),
                allowed_actions: None,
            },
            other => AppError::Internal(Box::new(other)),
        }
    }
}

/// PostgreSQL and libpq messages that mean the connection or the server went away (an
/// administrator's shutdown or restart, a crash, a broken socket), not that the request was
/// wrong: answered 503, and the connection is dropped from the pool.
fn connection_lost(message: &str) -> bool {
    const LOST: [&str; 9] = [
        "terminating connection due to administrator command",
        "terminating connection due to unexpected postmaster exit",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "server closed the connection unexpectedly",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
    ];
    LOST.iter().any(|m| message.contains(m))
}

/// Folds a multi-line message (libpq's have several) onto one log line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        AppError::Unavailable(Box::new(e))
    }
}

/// Builds a problem+json response.
pub fn problem(
    status: StatusCode,
    code: ProblemCode,
    detail: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) -> HttpResponse {
    let mut body = serde_json::Map::new();
    body.insert(
        "type".into(),
        format!("https://gridcall.dev/problems/{code}").into(),
    );
    body.insert(
        "title".into(),
        status.canonical_reason().unwrap_or("Error").into(),
    );
    body.insert("status".into(), status.as_u16().into());
    body.insert("detail".into(), detail.into());
    body.insert("code".into(), code.as_str().into());
    body.extend(extra);
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/problem+json"))
        .body(serde_json::Value::Object(body).to_string())
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            AppError::Conflict { .. } | AppError::AlreadyExists { .. } => StatusCode::CONFLICT,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::ResumeTooOld { .. } => StatusCode::GONE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut extra = serde_json::Map::new();
        let detail = match self {
            AppError::Internal(cause) | AppError::Unavailable(cause) => {
                let cause = one_line(&cause_chain(cause.as_ref()));
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    log::error!("{status}: {cause}");
                } else {
                    log::warn!("{status}: {cause}");
                }
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    "an internal error occurred; it has been logged".to_owned()
                } else {
                    "the database is not answering; try again shortly".to_owned()
                }
            }
            AppError::Validation(errors) => {
                extra.insert(
                    "errors".into(),
                    serde_json::to_value(errors).unwrap_or_default(),
                );
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            AppError::Conflict {
                allowed_actions: Some(actions),
                ..
            } => {
                extra.insert(
                    "allowed_actions".into(),
                    serde_json::to_value(actions).unwrap_or_default(),
                );
                self.to_string()
            }
            AppError::PreconditionFailed { current } => {
                extra.insert("current_version".into(), (*current).into());
                self.to_string()
            }
            AppError::ResumeTooOld {
                newest_event_id, ..
            } => {
                extra.insert("newest_event_id".into(), (*newest_event_id).into());
                self.to_string()
            }
            _ => self.to_string(),
        };
        let mut response = problem(status, self.code(), &detail, extra);
        if let AppError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Collects field errors and fails with all of them at once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Checks a text's length in characters; `required` also refuses blank text.
    pub fn text(&mut self, field: &str, value: Option<&str>, max: usize, required: bool) {
        match value {
            None if required => self.add(field, "is required"),
            Some(v) if required && v.trim().is_empty() => self.add(field, "must not be blank"),
            Some(v) if v.chars().count() > max => {
                self.add(field, format!("must be at most {max} characters"))
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind as K, Error as E};

    fn db_error(kind: K, message: &str) -> AppError {
        AppError::from(E::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn a_lost_database_is_unavailable_not_internal() {
        // libpq's answer on a pooled connection whose server went away
        for (kind, message) in [
            (K::UnableToSendCommand, "no connection to the server\n"),
            (
                K::ClosedConnection,
                "server closed the connection unexpectedly",
            ),
            (
                K::Unknown,
                "terminating connection due to administrator command",
            ),
            (K::Unknown, "FATAL:  the database system is shutting down"),
            (K::Unknown, "the database system is starting up"),
            // SQLite, a writer whose turn did not come within the busy timeout
            (K::Unknown, "database is locked"),
        ] {
            let e = db_error(kind, message);
            assert_eq!(
                e.status_code(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{message}"
            );
        }
        let commit = E::RollbackErrorOnCommit {
            rollback_error: Box::new(E::BrokenTransactionManager),
            commit_error: Box::new(E::DatabaseError(
                K::UnableToSendCommand,
                Box::new("no connection to the server".to_owned()),
            )),
        };
        assert_eq!(
            AppError::from(commit).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn a_deadlock_is_a_conflict_to_retry_and_other_errors_stay_internal() {
        let e = db_error(K::Unknown, "deadlock detected");
        assert_eq!(e.status_code(), StatusCode::CONFLICT);
        assert_eq!(e.code(), ProblemCode::ConcurrentUpdate);
        let e = db_error(K::Unknown, "column \"x\" does not exist");
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn log_lines_fold_libpq_messages() {
        assert_eq!(
            one_line("server closed the connection unexpectedly\n\tThis probably means\n"),
            "server closed the connection unexpectedly This probably means"
        );
    }

    #[test]
    fn every_problem_code_is_documented_and_every_documented_code_exists() {
        let doc = include_str!("../docs/api.md");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(code, _)| code))
            .filter(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        let codes: std::collections::BTreeSet<&str> =
            ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        let undocumented: Vec<_> = codes.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&codes).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "not in docs/api.md: {undocumented:?}; in docs/api.md but not ProblemCode: {unknown:?}"
        );
    }
}
