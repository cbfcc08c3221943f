"""Everything below a watched folder: `files` (opening beneath a folder without following a link), `records`
(sidecars and error records), `mover` (done_dir / failed_dir), `folder_sync` (folder fsyncs grouped) and
`descriptors` (the process's descriptor limit).
"""
