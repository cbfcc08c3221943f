"""The state folder: `index.HistoryIndex` (the SQLite cache of the sidecars), `journal` (the one
append-only journal type), `unwritten` (sidecars a folder refused), `moves` (moves under way) and `seal`
(which sidecars this agent wrote).
"""
