"""The state folder: `index.HistoryIndex` (the SQLite cache of the sidecars), `index_reader` (the same index
read by another process), `index_writes` (applies the index writes core decided), `journal` (the one
journal type: `Journal`, `JournalKind`), `unwritten` (sidecars a folder refused), `moves` (moves under way)
and `seal` (which sidecars this agent wrote).
"""
