//! The mailer backends: SMTP (STARTTLS, TLS or plain; optional auth; pooled connections) or
//! `.eml` files in a folder. Both take the Message-ID from the outbox, so a retried mail
//! keeps its id.

use crate::config::{MailSettings, MailTransport, SmtpSecurity};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{FileTransport, Message, SmtpTransport, Transport};
use secrecy::ExposeSecret;

pub enum Mailer {
    Smtp {
        transport: SmtpTransport,
        from: Mailbox,
    },
    File {
        transport: FileTransport,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mailer::Smtp { .. } => "Mailer::Smtp",
            Mailer::File { .. } => "Mailer::File",
        })
    }
}

/// Why a mail was not sent, and whether trying again may help.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

impl Mailer {
    pub fn from_settings(m: &MailSettings) -> Result<Mailer, String> {
        let from: Mailbox = m
            .from
            .parse()
            .map_err(|e| format!("mail.from `{}`: {e}", m.from))?;
        match m.transport {
            MailTransport::File => {
                std::fs::create_dir_all(&m.dir).map_err(|e| format!("mail.dir {}: {e}", m.dir))?;
                Ok(Mailer::File {
                    transport: FileTransport::new(&m.dir),
                    from,
                })
            }
            MailTransport::Smtp => {
                if m.smtp_host.is_empty() {
                    return Err("mail.smtp_host is required with transport = \"smtp\"".into());
                }
                let tls = || {
                    TlsParameters::new(m.smtp_host.clone()).map_err(|e| format!("mail TLS: {e}"))
                };
                let mut builder = SmtpTransport::builder_dangerous(&m.smtp_host).port(m.smtp_port);
                builder = match m.smtp_security {
                    SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
                    SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
                    SmtpSecurity::Plain => builder.tls(Tls::None),
                };
                if !m.smtp_username.is_empty() {
                    builder = builder.credentials(Credentials::new(
                        m.smtp_username.clone(),
                        m.smtp_password.expose_secret().to_owned(),
                    ));
                }
                let transport = builder
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build();
                Ok(Mailer::Smtp { transport, from })
            }
        }
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::File { from, .. } => from,
        }
    }

    /// Sends one plain-text UTF-8 mail.
    pub fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        message_id: &str,
    ) -> Result<(), SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError {
            message: format!("recipient `{to}`: {e}"),
            permanent: true,
        })?;
        let message = Message::builder()
            .from(self.from().clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id.to_owned()))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| SendError {
                message: format!("building the mail: {e}"),
                permanent: true,
            })?;
        match self {
            Mailer::Smtp { transport, .. } => {
                transport.send(&message).map(|_| ()).map_err(|e| SendError {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                })
            }
            Mailer::File { transport, .. } => {
                transport.send(&message).map(|_| ()).map_err(|e| SendError {
                    message: e.to_string(),
                    permanent: false,
                })
            }
        }
    }
}
