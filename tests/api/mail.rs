//! Mail: the outbox is written with the event, the sender delivers over SMTP (a real server
//! over TCP) or to .eml files, retries through an outage with every mail arriving exactly
//! once, keeps mail it cannot deliver as dead, and sends one digest per recipient in a surge.

use crate::helpers::*;
use crate::smtp::{free_port, SmtpSink};
use chrono::TimeDelta;
use gridcall::jobs::sender::SendReport;
use serde_json::json;
use std::collections::HashMap;

async fn complaint(app: &TestApp, token: &str, account: &str, email: &str) -> String {
    let customer = app
        .post(
            "/api/v1/customers",
            token,
            json!({"account_no": account, "name": "王五", "phone": "13700000000", "email": email,
            "address": "深南大道 1 号", "area_code": "SZ-FT-01"}),
        )
        .await
        .expect(201)
        .id();
    app.post(
        "/api/v1/work-orders",
        token,
        json!({"kind": "complaint", "channel": "phone", "customer_id": customer,
        "area_code": "SZ-FT-01", "description": "抄表员态度恶劣", "force_new": true}),
    )
    .await
    .expect(201)
    .id()
}

#[actix_web::test]
async fn complaint_acknowledgement_goes_to_an_eml_file_by_default() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    complaint(&app, &c.agent, "A-1", "wang@example.com").await;
    let queued = app.outbox();
    assert_eq!(queued.len(), 1, "written with the order");
    assert_eq!(queued[0].kind, "complaint_ack");
    assert_eq!(
        app.send_mail(),
        SendReport {
            sent: 1,
            rows: 1,
            ..Default::default()
        }
    );
    let files: Vec<_> = std::fs::read_dir(&app.mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    let raw = std::fs::read(&files[0]).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let number = app
        .get("/api/v1/work-orders?kind=complaint", &c.agent)
        .await
        .body["items"][0]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        parsed.subject().unwrap().contains(&number),
        "{:?}",
        parsed.subject()
    );
    assert!(parsed.subject().unwrap().contains("投诉已受理"));
    assert_eq!(
        format!("<{}>", parsed.message_id().unwrap()),
        queued[0].message_id
    );
    assert_eq!(app.send_mail(), SendReport::default(), "sent once");
    // no email, no mail
    let id = app
        .new_order(&c.agent, "complaint", "SZ-FT-01", "13800000000")
        .await;
    assert!(app
        .outbox()
        .iter()
        .all(|m| m.work_order_id.as_deref() != Some(id.as_str())));
}

fn smtp_app(port: u16) -> impl FnOnce(&mut gridcall::config::Settings) {
    move |s| {
        s.mail.transport = gridcall::config::MailTransport::Smtp;
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = port;
        s.mail.smtp_security = gridcall::config::SmtpSecurity::Plain;
        s.mail.max_attempts = 5;
    }
}

#[actix_web::test]
async fn an_smtp_outage_delays_mail_and_every_mail_arrives_exactly_once() {
    let port = free_port();
    let app = spawn_app_with(smtp_app(port)).await;
    let c = cast(&app).await;
    // the server is not there yet: connections are refused, mail waits
    for i in 0..3 {
        complaint(
            &app,
            &c.agent,
            &format!("A-{i}"),
            &format!("c{i}@example.com"),
        )
        .await;
    }
    assert_eq!(
        app.send_mail(),
        SendReport {
            retrying: 3,
            ..Default::default()
        }
    );
    assert!(app
        .outbox()
        .iter()
        .all(|m| m.attempts == 1 && m.last_error.is_some()));
    assert_eq!(app.send_mail(), SendReport::default(), "backing off");
    let sink = SmtpSink::start(port);
    app.clock.advance(TimeDelta::seconds(6));
    assert_eq!(
        app.send_mail(),
        SendReport {
            sent: 3,
            rows: 3,
            ..Default::default()
        }
    );
    // the server goes down (421) while more complaints come in
    sink.set_down(true);
    for i in 3..5 {
        complaint(
            &app,
            &c.agent,
            &format!("A-{i}"),
            &format!("c{i}@example.com"),
        )
        .await;
    }
    assert_eq!(
        app.send_mail(),
        SendReport {
            retrying: 2,
            ..Default::default()
        }
    );
    app.clock.advance(TimeDelta::seconds(6));
    assert_eq!(
        app.send_mail(),
        SendReport {
            retrying: 2,
            ..Default::default()
        },
        "still down: second attempt"
    );
    sink.set_down(false);
    app.clock.advance(TimeDelta::seconds(11));
    assert_eq!(
        app.send_mail(),
        SendReport {
            sent: 2,
            rows: 2,
            ..Default::default()
        }
    );
    assert_eq!(app.send_mail(), SendReport::default());
    let received = sink.messages();
    assert_eq!(received.len(), 5);
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (id, subject, body) in &received {
        *by_id.entry(format!("<{id}>")).or_default() += 1;
        assert!(subject.contains("投诉已受理"), "{subject}");
        assert!(body.contains("工单号"), "{body}");
    }
    for m in app.outbox() {
        assert_eq!(m.state, "sent");
        assert_eq!(
            by_id.get(&m.message_id),
            Some(&1),
            "{} arrived exactly once",
            m.message_id
        );
    }
}

#[actix_web::test]
async fn undeliverable_mail_is_kept_as_dead() {
    let port = free_port();
    let app = spawn_app_with(|s| {
        smtp_app(port)(s);
        s.mail.max_attempts = 2;
    })
    .await;
    let c = cast(&app).await;
    complaint(&app, &c.agent, "A-1", "x@example.com").await;
    assert_eq!(app.send_mail().retrying, 1);
    app.clock.advance(TimeDelta::seconds(6));
    assert_eq!(app.send_mail().dead, 1);
    app.clock.advance(TimeDelta::hours(1));
    assert_eq!(app.send_mail(), SendReport::default());
    assert_eq!(app.outbox()[0].state, "dead");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridcall_mail_outbox{state=\"dead\"} 1"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn alerts_go_to_the_right_people_as_one_digest_per_interval() {
    let port = free_port();
    let sink = SmtpSink::start(port);
    let app = spawn_app_with(smtp_app(port)).await;
    let c = cast(&app).await;
    app.user(
        "disp-mail",
        "dispatcher",
        json!({"email": "dispatch@example.com"}),
    )
    .await;
    app.user(
        "disp-other",
        "dispatcher",
        json!({"email": "other@example.com", "area_codes": ["SZ-FT-01"]}),
    )
    .await;
    app.area("SZ-ELSE", "urban").await;
    app.user(
        "disp-else",
        "dispatcher",
        json!({"email": "else@example.com", "area_codes": ["SZ-ELSE"]}),
    )
    .await;
    app.user(
        "super-mail",
        "supervisor",
        json!({"email": "boss@example.com"}),
    )
    .await;
    let mut numbers = Vec::new();
    for i in 0..5 {
        let o = app
            .order(&c.agent, "repair", "SZ-FT-01", &format!("1390000000{i}"))
            .await
            .expect(201)
            .body;
        numbers.push(o["number"].as_str().unwrap().to_owned());
    }
    // dispatch warnings (4 min) for all five at once: one digest to each area dispatcher
    app.clock
        .advance(TimeDelta::minutes(4) + TimeDelta::seconds(10));
    assert_eq!(app.scan().warnings, 5);
    assert_eq!(
        app.outbox().len(),
        10,
        "five alerts to each of two dispatchers"
    );
    assert_eq!(
        app.send_mail(),
        SendReport::default(),
        "held until the interval ends"
    );
    app.clock.advance(TimeDelta::seconds(60));
    assert_eq!(
        app.send_mail(),
        SendReport {
            sent: 2,
            rows: 10,
            ..Default::default()
        }
    );
    let received = sink.messages();
    assert_eq!(received.len(), 2);
    for (_, subject, body) in &received {
        assert!(subject.contains("5 条"), "{subject}");
        for n in &numbers {
            assert!(body.contains(n.as_str()), "{n} listed in {body}");
        }
    }
    // one breach alone in its interval: a single mail to the supervisor, in Chinese, with the details
    app.clock.advance(TimeDelta::minutes(1));
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13900000009")
        .await;
    let dispatcher = app.login("disp1", PASSWORD).await;
    app.act(
        &dispatcher,
        &id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    app.clock.advance(TimeDelta::minutes(1));
    app.scan();
    let before = sink.messages().len();
    app.clock.advance(TimeDelta::minutes(10));
    let scanned = app.scan();
    assert!(scanned.breaches >= 1, "{scanned:?}");
    app.clock.advance(TimeDelta::seconds(61));
    app.send_mail();
    let new: Vec<_> = sink.messages().into_iter().skip(before).collect();
    let to_boss: Vec<_> = new.iter().filter(|(_, s, _)| s.contains("超时")).collect();
    assert!(!to_boss.is_empty(), "{new:?}");
    let (_, subject, body) = to_boss[0];
    assert!(subject.contains("R2026"), "{subject}");
    assert!(
        // the link opens the order's page on the board, not raw JSON
        body.contains("Asia/Shanghai") && body.contains("/orders/") && !body.contains("/api/v1/"),
        "{body}"
    );
}
