//! Categories per kind and the crew skill each requires (`config/categories.toml`).

use super::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One category of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    /// The crew skill the category needs; none for praise.
    #[serde(default)]
    pub skill: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// All categories, per kind, in file order (the first of each kind is its default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories {
    by_kind: BTreeMap<Kind, Vec<Category>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KindEntry {
    categories: Vec<Category>,
}

impl Categories {
    /// Parses the TOML text of a categories file; every kind needs at least one category.
    pub fn from_toml(text: &str) -> Result<Categories, String> {
        let file: BTreeMap<String, KindEntry> = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_kind = BTreeMap::new();
        for (name, entry) in file {
            let kind: Kind = name.parse().map_err(|_| format!("unknown kind `{name}`"))?;
            if entry.categories.is_empty() {
                return Err(format!("kind `{name}` has no categories"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for c in &entry.categories {
                if !seen.insert(c.code.as_str()) {
                    return Err(format!(
                        "kind `{name}`: category `{}` appears twice",
                        c.code
                    ));
                }
            }
            by_kind.insert(kind, entry.categories);
        }
        if let Some(missing) = Kind::ALL.iter().find(|k| !by_kind.contains_key(k)) {
            return Err(format!("kind `{missing}` has no categories"));
        }
        Ok(Categories { by_kind })
    }

    pub fn of(&self, kind: Kind) -> &[Category] {
        self.by_kind
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn default_for(&self, kind: Kind) -> &Category {
        &self.of(kind)[0]
    }

    pub fn find(&self, kind: Kind, code: &str) -> Option<&Category> {
        self.of(kind).iter().find(|c| c.code == code)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Kind, &[Category])> {
        self.by_kind.iter().map(|(k, v)| (*k, v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_has_every_kind_and_the_product_defaults() {
        let c = Categories::from_toml(include_str!("../../config/categories.toml")).unwrap();
        assert_eq!(c.default_for(Kind::Repair).code, "no_power");
        assert_eq!(
            c.find(Kind::Repair, "meter_fault")
                .unwrap()
                .skill
                .as_deref(),
            Some("metering")
        );
        assert_eq!(
            c.find(Kind::ServiceRequest, "fast_charging")
                .unwrap()
                .skill
                .as_deref(),
            Some("charging")
        );
        assert_eq!(
            c.default_for(Kind::Complaint).skill.as_deref(),
            Some("complaints")
        );
        assert_eq!(c.default_for(Kind::Praise).skill, None);
        assert_eq!(c.of(Kind::ServiceRequest).len(), 6);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Categories::from_toml("[repair]\ncategories = []").is_err());
        assert!(Categories::from_toml("[nonsense]\ncategories = [{code='x'}]").is_err());
    }
}
