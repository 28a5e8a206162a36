# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gate_global_optspecs
    string join \n reason= timeout= no-wait request= wait json policy= color= q/quiet v/verbose h/help V/version
end

function __fish_gate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gate_using_subcommand
    set -l cmd (__fish_gate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gate -n "__fish_gate_needs_command" -l reason -d 'Why you run this; shown to approvers and recorded [env: GATE_REASON]' -r
complete -c gate -n "__fish_gate_needs_command" -l timeout -d 'Give up waiting for approval after this long (e.g. `90s`, `10m`); never longer than the policy allows' -r
complete -c gate -n "__fish_gate_needs_command" -l request -d 'Run the command on the approval of an earlier request ID (from `--no-wait`): only if it was approved, for this requester, and its digest is this command\'s as it is now; exits 75 while it is pending, 77 when it was denied or is for another command' -r
complete -c gate -n "__fish_gate_needs_command" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_needs_command" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_needs_command" -l no-wait -d 'File the approval request and exit 75 without waiting or running: its id goes to stdout, for a later `gate --request ID -- PROGRAM` (two-stage pipelines; server backend)'
complete -c gate -n "__fish_gate_needs_command" -l wait -d 'With `--request`: wait for the request to be decided (up to `--timeout` or the policy\'s limit) instead of exiting 75 while it is pending'
complete -c gate -n "__fish_gate_needs_command" -l json -d 'Print the decision as one JSON object on stderr'
complete -c gate -n "__fish_gate_needs_command" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_needs_command" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_needs_command" -s V -l version -d 'Print version'
complete -c gate -n "__fish_gate_needs_command" -a "check" -d 'Classify a command without running it: decision, matched rules, approvals needed, why'
complete -c gate -n "__fish_gate_needs_command" -a "policy" -d 'Validate and test policy files'
complete -c gate -n "__fish_gate_needs_command" -a "log" -d 'Read the audit log'
complete -c gate -n "__fish_gate_needs_command" -a "requests" -d 'List pending approval requests you can see, or show one in full'
complete -c gate -n "__fish_gate_needs_command" -a "approve" -d 'Approve a pending request as the current user (or as your server token\'s principal)'
complete -c gate -n "__fish_gate_needs_command" -a "deny" -d 'Deny a pending request as the current user (or as your server token\'s principal)'
complete -c gate -n "__fish_gate_needs_command" -a "login" -d 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)'
complete -c gate -n "__fish_gate_needs_command" -a "serve" -d 'Run the approval and audit server'
complete -c gate -n "__fish_gate_needs_command" -a "setup" -d 'One-time set-up of this machine, as root; or install gate\'s hook into an AI agent'
complete -c gate -n "__fish_gate_needs_command" -a "hook" -d 'Answer an AI agent\'s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema'
complete -c gate -n "__fish_gate_needs_command" -a "shim" -d 'PATH shims: links named after programs that route them through gate'
complete -c gate -n "__fish_gate_needs_command" -a "doctor" -d 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail'
complete -c gate -n "__fish_gate_needs_command" -a "completions" -d 'Print shell completions for SHELL'
complete -c gate -n "__fish_gate_needs_command" -a "man" -d 'Print the man page (gate.1)'
complete -c gate -n "__fish_gate_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand check" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand check" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand check" -l json -d 'Print the classification as JSON on stdout'
complete -c gate -n "__fish_gate_using_subcommand check" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand check" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand check" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -f -a "lint" -d 'Check policy files for errors; each is reported as path:line:column'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -f -a "test" -d 'Run the `tests:` cases written in policy files; exit 1 when any fails'
complete -c gate -n "__fish_gate_using_subcommand policy; and not __fish_seen_subcommand_from lint test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from lint" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from lint" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from lint" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from lint" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from lint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from test" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from test" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from test" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from test" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "lint" -d 'Check policy files for errors; each is reported as path:line:column'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "test" -d 'Run the `tests:` cases written in policy files; exit 1 when any fails'
complete -c gate -n "__fish_gate_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "show" -d 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "tail" -d 'Show the last records, and with `--follow` each new one as it is appended'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "export" -d 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor\'s evidence request'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "verify" -d 'Prove the log is complete and unaltered, and that what ran was approved as required'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "push" -d 'Deliver records the remote sinks have not acknowledged yet'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "key" -d 'Print this host\'s checkpoint verifier key (note vkey format), making the key if needed'
complete -c gate -n "__fish_gate_using_subcommand log; and not __fish_seen_subcommand_from show tail export verify push key help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l since -d 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l until -d 'Only records before TIME (same forms as `--since`; a date means that day\'s start)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l request -d 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l user -d 'Only requests made by this user (the requester\'s user name as recorded)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l outcome -d 'Only requests with this outcome, as the decision records spell it' -r -f -a "allowed\t''
confirmed\t''
approved\t''
denied\t''
refused\t''
timed_out\t''
cancelled\t''
error\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l rule -d 'Only requests a rule of this name matched' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -s n -d 'Only the last N records' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -l json -d 'One record per line, as stored'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l since -d 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l until -d 'Only records before TIME (same forms as `--since`; a date means that day\'s start)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l request -d 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l user -d 'Only requests made by this user (the requester\'s user name as recorded)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l outcome -d 'Only requests with this outcome, as the decision records spell it' -r -f -a "allowed\t''
confirmed\t''
approved\t''
denied\t''
refused\t''
timed_out\t''
cancelled\t''
error\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l rule -d 'Only requests a rule of this name matched' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -s n -d 'How many of the last records to show first' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -l json -d 'One record per line, as stored'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -s f -l follow -d 'Keep watching the log and print records as they are appended'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from tail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l format -d 'The output format' -r -f -a "csv\t''
json\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l since -d 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l until -d 'Only records before TIME (same forms as `--since`; a date means that day\'s start)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l request -d 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l user -d 'Only requests made by this user (the requester\'s user name as recorded)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l outcome -d 'Only requests with this outcome, as the decision records spell it' -r -f -a "allowed\t''
confirmed\t''
approved\t''
denied\t''
refused\t''
timed_out\t''
cancelled\t''
error\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l rule -d 'Only requests a rule of this name matched' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -s o -l output -d 'Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l key -d 'The host\'s verifier key (`gate log key` output), or a file holding it. Without it, the key named in the log\'s own genesis is trusted' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l checkpoint -d 'The signed checkpoint to check against (default: PATH.checkpoint)' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l threads -d 'Hashing threads (default: all cores)' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l remote -d 'Also compare with the copy a gate server holds: records missing there, local truncation or rollback below what it holds, and any divergence' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l server-key -d 'A gate server\'s decision key (`gate serve key` output), or a file holding it: server-approved runs must carry a statement it signed. Repeatable; the keys of the policy\'s server backends are trusted too' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -l json -d 'The report as one JSON object on stdout'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -l timeout -d 'Keep retrying unreachable sinks for this long' -r
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -l json -d 'One JSON object per sink on stdout'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from key" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from key" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from key" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from key" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from key" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "tail" -d 'Show the last records, and with `--follow` each new one as it is appended'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "export" -d 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor\'s evidence request'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Prove the log is complete and unaltered, and that what ran was approved as required'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "push" -d 'Deliver records the remote sinks have not acknowledged yet'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "key" -d 'Print this host\'s checkpoint verifier key (note vkey format), making the key if needed'
complete -c gate -n "__fish_gate_using_subcommand log; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand requests" -l server -d 'Ask this gate server instead of the local spool [env: GATE_SERVER]' -r
complete -c gate -n "__fish_gate_using_subcommand requests" -l ca -d 'Trust only the CA certificates in this PEM file for the server\'s TLS (default: the built-in web PKI roots) [env: GATE_CA]' -r -F
complete -c gate -n "__fish_gate_using_subcommand requests" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand requests" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand requests" -l json -d 'One JSON object per request on stdout (the `gate.request/v1` shape, the same for the local spool and a server)'
complete -c gate -n "__fish_gate_using_subcommand requests" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand requests" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand requests" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand approve" -l comment -d 'A note recorded with your approval' -r
complete -c gate -n "__fish_gate_using_subcommand approve" -l server -d 'Decide on this gate server instead of the local spool [env: GATE_SERVER]' -r
complete -c gate -n "__fish_gate_using_subcommand approve" -l ca -d 'Trust only the CA certificates in this PEM file for the server\'s TLS (default: the built-in web PKI roots) [env: GATE_CA]' -r -F
complete -c gate -n "__fish_gate_using_subcommand approve" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand approve" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand approve" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand approve" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand approve" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand deny" -l reason -d 'Why; shown to the requester and recorded' -r
complete -c gate -n "__fish_gate_using_subcommand deny" -l server -d 'Decide on this gate server instead of the local spool [env: GATE_SERVER]' -r
complete -c gate -n "__fish_gate_using_subcommand deny" -l ca -d 'Trust only the CA certificates in this PEM file for the server\'s TLS (default: the built-in web PKI roots) [env: GATE_CA]' -r -F
complete -c gate -n "__fish_gate_using_subcommand deny" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand deny" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand deny" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand deny" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand deny" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand login" -l ca -d 'Trust only the CA certificates in this PEM file for the server\'s TLS (default: the built-in web PKI roots) [env: GATE_CA]' -r -F
complete -c gate -n "__fish_gate_using_subcommand login" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand login" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand login" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand login" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l listen -d 'Address to listen on (`HOST:PORT`; a name such as `localhost:8700` is resolved). Beyond loopback, serve TLS (`--tls-cert`) or put a TLS-terminating proxy in front: tokens travel as bearer headers' -r
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l db -d 'The database: a SQLite file (default: server.db in the state directory), or a PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`) that several replicas share; with PostgreSQL the server\'s log lives in the database and `--key` is required' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l audit-log -d 'The server\'s own audit log (default: server-audit.jsonl in the state directory; not with PostgreSQL, whose server log lives in the database)' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l key -d 'The server\'s signing key (default: `<database>.key` beside the database; made on first start, mode 0600). Never a host\'s `audit.key`' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l header-timeout -d 'How long a client may take to send a request\'s headers, and how long a kept-alive connection may wait for its next request (at most 30s)' -r
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l idle-timeout -d 'Close a connection that moves no byte for this long (longer than the 60s long-poll)' -r
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l max-connections -d 'Connections open at once; past it a client is answered 503 with Retry-After. Lowered to fit the open-file limit (raised to its hard limit at start)' -r
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l public-url -d 'The address people reach this server at (`https://gate.example.com`): the links in Slack messages and Teams cards point to its pages, and the identity provider sends people back to its `/auth/callback`. Required by a `kind: teams` backend and by `server.oidc`' -r
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`. SIGHUP reads both files again: new connections get the new certificate' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l tls-key -d 'The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1); needs `--tls-cert`' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l secret-key-file -d 'The key the server\'s secrets are sealed under: a 0600 file of 64 hex characters or 32 raw bytes. `GATE_SECRET_KEY` comes first; without either, the keyring entry `gate/server-secret-key`' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -f -a "token" -d 'Manage the API tokens of principals'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -f -a "key" -d 'Print the key the server signs its decisions with (note vkey format), making it if needed'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -f -a "log" -d 'The server\'s own log, when it lives in a PostgreSQL database'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -f -a "secret" -d 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
complete -c gate -n "__fish_gate_using_subcommand serve; and not __fish_seen_subcommand_from token key log secret help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -f -a "issue" -d 'Make a token for a principal and print it once (only its hash is stored)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (ids, principals, state; never the secrets)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke a token by its id'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from token" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -l db -d 'The server\'s database, as given to `gate serve` (default: server.db in the state directory); its key lives beside it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -l key -d 'The server\'s signing key, as given to `gate serve --key`' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -f -a "export" -d 'Write the server\'s log kept in a PostgreSQL database as JSON lines, for `gate log verify`'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from log" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -f -a "set" -d 'Store a secret\'s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -f -a "list" -d 'List the stored secrets: names, created and updated times, never values'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -f -a "rm" -d 'Delete a stored secret'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from secret" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from help" -f -a "token" -d 'Manage the API tokens of principals'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from help" -f -a "key" -d 'Print the key the server signs its decisions with (note vkey format), making it if needed'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from help" -f -a "log" -d 'The server\'s own log, when it lives in a PostgreSQL database'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from help" -f -a "secret" -d 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
complete -c gate -n "__fish_gate_using_subcommand serve; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "claude-code" -d 'Install gate\'s hook into Claude Code\'s settings (.claude/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "codex" -d 'Install gate\'s hook into Codex\'s hooks file (.codex/hooks.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "gemini" -d 'Install gate\'s hook into Gemini CLI\'s settings (.gemini/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "cursor" -d 'Install gate\'s hook into Cursor\'s hooks file (.cursor/hooks.json), failing closed'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "local" -d 'Make the shared spool for approvals on this machine, and the system policy naming it'
complete -c gate -n "__fish_gate_using_subcommand setup; and not __fish_seen_subcommand_from claude-code codex gemini cursor local help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l project -d 'The agent\'s settings in this project (the current directory)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l user -d 'Your own settings for the agent, for every project (the default)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l print -d 'Print the settings file as it would be; change nothing'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -l project -d 'The agent\'s settings in this project (the current directory)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -l user -d 'Your own settings for the agent, for every project (the default)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -l print -d 'Print the settings file as it would be; change nothing'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from codex" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -l project -d 'The agent\'s settings in this project (the current directory)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -l user -d 'Your own settings for the agent, for every project (the default)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -l print -d 'Print the settings file as it would be; change nothing'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from gemini" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -l project -d 'The agent\'s settings in this project (the current directory)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -l user -d 'Your own settings for the agent, for every project (the default)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -l print -d 'Print the settings file as it would be; change nothing'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from cursor" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l group -d 'The group whose members may ask and answer (made with `groupadd --system` if missing)' -r
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l spool -d 'The spool directory' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l policy-file -d 'The system policy file to write (default: local-spool.yaml in the system policy directory, /etc/gate/policy.d)' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l dry-run -d 'Say what would be done; change nothing (needs no root)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -l json -d 'Also print what was done as one JSON object on stdout'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from local" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "claude-code" -d 'Install gate\'s hook into Claude Code\'s settings (.claude/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "codex" -d 'Install gate\'s hook into Codex\'s hooks file (.codex/hooks.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "gemini" -d 'Install gate\'s hook into Gemini CLI\'s settings (.gemini/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "cursor" -d 'Install gate\'s hook into Cursor\'s hooks file (.cursor/hooks.json), failing closed'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "local" -d 'Make the shared spool for approvals on this machine, and the system policy naming it'
complete -c gate -n "__fish_gate_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand hook" -l event -d 'Which call this is; by default read from the input\'s event name (they must agree)' -r -f -a "pre\t''
post\t''"
complete -c gate -n "__fish_gate_using_subcommand hook" -l timeout -d 'Wait at most this long for an approval (never longer than the policy allows); keep it under the hook timeout the agent is given, or the agent stops waiting first' -r
complete -c gate -n "__fish_gate_using_subcommand hook" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand hook" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand hook" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand hook" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -f -a "install" -d 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -f -a "list" -d 'List the shims: where each points and which real program it shadows'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -f -a "remove" -d 'Remove the shims NAME...; a file that is not a link to gate is never removed'
complete -c gate -n "__fish_gate_using_subcommand shim; and not __fish_seen_subcommand_from install list remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -l dir -d 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -l dir -d 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON object on stdout: {"dir", "shims": [{name, path, kind, target, shadows}]}'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -l dir -d 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from help" -f -a "install" -d 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the shims: where each points and which real program it shadows'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove the shims NAME...; a file that is not a link to gate is never removed'
complete -c gate -n "__fish_gate_using_subcommand shim; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand doctor" -l shim-dir -d 'The shim directory to check (default: `shims` in gate\'s state directory)' -r -F
complete -c gate -n "__fish_gate_using_subcommand doctor" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand doctor" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand doctor" -l json -d 'Print one JSON object on stdout: {"ok": bool, "checks": [{check, status, detail, hint}]}'
complete -c gate -n "__fish_gate_using_subcommand doctor" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand doctor" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand completions" -l out-dir -d 'Write completions for every shell into this directory instead' -r -F
complete -c gate -n "__fish_gate_using_subcommand completions" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand completions" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand completions" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand completions" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand man" -l out-dir -d 'Write gate.1, one page per subcommand and gate-policy.5 (the policy file format) into this directory instead' -r -F
complete -c gate -n "__fish_gate_using_subcommand man" -l policy -d 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it' -r -F
complete -c gate -n "__fish_gate_using_subcommand man" -l color -d 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says' -r -f -a "auto\t''
always\t''
never\t''"
complete -c gate -n "__fish_gate_using_subcommand man" -s q -l quiet -d 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
complete -c gate -n "__fish_gate_using_subcommand man" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c gate -n "__fish_gate_using_subcommand man" -s h -l help -d 'Print help'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "check" -d 'Classify a command without running it: decision, matched rules, approvals needed, why'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "policy" -d 'Validate and test policy files'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "log" -d 'Read the audit log'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "requests" -d 'List pending approval requests you can see, or show one in full'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "approve" -d 'Approve a pending request as the current user (or as your server token\'s principal)'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "deny" -d 'Deny a pending request as the current user (or as your server token\'s principal)'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "login" -d 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "serve" -d 'Run the approval and audit server'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "setup" -d 'One-time set-up of this machine, as root; or install gate\'s hook into an AI agent'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "hook" -d 'Answer an AI agent\'s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "shim" -d 'PATH shims: links named after programs that route them through gate'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "doctor" -d 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "completions" -d 'Print shell completions for SHELL'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "man" -d 'Print the man page (gate.1)'
complete -c gate -n "__fish_gate_using_subcommand help; and not __fish_seen_subcommand_from check policy log requests approve deny login serve setup hook shim doctor completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "lint" -d 'Check policy files for errors; each is reported as path:line:column'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "test" -d 'Run the `tests:` cases written in policy files; exit 1 when any fails'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "show" -d 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "tail" -d 'Show the last records, and with `--follow` each new one as it is appended'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "export" -d 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor\'s evidence request'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "verify" -d 'Prove the log is complete and unaltered, and that what ran was approved as required'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "push" -d 'Deliver records the remote sinks have not acknowledged yet'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from log" -f -a "key" -d 'Print this host\'s checkpoint verifier key (note vkey format), making the key if needed'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from serve" -f -a "token" -d 'Manage the API tokens of principals'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from serve" -f -a "key" -d 'Print the key the server signs its decisions with (note vkey format), making it if needed'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from serve" -f -a "log" -d 'The server\'s own log, when it lives in a PostgreSQL database'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from serve" -f -a "secret" -d 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "claude-code" -d 'Install gate\'s hook into Claude Code\'s settings (.claude/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "codex" -d 'Install gate\'s hook into Codex\'s hooks file (.codex/hooks.json)'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "gemini" -d 'Install gate\'s hook into Gemini CLI\'s settings (.gemini/settings.json)'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "cursor" -d 'Install gate\'s hook into Cursor\'s hooks file (.cursor/hooks.json), failing closed'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "local" -d 'Make the shared spool for approvals on this machine, and the system policy naming it'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from shim" -f -a "install" -d 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from shim" -f -a "list" -d 'List the shims: where each points and which real program it shadows'
complete -c gate -n "__fish_gate_using_subcommand help; and __fish_seen_subcommand_from shim" -f -a "remove" -d 'Remove the shims NAME...; a file that is not a link to gate is never removed'
