"""Worker layer: broker set-up, middleware, the outbox and its delivery, channels, actors."""
