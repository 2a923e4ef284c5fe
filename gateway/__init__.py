"""The Litestar gateway: authenticates, validates, publishes, reads. It never processes."""
