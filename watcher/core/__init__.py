"""Decisions, no I/O: the scheduler (`scheduler`, with `phases`, `results`, `settle`, `accounts`,
`ledger`, `backlog`), the messages it takes (`messages`), and the ports it needs from outside (`ports`).
"""
