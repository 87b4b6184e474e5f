//! Reload actions as the user gives them (`--reload-*` flags, the `reload-signal`
//! annotation): what they are and how their text is parsed. Pure: running them is
//! [`crate::watch::reload`].

use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::str::FromStr;

/// The signals a reload may send: those programs use to reload, rotate or stop cleanly.
/// KILL, STOP and the others (SEGV, ABRT, ...) are refused: they do not reload anything.
pub const RELOAD_SIGNALS: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
];

/// [`RELOAD_SIGNALS`] as listed in messages.
const ALLOWED_SIGNALS: &str = "HUP, USR1, USR2, TERM, INT, QUIT or WINCH (or its number, like 1)";

/// A reload action whose text cannot be used; the message says what to give.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0:?} is not a signal: use {ALLOWED_SIGNALS}")]
    BadSignal(String),
    #[error("{0} is not a reload signal: use {ALLOWED_SIGNALS}")]
    NotAReloadSignal(&'static str),
    #[error("the command is empty: give a program and its arguments, e.g. \"nginx -s reload\"")]
    EmptyCommand,
    #[error("the command cannot be split into words ({source}); it is run without a shell")]
    CommandSyntax {
        #[source]
        source: shell_words::ParseError,
    },
    #[error(
        "{reason}: give a plain http:// URL of a local endpoint, e.g. http://127.0.0.1:8080/-/reload"
    )]
    BadUrl { reason: &'static str },
}

/// One reload action, parsed from flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Signal {
        signal: Signal,
        target: SignalTarget,
    },
    /// argv, run without a shell (the image has none).
    Command(Vec<String>),
    /// POST with an empty body, http:// only (a local reload endpoint).
    Http(hyper::Uri),
}

/// Which process a signal goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalTarget {
    /// A file holding the process id (nginx, haproxy, ... write one).
    PidFile(PathBuf),
    /// Every process with this name (`comm`, or the base name of `argv[0]`); needs a shared
    /// process namespace in a pod.
    ProcessName(String),
}

impl Action {
    /// The metric and log label of this kind of action.
    pub fn label(&self) -> &'static str {
        match self {
            Action::Signal { .. } => "signal",
            Action::Command(_) => "command",
            Action::Http(_) => "http",
        }
    }
}

/// Parses `HUP`, `SIGHUP`, `hup`, `1`, ... into one of [`RELOAD_SIGNALS`].
pub fn parse_signal(s: &str) -> Result<Signal, ActionError> {
    let signal = parse_any_signal(s)?;
    if RELOAD_SIGNALS.contains(&signal) {
        Ok(signal)
    } else {
        Err(ActionError::NotAReloadSignal(signal.as_str()))
    }
}

fn parse_any_signal(s: &str) -> Result<Signal, ActionError> {
    let bad = || ActionError::BadSignal(s.to_owned());
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i32 = t.parse().map_err(|_| bad())?;
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if name.is_empty() {
        return Err(bad());
    }
    Signal::from_str(&format!("SIG{name}")).map_err(|_| bad())
}

/// Splits a command line into argv with shell quoting rules; there is no shell at run time.
pub fn parse_command(s: &str) -> Result<Vec<String>, ActionError> {
    let argv = shell_words::split(s).map_err(|source| ActionError::CommandSyntax { source })?;
    if argv.is_empty() || argv[0].is_empty() {
        return Err(ActionError::EmptyCommand);
    }
    Ok(argv)
}

/// Accepts `http://host[:port][/path][?query]` only.
pub fn parse_url(s: &str) -> Result<hyper::Uri, ActionError> {
    let bad = |reason| ActionError::BadUrl { reason };
    let uri: hyper::Uri = s.trim().parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https is not supported")),
        Some(_) => return Err(bad("the scheme is not http")),
        None => return Err(bad("the URL has no http:// scheme")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("the URL has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    if authority.host().is_empty() {
        return Err(bad("the URL has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_signal_names_and_numbers() {
        let table: &[(&str, Signal)] = &[
            ("HUP", Signal::SIGHUP),
            ("SIGHUP", Signal::SIGHUP),
            ("hup", Signal::SIGHUP),
            ("sigHup", Signal::SIGHUP),
            (" USR1 ", Signal::SIGUSR1),
            ("usr2", Signal::SIGUSR2),
            ("TERM", Signal::SIGTERM),
            ("1", Signal::SIGHUP),
            ("15", Signal::SIGTERM),
            ("WINCH", Signal::SIGWINCH),
        ];
        for (input, want) in table {
            assert_eq!(parse_signal(input).unwrap(), *want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_unknown_signals_and_lists_common_ones() {
        for input in [
            "",
            " ",
            "SIG",
            "HUPP",
            "0",
            "-1",
            "65",
            "99999999999",
            "SIG 1",
            "1.0",
        ] {
            let err = parse_signal(input).unwrap_err();
            assert!(
                matches!(err, ActionError::BadSignal(_)),
                "{input:?}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("HUP") && msg.contains("USR1"), "{msg}");
        }
    }

    #[test]
    fn signals_that_do_not_reload_are_refused_listing_the_allowed_ones() {
        for input in [
            "KILL", "SIGSTOP", "9", "19", "SEGV", "ABRT", "CHLD", "PIPE", "ALRM",
        ] {
            let err = parse_signal(input).unwrap_err();
            assert!(
                matches!(err, ActionError::NotAReloadSignal(_)),
                "{input:?}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("is not a reload signal")
                    && msg.contains("HUP, USR1, USR2, TERM, INT, QUIT or WINCH"),
                "{msg}"
            );
        }
        for s in RELOAD_SIGNALS {
            assert_eq!(parse_signal(s.as_str()).unwrap(), s);
            assert_eq!(parse_signal(&(s as i32).to_string()).unwrap(), s);
        }
    }

    #[test]
    fn splits_commands_like_a_shell_without_running_one() {
        let table: &[(&str, &[&str])] = &[
            ("nginx -s reload", &["nginx", "-s", "reload"]),
            (
                "/bin/sh -c 'kill -HUP 1'",
                &["/bin/sh", "-c", "kill -HUP 1"],
            ),
            (r#"echo "a b" c\ d"#, &["echo", "a b", "c d"]),
            ("  touch   /tmp/x  ", &["touch", "/tmp/x"]),
        ];
        for (input, want) in table {
            assert_eq!(parse_command(input).unwrap(), *want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_empty_and_unbalanced_commands() {
        for input in ["", "   ", "''"] {
            assert!(
                matches!(parse_command(input), Err(ActionError::EmptyCommand)),
                "{input:?}"
            );
        }
        for input in ["echo 'abc", "echo \"abc"] {
            assert!(
                matches!(parse_command(input), Err(ActionError::CommandSyntax { .. })),
                "{input:?}"
            );
        }
    }

    #[test]
    fn accepts_plain_http_urls() {
        for input in [
            "http://127.0.0.1:8080/-/reload",
            "http://localhost/reload",
            "http://[::1]:9000/",
            "http://app:80/admin/reload?force=1",
        ] {
            let uri = parse_url(input).unwrap();
            assert_eq!(uri.scheme_str(), Some("http"), "{input}");
        }
    }

    #[test]
    fn rejects_https_and_other_urls_and_says_what_to_give() {
        let table = [
            ("https://127.0.0.1/reload", "https is not supported"),
            ("ftp://host/x", "scheme is not http"),
            ("127.0.0.1:8080/reload", "not a URL"),
            ("/reload", "no http:// scheme"),
            ("", "not a URL"),
            ("http://user:secret@host/reload", "credentials"),
            ("http:// bad/", "not a URL"),
        ];
        for (input, want) in table {
            let err = parse_url(input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{input:?}: {msg}");
            assert!(msg.contains("http://127.0.0.1:8080/-/reload"), "{msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
    }

    #[test]
    fn labels_name_the_kind_of_action() {
        let sig = Action::Signal {
            signal: Signal::SIGHUP,
            target: SignalTarget::ProcessName("x".into()),
        };
        assert_eq!(sig.label(), "signal");
        assert_eq!(Action::Command(vec!["true".into()]).label(), "command");
        assert_eq!(
            Action::Http(parse_url("http://h/").unwrap()).label(),
            "http"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = parse_signal(&s);
            let _ = parse_command(&s);
            let _ = parse_url(&s);
        }

        #[test]
        fn parsers_never_panic_on_url_like_input(s in "[a-zA-Z:/@\\[\\]%?#0-9. -]{0,40}") {
            let _ = parse_url(&s);
            let _ = parse_url(&format!("http://{s}"));
        }
    }
}
