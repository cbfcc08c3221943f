"""What the agent tells the outside: `logs` (journald or stderr, redacted), `metrics` (Prometheus),
`listener` (the bounded HTTP server), `live_status` (for `minimax-watcher status`), `reporter` (what to
publish, when), `status_line` (the `STATUS=` line) and `sd_notify`.
"""
