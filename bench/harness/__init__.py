"""The benchmarks' machinery, apart from the workloads (bench/README.md, "Layout").

The processes measured (`agent`, `baselines` with the `clients.py` and `shell_hotfolder.sh` they run),
the API they talk to (`emulator`), what they are given (`dataset`, `images`), how they are watched
(`sidecar_watch`, `procfs`), and what a run produces (`context`, `results`, `report`).
"""
