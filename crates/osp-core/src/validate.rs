//! Input validation shared by every program: each rule of CONTRACTS.md, with an error that
//! names the field, so bad input is refused before anything is written.

use std::fmt;

/// One field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the JSON payload, e.g. `admin_users[1].email`.
    pub field: String,
    /// What is wrong, lowercase, without the value when the value could be large.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A payload that breaks one or more rules; lists every broken rule at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {payload}: {}", join(.errors))]
pub struct InvalidInput {
    /// The payload type, e.g. `ServiceData`.
    pub payload: &'static str,
    /// Every broken rule, in field order.
    pub errors: Vec<FieldError>,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one value breaks a rule. The message follows the field's name (`name: must not be
/// empty`); a rule is a pure check, so no error has a cause beneath it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Too short or too long, counted in characters.
    #[error("must be {min} to {max} characters (got {count})")]
    Length {
        min: usize,
        max: usize,
        count: usize,
    },
    /// Empty or only white space.
    #[error("must not be empty")]
    Empty,
    /// White space where none is allowed.
    #[error("must not contain white space")]
    WhiteSpace,
    /// A character a DNS label cannot hold.
    #[error("must contain only lowercase letters, digits and '-' (found {0:?})")]
    DnsLabelCharacter(char),
    /// A DNS label starting or ending with `-`.
    #[error("must not start or end with '-'")]
    DnsLabelHyphen,
    /// A character that would end or escape a display name in a mail header.
    #[error("must not contain {0:?}: it would break the invitation email's header")]
    HeaderCharacter(char),
    /// Not an address a mail server would deliver to.
    #[error("must be an email address like name@example.com")]
    Email,
    /// Not a lowercase identifier: bad first character or too long.
    #[error(
        "must be a lowercase identifier: a letter or '_' first, then letters, digits or '_', at most 63 characters"
    )]
    Identifier,
    /// A character a lowercase identifier cannot hold.
    #[error("must contain only lowercase letters, digits and '_' (found {0:?})")]
    IdentifierCharacter(char),
}

/// Collects field errors for one payload.
#[derive(Debug)]
pub(crate) struct Checker {
    payload: &'static str,
    errors: Vec<FieldError>,
}

impl Checker {
    pub(crate) fn new(payload: &'static str) -> Self {
        Self {
            payload,
            errors: Vec::new(),
        }
    }

    pub(crate) fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records `check`'s error, if any, under `field`.
    pub(crate) fn check(&mut self, field: impl Into<String>, check: Result<(), RuleError>) {
        if let Err(error) = check {
            self.fail(field, error.to_string());
        }
    }

    pub(crate) fn finish(self) -> Result<(), InvalidInput> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidInput {
                payload: self.payload,
                errors: self.errors,
            })
        }
    }
}

/// A length rule in characters (not bytes), as a user counts them.
pub(crate) fn length_between(value: &str, min: usize, max: usize) -> Result<(), RuleError> {
    let count = value.chars().count();
    if count < min || count > max {
        Err(RuleError::Length { min, max, count })
    } else {
        Ok(())
    }
}

/// Text that must say something: not empty and not only white space.
pub(crate) fn text(value: &str, max: usize) -> Result<(), RuleError> {
    if value.trim().is_empty() {
        return Err(RuleError::Empty);
    }
    length_between(value, 1, max)
}

/// One DNS label: lowercase letters, digits and `-`, 1 to 63 characters, not starting or
/// ending with `-`.
pub fn dns_label(value: &str) -> Result<(), RuleError> {
    if value.is_empty() || value.len() > 63 {
        return Err(RuleError::Length {
            min: 1,
            max: 63,
            count: value.chars().count(),
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(RuleError::DnsLabelCharacter(bad));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(RuleError::DnsLabelHyphen);
    }
    Ok(())
}

/// A person's display name as it goes into a mail header (`Name <address>`): at most `max`
/// characters, none of the characters that end or escape the name there (`<`, `>`, `"`,
/// `\`) and no control characters (a line break would start a new header). Checked with the
/// payload, because the invitation email is sent last, after the organization, its DNS
/// record and the invitations exist.
pub(crate) fn display_name(value: &str, max: usize) -> Result<(), RuleError> {
    if let Some(bad) = value
        .chars()
        .find(|c| matches!(c, '<' | '>' | '"' | '\\') || c.is_control())
    {
        return Err(RuleError::HeaderCharacter(bad));
    }
    length_between(value, 0, max)
}

/// An email address as a mail server would accept it for delivery: one `@`, a local part,
/// a domain of DNS labels with at least one dot, no white space or control characters.
pub fn email(value: &str) -> Result<(), RuleError> {
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RuleError::Email);
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(RuleError::Email);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"']);
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(RuleError::Email)
    }
}

/// A service's schema name: a lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most 63
/// bytes). It reaches task queue names, file names and deployer arguments, so nothing else
/// is allowed through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceSchema(String);

impl ServiceSchema {
    /// Checks `value` against the identifier rule.
    pub fn parse(value: &str) -> Result<Self, RuleError> {
        let mut chars = value.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if !first_ok || value.len() > 63 {
            return Err(RuleError::Identifier);
        }
        if let Some(bad) =
            chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(RuleError::IdentifierCharacter(bad));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: fn(&str) -> Result<(), RuleError>, value: &str, expected: Result<(), &str>) {
        let got = rule(value).map_err(|error| error.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{value:?}");
    }

    #[test]
    fn dns_labels() {
        check(dns_label, "acme", Ok(()));
        check(dns_label, "a-1", Ok(()));
        check(dns_label, &"a".repeat(63), Ok(()));
        check(dns_label, "", Err("must be 1 to 63 characters (got 0)"));
        check(
            dns_label,
            &"a".repeat(64),
            Err("must be 1 to 63 characters (got 64)"),
        );
        check(
            dns_label,
            "Acme",
            Err("must contain only lowercase letters, digits and '-' (found 'A')"),
        );
        check(
            dns_label,
            "a.b",
            Err("must contain only lowercase letters, digits and '-' (found '.')"),
        );
        check(dns_label, "-acme", Err("must not start or end with '-'"));
        check(dns_label, "acme-", Err("must not start or end with '-'"));
    }

    #[test]
    fn emails() {
        for good in [
            "a@example.com",
            "first.last+tag@sub.example.org",
            "x@a-b.io",
        ] {
            assert_eq!(email(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa mple.com",
            "a@@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "<a>@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_schemas() {
        for good in ["healthcare_service_123", "_x", "a"] {
            assert!(ServiceSchema::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a;rm -rf /",
            "a b",
            "$(id)",
            &"a".repeat(64),
        ] {
            assert!(ServiceSchema::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let mut checker = Checker::new("Thing");
        checker.check("name", text("", 10));
        checker.check("subdomain", dns_label("-x"));
        let error = checker.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid Thing: name: must not be empty; subdomain: must not start or end with '-'"
        );
    }
}
