//! Storage adapters. Each is a cargo feature so a binary links only what it uses.

#[cfg(any(feature = "dynamodb", feature = "s3", feature = "ses", feature = "kms"))]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "folder")]
pub mod folder;
#[cfg(feature = "keyfile")]
pub mod keyfile;
#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "outbox")]
pub mod outbox;
#[cfg(feature = "providers")]
pub mod providers;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "smtp")]
pub mod smtp;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "stripe")]
pub mod stripe;

/// Rules both archive adapters share, so a key that works locally works on S3 and the reverse.
#[cfg(any(feature = "folder", feature = "s3"))]
pub mod archive_keys {
    /// S3's own limit on key length, in bytes.
    const MAX_KEY_BYTES: usize = 1024;

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("invalid archive key {key:?}: {reason}")]
    pub struct InvalidKey {
        pub key: String,
        pub reason: &'static str,
    }

    /// A key is a relative `/`-separated path of non-empty segments. Segments may not start with
    /// `.`: that rules out `.` and `..` (escaping the folder) and keeps dot-names free for the
    /// folder adapter's temporary files and its link secret.
    pub fn validate_key(key: &str) -> Result<(), InvalidKey> {
        if key.is_empty() {
            return Err(invalid(key, "it is empty"));
        }
        check_common(key)?;
        for segment in key.split('/') {
            check_segment(key, segment)?;
        }
        Ok(())
    }

    /// A prefix is a key cut anywhere: the same rules, except that the last segment may be empty
    /// (`ws_a/`) or partial (`ws_a/exp`). The empty prefix means everything.
    pub fn validate_prefix(prefix: &str) -> Result<(), InvalidKey> {
        if prefix.is_empty() {
            return Ok(());
        }
        check_common(prefix)?;
        let mut segments = prefix.split('/').peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            if last && segment.is_empty() {
                break;
            }
            check_segment(prefix, segment)?;
        }
        Ok(())
    }

    fn check_common(key: &str) -> Result<(), InvalidKey> {
        if key.len() > MAX_KEY_BYTES {
            return Err(invalid(key, "it is longer than 1024 bytes"));
        }
        if key.starts_with('/') {
            return Err(invalid(key, "it is an absolute path"));
        }
        if key.contains('\\') {
            return Err(invalid(key, "it contains a backslash"));
        }
        // Control characters would also make the signed link message (`key\nexpires\nfilename`)
        // ambiguous.
        if key.chars().any(char::is_control) {
            return Err(invalid(key, "it contains a control character"));
        }
        Ok(())
    }

    fn check_segment(key: &str, segment: &str) -> Result<(), InvalidKey> {
        if segment.is_empty() {
            return Err(invalid(key, "it has an empty segment"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid(key, "it has a `.` or `..` segment"));
        }
        if segment.starts_with('.') {
            return Err(invalid(key, "a segment starts with `.`"));
        }
        Ok(())
    }

    fn invalid(key: &str, reason: &'static str) -> InvalidKey {
        InvalidKey {
            key: key.to_owned(),
            reason,
        }
    }

    /// `Content-Disposition` for a download: an ASCII fallback for old clients plus the exact
    /// UTF-8 name (RFC 6266 / RFC 8187), so no name can break out of the header's quoting.
    pub fn content_disposition(filename: &str) -> String {
        let fallback: String = filename
            .chars()
            .map(|c| {
                if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
            percent_encode(filename)
        )
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters: safe in a path segment,
    /// a query value and an RFC 8187 header value alike.
    pub fn percent_encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn keys() {
            for good in ["ws_a/report.html", "ws_a/exports/2025 01.csv", "a"] {
                assert_eq!(validate_key(good), Ok(()), "{good}");
            }
            for bad in [
                "",
                "/ws_a/x",
                "ws_a/../x",
                "..",
                "ws_a//x",
                "ws_a/",
                "ws_a\\x",
                ".link-secret",
                "ws_a/.tmp",
                "ws_a/x\ny",
            ] {
                assert!(validate_key(bad).is_err(), "{bad:?} was accepted");
            }
        }

        #[test]
        fn prefixes() {
            for good in ["", "ws_a/", "ws_a/exp", "ws_a"] {
                assert_eq!(validate_prefix(good), Ok(()), "{good}");
            }
            for bad in ["/", "ws_a//", "../", "ws_a/..", ".", "ws_a/.x", "a\\b"] {
                assert!(validate_prefix(bad).is_err(), "{bad:?} was accepted");
            }
        }

        #[test]
        fn disposition_quotes_nothing_it_should_not() {
            assert_eq!(
                content_disposition("a \"b\".csv"),
                "attachment; filename=\"a _b_.csv\"; filename*=UTF-8''a%20%22b%22.csv"
            );
            assert_eq!(
                content_disposition("é.csv"),
                "attachment; filename=\"_.csv\"; filename*=UTF-8''%C3%A9.csv"
            );
        }
    }
}
