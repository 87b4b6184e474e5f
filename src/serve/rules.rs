//! Which reads the local endpoint answers, and from where. Pure.
//!
//! - **Watched**: a name the spec names (`--param`), or under one of its paths (`--path`),
//!   asked for its current value: answered from the values the sidecar holds, never older
//!   than its last successful poll, with no AWS call.
//! - **On demand**: a version or label of such a name, another name under the spec's paths
//!   (read with a selector), or any name under an `--serve-allow` prefix: fetched once,
//!   then cached for the extension's TTL.
//! - **Refused** (403, naming the rule): everything else. The endpoint is not a way to read
//!   whatever the pod's role may read.
//!
//! Secrets (`/secretsmanager/get?secretId=ID`) are matched as the spec names them:
//! `/aws/reference/secretsmanager/ID`.

use super::request::{ParameterRead, Refusal, SecretRead};
use crate::spec::names::is_under;
use crate::spec::{ParamRequest, PathRequest};

/// Where a read is answered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// From the held values, under this key (a request as the spec sends it, or a name
    /// found under a path).
    Watched(String),
    /// Fetched (or from the TTL cache).
    OnDemand,
}

/// The spec's names and paths, and the `--serve-allow` prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The spec's requests (name or ARN, with its selector; no `#field`).
    requests: Vec<String>,
    /// The names of the spec's requests, without selector or ARN.
    names: Vec<String>,
    paths: Vec<(String, bool)>,
    allow: Vec<String>,
}

impl Rules {
    pub fn new(params: &[ParamRequest], paths: &[PathRequest], allow: &[String]) -> Rules {
        Rules {
            requests: params.iter().map(|p| p.param.request()).collect(),
            names: params.iter().map(|p| p.param.name.clone()).collect(),
            paths: paths
                .iter()
                .map(|p| (p.path.clone(), p.recursive))
                .collect(),
            allow: allow.to_vec(),
        }
    }

    /// Under one of the spec's paths (directly, unless the path is recursive).
    fn in_paths(&self, name: &str) -> bool {
        self.paths.iter().any(|(path, recursive)| {
            is_under(name, path)
                && name.len() > path.len()
                && (*recursive || !name[path.len()..].contains('/'))
        })
    }

    /// Under an `--serve-allow` prefix, component by component as the spec's paths and the
    /// namespace policy compare (`/team-a` does not allow `/team-ab/x`).
    fn allowed(&self, name: &str) -> bool {
        self.allow.iter().any(|prefix| is_under(name, prefix))
    }

    /// Where `read` is answered from, or the 403 that names the rule.
    pub fn parameter(&self, read: &ParameterRead) -> Result<Answer, Refusal> {
        let request = read.param.request();
        let name = &read.param.name;
        if self.requests.contains(&request) {
            return Ok(Answer::Watched(request));
        }
        let current = read.param.selector.is_none() && read.param.arn.is_none();
        if current && self.in_paths(name) {
            return Ok(Answer::Watched(name.clone()));
        }
        if self.names.contains(name) || self.in_paths(name) || self.allowed(name) {
            return Ok(Answer::OnDemand);
        }
        Err(self.refusal(&request))
    }

    /// Where `read` is answered from, or the 403 that names the rule.
    pub fn secret(&self, read: &SecretRead) -> Result<Answer, Refusal> {
        let Some(reference) = read.reference() else {
            // An ARN: only under an allowed prefix that names ARNs.
            return if self.allowed(&read.id) {
                Ok(Answer::OnDemand)
            } else {
                Err(self.refusal(&read.id))
            };
        };
        if read.is_current() && self.requests.contains(&reference) {
            return Ok(Answer::Watched(reference));
        }
        if self.names.contains(&reference) || self.allowed(&reference) || self.allowed(&read.id) {
            return Ok(Answer::OnDemand);
        }
        Err(self.refusal(&reference))
    }

    fn refusal(&self, what: &str) -> Refusal {
        Refusal {
            status: 403,
            message: format!(
                "{what} is not in this sidecar's spec (--param, --path) and not under a --serve-allow prefix ({}); add it to one of them",
                if self.allow.is_empty() {
                    "none given".to_owned()
                } else {
                    self.allow.join(", ")
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::request::{Route, route};
    use crate::spec::names::parse_param_ref;

    fn rules() -> Rules {
        let params = [
            "/app/db",
            "/aws/reference/secretsmanager/app/api",
            "/app/pinned:3",
        ]
        .map(|n| ParamRequest {
            key: "K".into(),
            param: parse_param_ref(n).unwrap(),
            optional: false,
        });
        let paths = [
            PathRequest {
                path: "/app/prod/".into(),
                recursive: false,
                optional: false,
            },
            PathRequest {
                path: "/deep/".into(),
                recursive: true,
                optional: false,
            },
        ];
        Rules::new(&params, &paths, &["/shared/".to_owned()])
    }

    fn answer(path: &str, query: &str) -> Result<Answer, Refusal> {
        let r = rules();
        match route("GET", path, Some(query)).unwrap() {
            Route::Parameter(p) => r.parameter(&p),
            Route::Secret(s) => r.secret(&s),
            Route::Ping => panic!(),
        }
    }

    #[test]
    fn names_and_paths_of_the_spec_are_watched_selectors_and_allowed_prefixes_on_demand() {
        let p = "/systemsmanager/parameters/get";
        let s = "/secretsmanager/get";
        let watched = |k: &str| Ok(Answer::Watched(k.to_owned()));
        assert_eq!(answer(p, "name=/app/db"), watched("/app/db"));
        assert_eq!(
            answer(p, "name=/app/pinned&version=3"),
            watched("/app/pinned:3")
        );
        assert_eq!(answer(p, "name=/app/prod/x"), watched("/app/prod/x"));
        assert_eq!(answer(p, "name=/deep/a/b/c"), watched("/deep/a/b/c"));
        assert_eq!(
            answer(s, "secretId=app/api"),
            watched("/aws/reference/secretsmanager/app/api")
        );
        assert_eq!(answer(p, "name=/app/db&version=2"), Ok(Answer::OnDemand));
        assert_eq!(answer(p, "name=/app/pinned"), Ok(Answer::OnDemand));
        assert_eq!(
            answer(p, "name=/app/prod/x&label=old"),
            Ok(Answer::OnDemand)
        );
        assert_eq!(answer(p, "name=/shared/flag"), Ok(Answer::OnDemand));
        assert_eq!(
            answer(s, "secretId=app/api&versionStage=AWSPREVIOUS"),
            Ok(Answer::OnDemand)
        );
        for (path, q) in [
            (p, "name=/app/other"),
            (p, "name=/app/prod/sub/x"),
            (p, "name=/app/prod"),
            (p, "name=/sharedx/a"),
            (s, "secretId=other"),
            (s, "secretId=arn:aws:secretsmanager:eu-west-1:1:secret:x"),
        ] {
            let r = answer(path, q).unwrap_err();
            assert_eq!(r.status, 403, "{q}");
            assert!(
                r.message.contains("--serve-allow") && r.message.contains("/shared/"),
                "{}",
                r.message
            );
        }
    }

    #[test]
    fn an_allowed_prefix_is_compared_component_by_component() {
        let r = Rules::new(&[], &[], &["/team-a".to_owned()]);
        let read = |q: &str| match route("GET", "/systemsmanager/parameters/get", Some(q)) {
            Ok(Route::Parameter(p)) => r.parameter(&p),
            other => panic!("{other:?}"),
        };
        assert_eq!(read("name=/team-a/x"), Ok(Answer::OnDemand));
        assert_eq!(read("name=/team-a/deep/x"), Ok(Answer::OnDemand));
        assert_eq!(read("name=/team-ab/x").map_err(|r| r.status), Err(403));
    }
}
