//! Schemas of validated request values for the OpenAPI document. Each states exactly the rule
//! the server checks (`domain::values`, `errors::Problems::text`, the action bodies), so that a
//! generated client and a property-based tester (tools/schemathesis.sh) see the limits the
//! server enforces: a value the schema allows is never refused for its shape, and a value it
//! forbids is never accepted.
//!
//! Used through `#[schema(schema_with = …)]`; utoipa takes only literal patterns in its own
//! attributes, and arrays of codes need their item rule.

use crate::domain::values::limits;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Array, Object};

/// The characters Rust's `char::is_whitespace` (and so `str::trim`) treats as white space,
/// as a JSON Schema character class body.
const SPACE: &str = r"\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// `domain::values::check_code`: area, crew, skill codes and account numbers.
pub const CODE_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// Login names: ASCII letters, digits, `.`, `_`, `-` and `@` (`service::users`).
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9._@-]{1,100}$";

/// A scorecard period, `YYYY-MM` (`domain::reports::Month::parse`).
pub const PERIOD_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";

/// An opaque page cursor: URL-safe base64 without padding; empty means the first page.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]*$";

/// `If-Match`: `*`, or a version as `"7"`, `W/"7"` or `7` (`api::extract::if_match`).
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[0-9]{1,9}"|[0-9]{1,9})$"#;

/// `Idempotency-Key`: 1 to 200 visible ASCII characters (inner spaces allowed).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,198}[!-~])?$";

/// The schema of a request header, by name, where the server reads more than any string.
pub fn header(name: &str) -> Option<Object> {
    match name {
        "If-Match" => Some(string(None, 20, Some(IF_MATCH_PATTERN.to_owned()), false)),
        "Idempotency-Key" => Some(string(
            Some(1),
            200,
            Some(IDEMPOTENCY_KEY_PATTERN.to_owned()),
            false,
        )),
        "Last-Event-ID" => Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .build(),
        ),
        _ => None,
    }
}

fn nullable(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::new(t)
    }
}

fn string(min: Option<usize>, max: usize, pattern: Option<String>, null: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, null))
        .min_length(min)
        .max_length(Some(max))
        .pattern(pattern)
        .build()
}

/// Text that must hold a non-space character when present (`Problems::text`, required).
fn filled(max: usize, null: bool) -> Object {
    string(Some(1), max, Some(format!("[^{SPACE}]")), null)
}

fn code_of(null: bool) -> Object {
    string(None, limits::CODE, Some(CODE_PATTERN.to_owned()), null)
}

fn codes_of(min: usize, null: bool) -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, null))
        .items(code_of(false))
        .min_items((min > 0).then_some(min))
        .build()
}

/// An area, crew or skill code.
pub fn code() -> Object {
    code_of(false)
}
pub fn code_or_null() -> Object {
    code_of(true)
}
/// A list of codes, possibly empty.
pub fn codes() -> Array {
    codes_of(0, false)
}
pub fn codes_or_null() -> Array {
    codes_of(0, true)
}
/// A list of at least one code.
pub fn some_codes() -> Array {
    codes_of(1, false)
}
pub fn some_codes_or_null() -> Array {
    codes_of(1, true)
}

pub fn name() -> Object {
    filled(limits::NAME, false)
}
pub fn name_or_null() -> Object {
    filled(limits::NAME, true)
}
/// A name that may be blank (a caller who gave none).
pub fn any_name_or_null() -> Object {
    string(None, limits::NAME, None, true)
}
pub fn address() -> Object {
    filled(limits::ADDRESS, false)
}
pub fn address_or_null() -> Object {
    filled(limits::ADDRESS, true)
}
/// An address that may be blank.
pub fn any_address_or_null() -> Object {
    string(None, limits::ADDRESS, None, true)
}
pub fn description() -> Object {
    filled(limits::DESCRIPTION, false)
}
pub fn description_or_null() -> Object {
    filled(limits::DESCRIPTION, true)
}
pub fn reason() -> Object {
    filled(limits::REASON, false)
}
pub fn reason_or_null() -> Object {
    filled(limits::REASON, true)
}
/// An optional reason: when sent it may be blank (close of the reply family and praise).
pub fn any_reason_or_null() -> Object {
    string(None, limits::REASON, None, true)
}
pub fn note() -> Object {
    filled(limits::NOTE, false)
}
/// An optional note: when sent it may be blank.
pub fn any_note_or_null() -> Object {
    string(None, limits::NOTE, None, true)
}

/// `domain::values::Phone::parse`: a mainland mobile or a fixed line with its area code,
/// optional `+86`, surrounding white space ignored.
fn phone_of(null: bool) -> Object {
    let pattern = format!(
        "^[{SPACE}]*(\\+86[ -]*)?(1[3-9][0-9]{{9}}|0[0-9]{{9,11}}|0[0-9]{{2,3}}-[0-9]{{7,8}})[{SPACE}]*$"
    );
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, null))
        .pattern(Some(pattern))
        .build()
}
pub fn phone() -> Object {
    phone_of(false)
}
pub fn phone_or_null() -> Object {
    phone_of(true)
}

/// The server's mail check: at most 254 characters, an `@`, no white space.
pub fn email_or_null() -> Object {
    string(None, 254, Some(format!("^[^{SPACE}]*@[^{SPACE}]*$")), true)
}

pub fn username() -> Object {
    string(None, 100, Some(USERNAME_PATTERN.to_owned()), false)
}

/// A new password: 10 to 256 characters.
fn password_of(null: bool) -> Object {
    string(Some(10), 256, None, null)
}
pub fn password() -> Object {
    password_of(false)
}
pub fn password_or_null() -> Object {
    password_of(true)
}

fn uuid_of(null: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, null))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}
pub fn uuid() -> Object {
    uuid_of(false)
}
pub fn uuid_or_null() -> Object {
    uuid_of(true)
}

fn degrees(limit: f64, null: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Number, null))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
        .minimum(Some(-limit))
        .maximum(Some(limit))
        .build()
}
pub fn lat() -> Object {
    degrees(90.0, false)
}
pub fn lat_or_null() -> Object {
    degrees(90.0, true)
}
pub fn lon() -> Object {
    degrees(180.0, false)
}
pub fn lon_or_null() -> Object {
    degrees(180.0, true)
}

/// Reads a JSON integer for an `i32` field. JSON Schema's `integer` also admits a number with
/// a zero fraction (`5.0`), so the server does too; `5.5` or a value out of range is refused.
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n: f64 = serde::Deserialize::deserialize(d)?;
    whole_of(n).ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}")))
}

/// `whole` for an optional field (`null` is absent).
pub fn whole_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let n: Option<f64> = serde::Deserialize::deserialize(d)?;
    n.map(|n| {
        whole_of(n).ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}")))
    })
    .transpose()
}

fn whole_of(n: f64) -> Option<i32> {
    (n.fract() == 0.0 && n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX)).then_some(n as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Count {
        #[serde(deserialize_with = "whole")]
        n: i32,
        #[serde(default, deserialize_with = "whole_or_null")]
        m: Option<i32>,
    }

    fn read(json: &str) -> Option<(i32, Option<i32>)> {
        serde_json::from_str::<Count>(json).ok().map(|c| (c.n, c.m))
    }

    #[test]
    fn a_whole_number_is_an_integer_in_either_spelling() {
        assert_eq!(read(r#"{"n": 5}"#), Some((5, None)));
        assert_eq!(read(r#"{"n": 5.0, "m": -3.0}"#), Some((5, Some(-3))));
        assert_eq!(read(r#"{"n": 1, "m": null}"#), Some((1, None)));
        assert_eq!(read(r#"{"n": 5.5}"#), None);
        assert_eq!(read(r#"{"n": 2147483648}"#), None);
        assert_eq!(read(r#"{"n": "5"}"#), None);
    }
}
