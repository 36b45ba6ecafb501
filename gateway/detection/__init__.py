"""Detection (contract §8): rules over the audit stream → flags, suspensions, alerts.

- `config`: thresholds, windows and working hours from `policies/detection.toml`
- `counters`, `redis_counters`: sliding-window counts, in process or shared in Redis
- `rules`: what counts, as pure functions over one `access.decision` event
- `flags`: the flags table; `alerts`: warning lines and the webhook
- `detector`: admission inside each staff decision (`admit`: the suspend thresholds checked
  and counted in one atomic step) and the FootageFlow observer that ties the rest together
- `wiring`: `build_detector(...)`, called once by `build_services` (gateway/services.py)
"""
