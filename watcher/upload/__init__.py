"""Sending files: `pipeline` (one file start to finish: send, record, move, tell the hooks; used by `run`,
`scan` and `upload`), `send` (its first step: open, sniff, dedupe or upload, check), `workers.Workers`
(the threads that run it), `client.UploadClient` (the streaming POST) and `deadlines` (every attempt
bounded in time).
"""
