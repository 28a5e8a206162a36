//! The files that install and deploy gate say what they claim: LICENSE is the license
//! Cargo.toml names, the systemd unit is hardened (systemd's own verifier and exposure score
//! agree) and its `ExecStart` starts a server, and the Dockerfile builds in two stages, runs as a
//! user who is not root with its state on a volume, and its command starts a server. Building
//! the image is not part of the suite (it needs a Docker daemon and a release build); what the
//! image runs is this binary with these arguments, which is.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Ran;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

const UNIT: &str = "docs/deploy/gate-serve.service";

#[test]
fn license_file_is_the_license_cargo_toml_names() {
    let cargo = read("Cargo.toml");
    let license = cargo
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .expect("Cargo.toml names a license")
        .trim_matches('"');
    assert_eq!(license, "Apache-2.0");
    let text = read("LICENSE");
    for part in [
        "Apache License\n                           Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ] {
        assert!(text.contains(part), "LICENSE lacks {part:?}");
    }
    // The full text, not a stub or a pointer to it.
    assert!(text.len() > 11_000, "LICENSE holds {} bytes", text.len());
}

/// `key=value` settings of a unit's `[Service]` section, in order (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') && !line.is_empty() {
            let (k, v) = line.split_once('=').expect("key=value");
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_has_every_hardening_setting() {
    let settings = service_settings(&read(UNIT));
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, want) in [
        ("User", "gate"),
        ("StateDirectory", "gate"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
    ] {
        assert!(
            get(key).contains(&want),
            "{UNIT}: `{key}={want}` missing (has {:?})",
            get(key)
        );
    }
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1);
    assert!(
        exec[0].contains("--listen 127.0.0.1:8700"),
        "the unit listens on loopback only (a TLS proxy goes in front): {}",
        exec[0]
    );
}

/// The unit with the binary under test in place of /usr/local/bin/gate.
fn unit_for_this_binary(dir: &Path) -> PathBuf {
    let unit = read(UNIT).replace("/usr/local/bin/gate", common::bin());
    let p = dir.join("gate-serve.service");
    std::fs::write(&p, unit).unwrap();
    p
}

/// systemd's own checks, offline: the unit parses with no warning, and its exposure score
/// (`systemd-analyze security`, 0 = locked down, 10 = exposed) is at most 2.0.
#[test]
fn systemd_unit_passes_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_binary(dir.path());
    let mut c = Command::new("systemd-analyze");
    c.args(["verify", "--man=no"]).arg(&unit);
    let r = Ran::of(c);
    r.status(0);
    assert_eq!(r.stderr, "", "systemd-analyze verify warns");
    let mut c = Command::new("systemd-analyze");
    c.args(["security", "--offline=true", "--no-pager"])
        .arg(&unit);
    let r = Ran::of(c);
    let all = format!("{}{}", r.stdout, r.stderr);
    let score: f64 = all
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gate-serve.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{all}"));
    assert!(score <= 2.0, "exposure {score}:\n{all}");
}

/// Runs `argv` (a server command line from a deploy file, with its paths moved into `home`)
/// and waits until it listens; then stops it.
#[track_caller]
fn starts_a_server(home: &Path, argv: &[String], env: &[(String, String)]) {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(home);
    for (k, v) in env {
        c.env(k, v);
    }
    let s = common::spawn_server(c);
    let state = home.join("state/gate");
    assert!(
        state.join("server.db").is_file(),
        "the database is in the state directory"
    );
    let mut server =
        common::process::Server::adopt(s, home, state.join("server.db"), state.join("x"));
    // Answering means it serves, and that its SIGTERM handler is in place (it is installed as
    // the accept loop starts, just after "listening on" is printed).
    assert_eq!(healthz(&server.addr), "ok");
    assert_eq!(server.stop(), 0, "a graceful stop on SIGTERM");
}

/// The body of `GET /healthz`.
fn healthz(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn server_policy(home: &Path) -> PathBuf {
    let p = home.join("server-policy.yaml");
    std::fs::write(&p, "version: 1\ngroups:\n  sre: [bob, carol]\n").unwrap();
    p
}

/// The unit's `ExecStart` and `Environment`, with systemd's `%S` (the state root) in a temp
/// directory: gate accepts every flag and serves.
#[test]
fn systemd_unit_exec_start_starts_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let policy = server_policy(home);
    let state_root = home.join("state");
    std::fs::create_dir_all(state_root.join("gate")).unwrap();
    let subst = |s: &str| {
        s.replace("%S", &state_root.to_string_lossy())
            .replace("/usr/local/bin/gate", common::bin())
            .replace("/etc/gate/server-policy.yaml", &policy.to_string_lossy())
            .replace("127.0.0.1:8700", "127.0.0.1:0")
    };
    let settings = service_settings(&read(UNIT));
    let exec = &settings.iter().find(|(k, _)| k == "ExecStart").unwrap().1;
    let argv: Vec<String> = subst(exec).split_whitespace().map(str::to_owned).collect();
    let env: Vec<(String, String)> = settings
        .iter()
        .filter(|(k, _)| k == "Environment")
        .flat_map(|(_, v)| v.split_whitespace().map(&subst).collect::<Vec<_>>())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    starts_a_server(home, &argv, &env);
}

/// The Dockerfile's instructions, continuation lines joined.
fn docker_instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if cur.is_empty() && (line.trim_start().starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(line);
                let (k, v) = cur.trim().split_once(' ').unwrap();
                out.push((k.to_owned(), v.trim().to_owned()));
                cur.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_builds_in_two_stages_and_runs_unprivileged_with_a_state_volume() {
    let ins = docker_instructions();
    let all = |k: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let from = all("FROM");
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    assert!(from[0].starts_with("rust:") && from[0].ends_with(" AS build"));
    assert!(from[1].starts_with("debian:") && from[1].contains("slim"));
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.starts_with("--from=build ") && c.ends_with(" /usr/local/bin/gate")),
        "only the binary comes from the builder"
    );
    let user = all("USER");
    assert_eq!(user.len(), 1);
    assert!(user[0] != "root" && user[0] != "0", "runs as {user:?}");
    assert_eq!(all("VOLUME"), ["/var/lib/gate"]);
    // The build context leaves out the build directory (gigabytes) and the repository.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
    assert_eq!(all("EXPOSE"), ["8700"]);
    let cmd: Vec<String> = serde_json::from_str(all("CMD")[0]).expect("CMD is a JSON array");
    assert!(cmd.windows(2).any(|w| w == ["--listen", "0.0.0.0:8700"]));
    for path in ["--db", "--audit-log"] {
        let at = cmd.iter().position(|a| a == path).unwrap();
        assert!(
            cmd[at + 1].starts_with("/var/lib/gate/"),
            "{path} is on the volume"
        );
    }
}

/// What the image runs (ENTRYPOINT + CMD, with ENV), with the volume and the mounted policy in
/// a temp directory and a loopback port: gate accepts every flag and serves.
#[test]
fn dockerfile_command_starts_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let policy = server_policy(home);
    let volume = home.join("state/gate");
    std::fs::create_dir_all(&volume).unwrap();
    let subst = |s: &str| {
        s.replace("/var/lib/gate", &volume.to_string_lossy())
            .replace("/var/lib", &home.join("state").to_string_lossy())
            .replace("/etc/gate/server-policy.yaml", &policy.to_string_lossy())
            .replace("0.0.0.0:8700", "127.0.0.1:0")
    };
    let ins = docker_instructions();
    let json = |k: &str| -> Vec<String> {
        let v = &ins.iter().find(|(key, _)| key == k).unwrap().1;
        serde_json::from_str(v).unwrap()
    };
    let mut argv = json("ENTRYPOINT");
    assert_eq!(argv, ["gate"]);
    argv[0] = common::bin().to_owned();
    argv.extend(json("CMD").iter().map(|a| subst(a)));
    let env: Vec<(String, String)> = ins
        .iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, v)| v.split_whitespace().map(&subst).collect::<Vec<_>>())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    starts_a_server(home, &argv, &env);
}
