//! Value types shared by the settings (secrets, addresses, URLs) and the parsers that turn
//! one string into one of them.
//!
//! Parsers describe what is wrong without quoting the input: the caller decides whether
//! the value may be shown, because only it knows whether the key is secret.

use std::fmt;
use std::str::FromStr;

/// Why one value was rejected. The reason never quotes the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    reason: String,
}

impl InvalidValue {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        InvalidValue {
            reason: reason.into(),
        }
    }
}

/// A string that must not be shown: `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to the client that needs it. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What every redacted value prints as.
pub(crate) const REDACTED: &str = "[redacted]";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A `host:port` network address. IPv6 hosts are written in brackets (`[::1]:7233`) and
/// stored without them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// Port, 1 to 65535.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidValue::new("is empty"));
        }
        if s.contains("://") {
            return Err(InvalidValue::new(
                "must be host:port without a scheme, such as localhost:7233",
            ));
        }
        if s.contains(['/', '@']) {
            return Err(InvalidValue::new(
                "must be host:port, such as localhost:7233",
            ));
        }
        let authority = split_authority(s)?;
        let port = match authority.port {
            None | Some("") => {
                return Err(InvalidValue::new(
                    "is missing a port; expected host:port, such as localhost:7233",
                ));
            }
            Some(port) => {
                parse_port(port).map_err(|reason| InvalidValue::new(format!("port {reason}")))?
            }
        };
        Ok(HostPort {
            host: authority.host.to_owned(),
            port,
        })
    }
}

/// A `postgres://` or `postgresql://` URL. The full URL (with its password) is kept
/// privately; `Debug` and `Display` show it with the password replaced by `[redacted]`.
///
/// Split by hand rather than by the `url` crate, which rejects libpq's comma-separated
/// failover hosts (see [`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    redacted: String,
}

impl DatabaseUrl {
    /// The URL with its password, for connecting. Never log the result.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl FromStr for DatabaseUrl {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidValue::new("is empty"));
        }
        let Some(rest) = strip_prefix_ignore_case(s, "postgres://")
            .or_else(|| strip_prefix_ignore_case(s, "postgresql://"))
        else {
            return Err(InvalidValue::new(
                "must be a postgres:// or postgresql:// URL",
            ));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // An unencoded `@`, `/`, `?` or `#` in the password splits the URL in the wrong
        // place; what is left after the host would then hold part of the password, so such
        // a URL is rejected rather than shown half-redacted.
        if tail.contains('@') {
            return Err(InvalidValue::new(
                "has `@` after the host; percent-encode special characters in the password (`@` as %40, `/` as %2F)",
            ));
        }
        let hosts = authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts);
        if hosts.is_empty() {
            return Err(InvalidValue::new("has no host"));
        }
        // libpq and tokio-postgres accept a comma-separated list of hosts for failover.
        for host in hosts.split(',') {
            let authority = split_authority(host)?;
            if let Some(port) = authority.port.filter(|p| !p.is_empty()) {
                parse_port(port).map_err(|reason| InvalidValue::new(format!("port {reason}")))?;
            }
        }

        let redacted = redact_url(s);
        Ok(DatabaseUrl {
            url: s.to_owned(),
            redacted,
        })
    }
}

/// `url` as it may be logged: the password of its user-info part (`user:[redacted]@`) and
/// any `password=` query parameter replaced. Every URL that reaches a log line or an error
/// message goes through here.
///
/// Written by hand because the `url` crate does not do this job: it cannot parse libpq's
/// multi-host form (`postgres://u:p@h1:5432,h2:5433/db`: it reads `5432,h2:5433` as the port
/// and fails), which database URLs may use, and `set_password` would percent-encode the
/// marker (`%5Bredacted%5D`).
/// A password with an unencoded `@`, `/`, `?` or `#` splits a URL in the wrong place, so the
/// user-info part is taken to end at the last `@`: at worst, more than the password is
/// hidden.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let (userinfo, after) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    let tail_start = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(tail_start);
    out.push_str(hosts);
    out.push_str(&redact_password_param(tail));
    out
}

/// Replaces the value of a `password=` query parameter, which libpq accepts as well as
/// the password in the user-info part.
fn redact_password_param(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                format!("{name}={REDACTED}")
            }
            _ => param.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// An `http://` or `https://` URL with a host; returned unchanged.
pub(crate) fn parse_http_url(s: &str) -> Result<String, InvalidValue> {
    if s.is_empty() {
        return Err(InvalidValue::new("is empty"));
    }
    const NOT_HTTP: &str = "must be an http:// or https:// URL";
    // `url` would strip or encode whitespace rather than reject it.
    if s.chars().any(char::is_whitespace) {
        return if has_http_scheme(s) {
            Err(InvalidValue::new("contains whitespace"))
        } else {
            Err(InvalidValue::new(NOT_HTTP))
        };
    }
    let url = match url::Url::parse(s) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(InvalidValue::new(NOT_HTTP)),
        Err(_) if !has_http_scheme(s) => return Err(InvalidValue::new(NOT_HTTP)),
        Err(url::ParseError::EmptyHost) => return Err(InvalidValue::new("has no host")),
        Err(url::ParseError::InvalidPort) => {
            // `url` does not say whether the port is not a number or too large; the text
            // after the authority's last `:` does.
            let authority = s
                .split_once("://")
                .map_or(s, |(_, rest)| rest)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default();
            let port = authority.rsplit_once(':').map_or("", |(_, port)| port);
            let reason = parse_port(port).err().unwrap_or(PortError::OutOfRange);
            return Err(InvalidValue::new(format!("port {reason}")));
        }
        // `url`'s messages are fixed texts ("invalid IPv6 address"), never the input.
        Err(error) => return Err(InvalidValue::new(format!("is not a valid URL: {error}"))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidValue::new(NOT_HTTP));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidValue::new("has no host"));
    }
    // `url` accepts port 0, which nothing can listen on.
    if url.port() == Some(0) {
        return Err(InvalidValue::new("port is out of range 1..=65535"));
    }
    Ok(s.to_owned())
}

fn has_http_scheme(s: &str) -> bool {
    strip_prefix_ignore_case(s, "https://")
        .or_else(|| strip_prefix_ignore_case(s, "http://"))
        .is_some()
}

/// The host and the raw port text of `host[:port]` or `[v6][:port]`.
struct Authority<'s> {
    host: &'s str,
    port: Option<&'s str>,
}

fn split_authority(s: &str) -> Result<Authority<'_>, InvalidValue> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(InvalidValue::new("has `[` without a closing `]`"));
        };
        if after.is_empty() {
            (host, None)
        } else if let Some(port) = after.strip_prefix(':') {
            (host, Some(port))
        } else {
            return Err(InvalidValue::new("has text after `]` that is not `:port`"));
        }
    } else {
        match s.split_once(':') {
            None => (s, None),
            Some((_, port)) if port.contains(':') => {
                return Err(InvalidValue::new(
                    "has an IPv6 address without brackets; write it as [::1]:7233",
                ));
            }
            Some((host, port)) => (host, Some(port)),
        }
    };
    if host.is_empty() {
        return Err(InvalidValue::new("has no host"));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::new("has whitespace in the host"));
    }
    Ok(Authority { host, port })
}

/// Why a port was rejected, phrased to follow "port" or a key name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PortError {
    #[error("is not a number")]
    NotANumber,
    #[error("is out of range 1..=65535")]
    OutOfRange,
}

impl From<PortError> for InvalidValue {
    fn from(error: PortError) -> Self {
        InvalidValue::new(error.to_string())
    }
}

/// A TCP port, 1 to 65535.
pub(crate) fn parse_port(s: &str) -> Result<u16, PortError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber);
    }
    // All digits, so the only way `parse` fails is overflow: out of range as well.
    match s.parse::<u32>() {
        Ok(port @ 1..=65535) => u16::try_from(port).map_err(|_| PortError::OutOfRange),
        _ => Err(PortError::OutOfRange),
    }
}

/// The boolean spellings people use in environment files.
pub(crate) fn parse_bool(s: &str) -> Result<bool, InvalidValue> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(InvalidValue::new(
            "is not a boolean; use true/false, 1/0, yes/no or on/off",
        )),
    }
}

/// Longest namespace or task queue name Temporal accepts.
const MAX_NAME_CHARS: usize = 1000;

/// A Temporal namespace or task queue name.
pub(crate) fn parse_name(s: &str) -> Result<String, InvalidValue> {
    if s.is_empty() {
        return Err(InvalidValue::new("is empty"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(InvalidValue::new("contains whitespace"));
    }
    let chars = s.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(InvalidValue::new(format!(
            "is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
        )));
    }
    Ok(s.to_owned())
}

/// Any value that must not be empty.
pub(crate) fn parse_non_empty(s: &str) -> Result<String, InvalidValue> {
    if s.is_empty() {
        Err(InvalidValue::new("is empty"))
    } else {
        Ok(s.to_owned())
    }
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A whole number from `min` to `max`.
pub(crate) fn whole_number(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, InvalidValue> {
    move |s| match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(InvalidValue::new(format!(
            "must be a whole number from {min} to {max}"
        ))),
    }
}

/// A count parsed as u64, as a usize (saturating: the parsers bound counts far below it).
pub(crate) fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_passwords_wherever_they_sit() {
        for (url, shown) in [
            ("https://x.supabase.co/a", "https://x.supabase.co/a"),
            ("https://u:pw@h:1/p?q=1", "https://u:[redacted]@h:1/p?q=1"),
            ("https://token@h/p", "https://token@h/p"),
            // Unencoded `@` and `/` in the password: everything up to the last `@` goes.
            ("https://u:p@ss/w@h/p", "https://u:[redacted]@h/p"),
            (
                "postgres://u@h/db?password=pw&x=1",
                "postgres://u@h/db?password=[redacted]&x=1",
            ),
            ("u:pw@h:7233", "u:[redacted]@h:7233"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
