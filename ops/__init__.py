"""The command line: embedded stack, provisioning, entry points of every process."""
