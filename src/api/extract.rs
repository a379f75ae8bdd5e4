//! Request extraction that keeps the status order of API.md: the body is read as JSON here
//! (malformed → 400, too large → 413) but typed only when the handler asks, after the
//! 404/403/412/409 checks, so that a 422 never hides one of those.

use crate::errors::ProblemCode;
use crate::errors::{AppError, FieldError};
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A request body that is syntactically valid JSON; an empty body reads as `{}`.
#[derive(Debug, Clone)]
pub struct JsonBody(pub serde_json::Value);

impl FromRequest for JsonBody {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<JsonBody, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_lowercase());
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonBody(serde_json::Value::Object(Default::default())));
            }
            if let Some(ct) = content_type {
                if !(ct.starts_with("application/json") || ct.contains("+json")) {
                    return Err(actix_web::error::ErrorUnsupportedMediaType(
                        "the body must be application/json",
                    ));
                }
            }
            serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
                AppError::BadRequest {
                    code: ProblemCode::MalformedJson,
                    detail: format!("the body is not valid JSON: {e}"),
                }
                .into()
            })
        })
    }
}

impl JsonBody {
    /// Types the body; type errors, unknown fields and bad enum values → 422 with the field path.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if !self.0.is_object() {
            return Err(AppError::invalid("", "the body must be a JSON object"));
        }
        serde_path_to_error::deserialize(self.0.clone()).map_err(|e| {
            let mut path = e.path().to_string();
            let message = e.inner().to_string();
            if path == "." {
                path = message
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split_once('`'))
                    .map(|(name, _)| name.to_owned())
                    .unwrap_or_default();
            }
            AppError::Validation(vec![FieldError::new(path, message)])
        })
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Opaque; the `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(AppError::invalid("limit", "must be between 1 and 500")),
        }
    }

    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<T>, AppError> {
        cursor_of(self.cursor.as_deref())
    }
}

/// A `?cursor=` as sent: absent or empty is the first page; anything else must be a cursor
/// this service issued (else 400).
pub fn cursor_of<T: DeserializeOwned>(raw: Option<&str>) -> Result<Option<T>, AppError> {
    raw.filter(|c| !c.is_empty()).map(decode_cursor).transpose()
}

pub fn encode_cursor<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor<T: DeserializeOwned>(text: &str) -> Result<T, AppError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(AppError::BadRequest {
            code: ProblemCode::InvalidCursor,
            detail: "the cursor is not one this service issued".into(),
        })
}

/// `{items, next_cursor}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
pub fn page<R, T, K: Serialize>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> K,
    view: impl FnMut(R) -> T,
) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&key(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

/// The version an `If-Match` header names: `"7"`, `W/"7"` or `7`; `*` (or no header) sets no
/// precondition. Anything else is a malformed header (400), never a silent mismatch.
pub fn if_match(req: &HttpRequest) -> Result<Option<Option<i32>>, AppError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw);
    let digits = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(if tag == raw { tag } else { "" });
    if (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(digits.parse().ok()));
    }
    Err(AppError::BadRequest {
        code: ProblemCode::InvalidIfMatch,
        detail: "If-Match must be * or a version: \"7\", W/\"7\" or 7".into(),
    })
}

/// Parses an id in the path: a UUID, else 400.
pub fn path_uuid(raw: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| AppError::BadRequest {
            code: ProblemCode::InvalidId,
            detail: format!("`{raw}` is not a UUID"),
        })
}

/// Query-string errors are 400 problem+json.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        AppError::BadRequest {
            code: ProblemCode::InvalidQuery,
            detail: err.to_string(),
        }
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        AppError::BadRequest {
            code: ProblemCode::InvalidPath,
            detail: err.to_string(),
        }
        .into()
    })
}

pub use crate::errors::Problems;
