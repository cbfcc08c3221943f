"""`minimax-watcher service install` and `uninstall`: `install` (the plans), `plan` (steps as data,
`run_plan`), `steps`, `units` (systemd's syntax, the sandbox's view), `paths` (root's changes without
following a link) and `files/` (the shipped unit files).
"""
