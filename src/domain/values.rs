//! Validated values: parse, don't validate. Each constructor is the only way in.

use std::fmt;

/// A mainland China phone number, stored normalised (no `+86`, no separators):
/// a mobile `1[3-9]` + 9 digits, or a fixed line `0` + 2–3 digit area code + 7–8 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Phone, &'static str> {
        let mut s = raw.trim();
        if let Some(rest) = s.strip_prefix("+86") {
            s = rest.trim_start_matches([' ', '-']);
        }
        let bytes = s.as_bytes();
        let is_digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
        if bytes.len() == 11
            && is_digits(bytes)
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1])
        {
            return Ok(Phone(s.to_owned()));
        }
        if bytes.first() == Some(&b'0') {
            let (area, local) = match s.split_once('-') {
                Some((a, l)) => (a.as_bytes(), l.as_bytes()),
                None => {
                    // Without a separator the split is ambiguous; accept any 10–12 digit total
                    // that fits some split of a 3–4 digit area code and a 7–8 digit number.
                    if is_digits(bytes) && (10..=12).contains(&bytes.len()) {
                        return Ok(Phone(s.to_owned()));
                    }
                    return Err("must be a mainland mobile or a fixed line with area code");
                }
            };
            if is_digits(area)
                && (3..=4).contains(&area.len())
                && is_digits(local)
                && (7..=8).contains(&local.len())
            {
                return Ok(Phone(format!(
                    "{}{}",
                    String::from_utf8_lossy(area),
                    String::from_utf8_lossy(local)
                )));
            }
        }
        Err("must be a mainland mobile or a fixed line with area code")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masks phone numbers in `text` (138****0000), for logs: a run of digits not touching a
/// letter or digit that looks like a mobile (11 digits from 1, or 13 from 86), a fixed line
/// (10–12 digits from 0) or a local number of 7–8 digits.
pub fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run = &chars[start..i];
        let bounded_left = start == 0 || !chars[start - 1].is_ascii_alphanumeric();
        let bounded_right = i == chars.len() || !chars[i].is_ascii_alphanumeric();
        let phone_like = match run.len() {
            11 => run[0] == '1',
            13 => run[0] == '8' && run[1] == '6',
            10 | 12 => run[0] == '0',
            7 | 8 => true,
            _ => false,
        };
        if bounded_left && bounded_right && phone_like {
            let keep_head = if run.len() >= 10 { 3 } else { 0 };
            out.extend(&run[..keep_head]);
            out.extend(std::iter::repeat_n('*', run.len() - keep_head - 4));
            out.extend(&run[run.len() - 4..]);
        } else {
            out.extend(run);
        }
    }
    out
}

/// Checks a latitude/longitude pair: both or neither, in range.
pub fn check_coordinates(lat: Option<f64>, lon: Option<f64>) -> Vec<(&'static str, &'static str)> {
    let mut errors = Vec::new();
    if let Some(lat) = lat {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            errors.push(("lat", "must be between -90 and 90"));
        }
    }
    if let Some(lon) = lon {
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            errors.push(("lon", "must be between -180 and 180"));
        }
    }
    if lat.is_some() != lon.is_some() {
        errors.push(("lat", "lat and lon go together"));
    }
    errors
}

/// Text limits of API.md, in characters.
pub mod limits {
    pub const NAME: usize = 100;
    pub const ADDRESS: usize = 500;
    pub const DESCRIPTION: usize = 4000;
    pub const REASON: usize = 1000;
    pub const NOTE: usize = 1000;
    pub const CODE: usize = 64;
}

/// A code for an area or crew: 1–64 characters of letters, digits, `-`, `_` and `.`.
pub fn check_code(code: &str) -> Result<(), &'static str> {
    if code.is_empty() || code.chars().count() > limits::CODE {
        return Err("must be 1 to 64 characters");
    }
    if !code
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(Phone::parse("13800000000").unwrap().as_str(), "13800000000");
        assert_eq!(
            Phone::parse("+86 13912345678").unwrap().as_str(),
            "13912345678"
        );
        assert_eq!(
            Phone::parse("0755-83451234").unwrap().as_str(),
            "075583451234"
        );
        assert_eq!(Phone::parse("010-1234567").unwrap().as_str(), "0101234567");
        for bad in [
            "",
            "12800000000",
            "1380000000",
            "138000000001",
            "abc",
            "0755-12",
            "13800000000'; --",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask_phones("phone=13800000000&x=1"),
            "phone=138****0000&x=1"
        );
        assert_eq!(mask_phones("075583451234"), "075*****1234");
        assert_eq!(mask_phones("order 12345"), "order 12345");
        assert_eq!(mask_phones("0755-83451234"), "0755-****1234");
        assert_eq!(
            mask_phones("/work-orders/R20261122000123"),
            "/work-orders/R20261122000123"
        );
        assert_eq!(
            mask_phones("id=1234abcd-123456789012"),
            "id=1234abcd-123456789012"
        );
    }

    #[test]
    fn coordinates() {
        assert!(check_coordinates(Some(22.5), Some(114.0)).is_empty());
        assert!(!check_coordinates(Some(91.0), Some(0.0)).is_empty());
        assert!(!check_coordinates(Some(1.0), None).is_empty());
        assert!(!check_coordinates(Some(f64::NAN), Some(1.0)).is_empty());
    }

    #[test]
    fn codes() {
        assert!(check_code("SZ-FT-01").is_ok());
        assert!(check_code("").is_err());
        assert!(check_code("a b").is_err());
        assert!(check_code("x'; DROP TABLE").is_err());
    }

    proptest::proptest! {
        /// Normalising is idempotent: a stored phone parses to itself.
        #[test]
        fn normalised_phones_parse_to_themselves(raw in "(\\+86)?1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}") {
            let once = Phone::parse(&raw).unwrap();
            let twice = Phone::parse(once.as_str()).unwrap();
            proptest::prop_assert_eq!(once, twice);
        }

        /// A masked mobile keeps at most its first three and last four digits.
        #[test]
        fn masking_hides_the_middle_of_every_mobile(prefix in "[ =&:]{0,5}", mobile in "1[3-9][0-9]{9}") {
            let masked = mask_phones(&format!("{prefix}{mobile}"));
            proptest::prop_assert!(!masked.contains(&mobile));
            let expected = format!("{}****{}", &mobile[..3], &mobile[7..]);
            proptest::prop_assert!(masked.ends_with(&expected));
        }
    }
}
