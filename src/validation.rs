//! Field-level validation shared by every layer: the `errors` entries of a
//! 400 answer, and the rules for the core identifiers (slugs, e-mails,
//! passwords, role names).

use serde::Serialize;

/// One invalid field in a request: becomes an entry of the problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name (a JSON path for nested fields, e.g. `admin.email`).
    pub field: String,
    /// A short machine-readable code such as `required`, `min`, `unknown`.
    pub code: String,
    /// A human sentence.
    pub message: String,
}

impl FieldError {
    /// Build a field error.
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The same error for a field nested under `prefix`.
    #[must_use]
    pub fn under(mut self, prefix: &str) -> FieldError {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Passwords are 10 to 1,024 characters.
pub fn check_password(password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if n < 10 {
        return Err(FieldError::new(
            "password",
            "min_length",
            format!("must be at least 10 characters (got {n})"),
        ));
    }
    if n > 1024 {
        return Err(FieldError::new(
            "password",
            "max_length",
            format!("must be at most 1024 characters (got {n})"),
        ));
    }
    Ok(())
}

/// Tenant slugs: `[a-z0-9][a-z0-9-]{1,39}`.
pub fn check_slug(slug: &str) -> Result<(), FieldError> {
    let bytes = slug.as_bytes();
    let ok = (2..=40).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "slug",
            "pattern",
            format!("\"{slug}\" is not a valid slug (expected [a-z0-9][a-z0-9-]{{1,39}})"),
        ))
    }
}

/// A plausible e-mail address: one `@` with text on both sides, no spaces,
/// at most 254 characters. Delivery is not our business; identity is.
pub fn check_email(email: &str) -> Result<(), FieldError> {
    let fail = |why: &str| Err(FieldError::new("email", "format", why.to_owned()));
    if email.is_empty() {
        return fail("must not be empty");
    }
    if email.len() > 254 {
        return fail("must be at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain spaces");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => fail("must look like name@domain"),
    }
}

/// Normalise an e-mail for storage and lookup (case-insensitive identity).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Display names: at most 200 characters, no control characters.
pub fn check_name(field: &str, name: &str, required: bool) -> Result<(), FieldError> {
    if required && name.trim().is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(FieldError::new(
            field,
            "max_length",
            "must be at most 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "format",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Role names: `[A-Z][A-Z0-9_]{1,63}` (they are referenced from manifests).
pub fn check_role_name(name: &str) -> Result<(), FieldError> {
    let b = name.as_bytes();
    let ok = (2..=64).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            "pattern",
            format!("\"{name}\" is not a valid role name (expected [A-Z][A-Z0-9_]{{1,63}})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_length_bounds() {
        assert!(check_password("123456789").is_err());
        assert!(check_password("1234567890").is_ok());
        assert!(check_password(&"x".repeat(1024)).is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
        // characters, not bytes
        assert!(check_password(&"é".repeat(10)).is_ok());
    }

    #[test]
    fn slugs() {
        for ok in ["default", "acme-corp", "a1", "9lives"] {
            assert!(check_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-abc",
            "Acme",
            "acme_corp",
            "acme corp",
            &"a".repeat(41),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in ["admin@localhost", "a.b+c@example.com"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "plain", "@x", "x@", "a b@c", "a@b@c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names() {
        assert!(check_role_name("WAREHOUSE_CLERK").is_ok());
        for bad in ["", "A", "clerk", "1ROLE", "ROLE-X"] {
            assert!(check_role_name(bad).is_err(), "{bad}");
        }
    }
}
