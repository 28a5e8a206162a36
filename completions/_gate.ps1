
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'gate' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'gate'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'gate' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why you run this; shown to approvers and recorded [env: GATE_REASON]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up waiting for approval after this long (e.g. `90s`, `10m`); never longer than the policy allows')
            [CompletionResult]::new('--request', '--request', [CompletionResultType]::ParameterName, 'Run the command on the approval of an earlier request ID (from `--no-wait`): only if it was approved, for this requester, and its digest is this command''s as it is now; exits 75 while it is pending, 77 when it was denied or is for another command')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'File the approval request and exit 75 without waiting or running: its id goes to stdout, for a later `gate --request ID -- PROGRAM` (two-stage pipelines; server backend)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With `--request`: wait for the request to be decided (up to `--timeout` or the policy''s limit) instead of exiting 75 while it is pending')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the decision as one JSON object on stderr')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Classify a command without running it: decision, matched rules, approvals needed, why')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Validate and test policy files')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Read the audit log')
            [CompletionResult]::new('requests', 'requests', [CompletionResultType]::ParameterValue, 'List pending approval requests you can see, or show one in full')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a pending request as the current user (or as your server token''s principal)')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny a pending request as the current user (or as your server token''s principal)')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the approval and audit server')
            [CompletionResult]::new('setup', 'setup', [CompletionResultType]::ParameterValue, 'One-time set-up of this machine, as root; or install gate''s hook into an AI agent')
            [CompletionResult]::new('hook', 'hook', [CompletionResultType]::ParameterValue, 'Answer an AI agent''s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema')
            [CompletionResult]::new('shim', 'shim', [CompletionResultType]::ParameterValue, 'PATH shims: links named after programs that route them through gate')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (gate.1)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;check' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the classification as JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;policy' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('lint', 'lint', [CompletionResultType]::ParameterValue, 'Check policy files for errors; each is reported as path:line:column')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Run the `tests:` cases written in policy files; exit 1 when any fails')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;policy;lint' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;policy;test' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;policy;help' {
            [CompletionResult]::new('lint', 'lint', [CompletionResultType]::ParameterValue, 'Check policy files for errors; each is reported as path:line:column')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Run the `tests:` cases written in policy files; exit 1 when any fails')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;policy;help;lint' {
            break
        }
        'gate;policy;help;test' {
            break
        }
        'gate;policy;help;help' {
            break
        }
        'gate;log' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Show the last records, and with `--follow` each new one as it is appended')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Prove the log is complete and unaltered, and that what ran was approved as required')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Deliver records the remote sinks have not acknowledged yet')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;log;show' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records before TIME (same forms as `--since`; a date means that day''s start)')
            [CompletionResult]::new('--request', '--request', [CompletionResultType]::ParameterName, 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only requests made by this user (the requester''s user name as recorded)')
            [CompletionResult]::new('--outcome', '--outcome', [CompletionResultType]::ParameterName, 'Only requests with this outcome, as the decision records spell it')
            [CompletionResult]::new('--rule', '--rule', [CompletionResultType]::ParameterName, 'Only requests a rule of this name matched')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Only the last N records')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One record per line, as stored')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;log;tail' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records before TIME (same forms as `--since`; a date means that day''s start)')
            [CompletionResult]::new('--request', '--request', [CompletionResultType]::ParameterName, 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only requests made by this user (the requester''s user name as recorded)')
            [CompletionResult]::new('--outcome', '--outcome', [CompletionResultType]::ParameterName, 'Only requests with this outcome, as the decision records spell it')
            [CompletionResult]::new('--rule', '--rule', [CompletionResultType]::ParameterName, 'Only requests a rule of this name matched')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many of the last records to show first')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One record per line, as stored')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep watching the log and print records as they are appended')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep watching the log and print records as they are appended')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;log;export' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The output format')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records before TIME (same forms as `--since`; a date means that day''s start)')
            [CompletionResult]::new('--request', '--request', [CompletionResultType]::ParameterName, 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only requests made by this user (the requester''s user name as recorded)')
            [CompletionResult]::new('--outcome', '--outcome', [CompletionResultType]::ParameterName, 'Only requests with this outcome, as the decision records spell it')
            [CompletionResult]::new('--rule', '--rule', [CompletionResultType]::ParameterName, 'Only requests a rule of this name matched')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;log;verify' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The host''s verifier key (`gate log key` output), or a file holding it. Without it, the key named in the log''s own genesis is trusted')
            [CompletionResult]::new('--checkpoint', '--checkpoint', [CompletionResultType]::ParameterName, 'The signed checkpoint to check against (default: PATH.checkpoint)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Hashing threads (default: all cores)')
            [CompletionResult]::new('--remote', '--remote', [CompletionResultType]::ParameterName, 'Also compare with the copy a gate server holds: records missing there, local truncation or rollback below what it holds, and any divergence')
            [CompletionResult]::new('--server-key', '--server-key', [CompletionResultType]::ParameterName, 'A gate server''s decision key (`gate serve key` output), or a file holding it: server-approved runs must carry a statement it signed. Repeatable; the keys of the policy''s server backends are trusted too')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'The report as one JSON object on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;log;push' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Keep retrying unreachable sinks for this long')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per sink on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;log;key' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;log;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Show the last records, and with `--follow` each new one as it is appended')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Prove the log is complete and unaltered, and that what ran was approved as required')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Deliver records the remote sinks have not acknowledged yet')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;log;help;show' {
            break
        }
        'gate;log;help;tail' {
            break
        }
        'gate;log;help;export' {
            break
        }
        'gate;log;help;verify' {
            break
        }
        'gate;log;help;push' {
            break
        }
        'gate;log;help;key' {
            break
        }
        'gate;log;help;help' {
            break
        }
        'gate;requests' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Ask this gate server instead of the local spool [env: GATE_SERVER]')
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per request on stdout (the `gate.request/v1` shape, the same for the local spool and a server)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;approve' {
            [CompletionResult]::new('--comment', '--comment', [CompletionResultType]::ParameterName, 'A note recorded with your approval')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Decide on this gate server instead of the local spool [env: GATE_SERVER]')
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;deny' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why; shown to the requester and recorded')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Decide on this gate server instead of the local spool [env: GATE_SERVER]')
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;login' {
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (`HOST:PORT`; a name such as `localhost:8700` is resolved). Beyond loopback, serve TLS (`--tls-cert`) or put a TLS-terminating proxy in front: tokens travel as bearer headers')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file (default: server.db in the state directory), or a PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`) that several replicas share; with PostgreSQL the server''s log lives in the database and `--key` is required')
            [CompletionResult]::new('--audit-log', '--audit-log', [CompletionResultType]::ParameterName, 'The server''s own audit log (default: server-audit.jsonl in the state directory; not with PostgreSQL, whose server log lives in the database)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The server''s signing key (default: `<database>.key` beside the database; made on first start, mode 0600). Never a host''s `audit.key`')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'How long a client may take to send a request''s headers, and how long a kept-alive connection may wait for its next request (at most 30s)')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a connection that moves no byte for this long (longer than the 60s long-poll)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Connections open at once; past it a client is answered 503 with Retry-After. Lowered to fit the open-file limit (raised to its hard limit at start)')
            [CompletionResult]::new('--public-url', '--public-url', [CompletionResultType]::ParameterName, 'The address people reach this server at (`https://gate.example.com`): the links in Slack messages and Teams cards point to its pages, and the identity provider sends people back to its `/auth/callback`. Required by a `kind: teams` backend and by `server.oidc`')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`. SIGHUP reads both files again: new connections get the new certificate')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1); needs `--tls-cert`')
            [CompletionResult]::new('--secret-key-file', '--secret-key-file', [CompletionResultType]::ParameterName, 'The key the server''s secrets are sealed under: a 0600 file of 64 hex characters or 32 raw bytes. `GATE_SECRET_KEY` comes first; without either, the keyring entry `gate/server-secret-key`')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage the API tokens of principals')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print the key the server signs its decisions with (note vkey format), making it if needed')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'The server''s own log, when it lives in a PostgreSQL database')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;token' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Make a token for a principal and print it once (only its hash is stored)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (ids, principals, state; never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by its id')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;token;issue' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory)')
            [CompletionResult]::new('--principal', '--principal', [CompletionResultType]::ParameterName, 'The principal the token speaks for (an approver name from the policy''s groups)')
            [CompletionResult]::new('--expires', '--expires', [CompletionResultType]::ParameterName, 'Make the token stop working after this long (e.g. `90d`)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;serve;token;list' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory). It must exist: listing never makes one')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per token on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;serve;token;revoke' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;serve;token;help' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Make a token for a principal and print it once (only its hash is stored)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (ids, principals, state; never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by its id')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;token;help;issue' {
            break
        }
        'gate;serve;token;help;list' {
            break
        }
        'gate;serve;token;help;revoke' {
            break
        }
        'gate;serve;token;help;help' {
            break
        }
        'gate;serve;key' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory); its key lives beside it')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The server''s signing key, as given to `gate serve --key`')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;serve;log' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;log;export' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s PostgreSQL database, as given to `gate serve --db`')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write here (a new file) instead of stdout, and the checkpoint beside it')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write here (a new file) instead of stdout, and the checkpoint beside it')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;serve;log;help' {
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;log;help;export' {
            break
        }
        'gate;serve;log;help;help' {
            break
        }
        'gate;serve;secret' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the stored secrets: names, created and updated times, never values')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a stored secret')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;secret;set' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory)')
            [CompletionResult]::new('--secret-key-file', '--secret-key-file', [CompletionResultType]::ParameterName, 'The secret key file, as given to `gate serve --secret-key-file`')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;serve;secret;list' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory). It must exist: listing never makes one')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per secret on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;serve;secret;rm' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The server''s database, as given to `gate serve` (default: server.db in the state directory)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;serve;secret;help' {
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the stored secrets: names, created and updated times, never values')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a stored secret')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;secret;help;set' {
            break
        }
        'gate;serve;secret;help;list' {
            break
        }
        'gate;serve;secret;help;rm' {
            break
        }
        'gate;serve;secret;help;help' {
            break
        }
        'gate;serve;help' {
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage the API tokens of principals')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print the key the server signs its decisions with (note vkey format), making it if needed')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'The server''s own log, when it lives in a PostgreSQL database')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;serve;help;token' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Make a token for a principal and print it once (only its hash is stored)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (ids, principals, state; never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by its id')
            break
        }
        'gate;serve;help;token;issue' {
            break
        }
        'gate;serve;help;token;list' {
            break
        }
        'gate;serve;help;token;revoke' {
            break
        }
        'gate;serve;help;key' {
            break
        }
        'gate;serve;help;log' {
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`')
            break
        }
        'gate;serve;help;log;export' {
            break
        }
        'gate;serve;help;secret' {
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the stored secrets: names, created and updated times, never values')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a stored secret')
            break
        }
        'gate;serve;help;secret;set' {
            break
        }
        'gate;serve;help;secret;list' {
            break
        }
        'gate;serve;help;secret;rm' {
            break
        }
        'gate;serve;help;help' {
            break
        }
        'gate;setup' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('claude-code', 'claude-code', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)')
            [CompletionResult]::new('codex', 'codex', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)')
            [CompletionResult]::new('gemini', 'gemini', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)')
            [CompletionResult]::new('cursor', 'cursor', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed')
            [CompletionResult]::new('local', 'local', [CompletionResultType]::ParameterValue, 'Make the shared spool for approvals on this machine, and the system policy naming it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;setup;claude-code' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The agent''s settings in this project (the current directory)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Your own settings for the agent, for every project (the default)')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Print the settings file as it would be; change nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;setup;codex' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The agent''s settings in this project (the current directory)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Your own settings for the agent, for every project (the default)')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Print the settings file as it would be; change nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;setup;gemini' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The agent''s settings in this project (the current directory)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Your own settings for the agent, for every project (the default)')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Print the settings file as it would be; change nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;setup;cursor' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The agent''s settings in this project (the current directory)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Your own settings for the agent, for every project (the default)')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Print the settings file as it would be; change nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;setup;local' {
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The group whose members may ask and answer (made with `groupadd --system` if missing)')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--policy-file', '--policy-file', [CompletionResultType]::ParameterName, 'The system policy file to write (default: local-spool.yaml in the system policy directory, /etc/gate/policy.d)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Say what would be done; change nothing (needs no root)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Also print what was done as one JSON object on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;setup;help' {
            [CompletionResult]::new('claude-code', 'claude-code', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)')
            [CompletionResult]::new('codex', 'codex', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)')
            [CompletionResult]::new('gemini', 'gemini', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)')
            [CompletionResult]::new('cursor', 'cursor', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed')
            [CompletionResult]::new('local', 'local', [CompletionResultType]::ParameterValue, 'Make the shared spool for approvals on this machine, and the system policy naming it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;setup;help;claude-code' {
            break
        }
        'gate;setup;help;codex' {
            break
        }
        'gate;setup;help;gemini' {
            break
        }
        'gate;setup;help;cursor' {
            break
        }
        'gate;setup;help;local' {
            break
        }
        'gate;setup;help;help' {
            break
        }
        'gate;hook' {
            [CompletionResult]::new('--event', '--event', [CompletionResultType]::ParameterName, 'Which call this is; by default read from the input''s event name (they must agree)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Wait at most this long for an approval (never longer than the policy allows); keep it under the hook timeout the agent is given, or the agent stops waiting first')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;shim' {
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('install', 'install', [CompletionResultType]::ParameterValue, 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the shims: where each points and which real program it shadows')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove the shims NAME...; a file that is not a link to gate is never removed')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;shim;install' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gate;shim;list' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object on stdout: {"dir", "shims": [{name, path, kind, target, shadows}]}')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;shim;remove' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;shim;help' {
            [CompletionResult]::new('install', 'install', [CompletionResultType]::ParameterValue, 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the shims: where each points and which real program it shadows')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove the shims NAME...; a file that is not a link to gate is never removed')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;shim;help;install' {
            break
        }
        'gate;shim;help;list' {
            break
        }
        'gate;shim;help;remove' {
            break
        }
        'gate;shim;help;help' {
            break
        }
        'gate;doctor' {
            [CompletionResult]::new('--shim-dir', '--shim-dir', [CompletionResultType]::ParameterName, 'The shim directory to check (default: `shims` in gate''s state directory)')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object on stdout: {"ok": bool, "checks": [{check, status, detail, hint}]}')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;completions' {
            [CompletionResult]::new('--out-dir', '--out-dir', [CompletionResultType]::ParameterName, 'Write completions for every shell into this directory instead')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;man' {
            [CompletionResult]::new('--out-dir', '--out-dir', [CompletionResultType]::ParameterName, 'Write gate.1, one page per subcommand and gate-policy.5 (the policy file format) into this directory instead')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Say less: no progress lines, no spinner (a run with no policy at all still warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gate;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Classify a command without running it: decision, matched rules, approvals needed, why')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Validate and test policy files')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Read the audit log')
            [CompletionResult]::new('requests', 'requests', [CompletionResultType]::ParameterValue, 'List pending approval requests you can see, or show one in full')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a pending request as the current user (or as your server token''s principal)')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny a pending request as the current user (or as your server token''s principal)')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the approval and audit server')
            [CompletionResult]::new('setup', 'setup', [CompletionResultType]::ParameterValue, 'One-time set-up of this machine, as root; or install gate''s hook into an AI agent')
            [CompletionResult]::new('hook', 'hook', [CompletionResultType]::ParameterValue, 'Answer an AI agent''s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema')
            [CompletionResult]::new('shim', 'shim', [CompletionResultType]::ParameterValue, 'PATH shims: links named after programs that route them through gate')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions for SHELL')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (gate.1)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gate;help;check' {
            break
        }
        'gate;help;policy' {
            [CompletionResult]::new('lint', 'lint', [CompletionResultType]::ParameterValue, 'Check policy files for errors; each is reported as path:line:column')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Run the `tests:` cases written in policy files; exit 1 when any fails')
            break
        }
        'gate;help;policy;lint' {
            break
        }
        'gate;help;policy;test' {
            break
        }
        'gate;help;log' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Show the last records, and with `--follow` each new one as it is appended')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Prove the log is complete and unaltered, and that what ran was approved as required')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Deliver records the remote sinks have not acknowledged yet')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed')
            break
        }
        'gate;help;log;show' {
            break
        }
        'gate;help;log;tail' {
            break
        }
        'gate;help;log;export' {
            break
        }
        'gate;help;log;verify' {
            break
        }
        'gate;help;log;push' {
            break
        }
        'gate;help;log;key' {
            break
        }
        'gate;help;requests' {
            break
        }
        'gate;help;approve' {
            break
        }
        'gate;help;deny' {
            break
        }
        'gate;help;login' {
            break
        }
        'gate;help;serve' {
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage the API tokens of principals')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print the key the server signs its decisions with (note vkey format), making it if needed')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'The server''s own log, when it lives in a PostgreSQL database')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)')
            break
        }
        'gate;help;serve;token' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Make a token for a principal and print it once (only its hash is stored)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (ids, principals, state; never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by its id')
            break
        }
        'gate;help;serve;token;issue' {
            break
        }
        'gate;help;serve;token;list' {
            break
        }
        'gate;help;serve;token;revoke' {
            break
        }
        'gate;help;serve;key' {
            break
        }
        'gate;help;serve;log' {
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`')
            break
        }
        'gate;help;serve;log;export' {
            break
        }
        'gate;help;serve;secret' {
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the stored secrets: names, created and updated times, never values')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a stored secret')
            break
        }
        'gate;help;serve;secret;set' {
            break
        }
        'gate;help;serve;secret;list' {
            break
        }
        'gate;help;serve;secret;rm' {
            break
        }
        'gate;help;setup' {
            [CompletionResult]::new('claude-code', 'claude-code', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)')
            [CompletionResult]::new('codex', 'codex', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)')
            [CompletionResult]::new('gemini', 'gemini', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)')
            [CompletionResult]::new('cursor', 'cursor', [CompletionResultType]::ParameterValue, 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed')
            [CompletionResult]::new('local', 'local', [CompletionResultType]::ParameterValue, 'Make the shared spool for approvals on this machine, and the system policy naming it')
            break
        }
        'gate;help;setup;claude-code' {
            break
        }
        'gate;help;setup;codex' {
            break
        }
        'gate;help;setup;gemini' {
            break
        }
        'gate;help;setup;cursor' {
            break
        }
        'gate;help;setup;local' {
            break
        }
        'gate;help;hook' {
            break
        }
        'gate;help;shim' {
            [CompletionResult]::new('install', 'install', [CompletionResultType]::ParameterValue, 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the shims: where each points and which real program it shadows')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove the shims NAME...; a file that is not a link to gate is never removed')
            break
        }
        'gate;help;shim;install' {
            break
        }
        'gate;help;shim;list' {
            break
        }
        'gate;help;shim;remove' {
            break
        }
        'gate;help;doctor' {
            break
        }
        'gate;help;completions' {
            break
        }
        'gate;help;man' {
            break
        }
        'gate;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
