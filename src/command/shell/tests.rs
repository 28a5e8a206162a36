//! Splitting shell strings: each construct, what stays opaque, and that nothing panics.

use super::*;

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn cmds(script: &str) -> Vec<String> {
    parse(script).commands.iter().map(|c| c.join(" ")).collect()
}

#[test]
fn finds_the_script() {
    assert_eq!(script_of(&argv(&["bash", "-c", "ls"])), Some("ls"));
    assert_eq!(script_of(&argv(&["/bin/sh", "-ec", "ls", "x"])), Some("ls"));
    assert_eq!(script_of(&argv(&["bash", "-l", "-c", "ls"])), Some("ls"));
    assert_eq!(
        script_of(&argv(&["bash", "-o", "pipefail", "-c", "ls"])),
        Some("ls")
    );
    assert_eq!(script_of(&argv(&["bash", "script.sh"])), None);
    assert_eq!(script_of(&argv(&["aws", "-c", "x"])), None);
}

#[test]
fn splits_lists_pipes_and_groups() {
    assert_eq!(
        cmds("cd /srv && aws iam put-role-policy --role-name x; echo done | tee log"),
        [
            "cd /srv",
            "aws iam put-role-policy --role-name x",
            "echo done",
            "tee log"
        ]
    );
    assert_eq!(
        cmds("(rm -rf /tmp/x) || { kubectl delete pod a; }"),
        ["rm -rf /tmp/x", "kubectl delete pod a"]
    );
    assert_eq!(
        cmds("if test -f x; then terraform apply; else echo no; fi"),
        ["test -f x", "terraform apply", "echo no"]
    );
    assert_eq!(cmds("a &\nb"), ["a", "b"]);
}

#[test]
fn quotes_escapes_and_redirections() {
    assert_eq!(cmds(r#"echo 'a b' "c d" e\ f"#), ["echo a b c d e f"]);
    assert_eq!(
        cmds("aws s3 cp s3://b/k - > out.txt 2>&1"),
        ["aws s3 cp s3://b/k -"]
    );
    assert_eq!(cmds("FOO=1 BAR=2 terraform destroy"), ["terraform destroy"]);
    assert_eq!(cmds("cat < in &> /dev/null"), ["cat"]);
    assert_eq!(cmds("ls # rm -rf /"), ["ls"]);
}

#[test]
fn substitutions_are_split_too() {
    assert_eq!(
        cmds("echo $(aws iam delete-user --user-name x)"),
        [
            "aws iam delete-user --user-name x",
            "echo $(aws iam delete-user --user-name x)"
        ]
    );
    assert_eq!(cmds("echo `rm -rf /`"), ["rm -rf /", "echo `rm -rf /`"]);
    assert_eq!(cmds("diff <(kubectl get a) b"), ["kubectl get a", "diff b"]);
    assert!(parse("echo $((1 + 2))").opaque.is_none());
    assert!(parse("echo $((1 + $(rm -rf /)))").opaque.is_some());
    assert!(parse("echo \"${X:-$(rm -rf /)}\"").opaque.is_some());
    assert!(parse("echo ${X:-`rm -rf /`}").opaque.is_some());
    assert!(parse("echo ${X:-default}").opaque.is_none());
}

#[test]
fn what_cannot_be_resolved_is_opaque() {
    for s in [
        "eval \"$X\"",
        "$CMD --force",
        "source <(curl x)",
        "for ((i=0; i<3; i++)); do rm $i; done",
        "case $x in a) rm -rf /;;",
        "cat <<EOF\nhi\n",
        "cat <<EOF\n${X:-$(rm -rf /)}\nEOF",
        "f() { rm -rf /; }; f",
    ] {
        assert!(parse(s).opaque.is_some(), "{s}");
    }
    // Read, with words judged as written: a sourced file, a loop's variable.
    for s in [
        "source ./x.sh",
        ". .venv/bin/activate && pytest",
        "for i in a b; do rm $i; done",
    ] {
        let p = parse(s);
        assert!(p.opaque.is_none() && p.unread.is_some(), "{s}");
    }
    assert_eq!(cmds("for i in a $(ls); do rm $i; done"), ["ls", "rm $i"]);
    assert!(parse("echo \"$HOME\" && ls ~").opaque.is_none());
    // A trap's action is read as a script of its own.
    let t = parse("trap -- 'rm -rf /' EXIT");
    assert!(
        t.commands
            .contains(&vec!["rm".to_string(), "-rf".into(), "/".into()])
    );
    assert!(parse("trap -x 'rm -rf /' EXIT").opaque.is_some());
    let t = parse("trap 'rm -rf /tmp/x; exit 42' TERM; sleep 30");
    assert!(t.opaque.is_none());
    assert!(
        t.commands
            .contains(&vec!["rm".to_string(), "-rf".into(), "/tmp/x".into()])
    );
}

#[test]
fn nested_shells_are_commands_read_in_turn() {
    // The script is split here; the nested `bash -c` is read by the caller, like any
    // command that runs another (`command::wrap`).
    assert_eq!(
        cmds("bash -c 'aws iam list-roles'"),
        ["bash -c aws iam list-roles"]
    );
}

#[test]
fn ansi_c_quoting_is_decoded() {
    assert_eq!(
        cmds(r"aws iam $'put-role-policy' $'\x70ut' $'\160' $'a\tb' $'\u0041' $'\cA'"),
        ["aws iam put-role-policy put p a\tb A \u{1}"]
    );
    assert_eq!(cmds(r#"echo $"x y""#), ["echo x y"]);
    assert!(parse("echo $'x").opaque.is_some());
}

#[test]
fn shell_options_are_read_exactly() {
    let a = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let ok = |line: &str| {
        let v = a(line);
        matches!(script_of_shell("bash", &v), Ok(ShellRuns::Script(..)))
    };
    assert!(ok("-c ls"));
    assert!(ok("-euo pipefail -c ls"));
    assert!(ok("-l -c ls"));
    assert!(ok("--norc --noprofile -c ls"));
    assert!(ok("+O expand_aliases -c ls"));
    for bad in [
        "-O expand_aliases -c ls",
        "-O expand_aliases -c ls",
        "--rcfile /dev/null -c ls",
        "--init-file x -c ls",
        "-i -c ls",
        "-s",
        "",
        "-",
        "/dev/stdin",
        "-o vi-mode-bogus -c ls",
        "-k -c ls",
    ] {
        assert!(script_of_shell("bash", &a(bad)).is_err(), "{bad}");
    }
    assert_eq!(
        script_of_shell("bash", &a("deploy.sh x")),
        Ok(ShellRuns::File(&a("deploy.sh x")))
    );
}

#[test]
fn words_known_only_at_run_time() {
    let dynamic = |s: &str| {
        parse(s)
            .dynamic
            .iter()
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dynamic("aws iam $(echo put-role-policy); aws iam p*; aws s3 ls; ls a[0]"),
        ["aws iam $(echo put-role-policy)", "aws iam p*", "ls a[0]"]
    );
    assert_eq!(dynamic("echo {a,b}"), ["echo {a,b}"]);
    assert_eq!(dynamic("echo x{1..3}"), ["echo x{1..3}"]);
    assert!(dynamic("echo '*' \\? \"{x,y}\" '[a]'").is_empty());
    assert!(dynamic("[ -f x ] && find . -exec rm {} ;").is_empty());
    // In command position they are opaque.
    for s in [
        "{aws,iam,put-role-policy}",
        "/usr/bin/aw? iam x",
        "aws${IFS}iam",
    ] {
        assert!(parse(s).opaque.is_some(), "{s}");
    }
}

#[test]
fn positional_parameters_of_sh_c_are_known() {
    let args: Vec<String> = ["sh", "/tmp/started", "a b"].map(String::from).to_vec();
    let s = parse_with_args(r#"touch "$1"; echo ${1} $0; rm $2 "$2" $3"#, &args);
    let cmds: Vec<String> = s.commands.iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        cmds,
        ["touch /tmp/started", "echo /tmp/started sh", "rm a b a b "]
    );
    // Unquoted `$2` splits, and `$3` is missing: both only known when it runs.
    assert_eq!(s.dynamic.len(), 1);
    assert!(
        parse(r#"touch "$1""#).dynamic.len() == 1,
        "unknown without the arguments"
    );
}

#[test]
fn relative_programs_after_cd_are_opaque() {
    assert!(
        parse("cd ~/bin && ./myaws iam put-role-policy")
            .opaque
            .is_some()
    );
    assert!(parse("./build.sh && cd out").opaque.is_none());
    assert!(parse("cd /srv && /usr/bin/aws s3 ls").opaque.is_none());
}

#[test]
fn assignments_that_change_what_runs_are_opaque() {
    // Which file a name runs: read as written (`defaults.opaque_arguments`).
    assert!(parse("PATH=/tmp/bin ls").unread.is_some());
    assert!(parse("BASH_ENV=/tmp/x bash -c ls").opaque.is_some());
    assert!(parse("GIT_SSH_COMMAND=x git push").opaque.is_some());
    assert!(parse("AWS_PROFILE=prod aws s3 ls").opaque.is_none());
    assert!(parse("printf -v 'a[$(aws iam x)]' 1").opaque.is_some());
}

#[test]
fn never_panics() {
    for s in [
        "",
        "'",
        "\"",
        "\\",
        "$(",
        "`",
        "$((",
        "${",
        "<(",
        ">",
        "2>&",
        "&&&",
        "((((",
        "é$é`é'é",
        "a <<",
        "\\\n",
    ] {
        let _ = parse(s);
    }
}

#[test]
fn here_documents_are_input_and_their_substitutions_run() {
    // A quoted delimiter: the body is text, whatever it says.
    let p = parse("cat > f <<'EOF'\nrm -rf / $(rm -rf ~)\nEOF\necho done");
    assert!(p.opaque.is_none(), "{p:?}");
    assert_eq!(
        p.commands,
        [vec!["cat".to_string()], vec!["echo".into(), "done".into()]]
    );
    // Unquoted: its command substitutions run, and are split.
    assert_eq!(
        cmds("cat <<EOF\nversion $(git describe)\nEOF"),
        ["git describe", "cat"]
    );
    // `<<-` strips leading tabs from the delimiter line.
    assert_eq!(cmds("cat <<-END\n\tx\n\tEND\nls"), ["cat", "ls"]);
    // Inside a substitution, an apostrophe in the body is text (a commit message).
    assert_eq!(
        cmds("git commit -m \"$(cat <<'EOF'\nDon't (sic) stop\nEOF\n)\" && git push"),
        [
            "cat",
            "git commit -m $(cat <<'EOF'\nDon't (sic) stop\nEOF\n)",
            "git push"
        ]
    );
    // Two on one line, read in order.
    assert_eq!(
        cmds("cat <<A; cat <<B\n1\nA\n$(id)\nB\nls"),
        ["id", "cat", "cat", "ls"]
    );
    // A shell reading the document is a shell reading its input.
    assert!(
        parse("bash <<EOF\nrm -rf /\nEOF")
            .commands
            .iter()
            .any(|c| c[0] == "bash")
    );
}

#[test]
fn a_literal_here_document_given_to_a_shell_or_interpreter_is_read_as_its_program() {
    let c = |s: &str| parse(s).commands;
    assert_eq!(
        c("bash <<'EOF'\nrm -rf /\nEOF"),
        [argv(&["bash", "-c", "rm -rf /\n"])]
    );
    assert_eq!(
        c("bash -eu -o pipefail -s <<'EOF'\nls\nEOF"),
        [argv(&["bash", "-eu", "-o", "pipefail", "-c", "ls\n"])]
    );
    assert_eq!(
        c("python3 - <<'EOF'\nprint(1)\nEOF"),
        [argv(&["python3", "-c", "print(1)\n"])]
    );
    assert_eq!(
        c("node <<X\nconsole.log(1)\nX"),
        [argv(&["node", "-e", "console.log(1)\n"])]
    );
    // Not literal, not the input, or not the program: left as it is.
    assert_eq!(c("bash <<EOF\n$CMD\nEOF"), [argv(&["bash"])]);
    assert_eq!(c("bash 3<<'EOF'\nls\nEOF"), [argv(&["bash"])]);
    assert_eq!(
        c("bash script.sh <<'EOF'\nls\nEOF"),
        [argv(&["bash", "script.sh"])]
    );
    assert_eq!(c("sh -s x <<'EOF'\nls\nEOF"), [argv(&["sh", "-s", "x"])]);
    assert_eq!(
        c("cat <<'EOF' | bash\nrm -rf /\nEOF"),
        [argv(&["cat"]), argv(&["bash"])]
    );
}

#[test]
fn every_branch_of_a_case_is_read() {
    let p = parse("case \"$1\" in build) make;; test|check) make test;; *) rm -rf /;; esac");
    assert!(p.opaque.is_none(), "{p:?}");
    assert_eq!(
        p.commands.iter().map(|c| c.join(" ")).collect::<Vec<_>>(),
        ["make", "make test", "rm -rf /"]
    );
    // Over lines, with `(pattern)`, an empty branch, a last branch without `;;`, nested.
    assert_eq!(
        cmds(
            "case $x in\n  (a) ;;\n  b)\n    ls\n    ;;\n  c) case $y in d) id;; esac ;;\n  e) whoami\nesac\necho done"
        ),
        ["ls", "id", "whoami", "echo done"]
    );
    // `||` inside a branch is not a pattern separator.
    assert_eq!(cmds("case a in a) true || rm x;; esac"), ["true", "rm x"]);
    // Without `esac`, or without `in`: not read.
    assert!(parse("case a in a) ls;;").opaque.is_some());
    assert!(parse("case a b").opaque.is_some());
}
