"""`conveyor bench SUITE`: figures measured against a ceiling in the same run."""
