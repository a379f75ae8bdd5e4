//! A real SMTP server for the tests: mailin-embedded, in-process, over TCP on a port of
//! its own. It can be not there yet (connections refused) and can go down (it answers 421
//! to every greeting and every new mail, as a server shutting down does) and come back.

use mailin_embedded::response::{NO_SERVICE, OK};
use mailin_embedded::{Handler, Response, Server};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Sink {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    down: Arc<AtomicBool>,
    buf: Vec<u8>,
}

impl Handler for Sink {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        if self.down.load(Ordering::SeqCst) {
            NO_SERVICE
        } else {
            OK
        }
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        // a pooled connection from before the outage is refused too
        self.helo(_ip, _domain)
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.buf.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.received
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.buf));
        OK
    }
}

pub struct SmtpSink {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    down: Arc<AtomicBool>,
}

/// A free port nobody listens on yet.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    /// Starts listening on `port`; the listener is bound before this returns.
    pub fn start(port: u16) -> SmtpSink {
        let received = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let mut server = Server::new(Sink {
            received: received.clone(),
            down: down.clone(),
            buf: Vec::new(),
        });
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve().map_err(|e| e.to_string());
        });
        SmtpSink { received, down }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every message received so far, parsed.
    pub fn messages(&self) -> Vec<(String, String, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|raw| {
                let m = mail_parser::MessageParser::default()
                    .parse(raw)
                    .expect("a parsable message");
                (
                    m.message_id().unwrap_or_default().to_owned(),
                    m.subject().unwrap_or_default().to_owned(),
                    m.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
                )
            })
            .collect()
    }
}
