//! template: a user's minijinja template rendered with the values.
//!
//! Every key is a top-level variable, and the `values` map holds all keys, for keys that
//! are not identifiers (`{{ values['db/password'] }}`); a key named `values` is only
//! reachable as `values['values']`. Undefined variables are errors, nothing is
//! auto-escaped, and a trailing newline at the end of the template is kept.
//!
//! Error reasons never carry a value: minijinja's detail is shown only for error kinds
//! whose detail comes from the template text (syntax, unknown names, arguments); for
//! the others only the kind is shown.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::{FormatError, SecretBuf, Template};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// The name of the map that holds every key.
const VALUES: &str = "values";

/// At most this many key names are listed in an undefined-variable message.
const LISTED_KEYS: usize = 20;

/// Renders `tmpl` with the keys as context.
pub(super) fn render(
    tmpl: &Template,
    keyed: &BTreeMap<String, &Entry>,
) -> Result<SecretBytes, FormatError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);

    let fail = |err: minijinja::Error, compiled: Option<&minijinja::Template<'_, '_>>| {
        template_error(tmpl, keyed, &env, compiled, &err)
    };
    let compiled = env
        .template_from_named_str(&tmpl.name, &tmpl.source)
        .map_err(|err| fail(err, None))?;

    // One minijinja string per value, shared by the variable and the `values` map.
    let mut context: BTreeMap<Value, Value> = BTreeMap::new();
    let mut all: BTreeMap<Value, Value> = BTreeMap::new();
    for (key, entry) in keyed {
        let key = Value::from(key.as_str());
        let value = Value::from(entry.value.expose());
        context.insert(key.clone(), value.clone());
        all.insert(key, value);
    }
    context.insert(Value::from(VALUES), Value::from(all));
    let context = Value::from(context);

    let size: usize = tmpl.source.len()
        + keyed
            .values()
            .map(|e| e.value.expose().len())
            .sum::<usize>();
    let mut out = SecretBuf::with_capacity(size + size / 4);
    compiled
        .render_captured_to(&context, &mut out)
        .map_err(|err| fail(err, Some(&compiled)))?;
    Ok(out.into_bytes())
}

/// Turns a minijinja error into [`FormatError::Template`] without any value in it.
fn template_error(
    tmpl: &Template,
    keyed: &BTreeMap<String, &Entry>,
    env: &Environment<'_>,
    compiled: Option<&minijinja::Template<'_, '_>>,
    err: &minijinja::Error,
) -> FormatError {
    let kind = err.kind();
    let reason = match kind {
        ErrorKind::UndefinedError => undefined_reason(tmpl, keyed, env, compiled, err.line()),
        // The detail of these kinds is built from the template text only. Not so for
        // TooManyArguments or UnknownMethod: a keyword spread from a map
        // (`m(**{DB_PASSWORD[1:]: 1})`) puts computed text, even part of a value, there.
        ErrorKind::SyntaxError
        | ErrorKind::BadEscape
        | ErrorKind::UnknownFilter
        | ErrorKind::UnknownTest
        | ErrorKind::UnknownFunction
        | ErrorKind::MissingArgument => match err.detail() {
            // Belt and braces: drop any detail that quotes a whole value anyway.
            Some(detail) if !quotes_a_value(detail, keyed) => format!("{kind}: {detail}"),
            _ => kind.to_string(),
        },
        // Conversions and operations can quote the data they failed on.
        _ => format!("{kind} (details withheld because they could contain a value)"),
    };
    FormatError::Template {
        template: tmpl.name.clone(),
        line: err.line(),
        reason,
    }
}

/// Whether `text` contains any value of three or more bytes.
fn quotes_a_value(text: &str, keyed: &BTreeMap<String, &Entry>) -> bool {
    keyed.values().any(|e| {
        let value = e.value.expose();
        value.len() >= 3 && text.contains(value)
    })
}

/// Explains an undefined value: names the undefined variables or `values[...]` keys on
/// the failing line when they can be found, and lists the keys that exist.
fn undefined_reason(
    tmpl: &Template,
    keyed: &BTreeMap<String, &Entry>,
    env: &Environment<'_>,
    compiled: Option<&minijinja::Template<'_, '_>>,
    line: Option<usize>,
) -> String {
    let line_text = line
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| tmpl.source.lines().nth(l))
        .unwrap_or("");
    let on_line: BTreeSet<&str> = identifiers(line_text).collect();

    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let undeclared: BTreeSet<String> = compiled
        .map(|c| c.undeclared_variables(false).into_iter().collect())
        .unwrap_or_default();
    let unknown: Vec<&String> = undeclared
        .iter()
        .filter(|name| {
            name.as_str() != VALUES
                && !keyed.contains_key(name.as_str())
                && !globals.contains(name.as_str())
        })
        .collect();
    let mut missing: Vec<String> = unknown
        .iter()
        .filter(|name| on_line.contains(name.as_str()))
        .map(|name| format!("variable {name}"))
        .collect();
    if missing.is_empty() && unknown.len() == 1 {
        // Only one candidate in the whole template: it is the culprit.
        missing = unknown
            .iter()
            .map(|name| format!("variable {name}"))
            .collect();
    }
    missing.extend(
        values_lookups(line_text)
            .filter(|key| !keyed.contains_key(key.as_str()))
            .map(|key| format!("values[{key:?}]")),
    );

    let mut reason = if missing.is_empty() {
        "undefined value: a variable, key, attribute or item that does not exist".to_owned()
    } else {
        format!("undefined value: {} is not defined", missing.join(", "))
    };
    reason.push_str("; defined keys: ");
    if keyed.is_empty() {
        reason.push_str("none");
    } else {
        let listed: Vec<&str> = keyed.keys().take(LISTED_KEYS).map(String::as_str).collect();
        reason.push_str(&listed.join(", "));
        if keyed.len() > LISTED_KEYS {
            reason.push_str(&format!(" and {} more", keyed.len() - LISTED_KEYS));
        }
    }
    reason.push_str(" (keys that are not identifiers are read as values['KEY'])");
    reason
}

/// The identifiers (`[A-Za-z_][A-Za-z0-9_]*`) in a line of template text.
fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

/// The keys looked up as `values['KEY']`, `values["KEY"]` or `values.KEY` in a line of
/// template text (string literals without escapes only).
fn values_lookups(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices(VALUES).filter_map(move |(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return None;
        }
        let rest = text[at + VALUES.len()..].trim_start();
        if let Some(attr) = rest.strip_prefix('.') {
            let attr = attr.trim_start();
            let end = attr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(attr.len());
            return (end > 0).then(|| attr[..end].to_owned());
        }
        let inner = rest.strip_prefix('[')?.trim_start();
        let quote = inner.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let literal = &inner[1..];
        let end = literal.find(quote)?;
        let key = &literal[..end];
        (!key.contains('\\')).then(|| key.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;

    fn tmpl(source: &str) -> Template {
        Template {
            name: "app.conf.j2".into(),
            source: source.into(),
        }
    }

    fn render_str(source: &str, values: &[Entry]) -> Result<String, FormatError> {
        let keyed = output_keys(values, KeyCase::UpperSnake)?;
        let bytes = render(&tmpl(source), &keyed)?;
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn reason(err: &FormatError) -> (&str, Option<usize>, &str) {
        match err {
            FormatError::Template {
                template,
                line,
                reason,
            } => (template, *line, reason),
            other => panic!("not a template error: {other:?}"),
        }
    }

    #[test]
    fn renders_keys_as_variables_and_through_the_values_map() {
        let values = vec![rel("db/password", "pw"), explicit("a/b", "ab")];
        let out = render_str(
            "pass={{ DB_PASSWORD }}\nab={{ values['a/b'] }}\nalso={{ values.DB_PASSWORD }}\n",
            &values,
        )
        .unwrap();
        assert_eq!(out, "pass=pw\nab=ab\nalso=pw\n");
    }

    #[test]
    fn nothing_is_auto_escaped_whatever_the_template_name() {
        let values = vec![rel("a", "<&>\"'")];
        for name in ["x.html", "x.xml", "x.json", "x"] {
            let keyed = output_keys(&values, KeyCase::UpperSnake).unwrap();
            let t = Template {
                name: name.into(),
                source: "{{ A }}".into(),
            };
            let out = render(&t, &keyed).unwrap();
            assert_eq!(out.as_slice(), b"<&>\"'", "{name}");
        }
    }

    #[test]
    fn keeps_the_final_newline_and_supports_loops_and_filters() {
        let values = vec![rel("b", "2"), rel("a", "1")];
        let out = render_str(
            "{% for k, v in values|items %}{{ k|lower }}={{ v }}\n{% endfor %}",
            &values,
        )
        .unwrap();
        assert_eq!(out, "a=1\nb=2\n");
        let out = render_str("{{ A | tojson }}\n", &values).unwrap();
        assert_eq!(out, "\"1\"\n");
    }

    #[test]
    fn an_undefined_variable_is_an_error_naming_it_and_its_line() {
        let values = vec![rel("db/password", "s3cret")];
        let err = render_str("line one\nx={{ DB_PASSWROD }}\n", &values).unwrap_err();
        let (name, line, why) = reason(&err);
        assert_eq!((name, line), ("app.conf.j2", Some(2)));
        assert!(why.contains("variable DB_PASSWROD is not defined"), "{why}");
        assert!(why.contains("defined keys: DB_PASSWORD"), "{why}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("template app.conf.j2 line 2: undefined value"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn an_undefined_variable_is_found_among_several_candidates_by_its_line() {
        let err = render_str(
            "{% if MAYBE is defined %}{{ MAYBE }}{% endif %}\n{{ OTHER }}",
            &[rel("a", "v")],
        )
        .unwrap_err();
        let (_, line, why) = reason(&err);
        assert_eq!(line, Some(2));
        assert!(
            why.contains("variable OTHER is not defined") && !why.contains("MAYBE"),
            "{why}"
        );
    }

    #[test]
    fn a_missing_key_in_the_values_map_is_named() {
        let err = render_str("{{ values['a/c'] }}", &[explicit("a/b", "s3cret")]).unwrap_err();
        let (_, _, why) = reason(&err);
        assert!(why.contains("values[\"a/c\"] is not defined"), "{why}");
        assert!(why.contains("defined keys: a/b"), "{why}");
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn a_syntax_error_names_the_template_and_line() {
        let err = render_str("ok\nok\n{{ A + }}\n", &[rel("a", "s3cret")]).unwrap_err();
        let (name, line, why) = reason(&err);
        assert_eq!((name, line), ("app.conf.j2", Some(3)));
        assert!(why.starts_with("syntax error"), "{why}");
        assert!(err.to_string().contains("app.conf.j2 line 3"));
    }

    #[test]
    fn an_unknown_filter_is_named() {
        let err = render_str("{{ A | nosuchfilter }}", &[rel("a", "s3cret")]).unwrap_err();
        let (_, _, why) = reason(&err);
        assert!(why.contains("nosuchfilter"), "{why}");
        assert!(!why.contains("s3cret"));
    }

    #[test]
    fn a_conversion_error_on_a_secret_value_does_not_show_the_value() {
        let values = vec![rel("db/password", "s3cret-not-a-number")];
        for source in [
            "{{ DB_PASSWORD | int + 1 }}",
            "{{ DB_PASSWORD - 1 }}",
            "{{ DB_PASSWORD[100] + 1 }}",
            "{{ range(DB_PASSWORD) }}",
            "{{ DB_PASSWORD | join(1, 2, 3) }}",
            "{{ DB_PASSWORD | fromjson }}",
            "{% include DB_PASSWORD %}",
            "{{ {DB_PASSWORD: 1}.x }}",
            "{{ DB_PASSWORD.nosuchmethod() }}",
            "{{ values | attr(DB_PASSWORD) }}",
            "{{ DB_PASSWORD | batch(DB_PASSWORD) }}",
            "{{ DB_PASSWORD | round(DB_PASSWORD) }}",
            "{{ 'x' | indent(**{DB_PASSWORD: 1}) }}",
            "{% macro m() %}{% endmacro %}{{ m(**{DB_PASSWORD: 1}) }}",
        ] {
            let Err(err) = render_str(source, &values) else {
                panic!("{source} rendered");
            };
            let msg = err.to_string();
            assert!(!msg.contains("s3cret"), "{source}: {msg}");
            assert!(!format!("{err:?}").contains("s3cret"), "{source}");
        }
        let err = render_str("{{ DB_PASSWORD - 1 }}", &values).unwrap_err();
        let (_, line, why) = reason(&err);
        assert_eq!(line, Some(1));
        assert!(why.starts_with("invalid operation"), "{why}");
    }

    #[test]
    fn values_lookups_are_found_in_template_text() {
        let found: Vec<String> = values_lookups(
            "{{ values['a/b'] }} {{ values [ \"c\" ] }} {{ values.d }} {{ myvalues.e }}",
        )
        .collect();
        assert_eq!(found, ["a/b", "c", "d"]);
    }
}
