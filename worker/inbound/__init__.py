"""What comes back in: replies, acks and opt-outs, stored once and handled by an actor.

The web process verifies and stores an event (:mod:`worker.inbound.events`), then enqueues its
id; :mod:`worker.inbound.handle` applies it once, whatever the number of deliveries.
"""
