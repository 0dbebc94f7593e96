//! Validation of POSIX shared-memory names.

use crate::error::{Error, Result};

/// The longest name accepted, leading `/` excluded (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Checks that `name` is a portable POSIX shared-memory name: a `/`
/// followed by 1 to [`MAX_NAME_LEN`] bytes, none of them `/` or NUL, and not
/// `.` or `..`.
pub(crate) fn validate(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("must have at least one character after '/'");
    }
    if rest.len() > MAX_NAME_LEN {
        return bad("longer than 255 bytes after '/'");
    }
    if rest.contains('/') {
        return bad("must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return bad("must not contain NUL");
    }
    if rest == "." || rest == ".." {
        return bad("must not be '.' or '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["/a", "/shmkit-1", "/with space", "/ünïcode", "/..."] {
            validate(n).unwrap();
        }
        validate(&format!("/{}", "x".repeat(MAX_NAME_LEN))).unwrap();
    }

    #[test]
    fn rejects_bad_names() {
        let long = format!("/{}", "x".repeat(MAX_NAME_LEN + 1));
        for n in ["", "a", "/", "/a/b", "//", "/a\0b", "/.", "/..", &long] {
            assert!(
                matches!(validate(n), Err(Error::InvalidName { .. })),
                "{n:?} accepted"
            );
        }
    }
}
