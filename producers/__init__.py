"""Producers: the scheduler, the sweeps that find due work and enqueue it, the operator CLI."""
