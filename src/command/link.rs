//! The other names a program answers to: a program reached through a symlink (`myaws → aws`)
//! is classified under both names (DESIGN §5), so a link in the requester's own directory is
//! never a way around a rule on the real program.
//!
//! The same [`Resolver`] answers the other questions only the machine can: which AWS CLI
//! aliases exist (`~/.aws/cli/alias`), and which code-running variables are set in the
//! environment the command inherits. Only the file system is read; the caller supplies `PATH`,
//! the home directory, the working directory and those variables' names (this layer reads no
//! environment).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Multi-call binaries choose what to be by the name they were called under: their own name
/// adds nothing (`ls → busybox` is `ls`).
const MULTI_CALL: &[&str] = &["busybox", "toybox", "coreutils"];

/// Finds programs the way `execvp` does, then follows symlinks.
#[derive(Debug, Clone)]
pub struct Resolver {
    path: Option<OsString>,
    home: Option<PathBuf>,
    cwd: PathBuf,
    /// Variables set in the environment commands start with that can make them run other code
    /// ([`super::wrap::CODE_ENV`]), with their values.
    code_env: Vec<(String, String)>,
}

impl Resolver {
    pub fn new(path: Option<OsString>, home: Option<PathBuf>, cwd: impl Into<PathBuf>) -> Self {
        Resolver {
            path,
            home,
            cwd: cwd.into(),
            code_env: Vec::new(),
        }
    }

    /// The variables of [`super::wrap::CODE_ENV`] that are set where the command runs.
    pub fn with_code_env(mut self, vars: Vec<(String, String)>) -> Self {
        self.code_env = vars;
        self
    }

    /// The first variable set in the environment that makes `program` run other code.
    pub fn code_env_for(&self, program: &str) -> Option<&str> {
        self.code_env
            .iter()
            .find(|(n, v)| super::wrap::env_affects(n, v, program))
            .map(|(n, _)| n.as_str())
    }

    /// Whether an `aws` command with these positional words (service, operation, ...) names
    /// an alias from the AWS CLI's alias file (`~/.aws/cli/alias`): a top-level alias, or one in
    /// a `[command SERVICE]` section. An alias runs whatever the file says, `!`-aliases any
    /// shell command, so gate cannot read the command from its words.
    pub fn aws_alias(&self, words: &[String]) -> Option<String> {
        let home = self.home.as_ref()?;
        let text = std::fs::read_to_string(home.join(".aws/cli/alias")).ok()?;
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.split_whitespace().collect::<Vec<_>>().join(" ");
                continue;
            }
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            let name = name.trim();
            let hit = match section.strip_prefix("command ") {
                None if section == "toplevel" => words.first().is_some_and(|w| w == name),
                Some(service) => {
                    words.first().is_some_and(|w| w == service)
                        && words.get(1).is_some_and(|w| w == name)
                }
                None => false,
            };
            if hit {
                return Some(name.to_owned());
            }
        }
        None
    }

    /// The basenames of every link on the way from `argv0` to the file it runs, other than
    /// `argv0`'s own (empty when it is no symlink or cannot be found).
    pub fn other_names(&self, argv0: &str) -> Vec<String> {
        let Some(start) = self.locate(argv0) else {
            return Vec::new();
        };
        let own = argv0.rsplit('/').next().unwrap_or(argv0);
        let mut names: Vec<String> = Vec::new();
        let mut add = |p: &Path| {
            if let Some(n) = p.file_name().and_then(|n| n.to_str())
                && n != own
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_owned());
            }
        };
        // Each link of the chain (`myaws → aws → /opt/aws/bin/aws-v2`), then the final file.
        let mut at = start.clone();
        for _ in 0..40 {
            let Ok(target) = std::fs::read_link(&at) else {
                break;
            };
            let next = match at.parent() {
                Some(dir) if target.is_relative() => dir.join(&target),
                _ => target,
            };
            add(&next);
            at = next;
        }
        if let Ok(real) = std::fs::canonicalize(&start) {
            add(&real);
        }
        names.retain(|n| !MULTI_CALL.contains(&n.as_str()));
        names
    }

    /// The file `argv0` names: a path with a `/` (relative to the working directory, `~/`
    /// to the home directory), or the first match on `PATH`.
    fn locate(&self, argv0: &str) -> Option<PathBuf> {
        if argv0.is_empty() {
            return None;
        }
        if let Some(rest) = argv0.strip_prefix("~/") {
            return self.home.as_ref().map(|h| h.join(rest));
        }
        if argv0.contains('/') {
            return Some(self.cwd.join(argv0));
        }
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|dir| {
                // An empty PATH entry is the working directory.
                let dir = if dir.as_os_str().is_empty() {
                    self.cwd.clone()
                } else {
                    self.cwd.join(dir)
                };
                dir.join(argv0)
            })
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn aws_cli_aliases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws/cli")).unwrap();
        std::fs::write(
            dir.path().join(".aws/cli/alias"),
            "[toplevel]\np = iam put-role-policy\nsh = !f() { aws iam x; }; f\n\n[command  ec2]\nkill = terminate-instances\n",
        )
        .unwrap();
        let r = Resolver::new(None, Some(dir.path().to_path_buf()), "/");
        let w = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(r.aws_alias(&w("p --role-name x")), Some("p".into()));
        assert_eq!(r.aws_alias(&w("sh")), Some("sh".into()));
        assert_eq!(r.aws_alias(&w("ec2 kill")), Some("kill".into()));
        assert_eq!(r.aws_alias(&w("kill")), None);
        assert_eq!(r.aws_alias(&w("iam list-roles")), None);
        let none = Resolver::new(None, Some("/nonexistent".into()), "/");
        assert_eq!(none.aws_alias(&w("p")), None);
    }

    #[test]
    fn every_name_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/aws-v2"), "").unwrap();
        symlink("aws-v2", d.join("bin/aws")).unwrap();
        symlink(d.join("bin/aws"), d.join("myaws")).unwrap();
        symlink("/bin/busybox-nonexistent", d.join("ls")).unwrap();
        let r = Resolver::new(
            Some(d.as_os_str().to_owned()),
            Some(d.to_path_buf()),
            d.join("bin"),
        );
        assert_eq!(r.other_names("myaws"), ["aws", "aws-v2"]);
        assert_eq!(r.other_names("../myaws"), ["aws", "aws-v2"]);
        assert_eq!(r.other_names("~/myaws"), ["aws", "aws-v2"]);
        assert_eq!(
            r.other_names(&d.join("myaws").display().to_string()),
            ["aws", "aws-v2"]
        );
        assert_eq!(r.other_names("aws"), Vec::<String>::new(), "not on PATH");
        assert_eq!(r.other_names("nothing-here"), Vec::<String>::new());
        assert_eq!(r.other_names("ls"), ["busybox-nonexistent"]);
        symlink("/bin/busybox", d.join("cp")).unwrap();
        assert_eq!(r.other_names("cp"), Vec::<String>::new(), "multi-call");
    }
}
