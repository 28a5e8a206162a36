
use builtin;
use str;

set edit:completion:arg-completer[gate] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'gate'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'gate'= {
            cand --reason 'Why you run this; shown to approvers and recorded [env: GATE_REASON]'
            cand --timeout 'Give up waiting for approval after this long (e.g. `90s`, `10m`); never longer than the policy allows'
            cand --request 'Run the command on the approval of an earlier request ID (from `--no-wait`): only if it was approved, for this requester, and its digest is this command''s as it is now; exits 75 while it is pending, 77 when it was denied or is for another command'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --no-wait 'File the approval request and exit 75 without waiting or running: its id goes to stdout, for a later `gate --request ID -- PROGRAM` (two-stage pipelines; server backend)'
            cand --wait 'With `--request`: wait for the request to be decided (up to `--timeout` or the policy''s limit) instead of exiting 75 while it is pending'
            cand --json 'Print the decision as one JSON object on stderr'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Classify a command without running it: decision, matched rules, approvals needed, why'
            cand policy 'Validate and test policy files'
            cand log 'Read the audit log'
            cand requests 'List pending approval requests you can see, or show one in full'
            cand approve 'Approve a pending request as the current user (or as your server token''s principal)'
            cand deny 'Deny a pending request as the current user (or as your server token''s principal)'
            cand login 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)'
            cand serve 'Run the approval and audit server'
            cand setup 'One-time set-up of this machine, as root; or install gate''s hook into an AI agent'
            cand hook 'Answer an AI agent''s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema'
            cand shim 'PATH shims: links named after programs that route them through gate'
            cand doctor 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail'
            cand completions 'Print shell completions for SHELL'
            cand man 'Print the man page (gate.1)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;check'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'Print the classification as JSON on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;policy'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand lint 'Check policy files for errors; each is reported as path:line:column'
            cand test 'Run the `tests:` cases written in policy files; exit 1 when any fails'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;policy;lint'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;policy;test'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;policy;help'= {
            cand lint 'Check policy files for errors; each is reported as path:line:column'
            cand test 'Run the `tests:` cases written in policy files; exit 1 when any fails'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;policy;help;lint'= {
        }
        &'gate;policy;help;test'= {
        }
        &'gate;policy;help;help'= {
        }
        &'gate;log'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand show 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
            cand tail 'Show the last records, and with `--follow` each new one as it is appended'
            cand export 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request'
            cand verify 'Prove the log is complete and unaltered, and that what ran was approved as required'
            cand push 'Deliver records the remote sinks have not acknowledged yet'
            cand key 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;log;show'= {
            cand --since 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)'
            cand --until 'Only records before TIME (same forms as `--since`; a date means that day''s start)'
            cand --request 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix'
            cand --user 'Only requests made by this user (the requester''s user name as recorded)'
            cand --outcome 'Only requests with this outcome, as the decision records spell it'
            cand --rule 'Only requests a rule of this name matched'
            cand -n 'Only the last N records'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One record per line, as stored'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;log;tail'= {
            cand --since 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)'
            cand --until 'Only records before TIME (same forms as `--since`; a date means that day''s start)'
            cand --request 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix'
            cand --user 'Only requests made by this user (the requester''s user name as recorded)'
            cand --outcome 'Only requests with this outcome, as the decision records spell it'
            cand --rule 'Only requests a rule of this name matched'
            cand -n 'How many of the last records to show first'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One record per line, as stored'
            cand -f 'Keep watching the log and print records as they are appended'
            cand --follow 'Keep watching the log and print records as they are appended'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;log;export'= {
            cand --format 'The output format'
            cand --since 'Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration ago such as 10m or 2h)'
            cand --until 'Only records before TIME (same forms as `--since`; a date means that day''s start)'
            cand --request 'Only records of this request: its full id, the 12-character short id the table shows (any unique suffix), or a unique prefix'
            cand --user 'Only requests made by this user (the requester''s user name as recorded)'
            cand --outcome 'Only requests with this outcome, as the decision records spell it'
            cand --rule 'Only requests a rule of this name matched'
            cand -o 'Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout'
            cand --output 'Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;log;verify'= {
            cand --key 'The host''s verifier key (`gate log key` output), or a file holding it. Without it, the key named in the log''s own genesis is trusted'
            cand --checkpoint 'The signed checkpoint to check against (default: PATH.checkpoint)'
            cand --threads 'Hashing threads (default: all cores)'
            cand --remote 'Also compare with the copy a gate server holds: records missing there, local truncation or rollback below what it holds, and any divergence'
            cand --server-key 'A gate server''s decision key (`gate serve key` output), or a file holding it: server-approved runs must carry a statement it signed. Repeatable; the keys of the policy''s server backends are trusted too'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'The report as one JSON object on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;log;push'= {
            cand --timeout 'Keep retrying unreachable sinks for this long'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One JSON object per sink on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;log;key'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;log;help'= {
            cand show 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
            cand tail 'Show the last records, and with `--follow` each new one as it is appended'
            cand export 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request'
            cand verify 'Prove the log is complete and unaltered, and that what ran was approved as required'
            cand push 'Deliver records the remote sinks have not acknowledged yet'
            cand key 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;log;help;show'= {
        }
        &'gate;log;help;tail'= {
        }
        &'gate;log;help;export'= {
        }
        &'gate;log;help;verify'= {
        }
        &'gate;log;help;push'= {
        }
        &'gate;log;help;key'= {
        }
        &'gate;log;help;help'= {
        }
        &'gate;requests'= {
            cand --server 'Ask this gate server instead of the local spool [env: GATE_SERVER]'
            cand --ca 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One JSON object per request on stdout (the `gate.request/v1` shape, the same for the local spool and a server)'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;approve'= {
            cand --comment 'A note recorded with your approval'
            cand --server 'Decide on this gate server instead of the local spool [env: GATE_SERVER]'
            cand --ca 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;deny'= {
            cand --reason 'Why; shown to the requester and recorded'
            cand --server 'Decide on this gate server instead of the local spool [env: GATE_SERVER]'
            cand --ca 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;login'= {
            cand --ca 'Trust only the CA certificates in this PEM file for the server''s TLS (default: the built-in web PKI roots) [env: GATE_CA]'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;serve'= {
            cand --listen 'Address to listen on (`HOST:PORT`; a name such as `localhost:8700` is resolved). Beyond loopback, serve TLS (`--tls-cert`) or put a TLS-terminating proxy in front: tokens travel as bearer headers'
            cand --db 'The database: a SQLite file (default: server.db in the state directory), or a PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`) that several replicas share; with PostgreSQL the server''s log lives in the database and `--key` is required'
            cand --audit-log 'The server''s own audit log (default: server-audit.jsonl in the state directory; not with PostgreSQL, whose server log lives in the database)'
            cand --key 'The server''s signing key (default: `<database>.key` beside the database; made on first start, mode 0600). Never a host''s `audit.key`'
            cand --header-timeout 'How long a client may take to send a request''s headers, and how long a kept-alive connection may wait for its next request (at most 30s)'
            cand --idle-timeout 'Close a connection that moves no byte for this long (longer than the 60s long-poll)'
            cand --max-connections 'Connections open at once; past it a client is answered 503 with Retry-After. Lowered to fit the open-file limit (raised to its hard limit at start)'
            cand --public-url 'The address people reach this server at (`https://gate.example.com`): the links in Slack messages and Teams cards point to its pages, and the identity provider sends people back to its `/auth/callback`. Required by a `kind: teams` backend and by `server.oidc`'
            cand --tls-cert 'Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`. SIGHUP reads both files again: new connections get the new certificate'
            cand --tls-key 'The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1); needs `--tls-cert`'
            cand --secret-key-file 'The key the server''s secrets are sealed under: a 0600 file of 64 hex characters or 32 raw bytes. `GATE_SECRET_KEY` comes first; without either, the keyring entry `gate/server-secret-key`'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand token 'Manage the API tokens of principals'
            cand key 'Print the key the server signs its decisions with (note vkey format), making it if needed'
            cand log 'The server''s own log, when it lives in a PostgreSQL database'
            cand secret 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;token'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand issue 'Make a token for a principal and print it once (only its hash is stored)'
            cand list 'List tokens (ids, principals, state; never the secrets)'
            cand revoke 'Revoke a token by its id'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;token;issue'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory)'
            cand --principal 'The principal the token speaks for (an approver name from the policy''s groups)'
            cand --expires 'Make the token stop working after this long (e.g. `90d`)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;serve;token;list'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory). It must exist: listing never makes one'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One JSON object per token on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;serve;token;revoke'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;serve;token;help'= {
            cand issue 'Make a token for a principal and print it once (only its hash is stored)'
            cand list 'List tokens (ids, principals, state; never the secrets)'
            cand revoke 'Revoke a token by its id'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;token;help;issue'= {
        }
        &'gate;serve;token;help;list'= {
        }
        &'gate;serve;token;help;revoke'= {
        }
        &'gate;serve;token;help;help'= {
        }
        &'gate;serve;key'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory); its key lives beside it'
            cand --key 'The server''s signing key, as given to `gate serve --key`'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;serve;log'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand export 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;log;export'= {
            cand --db 'The server''s PostgreSQL database, as given to `gate serve --db`'
            cand -o 'Write here (a new file) instead of stdout, and the checkpoint beside it'
            cand --output 'Write here (a new file) instead of stdout, and the checkpoint beside it'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;serve;log;help'= {
            cand export 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;log;help;export'= {
        }
        &'gate;serve;log;help;help'= {
        }
        &'gate;serve;secret'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand set 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME'
            cand list 'List the stored secrets: names, created and updated times, never values'
            cand rm 'Delete a stored secret'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;secret;set'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory)'
            cand --secret-key-file 'The secret key file, as given to `gate serve --secret-key-file`'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;serve;secret;list'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory). It must exist: listing never makes one'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'One JSON object per secret on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;serve;secret;rm'= {
            cand --db 'The server''s database, as given to `gate serve` (default: server.db in the state directory)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;serve;secret;help'= {
            cand set 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME'
            cand list 'List the stored secrets: names, created and updated times, never values'
            cand rm 'Delete a stored secret'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;secret;help;set'= {
        }
        &'gate;serve;secret;help;list'= {
        }
        &'gate;serve;secret;help;rm'= {
        }
        &'gate;serve;secret;help;help'= {
        }
        &'gate;serve;help'= {
            cand token 'Manage the API tokens of principals'
            cand key 'Print the key the server signs its decisions with (note vkey format), making it if needed'
            cand log 'The server''s own log, when it lives in a PostgreSQL database'
            cand secret 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;serve;help;token'= {
            cand issue 'Make a token for a principal and print it once (only its hash is stored)'
            cand list 'List tokens (ids, principals, state; never the secrets)'
            cand revoke 'Revoke a token by its id'
        }
        &'gate;serve;help;token;issue'= {
        }
        &'gate;serve;help;token;list'= {
        }
        &'gate;serve;help;token;revoke'= {
        }
        &'gate;serve;help;key'= {
        }
        &'gate;serve;help;log'= {
            cand export 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`'
        }
        &'gate;serve;help;log;export'= {
        }
        &'gate;serve;help;secret'= {
            cand set 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME'
            cand list 'List the stored secrets: names, created and updated times, never values'
            cand rm 'Delete a stored secret'
        }
        &'gate;serve;help;secret;set'= {
        }
        &'gate;serve;help;secret;list'= {
        }
        &'gate;serve;help;secret;rm'= {
        }
        &'gate;serve;help;help'= {
        }
        &'gate;setup'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand claude-code 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)'
            cand codex 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)'
            cand gemini 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)'
            cand cursor 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed'
            cand local 'Make the shared spool for approvals on this machine, and the system policy naming it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;setup;claude-code'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --project 'The agent''s settings in this project (the current directory)'
            cand --user 'Your own settings for the agent, for every project (the default)'
            cand --print 'Print the settings file as it would be; change nothing'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;setup;codex'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --project 'The agent''s settings in this project (the current directory)'
            cand --user 'Your own settings for the agent, for every project (the default)'
            cand --print 'Print the settings file as it would be; change nothing'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;setup;gemini'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --project 'The agent''s settings in this project (the current directory)'
            cand --user 'Your own settings for the agent, for every project (the default)'
            cand --print 'Print the settings file as it would be; change nothing'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;setup;cursor'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --project 'The agent''s settings in this project (the current directory)'
            cand --user 'Your own settings for the agent, for every project (the default)'
            cand --print 'Print the settings file as it would be; change nothing'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;setup;local'= {
            cand --group 'The group whose members may ask and answer (made with `groupadd --system` if missing)'
            cand --spool 'The spool directory'
            cand --policy-file 'The system policy file to write (default: local-spool.yaml in the system policy directory, /etc/gate/policy.d)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --dry-run 'Say what would be done; change nothing (needs no root)'
            cand --json 'Also print what was done as one JSON object on stdout'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;setup;help'= {
            cand claude-code 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)'
            cand codex 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)'
            cand gemini 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)'
            cand cursor 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed'
            cand local 'Make the shared spool for approvals on this machine, and the system policy naming it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;setup;help;claude-code'= {
        }
        &'gate;setup;help;codex'= {
        }
        &'gate;setup;help;gemini'= {
        }
        &'gate;setup;help;cursor'= {
        }
        &'gate;setup;help;local'= {
        }
        &'gate;setup;help;help'= {
        }
        &'gate;hook'= {
            cand --event 'Which call this is; by default read from the input''s event name (they must agree)'
            cand --timeout 'Wait at most this long for an approval (never longer than the policy allows); keep it under the hook timeout the agent is given, or the agent stops waiting first'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;shim'= {
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand install 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
            cand list 'List the shims: where each points and which real program it shadows'
            cand remove 'Remove the shims NAME...; a file that is not a link to gate is never removed'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;shim;install'= {
            cand --dir 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gate;shim;list'= {
            cand --dir 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'Print one JSON object on stdout: {"dir", "shims": [{name, path, kind, target, shadows}]}'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;shim;remove'= {
            cand --dir 'The shim directory (default: `$XDG_STATE_HOME/gate/shims`)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;shim;help'= {
            cand install 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
            cand list 'List the shims: where each points and which real program it shadows'
            cand remove 'Remove the shims NAME...; a file that is not a link to gate is never removed'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;shim;help;install'= {
        }
        &'gate;shim;help;list'= {
        }
        &'gate;shim;help;remove'= {
        }
        &'gate;shim;help;help'= {
        }
        &'gate;doctor'= {
            cand --shim-dir 'The shim directory to check (default: `shims` in gate''s state directory)'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand --json 'Print one JSON object on stdout: {"ok": bool, "checks": [{check, status, detail, hint}]}'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;completions'= {
            cand --out-dir 'Write completions for every shell into this directory instead'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;man'= {
            cand --out-dir 'Write gate.1, one page per subcommand and gate-policy.5 (the policy file format) into this directory instead'
            cand --policy 'Add a policy file (repeatable). Adds to the system and user policy, never replaces it'
            cand --color 'When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says'
            cand -q 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand --quiet 'Say less: no progress lines, no spinner (a run with no policy at all still warns)'
            cand -v 'Say more (repeat for more detail)'
            cand --verbose 'Say more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gate;help'= {
            cand check 'Classify a command without running it: decision, matched rules, approvals needed, why'
            cand policy 'Validate and test policy files'
            cand log 'Read the audit log'
            cand requests 'List pending approval requests you can see, or show one in full'
            cand approve 'Approve a pending request as the current user (or as your server token''s principal)'
            cand deny 'Deny a pending request as the current user (or as your server token''s principal)'
            cand login 'Store your token for a gate server in the OS keyring (or a 0600 file where there is none)'
            cand serve 'Run the approval and audit server'
            cand setup 'One-time set-up of this machine, as root; or install gate''s hook into an AI agent'
            cand hook 'Answer an AI agent''s shell-tool hook: read its hook JSON on stdin, decide, answer in its schema'
            cand shim 'PATH shims: links named after programs that route them through gate'
            cand doctor 'Check this set-up: policy files and their tier, the log and key, the keyring, backends and sinks, agent hooks and shims. One line each: ok, warn or fail'
            cand completions 'Print shell completions for SHELL'
            cand man 'Print the man page (gate.1)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gate;help;check'= {
        }
        &'gate;help;policy'= {
            cand lint 'Check policy files for errors; each is reported as path:line:column'
            cand test 'Run the `tests:` cases written in policy files; exit 1 when any fails'
        }
        &'gate;help;policy;lint'= {
        }
        &'gate;help;policy;test'= {
        }
        &'gate;help;log'= {
            cand show 'Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended'
            cand tail 'Show the last records, and with `--follow` each new one as it is appended'
            cand export 'Export one row per request (decision, requester, command, rules, approvers, denier and reason, result) as CSV or JSON, for an auditor''s evidence request'
            cand verify 'Prove the log is complete and unaltered, and that what ran was approved as required'
            cand push 'Deliver records the remote sinks have not acknowledged yet'
            cand key 'Print this host''s checkpoint verifier key (note vkey format), making the key if needed'
        }
        &'gate;help;log;show'= {
        }
        &'gate;help;log;tail'= {
        }
        &'gate;help;log;export'= {
        }
        &'gate;help;log;verify'= {
        }
        &'gate;help;log;push'= {
        }
        &'gate;help;log;key'= {
        }
        &'gate;help;requests'= {
        }
        &'gate;help;approve'= {
        }
        &'gate;help;deny'= {
        }
        &'gate;help;login'= {
        }
        &'gate;help;serve'= {
            cand token 'Manage the API tokens of principals'
            cand key 'Print the key the server signs its decisions with (note vkey format), making it if needed'
            cand log 'The server''s own log, when it lives in a PostgreSQL database'
            cand secret 'Manage the secrets the server releases to approved runs (names and times only are ever shown; values are sealed with AES-256-GCM under the secret key)'
        }
        &'gate;help;serve;token'= {
            cand issue 'Make a token for a principal and print it once (only its hash is stored)'
            cand list 'List tokens (ids, principals, state; never the secrets)'
            cand revoke 'Revoke a token by its id'
        }
        &'gate;help;serve;token;issue'= {
        }
        &'gate;help;serve;token;list'= {
        }
        &'gate;help;serve;token;revoke'= {
        }
        &'gate;help;serve;key'= {
        }
        &'gate;help;serve;log'= {
            cand export 'Write the server''s log kept in a PostgreSQL database as JSON lines, for `gate log verify`'
        }
        &'gate;help;serve;log;export'= {
        }
        &'gate;help;serve;secret'= {
            cand set 'Store a secret''s value, read from standard input (a hidden prompt on a terminal); one trailing newline is dropped. Replaces a value stored under NAME'
            cand list 'List the stored secrets: names, created and updated times, never values'
            cand rm 'Delete a stored secret'
        }
        &'gate;help;serve;secret;set'= {
        }
        &'gate;help;serve;secret;list'= {
        }
        &'gate;help;serve;secret;rm'= {
        }
        &'gate;help;setup'= {
            cand claude-code 'Install gate''s hook into Claude Code''s settings (.claude/settings.json)'
            cand codex 'Install gate''s hook into Codex''s hooks file (.codex/hooks.json)'
            cand gemini 'Install gate''s hook into Gemini CLI''s settings (.gemini/settings.json)'
            cand cursor 'Install gate''s hook into Cursor''s hooks file (.cursor/hooks.json), failing closed'
            cand local 'Make the shared spool for approvals on this machine, and the system policy naming it'
        }
        &'gate;help;setup;claude-code'= {
        }
        &'gate;help;setup;codex'= {
        }
        &'gate;help;setup;gemini'= {
        }
        &'gate;help;setup;cursor'= {
        }
        &'gate;help;setup;local'= {
        }
        &'gate;help;hook'= {
        }
        &'gate;help;shim'= {
            cand install 'Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add'
            cand list 'List the shims: where each points and which real program it shadows'
            cand remove 'Remove the shims NAME...; a file that is not a link to gate is never removed'
        }
        &'gate;help;shim;install'= {
        }
        &'gate;help;shim;list'= {
        }
        &'gate;help;shim;remove'= {
        }
        &'gate;help;doctor'= {
        }
        &'gate;help;completions'= {
        }
        &'gate;help;man'= {
        }
        &'gate;help;help'= {
        }
    ]
    $completions[$command]
}
