"""The operator's hooks (SPEC §6b): `runner.HookRunner` (submit, prepare and commit, runs with retries),
`events.HookEvent` (what one event hands its hook), `journal` (runs not finished yet), `intent` (where a
run's record went after a kill -9) and `process` (one hook process, bounded).
"""
