//! PATH shims (issue 13 §3): `gate shim install|list|remove`, and gate run under a program's
//! name. The real binary, a temp PATH of fake programs that leave a trace when they run, and
//! the attacks an agent running as the user could try: the shim directory twice on PATH, a
//! second shim directory later on PATH, a "real" program that is itself a link to gate, gate's
//! own environment variables, and argv[0] chosen with `exec -a`.

use crate::common;

use std::ffi::OsString;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Ran;
use serde_json::Value;

/// A test directory: `bin/` with fake programs, the log, the state (default shim directory).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Setup { dir };
        std::fs::create_dir_all(s.p("bin")).unwrap();
        s.program("bin/tool");
        s
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A fake program at `rel` that appends its path and arguments to `ran.txt`.
    fn program(&self, rel: &str) {
        let path = self.p(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let trace = self.p("ran.txt");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s' \"$0\" >> '{}'\nfor a in \"$@\"; do printf ' [%s]' \"$a\" >> '{}'; done\necho >> '{}'\necho ran \"$@\"\n",
                trace.display(),
                trace.display(),
                trace.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// What the fake programs recorded, one line per run.
    fn ran(&self) -> Vec<String> {
        std::fs::read_to_string(self.p("ran.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn path_of(&self, entries: &[&str]) -> OsString {
        let abs: Vec<PathBuf> = entries
            .iter()
            .map(|e| {
                if e.is_empty() || !e.starts_with('@') {
                    PathBuf::from(e)
                } else {
                    self.p(&e[1..])
                }
            })
            .collect();
        std::env::join_paths(abs).unwrap()
    }

    /// `program` (a shim, or gate) with the test's environment and `PATH`.
    fn cmd(&self, program: impl AsRef<Path>, path: &OsString) -> Command {
        let mut c = Command::new(program.as_ref());
        c.env_clear()
            .env("XDG_STATE_HOME", self.p("state"))
            .env("XDG_CONFIG_HOME", self.p("config"))
            .env("HOME", self.p("home"))
            .env("GATE_LOG", self.p("audit.jsonl"))
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs `program` with `args` under `path`.
    fn go(&self, program: impl AsRef<Path>, path: &OsString, args: &[&str]) -> Ran {
        let mut c = self.cmd(program, path);
        c.args(args);
        Ran::of(c)
    }

    fn gate(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(common::bin(), &self.path_of(&["@bin", "/usr/bin", "/bin"]));
        c.args(args);
        c
    }

    fn install(&self, names: &[&str]) -> PathBuf {
        let dir = self.p("shims");
        let mut c = self.gate(&["shim", "install", "--dir"]);
        c.arg(&dir).args(names);
        Ran::of(c).status(0);
        dir
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.p("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn decisions(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["kind"] == "decision")
            .collect()
    }

    fn policy(&self, yaml: &str) -> PathBuf {
        let p = self.p("policy.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }
}

fn canonical_gate() -> PathBuf {
    std::fs::canonicalize(common::bin()).unwrap()
}

const DENY_DANGER: &str = "version: 1\nrules:\n  - name: no-danger\n    match: { program: tool, args: [danger] }\n    decision: deny\n    message: not that\n";

#[test]
fn install_makes_symlinks_to_gate_and_says_how_to_put_them_on_path() {
    let s = Setup::new();
    let dir = s.p("shims");
    let mut c = s.gate(&["shim", "install", "--dir"]);
    c.arg(&dir).args(["tool", "other"]);
    let r = Ran::of(c);
    r.status(0);
    assert!(
        r.stdout
            .contains(&format!("export PATH={}:\"$PATH\"", dir.display())),
        "{}",
        r.stdout
    );
    for n in ["tool", "other"] {
        let link = dir.join(n);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_link(&link).unwrap(), canonical_gate());
    }
    assert!(dir.join(".gate-shims").is_file(), "the directory is marked");
    // Again: nothing changes, nothing fails.
    let mut c = s.gate(&["shim", "install", "--dir"]);
    c.arg(&dir).arg("tool");
    Ran::of(c).status(0).stderr_has("already a shim");
}

#[test]
fn default_dir_is_shims_in_the_state_directory() {
    let s = Setup::new();
    Ran::of(s.gate(&["shim", "install", "tool"])).status(0);
    let link = s.p("state/gate/shims/tool");
    assert_eq!(std::fs::read_link(&link).unwrap(), canonical_gate());
    let r = Ran::of(s.gate(&["shim", "list"]));
    r.status(0);
    assert!(r.stdout.contains("tool"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("shadows {}", s.p("bin/tool").display())),
        "{}",
        r.stdout
    );
}

#[test]
fn list_json_names_target_and_shadowed_program() {
    let s = Setup::new();
    let dir = s.install(&["tool", "missing-prog"]);
    let mut c = s.gate(&["shim", "list", "--json", "--dir"]);
    c.arg(&dir);
    let r = Ran::of(c);
    r.status(0);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let shims = v["shims"].as_array().unwrap();
    assert_eq!(shims.len(), 2);
    let tool = shims.iter().find(|x| x["name"] == "tool").unwrap();
    assert_eq!(tool["kind"], "shim");
    assert_eq!(tool["target"], canonical_gate().display().to_string());
    assert_eq!(tool["shadows"], s.p("bin/tool").display().to_string());
    let missing = shims.iter().find(|x| x["name"] == "missing-prog").unwrap();
    assert_eq!(missing["shadows"], Value::Null);
}

#[test]
fn install_never_replaces_a_file_gate_did_not_make() {
    let s = Setup::new();
    let dir = s.p("shims");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tool"), "mine").unwrap();
    let mut c = s.gate(&["shim", "install", "--dir"]);
    c.arg(&dir).arg("tool");
    Ran::of(c).status(1).stderr_has("is not a gate shim");
    assert_eq!(std::fs::read_to_string(dir.join("tool")).unwrap(), "mine");
}

#[test]
fn remove_deletes_only_links_to_gate() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    // Not gate's: a real program, and a symlink to something else.
    std::fs::write(dir.join("mine"), "x").unwrap();
    symlink("/bin/sh", dir.join("sh")).unwrap();
    for foreign in ["mine", "sh"] {
        let mut c = s.gate(&["shim", "remove", "--dir"]);
        c.arg(&dir).arg(foreign);
        Ran::of(c).status(1).stderr_has("not a gate shim");
        assert!(std::fs::symlink_metadata(dir.join(foreign)).is_ok());
    }
    let mut c = s.gate(&["shim", "remove", "--dir"]);
    c.arg(&dir).arg("tool");
    Ran::of(c).status(0);
    assert!(std::fs::symlink_metadata(dir.join("tool")).is_err());
    let mut c = s.gate(&["shim", "remove", "--dir"]);
    c.arg(&dir).arg("tool");
    Ran::of(c).status(1).stderr_has("no shim `tool`");
}

#[test]
fn names_that_are_paths_or_options_are_refused() {
    let s = Setup::new();
    for bad in ["../escape", "a/b", ".hidden", "gate", "..", "-x"] {
        let mut c = s.gate(&["shim", "install", "--dir"]);
        c.arg(s.p("shims")).arg("--").arg(bad);
        Ran::of(c).status(2).stderr_has("cannot be a shim");
    }
    assert!(!s.p("escape").exists());
}

#[test]
fn a_shim_runs_the_real_program_and_records_that_a_shim_was_used() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    let path = s.path_of(&["@shims", "@bin", "/usr/bin", "/bin"]);
    let mut c = s.cmd(dir.join("tool"), &path);
    // gate's own options after a shim's name are the program's arguments.
    c.args(["a b", "--policy", "x", "--", "--help"]);
    let r = Ran::of(c);
    r.status(0);
    assert_eq!(r.stdout, "ran a b --policy x -- --help\n");
    assert_eq!(
        s.ran(),
        [format!(
            "{} [a b] [--policy] [x] [--] [--help]",
            s.p("bin/tool").display()
        )]
    );
    let d = s.decisions();
    assert_eq!(d.len(), 1);
    let cmd = &d[0]["request"]["command"];
    assert_eq!(cmd["argv"][0], "tool", "classified by the program's name");
    assert_eq!(cmd["executable"], s.p("bin/tool").display().to_string());
    assert_eq!(
        cmd["shim"]["invoked_as"],
        dir.join("tool").display().to_string()
    );
    // `gate log verify` accepts the new member.
    Ran::of(s.gate(&["log", "verify"])).status(0);
}

#[test]
fn a_shim_is_gated_exactly_as_the_run_form() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    let pol = s.policy(DENY_DANGER);
    let path = s.path_of(&["@shims", "@bin", "/usr/bin", "/bin"]);
    let mut c = s.cmd(dir.join("tool"), &path);
    c.env("GATE_POLICY", &pol).arg("danger");
    Ran::of(c).status(77).stderr_has("not that");
    assert!(s.ran().is_empty(), "nothing ran");
    let mut c = s.cmd(common::bin(), &path);
    c.env("GATE_POLICY", &pol).args(["--", "tool", "danger"]);
    Ran::of(c).status(77).stderr_has("not that");
    let d = s.decisions();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0]["request"]["digest"], d[1]["request"]["digest"],
        "same request"
    );
    assert_eq!(d[0]["decision"]["outcome"], "denied");
    assert!(d[1]["request"]["command"].get("shim").is_none());
}

#[test]
fn the_run_form_with_shims_on_path_runs_the_real_program_once() {
    let s = Setup::new();
    s.install(&["tool"]);
    let path = s.path_of(&["@shims", "@bin", "/usr/bin", "/bin"]);
    let mut c = s.cmd(common::bin(), &path);
    c.args(["--", "tool", "x"]);
    Ran::of(c).status(0);
    assert_eq!(s.ran().len(), 1);
    assert_eq!(
        s.decisions().len(),
        1,
        "gated once, not again through the shim"
    );
    assert_eq!(
        s.decisions()[0]["request"]["command"]["executable"],
        s.p("bin/tool").display().to_string()
    );
}

#[test]
fn the_run_form_still_runs_gate_itself_by_name() {
    let s = Setup::new();
    // `gate` on PATH is this binary: a link to it named `gate` is gate, not something to pass over.
    std::fs::create_dir_all(s.p("gbin")).unwrap();
    symlink(common::bin(), s.p("gbin/gate")).unwrap();
    let path2 = s.path_of(&["@gbin", "@bin", "/usr/bin", "/bin"]);
    let r = s.go(common::bin(), &path2, &["--", "gate", "--version"]);
    r.status(0);
    assert!(r.stdout.starts_with("gate "), "{}", r.stdout);
}

#[test]
fn attack_shim_dir_twice_on_path_and_a_second_shim_dir_later() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    let mut c = s.gate(&["shim", "install", "--dir"]);
    c.arg(s.p("shims2")).arg("tool");
    Ran::of(c).status(0);
    let path = s.path_of(&[
        "@shims", "@shims", "@shims2", "@shims", "@bin", "@shims2", "/bin",
    ]);
    let r = s.go(dir.join("tool"), &path, &["x"]);
    r.status(0);
    assert_eq!(s.ran().len(), 1);
    assert_eq!(
        s.decisions().len(),
        1,
        "one gate, no loop through the other shims"
    );
    // With nothing real anywhere: 127 at once, naming what was passed over.
    std::fs::remove_file(s.p("bin/tool")).unwrap();
    let r = s.go(dir.join("tool"), &path, &["x"]);
    r.status(127).stderr_has("command not found");
    assert!(r.stderr.contains("shims2/tool"), "{}", r.stderr);
    assert_eq!(s.decisions().len(), 1, "nothing asked, nothing run");
}

#[test]
fn attack_real_program_is_itself_a_link_to_gate() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    // An unmarked directory whose `tool` is a symlink chain to gate, before the real one.
    std::fs::create_dir_all(s.p("evil")).unwrap();
    symlink(common::bin(), s.p("evil/gate-link")).unwrap();
    symlink(s.p("evil/gate-link"), s.p("evil/tool")).unwrap();
    // And a hard link, where the file system allows one.
    std::fs::create_dir_all(s.p("evil2")).unwrap();
    let hard = std::fs::hard_link(common::bin(), s.p("evil2/tool")).is_ok();
    let path = s.path_of(&["@shims", "@evil", "@evil2", "@bin", "/bin"]);
    s.go(dir.join("tool"), &path, &["y"]).status(0);
    assert_eq!(s.ran().len(), 1);
    assert_eq!(s.decisions().len(), 1);
    // Run through the link itself: still the real program, once.
    s.go(s.p("evil/tool"), &path, &["z"]).status(0);
    if hard {
        s.go(s.p("evil2/tool"), &path, &["w"]).status(0);
    }
    assert_eq!(s.ran().len(), if hard { 3 } else { 2 });
    assert!(
        s.ran()
            .iter()
            .all(|l| l.starts_with(&s.p("bin/tool").display().to_string()))
    );
    // Only links to gate on PATH: 127, no loop.
    let path = s.path_of(&["@shims", "@evil", "@evil2"]);
    s.go(dir.join("tool"), &path, &[])
        .status(127)
        .stderr_has("command not found");
}

#[test]
fn empty_and_relative_path_entries_are_read_from_the_working_directory() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    std::fs::remove_file(s.p("bin/tool")).unwrap();
    s.program("work/tool");
    // An empty entry is the working directory, as the shell reads PATH.
    let mut c = s.cmd(dir.join("tool"), &s.path_of(&["@shims", "", "/bin"]));
    c.current_dir(s.p("work"));
    Ran::of(c).status(0);
    // A relative entry is taken from the working directory too.
    let mut c = s.cmd(dir.join("tool"), &s.path_of(&["@shims", "work", "/bin"]));
    c.current_dir(s.dir.path());
    Ran::of(c).status(0);
    let d = s.decisions();
    assert_eq!(d.len(), 2);
    for r in &d {
        assert_eq!(
            r["request"]["command"]["executable"],
            s.p("work/tool").display().to_string(),
            "recorded as an absolute path"
        );
    }
}

#[test]
fn attack_gate_environment_cannot_make_a_shim_skip_gating() {
    let s = Setup::new();
    let dir = s.install(&["tool"]);
    let sys = s.p("system");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::set_permissions(&sys, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(sys.join("deny.yaml"), DENY_DANGER).unwrap();
    std::fs::set_permissions(
        sys.join("deny.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let allow_all = s.policy("version: 1\ndefaults: { decision: allow }\nrules: []\n");
    let empty = s.p("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let path = s.path_of(&["@shims", "@bin", "/usr/bin", "/bin"]);
    let allow_all = allow_all.display().to_string();
    let empty = empty.display().to_string();
    let tries: &[(&str, &str)] = &[
        ("GATE_POLICY", &allow_all),
        ("GATE_POLICY", "/dev/null"),
        ("GATE_POLICY", ""),
        ("GATE_SYSTEM_POLICY_DIR", &empty),
        ("GATE_LOG", "/dev/null"),
        ("GATE_SPOOL", &empty),
        ("GATE_SERVER", "http://127.0.0.1:9"),
        ("GATE_TOKEN", "gate_x"),
        ("GATE_AGENT", "gate"),
        ("GATE_REASON", "approved already"),
        ("GATE_SHIM", "0"),
        ("GATE_NO_SHIM", "1"),
        ("GATE_BYPASS", "1"),
        ("GATE_TEST_PANIC", "dispatch"),
    ];
    // The control: through the same wrapper, the system tier denies, and a harmless command runs.
    let mut c = s.cmd(dir.join("tool"), &path);
    c.arg("danger");
    let r = Ran::from_output(common::system_tier(&c, &sys).output().unwrap());
    r.status(77).stderr_has("not that");
    let mut c = s.cmd(dir.join("tool"), &path);
    c.arg("safe");
    Ran::from_output(common::system_tier(&c, &sys).output().unwrap()).status(0);
    assert_eq!(s.ran().len(), 1);
    std::fs::remove_file(s.p("ran.txt")).unwrap();
    for (k, v) in tries {
        let mut c = s.cmd(dir.join("tool"), &path);
        c.env(k, v).arg("danger");
        let r = Ran::from_output(common::system_tier(&c, &sys).output().unwrap());
        assert_ne!(r.status, 0, "{k}={v}: {}", r.stderr);
        assert!(s.ran().is_empty(), "{k}={v} let the command run");
    }
}

#[test]
fn attack_exec_a_gives_nothing_the_run_form_does_not() {
    let s = Setup::new();
    let pol = s.policy(DENY_DANGER);
    let path = s.path_of(&["@bin", "/usr/bin", "/bin"]);
    // `exec -a tool gate danger`: the same as `gate -- tool danger`.
    for argv0 in ["tool", "/somewhere/else/tool"] {
        let mut c = s.cmd(common::bin(), &path);
        c.arg0(argv0).env("GATE_POLICY", &pol).arg("danger");
        Ran::of(c).status(77).stderr_has("not that");
    }
    assert!(s.ran().is_empty());
    let d = s.decisions();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[1]["request"]["command"]["shim"]["invoked_as"],
        "/somewhere/else/tool"
    );
    // A shim called `gate` is gate's own command line, which anyone could run anyway.
    let dir = s.install(&["tool"]);
    let mut c = s.cmd(dir.join("tool"), &path);
    c.arg0("gate").arg("--version");
    Ran::of(c).status(0);
    // Names that are no program: 127, nothing runs.
    for argv0 in ["-h", "..", "gate-nonexistent-xyz", "\u{1b}[31m"] {
        let mut c = s.cmd(common::bin(), &path);
        c.arg0(argv0).arg("x");
        let r = Ran::of(c);
        r.status(127);
        assert!(!r.stderr.contains('\u{1b}'), "escaped: {:?}", r.stderr);
    }
    assert!(s.ran().is_empty());
}
