//! Whether anybody who may approve a request can reach the spool it waits in: list it (read and
//! search) and write a decision into it, through every directory above it. A request nobody
//! eligible can see is one the requester would wait for in vain, so the waiting gate asks this
//! before it waits and fails at once when the answer is nobody.
//!
//! The answer comes from what the kernel would check: the owner, group and mode of the spool and
//! of each directory above it, and each candidate's uid and groups from the user and group
//! databases (`getpwnam`, `getgrouplist`). POSIX ACLs are not read: access granted only through
//! an ACL is not seen, and such a spool is refused; give access through the spool's group.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, User, getgrouplist};

use crate::policy::Requirement;

/// Whether somebody eligible can use the spool. A security outcome: waiting goes ahead only on
/// [`Reach::Reachable`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// These eligible approvers (OS user names) can list the spool and write decisions there.
    Reachable(Vec<String>),
    /// Nobody eligible can; `why` says, per candidate, what stops them.
    Nobody { why: Vec<String> },
    /// Some can, but not enough of them (or not from every group the rules require) to ever
    /// meet the requirement.
    TooFew { can: Vec<String>, why: Vec<String> },
}

/// The answer, and the approvers the policy names that are not users on this host (they
/// cannot approve here: the local backend knows people only as OS users).
#[derive(Debug, Clone)]
pub struct ReachReport {
    pub reach: Reach,
    pub unknown: Vec<String>,
    /// The spool's group, by name where it has one: what approvers would join.
    pub group: String,
}

/// One directory on the way to the spool, as stat(2) sees it.
struct Step {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
}

/// A candidate approver: what the kernel knows of them.
struct Candidate {
    name: String,
    uid: u32,
    gids: BTreeSet<u32>,
}

/// The permission bits that apply to `who` on `step` (owner, else group, else others), as the
/// kernel picks them; root passes every check.
fn allowed(step: &Step, who: &Candidate, want: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if who.uid == step.uid {
        (step.mode >> 6) & 7
    } else if who.gids.contains(&step.gid) {
        (step.mode >> 3) & 7
    } else {
        step.mode & 7
    };
    bits & want == want
}

/// What stops `who` on the way, or `None` when it can list the spool and write into it.
fn blocked(steps: &[Step], who: &Candidate) -> Option<String> {
    let (spool, above) = steps.split_last()?;
    for s in above {
        if !allowed(s, who, 0o1) {
            return Some(format!(
                "{} cannot enter `{}` (mode {:04o}, owner {}, group {})",
                who.name,
                s.path.display(),
                s.mode & 0o7777,
                user_label(s.uid),
                group_label(s.gid)
            ));
        }
    }
    if !allowed(spool, who, 0o7) {
        return Some(format!(
            "{} cannot read and write the spool (mode {:04o}, owner {}, group {})",
            who.name,
            spool.mode & 0o7777,
            user_label(spool.uid),
            group_label(spool.gid)
        ));
    }
    None
}

fn user_label(uid: u32) -> String {
    crate::identity::user_name(uid).unwrap_or_else(|| uid.to_string())
}

fn group_label(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// The spool and every directory above it, after symbolic links are resolved (as they are for
/// everyone who opens the path).
fn steps(spool: &Path) -> std::io::Result<Vec<Step>> {
    let real = std::fs::canonicalize(spool)?;
    let mut out = Vec::new();
    for dir in real.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let m = std::fs::metadata(dir)?;
        out.push(Step {
            path: dir.to_path_buf(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.permissions().mode(),
        });
    }
    Ok(out)
}

fn candidate(u: &User) -> Candidate {
    let gids = CString::new(u.name.as_str())
        .ok()
        .and_then(|c| getgrouplist(&c, u.gid).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| BTreeSet::from([u.gid.as_raw()]));
    Candidate {
        name: u.name.clone(),
        uid: u.uid.as_raw(),
        gids,
    }
}

/// Every user the password file lists, and every member the spool's group names (which also
/// covers users from other databases): the candidates when a rule lets anyone approve.
fn everyone(spool_gid: u32) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty() && !n.starts_with(['#', '+', '-']))
        .map(str::to_owned)
        .collect();
    if let Ok(Some(g)) = Group::from_gid(Gid::from_raw(spool_gid)) {
        names.extend(g.mem);
    }
    names
}

/// Who of those `requirement` lets approve can use the spool at `spool` (which must exist).
///
/// The requester never counts unless the requirement allows it. When the rule names approvers,
/// root counts like anyone named (and can reach every spool); when it lets anyone but the
/// requester approve, root is left out: it can reach everything, so counting it would make the
/// answer say nothing — name `root` in an approver group to have root approve.
pub fn who_can_use(
    spool: &Path,
    requirement: &Requirement,
    requester_uid: u32,
) -> std::io::Result<ReachReport> {
    let steps = steps(spool)?;
    let spool_gid = steps.last().map_or(0, |s| s.gid);
    let named = requirement.eligible();
    let mut unknown = Vec::new();
    let mut candidates = 0;
    let mut can: Vec<String> = Vec::new();
    let mut why = Vec::new();
    let names = named.clone().unwrap_or_else(|| everyone(spool_gid));
    for name in names {
        let u = match User::from_name(&name) {
            Ok(Some(u)) => u,
            _ if named.is_some() => {
                unknown.push(name);
                continue;
            }
            _ => continue,
        };
        let requester = u.uid.as_raw() == requester_uid && !requirement.allow_requester;
        let anyone_but_root = named.is_none() && u.uid.is_root();
        if requester || anyone_but_root {
            continue;
        }
        candidates += 1;
        let c = candidate(&u);
        match blocked(&steps, &c) {
            None => can.push(c.name),
            Some(w) => why.push(w),
        }
        // With anyone eligible, the whole password file need not be asked once it is enough.
        if named.is_none() && requirement.satisfied_by(&can.iter().cloned().collect()) {
            break;
        }
    }
    if candidates == 0 {
        why.push(match &named {
            Some(n) if n.is_empty() => "the rule names no approver".to_owned(),
            Some(_) => "no approver the policy names is a user on this host (the requester \
                        does not count)"
                .to_owned(),
            None => "there is no user on this host other than the requester and root".to_owned(),
        });
    }
    Ok(ReachReport {
        reach: if can.is_empty() {
            Reach::Nobody { why }
        } else if !requirement.satisfied_by(&can.iter().cloned().collect()) {
            if why.is_empty() {
                why.push(
                    "the others who may approve it are the requester or no users on this host"
                        .to_owned(),
                );
            }
            Reach::TooFew { can, why }
        } else {
            Reach::Reachable(can)
        },
        unknown,
        group: group_label(spool_gid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(uid: u32, gid: u32, mode: u32) -> Step {
        Step {
            path: PathBuf::from("/x"),
            uid,
            gid,
            mode,
        }
    }

    fn who(uid: u32, gids: &[u32]) -> Candidate {
        Candidate {
            name: "u".into(),
            uid,
            gids: gids.iter().copied().collect(),
        }
    }

    /// The kernel's order: the owner's bits for the owner even when its group's bits would
    /// allow more; the group's for a member; the others' for everyone else; root passes.
    #[test]
    fn bits_are_picked_as_the_kernel_picks_them() {
        let cases = [
            (step(0, 50, 0o3770), who(1001, &[50]), 0o7, true),
            (step(0, 50, 0o3770), who(1001, &[1001]), 0o7, false),
            (step(0, 0, 0o1777), who(1001, &[1001]), 0o7, true),
            (step(1001, 50, 0o0070), who(1001, &[50]), 0o1, false),
            (step(1000, 1000, 0o0700), who(1001, &[1001]), 0o1, false),
            (step(1000, 1000, 0o0700), who(0, &[0]), 0o7, true),
            (step(0, 0, 0o1733), who(1001, &[1001]), 0o7, false),
            (step(0, 0, 0o0711), who(1001, &[1001]), 0o1, true),
        ];
        for (i, (s, c, want, expect)) in cases.iter().enumerate() {
            assert_eq!(allowed(s, c, *want), *expect, "case {i}");
        }
    }

    #[test]
    fn a_parent_nobody_else_may_enter_blocks_the_way() {
        let steps = [
            step(0, 0, 0o755),
            step(1000, 1000, 0o700),
            step(0, 0, 0o1777),
        ];
        let w = blocked(&steps, &who(1001, &[1001])).unwrap();
        assert!(w.contains("cannot enter"), "{w}");
        assert_eq!(blocked(&steps, &who(1000, &[1000])), None);
    }
}
