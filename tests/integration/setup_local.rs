//! `gate setup local` and the README's *Approvals on one machine*, followed step by step with
//! throw-away users on a machine whose system policy directory is the test's own (a private
//! mount namespace, see `common::system_tier`): before the set-up a request fails at once with
//! the fix; `sudo gate setup local` makes the group, the spool and the system policy; the
//! requester's command waits, the approver sees and approves it, it runs. Then the ways a
//! spool can still be out of an approver's reach, and a waiter killed with SIGKILL.
//!
//! Needs root (CI runs as root): it makes users and groups and acts as them with `setpriv`.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Watched, spawn};
use common::users::{self, User};
use common::{Gate, Ran};
use nix::sys::signal::Signal;
use serde_json::Value;

const DEMO: &str = include_str!("../../policies/demo.yaml");

/// The requester, an approver, and a user in no group of gate's.
const USERS: [&str; 3] = ["gt-sreq", "gt-sappr", "gt-sout"];

fn user(name: &str) -> User {
    users::ensure(&USERS, "setup_local")[name]
}

fn gid_of(group: &str) -> Option<u32> {
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

fn run(c: &mut Command) -> std::process::Output {
    c.output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", c.get_program()))
}

/// Puts `members` in `group` as the group database has it (what `usermod -aG` does).
fn join(group: &str, members: &[&str]) {
    for m in members {
        let out = run(Command::new("gpasswd").args(["-a", m, group]));
        assert!(out.status.success(), "gpasswd -a {m} {group}: {out:?}");
    }
}

/// One machine: a Gate whose runs see `<dir>/system-policy.d` as /etc/gate/policy.d, a home
/// for each user, the gate binary where they can run it, and a fake `git` that leaves a mark.
struct Machine {
    g: Gate,
    bin: PathBuf,
    system: PathBuf,
    fake_bin: PathBuf,
}

fn machine() -> Machine {
    for u in USERS {
        user(u);
    }
    // The admin installed the shipped demo policy as system policy, as the README says.
    let g = Gate::new().system_policy("demo.yaml", DEMO);
    let dir = g.dir.path().to_path_buf();
    let system = g.system_dir().unwrap().to_path_buf();
    let bin_dir = dir.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = users::bin_for_others(&bin_dir);
    let fake_bin = dir.join("fake-bin");
    std::fs::create_dir(&fake_bin).unwrap();
    std::fs::set_permissions(&fake_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let git = fake_bin.join("git");
    std::fs::write(&git, "#!/bin/sh\necho \"git $*\" > \"$HOME/git-ran\"\n").unwrap();
    std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    for u in USERS {
        let home = dir.join(format!("home-{u}"));
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(user(u).uid), Some(user(u).gid)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    Machine {
        g,
        bin,
        system,
        fake_bin,
    }
}

impl Machine {
    fn home(&self, name: &str) -> PathBuf {
        self.g.path(&format!("home-{name}"))
    }

    /// `gate ARGS` as `name`, logged in afresh (the groups the group database gives it), with
    /// a user's own environment and nothing of gate's test settings: the spool comes from the
    /// system policy, as it would on a real machine.
    fn as_user(&self, name: &str, args: &[&str]) -> Command {
        let u = user(name);
        let home = self.home(name);
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(&self.bin)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.fake_bin.display()),
            )
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .current_dir(&home);
        common::system_tier(&c, &self.system)
    }

    /// `gate ARGS` as root (`sudo gate ...`), in the same machine.
    fn as_root(&self, args: &[&str]) -> Ran {
        let mut c = Command::new(common::bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .current_dir(self.g.dir.path());
        finish(common::system_tier(&c, &self.system))
    }

    fn spool(&self) -> PathBuf {
        self.g.path("var/lib/gate/spool")
    }

    /// `gate setup local` for this machine: its spool under the test directory, `group`.
    fn setup(&self, group: &str, extra: &[&str]) -> Ran {
        let spool = self.spool();
        let mut args = vec![
            "setup",
            "local",
            "--group",
            group,
            "--spool",
            spool.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.as_root(&args)
    }

    /// The pending requests `name` sees, until one shows (bounded).
    #[track_caller]
    fn wait_listed(&self, name: &str, waiter: &mut Watched) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = finish(self.as_user(name, &["requests", "--json"]));
            assert_eq!(listed.status, 0, "{}", listed.stderr);
            if let Some(l) = listed.stdout.lines().next() {
                return serde_json::from_str(l).unwrap();
            }
            if !waiter.running() {
                waiter.collect(Duration::from_secs(1));
                panic!("the requester's gate ended: {}", waiter.stderr_text());
            }
            assert!(Instant::now() < deadline, "the request never showed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn finish(mut c: Command) -> Ran {
    c.stdin(std::process::Stdio::null());
    spawn(c).finish(Duration::from_secs(60))
}

/// The README's *Approvals on one machine*, as written: a fresh machine says at once what to
/// do; after `sudo gate setup local` and the group, the force-push waits, the approver lists
/// it and approves it by its short id, and it runs.
#[test]
fn approvals_on_one_machine_work_as_the_readme_says() {
    let group = "gt-setup";
    // A fresh machine: no group yet.
    let _ = run(Command::new("groupdel").arg(group));
    let m = machine();
    let push = ["--", "git", "push", "--force", "origin", "main"];

    // Before the set-up: the per-user spool is the requester's own; gate says so at once.
    let started = Instant::now();
    let before = finish(m.as_user("gt-sreq", &push));
    before
        .status(75)
        .stderr_contains("hint:")
        .stderr_contains("sudo gate setup local");
    assert!(started.elapsed() < Duration::from_secs(30), "it waited");
    assert!(!m.home("gt-sreq").join("git-ran").exists());

    // Not as root: refused (77, EX_NOPERM), with the command to run instead; nothing made.
    m.setup(group, &["--dry-run"])
        .status(0)
        .stderr_contains(&format!("would create the group `{group}`"));
    assert!(gid_of(group).is_none(), "--dry-run made the group");
    assert!(!m.spool().exists(), "--dry-run made the spool");
    let spool = m.spool();
    let not_root = finish(m.as_user(
        "gt-sappr",
        &[
            "setup",
            "local",
            "--group",
            group,
            "--spool",
            spool.to_str().unwrap(),
        ],
    ));
    not_root
        .status(77)
        .stderr_contains("needs root")
        .stderr_contains("sudo gate setup local");
    assert!(!spool.exists());

    // `sudo gate setup local`: the group, the spool, the system policy naming it.
    m.setup(group, &[])
        .status(0)
        .stderr_contains(&format!("created the group `{group}`"))
        .stderr_contains("the shared spool")
        .stderr_contains("/etc/gate/policy.d/local-spool.yaml")
        .stderr_contains(&format!("sudo usermod -aG {group} NAME"))
        .stderr_contains("next login");
    let gid = gid_of(group).expect("the group was made");
    let meta = std::fs::metadata(&spool).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
        (0, gid, 0o3770)
    );
    let file = m.system.join("local-spool.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(spool.to_str().unwrap()), "{text}");
    let fmeta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (fmeta.uid(), fmeta.permissions().mode() & 0o777),
        (0, 0o644)
    );

    // Again: nothing changes, and it says so.
    let before = (fmeta.mtime(), fmeta.ctime(), meta.ctime());
    let again = m.setup(group, &["--json"]);
    again.status(0).stderr_contains("nothing to change");
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["changed"], false, "{report}");
    assert_eq!(report["actions"], serde_json::json!([]), "{report}");
    assert_eq!(report["spool"], spool.to_str().unwrap(), "{report}");
    let (f2, s2) = (
        std::fs::metadata(&file).unwrap(),
        std::fs::metadata(&spool).unwrap(),
    );
    assert_eq!(before, (f2.mtime(), f2.ctime(), s2.ctime()));

    // `sudo usermod -aG gate alice bob`, and a new login (setpriv --init-groups).
    join(group, &["gt-sreq", "gt-sappr"]);

    // The requester's force-push waits; the approver sees it and approves its short id.
    let mut waiter = spawn(m.as_user("gt-sreq", &[&["--timeout", "60s"][..], &push].concat()));
    let req = m.wait_listed("gt-sappr", &mut waiter);
    let id = req["id"].as_str().unwrap().to_owned();
    assert_eq!(req["command"]["argv"][1], "push");
    let short = &id[id.len() - 12..];
    finish(m.as_user("gt-sappr", &["approve", short]))
        .status(0)
        .stderr_contains("approved request");
    let ran = waiter.finish(Duration::from_secs(30));
    ran.status(0).stderr_contains("approved by gt-sappr");
    let mark = std::fs::read_to_string(m.home("gt-sreq").join("git-ran")).unwrap();
    assert_eq!(mark, "git push --force origin main\n");
    // The entry is gone once nobody waits for it.
    assert_eq!(
        std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().ends_with(".decision"))
            })
            .count(),
        0
    );
}

/// A rule whose only approver is not in the spool's group: the request fails at once (75)
/// with the fix, rather than waiting for somebody who can never see it.
#[test]
fn an_approver_outside_the_spools_group_fails_the_request_at_once_with_the_fix() {
    let group = "gt-setup-out";
    let m = machine();
    m.setup(group, &[]).status(0).stderr_contains("next:");
    join(group, &["gt-sreq"]);
    let policy = m.g.path("outsider.yaml");
    std::fs::write(
        &policy,
        "version: 1\ngroups: { outside: [gt-sout, gt-nosuchuser] }\nrules:\n  - name: o\n    match: { program: git }\n    decision: approve\n    approval: { approvers: [outside] }\n",
    )
    .unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let started = Instant::now();
    let ran = finish(m.as_user(
        "gt-sreq",
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--timeout",
            "60s",
            "--",
            "git",
            "status",
        ],
    ));
    ran.status(75)
        .stderr_contains("nobody who may approve it can use the spool")
        .stderr_contains("gt-sout cannot read and write the spool")
        .stderr_contains("`gt-nosuchuser` named as approver in the policy is no user on this host")
        .stderr_contains(&format!("hint: add each approver to the group `{group}`"))
        .stderr_contains(&format!("sudo usermod -aG {group} NAME"));
    assert!(started.elapsed() < Duration::from_secs(30), "it waited");
    assert!(!m.home("gt-sreq").join("git-ran").exists());
    // Nothing left in the spool.
    assert_eq!(std::fs::read_dir(m.spool()).unwrap().count(), 0);
}

/// Two approvals needed, and only one of the two named approvers is in the spool's group: it
/// could never be approved, so it fails at once too, naming who can and who cannot.
#[test]
fn too_few_approvers_in_reach_fail_the_request_at_once() {
    let group = "gt-setup-few";
    let m = machine();
    m.setup(group, &[]).status(0).stderr_contains("next:");
    join(group, &["gt-sreq", "gt-sappr"]);
    let _ = run(Command::new("gpasswd").args(["-d", "gt-sout", group]));
    let policy = m.g.path("two.yaml");
    std::fs::write(
        &policy,
        "version: 1\ngroups: { pair: [gt-sappr, gt-sout] }\nrules:\n  - name: two\n    match: { program: git }\n    decision: approve\n    approval: { approvers: [pair], min_approvals: 2 }\n",
    )
    .unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = finish(m.as_user(
        "gt-sreq",
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--timeout",
            "60s",
            "--",
            "git",
            "status",
        ],
    ));
    ran.status(75)
        .stderr_contains("needs 2 approvals")
        .stderr_contains("only 1 of those who may approve it (gt-sappr) can use the spool")
        .stderr_contains("gt-sout cannot read and write the spool")
        .stderr_contains(&format!("sudo usermod -aG {group} NAME"));
    assert!(!m.home("gt-sreq").join("git-ran").exists());
}

/// A requester outside the spool's group cannot even ask: a configuration error (78) naming
/// the group to join, not a wait.
#[test]
fn a_requester_outside_the_group_is_told_which_group_to_join() {
    let group = "gt-setup-req";
    let m = machine();
    m.setup(group, &[]).status(0).stderr_contains("next:");
    let _ = run(Command::new("gpasswd").args(["-d", "gt-sout", group]));
    let ran = finish(m.as_user("gt-sout", &["--timeout", "60s", "--", "git", "push", "-f"]));
    ran.status(78)
        .stderr_contains("Permission denied")
        .stderr_contains(&format!("sudo usermod -aG {group} gt-sout"));
    assert!(!m.home("gt-sout").join("git-ran").exists());
}

/// A spool others could use, but inside a directory approvers cannot enter (root's, mode
/// 0710, open only to the requester's group, as a private home is to its owner): nobody could
/// answer, so it fails at once, naming the directory.
#[test]
fn a_spool_inside_a_private_home_fails_at_once() {
    let m = machine();
    let home = m.g.path("private-home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(0), Some(user("gt-sreq").gid)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o710)).unwrap();
    let spool = home.join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut c = m.as_user("gt-sreq", &["--timeout", "60s", "--", "git", "push", "-f"]);
    c.env("GATE_SPOOL", &spool);
    let ran = finish(c);
    ran.status(75)
        .stderr_contains("cannot enter")
        .stderr_contains(home.to_str().unwrap())
        .stderr_contains("hint:");
    assert!(!m.home("gt-sreq").join("git-ran").exists());
}

/// Attack: a spool in a directory the requester owns. It could rename the spool away and put
/// its own directory there, so that approvers' decisions (a denial) land where the waiting
/// gate never looks. Refused at once (75), naming the directory.
#[test]
fn a_spool_under_a_directory_the_requester_owns_is_refused() {
    let m = machine();
    let spool = m.home("gt-sreq").join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut c = m.as_user("gt-sreq", &["--timeout", "60s", "--", "git", "push", "-f"]);
    c.env("GATE_SPOOL", &spool);
    let ran = finish(c);
    ran.status(75)
        .stderr_contains("not safe for approvals")
        .stderr_contains(&format!(
            "`{}` above it is yours",
            m.home("gt-sreq").display()
        ));
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "a request was left"
    );
}

/// Running as root is not enough to approve unless root is named: with a rule that lets
/// anyone but the requester approve, a spool only root can use fails at once; naming `root`
/// makes it wait for root.
#[test]
fn root_counts_only_where_the_rule_names_it() {
    let m = machine();
    let spool = m.g.path("root-only");
    std::fs::create_dir(&spool).unwrap();
    // The requester's own group's: it can ask there, and nobody else but root can look.
    std::os::unix::fs::chown(&spool, Some(0), Some(user("gt-sreq").gid)).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o3770)).unwrap();
    let named = m.g.path("root-named.yaml");
    std::fs::write(
        &named,
        "version: 1\ngroups: { admins: [root] }\nrules:\n  - name: r\n    match: { program: git }\n    decision: approve\n    approval: { approvers: [admins] }\n",
    )
    .unwrap();
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut anyone = m.as_user("gt-sreq", &["--timeout", "60s", "--", "git", "push", "-f"]);
    anyone.env("GATE_SPOOL", &spool);
    finish(anyone)
        .status(75)
        .stderr_contains("nobody who may approve it can use the spool");
    let mut root = m.as_user(
        "gt-sreq",
        &[
            "--policy",
            named.to_str().unwrap(),
            "--timeout",
            "1s",
            "--",
            "git",
            "status",
        ],
    );
    root.env("GATE_SPOOL", &spool);
    finish(root)
        .status(75)
        .stderr_contains("no decision within 1s");
}

/// A waiter killed with SIGKILL leaves no request anybody can act on: approvers no longer see
/// it and cannot approve it (even by its full id), the entry stays hidden where they may not
/// remove it, and the requester's next `gate requests` (or its next request) removes it.
/// Meanwhile nobody else can make a live request look dead by taking its lock.
#[test]
fn a_sigkilled_waiters_request_is_hidden_then_swept_and_never_approvable() {
    let group = "gt-setup-kill";
    let m = machine();
    m.setup(group, &[]).status(0).stderr_contains("next:");
    join(group, &["gt-sreq", "gt-sappr"]);
    let spool = m.spool();
    let mut waiter = spawn(m.as_user("gt-sreq", &["--timeout", "60s", "--", "git", "push", "-f"]));
    let req = m.wait_listed("gt-sappr", &mut waiter);
    let id = req["id"].as_str().unwrap().to_owned();
    let entry = spool.join(&id);
    let lock = entry.join("lock");

    // Attack: the approver (or anyone who can read the lock) tries to take it, to make the
    // live request look dead. The waiter holds it: no.
    let u = user("gt-sappr");
    let grab = run(Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--init-groups")
        .args(["--", "flock", "--nonblock", "--shared"])
        .arg(&lock)
        .arg("true"));
    assert!(
        !grab.status.success(),
        "took a live waiter's lock: {grab:?}"
    );
    // Attack: a second link to the lock (what another user could make where hard links are
    // not protected; root stands in for them here) does not make the request look dead.
    std::fs::hard_link(&lock, m.g.path("lock-link")).unwrap();
    // Attack: a forged entry of the approver's own, whose lock is a link to the live waiter's,
    // borrows no life from it: the lock is not its owner's.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(entry.join("request.json")).unwrap())
            .unwrap();
    let last = if id.ends_with('0') { "1" } else { "0" };
    let forged_id = format!("{}{last}", &id[..id.len() - 1]);
    forged["request"]["id"] = forged_id.clone().into();
    forged["request"]["requester"]["user"] = "gt-sappr".into();
    forged["request"]["requester"]["uid"] = u.uid.into();
    let fdir = spool.join(&forged_id);
    let planted = run(Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--init-groups")
        .args([
            "--",
            "sh",
            "-c",
            r#"mkdir -m 755 "$1" && printf %s "$2" > "$1/request.json""#,
            "sh",
        ])
        .arg(&fdir)
        .arg(forged.to_string()));
    assert!(planted.status.success(), "{planted:?}");
    std::fs::hard_link(&lock, fdir.join("lock")).unwrap();
    let listed = finish(m.as_user("gt-sreq", &["requests", "--json"]));
    listed.status(0);
    let ids: Vec<String> = listed
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&id),
        "the live request, and not the forged one"
    );
    std::fs::remove_file(fdir.join("lock")).unwrap();
    std::fs::remove_file(fdir.join("request.json")).unwrap();
    std::fs::remove_dir(&fdir).unwrap();

    waiter.signal(Signal::SIGKILL);
    let killed = waiter.finish(Duration::from_secs(10));
    assert_eq!(killed.status, -9, "{}", killed.stderr);
    assert!(
        entry.exists(),
        "SIGKILL ran no clean-up, so the entry is still there"
    );

    // The approver: not listed, not approvable by full id or short id; nothing written.
    let listed = finish(m.as_user("gt-sappr", &["requests", "--json"]));
    listed.status(0);
    assert_eq!(listed.stdout, "", "a dead request is listed");
    for typed in [id.as_str(), &id[id.len() - 12..]] {
        let ran = finish(m.as_user("gt-sappr", &["approve", typed]));
        assert_ne!(ran.status, 0, "approved a dead request: {}", ran.stderr);
    }
    let decisions = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".decision"))
        .count();
    assert_eq!(decisions, 0, "a decision was written for a dead request");
    // The approver may not remove another user's entry: hidden, not removed.
    assert!(entry.exists());

    // The requester's own `gate requests` removes it.
    finish(m.as_user("gt-sreq", &["requests"]))
        .status(0)
        .stderr_contains("no pending requests");
    assert!(!entry.exists(), "the dead entry is still in the spool");
}

/// The next request of the same requester sweeps what its killed predecessor left.
#[test]
fn the_next_waiter_sweeps_its_killed_predecessors_entry() {
    let group = "gt-setup-sweep";
    let m = machine();
    m.setup(group, &[]).status(0).stderr_contains("next:");
    join(group, &["gt-sreq", "gt-sappr"]);
    let spool = m.spool();
    let args = ["--timeout", "60s", "--", "git", "push", "-f"];
    let mut first = spawn(m.as_user("gt-sreq", &args));
    let id = m.wait_listed("gt-sappr", &mut first)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    first.signal(Signal::SIGKILL);
    first.finish(Duration::from_secs(10));
    assert!(spool.join(&id).exists());
    let mut second = spawn(m.as_user("gt-sreq", &args));
    let next = m.wait_listed("gt-sappr", &mut second)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(next, id);
    assert!(
        !spool.join(&id).exists(),
        "the killed waiter's entry was not swept"
    );
    second.signal(Signal::SIGTERM);
    second.finish(Duration::from_secs(10));
}

/// Paths and names that cannot be used are refused before anything changes.
#[test]
fn setup_refuses_what_it_cannot_make_safe() {
    let _ = run(Command::new("groupdel").arg("gt-setup-x"));
    let m = machine();
    // Under a directory another user owns (who could swap the spool out).
    let theirs = m.home("gt-sout");
    let spool = theirs.join("spool");
    m.as_root(&[
        "setup",
        "local",
        "--group",
        "gt-setup-x",
        "--spool",
        spool.to_str().unwrap(),
    ])
    .status(78)
    .stderr_contains("belongs to gt-sout")
    .stderr_contains("hint:");
    assert!(!spool.exists());
    // A directory that is something else already is not handed to the group.
    let busy = m.g.path("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::set_permissions(&busy, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(busy.join("important"), "x").unwrap();
    m.as_root(&[
        "setup",
        "local",
        "--group",
        "gt-setup-x",
        "--spool",
        busy.to_str().unwrap(),
    ])
    .status(78)
    .stderr_contains("holds `important`, which is not a spool entry");
    assert_eq!(
        std::fs::metadata(&busy).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    m.as_root(&["setup", "local", "--spool", "relative/spool"])
        .status(2)
        .stderr_contains("absolute path");
    m.as_root(&["setup", "local", "--group", "Bad:Group"])
        .status(2)
        .stderr_contains("not a group name");
    assert!(gid_of("gt-setup-x").is_none());
}
