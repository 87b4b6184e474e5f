//! `${VAR}` expansion in names and paths, from a lookup the caller passes in.

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("uses ${{{0}}}, but the environment variable {0} is not set")]
    Unset(String),
    #[error("uses ${{{0}}}, but the environment variable {0} is empty")]
    Empty(String),
    #[error("has an unterminated ${{ (write ${{VAR}})")]
    Unterminated,
    #[error(
        "has ${{{0}}}, which is not a variable name (letters, digits, _; not starting with a digit)"
    )]
    BadName(String),
}

/// Replaces every `${VAR}` with `lookup(VAR)`. An unset or empty variable is an error
/// naming it, never an empty string. A `$` not followed by `{` is kept as it is.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(ExpandError::Unterminated)?;
        let var = &after[..end];
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ExpandError::BadName(var.to_owned()));
        }
        match lookup(var) {
            None => return Err(ExpandError::Unset(var.to_owned())),
            Some(v) if v.is_empty() => return Err(ExpandError::Empty(var.to_owned())),
            Some(v) => out.push_str(&v),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "STAGE" => Some("prod".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_from_the_lookup() {
        assert_eq!(
            expand("/app/${STAGE}/db-${STAGE}", &env).unwrap(),
            "/app/prod/db-prod"
        );
        assert_eq!(expand("/plain/name", &env).unwrap(), "/plain/name");
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let e = expand("/app/${NOPE}/x", &env).unwrap_err();
        assert_eq!(e, ExpandError::Unset("NOPE".into()));
        assert!(e.to_string().contains("NOPE is not set"), "{e}");
    }

    #[test]
    fn an_empty_variable_is_an_error_not_an_empty_string() {
        assert_eq!(
            expand("/app/${EMPTY}/x", &env).unwrap_err(),
            ExpandError::Empty("EMPTY".into())
        );
    }

    #[test]
    fn malformed_references_are_rejected() {
        assert_eq!(
            expand("/a/${STAGE", &env).unwrap_err(),
            ExpandError::Unterminated
        );
        assert_eq!(
            expand("/a/${1X}", &env).unwrap_err(),
            ExpandError::BadName("1X".into())
        );
        assert_eq!(
            expand("/a/${}", &env).unwrap_err(),
            ExpandError::BadName(String::new())
        );
    }

    proptest! {
        #[test]
        fn text_without_references_is_unchanged(s in "[^$]{0,60}") {
            prop_assert_eq!(expand(&s, &env).unwrap(), s);
        }

        #[test]
        fn expansion_never_panics(s in "\\PC{0,60}") {
            let _ = expand(&s, &env);
        }
    }
}
