//! The outbox sender: claims due mails with a lease, sends them (alerts to one recipient in
//! one interval as a single digest), and marks them sent, or retries with exponential
//! backoff, or keeps them as dead after the last attempt. At-least-once: only a crash
//! between the server's acceptance and the outbox update can repeat a mail, and the repeat
//! carries the same Message-ID.

use crate::auth::tokens::sha256_hex;
use crate::db::outbox::{self, OutboxRow};
use crate::db::{write_transaction, DbConnection};
use crate::errors::AppError;
use crate::notify::{Mailer, Templates};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use minijinja::context;
use std::sync::Arc;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Mails handed to the server (a digest counts once).
    pub sent: usize,
    /// Outbox rows those mails carried.
    pub rows: usize,
    pub retrying: usize,
    pub dead: usize,
}

impl SendReport {
    pub fn is_empty(&self) -> bool {
        self == &SendReport::default()
    }
}

pub struct Sender {
    pub batch: i64,
    pub max_attempts: i32,
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    pub digest_interval_secs: i64,
    pub templates: Arc<Templates>,
}

/// How long a claim holds a mail before another sender may take it; the lease instant is
/// also the claim's token, so a sender only marks what it still holds.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// How long one pass may keep sending before it hands back what it has not tried.
const LEASE_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

impl Sender {
    fn backoff(&self, attempts: i32) -> TimeDelta {
        let exp = attempts.clamp(1, 30) as u32 - 1;
        let secs = self
            .backoff_base_secs
            .saturating_mul(1i64 << exp.min(40))
            .min(self.backoff_max_secs);
        TimeDelta::seconds(secs)
    }

    /// Sends every due mail once; returns what happened.
    pub fn run_once(
        &self,
        conn: &mut DbConnection,
        mailer: &Mailer,
        now: DateTime<Utc>,
    ) -> Result<SendReport, AppError> {
        let mut report = SendReport::default();
        let started = std::time::Instant::now();
        loop {
            let lease = (now + LEASE).naive_utc();
            let claimed = write_transaction(conn, |c| {
                outbox::claim(c, now.naive_utc(), lease, self.batch)
            })?;
            let fetched = claimed.len();
            let mut groups = group_by_digest(claimed).into_iter();
            for group in groups.by_ref() {
                self.send_group(conn, mailer, group, now, &mut report)?;
                // A slow server must not outlast the lease of mails not yet tried: hand
                // them back for the next pass (of this or another instance).
                if started.elapsed() > LEASE_BUDGET {
                    break;
                }
            }
            let rest: Vec<String> = groups.flatten().map(|r| r.id).collect();
            if !rest.is_empty() {
                write_transaction(conn, |c| outbox::release(c, &rest, lease))?;
                break;
            }
            if (fetched as i64) < self.batch {
                break;
            }
        }
        Ok(report)
    }

    fn send_group(
        &self,
        conn: &mut DbConnection,
        mailer: &Mailer,
        group: Vec<OutboxRow>,
        now: DateTime<Utc>,
        report: &mut SendReport,
    ) -> Result<(), AppError> {
        let ids: Vec<String> = group.iter().map(|r| r.id.clone()).collect();
        let first = &group[0];
        let lease = first.lease_until.unwrap_or_default();
        let (subject, body, message_id) = if group.len() == 1 {
            (
                first.subject.clone(),
                first.body.clone(),
                first.message_id.clone(),
            )
        } else {
            let key = first.digest_key.clone().unwrap_or_default();
            let slot: i64 = key
                .rsplit('|')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let local = |secs: i64| {
                Utc.timestamp_opt(secs, 0)
                    .single()
                    .map(|t| {
                        t.with_timezone(&chrono_tz::Asia::Shanghai)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_default()
            };
            let window = format!(
                "{} – {}",
                local(slot * self.digest_interval_secs),
                local((slot + 1) * self.digest_interval_secs)
            );
            let items: Vec<String> = group.iter().map(|r| r.subject.clone()).collect();
            let (subject, body) = self
                .templates
                .render(
                    "digest",
                    context! { count => group.len(), window_local => window, items => items },
                )
                .map_err(AppError::internal)?;
            // The same digest always has the same id, however often it is retried.
            (
                subject,
                body,
                format!(
                    "<digest-{}@gridcall>",
                    &sha256_hex(digest_identity(&key, &group).as_bytes())[..32]
                ),
            )
        };
        match mailer.send(&first.recipient, &subject, &body, &message_id) {
            Ok(()) => {
                write_transaction(conn, |c| outbox::mark_sent(c, &ids, lease, now.naive_utc()))?;
                report.sent += 1;
                report.rows += ids.len();
            }
            Err(e) => {
                let attempts = group.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
                let dead = e.permanent || attempts >= self.max_attempts;
                let next = now + self.backoff(attempts);
                log::warn!(
                    "mail to {} failed (attempt {attempts}{}): {}",
                    first.recipient,
                    if dead { ", giving up" } else { "" },
                    e.message
                );
                write_transaction(conn, |c| {
                    outbox::mark_failed(
                        c,
                        &ids,
                        lease,
                        attempts,
                        next.naive_utc(),
                        &e.message,
                        dead,
                    )
                })?;
                if dead {
                    report.dead += ids.len();
                } else {
                    report.retrying += ids.len();
                }
            }
        }
        Ok(())
    }
}

/// Consecutive rows with the same digest key form one mail; others go alone.
fn group_by_digest(rows: Vec<OutboxRow>) -> Vec<Vec<OutboxRow>> {
    let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
    for row in rows {
        match (groups.last_mut(), &row.digest_key) {
            (Some(g), Some(key)) if g[0].digest_key.as_ref() == Some(key) => g.push(row),
            _ => groups.push(vec![row]),
        }
    }
    groups
}

/// What makes a digest the same mail on a retry: its key and the rows it carries (a digest
/// split across claims becomes two mails with two ids).
fn digest_identity(key: &str, group: &[OutboxRow]) -> String {
    let mut ids: Vec<&str> = group.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    format!("{key}|{}", ids.join(","))
}
