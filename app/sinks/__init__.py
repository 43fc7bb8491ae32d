"""Event sinks: subscriptions, the outbox delivery loop, and the sinks (webhook, Redis Streams)."""
