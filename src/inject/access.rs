//! Who may read the injected files. From the securityContexts of the containers that get
//! the read-only mount (the *readers*), [`derive`] picks the owner, group and mode of the
//! files and the ids the injected containers (the *writer*) run as, so that every reader
//! can read the files and, as far as the pod lets us, no other user can. Pure.
//!
//! The writer drops every capability, so it cannot chown a file to another uid: the owner
//! is its own runAsUser, and the group is its primary gid or one of its supplementary
//! groups (the pod's fsGroup and supplementalGroups apply to every container, the
//! writer's too). It never runs as root.
//!
//! 1. Every reader runs as the same known uid U > 0: the writer runs as U, the files are
//!    owned by U, mode 0400 (group: the readers' common gid, when they have one).
//! 2. Else a group G every reader has (the pod's fsGroup first, then a gid common to all
//!    readers, then the pod's first supplementalGroup): mode 0440, group G.
//! 3. Else mode 0444, with a warning naming the containers and what to set, and the reason
//!    in the pod's `ssm-injector.io/file-access` annotation.
//!
//! An explicit `ssm-injector.io/file-mode` replaces the mode, and the owner and group are
//! the narrowest of the above under which it serves every reader (checked as the kernel
//! would: owner bits for the owner, else group bits for the group, else the other bits).
//! When none does, the derived ones stay and that is a warning, not a denial.

use super::annotations as a;
use k8s_openapi::api::core::v1::{Container, PodSpec};

/// uid and gid of the injected containers when the pod gives none (distroless nonroot).
pub const NONROOT_ID: i64 = 65532;

/// Largest uid or gid Kubernetes accepts (`runAsUser` and friends are int32 ≥ 0). Values
/// outside `0..=MAX_ID` never pass the API server's validation; they count as unknown.
pub const MAX_ID: i64 = i32::MAX as i64;

/// Readers listed by name in messages before "and N more".
const LISTED: usize = 4;

/// The pod-level ids, which apply to every container unless a container overrides
/// runAsUser / runAsGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIds {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub fs_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
}

/// One container that mounts the files, with the ids it runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub name: String,
    /// The container's runAsUser, else the pod's; `None`: the image's USER (unknown).
    pub uid: Option<i64>,
    /// The container's runAsGroup, else the pod's; `None`: the image's (unknown).
    pub gid: Option<i64>,
}

/// Who writes and who can read the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAccess {
    /// runAsUser of the injected containers; always > 0.
    pub run_as_user: i64,
    /// runAsGroup of the injected containers.
    pub run_as_group: i64,
    /// `--uid` (the writer's own uid, named when it is the readers' uid).
    pub uid: Option<i64>,
    /// `--gid`: the readers' group.
    pub gid: Option<i64>,
    /// `--file-mode`.
    pub mode: u32,
    /// The value of the pod's `ssm-injector.io/file-access` annotation.
    pub summary: String,
    /// Admission warnings: nothing when every reader can read the files and no more.
    pub warnings: Vec<String>,
}

fn id(v: Option<i64>) -> Option<i64> {
    v.filter(|i| (0..=MAX_ID).contains(i))
}

/// The pod's ids and the readers: the app and init containers `chosen` picks (the
/// `ssm-injector.io/containers` annotation; the injected containers are not in the pod yet),
/// app containers first, each in pod order.
pub fn readers(spec: &PodSpec, chosen: impl Fn(&Container) -> bool) -> (PodIds, Vec<Reader>) {
    let sc = spec.security_context.as_ref();
    let pod = PodIds {
        run_as_user: id(sc.and_then(|s| s.run_as_user)),
        run_as_group: id(sc.and_then(|s| s.run_as_group)),
        fs_group: id(sc.and_then(|s| s.fs_group)),
        supplemental_groups: sc
            .and_then(|s| s.supplemental_groups.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|g| id(Some(*g)))
            .collect(),
    };
    let readers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| chosen(c))
        .map(|c| {
            let csc = c.security_context.as_ref();
            Reader {
                name: c.name.clone(),
                uid: id(csc.and_then(|s| s.run_as_user)).or(pod.run_as_user),
                gid: id(csc.and_then(|s| s.run_as_group)).or(pod.run_as_group),
            }
        })
        .collect();
    (pod, readers)
}

/// What the derivation settled on before an explicit mode is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// Every reader runs as this uid (> 0); their common gid, if any.
    Owner { uid: i64, gid: Option<i64> },
    /// Every reader has this group.
    Group { gid: i64 },
    /// Nothing in common: every user may read.
    Anyone,
}

impl Basis {
    fn mode(self) -> u32 {
        match self {
            Basis::Owner { .. } => 0o400,
            Basis::Group { .. } => 0o440,
            Basis::Anyone => 0o444,
        }
    }

    /// `uid 1000 gid 3000 mode 0400`, `gid 3000 mode 0440`, `mode 0444`.
    fn describe(self, mode: u32) -> String {
        match self {
            Basis::Owner { uid, gid: Some(g) } => format!("uid {uid} gid {g} mode {mode:04o}"),
            Basis::Owner { uid, gid: None } => format!("uid {uid} mode {mode:04o}"),
            Basis::Group { gid } => format!("gid {gid} mode {mode:04o}"),
            Basis::Anyone => format!("mode {mode:04o}"),
        }
    }
}

/// `Some(v)` when every item is `Some(v)` with the same `v` (and there is at least one).
fn common(ids: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    let mut found = None;
    for i in ids {
        match (i, found) {
            (None, _) => return None,
            (Some(i), None) => found = Some(i),
            (Some(i), Some(f)) if i != f => return None,
            _ => {}
        }
    }
    found
}

/// Decides the owner, group and mode of the files and the ids of the writer. Never fails:
/// when no owner or group serves every reader, the answer is mode 0444 with a warning.
pub fn derive(pod: &PodIds, readers: &[Reader], explicit_mode: Option<u32>) -> FileAccess {
    let common_uid = common(readers.iter().map(|r| r.uid));
    let common_gid = common(readers.iter().map(|r| r.gid));
    let pod_uid = pod.run_as_user.filter(|u| *u > 0).unwrap_or(NONROOT_ID);
    let pod_gid = pod.run_as_group.unwrap_or(NONROOT_ID);
    let group = pod
        .fs_group
        .or(common_gid)
        .or(pod.supplemental_groups.first().copied());
    // The ways to serve the readers, narrowest first; the last always works.
    let mut candidates = Vec::new();
    match common_uid {
        Some(uid) if uid > 0 => candidates.push(Basis::Owner {
            uid,
            gid: common_gid,
        }),
        _ => {}
    }
    if readers.is_empty() {
        // Nobody reads the files (not a pod the API server accepts): the writer keeps them.
        candidates.push(Basis::Owner {
            uid: pod_uid,
            gid: None,
        });
    }
    if let Some(gid) = group {
        candidates.push(Basis::Group { gid });
    }
    candidates.push(Basis::Anyone);
    let ownership = |basis: Basis| match basis {
        Basis::Owner { uid, gid } => (uid, Some(uid), gid),
        Basis::Group { gid } => (pod_uid, None, Some(gid)),
        Basis::Anyone => (pod_uid, None, None),
    };
    let shut_out = |basis: Basis, mode: u32| -> Vec<&Reader> {
        let (uid, _, gid) = ownership(basis);
        let owner = Owner { uid, gid, pod };
        readers
            .iter()
            .filter(|r| !owner.can_read(r, mode))
            .collect()
    };
    let derived = candidates.first().copied().unwrap_or(Basis::Anyone);
    // An explicit mode: the narrowest ownership under which it serves every reader, else
    // the derived one (and a warning).
    let basis = match explicit_mode {
        None => derived,
        Some(m) => candidates
            .iter()
            .copied()
            .find(|b| shut_out(*b, m).is_empty())
            .unwrap_or(derived),
    };
    let (run_as_user, uid, gid) = ownership(basis);
    // A gid every reader runs as is the writer's too (it may be the group of the files);
    // fsGroup and supplementalGroups reach the writer without it.
    let run_as_group = common_gid.unwrap_or(pod_gid);

    let mode = explicit_mode.unwrap_or(basis.mode());
    let mut summary = basis.describe(mode);
    let mut warnings = Vec::new();
    match explicit_mode {
        None if basis == Basis::Anyone => {
            let why = anyone_reason(readers);
            summary = format!("{summary}: {why}");
            warnings.push(format!(
                "ssm-injector: the injected files are mode 0444 (any user can read them); for 0400 or 0440 give the reading containers one runAsUser (not 0), or set the pod's fsGroup. {why}"
            ));
        }
        None => {}
        Some(m) => {
            summary = format!("{summary} from {}", a::FILE_MODE);
            let shut_out = shut_out(basis, m);
            if !shut_out.is_empty() {
                let list = list(&shut_out);
                summary = format!("{summary}: {list} may not read it");
                warnings.push(format!(
                    "ssm-injector: {} {m:04o} may keep containers from reading the files (owner uid {run_as_user}{}); without it the injector picks {}. Shut out: {list}",
                    a::FILE_MODE,
                    gid.map(|g| format!(", group {g}")).unwrap_or_default(),
                    derived.describe(derived.mode()),
                ));
            }
        }
    }
    FileAccess {
        run_as_user,
        run_as_group,
        uid,
        gid,
        mode,
        summary,
        warnings,
    }
}

/// Why no owner or group serves every reader.
fn anyone_reason(readers: &[Reader]) -> String {
    let all: Vec<&Reader> = readers.iter().collect();
    let list = list(&all);
    if readers.iter().all(|r| r.uid.is_none() && r.gid.is_none()) {
        format!("{list}: no runAsUser, runAsGroup or fsGroup set")
    } else if readers.iter().all(|r| r.uid == Some(0)) {
        format!("{list}: run as root (uid 0), which the injected containers may not")
    } else {
        format!("{list}: no common uid or group")
    }
}

/// `container app (uid 1000)` or `containers app (uid 1000), worker (uid unknown) and 3
/// more`.
fn list(readers: &[&Reader]) -> String {
    let shown: Vec<String> = readers
        .iter()
        .take(LISTED)
        .map(|r| {
            let uid = r
                .uid
                .map_or("uid unknown".to_owned(), |u| format!("uid {u}"));
            match r.gid {
                Some(g) => format!("{} ({uid}, gid {g})", r.name),
                None => format!("{} ({uid})", r.name),
            }
        })
        .collect();
    let noun = if readers.len() == 1 {
        "container"
    } else {
        "containers"
    };
    let more = readers.len().saturating_sub(LISTED);
    if more > 0 {
        format!("{noun} {} and {more} more", shown.join(", "))
    } else {
        format!("{noun} {}", shown.join(", "))
    }
}

/// The files' owner and group, for the kernel's permission check.
struct Owner<'a> {
    uid: i64,
    /// `None`: not set by the injector (the writer's gid, or fsGroup by the volume's setgid
    /// bit): unknown here.
    gid: Option<i64>,
    pod: &'a PodIds,
}

impl Owner<'_> {
    /// Whether `reader` can surely read a file of this owner and `mode`: the owner is
    /// checked against the owner bits only, a member of the group against the group bits
    /// only, anyone else against the other bits. An unknown uid or group must pass every
    /// check it might fall under.
    fn can_read(&self, reader: &Reader, mode: u32) -> bool {
        let owner_ok = mode & 0o400 != 0;
        let group_ok = mode & 0o040 != 0;
        let other_ok = mode & 0o004 != 0;
        let in_group = match self.gid {
            None => None,
            Some(g) => {
                let member = reader.gid == Some(g)
                    || self.pod.fs_group == Some(g)
                    || self.pod.supplemental_groups.contains(&g);
                if member {
                    Some(true)
                } else if reader.gid.is_none() {
                    None
                } else {
                    Some(false)
                }
            }
        };
        let not_owner_ok = match in_group {
            Some(true) => group_ok,
            Some(false) => other_ok,
            None => group_ok && other_ok,
        };
        match reader.uid {
            Some(u) if u == self.uid => owner_ok,
            Some(_) => not_owner_ok,
            None => owner_ok && not_owner_ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
    use proptest::prelude::*;

    fn r(name: &str, uid: Option<i64>, gid: Option<i64>) -> Reader {
        Reader {
            name: name.to_owned(),
            uid,
            gid,
        }
    }

    fn pod_ids(fs_group: Option<i64>, supplemental: &[i64]) -> PodIds {
        PodIds {
            fs_group,
            supplemental_groups: supplemental.to_vec(),
            ..Default::default()
        }
    }

    fn container(name: &str, uid: Option<i64>, gid: Option<i64>) -> Container {
        Container {
            name: name.to_owned(),
            security_context: (uid.is_some() || gid.is_some()).then(|| SecurityContext {
                run_as_user: uid,
                run_as_group: gid,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn readers_take_the_container_ids_over_the_pods_and_only_the_chosen_containers() {
        let spec = PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(4000),
                supplemental_groups: Some(vec![5000, -1, 6000]),
                ..Default::default()
            }),
            containers: vec![
                container("app", Some(2000), None),
                container("worker", None, Some(3100)),
                container("log", None, None),
            ],
            init_containers: Some(vec![
                container("migrate", Some(7000), Some(7000)),
                container("huge", Some(1 << 40), None),
            ]),
            ..Default::default()
        };
        let (pod, readers) = readers(&spec, |c| c.name != "log");
        assert_eq!(
            pod,
            PodIds {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(4000),
                supplemental_groups: vec![5000, 6000],
            }
        );
        assert_eq!(
            readers,
            [
                r("app", Some(2000), Some(3000)),
                r("worker", Some(1000), Some(3100)),
                r("migrate", Some(7000), Some(7000)),
                // Out of range: not a uid the API server accepts; the pod's applies.
                r("huge", Some(1000), Some(3000)),
            ]
        );
    }

    #[test]
    fn without_any_security_context_every_id_is_unknown() {
        let spec = PodSpec {
            containers: vec![container("app", None, None)],
            ..Default::default()
        };
        let (pod, readers) = readers(&spec, |_| true);
        assert_eq!(pod, PodIds::default());
        assert_eq!(readers, [r("app", None, None)]);
    }

    /// (run_as_user, run_as_group, --uid, --gid, mode, summary starts with, warns)
    type Want = (i64, i64, Option<i64>, Option<i64>, u32, &'static str, bool);

    #[test]
    fn the_derivation_serves_every_reader_with_the_narrowest_mode() {
        let none = PodIds::default();
        let with_uid = |uid: i64, gid: Option<i64>| PodIds {
            run_as_user: Some(uid),
            run_as_group: gid,
            ..Default::default()
        };
        // (what, pod ids, readers, explicit mode, want)
        type Case = (&'static str, PodIds, Vec<Reader>, Option<u32>, Want);
        let cases: Vec<Case> = vec![
            (
                "no security context: 0444, and say so",
                none.clone(),
                vec![r("app", None, None)],
                None,
                (
                    65532,
                    65532,
                    None,
                    None,
                    0o444,
                    "mode 0444: container app (uid unknown): no runAsUser",
                    true,
                ),
            ),
            (
                "one uid for all: 0400 owned by it",
                with_uid(1000, None),
                vec![r("app", Some(1000), None), r("worker", Some(1000), None)],
                None,
                (
                    1000,
                    65532,
                    Some(1000),
                    None,
                    0o400,
                    "uid 1000 mode 0400",
                    false,
                ),
            ),
            (
                "one uid and one gid: both",
                none.clone(),
                vec![r("app", Some(1000), Some(3000))],
                None,
                (
                    1000,
                    3000,
                    Some(1000),
                    Some(3000),
                    0o400,
                    "uid 1000 gid 3000 mode 0400",
                    false,
                ),
            ),
            (
                "the container's uid, not the pod's (issue 14)",
                with_uid(1000, None),
                vec![r("app", Some(2000), None)],
                None,
                (
                    2000,
                    65532,
                    Some(2000),
                    None,
                    0o400,
                    "uid 2000 mode 0400",
                    false,
                ),
            ),
            (
                "two uids, fsGroup: 0440 by fsGroup, owner the pod's uid",
                PodIds {
                    run_as_user: Some(1000),
                    fs_group: Some(4000),
                    ..Default::default()
                },
                vec![r("app", Some(1000), None), r("worker", Some(2000), None)],
                None,
                (
                    1000,
                    65532,
                    None,
                    Some(4000),
                    0o440,
                    "gid 4000 mode 0440",
                    false,
                ),
            ),
            (
                "fsGroup is preferred over a common gid",
                pod_ids(Some(4000), &[]),
                vec![
                    r("app", Some(1000), Some(3000)),
                    r("worker", Some(2000), Some(3000)),
                ],
                None,
                (
                    65532,
                    3000,
                    None,
                    Some(4000),
                    0o440,
                    "gid 4000 mode 0440",
                    false,
                ),
            ),
            (
                "two uids, a common container gid: the writer runs with it",
                none.clone(),
                vec![
                    r("app", Some(1000), Some(3000)),
                    r("worker", Some(2000), Some(3000)),
                ],
                None,
                (
                    65532,
                    3000,
                    None,
                    Some(3000),
                    0o440,
                    "gid 3000 mode 0440",
                    false,
                ),
            ),
            (
                "unknown uids, a supplemental group",
                pod_ids(None, &[5000, 6000]),
                vec![r("app", None, None), r("worker", Some(2000), Some(2000))],
                None,
                (
                    65532,
                    65532,
                    None,
                    Some(5000),
                    0o440,
                    "gid 5000 mode 0440",
                    false,
                ),
            ),
            (
                "only a group known: 0440",
                PodIds {
                    run_as_group: Some(3000),
                    ..Default::default()
                },
                vec![r("app", None, Some(3000))],
                None,
                (
                    65532,
                    3000,
                    None,
                    Some(3000),
                    0o440,
                    "gid 3000 mode 0440",
                    false,
                ),
            ),
            (
                "two uids, nothing shared: 0444 naming them",
                none.clone(),
                vec![r("app", Some(1000), None), r("worker", Some(2000), None)],
                None,
                (
                    65532,
                    65532,
                    None,
                    None,
                    0o444,
                    "mode 0444: containers app (uid 1000), worker (uid 2000): no common uid or group",
                    true,
                ),
            ),
            (
                "one known uid, one unknown: 0444",
                none.clone(),
                vec![r("app", Some(1000), None), r("sidecar", None, None)],
                None,
                (
                    65532,
                    65532,
                    None,
                    None,
                    0o444,
                    "mode 0444: containers app (uid 1000), sidecar (uid unknown): no common",
                    true,
                ),
            ),
            (
                "root readers: never the writer's uid; fsGroup serves them",
                PodIds {
                    run_as_user: Some(0),
                    fs_group: Some(4000),
                    ..Default::default()
                },
                vec![r("app", Some(0), None)],
                None,
                (
                    65532,
                    65532,
                    None,
                    Some(4000),
                    0o440,
                    "gid 4000 mode 0440",
                    false,
                ),
            ),
            (
                "root readers without a group: 0444",
                with_uid(0, None),
                vec![r("app", Some(0), None)],
                None,
                (
                    65532,
                    65532,
                    None,
                    None,
                    0o444,
                    "mode 0444: container app (uid 0): run as root",
                    true,
                ),
            ),
            (
                "a root reader among others: the others' uid is not enough",
                pod_ids(None, &[]),
                vec![
                    r("app", Some(1000), Some(1000)),
                    r("debug", Some(0), Some(1000)),
                ],
                None,
                (
                    65532,
                    1000,
                    None,
                    Some(1000),
                    0o440,
                    "gid 1000 mode 0440",
                    false,
                ),
            ),
            (
                "an explicit mode wins and serves: no warning",
                with_uid(1000, None),
                vec![r("app", Some(1000), None)],
                Some(0o440),
                (
                    1000,
                    65532,
                    Some(1000),
                    None,
                    0o440,
                    "uid 1000 mode 0440 from ssm-injector.io/file-mode",
                    false,
                ),
            ),
            (
                "an explicit 0400 that shuts out a reader: warn, keep the mode",
                pod_ids(Some(4000), &[]),
                vec![r("app", Some(1000), None), r("worker", Some(2000), None)],
                Some(0o400),
                (
                    65532,
                    65532,
                    None,
                    Some(4000),
                    0o400,
                    "gid 4000 mode 0400 from ssm-injector.io/file-mode: containers app (uid 1000), worker (uid 2000) may not read it",
                    true,
                ),
            ),
            (
                "an explicit 0400 without a security context: the app's uid is unknown",
                none.clone(),
                vec![r("app", None, None)],
                Some(0o400),
                (
                    65532,
                    65532,
                    None,
                    None,
                    0o400,
                    "mode 0400 from ssm-injector.io/file-mode: container app (uid unknown) may not read it",
                    true,
                ),
            ),
            (
                "an explicit 0444 always serves",
                none.clone(),
                vec![r("app", None, None), r("worker", Some(5), None)],
                Some(0o444),
                (65532, 65532, None, None, 0o444, "mode 0444 from", false),
            ),
            (
                "an explicit group mode for a group the readers share",
                pod_ids(Some(4000), &[]),
                vec![r("app", Some(1000), None)],
                Some(0o040),
                (
                    65532,
                    65532,
                    None,
                    Some(4000),
                    0o040,
                    "gid 4000 mode 0040 from",
                    false,
                ),
            ),
            (
                "an explicit group mode and a reader of unknown uid: it may be the owner",
                pod_ids(Some(4000), &[]),
                vec![r("app", None, None)],
                Some(0o040),
                (
                    65532,
                    65532,
                    None,
                    Some(4000),
                    0o040,
                    "gid 4000 mode 0040 from ssm-injector.io/file-mode: container app (uid unknown) may not read it",
                    true,
                ),
            ),
        ];
        for (name, pod, readers, explicit, want) in cases {
            let got = derive(&pod, &readers, explicit);
            let (ru, rg, uid, gid, mode, summary, warns) = want;
            assert_eq!(
                (
                    got.run_as_user,
                    got.run_as_group,
                    got.uid,
                    got.gid,
                    got.mode
                ),
                (ru, rg, uid, gid, mode),
                "{name}: {got:?}"
            );
            assert!(
                got.summary.starts_with(summary),
                "{name}: summary {:?}",
                got.summary
            );
            assert_eq!(
                !got.warnings.is_empty(),
                warns,
                "{name}: {:?}",
                got.warnings
            );
        }
    }

    #[test]
    fn the_0444_warning_says_what_to_set_before_naming_the_containers() {
        let readers = vec![r("app", Some(1000), None), r("worker", Some(2000), None)];
        let got = derive(&PodIds::default(), &readers, None);
        let [w] = got.warnings.as_slice() else {
            panic!("one warning: {:?}", got.warnings)
        };
        let fix = w.find("fsGroup").expect("names fsGroup");
        let names = w.find("worker (uid 2000)").expect("names the containers");
        assert!(fix < names, "the fix first, so a truncation keeps it: {w}");
        assert!(w.contains("runAsUser"), "{w}");
    }

    #[test]
    fn long_reader_lists_are_cut() {
        let readers: Vec<Reader> = (0..7)
            .map(|i| r(&format!("c{i}"), Some(1000 + i), None))
            .collect();
        let got = derive(&PodIds::default(), &readers, None);
        assert!(
            got.summary.contains("c3 (uid 1003) and 3 more") && !got.summary.contains("c4"),
            "{}",
            got.summary
        );
    }

    #[test]
    fn the_explicit_mode_warning_names_the_mode_the_injector_would_pick() {
        let readers = vec![r("app", Some(1000), None), r("worker", Some(2000), None)];
        let got = derive(&pod_ids(Some(4000), &[]), &readers, Some(0o400));
        let [w] = got.warnings.as_slice() else {
            panic!("one warning: {:?}", got.warnings)
        };
        assert!(
            w.contains("ssm-injector.io/file-mode 0400") && w.contains("gid 4000 mode 0440"),
            "{w}"
        );
    }

    #[test]
    fn permission_checks_follow_the_kernel_owner_then_group_then_other() {
        let pod = pod_ids(None, &[]);
        let owner = Owner {
            uid: 1000,
            gid: Some(3000),
            pod: &pod,
        };
        // (reader uid, reader gid, mode, can read)
        let cases = [
            (Some(1000), None, 0o400, true),
            // The owner gets only the owner bits, even when group and other could read.
            (Some(1000), Some(3000), 0o044, false),
            (Some(2000), Some(3000), 0o040, true),
            // A group member gets only the group bits.
            (Some(2000), Some(3000), 0o404, false),
            (Some(2000), Some(4000), 0o004, true),
            (Some(2000), Some(4000), 0o440, false),
            // Unknown: every class it may fall in must allow it.
            (None, None, 0o444, true),
            (None, None, 0o440, false),
            (None, Some(3000), 0o440, true),
            (Some(2000), None, 0o040, false),
            (Some(2000), None, 0o044, true),
        ];
        for (uid, gid, mode, want) in cases {
            assert_eq!(
                owner.can_read(&r("x", uid, gid), mode),
                want,
                "{uid:?} {gid:?} {mode:04o}"
            );
        }
    }

    fn id_strategy() -> impl Strategy<Value = Option<i64>> {
        proptest::option::of(prop_oneof![Just(0i64), Just(1000), Just(2000), Just(3000)])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the securityContexts, the derived mode lets every reader read, the
        /// writer is never root, and only the 0444 fallback warns.
        #[test]
        fn the_derived_access_always_serves_every_reader(
            uid in id_strategy(),
            gid in id_strategy(),
            fs_group in id_strategy(),
            supplemental in proptest::collection::vec(1i64..5000, 0..2),
            ids in proptest::collection::vec((id_strategy(), id_strategy()), 1..4),
        ) {
            let pod = PodIds { run_as_user: uid, run_as_group: gid, fs_group, supplemental_groups: supplemental };
            let readers: Vec<Reader> = ids
                .iter()
                .enumerate()
                .map(|(i, (u, g))| r(&format!("c{i}"), u.or(pod.run_as_user), g.or(pod.run_as_group)))
                .collect();
            let got = derive(&pod, &readers, None);
            prop_assert!(got.run_as_user > 0);
            let owner = Owner { uid: got.run_as_user, gid: got.gid, pod: &pod };
            for reader in &readers {
                prop_assert!(owner.can_read(reader, got.mode), "{:?} {:?}", reader, got);
            }
            // The writer can set the group: its own gid or one the pod gives every container.
            if let Some(g) = got.gid {
                prop_assert!(
                    got.run_as_group == g || pod.fs_group == Some(g) || pod.supplemental_groups.contains(&g),
                    "{:?}", got
                );
            }
            if let Some(u) = got.uid {
                prop_assert_eq!(u, got.run_as_user);
            }
            prop_assert_eq!(got.warnings.is_empty(), got.mode != 0o444, "{:?}", got);
        }
    }
}
