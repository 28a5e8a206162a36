//! `gate policy lint` and `gate policy test`.

use std::path::PathBuf;

use crate::config::Env;
use crate::error::Error;
use crate::output::{Output, Tone};
use crate::policy::{Policy, check_file, merge, testing};

fn files_or_configured(
    env: &Env,
    files: Vec<PathBuf>,
    cli: &[PathBuf],
) -> Result<Vec<PathBuf>, Error> {
    let files = if files.is_empty() {
        env.policy_files(cli)?
    } else {
        files
    };
    if files.is_empty() {
        return Err(Error::config_hint(
            "no policy files to check",
            "name files, or set `GATE_POLICY` / `--policy`",
        ));
    }
    Ok(files)
}

/// Checks every file and the merge of all of them; reports all problems at once.
pub fn lint(env: &Env, out: &Output, files: Vec<PathBuf>, cli: &[PathBuf]) -> Result<i32, Error> {
    let configured = files.is_empty();
    let files = files_or_configured(env, files, cli)?;
    // The configured files are checked as a run loads them, each in its trust tier.
    let loaded = if configured {
        Policy::load_sources(&env.policy_sources(cli)?)
    } else {
        Policy::load(&files)
    };
    match loaded {
        Ok(p) => {
            for w in crate::approval::teams::lint(&p) {
                out.warn(&w);
            }
            out.info(&format!(
                "{} file{} OK, {} rule{}",
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                p.rules.len(),
                if p.rules.len() == 1 { "" } else { "s" }
            ));
            Ok(0)
        }
        // Policy diagnostics are reported, coloured when colour is on, by `Output::report`.
        Err(e) => Err(e.into()),
    }
}

/// Runs each file's `tests:` against that file alone.
pub fn test(env: &Env, out: &Output, files: Vec<PathBuf>, cli: &[PathBuf]) -> Result<i32, Error> {
    let files = files_or_configured(env, files, cli)?;
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut problems = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read policy file `{}`: {e}", path.display()))
        })?;
        let file = match check_file(path, &source) {
            Ok(f) => f,
            Err(d) => {
                problems.extend(d);
                continue;
            }
        };
        let policy = match merge(vec![file.clone()]) {
            Ok(p) => p,
            Err(d) => {
                problems.extend(d);
                continue;
            }
        };
        if file.tests.is_empty() {
            out.warn(&format!("{}: no `tests:` cases", path.display()));
        }
        for case in testing::run_cases(&file, &policy) {
            let cmd = crate::request::shell_join(&case.run);
            match case.failure {
                None => {
                    passed += 1;
                    if out.verbose > 0 {
                        out.data(&format!(
                            "{}    {}:{}  {cmd}",
                            out.paint(Tone::Good, "ok"),
                            case.file.display(),
                            case.line
                        ));
                    }
                }
                Some(why) => {
                    failed += 1;
                    out.data(&format!(
                        "{}  {}:{}  {cmd}\n      {why}",
                        out.paint(Tone::Bad, "FAIL"),
                        case.file.display(),
                        case.line
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Policy(problems));
    }
    let summary = format!("{passed} passed, {failed} failed");
    let tone = if failed > 0 { Tone::Bad } else { Tone::Good };
    out.data(&out.paint(tone, &summary));
    Ok(if failed > 0 { 1 } else { 0 })
}
