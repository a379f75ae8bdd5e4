//! Mail templates: one file per kind, `config/templates/<kind>.txt`; the first line is the
//! subject, the rest (after a blank line) the body. minijinja syntax. The shipped templates
//! are compiled in; files with the same name replace them.

use std::path::Path;

const KINDS: [(&str, &str); 7] = [
    (
        "no_eligible_crew",
        include_str!("../../config/templates/no_eligible_crew.txt"),
    ),
    (
        "sla_warning",
        include_str!("../../config/templates/sla_warning.txt"),
    ),
    (
        "sla_breach",
        include_str!("../../config/templates/sla_breach.txt"),
    ),
    (
        "sla_escalation",
        include_str!("../../config/templates/sla_escalation.txt"),
    ),
    (
        "complaint_ack",
        include_str!("../../config/templates/complaint_ack.txt"),
    ),
    ("digest", include_str!("../../config/templates/digest.txt")),
    (
        "appeal_filed",
        include_str!("../../config/templates/appeal_filed.txt"),
    ),
];

pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// Loads the shipped templates, then any `<kind>.txt` in `dir`; every template is
    /// checked for syntax.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (kind, shipped) in KINDS {
            let text = match dir.map(|d| d.join(format!("{kind}.txt"))) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                _ => shipped.to_owned(),
            };
            env.add_template_owned(kind.to_owned(), text)
                .map_err(|e| format!("template {kind}: {e}"))?;
        }
        Ok(Templates { env })
    }

    /// Renders a kind into (subject, body).
    pub fn render(&self, kind: &str, ctx: minijinja::Value) -> Result<(String, String), String> {
        let text = self
            .env
            .get_template(kind)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {kind}: {e}"))?;
        let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
        Ok((
            subject.trim().to_owned(),
            body.trim_start_matches('\n').to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_render_in_chinese() {
        let t = Templates::load(None).unwrap();
        let (subject, body) = t
            .render(
                "sla_breach",
                minijinja::context! { number => "R20261122000001", stage_name => "到达现场", kind_name => "故障报修",
                    area_code => "SZ-FT-01", due_local => "2026-11-22 10:45", time_zone => "Asia/Shanghai",
                    target => "45m", url => "http://x/api/v1/work-orders/1" },
            )
            .unwrap();
        assert!(
            subject.contains("R20261122000001") && subject.contains("超时"),
            "{subject}"
        );
        assert!(
            body.contains("2026-11-22 10:45") && body.contains("/api/v1/work-orders/1"),
            "{body}"
        );
        let (subject, body) = t
            .render("digest", minijinja::context! { count => 2, window_local => "10:00–10:01", items => vec!["a", "b"] })
            .unwrap();
        assert!(subject.contains('2'));
        assert!(body.contains("- a") && body.contains("- b"));
        assert!(
            t.render("sla_warning", minijinja::context! {}).is_err(),
            "missing values are errors"
        );
    }

    #[test]
    fn files_replace_shipped_templates_and_bad_syntax_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("complaint_ack.txt"),
            "Hi {{ number }}\n\nbody",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.render("complaint_ack", minijinja::context! { number => "C1" })
                .unwrap()
                .0,
            "Hi C1"
        );
        std::fs::write(dir.path().join("digest.txt"), "{% for %}").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
