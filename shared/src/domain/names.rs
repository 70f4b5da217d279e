//! Names people give things, parsed once at the edge (zero2prod's `SubscriberName::parse` pattern).

pub const MAX_NAME_CHARS: usize = 64;

/// Why a name or a source label was refused; each names the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0} must not be empty")]
    Empty(String),
    #[error("{0} is longer than {MAX_NAME_CHARS} characters")]
    TooLong(String),
    #[error("{0} contains control characters")]
    ControlCharacters(String),
    #[error("source must be 1 to {MAX_NAME_CHARS} characters")]
    SourceLength,
    #[error("source may contain only letters, digits, `.`, `_` and `-`")]
    SourceCharacters,
}

/// A display name: a workspace's or a key's. 1 to 64 characters, no control characters.
pub fn display_name(field: &str, value: &str) -> Result<String, NameError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty(field.to_owned()));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong(field.to_owned()));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(NameError::ControlCharacters(field.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// A key's source label (`production`, `staging`, `batch-jobs`): 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn source_label(value: &str) -> Result<String, NameError> {
    if value.is_empty() || value.len() > MAX_NAME_CHARS {
        return Err(NameError::SourceLength);
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(NameError::SourceCharacters);
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(display_name("name", "  Acme  ").unwrap(), "Acme");
        assert_eq!(
            display_name("name", " ").unwrap_err().to_string(),
            "name must not be empty"
        );
        assert_eq!(
            display_name("name", &"x".repeat(65))
                .unwrap_err()
                .to_string(),
            "name is longer than 64 characters"
        );
        assert_eq!(
            display_name("name", "a\u{7}b").unwrap_err().to_string(),
            "name contains control characters"
        );
        assert!(source_label("batch-jobs").is_ok());
        assert_eq!(
            source_label("prod env").unwrap_err().to_string(),
            "source may contain only letters, digits, `.`, `_` and `-`"
        );
        assert_eq!(
            source_label("").unwrap_err().to_string(),
            "source must be 1 to 64 characters"
        );
    }
}
