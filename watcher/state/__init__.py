"""The state folder: `index.HistoryIndex` (the SQLite cache of the sidecars), `index_writes` (applies the
index writes core decided), `journal` (the one append-only journal type), `unwritten` (sidecars a folder
refused), `moves` (moves under way) and `seal` (which sidecars this agent wrote).
"""
