//! The area tree: areas form a tree through `parent_code`, and an outage, a force-majeure
//! pause or a user's area scope on an area covers its descendants too (PRODUCT.md).

use std::collections::{HashMap, HashSet};

/// Every area as `(code, parent_code)`: a province has tens to hundreds of areas.
pub type AreaTree = [(String, Option<String>)];

/// The codes of `roots` and every area below them in the tree.
pub fn with_descendants(areas: &AreaTree, roots: &[String]) -> HashSet<String> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (code, parent) in areas {
        if let Some(p) = parent {
            children.entry(p.as_str()).or_default().push(code.as_str());
        }
    }
    let mut out: HashSet<String> = HashSet::new();
    let mut stack: Vec<&str> = roots.iter().map(String::as_str).collect();
    while let Some(code) = stack.pop() {
        if out.insert(code.to_owned()) {
            stack.extend(children.get(code).into_iter().flatten());
        }
    }
    out
}

/// `area_code` and every area above it, nearest first (a cycle in bad data ends the walk).
pub fn with_ancestors(areas: &AreaTree, area_code: &str) -> Vec<String> {
    let parent_of: HashMap<&str, &str> = areas
        .iter()
        .filter_map(|(c, p)| p.as_deref().map(|p| (c.as_str(), p)))
        .collect();
    let mut out = vec![area_code.to_owned()];
    let mut at = area_code;
    while let Some(&p) = parent_of.get(at) {
        if out.iter().any(|seen| seen == p) {
            break;
        }
        out.push(p.to_owned());
        at = p;
    }
    out
}

/// Whether any of `roots` is `area_code` or one of its ancestors.
pub fn covers(areas: &AreaTree, roots: &[String], area_code: &str) -> bool {
    with_ancestors(areas, area_code)
        .iter()
        .any(|a| roots.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Vec<(String, Option<String>)> {
        vec![
            ("SZ".to_owned(), None),
            ("FT".to_owned(), Some("SZ".to_owned())),
            ("FT-1".to_owned(), Some("FT".to_owned())),
            ("GZ".to_owned(), None),
            // bad data: a cycle must not hang anything
            ("X".to_owned(), Some("Y".to_owned())),
            ("Y".to_owned(), Some("X".to_owned())),
        ]
    }

    #[test]
    fn descendants_and_ancestors() {
        let areas = tree();
        let set = with_descendants(&areas, &["SZ".to_owned()]);
        assert_eq!(set.len(), 3);
        assert!(set.contains("FT-1") && !set.contains("GZ"));
        assert_eq!(with_ancestors(&areas, "FT-1"), ["FT-1", "FT", "SZ"]);
        assert_eq!(with_ancestors(&areas, "NOPE"), ["NOPE"]);
        assert_eq!(with_ancestors(&areas, "X"), ["X", "Y"]);
        assert_eq!(with_descendants(&areas, &["X".to_owned()]).len(), 2);
    }

    #[test]
    fn an_area_covers_itself_and_what_lies_below() {
        let areas = tree();
        let city = ["SZ".to_owned()];
        assert!(covers(&areas, &city, "SZ"));
        assert!(covers(&areas, &city, "FT-1"));
        assert!(!covers(&areas, &city, "GZ"));
        assert!(!covers(&areas, &["FT-1".to_owned()], "FT"), "not upwards");
    }
}
