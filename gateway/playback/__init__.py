"""Playback sessions (contract §12): one authorized view of one clip, watched through an opaque
URL that needs no Authorization header, every request through it checked and recorded.

- `tokens`: the URL's token (≥128 random bits) and the only form it is ever kept in, its hash
- `store`: the sessions and their requests in the database
- `standing`: whether a session may still serve, one function for every path that asks
- `liveness`: that question on the hot path, from a cache at most a second old
- `recorder`: every request through a session, written in batches, never awaited
- `ending`: the one `live` → `ended` transition and its playback.ended event
- `reaper`: ends the sessions nobody is asking about any more (idle, too old, revoked)
- `flow`: POST /v1/playback and GET|HEAD /v1/play/{token}, composed from the above
"""
