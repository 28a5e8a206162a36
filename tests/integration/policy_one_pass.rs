//! `gate policy lint` reports every problem of a file in one pass, each at `path:line:column`:
//! YAML anchors, aliases and merge keys are refused where they are written (never expanded), and
//! a duplicate rule or backend name is reported together with the problems of the rule that
//! carries it, not only after they are fixed.

use crate::common;

use common::Gate;

/// A few lines of nested aliases that would expand to 10^9 nodes. Refused from the parser's
/// events, so lint answers at once, and every command that reads the policy stops (78).
#[test]
fn alias_bomb_in_a_policy_is_refused_not_expanded() {
    let mut yaml = String::from("version: 1\ngroups:\n  g0: &a0 [lol]\n");
    for i in 1..10 {
        let list = vec![format!("*a{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("  g{i}: &a{i} [{list}]\n"));
    }
    let g = Gate::new().policy(&yaml);
    let r = g.args(&["policy", "lint"]).run();
    r.status(78)
        .stderr_contains("error: YAML anchors (`&name`) are not accepted in a policy file")
        .stderr_contains("policy.yaml:3:7")
        .stderr_contains("error: YAML aliases (`*name`) are not accepted in a policy file")
        .stderr_contains("policy.yaml:4:12");
    assert!(
        r.stderr.contains("error: 100 problems in policy"),
        "{}",
        r.stderr
    );
    Gate::new()
        .policy(&yaml)
        .args(&["--", "true"])
        .run()
        .status(78)
        .stderr_contains("YAML aliases");
}

/// An alias makes a rule match what another place says: a reviewer reading the rule does not
/// see it. Refused, with the hint, at the place of each anchor, alias and merge key.
#[test]
fn alias_that_hides_what_a_rule_matches_is_refused_at_its_place() {
    let yaml = "version: 1\n\
                rules:\n\
                \x20 - name: quiet\n\
                \x20   match: &harmless { program: echo }\n\
                \x20   decision: allow\n\
                \x20 - name: loud\n\
                \x20   <<: { decision: allow }\n\
                \x20   match: *harmless\n";
    Gate::new()
        .policy(yaml)
        .args(&["policy", "lint"])
        .run()
        .status(78)
        .stderr_contains("policy.yaml:4:12\n")
        .stderr_contains("policy.yaml:7:5\n")
        .stderr_contains("error: YAML merge keys (`<<`) are not accepted in a policy file")
        .stderr_contains("policy.yaml:8:12\n")
        .stderr_contains("hint: write the value out in full where it is used")
        .stderr_contains("error: 3 problems in policy");
}

/// A rule left out for a problem of its own (no decision, an unknown one) still claims its
/// name: the duplicate is in the same report as that problem.
#[test]
fn duplicate_rule_is_reported_with_the_other_problems_in_one_pass() {
    let yaml = "version: 1\n\
                rules:\n\
                \x20 - name: wipe\n\
                \x20   match: { program: rm }\n\
                \x20   decision: denied\n\
                \x20 - name: wipe\n\
                \x20   match: { program: rm }\n\
                \x20   decision: deny\n\
                \x20 - name: nodecision\n\
                \x20   match: { program: dd }\n\
                \x20 - name: nodecision\n\
                \x20   match: { program: dd }\n\
                \x20   decision: deny\n\
                \x20 - name: 7\n\
                \x20   decision: maybe\n\
                \x20 - name: \"7\"\n\
                \x20   decision: deny\n";
    Gate::new()
        .policy(yaml)
        .args(&["policy", "lint"])
        .run()
        .status(78)
        .stderr_contains("error: unknown decision `denied`")
        .stderr_contains("error: duplicate rule `wipe`\n  --> ")
        .stderr_contains("policy.yaml:6:11\n")
        .stderr_contains("first defined at ")
        .stderr_contains("error: rule `nodecision` has no `decision`")
        .stderr_contains("error: duplicate rule `nodecision`")
        .stderr_contains("policy.yaml:11:11\n")
        .stderr_contains("error: duplicate rule `7`")
        .stderr_contains("policy.yaml:16:11\n")
        .stderr_contains("error: 6 problems in policy");
}

/// The same across files, and for a backend left out for its own problem.
#[test]
fn duplicate_backend_across_files_is_reported_with_its_other_problem() {
    let g = Gate::new();
    let a = g.write("a.yaml", "version: 1\nbackends:\n  team: { kind: nope }\n");
    let b = g.write("b.yaml", "version: 1\nbackends:\n  team: { kind: local }\n");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    g.args(&["policy", "lint", a, b])
        .run()
        .status(78)
        .stderr_contains("error: unknown backend kind `nope`")
        .stderr_contains("error: duplicate backend `team`")
        .stderr_contains("b.yaml:3:3\n")
        .stderr_contains("error: 2 problems in policy");
}
