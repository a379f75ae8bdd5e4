//! What gets mailed to whom: SLA warnings to the area's dispatchers, breaches and
//! escalations to its supervisors, a complaint acknowledgement to the customer. Rows are
//! rendered and written to the outbox inside the caller's transaction.

use super::Templates;
use crate::db::outbox::{self, OutboxRow};
use crate::db::timers::TimerRow;
use crate::db::users;
use crate::db::work_orders::WorkOrderRow;
use crate::db::DbConnection;
use crate::domain::Role;
use crate::errors::AppError;
use chrono::{DateTime, TimeZone, Utc};
use minijinja::context;
use std::sync::Arc;

/// Addresses by (role, area) for the duration of one batch.
pub type RecipientCache = std::collections::HashMap<(Role, String), Vec<String>>;

/// Renders and queues mails; cheap to clone into a blocking closure.
#[derive(Clone, Debug)]
pub struct Notifier {
    pub templates: Arc<Templates>,
    pub base_url: String,
    /// Alerts to one recipient within one interval are sent as one digest.
    pub digest_interval_secs: i64,
}

pub fn stage_name(stage: &str) -> &'static str {
    match stage {
        "dispatch" => "派单",
        "accept" => "接单",
        "arrival" => "到达现场",
        "restore" => "恢复供电",
        "contact" => "联系客户",
        "reply" => "答复",
        "callback" => "回访",
        _ => "处理",
    }
}

pub fn kind_name(kind: &str) -> &'static str {
    match kind {
        "repair" => "故障报修",
        "service_request" => "服务申请",
        "complaint" => "投诉",
        "report" => "举报",
        "inquiry" => "业务咨询",
        "opinion" => "意见",
        "suggestion" => "建议",
        "praise" => "表扬",
        _ => "工单",
    }
}

/// A stable Message-ID for a new mail.
pub fn new_message_id() -> String {
    format!("<{}@gridcall>", uuid::Uuid::new_v4())
}

impl Notifier {
    fn local(&self, t: DateTime<Utc>) -> String {
        chrono_tz::Asia::Shanghai
            .from_utc_datetime(&t.naive_utc())
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// A rendered mail as an outbox row; alerts are grouped per recipient and interval.
    fn row(
        &self,
        kind: &str,
        recipient: &str,
        (subject, body): (String, String),
        order_id: &str,
        digest: bool,
        now: DateTime<Utc>,
    ) -> OutboxRow {
        let (digest_key, next) = if digest {
            let slot = now.timestamp().div_euclid(self.digest_interval_secs);
            let slot_end = Utc
                .timestamp_opt((slot + 1) * self.digest_interval_secs, 0)
                .single()
                .unwrap_or(now);
            (Some(format!("{recipient}|{slot}")), slot_end)
        } else {
            (None, now)
        };
        OutboxRow {
            id: crate::db::new_row_key(),
            message_id: new_message_id(),
            kind: kind.to_owned(),
            recipient: recipient.to_owned(),
            subject,
            body,
            work_order_id: Some(order_id.to_owned()),
            digest_key,
            state: "pending".into(),
            attempts: 0,
            last_error: None,
            next_attempt_at: next.naive_utc(),
            lease_until: None,
            created_at: now.naive_utc(),
            sent_at: None,
        }
    }

    /// Renders a warning, breach or escalation mail for the timer's order into `out`, one
    /// row per recipient; returns how many. `recipients` caches the address lists of one scanner batch.
    pub fn sla_alert(
        &self,
        conn: &mut DbConnection,
        kind: &str,
        (order, timer): (&WorkOrderRow, &TimerRow),
        recipients: &mut RecipientCache,
        out: &mut Vec<OutboxRow>,
        now: DateTime<Utc>,
    ) -> Result<usize, AppError> {
        let role = if kind == "sla_warning" {
            Role::Dispatcher
        } else {
            Role::Supervisor
        };
        let key = (role, order.area_code.clone());
        let recipients = match recipients.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = users::emails_for(conn, role, &order.area_code)?;
                recipients.insert(key, r.clone());
                r
            }
        };
        if recipients.is_empty() {
            return Ok(0);
        }
        let number = order.number.clone().unwrap_or_default();
        let ctx = context! {
            number => number,
            stage_name => stage_name(&timer.stage),
            kind_name => kind_name(order.kind.as_str()),
            area_code => order.area_code,
            due_local => timer.due_at.map(|d| self.local(d.and_utc())).unwrap_or_default(),
            time_zone => "Asia/Shanghai",
            target => timer.target,
            level => timer.escalation_level,
            url => format!("{}/orders/{}", self.base_url.trim_end_matches('/'), order.id),
        };
        let rendered = self
            .templates
            .render(kind, ctx)
            .map_err(AppError::internal)?;
        for r in &recipients {
            out.push(self.row(kind, r, rendered.clone(), &order.id, true, now));
        }
        Ok(recipients.len())
    }

    /// Alerts the area's dispatchers that automatic dispatch found no crew.
    pub fn no_eligible_crew(
        &self,
        conn: &mut DbConnection,
        order: &WorkOrderRow,
        considered: usize,
        now: DateTime<Utc>,
    ) -> Result<usize, AppError> {
        let recipients = users::emails_for(conn, Role::Dispatcher, &order.area_code)?;
        let ctx = context! {
            number => order.number.clone().unwrap_or_default(),
            kind_name => kind_name(order.kind.as_str()),
            area_code => order.area_code,
            considered => considered,
            url => format!("{}/orders/{}", self.base_url.trim_end_matches('/'), order.id),
        };
        let rendered = self
            .templates
            .render("no_eligible_crew", ctx)
            .map_err(AppError::internal)?;
        for r in &recipients {
            outbox::insert(
                conn,
                &self.row(
                    "no_eligible_crew",
                    r,
                    rendered.clone(),
                    &order.id,
                    true,
                    now,
                ),
            )?;
        }
        Ok(recipients.len())
    }

    /// Queues the acknowledgement of a complaint to the customer's address.
    pub fn complaint_ack(
        &self,
        conn: &mut DbConnection,
        order: &WorkOrderRow,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let ctx = context! {
            number => order.number.clone().unwrap_or_default(),
            created_local => self.local(order.created_at.and_utc()),
        };
        let rendered = self
            .templates
            .render("complaint_ack", ctx)
            .map_err(AppError::internal)?;
        outbox::insert(
            conn,
            &self.row("complaint_ack", email, rendered, &order.id, false, now),
        )
    }

    /// Tells the supervisors who may decide an appeal on the order (scoped to its area or an
    /// area above it, or unscoped) that one was filed; returns how many were mailed.
    pub fn appeal_filed(
        &self,
        conn: &mut DbConnection,
        order: &WorkOrderRow,
        appeal: &crate::db::appeals::AppealRow,
        filed_by: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, AppError> {
        fn reason_name(code: &str) -> &'static str {
            match code {
                "weather" => "恶劣天气",
                "customer_unreachable" => "客户无法联系",
                "access_denied" => "无法进入现场",
                "third_party" => "第三方原因",
                "upstream_outage" => "上级电网停电",
                _ => "其他",
            }
        }
        let tree = crate::db::areas::tree(conn)?;
        let parent_of: std::collections::HashMap<&str, &str> = tree
            .iter()
            .filter_map(|(code, parent)| parent.as_deref().map(|p| (code.as_str(), p)))
            .collect();
        let mut covering = vec![appeal.area_code.as_str()];
        while let Some(p) = covering.last().and_then(|c| parent_of.get(c)) {
            if covering.contains(p) {
                break;
            }
            covering.push(p);
        }
        let mut recipients = std::collections::BTreeSet::new();
        for code in covering {
            recipients.extend(users::emails_for(conn, Role::Supervisor, code)?);
        }
        if recipients.is_empty() {
            return Ok(0);
        }
        let ctx = context! {
            number => order.number.clone().unwrap_or_default(),
            stage_name => stage_name(&appeal.stage),
            instance => appeal.instance,
            kind_name => kind_name(order.kind.as_str()),
            area_code => order.area_code,
            filed_by => filed_by,
            filed_local => self.local(appeal.filed_at.and_utc()),
            time_zone => "Asia/Shanghai",
            reason_name => reason_name(&appeal.reason_code),
            reason => appeal.reason,
            url => format!("{}/appeals/{}", self.base_url.trim_end_matches('/'), appeal.id),
        };
        let rendered = self
            .templates
            .render("appeal_filed", ctx)
            .map_err(AppError::internal)?;
        for r in &recipients {
            outbox::insert(
                conn,
                &self.row("appeal_filed", r, rendered.clone(), &order.id, true, now),
            )?;
        }
        Ok(recipients.len())
    }
}
