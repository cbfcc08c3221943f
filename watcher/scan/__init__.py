"""Listing folders: `scanner.Scanner` (the thread: start-up, periodic and subfolder scans), `inventory` (a
folder's walk, each file judged; `DiskProbe`), `vouching` (what the index vouches for) and `helper` (the
start-up helper process).
"""
