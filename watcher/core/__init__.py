"""Every decision about a file, with no I/O: the scheduler (`scheduler.Scheduler`), the phases and their
legal moves (`phases`), what an upload's result does (`results`), the messages the loop handles
(`messages`), and the protocols through which the shell answers core's questions (`ports`).

Imports only itself, `watcher.redact` and `watcher.log_fields`. See docs/architecture.md, 'The rooms'.
"""
