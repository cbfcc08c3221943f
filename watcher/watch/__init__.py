"""The kernel's news about the folders: `held_folders.WatchedFolders` (each folder locked or stood by,
watched, lost and found), `observers` (inotify or polling, as `PathEvent`s), `inotify`, `polling`,
`limits` (the kernel's inotify limits), `lock` and `lock_identity` (one folder, one agent).
"""
