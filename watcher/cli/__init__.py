"""The command line, `minimax-watcher`: `main` (the commands), `status`, `dry_run` (`scan --dry-run`) and
`progress` (`upload`'s progress line). Nothing imports this room but `watcher.__main__`.
"""
