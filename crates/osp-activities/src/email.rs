//! Invitation emails: the mailer trait, an SMTP implementation (lettre), and the log-only
//! mailer local runs use by default.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One invitation to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationEmail {
    pub to_email: String,
    pub to_name: Option<String>,
    pub organization_name: String,
    /// Where the organization lives, e.g. `acme.example.com`.
    pub dns_record: String,
    pub invitation_id: uuid::Uuid,
}

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EmailError {
    /// A 4xx answer or a network failure; a 5xx answer (refused) is permanent.
    pub retryable: bool,
    pub message: String,
}

/// Sends invitation emails.
pub trait Mailer: Send + Sync + fmt::Debug {
    fn send_invitation<'a>(
        &'a self,
        email: &'a InvitationEmail,
    ) -> BoxFuture<'a, Result<(), EmailError>>;
}

/// Logs the email instead of sending it; the default for local runs.
#[derive(Debug, Clone, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send_invitation<'a>(
        &'a self,
        email: &'a InvitationEmail,
    ) -> BoxFuture<'a, Result<(), EmailError>> {
        Box::pin(async move {
            tracing::info!(
                to = %email.to_email,
                organization = %email.organization_name,
                invitation_id = %email.invitation_id,
                "email (log only): invitation sent"
            );
            Ok(())
        })
    }
}

/// How to reach the SMTP server: the configuration's own type (`none` is only for a server
/// on the same host or network namespace).
pub use osp_config::SmtpSecurity;

/// Settings of [`SmtpMailer`].
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, e.g. `OSP <no-reply@example.com>`.
    pub from: String,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .finish()
    }
}

/// Sends over SMTP.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Why the SMTP settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSettingsError {
    /// The sender is not an email address.
    #[error("smtp sender `{from}` is not a mailbox: {reason}")]
    From { from: String, reason: String },
    /// TLS could not be set up for the host.
    #[error("smtp tls for {host}: {reason}")]
    Tls { host: String, reason: String },
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, SmtpSettingsError> {
        let from: Mailbox =
            settings
                .from
                .parse()
                .map_err(
                    |error: lettre::address::AddressError| SmtpSettingsError::From {
                        from: settings.from.clone(),
                        reason: error.to_string(),
                    },
                )?;
        let tls_error = |error: lettre::transport::smtp::Error| SmtpSettingsError::Tls {
            host: settings.host.clone(),
            reason: error.to_string(),
        };
        let builder = match settings.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(tls_error)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(tls_error)?
            }
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(30)));
        if let (Some(username), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

impl Mailer for SmtpMailer {
    fn send_invitation<'a>(
        &'a self,
        email: &'a InvitationEmail,
    ) -> BoxFuture<'a, Result<(), EmailError>> {
        Box::pin(async move {
            let address: Address =
                email
                    .to_email
                    .parse()
                    .map_err(|error: lettre::address::AddressError| EmailError {
                        retryable: false,
                        message: format!(
                            "invitation email: recipient `{}`: {error}",
                            email.to_email
                        ),
                    })?;
            // Built from parts rather than parsed from `Name <address>`: lettre quotes and
            // encodes the name itself, so a comma or a dot in a name cannot break the header.
            let to = Mailbox::new(email.to_name.clone(), address);
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(format!("You are invited to {}", email.organization_name))
                .body(format!(
                    "You have been invited to administer {} on OSP.\n\n\
                     Accept the invitation: https://{}/invitations/{}\n",
                    email.organization_name, email.dns_record, email.invitation_id
                ))
                .map_err(|error| EmailError {
                    retryable: false,
                    message: format!("invitation email: {error}"),
                })?;
            self.transport
                .send(message)
                .await
                .map(drop)
                .map_err(|error| EmailError {
                    retryable: !error.is_permanent(),
                    message: format!("invitation email to {}: {error}", email.to_email),
                })
        })
    }
}
