"""The prose of docs/nodes.md that the params models cannot carry: what each param means.

`app.docgen` refuses to render when a built-in param has no note here, or a note names a param
that no longer exists, so a changed params model cannot leave the docs behind.
"""

from __future__ import annotations

# What each built-in type does, in a user's words (a plugin's own docstring is used instead).
SUMMARIES: dict[str, str] = {
    "condition": "Evaluates the bare expression `expr` against the scope into `{result: bool}`; "
    "other nodes read it in `when`.",
    "delay": "Waits `ms`. In a queued run, a wait of at least "
    "`TURNOUT_DURABLE_DELAY_THRESHOLD_MS` frees the worker: the execution goes `waiting` and "
    "resumes on the queue when due.",
    "fail": "Always fails with the given message, code and retry decision (tests, examples).",
    "foreach": "Runs the `node` template once per item of `items`, `concurrency` at a time; "
    "each item is its own step row.",
    "http.request": "One HTTP call through the shared client, behind the address guard "
    "(private, loopback and metadata addresses refused unless allowed); non-2xx fails unless "
    "listed in `acceptStatus`; sends `Idempotency-Key: {executionId}:{nodeId}`.",
    "human.input": "Parks the execution in `waiting` until `POST /execution/{id}/input` "
    "brings data valid against `schema`.",
    "noop": "Passes a value through (tests, benchmarks, joins).",
    "transform": "Builds an object from templates: the evaluated params are the output.",
    "wait.event": "Parks the execution in `waiting` until `POST /events` brings an event of "
    "`name` for which `match` holds; events received up to `TURNOUT_EVENT_KEEP_MS` before the "
    "step first ran count too. Queued by the analyzer (a durable wait).",
    "workflow": "Runs a registered workflow of the same namespace as a child execution "
    "(queued) and parks until it ends, freeing the worker; one child per attempt, so the "
    "step's `retry` starts a new child. Nesting is bounded by `TURNOUT_MAX_CHILD_DEPTH`. "
    "Counts as an external call and queues the run (a durable wait).",
}

PARAM_NOTES: dict[str, dict[str, str]] = {
    "condition": {
        "expr": "a bare expression (no `{{ }}`), evaluated against the scope and made a bool",
    },
    "delay": {
        "ms": "how long to wait, in ms (up to 30 days)",
    },
    "fail": {
        "message": "the step error's message",
        "code": "the step error's code",
        "retryable": "whether the node's `retry` policy may try again",
    },
    "foreach": {
        "items": "the list to iterate, usually `{{ some.list }}`",
        "concurrency": "how many items run at once",
        "node": "the per-item node template: `{type, params, retry?, timeout?}`; its params "
        "see `item` and `index`",
    },
    "http.request": {
        "method": "HTTP method (case-insensitive)",
        "url": "`http://` or `https://` URL",
        "headers": "request headers",
        "query": "query parameters, merged into the URL's own",
        "json": "a JSON body (sets `content-type: application/json`); `null` sends `null`",
        "body": "a text body; not together with `json`",
        "acceptStatus": "non-2xx statuses that count as success",
        "timeout": "per-request timeout in ms (default `TURNOUT_HTTP_DEFAULT_TIMEOUT_MS`)",
        "followRedirects": "follow up to 5 redirects, each hop checked by the address guard",
        "circuitBreaker": "the target host's circuit breaker (README, Circuit breakers): "
        "`true` uses `TURNOUT_CIRCUIT_*`, `false` turns it off for this node, an object sets "
        "this node's own thresholds (its own breaker for the host)",
    },
    "human.input": {
        "prompt": "what the person is asked",
        "schema": "JSON Schema the answer must match (`422` otherwise)",
        "timeout": "ms to wait for an answer; then `default` if given, else the step fails "
        "with `human_timeout`",
        "default": "the output when the timeout passes without an answer",
    },
    "noop": {
        "value": "the output; without it the output is the execution's input",
    },
    "transform": {},
    "wait.event": {
        "name": "the event name (`POST /events` `name`)",
        "match": "a bare expression (no `{{ }}`) over `event` (`{id, name, data, receivedAt}`) "
        "and the run's scope (`input`, finished nodes); none: the first event of `name`",
        "timeout": "ms to wait; then the step fails with `event_timeout` (none: no end)",
    },
    "workflow": {
        "workflow": "the registered workflow's name (same namespace)",
        "version": "a registered version, or `latest` (the newest when the step starts)",
        "input": "the child's input (templates are evaluated)",
    },
    # Shared definitions inside a params schema ($defs).
    "NodeTemplate": {
        "type": "the item node's type",
        "params": "its params; templates see `item` and `index` besides the usual scope",
        "retry": "retry policy per item (see retry-and-timeouts.md)",
        "timeout": "timeout per item attempt, in ms",
    },
    "CircuitOverride": {
        "failures": "failures within the window that open it (default `TURNOUT_CIRCUIT_FAILURES`)",
        "windowMs": "the window failures are counted in, ms (default `TURNOUT_CIRCUIT_WINDOW_MS`)",
        "cooldownMs": "how long it stays open before one probe, ms (default "
        "`TURNOUT_CIRCUIT_COOLDOWN_MS`)",
    },
    "RetryPolicy": {
        "maxAttempts": "attempts in all, the first included (1 = no retry)",
        "backoff": "`exponential`: `initialDelay * multiplier^(n-1)`; `fixed`: `initialDelay`",
        "initialDelay": "ms before the second attempt",
        "maxDelay": "cap on any delay, in ms",
        "multiplier": "growth factor of `exponential`",
        "jitter": "keep half the delay and randomise the other half",
    },
}

# What a step of each built-in type outputs (readable as `{{ <nodeId>.<key> }}`).
OUTPUTS: dict[str, str] = {
    "condition": "`{result: bool}`",
    "delay": "`{delayedMs}`",
    "fail": "never completes: fails with `code`, `message`",
    "foreach": "the list of item outputs, in item order (each item is its own step row)",
    "http.request": "`{status, headers, body}`; a JSON response body is parsed, others are text",
    "human.input": "the `data` given to `POST /execution/{id}/input`",
    "noop": "`value`, or the execution's input",
    "transform": "the params, evaluated: any object of templates",
    "wait.event": "the event: `{id, name, data, receivedAt}`",
    "workflow": "the child execution's result (a failed or cancelled child fails the step "
    "with `child_failed`)",
}
