"""Image to video (SPEC §8): the generator thread and the leaves it drives.

`generator` runs the planner's decisions (`watcher.core.generation`: slots, the day's cap, pauses) on
its own thread and a small pool: each create journalled and fsynced before it is sent, polled, and
downloaded by `download` (no token, bounded, checked by `mp4`) into the folder's `output_dir`; `client`
speaks to the API's video endpoints; `prompt` reads prompt files and finds end frames, `beside` and
`records` read and write what lies beside an image (the video record is for people: the journal in the
state folder decides); `retries` carries out `retry`, `ownership` keeps one process per state folder;
`outcomes` is the agent's side (metrics, `on_video`, the `done_dir` move that waited). See docs/architecture.md, "From image to video".
"""
