//! Crew scores (PRODUCT.md, "Metrics and crew performance"): a period's raw rates per crew, a
//! weighted blend of them shrunk toward the crew's peers (same kind, same home area), and the
//! ranking with under-sampled crews last. Pure: the caller gathers the counts.

use super::CrewKind;
use std::collections::HashMap;

/// Weights and constants of the crew score (`config/scoring.toml`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    pub weights: ScoreWeights,
    /// Minimum distinct orders in the period for `sample_ok`.
    pub min_sample: i64,
    /// Pseudo-orders of the peer average mixed into a crew's score.
    pub shrinkage: f64,
    /// Complaints per 100 orders at (or beyond) which that part scores 0.
    pub complaints_per_100_cap: f64,
}

/// The weight of each part in the blend; only their ratios matter.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreWeights {
    pub on_time_arrival: f64,
    pub resolve_in_target: f64,
    pub satisfaction: f64,
    pub reopen: f64,
    pub complaints: f64,
    pub reject: f64,
}

impl ScoreWeights {
    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("on_time_arrival", self.on_time_arrival),
            ("resolve_in_target", self.resolve_in_target),
            ("satisfaction", self.satisfaction),
            ("reopen", self.reopen),
            ("complaints", self.complaints),
            ("reject", self.reject),
        ]
    }
}

impl ScoringConfig {
    /// Parses and checks a scoring file: every weight finite and >= 0, their sum > 0,
    /// min_sample >= 1, shrinkage finite >= 0, cap finite > 0. Errors name the field.
    pub fn from_toml(text: &str) -> Result<ScoringConfig, String> {
        let cfg: ScoringConfig =
            toml::from_str(text).map_err(|e| match e.span().and_then(|s| text.get(..s.start)) {
                Some(before) => {
                    format!("line {}: {}", before.matches('\n').count() + 1, e.message())
                }
                None => e.message().to_owned(),
            })?;
        for (name, w) in cfg.weights.named() {
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!(
                    "weights.{name} must be a finite number >= 0, not {w}"
                ));
            }
        }
        let sum: f64 = cfg.weights.named().iter().map(|(_, w)| w).sum();
        if sum <= 0.0 {
            return Err("weights: at least one weight must be > 0".into());
        }
        if cfg.min_sample < 1 {
            return Err(format!("min_sample must be >= 1, not {}", cfg.min_sample));
        }
        if !(cfg.shrinkage.is_finite() && cfg.shrinkage >= 0.0) {
            return Err(format!(
                "shrinkage must be a finite number >= 0, not {}",
                cfg.shrinkage
            ));
        }
        let cap = cfg.complaints_per_100_cap;
        if !(cap.is_finite() && cap > 0.0) {
            return Err(format!(
                "complaints_per_100_cap must be a finite number > 0, not {cap}"
            ));
        }
        Ok(cfg)
    }
}

/// What a crew did in a period (counts gathered by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct CrewTally {
    pub crew_id: String,
    pub code: String,
    pub name: String,
    pub kind: CrewKind,
    /// First of the crew's area codes.
    pub home_area: Option<String>,
    /// Arrival instances (units: reply instances) started in the period: met, breached.
    pub arrival_met: i64,
    pub arrival_breached: i64,
    /// Restore instances started in the period: met, breached.
    pub restore_met: i64,
    pub restore_breached: i64,
    /// Callbacks credited to the crew in the period: very satisfied + satisfied, all.
    pub callbacks_good: i64,
    pub callbacks: i64,
    /// Distinct orders whose resolve in the period is credited to the crew, and how many of
    /// them were later reopened.
    pub orders: i64,
    pub reopened_orders: i64,
    /// Complaints in the period whose subject crew is this crew.
    pub complaints: i64,
    /// Returns (rejects) by the crew and dispatches to it in the period.
    pub returns: i64,
    pub dispatches: i64,
    /// Praise orders credited to the crew in the period.
    pub praise: i64,
}

/// The raw rates for the period (null when there is no data), shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScoreParts {
    pub on_time_arrival_rate: Option<f64>,
    pub resolve_in_target_rate: Option<f64>,
    pub satisfaction_rate: Option<f64>,
    pub reopen_rate: Option<f64>,
    pub complaints_per_100: Option<f64>,
    pub reject_rate: Option<f64>,
}

/// One row of `/reports/crews` (API.md, "Reports").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CrewScore {
    pub crew_id: String,
    pub code: String,
    pub name: String,
    /// `field` or `unit`.
    pub kind: String,
    pub rank: i64,
    pub score: Option<f64>,
    pub orders: i64,
    pub praise: i64,
    pub parts: ScoreParts,
    pub sample_ok: bool,
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The crew's raw rates for the period; a part whose denominator is 0 is null.
pub fn parts(t: &CrewTally) -> ScoreParts {
    ScoreParts {
        on_time_arrival_rate: ratio(t.arrival_met, t.arrival_met + t.arrival_breached),
        resolve_in_target_rate: ratio(t.restore_met, t.restore_met + t.restore_breached),
        satisfaction_rate: ratio(t.callbacks_good, t.callbacks),
        reopen_rate: ratio(t.reopened_orders, t.orders),
        complaints_per_100: ratio(t.complaints, t.orders).map(|r| 100.0 * r),
        reject_rate: ratio(t.returns, t.dispatches),
    }
}

/// Each part as (weight, goodness in 0..1), higher better; `None` where the part is null.
fn goodness(p: &ScoreParts, cfg: &ScoringConfig) -> [(f64, Option<f64>); 6] {
    let w = &cfg.weights;
    let unit = |g: f64| g.clamp(0.0, 1.0);
    [
        (w.on_time_arrival, p.on_time_arrival_rate.map(unit)),
        (w.resolve_in_target, p.resolve_in_target_rate.map(unit)),
        (w.satisfaction, p.satisfaction_rate.map(unit)),
        (w.reopen, p.reopen_rate.map(|r| unit(1.0 - r))),
        (
            w.complaints,
            p.complaints_per_100
                .map(|c| unit(1.0 - c / cfg.complaints_per_100_cap)),
        ),
        (w.reject, p.reject_rate.map(|r| unit(1.0 - r))),
    ]
}

/// Σ w·g / Σ w over the non-null parts, so a null part's weight is spread over the others;
/// `None` when no part with a weight has data.
fn raw_score(p: &ScoreParts, cfg: &ScoringConfig) -> Option<f64> {
    let (sum, weight) = goodness(p, cfg)
        .iter()
        .filter_map(|&(w, g)| g.map(|g| (w * g, w)))
        .fold((0.0, 0.0), |(s, ws), (x, w)| (s + x, ws + w));
    (weight > 0.0).then(|| sum / weight)
}

/// A rate shrunk toward a peer rate by `k` pseudo-observations: (hits + k*peer)/(total + k);
/// `None` when total + k == 0.
pub fn shrunk(hits: f64, total: f64, peer: f64, k: f64) -> Option<f64> {
    let n = total + k;
    (n != 0.0).then(|| (hits + k * peer) / n)
}

/// Scores and ranks crews: under-sampled crews after the others, then by score (none last),
/// ties by code; the output is in rank order, ranks 1..n.
pub fn score_crews(tallies: &[CrewTally], cfg: &ScoringConfig) -> Vec<CrewScore> {
    let scored: Vec<(&CrewTally, ScoreParts, Option<f64>)> = tallies
        .iter()
        .map(|t| {
            let p = parts(t);
            let raw = raw_score(&p, cfg);
            (t, p, raw)
        })
        .collect();

    // Per peer group (kind, home area): Σ orders·raw, Σ orders, Σ raw, count.
    type Group<'a> = (CrewKind, Option<&'a str>);
    let mut groups: HashMap<Group<'_>, (f64, f64, f64, f64)> = HashMap::new();
    for (t, _, raw) in &scored {
        if let Some(raw) = *raw {
            let n = t.orders.max(0) as f64;
            let g = groups.entry((t.kind, t.home_area.as_deref())).or_default();
            *g = (g.0 + n * raw, g.1 + n, g.2 + raw, g.3 + 1.0);
        }
    }
    let peer_average = |t: &CrewTally| {
        groups.get(&(t.kind, t.home_area.as_deref())).and_then(
            |&(weighted, orders, plain, count)| {
                if orders > 0.0 {
                    Some(weighted / orders)
                } else {
                    (count > 0.0).then(|| plain / count)
                }
            },
        )
    };

    let mut rows: Vec<(Option<f64>, CrewScore)> = scored
        .into_iter()
        .map(|(t, p, raw)| {
            let score = raw.map(|raw| {
                // the crew is its own peer, so a crew with a raw score has a peer average
                let peer = peer_average(t).unwrap_or(raw);
                let n = t.orders.max(0) as f64;
                shrunk(n * raw, n, peer, cfg.shrinkage).unwrap_or(raw)
            });
            let row = CrewScore {
                crew_id: t.crew_id.clone(),
                code: t.code.clone(),
                name: t.name.clone(),
                kind: t.kind.as_str().to_owned(),
                rank: 0,
                score: score.map(|s| (s * 10_000.0).round() / 10_000.0),
                orders: t.orders,
                praise: t.praise,
                parts: p,
                sample_ok: t.orders >= cfg.min_sample,
            };
            (score, row)
        })
        .collect();

    // ranked on the unrounded score; crew id last so equal codes still sort one way
    rows.sort_by(|(sa, a), (sb, b)| {
        b.sample_ok
            .cmp(&a.sample_ok)
            .then_with(|| match (sa, sb) {
                (Some(x), Some(y)) => y.total_cmp(x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.crew_id.cmp(&b.crew_id))
    });
    rows.into_iter()
        .zip(1..)
        .map(|((_, row), rank)| CrewScore { rank, ..row })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped weights, written out so the tests do not move when the file does.
    fn cfg() -> ScoringConfig {
        ScoringConfig {
            weights: ScoreWeights {
                on_time_arrival: 0.30,
                resolve_in_target: 0.20,
                satisfaction: 0.25,
                reopen: 0.10,
                complaints: 0.10,
                reject: 0.05,
            },
            min_sample: 5,
            shrinkage: 5.0,
            complaints_per_100_cap: 10.0,
        }
    }

    fn tally(code: &str, kind: CrewKind, area: &str) -> CrewTally {
        CrewTally {
            crew_id: format!("id-{code}"),
            code: code.to_owned(),
            name: format!("Crew {code}"),
            kind,
            home_area: Some(area.to_owned()),
            arrival_met: 0,
            arrival_breached: 0,
            restore_met: 0,
            restore_breached: 0,
            callbacks_good: 0,
            callbacks: 0,
            orders: 0,
            reopened_orders: 0,
            complaints: 0,
            returns: 0,
            dispatches: 0,
            praise: 0,
        }
    }

    /// A crew with every part at `good` of `n` (complaints 0), for a field crew.
    fn uniform(code: &str, area: &str, good: i64, n: i64) -> CrewTally {
        CrewTally {
            arrival_met: good,
            arrival_breached: n - good,
            restore_met: good,
            restore_breached: n - good,
            callbacks_good: good,
            callbacks: n,
            orders: n,
            reopened_orders: n - good,
            returns: n - good,
            dispatches: n,
            ..tally(code, CrewKind::Field, area)
        }
    }

    fn find<'a>(rows: &'a [CrewScore], code: &str) -> &'a CrewScore {
        rows.iter().find(|r| r.code == code).unwrap()
    }

    fn codes(rows: &[CrewScore]) -> Vec<&str> {
        rows.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn null_parts_spread_their_weight_over_the_others() {
        let t = CrewTally {
            arrival_met: 8,
            arrival_breached: 2,
            callbacks_good: 3,
            callbacks: 4,
            orders: 10,
            reopened_orders: 1,
            ..tally("u1", CrewKind::Unit, "A")
        };
        // arrival 8 of 10 = 0.8; no restore instances: null; callbacks 3 of 4 = 0.75;
        // reopened 1 of 10 orders = 0.1; 0 complaints per 10 orders = 0 per 100; no dispatches:
        // null.
        assert_eq!(
            parts(&t),
            ScoreParts {
                on_time_arrival_rate: Some(0.8),
                resolve_in_target_rate: None,
                satisfaction_rate: Some(0.75),
                reopen_rate: Some(0.1),
                complaints_per_100: Some(0.0),
                reject_rate: None,
            }
        );
        // goodness: 0.8, 0.75, 1 - 0.1 = 0.9, 1 - 0/10 = 1; weights of the non-null parts:
        // 0.30 + 0.25 + 0.10 + 0.10 = 0.75;
        // raw = (0.3*0.8 + 0.25*0.75 + 0.1*0.9 + 0.1*1)/0.75 = (0.24 + 0.1875 + 0.09 + 0.1)/0.75
        //     = 0.6175/0.75 = 0.82333...; its only peer is itself, so shrinking keeps it.
        let rows = score_crews(&[t], &cfg());
        assert_eq!(rows[0].score, Some(0.8233));
        assert_eq!(rows[0].kind, "unit");
        assert_eq!((rows[0].rank, rows[0].orders), (1, 10));
        assert!(rows[0].sample_ok, "10 orders >= 5");
    }

    #[test]
    fn a_crew_without_data_has_no_score() {
        let rows = score_crews(&[tally("idle", CrewKind::Field, "A")], &cfg());
        assert_eq!(rows[0].score, None);
        assert_eq!(rows[0].parts, parts(&tally("x", CrewKind::Field, "A")));
        assert_eq!(rows[0].parts.on_time_arrival_rate, None);
        assert!(!rows[0].sample_ok);
    }

    /// lucky: every part 3 of 3; steady: 45 of 50; slow: 25 of 50, all field crews of area A.
    fn area_a() -> Vec<CrewTally> {
        vec![
            uniform("lucky", "A", 3, 3),
            uniform("steady", "A", 45, 50),
            uniform("slow", "A", 25, 50),
        ]
    }

    /// Hand-worked (shrinkage 5, complaints always 0 so that part's goodness is 1):
    /// lucky  raw = 1.0
    /// steady raw = (0.3+0.2+0.25+0.1+0.05)*0.9 + 0.1*1 = 0.81 + 0.1 = 0.91
    /// slow   raw = 0.9*0.5 + 0.1*1 = 0.55
    /// peer average (orders-weighted) = (3*1.0 + 50*0.91 + 50*0.55)/103 = 76/103 = 0.737864...
    /// lucky  = (3*1.0 + 5*76/103)/(3+5)   = (3 + 3.689320)/8   = 0.836165 -> 0.8362
    /// steady = (50*0.91 + 5*76/103)/55    = 49.189320/55       = 0.894351 -> 0.8944
    /// slow   = (50*0.55 + 5*76/103)/55    = 31.189320/55       = 0.567079 -> 0.5671
    fn check_area_a(rows: &[CrewScore]) {
        assert_eq!(find(rows, "lucky").score, Some(0.8362));
        assert_eq!(find(rows, "steady").score, Some(0.8944));
        assert_eq!(find(rows, "slow").score, Some(0.5671));
    }

    #[test]
    fn three_perfect_orders_do_not_outrank_45_of_50() {
        // min_sample 1 so that the order comes from the shrunk scores alone
        let cfg = ScoringConfig {
            min_sample: 1,
            ..cfg()
        };
        let rows = score_crews(&area_a(), &cfg);
        check_area_a(&rows);
        assert_eq!(codes(&rows), ["steady", "lucky", "slow"]);
        assert_eq!(
            find(&rows, "lucky").parts.on_time_arrival_rate,
            Some(1.0),
            "parts are shown raw, unshrunk"
        );
    }

    #[test]
    fn peers_of_another_area_or_kind_are_not_mixed_in() {
        // a field crew of area B and a unit of area A, both with every part at 0 of 40 and 10
        // complaints per 40 orders (25 per 100, beyond the cap): raw 0. Mixed in, they would
        // pull area A's field average down.
        let zero = |t: CrewTally| CrewTally {
            complaints: 10,
            ..t
        };
        let mut all = area_a();
        all.push(zero(uniform("b-field", "B", 0, 40)));
        all.push(zero(CrewTally {
            kind: CrewKind::Unit,
            ..uniform("a-unit", "A", 0, 40)
        }));
        let rows = score_crews(&all, &cfg());
        check_area_a(&rows);
        // each outsider is its own only peer: (40*0 + 5*0)/45 = 0
        assert_eq!(find(&rows, "b-field").score, Some(0.0));
        assert_eq!(find(&rows, "a-unit").score, Some(0.0));
        assert_eq!(find(&rows, "b-field").parts.complaints_per_100, Some(25.0));
    }

    #[test]
    fn undersampled_crews_rank_after_the_others() {
        // each in its own area, so each is its own only peer and its score is its raw score.
        // big: arrival 2 of 5 = 0.4; 5 orders, none reopened (1), 0 complaints (1);
        //      raw = (0.3*0.4 + 0.1*1 + 0.1*1)/(0.3+0.1+0.1) = 0.32/0.5 = 0.64; 5 >= 5: sample ok
        let big = CrewTally {
            arrival_met: 2,
            arrival_breached: 3,
            orders: 5,
            ..tally("big", CrewKind::Field, "A")
        };
        // small: arrival 4 of 4, 4 orders, none reopened, no complaints: raw 1.0; 4 < 5
        let small = CrewTally {
            arrival_met: 4,
            orders: 4,
            ..tally("small", CrewKind::Field, "B")
        };
        // idle: nothing at all, no score, ranked last
        let idle = tally("a-idle", CrewKind::Field, "C");
        let rows = score_crews(&[idle, small, big], &cfg());
        assert_eq!(codes(&rows), ["big", "small", "a-idle"]);
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(rows[0].score, Some(0.64));
        assert!(rows[0].sample_ok);
        assert_eq!(rows[1].score, Some(1.0));
        assert!(!rows[1].sample_ok);
        assert_eq!(rows[2].score, None);
    }

    #[test]
    fn ties_go_to_the_lower_code() {
        // identical crews in one area: identical scores (9 of 10 everywhere:
        // raw = 0.9*0.9 + 0.1*1 = 0.91, and so is the peer average)
        let rows = score_crews(
            &[
                uniform("c", "A", 9, 10),
                uniform("a", "A", 9, 10),
                uniform("b", "A", 9, 10),
            ],
            &cfg(),
        );
        assert_eq!(codes(&rows), ["a", "b", "c"]);
        assert!(rows.iter().all(|r| r.score == Some(0.91)));
        assert_eq!(rows.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn complaints_score_zero_at_the_cap() {
        // only the complaints part weighs, so each (lone) crew's score is that part's goodness
        let cfg = ScoringConfig {
            weights: ScoreWeights {
                on_time_arrival: 0.0,
                resolve_in_target: 0.0,
                satisfaction: 0.0,
                reopen: 0.0,
                complaints: 1.0,
                reject: 0.0,
            },
            ..cfg()
        };
        let with = |code: &str, area: &str, complaints: i64| CrewTally {
            orders: 20,
            complaints,
            ..tally(code, CrewKind::Field, area)
        };
        let rows = score_crews(
            &[
                with("half", "A", 1),
                with("cap", "B", 2),
                with("over", "C", 3),
            ],
            &cfg,
        );
        // 1 per 20 orders = 5 per 100: 1 - 5/10 = 0.5
        assert_eq!(find(&rows, "half").score, Some(0.5));
        // 2 per 20 = 10 per 100, at the cap: 1 - 10/10 = 0
        assert_eq!(find(&rows, "cap").score, Some(0.0));
        // 3 per 20 = 15 per 100, beyond the cap: max(0, 1 - 1.5) = 0; the part shows 15
        assert_eq!(find(&rows, "over").score, Some(0.0));
        assert_eq!(find(&rows, "over").parts.complaints_per_100, Some(15.0));
        // a crew whose only data is in a part that weighs nothing has no score
        let rejects_only = CrewTally {
            returns: 1,
            dispatches: 4,
            ..tally("r", CrewKind::Field, "D")
        };
        let rows = score_crews(&[rejects_only], &cfg);
        assert_eq!(rows[0].parts.reject_rate, Some(0.25));
        assert_eq!(rows[0].score, None);
    }

    #[test]
    fn shrunk_mixes_in_pseudo_observations() {
        // (3 + 5*0.5)/(3 + 5) = 5.5/8 = 0.6875
        assert_eq!(shrunk(3.0, 3.0, 0.5, 5.0), Some(0.6875));
        // no observations: the peer rate itself
        assert_eq!(shrunk(0.0, 0.0, 0.25, 5.0), Some(0.25));
        // no shrinkage: the plain rate; nothing at all: none
        assert_eq!(shrunk(1.0, 4.0, 0.9, 0.0), Some(0.25));
        assert_eq!(shrunk(0.0, 0.0, 0.9, 0.0), None);
    }

    const SHIPPED: &str = include_str!("../../config/scoring.toml");

    #[test]
    fn the_shipped_file_parses_to_the_product_defaults() {
        assert_eq!(ScoringConfig::from_toml(SHIPPED), Ok(cfg()));
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let good =
            "[weights]\non_time_arrival = 0.3\nresolve_in_target = 0.2\nsatisfaction = 0.25\n\
                    reopen = 0.1\ncomplaints = 0.1\nreject = 0.05\n";
        let tail = "min_sample = 5\nshrinkage = 5.0\ncomplaints_per_100_cap = 10.0\n";
        // the top-level keys go before the [weights] table
        let file = |head: &str, weights: &str| format!("{head}{weights}");
        assert!(ScoringConfig::from_toml(&file(tail, good)).is_ok());
        let err = |text: String| ScoringConfig::from_toml(&text).unwrap_err();

        let e = err(file(tail, &good.replace("reject = 0.05", "reject = -0.05")));
        assert!(e.contains("weights.reject"), "{e}");
        let e = err(file(tail, &good.replace("reopen = 0.1", "reopen = nan")));
        assert!(e.contains("weights.reopen"), "{e}");
        let zero = "[weights]\non_time_arrival = 0\nresolve_in_target = 0\nsatisfaction = 0\n\
                    reopen = 0\ncomplaints = 0\nreject = 0\n";
        let e = err(file(tail, zero));
        assert!(e.contains("weights"), "{e}");
        let e = err(file(
            &tail.replace("min_sample = 5", "min_sample = 0"),
            good,
        ));
        assert!(e.contains("min_sample"), "{e}");
        let e = err(file(
            &tail.replace("shrinkage = 5.0", "shrinkage = -1.0"),
            good,
        ));
        assert!(e.contains("shrinkage"), "{e}");
        let e = err(file(
            &tail.replace(
                "complaints_per_100_cap = 10.0",
                "complaints_per_100_cap = 0.0",
            ),
            good,
        ));
        assert!(e.contains("complaints_per_100_cap"), "{e}");
        let e = err(file(&format!("{tail}bonus = 1\n"), good));
        assert!(e.contains("bonus"), "{e}");
        let e = err(file(tail, &format!("{good}speed = 0.1\n")));
        assert!(e.contains("speed"), "{e}");
        let e = err(file(tail, &good.replace("reject = 0.05\n", "")));
        assert!(e.contains("reject"), "{e}");
    }

    mod laws {
        use super::*;
        use proptest::prelude::*;

        fn any_tally() -> impl Strategy<Value = CrewTally> {
            (
                prop::sample::select(vec![CrewKind::Field, CrewKind::Unit]),
                prop::sample::select(vec!["A", "B"]),
                "[a-e]{1,2}",
                prop::collection::vec(0i64..30, 12),
            )
                .prop_map(|(kind, area, code, n)| CrewTally {
                    arrival_met: n[0],
                    arrival_breached: n[1],
                    restore_met: n[2],
                    restore_breached: n[3],
                    callbacks_good: n[4].min(n[5]),
                    callbacks: n[5],
                    orders: n[6],
                    reopened_orders: n[7].min(n[6]),
                    complaints: n[8],
                    returns: n[9],
                    dispatches: n[10],
                    praise: n[11],
                    ..tally(&code, kind, area)
                })
        }

        /// Every goodness value a crew's parts can give (the same maps as the score uses).
        fn goodness_values(t: &CrewTally, cfg: &ScoringConfig) -> Vec<f64> {
            goodness(&parts(t), cfg)
                .iter()
                .filter_map(|(_, g)| *g)
                .collect()
        }

        proptest! {
            /// A score is a blend of goodness values, so it lies between the least and the
            /// greatest of them over all crews, inside 0..1; ranks are 1..n in output order.
            #[test]
            fn scores_stay_within_the_goodness_range_and_ranks_are_1_to_n(
                tallies in prop::collection::vec(any_tally(), 0..12),
                shrinkage in 0.0f64..20.0,
            ) {
                let cfg = ScoringConfig { shrinkage, ..cfg() };
                let rows = score_crews(&tallies, &cfg);
                prop_assert_eq!(rows.len(), tallies.len());
                let ranks: Vec<i64> = rows.iter().map(|r| r.rank).collect();
                let expected: Vec<i64> = (1..=tallies.len() as i64).collect();
                prop_assert_eq!(ranks, expected);
                let all: Vec<f64> = tallies.iter().flat_map(|t| goodness_values(t, &cfg)).collect();
                let lo = all.iter().copied().fold(1.0, f64::min);
                let hi = all.iter().copied().fold(0.0, f64::max);
                for r in &rows {
                    if let Some(s) = r.score {
                        // 5e-5 of rounding to 4 decimals
                        prop_assert!((0.0..=1.0).contains(&s), "{s}");
                        prop_assert!(s >= lo - 5e-5 && s <= hi + 5e-5, "{s} not in {lo}..{hi}");
                    }
                }
                // under-sampled crews never come before sampled ones
                let first_small = rows.iter().position(|r| !r.sample_ok).unwrap_or(rows.len());
                prop_assert!(rows[first_small..].iter().all(|r| !r.sample_ok));
            }
        }
    }
}
