"""Circuit breakers for `http.request`: one per (namespace, target host:port), shared by every
process through Redis, or held in the process on the embedded backend.

`policy` is the pure state machine, `local` and `redis_store` keep the state, `breakers` is
what the node calls."""
