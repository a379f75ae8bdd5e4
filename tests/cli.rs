//! The `gridcall` binary itself: user creation from standard input, migrate, check-config,
//! backup of a live SQLite database, refusal of the built-in secret in production, and a
//! graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn gridcall(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridcall"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("GRIDCALL_ENV")
        .env("GRIDCALL__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("GRIDCALL__AUTH__ARGON2_ITERATIONS", "1");
    cmd
}

fn run(cmd: &mut Command, stdin: &str) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused on its arguments exits before it reads its input: a broken pipe
    // then is its answer, not the test's failure.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the command's input: {e}"),
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Logs in over plain HTTP/1.1 and returns the access token.
fn login(port: u16, username: &str, password: &str) -> String {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let json = &out[out.find("\r\n\r\n").expect("a response") + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn user_create_migrate_check_config_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run(
        gridcall(dir.path()).args([
            "user",
            "create",
            "--username",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ]),
        "Root-pass-2026!\n",
    );
    assert!(ok, "{out}");
    assert!(
        dir.path().join("data/gridcall.db").exists(),
        "SQLite under ./data by default"
    );
    let (ok, out) = run(
        gridcall(dir.path()).args([
            "user",
            "create",
            "--username",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ]),
        "Root-pass-2026!\n",
    );
    assert!(!ok && out.contains("taken"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path()).args([
            "user",
            "create",
            "--username",
            "x",
            "--role",
            "admin",
            "--password-stdin",
        ]),
        "short\n",
    );
    assert!(!ok && out.contains("password"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path()).args([
            "user",
            "create",
            "--username",
            "x",
            "--role",
            "wizard",
            "--password-stdin",
        ]),
        "long-enough-1\n",
    );
    assert!(!ok && out.contains("wizard"), "{out}");
    let (ok, out) = run(gridcall(dir.path()).arg("migrate"), "");
    assert!(ok, "{out}");
    let (ok, out) = run(gridcall(dir.path()).arg("check-config"), "");
    assert!(ok && out.contains("SQLite"), "{out}");
    let (ok, out) = run(gridcall(dir.path()).args(["backup", "--to", "copy.db"]), "");
    assert!(ok, "{out}");
    assert!(dir.path().join("copy.db").metadata().unwrap().len() > 0);
    let (ok, out) = run(gridcall(dir.path()).args(["backup", "--to", "copy.db"]), "");
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path())
            .arg("check-config")
            .env("GRIDCALL__SERVER__WORKERS", "many"),
        "",
    );
    assert!(!ok, "{out}");
    let (ok, out) = run(
        gridcall(dir.path())
            .arg("check-config")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x"),
        "",
    );
    assert!(ok && out.contains("PostgreSQL"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path())
            .args(["backup", "--to", "x.db"])
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x"),
        "",
    );
    assert!(!ok && out.contains("pg_dump"), "{out}");
}

#[test]
fn production_refuses_the_builtin_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run(
        gridcall(dir.path())
            .arg("check-config")
            .env("GRIDCALL_ENV", "production"),
        "",
    );
    assert!(!ok && out.contains("jwt_secret"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path())
            .arg("check-config")
            .env("GRIDCALL_ENV", "production")
            .env(
                "GRIDCALL__AUTH__JWT_SECRET",
                "a-production-secret-of-forty-characters!!",
            ),
        "",
    );
    assert!(ok, "{out}");
}

#[test]
fn serves_from_any_directory_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, out) = run(
        gridcall(dir.path()).args([
            "user",
            "create",
            "--username",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ]),
        "Root-pass-2026!\n",
    );
    assert!(ok, "{out}");
    let mut child = gridcall(dir.path())
        // longer than the test waits: the stream must end because of the drain
        .env("GRIDCALL__SERVER__SHUTDOWN_TIMEOUT_SECS", "60")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // wait for the server's own word that it listens
    for line in lines.by_ref() {
        if line.unwrap().contains("starting service") {
            break;
        }
    }
    let health = http_get(port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let docs = http_get(port, "/api/v1/openapi.json");
    assert!(docs.contains("\"openapi\""), "{docs}");
    // An open event stream ends with a reconnect hint instead of holding up the stop.
    let token = login(port, "root", "Root-pass-2026!");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    // Phones reach the log masked however the client encoded them; tickets never do.
    http_get(port, "/api/v1/work-orders?phone=%2B8613812345678");
    http_get(port, "/api/v1/work-orders?q=%E5%BC%A013812345679");
    http_get(port, "/api/v1/events/stream?ticket=unspent-ticket-secret");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut tail = String::new();
    let _ = stream.read_to_string(&mut tail);
    assert!(
        tail.contains("reconnect with Last-Event-ID"),
        "the stream ends on SIGTERM with a hint: {tail:?}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("SIGTERM") || l.contains("graceful")),
        "{rest:?}"
    );
    let log = rest.join("\n");
    assert!(
        log.contains("q=张138****5679") && log.contains("ticket=***"),
        "the requests were logged: {log}"
    );
    for secret in [
        "13812345678",
        "13812345679",
        "unspent-ticket-secret",
        "%2B86",
    ] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}

#[test]
fn sla_policy_check_reload_and_recalc() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let policy = dir.path().join("config/sla.toml");
    std::fs::write(&policy, "version = 'v2'\n\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '5 weeks', calendar = 'area' } }\n").unwrap();
    let (ok, out) = run(gridcall(dir.path()).arg("check-config"), "");
    assert!(
        !ok && out.contains("line 3") && out.contains("5 weeks"),
        "{out}"
    );
    std::fs::write(&policy, "version = 'v2'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '5d', calendar = 'area' } }\n").unwrap();
    let (ok, out) = run(gridcall(dir.path()).arg("check-config"), "");
    assert!(ok && out.contains("v2"), "{out}");
    let (ok, out) = run(gridcall(dir.path()).args(["sla", "reload"]), "");
    assert!(ok && out.contains("published SLA policy v2"), "{out}");
    let (ok, out) = run(gridcall(dir.path()).args(["sla", "reload"]), "");
    assert!(ok && out.contains("already published"), "{out}");
    std::fs::write(&policy, "version = 'v2'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '4d', calendar = 'area' } }\n").unwrap();
    let (ok, out) = run(gridcall(dir.path()).args(["sla", "reload"]), "");
    assert!(!ok && out.contains("new version"), "{out}");
    std::fs::write(&policy, "version = 'v3'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '4d', calendar = 'area' } }\n").unwrap();
    let (ok, out) = run(gridcall(dir.path()).args(["sla", "reload"]), "");
    assert!(ok && out.contains("published SLA policy v3"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path()).args(["sla", "recalc", "--area", "SZ-FT-01"]),
        "",
    );
    assert!(ok && out.contains("policy v3"), "{out}");
    let (ok, out) = run(
        gridcall(dir.path()).args(["sla", "recalc", "--since", "yesterday"]),
        "",
    );
    assert!(!ok && out.contains("--since"), "{out}");
}
