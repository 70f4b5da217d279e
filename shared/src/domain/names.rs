//! Names people give things, parsed once at the edge (zero2prod's `SubscriberName::parse` pattern).

pub const MAX_NAME_CHARS: usize = 64;

/// A display name: a workspace's or a key's. 1 to 64 characters, no control characters.
pub fn display_name(field: &str, value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "{field} is longer than {MAX_NAME_CHARS} characters"
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(format!("{field} contains control characters"));
    }
    Ok(trimmed.to_owned())
}

/// A key's source label (`production`, `staging`, `batch-jobs`): 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn source_label(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > MAX_NAME_CHARS {
        return Err(format!("source must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("source may contain only letters, digits, `.`, `_` and `-`".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(display_name("name", "  Acme  ").unwrap(), "Acme");
        assert!(display_name("name", " ").is_err());
        assert!(display_name("name", &"x".repeat(65)).is_err());
        assert!(source_label("batch-jobs").is_ok());
        assert!(source_label("prod env").is_err());
        assert!(source_label("").is_err());
    }
}
